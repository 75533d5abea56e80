"""A DNS server in CoreDNS's role: the `kubernetes` plugin for the cluster zone, `forward` for the rest.

What it answers, as coredns/coredns's plugin/kubernetes (handler.go, kubernetes.go, parse.go,
reverse.go) and plugin/backend_lookup.go do:
- `<svc>.<ns>.svc.<zone>`: the ClusterIP (one A record however many ports); a headless
  service: one A per endpoint; an ExternalName service: a CNAME to the external name, then
  the upstream's records for it. `<endpoint>.<svc>.<ns>.svc.<zone>` (the pod IP with dashes,
  or the endpoint's hostname): that endpoint's address.
- `<a-b-c-d>.<ns>.pod.<zone>`: with `pods insecure` (kubeadm's Corefile) the address in the
  name, if the namespace exists; `pods verified`: only a pod's real address; `pods disabled`
  (the plugin's default): NXDOMAIN.
- A name in the zone that does not exist: NXDOMAIN (a first label other than svc or pod is an
  invalid request, also NXDOMAIN); a name that exists with no record of the type asked (AAAA of
  an IPv4 service, the zone apex, `<ns>.svc.<zone>`): NOERROR with no answer. Both carry the
  zone's SOA in the authority section (`plugin.BackendError`, `plugin.SOA`): owner the zone,
  TTL and minimum the plugin's ttl, `ns.dns.<zone>`, `hostmaster.<zone>`, serial the time the
  cluster data last changed, refresh 7200, retry 1800, expire 86400.
- PTR for in-addr.arpa: a ClusterIP gives `<svc>.<ns>.svc.<zone>`, an endpoint address
  `<endpoint>.<svc>.<ns>.svc.<zone>`; any other address falls through (the Corefile's
  `fallthrough in-addr.arpa ip6.arpa`) to forward.
- The plugin's answers are authoritative (AA) and, built with miekg/dns SetReply, carry no RA.
- TTL: the plugin's default is 5 s (`defaultTTL`, kubernetes.go); kubeadm's Corefile sets
  `ttl 30` (cmd/kubeadm/app/phases/addons/dns/manifests.go): `CorefileConfig.ttl`.
- Names outside the zone go to `forward . /etc/resolv.conf`: the node's resolver. netsim has no
  internet; `Upstream` stands for it: a fixed set of records answered with RA (not AA), an rcode
  for every other name (NXDOMAIN by default, or SERVFAIL / REFUSED), or `reachable=False`, after
  which forward gives up and the server answers SERVFAIL.
- EDNS: a query's OPT record is echoed (`request.SizeAndDo`): the client's UDP size, version 0,
  flags cleared but DO, only the options CoreDNS supports kept (a COOKIE is echoed as sent).
- Size (`request.Scrub`, miekg/dns Truncate): over UDP a reply longer than the client's size
  (512 without EDNS) is cut and TC set; over TCP the limit is 65535 and each message has a
  two-byte length prefix.
Not modelled: the cache plugin (kubeadm's `cache 30` is off for the cluster zone but would
cap forwarded TTLs at 30 s), `loadbalance` (shuffles A records; netsim keeps endpoint order),
SRV records, the zonal/multicluster options, autopath.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from ipaddress import IPv4Address

from .dns import (
    A, AAAA, CNAME, EDNS0_COOKIE, MAX_MSG_SIZE, MIN_UDP_SIZE, NOERROR, NXDOMAIN, PTR, REFUSED, SERVFAIL, SOA,
    TYPE_A, TYPE_AAAA, TYPE_AXFR, TYPE_CNAME, TYPE_IXFR, TYPE_OPT, TYPE_PTR, TYPE_SOA, CLASS_IN, DnsFormatError,
    Edns, Message, ResourceRecord, name_labels, tcp_frame, tcp_unframe,
)
from .events import (
    Accepted, Action, Close, DataReceived, DatagramReceived, Event, Listen, Open, PeerClosed, Program, Send,
    SendTo, Started,
)

SUPPORTED_EDNS_OPTIONS = (3, 9, EDNS0_COOKIE, 11, 12)    # NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING
SERIAL = 1700000000          # the SOA serial: CoreDNS uses the Unix time of the last change; netsim a fixed one


@dataclass(frozen=True)
class ServiceRecord:
    """A Service as the plugin's informer holds it: `cluster_ip` None for a headless service,
    `external_name` for type ExternalName, `endpoints` the ready pod addresses (with an
    optional hostname each)."""

    name: str
    namespace: str
    cluster_ip: str | None = None
    endpoints: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    external_name: str = ""

    def endpoint_name(self, i: int) -> str:
        """endpointHostname: the endpoint's hostname, else its address with dashes."""
        if i < len(self.hostnames) and self.hostnames[i]:
            return self.hostnames[i]
        return self.endpoints[i].replace(".", "-")


