"""The stub resolver every pod has: /etc/resolv.conf as kubelet writes it, and glibc's lookups.

/etc/resolv.conf of a pod with dnsPolicy ClusterFirst (the default): kubelet's
`Configurer.GetPodDNS` (pkg/kubelet/network/dns/dns.go) takes the cluster DNS server (the
kube-dns Service's ClusterIP, kubelet's --cluster-dns) as the only nameserver, the search list
`<namespace>.svc.<domain> svc.<domain> <domain>` followed by the node's own search domains
(duplicates dropped), and the options `ndots:5` (`defaultDNSOptions`); the container runtime
writes the file in the order search, nameserver, options (containerd's resolv.conf writer).

glibc 2.36's resolver (resolv/res_query.c `__res_context_search` and `__res_context_query`,
resolv/res_send.c `send_dg`/`send_vc`), as getaddrinfo(AF_UNSPEC) drives it, and as the lab
saw it on this machine (tests/test_programs_dns.py names each measured sequence):
- The names tried: with a trailing dot, the name alone. Otherwise, if it has at least `ndots`
  dots, the name as it is first; then the name with each search domain appended, in order; then
  the name as it is, unless already tried.
- For each name: a new UDP socket connected to the nameserver, the A and the AAAA query sent back
  to back on it, each with its own query ID (res_randomid; netsim derives IDs from a hash);
  RD set, no EDNS (unless `options edns0`). The resolver waits for both answers.
- A reply with TC: both queries again over one TCP connection (two-byte length prefix each).
- SERVFAIL, NOTIMP or REFUSED: the pair is sent again on the same socket until `attempts`
  (default 2) tries are used up; no reply within `timeout` (default 5 s): likewise.
- The answer decides (`__res_context_query` for A and AAAA): an address in either reply ends the
  lookup; NXDOMAIN in both, or no data (NOERROR, no answer), goes on to the next name; SERVFAIL
  after every try goes on too (remembered); REFUSED or a timeout stops the search list, but the
  name as it is is still tried. ICMP port unreachable (ECONNREFUSED) on the socket: the pair is
  sent once more from a new socket, then the lookup fails at once.
- getaddrinfo's error: EAI_NONAME "Name or service not known" when every name was NXDOMAIN,
  EAI_NODATA "No address associated with hostname" when one had no data, EAI_AGAIN "Temporary
  failure in name resolution" after SERVFAIL, timeouts, REFUSED or ECONNREFUSED.
Not modelled: with many addresses (40 did it, 12 did not) glibc's getaddrinfo runs the whole
lookup a second time with a larger buffer (ERANGE from the NSS module, gaih_inet retries).
`families=("A",)` is getaddrinfo with AI_ADDRCONFIG in a namespace without any IPv6 address
(the lab's, which disables IPv6): only A queries. A pod whose kernel has IPv6 has ::1 and a
link-local address, and glibc then asks for AAAA too (measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ..addresses import parse_address, stable_hash
from ..errors import ConfigError, InvalidNameError
from ..names import DNS1123_LABEL
from .dns import (
    NOERROR, NOTIMP, NXDOMAIN, REFUSED, SERVFAIL, TYPE_NUMBERS, A, AAAA, DnsFormatError,
    Message, check_name, opt_record, query, tcp_frame, tcp_unframe,
)
from .events import (
    Action, CancelTimer, Close, Connect, Connected, ConnectionReset, DataReceived, DatagramReceived, Done, Event,
    Open, PeerClosed, Program, Send, SetTimer, SocketError, Started, TimerFired,
)

DEFAULT_NDOTS, DEFAULT_TIMEOUT, DEFAULT_ATTEMPTS = 1, 5, 2        # resolv/resolv.h RES_DFLRETRY, RES_TIMEOUT
MAX_SEARCH_PATHS, MAX_SEARCH_CHARS = 32, 2048                      # ExpandedDNSConfig (validation.go)
MAX_NAMESERVERS = 3                                                # MAXNS, validation.MaxDNSNameservers
EAI_TEXT = {
    "EAI_NONAME": "Name or service not known",
    "EAI_NODATA": "No address associated with hostname",
    "EAI_AGAIN": "Temporary failure in name resolution",
    "EAI_FAIL": "Non-recoverable failure in name resolution",
}


@dataclass(frozen=True)
class ResolvConf:
    """/etc/resolv.conf: nameservers, search list, options (as written, e.g. "ndots:5")."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def option(self, name: str, default: int) -> int:
        """The value of `name:N` (the last one wins, as res_init reads it)."""
        value = default
        for opt in self.options:
            key, _, number = opt.partition(":")
            if key == name and number.isdigit():
                value = int(number)
        return value

    @property
    def ndots(self) -> int:
        return min(self.option("ndots", DEFAULT_NDOTS), 15)         # RES_MAXNDOTS

    @property
    def timeout(self) -> int:
        return max(min(self.option("timeout", DEFAULT_TIMEOUT), 30), 1)

    @property
    def attempts(self) -> int:
        return max(min(self.option("attempts", DEFAULT_ATTEMPTS), 5), 1)

    @property
    def edns0(self) -> bool:
        return "edns0" in self.options

    @property
    def use_vc(self) -> bool:
        return "use-vc" in self.options

    def text(self) -> str:
        """The file as the container runtime writes it (search, nameserver, options)."""
        lines = []
        if self.search:
            lines.append("search " + " ".join(self.search))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        """res_init's reading: nameserver lines add up (at most 3), the last search and the
        options lines count."""
        servers: list[str] = []
        search: tuple[str, ...] = ()
        options: list[str] = []
        for line in text.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith(("#", ";")):
                continue
            if fields[0] == "nameserver" and len(fields) > 1 and len(servers) < MAX_NAMESERVERS:
                servers.append(str(parse_address(fields[1], "nameserver")))
            elif fields[0] in ("search", "domain"):
                search = tuple(f.rstrip(".") for f in fields[1:])
            elif fields[0] == "options":
                options += fields[1:]
        return cls(tuple(servers), search, tuple(options))


