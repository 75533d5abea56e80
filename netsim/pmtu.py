"""The path MTU a namespace has learned: route exceptions, as `ip route get` shows them.

Kernel behaviour modelled (net/ipv4/route.c `__ip_rt_update_pmtu`, `update_or_create_fnhe`,
`rt_fill_info`; net/ipv4/icmp.c `icmp_unreach`):
- an ICMP "fragmentation needed" about a packet this namespace sent (or a local EMSGSIZE)
  lowers the path MTU to its destination: a route exception (struct fib_nh_exception) with
  the new MTU and an expiry `net.ipv4.route.mtu_expires` seconds (600) ahead; `ip route get`
  prints it as `cache expires 599sec mtu 1450` (the seconds left, rounded down);
- an exception never raises the MTU (a larger value is ignored, `old_mtu < mtu`); a value under
  `net.ipv4.route.min_pmtu` (552) is raised to it and the MTU is locked (DF no longer set);
- the same MTU again within the first half of the lifetime changes nothing;
- an expired exception is gone: the device MTU applies again;
- a router forwarding a packet uses its output device's MTU, never a learned one
  (`ip_dst_mtu_maybe_forward` with net.ipv4.ip_forward_use_pmtu = 0).
Neighbour and conntrack flushes (netsim's `cold` start) leave the exceptions alone, as
`ip neigh flush` and `conntrack -F` do on a real host; `ip route flush cache` clears them.
"""

from __future__ import annotations

from dataclasses import dataclass

US_PER_S = 1_000_000


@dataclass
class RouteException:
    """One destination's learned path MTU (fib_nh_exception: fnhe_pmtu, fnhe_expires, locked)."""

    dst: str
    mtu: int
    expires_us: int
    locked: bool = False

    def seconds_left(self, now_us: int) -> int:
        """What `ip route get` prints after `expires`: whole seconds left, rounded down
        (rt_fill_info's jiffies left, jiffies_to_clock_t, iproute2's `/ hz`)."""
        return max(0, (self.expires_us - now_us) // US_PER_S)


class RouteExceptions:
    """The exceptions of one namespace, by destination address."""

    def __init__(self) -> None:
        self.by_dst: dict[str, RouteException] = {}

    def __len__(self) -> int:
        return len(self.by_dst)

    def get(self, dst: str, now_us: int) -> RouteException | None:
        """The live exception for `dst`; an expired one is removed (rt_cache_valid fails)."""
        found = self.by_dst.get(dst)
        if found is not None and found.expires_us <= now_us:
            del self.by_dst[dst]
            return None
        return found

    def update(self, dst: str, mtu: int, current_mtu: int, now_us: int, expires_s: int,
               min_pmtu: int) -> RouteException | None:
        """__ip_rt_update_pmtu: learn `mtu` for `dst` whose path MTU is `current_mtu` now; the
        exception made or renewed, or None when nothing changed."""
        if current_mtu < mtu:
            return None
        locked = False
        if mtu < min_pmtu:
            locked = True
            mtu = min(current_mtu, min_pmtu)
        old = self.get(dst, now_us)
        expires_us = now_us + expires_s * US_PER_S
        if old is not None and old.mtu == mtu and not locked and now_us < old.expires_us - expires_s * US_PER_S // 2:
            return None
        exception = RouteException(dst, mtu, expires_us, locked)
        self.by_dst[dst] = exception
        return exception

    def flush(self) -> None:
        """`ip route flush cache`."""
        self.by_dst.clear()
