"""dig (BIND 9.18, bind9-dnsutils): its options, its queries and its output, as text from records.

What dig does (checked against dig 9.18.49 on this machine, tests/test_lab_programs.py):
- One query to the server named with `@server` (else the first nameserver of resolv.conf), port
  53 or `-p`. The name is absolute: `dig web` asks for `web.`; `+search` applies resolv.conf's
  search list when the name has fewer dots than ndots, moving to the next name on NXDOMAIN and
  ending with the name as it is; only the last answer is printed.
- The query: RD and AD set, EDNS0 with UDP size 1232 and an 8-byte client COOKIE (`+noedns`
  leaves OPT out, `+nocookie` the cookie). dig picks ID and cookie at random; netsim hashes them.
- UDP unless `+tcp` (two-byte length prefix). A reply with TC: ";; Truncated, retrying in TCP
  mode." and the same query over TCP.
- No reply within `+timeout` (5 s) is retried until `+tries` (3) are used, each failure printed
  ";; communications error to SERVER#PORT: timed out" (or "connection refused" after ICMP port
  unreachable); when none is left, ";; no servers could be reached" and exit status 9.
- The output: the banner with the arguments as given, "; (1 server found)" after an explicit
  `@server`, the header, flags and counts, ";; WARNING: recursion requested but not available"
  when RD got no RA, the mDNS warning for names under .local, the OPT pseudo-section, the
  sections with BIND's column layout (owner to column 24, TTL to 32, class to 40, type to 48;
  one space when a field is already past its column), then query time, server, date and size.
  `+short` prints only the answers' data. NXDOMAIN is still exit status 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..addresses import parse_address, stable_hash
from ..errors import ConfigError, UsageError
from .dns import (
    CLASS_NAMES, NXDOMAIN, OPCODE_NAMES, RCODE_NAMES, TYPE_A, TYPE_NAMES, TYPE_NUMBERS, TYPE_OPT, TYPE_PTR, Message,
    ResourceRecord, check_name, opt_record, query, tcp_frame, tcp_unframe,
)
from .events import (
    Action, CancelTimer, Close, Connect, Connected, ConnectionReset, DataReceived, DatagramReceived, Done, Event,
    Open, PeerClosed, Program, Send, SetTimer, SocketError, SocketOptions, Started, TimerFired,
)
from .resolver import ResolvConf

DIG_VERSION = "9.18.49-1~deb12u3-Debian"          # `dig -v` on the test machine (Debian 12)
USAGE = ("Usage:  dig [@global-server] [domain] [q-type] [q-class] {q-opt}\n"
         "            {global-d-opt} host [@local-server] {local-d-opt}\n"
         "            [ host [@local-server] {local-d-opt} [...]]\n")
FLAG_ORDER = ("qr", "aa", "tc", "rd", "ra", "ad", "cd")


class DigUsageError(UsageError):
    """A command line dig refuses: `text` is what dig prints, `status` its exit status."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text.rstrip("\n"))
        self.text, self.status = text, status


