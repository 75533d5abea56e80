"""The counters an exchange moved, as the reader would check them on each host.

`counters(trace)` lists, one line per counter, the command that shows it on that host
(`ip -s link show DEV`, `nstat -az NAME`, `iptables -t TABLE -L CHAIN -v -n --line-numbers`),
what moved and by how much, and the kernel function that counts it. The records come from
netsim.counters, which reads the trace's decisions; netsim.lab.counters checks them against a
real kernel.
"""

from __future__ import annotations

from ..counters import CounterKey, counters as counter_records, totals
from ..trace import Trace


def command(key: CounterKey) -> tuple[str, str]:
    """(the command that shows the counter, what to read in its output)."""
    if key.tool == "ip -s link":
        dev, direction, _ = key.name.split(" ")
        return f"ip -s link show {dev}", f"{direction} dropped"
    if key.tool == "iptables -L -v":
        table, chain, *what = key.name.split(" ")
        return f"iptables -t {table} -L {chain} -v -n --line-numbers", " ".join(what)
    return f"nstat -az {key.name}", key.name


def counters(trace: Trace) -> str:
    """Every watched counter the exchange moved, per host, with the command that shows it."""
    moves = counter_records(trace)
    if not moves:
        return "no watched counter moved (nstat, ip -s link and the DROP/REJECT rules' counters are unchanged)"
    source = {m.key: m.source for m in moves}
    rows = [(f"{k.host}$ {command(k)[0]}", f"{command(k)[1]} +{n}", source[k]) for k, n in totals(moves).items()]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  counted by {c}" for a, b, c in rows)
