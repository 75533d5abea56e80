"""A recording fake of netsim.kernel.Kernel: a protocol module run against it calls no other
module; every service it asks for is written down in `calls`, in order, as a tuple of the
service's name and its arguments, for a test to compare with exact values.

By default NF_HOOK accepts every packet unchanged (`drop_at` names hooks that end it instead),
a fragment is its own and only piece, nothing is held for reassembly, no UDP port is held by
anyone (`udp_sockets` says otherwise), and a queued receive is recorded, not run.
"""

from __future__ import annotations

from typing import Any, Callable

from netsim.decision import IcmpReason
from netsim.skb import Flow, FlowLog


class FakeKernel:
    def __init__(self, drop_at: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.log = FlowLog()
        self.states: dict[type, Any] = {}
        self.drop_at = drop_at
        self.udp_sockets: dict[tuple[str, int], Any] = {}

    def named(self, service: str) -> list[tuple[Any, ...]]:
        """The calls of one service, without its name."""
        return [call[1:] for call in self.calls if call[0] == service]

    # net/core/dev.c
    def dev_queue_xmit(self, dev, frame, flow) -> None:
        self.calls.append(("dev_queue_xmit", dev, frame, flow))

    def netif_rx(self, dev, frame, flow) -> None:
        self.calls.append(("netif_rx", dev, frame, flow))

    def netif_receive_skb(self, dev, frame, flow) -> None:
        self.calls.append(("netif_receive_skb", dev, frame, flow))

    def netif_deliver(self, dev, frame, flow, otherhost: bool = True) -> None:
        self.calls.append(("netif_deliver", dev, frame, flow, otherhost))

    def record_hop(self, dev, direction, frame, flow) -> None:
        self.calls.append(("record_hop", dev, direction, frame, flow))

    def do_softirq(self) -> None:
        self.calls.append(("do_softirq",))

    def schedule(self, work: Callable[[], None]) -> None:
        self.calls.append(("schedule", work))

    def new_flow(self, role: str) -> Flow:
        return Flow(self.log, role)

    def state(self, kind):
        if kind not in self.states:
            self.states[kind] = kind()
        return self.states[kind]

    # netfilter
    def nf_hook(self, ns, hook, ip, flow, indev=None, outdev=None, nexthop=None):
        self.calls.append(("nf_hook", ns.name, hook, ip, indev, outdev, nexthop))
        return None if hook in self.drop_at else ip

    # neighbours, IPv4
    def neigh_output(self, ns, dev, nexthop, ip, flow) -> None:
        self.calls.append(("neigh_output", ns.name, dev, nexthop, ip, flow))

    def ip_forward(self, ns, in_dev, ip, rr, flow) -> None:
        self.calls.append(("ip_forward", ns.name, in_dev, ip, rr, flow))

    def ip_output(self, ns, ip, rr, flow) -> None:
        self.calls.append(("ip_output", ns.name, ip, rr, flow))

    def ip_local_out(self, ns, ip, flow, rr=None) -> None:
        self.calls.append(("ip_local_out", ns.name, ip, flow, rr))

    def ip_do_fragment(self, ip, mtu):
        self.calls.append(("ip_do_fragment", ip, mtu))
        return [ip]

    def ip_defrag(self, scope, ip, flow, function):
        self.calls.append(("ip_defrag", scope, ip, function))
        return ip

    def icmp_send(self, ns, offender, itype, code, flow, why=IcmpReason.ERROR, rest=0) -> None:
        self.calls.append(("icmp_send", ns.name, offender, itype, code, why, rest))

    # sockets
    def ip_protocol_deliver(self, ns, ip, flow) -> None:
        self.calls.append(("ip_protocol_deliver", ns.name, ip, flow))

    def udp_sock_lookup(self, ns, port):
        return self.udp_sockets.get((ns.name, port))

    def sock_send_error(self, ns, flow, errno) -> None:
        self.calls.append(("sock_send_error", ns.name, flow, errno))

    # the walk's clock
    clock = 0

    def now_us(self) -> int:
        return self.clock

    def advance_clock(self, us: int) -> None:
        self.clock = max(self.clock, us)
