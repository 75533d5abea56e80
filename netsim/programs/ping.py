"""ping (iputils 20221126, Debian 12's iputils-ping): options, probes and output.

From iputils ping/ping.c and ping/ping_common.c (tag 20221126), checked against the binary:
- Options: -c count (1..LONG_MAX), -s data size (0..INT_MAX; 56 by default), -t ttl (0..255, but
  the kernel refuses IP_TTL 0: "cannot set unicast time-to-live: Invalid argument"), -M
  do|dont|want (IP_MTU_DISCOVER; without -M the socket keeps IP_PMTUDISC_WANT: DF when the packet
  fits the route's MTU), -Q tos (decimal or 0x hex, at most 255), -b (SO_BROADCAST), -i interval
  (1 s), -W linger (10 s), -q, -n. A number out of range: "ping: invalid argument: 'V': out of
  range: MIN <= value <= MAX", exit status 1; -M or -Q refused: exit status 2.
- With -b, or to a multicast group, IP_MTU_DISCOVER is IP_PMTUDISC_DO unless -M says otherwise.
- Before sending, ping connect()s a UDP socket to the target (port 1025) to learn the source
  (0.0.0.0 as the target becomes that source, 127.0.0.1: "PING 0.0.0.0 (127.0.0.1)"):
  EACCES there (a broadcast address, no -b) ends it with "Do you want to ping broadcast? Then -b.
  If not, check your local firewall rules", exit status 2; ENETUNREACH with "ping: connect:
  Network is unreachable".
- The ICMP socket has IP_RECVERR set (ping4_run), so every ICMP error about a probe and every
  local error (EMSGSIZE with the MTU) reaches ping.
- Each probe: ICMP echo request, identifier (ping's own; netsim's PING_ID), sequence from 1,
  data = a 16-byte struct timeval then bytes i & 0xFF for i = 16.. (no timeval, and no times,
  when the size is under 16). One per interval.
- A send the local stack drops with ENOBUFS (a veth whose peer's MTU is too small: the frame
  is dropped and veth_xmit's NET_XMIT_DROP comes back as ENOBUFS) is tried again after
  min(interval / 2, 500 ms), the same sequence number, until the failures (counted over the
  whole run, reset by a send that succeeds) reach the linger time; then "ping: sendmsg: No
  buffer space available" on stderr, the probe counts as transmitted (not as an error) and
  the next one follows after the interval (ping_common.c `pinger`). Measured on Linux 6.18 in
  tests/test_lab_sockets.py.
- What comes back, printed as ping prints it: "N bytes from A: icmp_seq=S ttl=T time=X ms"
  (N the ICMP length); an ICMP error about a probe: "From A icmp_seq=S <text>" (pr_icmph's
  texts); a local error (EMSGSIZE: the packet does not fit the route's MTU with DF, or is over
  65535 bytes): "ping: local error: message too long, mtu=M" on stderr. Errors count as "+N
  errors"; a probe is done when answered or errored.
- The statistics block (finish()): transmitted, received, +errors, loss ("%g%%"), time, rtt
  min/avg/max/mdev in microseconds printed as ms with three decimals (mdev: the integer square
  root of the variance), and "pipe N" when more than one probe was outstanding at once.
netsim's API refuses a size over 65507 (the largest that fits an IPv4 packet) as a UsageError
naming it; the ping program itself, like the real one, sends it and reports the local error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..addresses import parse_address
from ..endpoints import PING_ID
from ..errors import ConfigError, UsageError
from .events import (
    Action, CancelTimer, Close, Connect, Connected, Done, EchoReplyReceived, Event, Open, Program, SendEcho, SetTimer,
    SocketError, SocketOptions, Started, TimerFired,
)
from .socket_errors import strerror

DEFAULT_SIZE = 56
MAX_PAYLOAD = 65507                 # 65535 - 20 (IP) - 8 (ICMP)
LONG_MAX = 9223372036854775807
INT_MAX = 2147483647
TIMEVAL = 16                        # sizeof(struct timeval): ping's timestamp at the start of the data
MININTERVAL_MS = 10                 # ping.h MININTERVAL: SCHINT's floor
USAGE_LINE = "ping: usage error: Destination address required"

UNREACH_TEXT = {
    0: "Destination Net Unreachable", 1: "Destination Host Unreachable", 2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable", 5: "Source Route Failed", 6: "Destination Net Unknown",
    7: "Destination Host Unknown", 8: "Source Host Isolated", 9: "Destination Net Prohibited",
    10: "Destination Host Prohibited", 11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service", 13: "Packet filtered", 14: "Precedence Violation",
    15: "Precedence Cutoff",
}


class PingUsageError(UsageError):
    """A command line ping refuses: `text` is its stderr, `status` its exit status."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.text, self.status = text, status


