"""`Cluster.inject`: a frame a reader crafts (with scapy, or as bytes) written to a packet socket
bound to one device of one host, walked from that device on.

What the kernel does with such a write (net/packet/af_packet.c, `packet_snd`): the device must
be up (else ENETDOWN) and the frame no longer than the device's MTU plus its link-layer header
(else EMSGSIZE); the frame is handed to `dev_queue_xmit` as it is, with no route lookup and no
netfilter hook in the sending namespace, so captures on that device see it leave and the device
sends it on (a veth to its peer, a bridge port to its bridge, flannel.1 into VXLAN...). netsim
checks the same and raises its own errors naming the value, and refuses a frame it would not
put on the wire byte for byte as given (it encodes every header itself: a checksum, an IP
option or padding it does not model is named, not silently changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError, UsageError
from ..packet import ETHERNET_HEADER, Ethernet, IPv4, parse_ethernet, parse_ipv4
from ..trace import Trace

if TYPE_CHECKING:  # pragma: no cover
    from .dns import Cluster

RAW_IP_KINDS = ("tun",)          # devices without a link-layer header (ARPHRD_NONE): the frame is an IPv4 packet


def frame_bytes(packet: object) -> bytes:
    """The bytes of a scapy packet (or bytes as they are)."""
    if isinstance(packet, (bytes, bytearray)):
        return bytes(packet)
    try:
        from scapy.packet import Packet
    except ImportError:  # pragma: no cover - scapy is a dependency
        Packet = None  # type: ignore[assignment,misc]
    if Packet is not None and isinstance(packet, Packet):
        return bytes(packet)
    raise UsageError(f"inject: packet {packet!r} must be a scapy packet (Ether()/IP()/...) or bytes")


def inject(cluster: Cluster, host: str, device: str, packet: object, cold: bool = False) -> Trace:
    """Walk `packet` from `device` of `host` on (the module docstring)."""
    ns = cluster.netns(host)
    if not isinstance(device, str) or device not in ns.devices:
        raise ConfigError(f"inject: no device {device!r} in {host}; its devices are {', '.join(ns.devices)}")
    dev = ns.devices[device]
    raw = frame_bytes(packet)
    if not dev.up:
        raise ConfigError(f"inject on {host}/{device}: the device is down (packet_snd: ENETDOWN)")
    raw_ip = dev.kind in RAW_IP_KINDS
    header = 0 if raw_ip else ETHERNET_HEADER.size
    if len(raw) > dev.mtu + header:
        raise ConfigError(f"inject on {host}/{device}: a frame of {len(raw)} bytes is over the device's MTU "
                          f"{dev.mtu} plus its {header}-byte header (packet_snd: EMSGSIZE)")
    frame: Ethernet | IPv4
    try:
        frame = parse_ipv4(raw) if raw_ip else parse_ethernet(raw)
    except ConfigError as exc:
        raise ConfigError(f"inject on {host}/{device}: {exc}") from None
    except Exception as exc:         # a truncated header the parser cannot read
        raise ConfigError(f"inject on {host}/{device}: cannot read the frame {raw.hex()!r}: {exc}") from None
    again = frame.to_bytes()
    if again != raw:
        at = next((i for i, (a, b) in enumerate(zip(raw, again)) if a != b), min(len(raw), len(again)))
        raise ConfigError(f"inject on {host}/{device}: netsim would put this frame on the wire differently from "
                          f"byte {at} on (given {raw[at:at + 8].hex()!r}, netsim {again[at:at + 8].hex()!r}; "
                          f"{len(raw)} vs {len(again)} bytes): a checksum, an IP option or padding it does not "
                          f"model; let scapy fill checksums in and leave options out")
    title = f"inject on {host}/{device}: {len(raw)} bytes"
    return cluster.network.inject(ns.name, device, frame, cold=cold, title=title)