@dataclass(frozen=True)
class PodRecord:
    ip: str
    namespace: str


@dataclass(frozen=True)
class CorefileConfig:
    """The `kubernetes` block of the Corefile: zone, ttl, pods mode."""

    zone: str = "cluster.local."
    ttl: int = 5
    pods: str = "insecure"
    serial: int = SERIAL


@dataclass(frozen=True)
class Upstream:
    """What `forward . /etc/resolv.conf` reaches (see the module docstring)."""

    records: tuple[ResourceRecord, ...] = ()
    rcode: int = NXDOMAIN
    reachable: bool = True

    def answer(self, name: str, qtype: int) -> tuple[int, tuple[ResourceRecord, ...]]:
        if not self.reachable:
            return SERVFAIL, ()
        lower = name.lower()
        found = tuple(rr for rr in self.records if rr.name.lower() == lower)
        chosen = tuple(rr for rr in found if rr.type == qtype or rr.type == TYPE_CNAME)
        if chosen:
            cname = [rr for rr in chosen if rr.type == TYPE_CNAME and qtype != TYPE_CNAME]
            if cname and isinstance(cname[0].data, CNAME):
                rcode, rest = self.answer(cname[0].data.target, qtype)
                return (rcode if rest else NOERROR), tuple(cname[:1]) + rest
            return NOERROR, chosen
        return (NOERROR, ()) if found else (self.rcode, ())


