"""Independent checks of emitted bytes: a checksum verifier written from RFC 791/768/793/792
(not netsim's own code), and scapy as the reference dissector and builder."""

from __future__ import annotations

import struct

from netsim._scapy import dissect


def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def bad_checksums(data: bytes, link: str = "ether", where: str = "frame") -> list[str]:
    """Every invalid checksum in a frame (IPv4 header, ICMP, TCP, UDP), recursing into VXLAN
    and into the UDP backend's bare IP payload. A valid sum of a block including its checksum
    is 0xFFFF. An empty list means all checksums verify."""
    problems: list[str] = []
    if link == "ether":
        etype = struct.unpack("!H", data[12:14])[0]
        if etype != 0x0800:
            return problems
        data = data[14:]
    ihl = (data[0] & 0x0F) * 4
    total = struct.unpack("!H", data[2:4])[0]
    if _ones_sum(data[:ihl]) != 0xFFFF:
        problems.append(f"{where}: IPv4 header checksum")
    flags = struct.unpack("!H", data[6:8])[0]
    if flags & 0x3FFF:          # a fragment: the transport checksum covers the reassembled payload
        return problems
    proto = data[9]
    body = data[ihl:total]
    pseudo = data[12:20] + struct.pack("!BBH", 0, proto, len(body))
    if proto == 1 and _ones_sum(body) != 0xFFFF:
        problems.append(f"{where}: ICMP checksum")
    elif proto == 6 and _ones_sum(pseudo + body) != 0xFFFF:
        problems.append(f"{where}: TCP checksum")
    elif proto == 17:
        csum = struct.unpack("!H", body[6:8])[0]
        if csum != 0 and _ones_sum(pseudo + body) != 0xFFFF:
            problems.append(f"{where}: UDP checksum")
        dport = struct.unpack("!H", body[2:4])[0]
        payload = body[8:]
        if dport in (8472, 4789) and len(payload) > 8 and payload[0] & 0x08:
            problems += bad_checksums(payload[8:], "ether", where + " (inside VXLAN)")
        elif dport == 8285 and payload:
            problems += bad_checksums(payload, "raw", where + " (inside the udp backend)")
    return problems


def scapy_rebuild_matches(data: bytes, link: str = "ether") -> bool:
    """Dissect with scapy, delete every checksum field scapy would compute (outside quoted ICMP
    error payloads and fragments), rebuild, and compare with the original bytes."""
    pkt = dissect(data, link)
    clone = pkt.copy()
    layer = clone
    fragment = False
    while layer is not None and layer.name != "NoPayload":
        name = type(layer).__name__
        if name == "IP":
            del layer.chksum
            fragment = bool(layer.flags.MF) or layer.frag > 0
        elif name in ("TCP", "ICMP") and not fragment:
            del layer.chksum
            if name == "ICMP" and layer.type in (3, 11):
                break
        elif name == "UDP" and not fragment:
            if layer.chksum != 0:
                del layer.chksum
        layer = layer.payload if hasattr(layer, "payload") else None
    return bytes(clone) == data
