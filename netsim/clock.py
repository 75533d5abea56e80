"""The network's clock: what jiffies are to the kernel, in microseconds, and deterministic.

A walk starts at the network's clock and moves it on: `HOP_US` per capture point a frame
crosses (a stand-in for the time the kernels take; the same walk always takes the same time),
and a jump to the next timer when nothing is in flight (an ARP retry after `retrans_time`, a
delayed ACK, a retransmission, a program's own timer). What outlives a walk and expires (a
route exception's learned path MTU, net.ipv4.route.mtu_expires) is dated by this clock, so
`ip route get` after an exchange shows the time left as the kernel would.

The clock has no calendar: where a date is written, it is `EPOCH_US` plus the clock.
"""

from __future__ import annotations

HOP_US = 2                     # microseconds per capture point a frame crosses
# the date clock 0 stands for where a program writes one (kube-proxy's HTTP Date header):
# 2026-01-01T00:00:00Z, a fixed, obviously synthetic date, pcap.EPOCH_US's too (pcap.py imports
# nothing of the model, so it keeps its own copy; tests/test_health_check_server.py checks both agree)
EPOCH_US = 1_767_225_600 * 1_000_000


class Clock:
    """The time of a network, in microseconds since it was made."""

    __slots__ = ("us",)

    def __init__(self, us: int = 0) -> None:
        self.us = us

    def __repr__(self) -> str:
        return f"<Clock {self.us} us>"