@dataclass(frozen=True)
class ClusterDns:
    """The data the plugin serves: services, pods and namespaces (a namespace exists if it
    is named here or holds a service or a pod)."""

    services: tuple[ServiceRecord, ...] = ()
    pods: tuple[PodRecord, ...] = ()
    namespaces: tuple[str, ...] = ("default", "kube-system")
    config: CorefileConfig = field(default_factory=CorefileConfig)
    upstream: Upstream = field(default_factory=Upstream)

    def namespace_exists(self, ns: str) -> bool:
        return (ns in self.namespaces or any(s.namespace == ns for s in self.services)
                or any(p.namespace == ns for p in self.pods))

    # ---------------------------------------------------------------- the zone

    def in_zone(self, name: str) -> bool:
        zone = self.config.zone.lower()
        lower = name.lower()
        return lower == zone or lower.endswith("." + zone)

    def soa(self) -> ResourceRecord:
        zone, ttl = self.config.zone, self.config.ttl
        return ResourceRecord(zone, TYPE_SOA, min(ttl, 300), SOA(f"ns.dns.{zone}", f"hostmaster.{zone}",
                                                                  self.config.serial, 7200, 1800, 86400, ttl))

    def lookup(self, name: str, qtype: int) -> tuple[int, tuple[ResourceRecord, ...]]:
        """The kubernetes plugin (ServeDNS): (rcode, answer records) for a name in the zone;
        NOERROR with no records means no data."""
        relative = name_labels(name)[: len(name_labels(name)) - len(name_labels(self.config.zone))]
        if qtype == TYPE_SOA:
            return (NOERROR, (self.soa(),)) if not relative else self.fake_a(name, relative)
        if qtype in (TYPE_A, TYPE_AAAA, TYPE_CNAME):
            return self.addresses(name, relative, qtype)
        return self.fake_a(name, relative)

    def fake_a(self, name: str, relative: list[str]) -> tuple[int, tuple[ResourceRecord, ...]]:
        """Other types: an A lookup tells NXDOMAIN from no data (handler.go's "fake" query)."""
        rcode, _ = self.addresses(name, relative, TYPE_A)
        return rcode, ()

    def addresses(self, name: str, relative: list[str], qtype: int) -> tuple[int, tuple[ResourceRecord, ...]]:
        ttl = self.config.ttl
        # parseRequest: [endpoint.]service.namespace.(svc|pod)
        if not relative or relative == ["svc"] or relative == ["pod"]:
            return NOERROR, ()
        kind = relative[-1].lower()
        if kind not in ("svc", "pod"):
            return NXDOMAIN, ()
        if len(relative) > 4:
            return NXDOMAIN, ()
        namespace = relative[-2].lower() if len(relative) >= 2 else ""
        if namespace and not self.namespace_exists(namespace):
            return NXDOMAIN, ()
        if len(relative) == 2:
            return NOERROR, ()                           # <ns>.svc: the namespace exists, no data
        if kind == "pod":
            return self.pod(name, relative[-3], namespace, qtype) if len(relative) == 3 else (NXDOMAIN, ())
        svc_name = relative[-3].lower()
        endpoint = relative[0].lower() if len(relative) == 4 else ""
        services = [s for s in self.services if s.name == svc_name and s.namespace == namespace]
        if not services:
            return NXDOMAIN, ()
        svc = services[0]
        if svc.external_name:
            if endpoint:
                return NXDOMAIN, ()
            target = svc.external_name if svc.external_name.endswith(".") else svc.external_name + "."
            cname = ResourceRecord(name, TYPE_CNAME, ttl, CNAME(target))
            if qtype == TYPE_CNAME:
                return NOERROR, (cname,)
            _rcode, more = self.upstream.answer(target, qtype)
            return NOERROR, ((cname,) + more if more else ())
        if svc.cluster_ip is not None and not endpoint:
            ips = [svc.cluster_ip]
        else:
            ips = [ip for i, ip in enumerate(svc.endpoints) if not endpoint or svc.endpoint_name(i) == endpoint]
            if not ips:
                return NXDOMAIN, ()
        return NOERROR, tuple(self.address_record(name, ip, qtype) for ip in ips if self.family(ip, qtype))

    def pod(self, name: str, label: str, namespace: str, qtype: int) -> tuple[int, tuple[ResourceRecord, ...]]:
        """findPods: the address written in the first label, a-b-c-d."""
        mode = self.config.pods
        if mode == "disabled" or label.count("-") != 3 or "--" in label:
            return NXDOMAIN, ()
        ip = label.replace("-", ".")
        try:
            IPv4Address(ip)
        except ValueError:
            return NXDOMAIN, ()
        if mode == "verified" and not any(p.ip == ip and p.namespace == namespace for p in self.pods):
            return NXDOMAIN, ()
        return NOERROR, ((self.address_record(name, ip, qtype),) if qtype == TYPE_A else ())

    @staticmethod
    def family(ip: str, qtype: int) -> bool:
        return (":" in ip) == (qtype == TYPE_AAAA)

    def address_record(self, name: str, ip: str, qtype: int) -> ResourceRecord:
        rtype = TYPE_AAAA if ":" in ip else TYPE_A
        return ResourceRecord(name, rtype, self.config.ttl, AAAA(ip) if rtype == TYPE_AAAA else A(ip))

    def reverse(self, name: str) -> tuple[int, tuple[ResourceRecord, ...]] | None:
        """Reverse: a PTR for a ClusterIP or an endpoint address; None falls through."""
        labels = name_labels(name)
        if len(labels) != 6 or [x.lower() for x in labels[4:]] != ["in-addr", "arpa"]:
            return None
        ip = ".".join(reversed(labels[:4]))
        zone, ttl = self.config.zone, self.config.ttl
        for svc in self.services:
            if svc.cluster_ip == ip:
                return NOERROR, (ResourceRecord(name, TYPE_PTR, ttl, PTR(f"{svc.name}.{svc.namespace}.svc.{zone}")),)
        records = tuple(ResourceRecord(name, TYPE_PTR, ttl,
                                       PTR(f"{svc.endpoint_name(i)}.{svc.name}.{svc.namespace}.svc.{zone}"))
                        for svc in self.services for i, addr in enumerate(svc.endpoints) if addr == ip)
        return (NOERROR, records) if records else None

    # ---------------------------------------------------------------- one query

    def answer(self, request: Message, proto: str = "udp") -> Message:
        """ServeDNS of the whole server block: the reply to one query, sized for `proto`."""
        return self.respond(request, proto)[0]

    def respond(self, request: Message, proto: str = "udp") -> tuple[Message, bool]:
        """The reply and whether it goes out compressed."""
        if not request.questions:
            return self.scrub(request, request.reply(rcode=SERVFAIL), proto)
        q = request.question
        if q.qclass != CLASS_IN:
            return self.scrub(request, request.reply(rcode=REFUSED), proto)
        edns = request.edns
        if edns is not None and edns.version != 0:
            bad = Edns(edns.udp_size, edns.do, 0, 1).record()          # BADVERS (16): ext rcode 1
            return request.reply(additional=(bad,)), False
        name = q.name
        if self.in_zone(name):
            if q.qtype in (TYPE_AXFR, TYPE_IXFR):
                return self.scrub(request, request.reply(rcode=REFUSED), proto)
            rcode, records = self.lookup(name, q.qtype)
            return self.scrub(request, self.authoritative(request, rcode, records), proto)
        if q.qtype == TYPE_PTR:
            found = self.reverse(name)
            if found is not None:
                return self.scrub(request, self.authoritative(request, *found), proto)
        return self.scrub(request, self.forward(request), proto)

    def authoritative(self, request: Message, rcode: int, records: tuple[ResourceRecord, ...]) -> Message:
        if rcode == NOERROR and records:
            return request.reply(aa=True, answers=records)
        soa = self.soa() if self.in_zone(request.question.name) else self.reverse_soa(request.question.name)
        return request.reply(aa=True, rcode=rcode, authority=(soa,))

    def reverse_soa(self, name: str) -> ResourceRecord:
        soa = self.soa()
        assert isinstance(soa.data, SOA)
        return replace(soa, name="in-addr.arpa.", data=replace(soa.data, mname="ns.dns.in-addr.arpa.",
                                                              rname="hostmaster.in-addr.arpa."))

    def forward(self, request: Message) -> Message:
        q = request.question
        rcode, records = self.upstream.answer(q.name, q.qtype)
        if rcode in (SERVFAIL, REFUSED) and not self.upstream.reachable:
            return request.reply(rcode=SERVFAIL)
        return request.reply(ra=True, rcode=rcode, answers=records)

    @staticmethod
    def scrub(request: Message, reply: Message, proto: str) -> tuple[Message, bool]:
        """SizeAndDo and Scrub: echo the OPT record, then fit the client's size."""
        edns = request.edns
        if edns is not None:
            options = tuple(o for o in edns.options if o.code in SUPPORTED_EDNS_OPTIONS)
            opt = Edns(edns.udp_size, edns.do, 0, 0, options).record()
            reply = replace(reply, additional=tuple(rr for rr in reply.additional if rr.type != TYPE_OPT) + (opt,))
        if proto == "tcp":
            limit = MAX_MSG_SIZE
        else:
            limit = max(edns.udp_size, MIN_UDP_SIZE) if edns is not None else MIN_UDP_SIZE
        fitted, compress = reply.truncate(limit)
        # Scrub's last resort against fragmentation: compress a UDP reply over 1480 bytes (IPv4)
        return fitted, compress or (proto == "udp" and fitted.length() > 1480)

    def wire_answer(self, raw: bytes, proto: str = "udp") -> bytes | None:
        """The reply's bytes to a query's bytes (None: not a query worth an answer)."""
        try:
            request = Message.from_bytes(raw)
        except DnsFormatError:
            return None
        return self.wire_reply(request, proto)

    def wire_reply(self, request: Message, proto: str = "udp") -> bytes | None:
        """The reply's bytes to a parsed query (None for a message that is itself a reply)."""
        if request.qr:
            return None
        try:
            hash((self, request))
        except TypeError:                  # data built with lists: answered afresh, not remembered
            return _reply_bytes(self, request, proto)
        return _remembered_reply_bytes(self, request, proto)


