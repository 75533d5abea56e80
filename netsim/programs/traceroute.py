"""traceroute (2.1.2, Debian 12's "modern traceroute for Linux"): probes, options and output.

What each probe is, measured with tcpdump on this machine (tests/test_programs_tools.py cites
the captures; traceroute's source is not in the reference corpus):
- Default (UDP): a new UDP socket per probe, connected, so each has its own ephemeral source
  port and IP ID; destination port 33434 + the probe's index (index = (ttl - first) * q + n,
  counted over the whole run; -p sets the base); TTL the hop; DF clear (IP_PMTUDISC_DONT; -F
  sets DF); the packet is `packetlen` bytes (60 by default, at least 28), the data byte i being
  0x40 + (i & 0x3f).
- -I (ICMP): one raw ICMP socket; echo requests with one identifier and sequence 1, 2, ... per
  probe; the data byte at ICMP offset i (counting the 8-byte header) is 0x40 + (i & 0x3f); IP
  IDs count up from the socket's first.
- -T (TCP): one raw TCP socket; a SYN per probe from a new source port to port 80 (-p sets it,
  the same for every probe), window 4 x MSS, options MSS (the route's MTU - 40), SACK permitted,
  timestamps, NOP, window scale 2: 60-byte packets whatever the length asked; IP IDs count up.
- Every probe socket has IP_RECVERR set (traceroute reads the ICMP errors about its probes
  from the socket's error queue).
- 16 probes in flight at most (-N 16): traceroute sends the first 16 at once (TTL 1 to 6 with
  3 per hop), then one more each time one is answered or given up, never past the hop where the
  destination answered; it prints hop by hop.
- A probe's answer: time exceeded (a router: the next hop); for UDP ICMP port unreachable from
  the target, for -I an echo reply, for -T a SYN-ACK or RST (the destination: the last hop);
  destination unreachable ends the trace with a mark: !N (net, net unknown, isolated, net TOS),
  !H (host, host unknown, host TOS), !X (prohibited: 9, 10, 13), !P (protocol), !F-<mtu>
  (fragmentation needed with -F), !S (source route), !V (precedence violation), !C (precedence
  cutoff), !<code> otherwise. No answer within -w seconds (5): "*".
- Output: "traceroute to NAME (ADDR), M hops max, L byte packets", then per hop "%2d " and per
  probe " NAME (ADDR)" when the address differs from the previous probe's of that hop (just
  " ADDR" with -n), "  T.TTT ms", " !X" marks, or " *".
Simplified: the wait per probe is -w MAX only (2.1's HERE and NEAR factors, 3 and 10 times a
nearby hop's time, are not modelled); names come from `names` (netsim has no reverse lookups yet).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..addresses import parse_address, stable_hash
from ..errors import UsageError
from ..packet import TCP, TCPOPT_MSS, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW, tcp_option_bytes
from .events import (
    Action, Close, Connect, DatagramReceived, Done, EchoReplyReceived, Event, Open, Program, SegmentReceived,
    Send, SendEcho, SendSegment, SetOptions, SetTimer, SocketError, SocketOptions, Started, TimerFired, CancelTimer,
)

DEFAULT_PORTS = {"udp": 33434, "icmp": 1, "tcp": 80}
HEADER_SIZE = {"udp": 28, "icmp": 28, "tcp": 60}
MAX_PACKET = 65000
TCP_WSCALE = 2


class TracerouteUsageError(UsageError):
    def __init__(self, text: str, status: int = 2) -> None:
        super().__init__(text)
        self.text, self.status = text, status


@dataclass(frozen=True)
class TracerouteOptions:
    destination: str
    method: str = "udp"
    first_ttl: int = 1
    max_ttl: int = 30
    queries: int = 3
    port: int | None = None
    wait_ms: int = 5000
    sim_queries: int = 16
    numeric: bool = False
    dont_fragment: bool = False
    packetlen: int | None = None

    @property
    def base_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.method]

    @property
    def length(self) -> int:
        """The probe's IP length: as asked, but never below the headers (TCP: always 60)."""
        if self.method == "tcp":
            return HEADER_SIZE["tcp"]
        return max(self.packetlen if self.packetlen is not None else 60, HEADER_SIZE[self.method])