def kubelet_resolv_conf(namespace: str, cluster_dns: tuple[str, ...] = ("10.96.0.10",),
                        cluster_domain: str = "cluster.local", host_search: tuple[str, ...] = ()) -> ResolvConf:
    """What kubelet gives a ClusterFirst pod in `namespace` (GetPodDNS, generateSearchesForDNSClusterFirst)."""
    args = (namespace, cluster_dns, cluster_domain, host_search)
    try:
        hash(args)
    except TypeError:                  # a list given for a tuple: written afresh, not remembered
        return _write_resolv_conf(*args)
    return _remembered_resolv_conf(*args)


def _write_resolv_conf(namespace: str, cluster_dns: tuple[str, ...], cluster_domain: str,
                       host_search: tuple[str, ...]) -> ResolvConf:
    if not isinstance(namespace, str) or not DNS1123_LABEL.matches(namespace):
        raise InvalidNameError(f"namespace name {namespace!r} is not a DNS-1123 label: use {DNS1123_LABEL.words} "
                               f"(e.g. 'default')")
    if not cluster_dns:
        raise ConfigError("kubelet needs a cluster DNS address (--cluster-dns) for a ClusterFirst pod, e.g. 10.96.0.10")
    servers = tuple(str(parse_address(ip, "cluster DNS address")) for ip in cluster_dns)[:MAX_NAMESERVERS]
    domain = check_name(cluster_domain).rstrip(".")
    search: list[str] = []
    for entry in (f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *host_search):
        if entry not in search:
            search.append(entry)
    search = search[:MAX_SEARCH_PATHS]
    while len(" ".join(search)) > MAX_SEARCH_CHARS:
        search.pop()
    return ResolvConf(servers, tuple(search), ("ndots:5",))


# the same arguments give the same file (every pod of a namespace has it): written once
_remembered_resolv_conf = lru_cache(maxsize=256)(_write_resolv_conf)


def search_names(name: str, conf: ResolvConf) -> list[str]:
    """The names glibc queries for `name`, in order (__res_context_search)."""
    if name.endswith("."):
        return [check_name(name)]
    check_name(name)
    dots = name.count(".")
    names = []
    if dots >= conf.ndots:
        names.append(name + ".")
    names += [check_name(f"{name}.{domain}") for domain in conf.search if domain and domain != "."]
    if dots < conf.ndots:
        names.append(name + ".")
    return names