@dataclass(frozen=True)
class DigOptions:
    name: str
    qtype: int = TYPE_A
    server: str | None = None
    port: int = 53
    tcp: bool = False
    search: bool = False
    short: bool = False
    edns: bool = True
    cookie: bool = True
    recurse: bool = True
    tries: int = 3
    timeout: int = 5
    args: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _number(option: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise DigUsageError(f"Invalid option: {option}\n{USAGE}", 1)
    return int(value)


def reverse_name(address: str) -> str:
    return ".".join(reversed(str(parse_address(address, "dig -x address")).split("."))) + ".in-addr.arpa."


def parse_dig_args(argv: list[str] | tuple[str, ...]) -> DigOptions:
    """dig's command line (the subset netsim runs); refusals as dig prints them."""
    args = tuple(argv)
    opts: dict[str, object] = {}
    names: list[str] = []
    warnings: list[str] = []
    qtype: int | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("@"):
            opts["server"] = arg[1:]
        elif arg.startswith("+"):
            key, _, value = arg[1:].partition("=")
            flag = not key.startswith("no")
            word = key[2:] if not flag else key
            if word in ("tcp", "vc"):
                opts["tcp"] = flag
            elif word == "search":
                opts["search"] = flag
            elif word == "short":
                opts["short"] = flag
            elif word == "edns" and not value:
                opts["edns"] = flag
            elif word == "cookie" and not value:
                opts["cookie"] = flag
            elif word in ("recurse", "rec"):
                opts["recurse"] = flag
            elif word == "tries" and flag:
                opts["tries"] = max(_number(arg, value, 0, 255), 1)
            elif word == "retry" and flag:
                opts["tries"] = _number(arg, value, 0, 255) + 1
            elif word == "timeout" and flag:
                opts["timeout"] = max(_number(arg, value, 0, 4294967), 1)
            else:
                raise DigUsageError(f"Invalid option: {arg}\n{USAGE}", 1)
        elif arg in ("-p", "-t", "-x"):
            if i + 1 >= len(args):
                raise DigUsageError(f"dig: option requires an argument -- '{arg[1]}'\n{USAGE}", 1)
            value = args[i + 1]
            i += 1
            if arg == "-p":
                opts["port"] = _number(f"-p {value}", value, 0, 65535)
            elif arg == "-t":
                if value.upper() in TYPE_NUMBERS:
                    qtype = TYPE_NUMBERS[value.upper()]
                else:
                    warnings.append(f";; Warning, ignoring invalid type {value}")
            else:
                try:
                    names.append(reverse_name(value))
                except ConfigError:
                    raise DigUsageError(f"dig: '{value}' is not a legal IPv4 address\n", 10) from None
                qtype = TYPE_PTR
        elif arg.startswith("-"):
            raise DigUsageError(f"Invalid option: {arg}\n{USAGE}", 1)
        elif arg.upper() in TYPE_NUMBERS and names:
            qtype = TYPE_NUMBERS[arg.upper()]
        elif arg.upper() == "IN" and names:
            pass
        else:
            names.append(arg)
        i += 1
    if len(names) > 1:
        raise UsageError(f"netsim's dig asks one name per run; got {len(names)}: {' '.join(names)}")
    name = names[0] if names else "."
    try:
        check_name(name)
    except ConfigError:
        raise DigUsageError(f"dig: '{name}' is not a legal name (empty label)\n", 10) from None
    return DigOptions(name=name, qtype=qtype or TYPE_A, args=args, warnings=tuple(warnings),
                      **opts)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the program


@dataclass(frozen=True)
class DigResult:
    """What dig printed about: the last query and its reply (None: no server answered), the
    notes it printed before the answer, and times (ms) and sizes."""

    options: DigOptions
    server: str
    query: Message
    reply: Message | None = None
    proto: str = "udp"
    reply_size: int = 0
    query_time_ms: int = 0
    when: str = ""
    notes: tuple[str, ...] = ()
    status: int = 0
    names_tried: tuple[str, ...] = field(default=())


def when_text(epoch_seconds: float) -> str:
    """dig's ";; WHEN:" date (strftime "%a %b %d %H:%M:%S %Z %Y" in UTC)."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch_seconds))


BIND_MAXSEG = 1280 - 20 - 40          # NM_MAXSEG: the IPv6 minimum MTU less the IPv6 and TCP headers


class Dig(Program):
    """dig as a sans-IO client: sockets "dig1", "dig2", ... one per try."""

    name = "dig"

    def __init__(self, options: DigOptions, conf: ResolvConf | None = None, seed: str = "",
                 epoch: float = 0.0) -> None:
        super().__init__()
        self.options, self.conf, self.seed, self.epoch = options, conf or ResolvConf(), seed, epoch
        if options.server is not None:
            self.server = str(parse_address(options.server, "dig server"))
        elif self.conf.nameservers:
            self.server = self.conf.nameservers[0]
        else:
            raise ConfigError("dig has no server: give @server or a resolv.conf with a nameserver")
        self.names = self.origins()
        self.index = 0
        self.try_no = 0
        self.sock_no = 0
        self.sock = ""
        self.proto = "tcp" if options.tcp else "udp"
        self.notes: list[str] = list(options.warnings)
        self.stream = b""
        self.sent_at = 0
        self.current: Message | None = None

    def origins(self) -> list[str]:
        """The names dig asks, in order (+search: search list first when dots < ndots)."""
        name = self.options.name
        if name.endswith(".") or not self.options.search:
            return [check_name(name)]
        if name.count(".") >= self.conf.ndots:
            return [check_name(name)]
        return [check_name(f"{name}.{domain}") for domain in self.conf.search] + [check_name(name)]

    def make_query(self) -> Message:
        name = self.names[self.index]
        ident = stable_hash("dig-id", self.seed, name, self.index, self.try_no) & 0xFFFF
        edns = None
        if self.options.edns:
            cookie = stable_hash("dig-cookie", self.seed, name).to_bytes(4, "big") * 2 if self.options.cookie else None
            edns = opt_record(1232, cookie)
        return query(ident, name, self.options.qtype, rd=self.options.recurse, ad=True, edns=edns)

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return self.send_try(event.at)
        if getattr(event, "sock", getattr(event, "name", None)) != self.sock:
            return []
        if isinstance(event, Connected) and self.proto == "tcp":
            assert self.current is not None
            self.sent_at = event.at
            return [Send(self.sock, tcp_frame(self.current.to_bytes()))]
        if isinstance(event, DatagramReceived):
            return self.take(event.data, event.at)
        if isinstance(event, DataReceived):
            messages, self.stream = tcp_unframe(self.stream + event.data)
            return self.take(messages[0], event.at) if messages else []
        if isinstance(event, SocketError) and event.errno == "ECONNREFUSED":
            return self.failed("connection refused", event.at)
        if isinstance(event, (TimerFired, PeerClosed, ConnectionReset)):
            return self.failed("timed out", event.at)
        return []

    def send_try(self, at: int) -> list[Action]:
        self.try_no += 1
        self.sock_no += 1
        self.sock = f"dig{self.sock_no}"
        self.current = self.make_query()
        self.sent_at = at
        self.stream = b""
        timer = SetTimer(self.sock, self.options.timeout * 1_000_000)
        # BIND's netmgr (lib/isc/netmgr) turns path MTU discovery off on its UDP sockets
        # (isc__nm_socket_disable_pmtud: IP_MTU_DISCOVER = IP_PMTUDISC_OMIT, so no DF) and sets
        # TCP_MAXSEG to NM_MAXSEG (1280 - 40 - 20 = 1220) on its TCP sockets before connecting:
        # measured in tests/test_lab_dns.py (DF clear; SYN with MSS 1220, window 64660)
        opts = SocketOptions(pmtudisc="omit") if self.proto == "udp" else SocketOptions(maxseg=BIND_MAXSEG)
        opened: list[Action] = [Open(self.sock, self.proto, opts), Connect(self.sock, self.server, self.options.port)]
        if self.proto == "tcp":
            return opened + [timer]
        return opened + [Send(self.sock, self.current.to_bytes()), timer]

    def take(self, raw: bytes, at: int) -> list[Action]:
        assert self.current is not None
        try:
            reply = Message.from_bytes(raw)
        except ConfigError:
            return []
        if reply.id != self.current.id or not reply.qr:
            return []
        closing: list[Action] = [CancelTimer(self.sock), Close(self.sock)]
        if reply.tc and self.proto == "udp":
            self.notes.append(";; Truncated, retrying in TCP mode.")
            self.proto = "tcp"
            self.try_no = 0
            return closing + self.send_try(at)
        if reply.rcode == NXDOMAIN and self.index + 1 < len(self.names):
            self.index += 1
            self.try_no = 0
            return closing + self.send_try(at)
        result = DigResult(self.options, self.server, self.current, reply, self.proto, len(raw),
                           (at - self.sent_at) // 1000, when_text(self.epoch + at / 1e6), tuple(self.notes), 0,
                           tuple(self.names[:self.index + 1]))
        return closing + [Done(result, 0)]

    def failed(self, why: str, at: int) -> list[Action]:
        port = self.options.port
        if self.proto == "tcp":
            self.notes.append(f";; Connection to {self.server}#{port}({self.server}) for {self.options.name} failed: "
                              f"{why}.")
            self.notes.append(";; no servers could be reached")
        else:
            self.notes.append(f";; communications error to {self.server}#{port}: {why}")
        closing: list[Action] = [CancelTimer(self.sock), Close(self.sock)]
        if self.try_no < self.options.tries:
            return closing + self.send_try(at)
        assert self.current is not None
        result = DigResult(self.options, self.server, self.current, None, self.proto, 0, 0,
                           when_text(self.epoch + at / 1e6), tuple(self.notes), 9, tuple(self.names[:self.index + 1]))
        return closing + [Done(result, 9)]


# ------------------------------------------------------------------------------ the output


def indent(current: int, to: int) -> tuple[str, int]:
    """BIND masterdump.c `indent()`: tabs (width 8) then spaces up to column `to`, at least one."""
    to = max(to, current + 1)
    tabs = to // 8 - current // 8
    text = ""
    if tabs > 0:
        text = "\t" * tabs
        current = (to // 8) * 8
    return text + " " * (to - current), to


def columns(fields: list[tuple[str, int]]) -> str:
    """Fields each followed by an indent to the next one's column (the last has none)."""
    out, col = "", 0
    for i, (text, _column) in enumerate(fields):
        out += text
        col += len(text)
        if i + 1 < len(fields):
            pad, col = indent(col, fields[i + 1][1])
            out += pad
    return out


def rdata_text(rr: ResourceRecord) -> str:
    text = getattr(rr.data, "text", None)
    return text() if callable(text) else ""


def record_line(rr: ResourceRecord) -> str:
    return columns([(rr.name, 0), (str(rr.ttl), 24), (CLASS_NAMES.get(rr.rclass, f"CLASS{rr.rclass}"), 32),
                    (TYPE_NAMES.get(rr.type, f"TYPE{rr.type}"), 40), (rdata_text(rr), 48)])


def question_line(m: Message) -> str:
    q = m.question
    return columns([(";" + q.name, 0), (CLASS_NAMES.get(q.qclass, str(q.qclass)), 32),
                    (TYPE_NAMES.get(q.qtype, f"TYPE{q.qtype}"), 40)])


def opt_lines(reply: Message, sent_cookie: bytes | None) -> list[str]:
    edns = reply.edns
    if edns is None:
        return []
    flags = "do" if edns.do else ""
    lines = [";; OPT PSEUDOSECTION:", f"; EDNS: version: {edns.version}, flags:{flags}; udp: {edns.udp_size}"]
    for option in edns.options:
        if option.code == 10:
            note = "echoed" if option.data == sent_cookie else ("good" if len(option.data) > 8 else "bad")
            lines.append(f"; COOKIE: {option.data.hex()} ({note})")
    return lines


def format_dig(result: DigResult) -> str:
    """The text dig prints (stdout, with dig's own notes where it prints them)."""
    opts = result.options
    if result.reply is None:
        lines = list(n for n in result.notes)
        if result.proto == "udp":
            lines += ["", f"; <<>> DiG {DIG_VERSION} <<>> {' '.join(opts.args)}"]
            if opts.server is not None:
                lines.append("; (1 server found)")
            lines += [";; global options: +cmd", ";; no servers could be reached"]
        return "\n".join(lines) + "\n"
    reply = result.reply
    notes = [n for n in result.notes if not n.startswith(";; Warning, ignoring")]
    if opts.short:
        return "".join(rdata_text(rr) + "\n" for rr in reply.answers)
    lines = notes + ["", f"; <<>> DiG {DIG_VERSION} <<>> {' '.join(opts.args)}"]
    if opts.server is not None:
        lines.append("; (1 server found)")
    lines += [";; global options: +cmd", ";; Got answer:"]
    if reply.questions and (reply.question.name.lower().endswith(".local.") or reply.question.name.lower() == "local."):
        lines += [";; WARNING: .local is reserved for Multicast DNS",
                  ";; You are currently testing what happens when an mDNS query is leaked to DNS"]
    status = RCODE_NAMES.get(reply.rcode, str(reply.rcode))
    lines.append(f";; ->>HEADER<<- opcode: {OPCODE_NAMES.get(reply.opcode, reply.opcode)}, status: {status}, "
                 f"id: {reply.id}")
    flags = " ".join(f for f in FLAG_ORDER if getattr(reply, f))
    lines.append(f";; flags: {flags}; QUERY: {len(reply.questions)}, ANSWER: {len(reply.answers)}, "
                 f"AUTHORITY: {len(reply.authority)}, ADDITIONAL: {len(reply.additional)}")
    if result.query.rd and not reply.ra:
        lines.append(";; WARNING: recursion requested but not available")
    lines.append("")
    sent = result.query.edns
    sent_cookie = next((o.data for o in sent.options if o.code == 10), None) if sent else None
    opt = opt_lines(reply, sent_cookie)
    lines += opt
    lines += [";; QUESTION SECTION:", question_line(reply), ""]
    for title, section in (("ANSWER", reply.answers), ("AUTHORITY", reply.authority),
                           ("ADDITIONAL", tuple(rr for rr in reply.additional if rr.type != TYPE_OPT))):
        if section:
            lines += [f";; {title} SECTION:"] + [record_line(rr) for rr in section] + [""]
    lines += [f";; Query time: {result.query_time_ms} msec",
              f";; SERVER: {result.server}#{opts.port}({result.server}) ({result.proto.upper()})",
              f";; WHEN: {result.when}", f";; MSG SIZE  rcvd: {result.reply_size}", ""]
    return "\n".join(lines) + "\n"


def dig_stderr(result: DigResult) -> str:
    """What dig writes to stderr: its warnings about the command line."""
    return "".join(n + "\n" for n in result.notes if n.startswith(";; Warning, ignoring"))
