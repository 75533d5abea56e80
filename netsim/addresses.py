"""Addresses: parsing with clear errors, and the deterministic stand-ins for kernel randomness.

The kernel picks veth MACs, IP IDs, ephemeral ports and TCP initial sequence numbers at
random. netsim derives each from a stable hash of names and flow tuples instead (never
Python's salted `hash()`), so a trace has the same bytes on every run and under any
PYTHONHASHSEED, while keeping the properties a reader can check: MACs are locally
administered unicast, ports fall in `ip_local_port_range`, IDs rise per destination.
"""

from __future__ import annotations

import hashlib
import zlib
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from .errors import ConfigError


# How many entries a memo keyed by a flow keeps (its ports, so each exchange is a new key):
# the records of a flow are asked for again within its exchange, and every exchange makes new
# flows, so a memo that kept thousands only grew with every trace, and a bigger heap made each
# later collection, and the trace after it, slower (20,000 objects: +0.12 ms a trace).
FLOW_MEMO = 64


@lru_cache(maxsize=4 * FLOW_MEMO)   # the IDs, ports and hashes of a trace's few flows, asked for again
def stable_hash(*parts: object) -> int:
    """A 32-bit hash of the parts that is the same in every process."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def derive_mac(*parts: object) -> str:
    """A locally administered unicast MAC derived from names (like flannel's VTEP MAC rule:
    multicast bit cleared, local bit set)."""
    digest = bytearray(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFE) | 0x02
    return digest.hex(":")


# Parsing is remembered: a cluster build and every trace parse the same few texts again and
# again, and the results are immutable.
_address = lru_cache(maxsize=1 << 16)(IPv4Address)
_interface = lru_cache(maxsize=1 << 16)(IPv4Interface)
_network = lru_cache(maxsize=1 << 16)(IPv4Network)


def _need_text(text: object, what: str, example: str) -> None:
    if not isinstance(text, (str, IPv4Address, IPv4Network, IPv4Interface)):
        raise ConfigError(f"{what} {text!r} must be a string such as {example!r}, not {type(text).__name__}")


def parse_address(text: str, what: str = "address") -> IPv4Address:
    _need_text(text, what, "10.244.0.2")
    try:
        return _address(str(text).strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not an IPv4 address (expected dotted quad, e.g. 10.244.0.2)") from None


def parse_interface(text: str, what: str = "address") -> IPv4Interface:
    """An address with prefix, as `ip addr add` takes it ("10.244.0.1/24")."""
    _need_text(text, what, "10.244.0.1/24")
    if "/" not in str(text):
        raise ConfigError(f"{what} {text!r} needs a prefix length, e.g. {text}/24")
    try:
        return _interface(str(text).strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a valid IPv4 address/prefix (e.g. 10.244.0.1/24)") from None


def parse_network(text: str, what: str = "network") -> IPv4Network:
    """A network as `ip route` takes it; "default" is 0.0.0.0/0. Host bits must be zero."""
    _need_text(text, what, "10.244.0.0/16")
    text = str(text).strip()
    if text == "default":
        return IPv4Network("0.0.0.0/0")
    try:
        return _network(text if "/" in text else f"{text}/32")
    except ValueError as exc:
        if "has host bits set" in str(exc):
            net = IPv4Network(text, strict=False)
            raise ConfigError(f"{what} {text!r} has host bits set; did you mean {net}?") from None
        raise ConfigError(f"{what} {text!r} is not a valid IPv4 network (e.g. 10.244.0.0/16)") from None


# Ranges no cluster network may use (IANA special-purpose registry, RFC 6890), with what the
# kernel does with them: ip_route_input_slow() (net/ipv4/route.c) drops packets from or to
# 0.0.0.0/8, loopback and multicast sources as martians and never forwards loopback; 255.255.255.255
# is the limited broadcast; 169.254.0.0/16 is link-local, which RFC 3927 section 7 forbids
# routers to forward; 240.0.0.0/4 is reserved.
SPECIAL_RANGES = (
    (IPv4Network("0.0.0.0/8"), "0.0.0.0/8 ('this network', a martian to the kernel)"),
    (IPv4Network("127.0.0.0/8"), "loopback 127.0.0.0/8 (never leaves a host)"),
    (IPv4Network("169.254.0.0/16"), "link-local 169.254.0.0/16 (routers do not forward it, RFC 3927)"),
    (IPv4Network("224.0.0.0/4"), "multicast 224.0.0.0/4"),
    (IPv4Network("240.0.0.0/4"), "reserved 240.0.0.0/4, with the broadcast address 255.255.255.255"),
)


def check_unicast_network(net: IPv4Network, what: str) -> IPv4Network:
    """`net` if none of it is special-purpose address space (SPECIAL_RANGES)."""
    for special, words in SPECIAL_RANGES:
        if net.overlaps(special):
            raise ConfigError(f"{what} {net} overlaps {words}; use private unicast space such as 10.0.0.0/8, "
                              f"172.16.0.0/12 or 192.168.0.0/16")
    return net
