"""The kernel's drop and error counters in the lab, read before and after an exchange.

`snapshot(lab)` reads, in every lab namespace, the counters a reader checks after a silent
drop (netsim.counters.WATCHED names them): the SNMP MIB counters `nstat` prints (from
/proc/net/snmp and /proc/net/netstat), each device's RX and TX `dropped` as `ip -s link`
prints them (the kernel's rtnl_link_stats64), and the packet count of every iptables rule
whose target ends a packet (DROP, REJECT), as `iptables-save -c` prints it. `moved(before,
after)` is what one exchange changed; `compare_counters(model, kernel)` lines the model's
records (netsim.counters.counters(trace)) up with it, counter for counter.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from ..counters import WATCHED_MIB, Counter, CounterKey
from ._netns import in_netns
from .process import run, tool

if TYPE_CHECKING:
    from .kernel import Lab

Snapshot = dict[CounterKey, int]
_RULE = re.compile(r"^\[(\d+):(\d+)\] -A (\S+) (.*)$")


def _mib(lab_netns: str) -> dict[str, int]:
    """Every counter of /proc/net/snmp and /proc/net/netstat in the namespace, named as nstat
    names them (the line's prefix and the column: `IpInNoRoutes`, `TcpExtTCPTimeouts`)."""
    def read() -> dict[str, int]:
        out: dict[str, int] = {}
        for name in ("snmp", "netstat"):
            with open(f"/proc/thread-self/net/{name}") as fh:
                lines = fh.read().splitlines()
            for head, values in zip(lines[::2], lines[1::2]):
                prefix, _, keys = head.partition(": ")
                for key, value in zip(keys.split(), values.split(": ", 1)[1].split()):
                    out[prefix + key] = int(value)
        return out
    return in_netns(lab_netns, read)


def _links(lab_netns: str) -> dict[str, tuple[int, int]]:
    """(RX dropped, TX dropped) of every device, as `ip -s link` prints them."""
    ip = tool("ip") or "ip"
    data = json.loads(run([ip, "-n", lab_netns, "-s", "-j", "link", "show"]).stdout)
    return {d["ifname"]: (d["stats64"]["rx"]["dropped"], d["stats64"]["tx"]["dropped"]) for d in data}


def _rules(lab_netns: str) -> dict[tuple[str, str, int], int]:
    """Packets counted by each rule that drops or rejects: (table, chain, rule number) -> packets."""
    save = tool("iptables-save") or "iptables-save"
    text = in_netns(lab_netns, lambda: run([save, "-c"]).stdout)
    out: dict[tuple[str, str, int], int] = {}
    table, numbers = "", dict[str, int]()
    for line in text.splitlines():
        if line.startswith("*"):
            table, numbers = line[1:], {}
            continue
        m = _RULE.match(line)
        if not m:
            continue
        chain = m.group(3)
        numbers[chain] = numbers.get(chain, 0) + 1
        if re.search(r" -j (DROP|REJECT)\b", " " + m.group(4)):
            out[(table, chain, numbers[chain])] = int(m.group(1))
    return out


def snapshot(lab: "Lab") -> Snapshot:
    """Every watched counter of every lab namespace, keyed as netsim.counters keys them."""
    out: Snapshot = {}
    for host in lab.cluster.network.namespaces:
        ns = lab.netns(host)
        mib = _mib(ns)
        for name in WATCHED_MIB:
            out[CounterKey(host, "nstat", name)] = mib.get(name, 0)
        for dev, (rx, tx) in _links(ns).items():
            out[CounterKey(host, "ip -s link", f"{dev} RX dropped")] = rx
            out[CounterKey(host, "ip -s link", f"{dev} TX dropped")] = tx
        for (table, chain, number), packets in _rules(ns).items():
            out[CounterKey(host, "iptables -L -v", f"{table} {chain} rule {number} pkts")] = packets
    return out


def moved(before: Snapshot, after: Snapshot) -> dict[CounterKey, int]:
    """The counters that changed, and by how much."""
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))
            if after.get(k, 0) != before.get(k, 0)}


def compare_counters(model: tuple[Counter, ...], kernel: dict[CounterKey, int]) -> list[str]:
    """Differences between the model's counters and the kernel's, one line each; empty when the
    same watched counters moved by the same amounts on the same hosts."""
    want: dict[CounterKey, int] = {}
    for c in model:
        want[c.key] = want.get(c.key, 0) + c.delta
    return [f"{k.host}: {k.tool} {k.name}: model +{want.get(k, 0)}, kernel +{kernel.get(k, 0)}"
            for k in sorted(set(want) | set(kernel)) if want.get(k, 0) != kernel.get(k, 0)]


__all__ = ["Snapshot", "compare_counters", "moved", "snapshot"]