@dataclass(frozen=True)
class QueryRecord:
    """One query the resolver sent: the name, type, ID, transport, which try."""

    name: str
    qtype: str
    ident: int
    proto: str = "udp"
    attempt: int = 1


@dataclass(frozen=True)
class LookupResult:
    """What getaddrinfo returned: addresses (A records first, then AAAA) or an EAI_* error."""

    name: str
    addresses: tuple[str, ...] = ()
    canonical: str = ""
    error: str = ""
    queries: tuple[QueryRecord, ...] = field(default=())

    @property
    def message(self) -> str:
        return EAI_TEXT.get(self.error, "")


class GetAddrInfo:
    """getaddrinfo(name, AF_UNSPEC) through glibc's stub resolver, as a sans-IO part of a
    program: `start()` and `handle(event)` return actions, `result` is set when it is over.
    Tools that resolve a name first (curl, nc, ping NAME) embed one and pass it every event;
    it takes only those of its own sockets ("dns1", "dns2", ...) and timers."""

    def __init__(self, name: str, conf: ResolvConf, families: tuple[str, ...] = ("A", "AAAA"),
                 seed: str = "") -> None:
        if not conf.nameservers:
            raise ConfigError("resolv.conf has no nameserver; glibc would ask 127.0.0.1")
        self.name, self.conf, self.families, self.seed = name, conf, families, seed
        self.candidates = search_names(name, conf)
        self.index = 0
        self.attempt = 1
        self.socket_no = 0
        self.sock = ""
        self.proto = "udp"
        self.pending: dict[int, str] = {}           # query ID -> qtype
        self.replies: dict[str, Message] = {}
        self.stream = b""
        self.queries: list[QueryRecord] = []
        self.got_nodata = self.got_servfail = False
        self.searching_done = False
        self.result: LookupResult | None = None

    @property
    def server(self) -> str:
        return self.conf.nameservers[0]

    def ident(self, name: str, qtype: str) -> int:
        return stable_hash("res_randomid", self.seed, name, qtype, self.attempt, self.socket_no) & 0xFFFF

    # ------------------------------------------------------------------ sending

    def start(self) -> list[Action]:
        return self.open_udp()

    def new_sock(self, proto: str) -> str:
        self.socket_no += 1
        self.proto = proto
        self.sock = f"dns{self.socket_no}"
        return self.sock

    def open_udp(self) -> list[Action]:
        sock = self.new_sock("udp")
        actions: list[Action] = [Open(sock, "udp"), Connect(sock, self.server, 53)]
        return actions + self.send_pair()

    def send_pair(self) -> list[Action]:
        name = self.candidates[self.index]
        self.pending, self.replies, self.stream = {}, {}, b""
        out: list[Action] = []
        for qtype in self.families:
            ident = self.ident(name, qtype)
            self.pending[ident] = qtype
            edns = opt_record(1200) if self.conf.edns0 else None
            raw = query(ident, name, TYPE_NUMBERS[qtype], edns=edns).to_bytes()
            self.queries.append(QueryRecord(name, qtype, ident, self.proto, self.attempt))
            out.append(Send(self.sock, tcp_frame(raw) if self.proto == "tcp" else raw))
        return out + [SetTimer(self.sock, self.conf.timeout * 1_000_000)]

    def open_tcp(self) -> list[Action]:
        old = self.sock
        sock = self.new_sock("tcp")
        return [CancelTimer(old), Close(old), Open(sock, "tcp"), Connect(sock, self.server, 53),
                SetTimer(sock, self.conf.timeout * 1_000_000)]

    # ------------------------------------------------------------------ receiving

    def handle(self, event: Event) -> list[Action]:
        if self.result is not None:
            return []
        sock = getattr(event, "sock", getattr(event, "name", ""))
        if sock != self.sock:
            return []
        if isinstance(event, Connected):
            return [CancelTimer(self.sock)] + self.send_pair() if self.proto == "tcp" else []
        if isinstance(event, DatagramReceived):
            return self.take(event.data)
        if isinstance(event, DataReceived):
            messages, self.stream = tcp_unframe(self.stream + event.data)
            out: list[Action] = []
            for raw in messages:
                out += self.take(raw)
            return out
        if isinstance(event, SocketError) and event.errno == "ECONNREFUSED":
            if self.attempt < self.conf.attempts:
                self.attempt += 1
                return self.reopen()
            return self.finish(error="EAI_AGAIN")
        if isinstance(event, (PeerClosed, ConnectionReset)):
            return self.failed_try("timeout")
        if isinstance(event, TimerFired):
            return self.failed_try("timeout")
        return []

    def take(self, raw: bytes) -> list[Action]:
        try:
            reply = Message.from_bytes(raw)
        except DnsFormatError:
            return []
        qtype = self.pending.get(reply.id)
        if qtype is None or not reply.qr:
            return []
        if reply.tc and self.proto == "udp":
            return self.open_tcp()
        self.replies[qtype] = reply
        if len(self.replies) < len(self.pending):
            return []
        return self.decide()

    def decide(self) -> list[Action]:
        """__res_context_query's verdict on the pair, then __res_context_search's next step."""
        replies = [self.replies[q] for q in self.families]
        good = [r for r in replies if r.rcode == NOERROR and r.answers]
        if good:
            addresses = tuple(rr.data.address for r in replies for rr in r.answers
                              if isinstance(rr.data, (A, AAAA)))
            if addresses:
                return self.finish(addresses=addresses, canonical=self.canonical(replies))
        bad = [r for r in replies if r.rcode in (SERVFAIL, NOTIMP, REFUSED)]
        if bad:
            return self.failed_try("servfail" if bad[-1].rcode == SERVFAIL else "refused")
        rcodes = [r.rcode for r in replies]
        if NXDOMAIN in rcodes:
            return self.next_name()
        self.got_nodata = True
        return self.next_name()

    def canonical(self, replies: list[Message]) -> str:
        name = self.candidates[self.index]
        for r in replies:
            for rr in r.answers:
                if rr.name.lower() == name.lower() and rr.type == 5:
                    name = rr.data.target  # type: ignore[union-attr]
        return name.rstrip(".")

    def failed_try(self, why: str) -> list[Action]:
        """res_send's next try (same socket for UDP), or the name's final failure."""
        if self.attempt < self.conf.attempts:
            self.attempt += 1
            return [CancelTimer(self.sock)] + self.send_pair()
        if why == "servfail":
            self.got_servfail = True
            return self.next_name()
        self.searching_done = True            # REFUSED or a timeout ends the search list
        return self.next_name()

    def next_name(self) -> list[Action]:
        as_is = self.name if self.name.endswith(".") else self.name + "."
        self.index += 1
        if self.searching_done:
            while self.index < len(self.candidates) and self.candidates[self.index] != as_is:
                self.index += 1
        if self.index >= len(self.candidates):
            if self.got_nodata:
                return self.finish(error="EAI_NODATA")
            if self.got_servfail or self.searching_done:
                return self.finish(error="EAI_AGAIN")
            return self.finish(error="EAI_NONAME")
        self.attempt = 1
        return self.reopen()

    def reopen(self) -> list[Action]:
        """Close this name's socket and send from a new one."""
        out: list[Action] = [CancelTimer(self.sock), Close(self.sock)]
        return out + self.open_udp()

    def finish(self, addresses: tuple[str, ...] = (), canonical: str = "", error: str = "") -> list[Action]:
        self.result = LookupResult(self.name, addresses, canonical, error, tuple(self.queries))
        return [CancelTimer(self.sock), Close(self.sock)]


class Resolve(Program):
    """A lookup on its own (`getent ahosts NAME`), ending with Done(LookupResult); exit
    status 2 when the name does not resolve, as getent's."""

    name = "getent"

    def __init__(self, name: str, conf: ResolvConf, families: tuple[str, ...] = ("A", "AAAA"), seed: str = "") -> None:
        super().__init__()
        self.lookup = GetAddrInfo(name, conf, families, seed)

    def on_event(self, event: Event) -> list[Action]:
        actions = self.lookup.start() if isinstance(event, Started) else self.lookup.handle(event)
        result = self.lookup.result
        if result is not None:
            actions.append(Done(result, 2 if result.error else 0))
        return actions
