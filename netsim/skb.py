"""Per-packet metadata that travels with a packet inside one namespace, like `struct sk_buff`,
and the `Flow` that carries one packet (or one copy of it) through a walk.

The kernel keeps a packet's firewall mark and its conntrack reference in the skb, not in the
headers. Crossing a veth into another namespace scrubs both (`skb_scrub_packet`), and so does
VXLAN encapsulation for the conntrack reference: the outer packet is tracked as a new flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .decision import Decision
from .packet import Ethernet, IPv4
from .trace import Ended

if TYPE_CHECKING:  # pragma: no cover
    from .conntrack_entry import ConntrackEntry


@dataclass(slots=True)
class Skb:
    mark: int = 0
    ct: "ConntrackEntry | None" = None
    ct_reply: bool = False          # the packet travels in the entry's reply direction
    ct_state: str = ""              # NEW, ESTABLISHED, RELATED, INVALID ("" before conntrack)
    bridged: bool = False           # br_netfilter already ran PREROUTING on this packet
    hash: int | None = None         # skb->hash: the sending socket's flow hash, if any
    frag_max: int = 0               # IPCB frag_max_size: the largest fragment nf_defrag reassembled
    pmtu: int = 0                   # a local packet's learned path MTU, when below the device's (ip_skb_dst_mtu)
    eth: tuple[str, str] | None = None   # (source, destination) MAC the packet arrived with
    # br_netfilter's bridged DNAT waiting on ARP (nf_bridge->bridged_dnat): the port it came in
    # on (physindev) and the Ethernet source it had, restored once the bridge sends it
    bridged_dnat: tuple[str, str] | None = None

    def clone(self) -> "Skb":
        """skb_clone for a copy of the packet: the same metadata."""
        other = _new_skb(Skb)
        other.mark, other.ct, other.ct_reply, other.ct_state = self.mark, self.ct, self.ct_reply, self.ct_state
        other.bridged, other.hash, other.frag_max, other.pmtu = self.bridged, self.hash, self.frag_max, self.pmtu
        other.eth, other.bridged_dnat = self.eth, self.bridged_dnat
        return other

    def scrub(self) -> "Skb":
        """What survives a namespace crossing (skb_scrub_packet): only the flow hash."""
        return fresh_skb(self.hash)


_new_skb = object.__new__


def fresh_skb(hash: int | None = None, mark: int = 0) -> Skb:
    """`Skb(hash=hash, mark=mark)`, every field set here as clone() sets them (no keyword
    call: a packet gets a new skb at every namespace crossing and encapsulation)."""
    other = _new_skb(Skb)
    other.mark, other.ct, other.ct_reply, other.ct_state = mark, None, False, ""
    other.bridged, other.hash, other.frag_max, other.pmtu = False, hash, 0, 0
    other.eth, other.bridged_dnat = None, None
    return other


class _Draft:
    """A hop being recorded: the fields `Hop` will have, its decisions still a list, and the
    copies that left it or ended on it (FlowLog.continued, FlowLog.pending). Walk.record_hop
    fills it in; when the walk is over it becomes its `Hop` in place (Walk.finish): its class
    changed, which Python allows because both have the same slots in the same order."""

    __slots__ = ("index", "netns", "device", "direction", "frame", "decisions", "packet_id", "role", "verdict",
                 "device_kind", "reason")
    index: int
    netns: str
    device: str
    direction: str
    frame: Ethernet | IPv4
    decisions: list[Decision]
    packet_id: int
    role: str
    verdict: str
    device_kind: str
    reason: Decision | None


class FlowLog:
    """What the packets of one walk share: their numbering, the copies that ended before they
    reached any capture point (`Trace.ended`), and by hop index the copies that went on from a
    hop to one of their own (`continued`) and those that ended on it without one (`pending`:
    verdict, reason, netns, device, packet id)."""

    def __init__(self) -> None:
        self.packets = 0
        self.ended: list[Ended] = []
        self.continued: dict[int, int] = {}
        self.pending: dict[int, list[tuple[str, Decision, str, str, int]]] = {}


class Flow:
    """One packet (or one copy of it) on its way: its skb metadata and its latest hop.

    `own` says whether `last` is a hop this flow recorded itself; a copy starts on the hop
    of the flow it was copied from, which it shares with its siblings."""

    __slots__ = ("log", "packet_id", "role", "last", "own", "early", "skb")

    def __init__(self, log: FlowLog, role: str, skb: Skb | None = None):
        self.log = log
        log.packets += 1
        self.packet_id = log.packets
        self.role = role
        self.last: _Draft | None = None
        self.own = False
        self.early: list[Decision] = []
        self.skb = skb or fresh_skb()

    def note(self, decision: Decision) -> None:
        """Record a decision on the hop where the kernel has the packet in hand."""
        if self.last is not None:
            self.last.decisions.append(decision)
        else:
            self.early.append(decision)

    def end(self, verdict: str, decision: Decision, netns: str = "", device: str = "") -> None:
        """The packet is delivered or dropped here, for the reason `decision` gives.

        `netns`/`device` name where it ended when that is not the device of its last hop (a
        copy dropped on its way to a port, a packet refused before it reached any device)."""
        d = decision
        self.note(d)
        last = self.last
        if last is not None and self.own:
            last.verdict = verdict
            last.reason = d
        elif last is not None:
            pending = self.log.pending
            ended = (verdict, d, netns or last.netns, device or last.device, self.packet_id)
            if last.index in pending:
                pending[last.index].append(ended)
            else:
                pending[last.index] = [ended]
        else:
            self.log.ended.append(Ended(self.packet_id, self.role, netns, device, verdict, d, None))

    def copy(self, skb: Skb | None = None) -> "Flow":
        other = Flow.__new__(Flow)
        other.log, other.packet_id, other.role = self.log, self.packet_id, self.role
        other.last, other.own, other.early = self.last, False, []
        other.skb = skb if skb is not None else self.skb.clone()
        return other
