"""State views in the lab: what the real tools print in the lab's namespaces against netsim's views.

`kernel_view(lab, host, view)` runs the tool (`ip`, `bridge`, `iptables-save`) in the lab
namespace standing for `host`; `model_view(cluster, host, view)` takes the same view from
netsim; both leave out what the model does not print, the same way on each side:

- `ip link`: each link's name and its `qlen` (the lab's ifindex order, peer names and
  veth-made NICs differ from the model's on purpose);
- `ip -d link`: every line of each device, ifindex and `@peer` dropped and the lab's namespace
  prefix taken off `link-netns`; a model NIC's stand-in in the lab (a veth: qdisc noqueue, a
  peer in the underlay, a `veth` line) is printed as the model's NIC. The model prints fewer
  fields (netsim.show), so each of its lines must be the kernel's line or its start:
  flags, MTU, qdisc, master, state, MAC, peer namespace, the promiscuity and allmulti counts,
  the VXLAN settings, a bridge port's hairpin, learning and flood;
- `ip neigh`: the permanent entries; `bridge fdb`: without IPv6 and link-local multicast
  entries; both sorted (the kernel's hash order, the model's creation order);
- `bridge -d link`: every line of each bridge port, ifindex and `@peer` dropped (as `ip -d
  link`), ports sorted by name;
- `iptables-save`: without comments, counters and empty tables;
- `nft -a list ruleset`: the nf_tables tables the model holds, with every handle, byte for byte;
  the tables iptables-nft makes for iptables' rules (`ip filter`, `ip nat`, ...; the
  iptables-save view's) and the lab's own tracing table `nsl_trace` are left out.

`differences(lab, cluster, host, view)` is empty when the two agree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..device import Nic
from .process import run, tool

if TYPE_CHECKING:
    from ..cluster import Cluster
    from .kernel import Lab

VIEWS = ("ip link", "ip -d link", "ip route", "ip neigh", "bridge fdb", "bridge -d link", "iptables-save",
         "nft -a list ruleset")
IPTABLES_NFT_TABLES = ("raw", "mangle", "filter", "nat", "security")
HOSTS = ("node1", "node2", "pod-a", "pod-c", "gateway", "ext", "underlay")
LINK_LOCAL_MULTICAST = ("33:33:", "01:00:5e:", "01:80:c2:")


def _command(lab: "Lab", host: str, view: str) -> list[str]:
    ns, ip = lab.netns(host), tool("ip") or "ip"
    return {
        "ip link": [ip, "-n", ns, "link", "show"],
        "ip -d link": [ip, "-n", ns, "-d", "link", "show"],
        "ip route": [ip, "-n", ns, "route"],
        "ip neigh": [ip, "-n", ns, "neigh", "show", "nud", "permanent"],
        "bridge fdb": [tool("bridge") or "bridge", "-n", ns, "fdb", "show"],
        "bridge -d link": [tool("bridge") or "bridge", "-n", ns, "-d", "link", "show"],
        "iptables-save": [ip, "netns", "exec", ns, "iptables-save"],
        "nft -a list ruleset": [ip, "netns", "exec", ns, tool("nft") or "nft", "-a", "list", "ruleset"],
    }[view]


def kernel_view(lab: "Lab", host: str, view: str) -> list[str]:
    """`view` as the real tool prints it in `host`'s lab namespace, normalised (module doc)."""
    text = run(_command(lab, host, view)).stdout
    if view == "ip -d link":
        blocks = link_blocks(text.replace(f" link-netns {lab.prefix}", " link-netns "))
        devices = lab.cluster.netns(host).devices
        for name, lines in blocks.items():
            if isinstance(devices.get(name), Nic) and len(lines) >= 2:
                lines[0] = lines[0].replace(" qdisc noqueue ", " qdisc mq ")
                lines[1] = re.sub(r" link-netns \S+", "", lines[1])
                del lines[2:]
        return _flatten(blocks)
    return _normalise(view, [line.rstrip() for line in text.splitlines()])


