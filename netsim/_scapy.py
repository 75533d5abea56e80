"""Lazy, quiet scapy import for on-demand dissection (scapy is the reference dissector).

In the reader's browser (Pyodide, a CPython built for `sys.platform == "emscripten"`) CPython
has no IPv6: `socket.has_ipv6` is False and `socket.inet_pton`/`inet_ntop` refuse AF_INET6.
scapy's VXLAN layer imports its IPv6 layer, which refuses to load without IPv6, and scapy's
field defaults convert "::" through `socket.inet_pton` while it loads. Converting an IPv6
address between text and bytes is pure arithmetic, so `_ipv6_for_import` gives the socket
module those two conversions (from `ipaddress`) and says IPv6 is there while scapy loads,
then puts `has_ipv6` back: afterwards scapy converts IPv6 addresses with its own pure-Python
code, as it does on any system without IPv6. Nothing here opens a socket.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from contextlib import contextmanager

_layers = None


def _give_ipv6_text_forms(sock) -> None:
    """`sock.inet_pton`/`inet_ntop` convert AF_INET6 with `ipaddress`; other families as before."""
    pton, ntop = sock.inet_pton, sock.inet_ntop
    if getattr(pton, "netsim_ipv6", False):
        return

    def inet_pton(family, text):
        if family != sock.AF_INET6:
            return pton(family, text)
        try:
            return ipaddress.IPv6Address(text).packed
        except ValueError:
            raise OSError("illegal IP address string passed to inet_pton") from None

    def inet_ntop(family, packed):
        if family != sock.AF_INET6:
            return ntop(family, packed)
        if len(packed) != 16:
            raise ValueError("invalid length of packed IP address string")
        return str(ipaddress.IPv6Address(bytes(packed)))

    inet_pton.netsim_ipv6 = True           # type: ignore[attr-defined]
    sock.inet_pton, sock.inet_ntop = inet_pton, inet_ntop


@contextmanager
def _ipv6_for_import(sock=socket):
    """While scapy loads, an interpreter without IPv6 (Pyodide) looks as if it had it."""
    if sock.has_ipv6:
        yield
        return
    _give_ipv6_text_forms(sock)
    sock.has_ipv6 = True
    try:
        yield
    finally:
        sock.has_ipv6 = False


def _load():
    global _layers
    if _layers is None:
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        if sys.platform == "emscripten":   # "Scapy currently does not support emscripten": no I/O is wanted
            logging.getLogger("scapy.loading").setLevel(logging.CRITICAL + 1)
        with _ipv6_for_import():
            from scapy.config import conf
            conf.route_autoload = False
            conf.route6_autoload = False
            conf.ipv6_enabled = False
            from scapy.layers import inet, l2, vxlan  # noqa: F401
        from scapy.packet import bind_layers
        from scapy.layers.inet import UDP
        from scapy.layers.vxlan import VXLAN
        bind_layers(UDP, VXLAN, dport=8472)
        _layers = (l2, inet)
    return _layers


def dissect(data: bytes, link_type: str = "ether"):
    l2, inet = _load()
    if link_type == "raw":
        return inet.IP(data)
    return l2.Ether(data)
