"""The counters a drop moves: where a reader looks when a packet vanishes without a word.

A silent drop leaves no packet to capture, but the kernel counts it. `counters(trace)` reads
the trace's decisions and returns, as records, every counter of the watched set that the
exchange moved and by how much: the SNMP MIB counters `nstat` (or `netstat -s`) prints, a
device's RX or TX `dropped` as `ip -s link` prints it, the packet count of the iptables rule
that dropped or rejected a packet (`iptables -L -v`). Which decision moves which counter is a
table (`MOVES`), each entry citing the kernel function that counts; netsim.lab.counters reads
the same counters from a real kernel before and after the same exchange and compares.
"""

from __future__ import annotations

from dataclasses import dataclass

# The MIB counters watched, by nstat's names. Each is one a reader checks after a drop or an
# error; the lab compares all of them, so a counter the kernel moves and the model does not
# predict is a difference too.
WATCHED_MIB = (
    "IpInHdrErrors", "IpInAddrErrors", "IpInDiscards", "IpOutDiscards", "IpOutNoRoutes", "IpExtInNoRoutes",
    "IpReasmReqds", "IpReasmOKs", "IpReasmFails", "IpFragOKs", "IpFragFails", "IpFragCreates",
    "IcmpInErrors", "IcmpInDestUnreachs", "IcmpInTimeExcds", "IcmpOutDestUnreachs", "IcmpOutTimeExcds",
    "UdpNoPorts", "UdpInErrors",
)


@dataclass(frozen=True, order=True)
class CounterKey:
    """One counter on one host: (host, tool that prints it, its name as the tool prints it)."""

    host: str
    tool: str          # "nstat", "ip -s link", "iptables -L -v"
    name: str          # "IpExtInNoRoutes", "veth9bb860b4 RX dropped", "filter INPUT rule 4 pkts"


@dataclass(frozen=True)
class Counter:
    """A counter an exchange moved: which, by how much, at which hop, and the kernel code that counts it."""

    key: CounterKey
    delta: int
    hop: int           # the hop whose decision moved it
    source: str        # the kernel function (file) that increments it


# ICMP types whose In/Out counters are watched (icmp_pointers[] in net/ipv4/icmp.c names them).
ICMP_MIB = {3: "DestUnreachs", 11: "TimeExcds"}

# (function, reason) of a decision -> the MIB counters it moves by one, and the kernel code.
MIB_MOVES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    # ip_route_input_slow sends a packet for another host to ip_error when forwarding is off;
    # ip_error then counts IPSTATS_MIB_INADDRERRORS and sends nothing (net/ipv4/route.c)
    ("ip_route_input_slow", "not-forwarding"): (("IpInAddrErrors", "ip_error (net/ipv4/route.c)"),),
    # no route while forwarding: ip_error counts IPSTATS_MIB_INNOROUTES, then icmp_send
    ("ip_error", "no-route"): (("IpExtInNoRoutes", "ip_error (net/ipv4/route.c)"),),
    # a DF packet bigger than the output MTU: ip_forward (ip_exceeds_mtu) and ip_fragment count
    # IPSTATS_MIB_FRAGFAILS before sending "fragmentation needed" (net/ipv4/ip_forward.c, ip_output.c)
    ("ip_forward", "frag-needed"): (("IpFragFails", "ip_forward (net/ipv4/ip_forward.c)"),),
    ("ip_fragment", "df-too-big"): (("IpFragFails", "ip_fragment (net/ipv4/ip_output.c)"),),
    # every fragment handed to reassembly: ip_defrag counts IPSTATS_MIB_REASMREQDS; the one
    # that completes the packet also IPSTATS_MIB_REASMOKS in ip_frag_reasm (net/ipv4/ip_fragment.c)
    ("ip_defrag", "hold"): (("IpReasmReqds", "ip_defrag (net/ipv4/ip_fragment.c)"),),
    ("nf_defrag_ipv4", "hold"): (("IpReasmReqds", "ip_defrag (net/ipv4/ip_fragment.c)"),),
    ("ip_defrag", "reassembled"): (("IpReasmReqds", "ip_defrag (net/ipv4/ip_fragment.c)"),
                                   ("IpReasmOKs", "ip_frag_reasm (net/ipv4/ip_fragment.c)")),
    ("nf_defrag_ipv4", "reassembled"): (("IpReasmReqds", "ip_defrag (net/ipv4/ip_fragment.c)"),
                                        ("IpReasmOKs", "ip_frag_reasm (net/ipv4/ip_fragment.c)")),
    # the ICMP redirect ip_forward asked for, dropped by nf_nat at its OUTPUT hook: ip_local_out
    # fails, and ip_send_skb counts IPSTATS_MIB_OUTDISCARDS (net/ipv4/ip_output.c)
    ("nf_nat_icmp_reply_translation", "redirect-on-nat"): (("IpOutDiscards", "ip_send_skb (net/ipv4/ip_output.c)"),),
    # a datagram with nobody listening: __udp4_lib_rcv counts UDP_MIB_NOPORTS (net/ipv4/udp.c)
    ("udp_rcv", "udp-no-socket"): (("UdpNoPorts", "__udp4_lib_rcv (net/ipv4/udp.c)"),),
}