def parse_traceroute_args(argv: list[str] | tuple[str, ...]) -> TracerouteOptions:
    args = list(argv)
    values: dict[str, object] = {}
    positional: list[tuple[int, str]] = []
    takes = {"f": ("first_ttl", "first hop out of range"), "m": ("max_ttl", ""), "q": ("queries", ""),
             "p": ("port", ""), "w": ("wait_ms", ""), "N": ("sim_queries", "")}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and len(arg) > 1:
            letter = arg[1]
            if letter in takes:
                value = arg[2:] or (args[i + 1] if i + 1 < len(args) else "")
                position = i + 1 if arg[2:] else i + 2
                if not arg[2:]:
                    i += 1
                _option(values, letter, value, position)
            elif arg == "-I":
                values["method"] = "icmp"
            elif arg == "-T":
                values["method"] = "tcp"
            elif arg == "-U":
                values["method"] = "udp"
            elif arg == "-n":
                values["numeric"] = True
            elif arg == "-F":
                values["dont_fragment"] = True
            else:
                raise TracerouteUsageError(f"Bad option `{arg}' (argc {i + 1})")
        else:
            positional.append((i + 1, arg))
        i += 1
    if not positional:
        raise TracerouteUsageError("Specify \"host\" missing argument.")
    host = positional[0][1]
    if len(positional) > 1:
        position, text = positional[1]
        if not text.isdigit():
            raise TracerouteUsageError(f"Cannot handle \"packetlen\" cmdline arg `{text}' on position 2 "
                                       f"(argc {position})")
        if int(text) > MAX_PACKET:
            raise TracerouteUsageError(f"too big packetlen {text} specified")
        values["packetlen"] = int(text)
    first, last = values.get("first_ttl", 1), values.get("max_ttl", 30)
    assert isinstance(first, int) and isinstance(last, int)
    if last > 255:
        raise TracerouteUsageError("max hops cannot be more than 255")
    if not 0 < first <= last:
        raise TracerouteUsageError("first hop out of range")
    queries = values.get("queries", 3)
    assert isinstance(queries, int)
    if not 1 <= queries <= 10:
        raise TracerouteUsageError("no more than 10 probes per hop")
    return TracerouteOptions(destination=host, **values)  # type: ignore[arg-type]


def _option(values: dict[str, object], letter: str, value: str, position: int) -> None:
    name = {"f": "first_ttl", "m": "max_ttl", "q": "queries", "p": "port", "w": "wait_ms", "N": "sim_queries"}[letter]
    if letter == "w":
        try:
            values[name] = int(float(value) * 1000)
            return
        except ValueError:
            pass
    elif value.isdigit():
        values[name] = int(value)
        return
    raise TracerouteUsageError(f"Cannot handle `-{letter}' option with arg `{value}' (argc {position})")


def udp_data(size: int) -> bytes:
    return bytes(0x40 + (i & 0x3F) for i in range(size))


def icmp_data(size: int) -> bytes:
    return bytes(0x40 + ((i + 8) & 0x3F) for i in range(size))


def tcp_syn_options(mss: int, tsval: int) -> bytes:
    """The SYN options traceroute -T writes (the order Linux uses, window scale 2)."""
    return (tcp_option_bytes(TCPOPT_MSS, mss) + tcp_option_bytes(TCPOPT_SACK_PERM)
            + tcp_option_bytes(TCPOPT_TIMESTAMP, tsval, 0) + tcp_option_bytes(TCPOPT_NOP)
            + tcp_option_bytes(TCPOPT_WINDOW, TCP_WSCALE))


# ------------------------------------------------------------------------------ the program


@dataclass(frozen=True)
class Probe:
    """One probe as sent: index (0-based over the run), TTL, ports or echo sequence."""

    index: int
    ttl: int
    proto: str
    dport: int = 0
    sport: int = 0
    seq: int = 0
    length: int = 60


@dataclass(frozen=True)
class ProbeAnswer:
    addr: str
    rtt_us: int
    mark: str = ""
    final: bool = False


