"""What REJECT makes the stack send, as net/ipv4/netfilter/nf_reject_ipv4.c sends it.

When a hook's verdict is REJECT, the target has already dropped the packet; xt_REJECT.c then
calls nf_send_reset() for `--reject-with tcp-reset`, which builds a RST from the rejected
segment and sends it with ip_local_out(), or nf_send_unreach() for every other type, which
hands the packet to icmp_send() with ICMP type 3 and the type's code. What the RST looks like
and whether anything is sent at all is decided in reject.py (nf_send_reset, nf_send_unreach);
icmp_send's own work (the source address, the IP ID, the quoted packet) is icmp.py's. This
module only sends, through the kernel interface (netsim/kernel.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..decision import IcmpReason
from ..packet import ICMP_DEST_UNREACH, IPv4
from .reject import nf_send_reset, nf_send_unreach

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..netns import Namespace
    from ..skb import Flow


def nf_reject(k: Kernel, ns: Namespace, packet: IPv4, how: tuple[int, int] | str | None, flow: Flow) -> None:
    """Answer a rejected packet (as the hook left it): `how` is "tcp-reset" or the ICMP
    (type, code) REJECT was given (HookResult.reject_with); the RST is a packet of its own
    (role "reply"), the ICMP error goes out as icmp_send sends any (IcmpReason.REJECTED)."""
    if how == "tcp-reset":
        rst = nf_send_reset(packet, ns.sysctl.ip_default_ttl)
        if rst is not None:
            k.ip_local_out(ns, rst, k.new_flow("reply"))
        return
    unreach = nf_send_unreach(packet, how if isinstance(how, tuple) else (ICMP_DEST_UNREACH, 3))
    if unreach is not None:
        k.icmp_send(ns, packet, unreach[0], unreach[1], flow, IcmpReason.REJECTED)