def _mib(hop, name: str, source: str, delta: int = 1) -> Counter:
    return Counter(CounterKey(hop.netns, "nstat", name), delta, hop.index, source)


def _device(where: str, direction: str, hop: int, source: str) -> Counter:
    host, _, dev = where.partition("/")
    return Counter(CounterKey(host, "ip -s link", f"{dev} {direction} dropped"), 1, hop, source)


def hop_counters(hop) -> list[Counter]:
    """The watched counters one hop's decisions moved."""
    out: list[Counter] = []
    for d in hop.decisions:
        reason = d.reason.value if d.reason is not None else ""
        for name, source in MIB_MOVES.get((d.function, reason), ()):
            out.append(_mib(hop, name, source))
        if d.function == "ip_do_fragment":
            # ip_do_fragment: IPSTATS_MIB_FRAGCREATES per fragment, IPSTATS_MIB_FRAGOKS once
            out.append(_mib(hop, "IpFragOKs", "ip_do_fragment (net/ipv4/ip_output.c)"))
            out.append(_mib(hop, "IpFragCreates", "ip_do_fragment (net/ipv4/ip_output.c)", int(d.fact("count"))))
        elif d.function == "icmp_send" and d.fact("type") in ICMP_MIB:
            # icmp_push_reply -> icmp_out_count: ICMP_MIB_OUTMSGS and the type's own counter
            out.append(_mib(hop, f"IcmpOut{ICMP_MIB[d.fact('type')]}", "icmp_out_count (net/ipv4/icmp.c)"))
        elif d.function in ("icmp_unreach", "icmp_rcv") and hop.inner_ip is not None:
            icmp = hop.inner_ip.payload
            if getattr(icmp, "type", None) in ICMP_MIB:
                # icmp_rcv counts every ICMP message it is handed, by type (ICMP_MIB_IN...)
                out.append(_mib(hop, f"IcmpIn{ICMP_MIB[icmp.type]}", "icmp_rcv (net/ipv4/icmp.c)"))
        elif d.function == "vxlan_xmit" and reason == "no-fdb":
            # no FDB entry and no default destination: vxlan_xmit drops the frame and counts it
            # in the device's tx_dropped (drivers/net/vxlan/vxlan_core.c)
            out.append(_device(hop.where, "TX", hop.index, "vxlan_xmit (drivers/net/vxlan/vxlan_core.c)"))
        elif d.function == "is_skb_forwardable" and d.subsystem.value == "veth":
            # veth_xmit: a frame the peer refuses counts in the peer's rx_dropped
            # (__dev_forward_skb -> dev_core_stats_rx_dropped_inc) and in the sender's tx_dropped
            # (drivers/net/veth.c)
            out.append(_device(str(d.fact("peer")), "RX", hop.index, "__dev_forward_skb (net/core/dev.c)"))
            out.append(_device(hop.where, "TX", hop.index, "veth_xmit (drivers/net/veth.c)"))
        elif d.function == "ipt_do_table" and d.verdict.value in ("drop", "reject"):
            for rule in d.consulted:
                if getattr(rule, "table", None) and hasattr(rule, "rule"):
                    what = "policy" if rule.rule == 0 else f"rule {rule.rule}"
                    # ipt_do_table adds every packet a rule matches to its counters (ADD_COUNTER)
                    out.append(Counter(CounterKey(hop.netns, "iptables -L -v", f"{rule.table} {rule.chain} {what} pkts"),
                                       1, hop.index, "ipt_do_table (net/ipv4/netfilter/ip_tables.c)"))
    return out


def counters(trace) -> tuple[Counter, ...]:
    """Every watched counter the exchange moved, in hop order (one record per move)."""
    return tuple(c for hop in trace.hops for c in hop_counters(hop))


def totals(moves) -> dict[CounterKey, int]:
    """The moves added up per counter."""
    out: dict[CounterKey, int] = {}
    for c in moves:
        out[c.key] = out.get(c.key, 0) + c.delta
    return dict(sorted(out.items()))
