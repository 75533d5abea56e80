"""Lazy, quiet scapy import for on-demand dissection (scapy is the reference dissector)."""

from __future__ import annotations

import logging

_layers = None


def _load():
    global _layers
    if _layers is None:
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
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