def _reply_bytes(data: ClusterDns, request: Message, proto: str) -> bytes:
    reply, compress = data.respond(request, proto)
    return reply.to_bytes(compress)


# The answer is a function of the data, the query and the transport only (no clock, no
# randomness), so the same query to the same data is answered with the bytes written the first
# time; a Service or pod added or removed is other data, so another key.
_remembered_reply_bytes = lru_cache(maxsize=256)(_reply_bytes)


class CoreDnsServer(Program):
    """The coredns process: UDP and TCP sockets on port 53, one reply per query."""

    name = "coredns"

    def __init__(self, data: ClusterDns, port: int = 53) -> None:
        super().__init__()
        self.data, self.port = data, port
        self.streams: dict[str, bytes] = {}
        self.answered: list[tuple[str, Message]] = []      # (proto, query) in the order they came

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("udp", "udp"), Listen("udp", self.port), Open("tcp", "tcp"), Listen("tcp", self.port)]
        if isinstance(event, DatagramReceived) and event.sock == "udp":
            reply = self.reply(event.data, "udp")
            return [SendTo("udp", reply, event.src, event.sport)] if reply is not None else []
        if isinstance(event, Accepted):
            self.streams[event.sock] = b""
            return []
        if isinstance(event, DataReceived) and event.sock in self.streams:
            messages, rest = tcp_unframe(self.streams[event.sock] + event.data)
            self.streams[event.sock] = rest
            out: list[Action] = []
            for raw in messages:
                reply = self.reply(raw, "tcp")
                if reply is not None:
                    out.append(Send(event.sock, tcp_frame(reply)))
            return out
        if isinstance(event, PeerClosed) and event.sock in self.streams:
            del self.streams[event.sock]
            return [Close(event.sock)]
        return []

    def reply(self, raw: bytes, proto: str) -> bytes | None:
        try:
            request = Message.from_bytes(raw)
        except DnsFormatError:
            return None
        self.answered.append((proto, request))
        return self.data.wire_reply(request, proto)
