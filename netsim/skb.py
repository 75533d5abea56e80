"""Per-packet metadata that travels with a packet inside one namespace, like `struct sk_buff`.

The kernel keeps a packet's firewall mark and its conntrack reference in the skb, not in the
headers. Crossing a veth into another namespace scrubs both (`skb_scrub_packet`), and so does
VXLAN encapsulation for the conntrack reference: the outer packet is tracked as a new flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .conntrack import ConntrackEntry


@dataclass
class Skb:
    mark: int = 0
    ct: "ConntrackEntry | None" = None
    ct_reply: bool = False          # the packet travels in the entry's reply direction
    ct_state: str = ""              # NEW, ESTABLISHED, RELATED, INVALID ("" before conntrack)
    bridged: bool = False           # br_netfilter already ran PREROUTING on this packet
    hash: int | None = None         # skb->hash: the sending socket's flow hash, if any
    frag_max: int = 0               # IPCB frag_max_size: the largest fragment nf_defrag reassembled
    notes: list[str] = field(default_factory=list)

    def scrub(self) -> "Skb":
        """What survives a namespace crossing: only the flow hash."""
        return Skb(hash=self.hash)