@dataclass(frozen=True)
class TracerouteResult:
    options: TracerouteOptions
    address: str
    hostname: str
    hops: tuple[tuple[ProbeAnswer | None, ...], ...]
    probes: tuple[Probe, ...] = ()
    names: tuple[tuple[str, str], ...] = ()
    first_ttl: int = 1


class Traceroute(Program):
    """traceroute as a sans-IO client. Sockets: "p<index>" per UDP probe, "icmp" (-I) or "tcp"
    (-T) shared; timers "w<index>". `mtu` is the route's MTU (for -T's MSS option), `names`
    the reverse names to print."""

    name = "traceroute"

    def __init__(self, options: TracerouteOptions, mtu: int = 1450, ident: int = 0x4E54, seed: str = "",
                 names: dict[str, str] | None = None, hostname: str = "") -> None:
        super().__init__()
        self.options, self.mtu, self.ident, self.seed = options, mtu, ident, seed
        self.address = str(parse_address(options.destination, "traceroute destination"))
        self.hostname = hostname or self.address
        self.names = dict(names or {})
        q = options.queries
        self.total = (options.max_ttl - options.first_ttl + 1) * q
        self.last = self.total                  # probes past the destination's hop are not sent
        self.sent: dict[int, Probe] = {}
        self.sent_at: dict[int, int] = {}
        self.answers: dict[int, ProbeAnswer | None] = {}
        self.by_key: dict[tuple[str, int], int] = {}

    def probe(self, index: int) -> Probe:
        opts = self.options
        ttl = opts.first_ttl + index // opts.queries
        method, length = opts.method, opts.length
        if method == "udp":
            return Probe(index, ttl, method, dport=opts.base_port + index, length=length)
        if method == "icmp":
            return Probe(index, ttl, method, seq=opts.base_port + index, length=length)
        sport = 32768 + stable_hash("traceroute-T", self.seed, self.address, index) % 28232
        return Probe(index, ttl, method, dport=opts.base_port, sport=sport, length=length)

    def on_event(self, event: Event) -> list[Action]:
        opts = self.options
        if isinstance(event, Started):
            out: list[Action] = []
            if opts.method in ("icmp", "tcp"):
                out.append(Open(opts.method, "icmp" if opts.method == "icmp" else "raw-tcp",
                                SocketOptions(pmtudisc=self.pmtudisc, recverr=True)))
            return out + self.fill(event.at)
        if not isinstance(event, (TimerFired, SocketError, EchoReplyReceived, SegmentReceived, DatagramReceived)):
            return []
        index = self.match(event)
        if index is None or index in self.answers:
            return []
        at = event.at
        answer: ProbeAnswer | None = None
        if isinstance(event, SocketError) and event.origin == "icmp":
            answer = self.icmp_answer(event, at - self.sent_at[index])
        elif isinstance(event, (EchoReplyReceived, SegmentReceived, DatagramReceived)):
            src = event.src
            answer = ProbeAnswer(src, at - self.sent_at[index], "", True)
        elif isinstance(event, SocketError):
            return []                             # a local error: the probe waits out its timer
        return self.complete(index, answer, at)

    @property
    def pmtudisc(self) -> str:
        return "do" if self.options.dont_fragment else "dont"

    def match(self, event: Event) -> int | None:
        if isinstance(event, TimerFired) and event.name.startswith("w"):
            return int(event.name[1:])
        sock = getattr(event, "sock", "")
        if sock.startswith("p") and sock[1:].isdigit():
            return int(sock[1:])
        if isinstance(event, EchoReplyReceived) and event.ident == self.ident:
            return self.by_key.get(("icmp", event.seq))
        if isinstance(event, SegmentReceived):
            return self.by_key.get(("tcp", event.segment.dport))
        if isinstance(event, SocketError) and event.probe is not None:
            if event.probe.proto == "icmp":
                return self.by_key.get(("icmp", event.probe.seq))
            return self.by_key.get(("tcp", event.probe.sport))
        return None

    def icmp_answer(self, event: SocketError, rtt: int) -> ProbeAnswer:
        kind, code = event.icmp_type, event.icmp_code
        if kind == 11 and code == 0:
            return ProbeAnswer(event.offender, rtt)
        if kind == 3:
            marks = {0: "!N", 6: "!N", 8: "!N", 11: "!N", 1: "!H", 7: "!H", 12: "!H", 9: "!X", 10: "!X", 13: "!X",
                     3: "", 2: "!P", 4: f"!F-{event.info}", 5: "!S", 14: "!V", 15: "!C"}
            return ProbeAnswer(event.offender, rtt, marks.get(code, f"!<{code}>"), True)
        return ProbeAnswer(event.offender, rtt, f"!<{kind}-{code}>", True)

    def fill(self, at: int) -> list[Action]:
        """Send probes while fewer than -N are unanswered."""
        out: list[Action] = []
        while len(self.sent) < self.last and len(self.sent) - len(self.answers) < self.options.sim_queries:
            out += self.send(self.probe(len(self.sent)), at)
        return out

    def send(self, probe: Probe, at: int) -> list[Action]:
        self.sent[probe.index] = probe
        self.sent_at[probe.index] = at
        opts = SocketOptions(ttl=probe.ttl, pmtudisc=self.pmtudisc, recverr=True)
        timer = SetTimer(f"w{probe.index}", self.options.wait_ms * 1000)
        data_len = probe.length - 28
        if probe.proto == "udp":
            sock = f"p{probe.index}"
            return [Open(sock, "udp", opts), Connect(sock, self.address, probe.dport), Send(sock, udp_data(data_len)),
                    timer]
        if probe.proto == "icmp":
            self.by_key[("icmp", probe.seq)] = probe.index
            return [SetOptions("icmp", opts), SendEcho("icmp", self.address, self.ident, probe.seq,
                                                        icmp_data(data_len)), timer]
        self.by_key[("tcp", probe.sport)] = probe.index
        mss = self.mtu - 40
        tsval = stable_hash("traceroute-ts", self.seed) & 0xFFFFFFFF
        seq = stable_hash("traceroute-seq", self.seed, probe.index)
        syn = TCP(probe.sport, probe.dport, seq, 0, "S", 4 * mss, tcp_syn_options(mss, tsval))
        return [SetOptions("tcp", opts), SendSegment("tcp", self.address, syn), timer]

    def complete(self, index: int, answer: ProbeAnswer | None, at: int) -> list[Action]:
        self.answers[index] = answer
        out: list[Action] = [CancelTimer(f"w{index}")]
        if self.options.method == "udp":
            out.append(Close(f"p{index}"))
        q = self.options.queries
        if answer is not None and answer.final:
            self.last = min(self.last, (index // q + 1) * q)
        out += self.fill(at)
        if all(i in self.answers for i in range(self.last)):
            out += [Close(self.options.method)] if self.options.method != "udp" else []
            out.append(Done(self.build_result(), 0))
        return out

    def build_result(self) -> TracerouteResult:
        q = self.options.queries
        hops = tuple(tuple(self.answers.get(i) for i in range(h, h + q)) for h in range(0, self.last, q))
        return TracerouteResult(self.options, self.address, self.hostname, hops,
                                tuple(self.sent[i] for i in sorted(self.sent)), tuple(sorted(self.names.items())),
                                self.options.first_ttl)


# ------------------------------------------------------------------------------ the output


def format_traceroute(result: TracerouteResult) -> str:
    opts = result.options
    names = dict(result.names)
    lines = [f"traceroute to {result.hostname} ({result.address}), {opts.max_ttl} hops max, {opts.length} byte packets"]
    for n, hop in enumerate(result.hops):
        line = f"{result.first_ttl + n:2d} "
        previous = ""
        for answer in hop:
            if answer is None:
                line += " *"
                continue
            if answer.addr != previous:
                line += f" {answer.addr}" if opts.numeric else f" {names.get(answer.addr, answer.addr)} ({answer.addr})"
                previous = answer.addr
            line += f"  {answer.rtt_us / 1000:.3f} ms"
            if answer.mark:
                line += f" {answer.mark}"
        lines.append(line)
    return "\n".join(lines) + "\n"