@dataclass(frozen=True)
class PingOptions:
    destination: str
    count: int = 1
    size: int = DEFAULT_SIZE
    ttl: int | None = None
    tos: int = 0
    pmtudisc: str | None = None
    broadcast: bool = False
    interval_ms: int = 1000
    linger_ms: int = 10000
    quiet: bool = False


def _int(option: str, value: str, low: int, high: int) -> int:
    """strtol_or_err (iputils_common.c)."""
    try:
        number = int(value, 10) if value.strip() == value and value else None
    except ValueError:
        number = None
    if number is None:
        raise PingUsageError(f"ping: invalid argument: '{value}'", 1)
    if not -LONG_MAX - 1 <= number <= LONG_MAX:
        raise PingUsageError(f"ping: invalid argument: '{value}': Numerical result out of range", 1)
    if not low <= number <= high:
        raise PingUsageError(f"ping: invalid argument: '{value}': out of range: {low} <= value <= {high}", 1)
    return number


def _seconds(value: str, what: str) -> int:
    try:
        seconds = float(value)
    except ValueError:
        raise PingUsageError(f"ping: {what}: {value}", 2) from None
    if seconds < 0 or seconds > INT_MAX / 1000:
        raise PingUsageError(f"ping: {what}: {value}", 2)
    return int(seconds * 1000)


def parse_tos(value: str) -> int:
    """parsetos: decimal, or hex after 0x."""
    digits, base = (value[2:], 16) if value[:2].lower() == "0x" else (value, 10)
    try:
        tos = int(digits, base)
    except ValueError:
        raise PingUsageError(f"ping: bad TOS value: {value}", 2) from None
    if tos > 255:
        raise PingUsageError(f"ping: the decimal value of TOS bits must be in range 0-255: {tos}", 2)
    return tos


def parse_ping_args(argv: list[str] | tuple[str, ...]) -> PingOptions:
    """ping's getopt loop for the options netsim runs."""
    args = list(argv)
    values: dict[str, object] = {}
    rest: list[str] = []
    takes = set("cstMQiWw")
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            i += 1
            continue
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter in takes:
                value = arg[j + 1:] if j + 1 < len(arg) else (args[i + 1] if i + 1 < len(args) else None)
                if value is None:
                    raise PingUsageError(f"ping: option requires an argument -- '{letter}'", 2)
                if j + 1 >= len(arg):
                    i += 1
                _option(values, letter, value)
                break
            if letter == "b":
                values["broadcast"] = True
            elif letter == "q":
                values["quiet"] = True
            elif letter in "n4":
                pass
            else:
                raise PingUsageError(f"ping: invalid option -- '{letter}'", 2)
            j += 1
        i += 1
    if not rest:
        raise PingUsageError(USAGE_LINE, 1)
    if "count" not in values:
        raise UsageError("netsim's ping needs -c COUNT (the real one runs until interrupted)")
    return PingOptions(destination=rest[-1], **values)  # type: ignore[arg-type]