def model_view(cluster: "Cluster", host: str, view: str) -> list[str]:
    """`view` as netsim prints it for `host`, normalised the same way."""
    if view == "ip -d link":
        return _flatten(link_blocks(cluster.show(host, "ip -d link show")))
    if view == "bridge -d link":
        return _flatten(link_blocks(cluster.show(host, view)))
    shown = "ip addr" if view == "ip link" else view     # `ip addr` starts each link with the same line
    return _normalise(view, [line for line in cluster.show(host, shown).splitlines() if line])


def differences(lab: "Lab", cluster: "Cluster", host: str, view: str) -> list[str]:
    """What differs between the kernel's and the model's `view` of `host` (empty: nothing)."""
    kernel, model = kernel_view(lab, host, view), model_view(cluster, host, view)
    if view == "ip -d link":
        kb, mb = _unflatten(kernel), _unflatten(model)
        out = [f"devices: kernel {sorted(kb)}, model {sorted(mb)}"] if sorted(kb) != sorted(mb) else []
        for name in sorted(set(kb) & set(mb)):
            k, m = kb[name], mb[name]
            if len(k) != len(m) or any(not (a == b or a.startswith(b + " ")) for a, b in zip(k, m)):
                out.append(f"{name}:\nkernel:\n" + "\n".join(k) + "\nmodel:\n" + "\n".join(m))
        return out
    if kernel == model:
        return []
    return [f"kernel:\n" + "\n".join(kernel) + "\nmodel:\n" + "\n".join(model)]


def link_blocks(text: str) -> dict[str, list[str]]:
    """`ip [-d] link` split per device, keyed by name: the link line without its ifindex and
    peer (`eth0: <...> mtu ...`), then the device's other lines, trailing spaces stripped."""
    blocks: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        line = line.rstrip()
        if line[:1].isdigit():
            _index, name, rest = line.split(": ", 2)
            name = name.split("@")[0]
            blocks[name] = [f"{name}: {rest}"]
        elif line and name:
            blocks[name].append(line)
    return blocks


def _flatten(blocks: dict[str, list[str]]) -> list[str]:
    return [line for name in sorted(blocks) for line in blocks[name]]


def _unflatten(lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in lines:
        if not line.startswith(" "):
            name = line.split(": ", 1)[0]
            out[name] = []
        out[name].append(line)
    return out


def drop_empty_tables(lines: list[str]) -> list[str]:
    """iptables-save's tables that hold no rule, left out."""
    out, table = [], []
    for line in lines:
        table.append(line)
        if line == "COMMIT":
            if any(entry.startswith("-A") for entry in table):
                out.extend(table)
            table = []
    return out


def _normalise(view: str, lines: list[str]) -> list[str]:
    if view == "ip link":
        out = []
        for line in lines:
            if line[:1].isdigit():
                name = line.split(": ")[1].split("@")[0]
                out.append(name + (" qlen " + line.split(" qlen ")[1] if " qlen " in line else ""))
        return sorted(out)
    if view == "ip neigh":
        return sorted(line for line in lines if line.endswith("PERMANENT"))
    if view == "bridge -d link":
        return _flatten(link_blocks("\n".join(lines)))
    if view == "bridge fdb":
        return sorted(line for line in lines if not line.startswith(LINK_LOCAL_MULTICAST))
    if view == "iptables-save":
        return drop_empty_tables([line.split(" [")[0] if line.startswith(":") else line for line in lines
                                  if line and not line.startswith("#")])
    if view == "nft -a list ruleset":
        return _nft_tables(lines)
    return lines


def _nft_tables(lines: list[str]) -> list[str]:
    """`nft list ruleset` without iptables-nft's tables and the lab's tracing table."""
    out, keep = [], True
    for line in lines:
        if line.startswith("table "):
            name = line.split()[2]
            keep = not (line.split()[1] == "ip" and name in IPTABLES_NFT_TABLES) and name != "nsl_trace"
        if keep and line:
            out.append(line)
    return out
