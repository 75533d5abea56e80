"""A network of namespaces, and `Network.send()`, which walks one exchange through them.

A `Network` holds namespaces joined by veth cables. `send()` makes a socket in one namespace
emit a packet, then runs the modelled kernels' receive and transmit paths device by device
until every frame copy has been delivered to a socket or dropped. Each room of that walk is in
the module named for the kernel code it follows:

| module | kernel |
| --- | --- |
| kernel.py | the services the modules below call on each other: the kernel interface |
| walk.py | net/core/dev.c: the receive queue, dev_queue_xmit, netif_receive_skb, NF_HOOK; implements kernel.py |
| veth.py | drivers/net/veth.c: veth_xmit, is_skb_forwardable; loopback_xmit |
| bridge.py | net/bridge: br_handle_frame, br_forward, br_flood, br_dev_xmit, br_netfilter |
| arp.py | net/ipv4/arp.c, net/core/neighbour.c: neighbour resolution and ARP |
| ip_input.py | net/ipv4/ip_input.c: ip_rcv, the input route, ip_local_deliver |
| ip_forward.py | net/ipv4/ip_forward.c: TTL, DF and the MTU, FORWARD |
| ip_output.py | net/ipv4/ip_output.c: ip_local_out, POSTROUTING, ip_finish_output |
| ip_fragment.py | ip_do_fragment and ip_defrag |
| icmp.py | net/ipv4/icmp.c: icmp_send |
| vxlan.py | drivers/net/vxlan/vxlan_core.c: vxlan_xmit, vxlan_rcv |
| tun.py | drivers/net/tun.c: tun_net_xmit |
| sockets/ | the transport layer: sockets, the programs on them, the kernel's own responders |
| netfilter/nf_reject_ipv4.py | what REJECT sends: nf_send_reset, nf_send_unreach |

Each step records its decision (netsim.decision.Decision) on the hop where the kernel had the
frame in hand; they become `Hop.decisions`, and the exchange's end becomes `Trace.outcome`
(netsim.decision.Outcome). The walk is capped (MAX_HOPS) so that a loop raises a clear error
instead of hanging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from . import sockets
from .addresses import derive_mac, parse_address
from .bridge import Bridge
from .clock import Clock
from .decision import Outcome, OutcomeKind, OutcomeReason
from .device import Nic, Veth
from .errors import ConfigError
from .ip_fragment import fragment
from .ip_output import LOCAL_OUT_ERRNO
from .netns import Namespace
from .owners import network_owners
from .params import check_send
from .programs.events import Program
from .programs.exchange import Exchange
from .trace import Trace
from .walk import MAX_HOPS, Flow, Walk

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import UdpSocketOwner
    from .packet import Ethernet, IPv4

__all__ = ["Network", "Walk", "Flow", "MAX_HOPS", "fragment", "LOCAL_OUT_ERRNO"]


class Network:
    """Namespaces joined by cables; `send()` walks one exchange through them."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Namespace] = {}
        # userspace programs holding a UDP port (flanneld's udp proxy), by (namespace, port)
        self.udp_programs: dict[tuple[str, int], UdpSocketOwner] = {}
        self.max_hops = MAX_HOPS
        self.clock = Clock()          # the network's time: walks move it on (clock.py)
        # a Cluster sets this to name what only it knows (services, external hosts)
        self.owner_hook: Callable[[], dict[str, str]] | None = None

    # building -----------------------------------------------------------------------------
    def add_netns(self, name: str) -> Namespace:
        if name in self.namespaces:
            raise ConfigError(f"a namespace named {name!r} exists already")
        ns = self.namespaces[name] = Namespace(name)
        ns.clock = self.clock
        return ns

    def netns(self, name: str) -> Namespace:
        try:
            return self.namespaces[name]
        except KeyError:
            raise ConfigError(f"no namespace {name!r}; there are {', '.join(self.namespaces) or 'none'}") from None

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int = 1500,
             mac_a: str | None = None, mac_b: str | None = None, nic: str | None = None) -> tuple[Veth, Veth]:
        """`ip link add NAME_A type veth peer name NAME_B netns NS_B`. With `nic` naming one
        side, that side is a physical NIC (`Nic`) and the other its switch port."""
        a_ns, b_ns = self.netns(ns_a), self.netns(ns_b)
        for ns, name in ((a_ns, name_a), (b_ns, name_b)):
            if name in ns.devices:
                raise ConfigError(f"namespace {ns.name} already has a device named {name!r}")
        a = (Nic if nic == "a" else Veth)(name_a, mac_a or derive_mac(ns_a, name_a), mtu)
        b = (Nic if nic == "b" else Veth)(name_b, mac_b or derive_mac(ns_b, name_b), mtu)
        a.peer, b.peer = b, a
        a_ns.add_device(a)
        b_ns.add_device(b)
        return a, b

    def switch_port(self, ns: str, name: str, mtu: int = 1500) -> Veth:
        """A port of a physical switch with no cable plugged in yet: one end of a veth with no
        peer, so it has no link (a bridge neither floods nor forwards to it) until `plug`."""
        port = Veth(name, derive_mac(ns, name), mtu)
        self.netns(ns).add_device(port)
        return port

    def plug(self, ns: str, name: str, port: Veth, mtu: int = 1500) -> Nic:
        """A physical NIC `name` in `ns`, cabled to `port` (a `switch_port`): the two ends of
        one veth, as `veth(ns, name, ..., nic="a")` makes them at once."""
        if port.peer is not None:
            raise ConfigError(f"{port.where} is already cabled to {port.peer.where}")
        nic = Nic(name, derive_mac(ns, name), mtu)
        self.netns(ns).add_device(nic)
        nic.peer, port.peer = port, nic
        return nic

    def bridge(self, ns: str, name: str, mac: str | None = None, mtu: int = 1500) -> Bridge:
        br = Bridge(name, mac, mtu)
        self.netns(ns).add_device(br)
        return br

    # sending ------------------------------------------------------------------------------
    def send(self, src_ns: str, dst: str, proto: str = "icmp", dport: int | None = None,
             sport: int | None = None, payload: bytes | None = None, src: str | None = None,
             cold: bool = True, title: str = "") -> Trace:
        """A socket in `src_ns` sends one request to `dst`; returns the trace of the exchange.

        proto "icmp": echo request and reply. "udp": one datagram (payload, default b"REQ") and
        the answer. "tcp": SYN and SYN-ACK (or RST); with `payload`, also the handshake's ACK,
        the data and the server's answer. `cold` flushes learned neighbours, bridge FDB entries
        and conntrack first, as the reference captures did."""
        self.before_walk()
        ns = self.netns(src_ns)
        dst = str(parse_address(dst, "destination"))
        check_send(proto, dport, sport, payload)
        if src is not None:
            src = str(parse_address(src, "source"))
            if not ns.is_local_address(src):
                raise ConfigError(f"source {src} is not an address of {src_ns} (bind: Cannot assign requested address)")
        if cold:
            self.flush_caches()
        rr = ns.route_get(dst, src)
        if rr is None:
            return Trace((), title, Outcome(OutcomeKind.LOCAL_ERROR, OutcomeReason.NO_ROUTE, "ENETUNREACH",
                                            dst=dst, netns=src_ns), owners_from=self.owners)
        if rr.route.type in LOCAL_OUT_ERRNO:
            return Trace((), title, Outcome(OutcomeKind.LOCAL_ERROR, OutcomeReason.ROUTE_ERROR,
                                            LOCAL_OUT_ERRNO[rr.route.type], route=str(rr.route), netns=src_ns),
                         owners_from=self.owners)
        walk = Walk(self.udp_programs, self.max_hops, self.clock)
        program = Exchange(proto, dst, dport, sport, payload, src)
        walk.state(sockets.SocketLayer).no_timers = True
        sockets.spawn(walk, ns, program, oneshot=True)
        hops, ended_copies = walk.run_and_finish()
        outcome = program.outcome
        if outcome is None:
            ended = tuple((e.verdict, e.reason) for e in walk.ended)
            if program.local_errno:
                outcome = Outcome(OutcomeKind.LOCAL_ERROR, OutcomeReason.NO_ANSWER, program.local_errno, ended=ended)
            elif program.connected:
                outcome = Outcome(OutcomeKind.CONNECTED, OutcomeReason.CONNECTED, peer=program.peer)
            else:
                outcome = Outcome(OutcomeKind.TIMED_OUT, OutcomeReason.NO_ANSWER, "ETIMEDOUT", ended=ended)
        return Trace(hops, title or f"{src_ns} -> {dst} {proto}{'/' + str(dport) if dport else ''}",
                     outcome, ended=ended_copies, owners_from=self.owners)

    def run(self, programs: list[tuple[str, Program]], cold: bool = False, title: str = "",
            max_hops: int | None = None) -> Trace:
        """Start each program in its namespace and walk until nothing is pending: the trace of
        everything they sent and received. The programs hold their results (`program.result`).
        `cold` flushes neighbours, learned FDB entries and conntrack first, as `send` does."""
        self.before_walk()
        if cold:
            self.flush_caches()
        walk = Walk(self.udp_programs, max_hops or self.max_hops, self.clock)
        for ns_name, program in programs:
            sockets.spawn(walk, self.netns(ns_name), program)
        hops, ended = walk.run_and_finish()
        return Trace(hops, title, "", ended=ended, owners_from=self.owners)

    def inject(self, ns_name: str, dev_name: str, frame: Ethernet | IPv4, cold: bool = False,
               title: str = "") -> Trace:
        """A frame written to a packet socket bound to device `dev_name` of `ns_name`
        (packet_snd -> dev_queue_xmit: no routing, no netfilter in the sender), walked from
        that device on until nothing is pending. `cold` flushes the caches first, as `send`."""
        self.before_walk()
        dev = self.netns(ns_name).devices[dev_name]
        if cold:
            self.flush_caches()
        walk = Walk(self.udp_programs, self.max_hops, self.clock)
        walk.dev_queue_xmit(dev, frame, walk.new_flow("request"))
        hops, ended = walk.run_and_finish()
        return Trace(hops, title, "", ended=ended, owners_from=self.owners)

    def before_walk(self) -> None:
        """Called before every walk (send, run, inject): what a subclass must bring up to date
        before a packet moves (a Cluster's held-back kube-proxy syncs)."""

    def flush_caches(self) -> None:
        """`ip neigh flush`, forget learned FDB entries, `conntrack -F` in every namespace, and
        start every ICMP rate-limit bucket full: a cold exchange is one a reader starts after
        the cluster has been quiet, and an inet_peer bucket refills in XRLIM_BURST_FACTOR x
        icmp_ratelimit (6 s; icmp.py). Without it a fourth traceroute in a notebook would find
        node1's bucket for pod-a still spent by the first three, which the kernel, seconds
        later, has long refilled."""
        for ns in self.namespaces.values():
            ns.neighbours.flush_dynamic()
            ns.conntrack.flush()
            ns.icmp_peers.clear()
            for dev in ns.bridges:
                if isinstance(dev, Bridge):
                    dev.flush_learned()

    def owners(self) -> dict[str, str]:
        """Who owns each MAC and IPv4 address in the network (see owners.py); a Cluster adds
        its services, nodes and pods."""
        extra = self.owner_hook() if self.owner_hook is not None else None
        return network_owners(self.namespaces, extra)