def _option(values: dict[str, object], letter: str, value: str) -> None:
    if letter == "c":
        values["count"] = _int("-c", value, 1, LONG_MAX)
    elif letter == "s":
        values["size"] = _int("-s", value, 0, INT_MAX)
    elif letter == "t":
        values["ttl"] = _int("-t", value, 0, 255)
    elif letter == "M":
        if value not in ("do", "dont", "want"):
            raise PingUsageError(f"ping: invalid -M argument: {value}", 2)
        values["pmtudisc"] = value
    elif letter == "Q":
        values["tos"] = parse_tos(value)
    elif letter == "i":
        values["interval_ms"] = _seconds(value, "bad timing interval")
    elif letter == "W":
        values["linger_ms"] = _seconds(value, "bad linger time")
    elif letter == "w":
        raise UsageError("netsim's ping does not take -w (deadline); use -c")


def api_options(destination: str, count: int = 1, size: int = DEFAULT_SIZE, ttl: int | None = None, tos: int = 0,
                pmtudisc: str | None = None, broadcast: bool = False) -> PingOptions:
    """PingOptions for netsim's API, whose limits are netsim's errors naming the value."""
    if not isinstance(size, int) or not 0 <= size <= MAX_PAYLOAD:
        raise UsageError(f"ping size {size!r} is out of range: 0 to {MAX_PAYLOAD} bytes of data fit an IPv4 packet "
                         f"(65535 - 20 - 8)")
    if not isinstance(count, int) or count < 1:
        raise UsageError(f"ping count {count!r} must be a whole number of at least 1")
    if ttl is not None and (not isinstance(ttl, int) or not 1 <= ttl <= 255):
        raise UsageError(f"ping ttl {ttl!r} must be 1 to 255")
    if pmtudisc not in (None, "do", "dont", "want"):
        raise UsageError(f"ping -M {pmtudisc!r}: use 'do', 'dont' or 'want'")
    if not isinstance(tos, int) or not 0 <= tos <= 255:
        raise UsageError(f"ping TOS {tos!r} must be 0 to 255")
    return PingOptions(str(parse_address(destination, "ping destination")), count, size, ttl, tos, pmtudisc,
                       broadcast)


def echo_data(size: int) -> bytes:
    """ping's data: the timeval (zeroed: netsim's clock is not a date), then i & 0xFF."""
    return bytes(min(size, TIMEVAL)) + bytes(i & 0xFF for i in range(TIMEVAL, size))


# ------------------------------------------------------------------------------ the program


@dataclass(frozen=True)
class PingReply:
    seq: int
    src: str
    size: int
    ttl: int
    rtt_us: int | None


@dataclass(frozen=True)
class PingError:
    """An ICMP error about a probe (origin "icmp") or a local error (origin "local")."""

    seq: int
    origin: str
    src: str = ""
    icmp_type: int = 0
    icmp_code: int = 0
    info: int = 0
    errno: str = ""


@dataclass(frozen=True)
class PingSendError:
    """A probe whose sendmsg() failed for good (a hard local error): printed, not counted."""

    seq: int
    errno: str


@dataclass(frozen=True)
class PingResult:
    options: PingOptions
    hostname: str
    address: str
    events: tuple[PingReply | PingError | PingSendError, ...] = ()
    transmitted: int = 0
    elapsed_ms: int = 0
    pipe: int = 1
    fatal: str = ""          # a message ping ends with before sending (stderr)
    warnings: tuple[str, ...] = ()
    status: int = 0

    @property
    def replies(self) -> tuple[PingReply, ...]:
        return tuple(e for e in self.events if isinstance(e, PingReply))

    @property
    def errors(self) -> tuple[PingError, ...]:
        return tuple(e for e in self.events if isinstance(e, PingError))

    @property
    def send_errors(self) -> tuple[PingSendError, ...]:
        return tuple(e for e in self.events if isinstance(e, PingSendError))


