"""What a socket call checks before any packet exists: the protocol, the ports, the payload.

The kernel refuses these at the system call, so no trace starts:
- a TCP or UDP port is 16 bits and port 0 is no destination: `connect()` to port 0 fails and
  `bind()` to port 0 means "pick an ephemeral port", so a port given explicitly must be
  1..65535 (netsim picks the ephemeral source port itself when `sport` is not given);
- one IPv4 packet carries at most 65535 bytes (the 16-bit total length), so a UDP datagram
  carries at most 65535 - 20 - 8 = 65507 bytes: `__ip_append_data()` (net/ipv4/ip_output.c)
  returns EMSGSIZE for more. netsim sends a TCP payload as one segment, whose header has the
  timestamp option Linux sends on every established segment (12 bytes), so at most
  65535 - 20 - 32 = 65483 bytes;
- ICMP echo has no ports and netsim's ping no payload: such arguments are refused rather than
  ignored.
"""

from __future__ import annotations

from .errors import ConfigError

PROTOCOLS = ("icmp", "tcp", "udp")
IPV4_MAX_TOTAL = 65535
IPV4_HEADER = 20
TRANSPORT_HEADER = {"udp": 8, "tcp": 20 + 12}        # TCP: base header and the timestamp option
MAX_PAYLOAD = {proto: IPV4_MAX_TOTAL - IPV4_HEADER - size for proto, size in TRANSPORT_HEADER.items()}


def check_port(value: object, what: str) -> int:
    """`value` as a port number 1..65535, or a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} {value!r} must be an integer 1..65535, not {type(value).__name__}")
    if value == 0:
        raise ConfigError(f"{what} 0 is out of range 1..65535: port 0 is not a port a packet can be sent to "
                          f"(the kernel reads it as 'any port')")
    if not 1 <= value <= 65535:
        raise ConfigError(f"{what} {value} is out of range 1..65535")
    return value


def check_protocol(proto: object) -> str:
    if not isinstance(proto, str) or proto not in PROTOCOLS:
        raise ConfigError(f"protocol {proto!r} is not one of {', '.join(PROTOCOLS)}")
    return proto


def check_send(proto: object, dport: object, sport: object, payload: object) -> None:
    """The arguments of one send, as `socket()`, `bind()`, `connect()` and `send()` check
    them: see the module docstring. `dport` is required for tcp and udp."""
    name = check_protocol(proto)
    if name == "icmp":
        for arg, value in (("dport", dport), ("sport", sport), ("payload", payload)):
            if value is not None:
                raise ConfigError(f"{arg}={value!r} does not apply to icmp (an echo request has no ports and "
                                  f"netsim's ping no payload); use proto='tcp' or 'udp', or leave {arg} out")
        return
    if dport is None:
        raise ConfigError(f"{name} needs a destination port (dport=)")
    check_port(dport, "destination port")
    if sport is not None:
        check_port(sport, "source port")
    if payload is None:
        return
    if not isinstance(payload, bytes):
        raise ConfigError(f"payload {payload!r:.40} must be bytes, not {type(payload).__name__} "
                          f"(e.g. b'hello' or 'hello'.encode())")
    limit = MAX_PAYLOAD[name]
    if len(payload) > limit:
        raise ConfigError(f"payload of {len(payload)} bytes does not fit in one IPv4 packet: {name} carries at "
                          f"most {limit} bytes (65535 - {IPV4_HEADER} IP - {TRANSPORT_HEADER[name]} "
                          f"{name.upper()} header bytes; sendmsg: Message too long)")
    if name == "tcp" and not payload:
        raise ConfigError("payload b'' sends no TCP segment; leave payload out for only the handshake")