class Ping(Program):
    """ping as a sans-IO client: "probe" (the UDP socket connected to learn the route) and
    "icmp" (the raw ICMP socket); timers "tick" (the interval) and "linger"."""

    name = "ping"

    def __init__(self, options: PingOptions, ident: int = PING_ID, hostname: str = "") -> None:
        super().__init__()
        self.options, self.ident = options, ident
        try:
            self.address = str(parse_address(options.destination, "ping destination"))
        except ConfigError:
            raise UsageError(f"ping destination {options.destination!r}: netsim's ping takes an address; "
                             f"resolve names first (programs.resolver.Resolve)") from None
        self.hostname = hostname or self.address
        self.sent_at: dict[int, int] = {}
        self.acked: set[int] = set()
        self.events: list[PingReply | PingError | PingSendError] = []
        self.oom_count = 0          # sends failed with ENOBUFS, until one succeeds (pinger's static oom_count)
        self.last_failed = False
        self.start_us = 0
        self.last_us = 0
        self.pipe = 1
        self.warnings: list[str] = []

    def on_event(self, event: Event) -> list[Action]:
        opts = self.options
        if isinstance(event, Started):
            self.start_us = self.last_us = event.at
            if opts.ttl == 0:
                return self.fatal("ping: cannot set unicast time-to-live: Invalid argument")
            return [Open("probe", "udp", SocketOptions(tos=opts.tos, broadcast=False)),
                    Connect("probe", self.address, 1025)]
        if isinstance(event, SocketError) and event.sock == "probe":
            if event.errno == "EACCES" and not opts.broadcast:
                return self.fatal("ping: Do you want to ping broadcast? Then -b. If not, check your local firewall "
                                  "rules")
            if event.errno == "EACCES":
                self.warnings.append("WARNING: pinging broadcast address")
                return self.begin(event.at)
            return self.fatal(f"ping: connect: {strerror(event.errno)}")
        if isinstance(event, Connected) and event.sock == "probe":
            if self.address == "0.0.0.0" and event.local:
                self.address = event.local        # ping4_run: no destination is the source the route gave
            return self.begin(event.at)
        if isinstance(event, TimerFired) and event.name == "tick":
            if len(self.sent_at) < opts.count:
                self.last_us = event.at
                return self.send(event.at)
            return self.maybe_done(event.at, lingered=False)
        if isinstance(event, TimerFired) and event.name == "linger":
            return self.finish()
        if isinstance(event, EchoReplyReceived) and event.sock == "icmp" and event.ident == self.ident:
            rtt = event.at - self.sent_at[event.seq] if event.seq in self.sent_at and opts.size >= TIMEVAL else None
            self.events.append(PingReply(event.seq, event.src, event.size, event.ttl, rtt))
            self.acknowledge(event.seq)
            self.last_us = event.at
            return self.maybe_done(event.at)
        if isinstance(event, TimerFired) and event.name == "retry":
            return self.resend(event.at)
        if (isinstance(event, SocketError) and event.sock == "icmp" and event.origin == "local"
                and event.errno in ("ENOBUFS", "ENOMEM")):
            return self.no_buffer(event)
        if isinstance(event, SocketError) and event.sock == "icmp" and event.probe is not None:
            seq = event.probe.seq
            self.events.append(PingError(seq, event.origin, event.offender, event.icmp_type, event.icmp_code,
                                         event.info, event.errno))
            if event.origin == "icmp":
                self.acknowledge(seq)
            self.acked.add(seq)          # answered by an error, or refused at once: not outstanding
            self.last_us = event.at
            return self.maybe_done(event.at)
        return []

    def begin(self, at: int) -> list[Action]:
        opts = self.options
        pmtudisc = opts.pmtudisc
        if pmtudisc is None and (opts.broadcast or 224 <= int(self.address.split(".")[0]) <= 239):
            pmtudisc = "do"          # ping4_run: a broadcast (-b) or multicast ping does not fragment
        icmp = SocketOptions(ttl=opts.ttl, tos=opts.tos, pmtudisc=pmtudisc, broadcast=opts.broadcast, recverr=True)
        out: list[Action] = [Close("probe"), Open("icmp", "icmp", icmp)]
        return out + self.send(at)

    def send(self, at: int) -> list[Action]:
        self.sending()
        seq = len(self.sent_at) + 1
        self.sent_at[seq] = at
        return [SendEcho("icmp", self.address, self.ident, seq, echo_data(self.options.size)),
                SetTimer("tick", self.options.interval_ms * 1000)]

    def acknowledge(self, seq: int) -> None:
        """ping_common.c acknowledge(): an answer to `seq` while N probes were sent: the pipe
        (most probes outstanding at once) is at least N - seq + 1."""
        self.acked.add(seq)
        self.pipe = max(self.pipe, len(self.sent_at) - seq + 1)

    def no_buffer(self, event: SocketError) -> list[Action]:
        """pinger's ENOBUFS branch: try again soon, or give the probe up (a hard local error)."""
        interval = max(self.options.interval_ms, MININTERVAL_MS)
        retry_ms = min(interval // 2, 500)
        self.oom_count += 1
        self.last_failed = True
        self.last_us = event.at
        if self.oom_count * retry_ms < self.options.linger_ms:
            return [CancelTimer("tick"), SetTimer("retry", retry_ms * 1000)]
        self.events.append(PingSendError(len(self.sent_at), event.errno))
        return []

    def sending(self) -> None:
        """A send that was not refused resets the failure count (the refusal would have come
        back before any timer ran)."""
        if not self.last_failed:
            self.oom_count = 0
        self.last_failed = False

    def resend(self, at: int) -> list[Action]:
        """The same probe again (the sequence number did not advance)."""
        self.sending()
        seq = len(self.sent_at)
        self.sent_at[seq] = at
        return [SendEcho("icmp", self.address, self.ident, seq, echo_data(self.options.size)),
                SetTimer("tick", self.options.interval_ms * 1000)]

    def maybe_done(self, at: int, lingered: bool = True) -> list[Action]:
        done = len({e.seq for e in self.events if not isinstance(e, PingSendError)})
        if len(self.sent_at) >= self.options.count and done >= self.options.count:
            return self.finish()
        if len(self.sent_at) >= self.options.count and not lingered:
            return [SetTimer("linger", self.options.linger_ms * 1000)]
        return []

    def finish(self) -> list[Action]:
        received = any(isinstance(e, PingReply) for e in self.events)
        result = PingResult(self.options, self.hostname, self.address, tuple(self.events), len(self.sent_at),
                            (self.last_us - self.start_us + 500) // 1000, self.pipe, "", tuple(self.warnings),
                            0 if received else 1)
        return [Close("icmp"), Done(result, result.status)]

    def fatal(self, message: str) -> list[Action]:
        result = PingResult(self.options, self.hostname, self.address, fatal=message, status=2)
        return [Done(result, 2)]


# ------------------------------------------------------------------------------ the output


def ms(us: int) -> str:
    """The per-reply time as gather_statistics prints it (3, 2, 1 or 0 decimals by size)."""
    if us >= 100000 - 50:
        return f"{(us + 500) // 1000}"
    if us >= 10000 - 5:
        return f"{(us + 50) // 1000}.{((us + 50) % 1000) // 100}"
    if us >= 1000:
        return f"{(us + 5) // 1000}.{((us + 5) % 1000) // 10:02d}"
    return f"{us // 1000}.{us % 1000:03d}"


def llsqrt(value: int) -> int:
    """ping_common.c llsqrt: Newton's iteration, stopping when it no longer decreases."""
    prev, x = LONG_MAX, value
    if x > 0:
        while x < prev:
            prev = x
            x = (x + value // x) // 2
    return x


def loss_text(transmitted: int, received: int) -> str:
    """The loss as finish() prints it: a C float through "%g"."""
    loss = struct.unpack("f", struct.pack("f", (transmitted - received) * 100.0 / transmitted))[0]
    return f"{loss:g}"


def icmp_text(error: PingError) -> str:
    if error.icmp_type == 3:
        if error.icmp_code == 4:
            return f"Frag needed and DF set (mtu = {error.info})"
        return UNREACH_TEXT.get(error.icmp_code, f"Dest Unreachable, Bad Code: {error.icmp_code}")
    if error.icmp_type == 11:
        return {0: "Time to live exceeded", 1: "Frag reassembly time exceeded"}.get(
            error.icmp_code, f"Time exceeded, Bad Code: {error.icmp_code}")
    if error.icmp_type == 12:
        return f"Parameter problem: pointer = {error.info}"
    return f"Bad ICMP type: {error.icmp_type}"


def ping_lines(result: PingResult) -> list[tuple[str, str]]:
    """Every line ping writes, in order, as (stream, text): stream "out" or "err"."""
    lines: list[tuple[str, str]] = [("err", w) for w in result.warnings]
    if result.fatal:
        return lines + [("err", result.fatal)]
    opts = result.options
    lines.append(("out", f"PING {result.hostname} ({result.address}) {opts.size}({opts.size + 28}) bytes of data."))
    for e in result.events:
        if opts.quiet:
            continue
        if isinstance(e, PingReply):
            time_part = f" time={ms(e.rtt_us)} ms" if e.rtt_us is not None else ""
            lines.append(("out", f"{e.size} bytes from {e.src}: icmp_seq={e.seq} ttl={e.ttl}{time_part}"))
        elif isinstance(e, PingSendError):
            lines.append(("err", f"ping: sendmsg: {strerror(e.errno)}"))
        elif e.origin == "local":
            if e.errno == "EMSGSIZE":
                lines.append(("err", f"ping: local error: message too long, mtu={e.info}"))
            else:
                lines.append(("err", f"ping: local error: {strerror(e.errno)}"))
        else:
            lines.append(("out", f"From {e.src} icmp_seq={e.seq} {icmp_text(e)}"))
    lines += [("out", ""), ("out", f"--- {result.hostname} ping statistics ---")]
    replies, errors = result.replies, result.errors
    tx, rx = result.transmitted, len(replies)
    stats = f"{tx} packets transmitted, {rx} received"
    if errors:
        stats += f", +{len(errors)} errors"
    if tx:
        stats += f", {loss_text(tx, rx)}% packet loss, time {result.elapsed_ms}ms"
    lines.append(("out", stats))
    tail = []
    times = [r.rtt_us for r in replies if r.rtt_us is not None]
    if rx and times:
        total = len(times)
        tsum, tsum2 = sum(times), sum(t * t for t in times)
        avg = tsum // total
        var = (tsum2 - (tsum * tsum) // total) // total if tsum < INT_MAX else tsum2 // total - avg * avg
        mdev = llsqrt(var)
        tail.append(f"rtt min/avg/max/mdev = {min(times) // 1000}.{min(times) % 1000:03d}/{avg // 1000}."
                    f"{avg % 1000:03d}/{max(times) // 1000}.{max(times) % 1000:03d}/{mdev // 1000}.{mdev % 1000:03d} ms")
    if result.pipe > 1:
        tail.append(f"pipe {result.pipe}")
    lines.append(("out", ", ".join(tail)))
    return lines


def format_ping(result: PingResult) -> str:
    """ping's output as a terminal shows it (stderr lines in place)."""
    return "".join(text + "\n" for _stream, text in ping_lines(result))


def ping_stdout(result: PingResult) -> str:
    return "".join(text + "\n" for stream, text in ping_lines(result) if stream == "out")


def ping_stderr(result: PingResult) -> str:
    return "".join(text + "\n" for stream, text in ping_lines(result) if stream == "err")
