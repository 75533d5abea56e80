"""An Ingress controller in ingress-nginx's role: one connection in, another out, chosen by Host and path.

A reverse proxy terminates the client's TCP connection and opens its own to a backend: the
backend sees the proxy pod's address as the source, and learns the client's only from the
headers the proxy adds. What this program does, as kubernetes/ingress-nginx controller-v1.15.1
configures nginx (rootfs/etc/nginx/template/nginx.tmpl, internal/ingress/controller/*):

- Routing. Each Ingress host is an nginx `server` (server_name = host, matched without the
  Host header's port, case-insensitively); rules without a host and unknown hosts go to the
  default server. A path of type Exact is `location = PATH`; Prefix is `location PATH/` plus an
  exact `location = PATH` (location.go, `updateServerLocations`; so `/api` matches `/api`,
  `/api/` and `/api/x`, never `/apix`); ImplementationSpecific is a plain nginx prefix (`/api`
  matches `/apix`). nginx picks an exact match first, else the longest prefix; every server has
  `location /` for the default backend, which answers 404 (controller.go, `createServers`).
- Upstream. By default the upstream is the Service's *endpoints*, the pods' own addresses and
  target ports, from the EndpointSlices (controller.go, `serviceEndpoints`): the proxy connects
  to a pod directly, so kube-proxy's DNAT plays no part in the second connection. Only with the
  annotation `nginx.ingress.kubernetes.io/service-upstream: "true"` is the ClusterIP the single
  endpoint (controller.go, `getServiceClusterEndpoint`). The Lua balancer's default is
  round_robin; netsim starts with the first endpoint (the real start point is not modelled).
  No endpoint: 503. A connect error or reset before the response: the next endpoint
  (`proxy_next_upstream error timeout`, at most 3 tries), then 502.
- Request to the backend (nginx's proxy module: the `proxy_set_header` list in the order the
  template writes it, a header whose value is empty not sent, then nginx's defaults not set
  there, then the client's other headers in the client's order; a header named in the list
  is never copied from the client): `GET PATH HTTP/1.1` (proxy_http_version 1.1), `Host` = the
  client's Host, `X-Request-ID` (the client's, else a new 32-hex id; netsim derives it from a
  hash instead of nginx's random bytes), `X-Real-IP` = the client connection's source
  address, `X-Forwarded-For` = the same (with the default `use-forwarded-headers: false` a
  client's own X-Forwarded-For is replaced, and passed on as `X-Original-Forwarded-For`),
  `X-Forwarded-Host`, `X-Forwarded-Port` (the port nginx accepted on), `X-Forwarded-Proto`,
  `X-Forwarded-Scheme`, `X-Scheme` (http); no `Connection` (upstream keepalive 320 makes
  `$connection_upgrade` empty), `Content-Length` when there is a body.
- Response to the client: the backend's status line and headers without the hop-by-hop ones
  (Connection, Keep-Alive) and Date, then `Connection: keep-alive`. nginx also writes its own
  `Date` and `Server: nginx`; netsim, which has no wall clock, leaves them out. An upstream
  connection whose response did not say `Connection: close` is kept for the next request to
  the same endpoint (the `keepalive` pool).
The request to the backend is checked against real nginx 1.22.1 running that location block
(tests/test_lab_ingress.py): the same bytes but the random X-Request-ID, from the same address.
Not modelled: TLS, HTTP/2, chunked bodies, retries after a partial response, the canary and
rewrite annotations, PROXY protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..addresses import parse_address, stable_hash
from ..errors import ConfigError
from ..names import check_name
from .events import (
    Accepted, Action, Close, Connect, Connected, ConnectionReset, DataReceived, Event, Listen, Open, PeerClosed,
    Program, Send, SocketError, Started,
)

PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
NEXT_UPSTREAM_TRIES = 3          # proxy-next-upstream-tries (config.go default)
HOP_BY_HOP = ("connection", "keep-alive")
Headers = tuple[tuple[str, str], ...]


# ---------------------------------------------------------------------------- HTTP/1.1 heads

@dataclass(frozen=True)
class HttpMessage:
    """A request or response as it crossed one connection: start line, headers in order, body."""

    start: str
    headers: Headers
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    def to_bytes(self) -> bytes:
        head = "\r\n".join([self.start] + [f"{k}: {v}" for k, v in self.headers])
        return (head + "\r\n\r\n").encode("latin-1") + self.body


def parse_message(buffer: bytes, eof: bool = False) -> tuple[HttpMessage, bytes] | None:
    """The first whole message in `buffer` and what follows it, or None while it is
    incomplete. Without Content-Length a response's body runs to EOF (`eof` True)."""
    head, sep, rest = buffer.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = tuple((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    message = HttpMessage(lines[0], headers)
    length = message.header("content-length")
    if length is not None and length.isdigit():
        if len(rest) < int(length):
            return None
        return HttpMessage(lines[0], headers, rest[:int(length)]), rest[int(length):]
    if lines[0].startswith("HTTP/") and not eof:
        return None
    return message, b""


# ---------------------------------------------------------------------------- the Ingress objects

@dataclass(frozen=True)
class IngressPath:
    """One `paths` item of an Ingress rule: path, pathType, backend Service and port."""

    path: str
    service: str
    port: int
    path_type: str = "Prefix"

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ConfigError(f"ingress path {self.path!r} must start with '/' (e.g. /api)")
        if self.path_type not in PATH_TYPES:
            raise ConfigError(f"ingress pathType {self.path_type!r} is not one of {', '.join(PATH_TYPES)}")
        check_name("service", self.service)


@dataclass(frozen=True)
class IngressRule:
    host: str                    # "" : every host (the default server)
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True)
class ServiceBackend:
    """A Service the Ingress names, as the controller learns it: its ClusterIP and the ready
    endpoints (`ip:targetPort`) for the port."""

    namespace: str
    name: str
    port: int
    cluster_ip: str
    endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name("service", self.name)
        parse_address(self.cluster_ip, f"service {self.name}'s ClusterIP")
        for endpoint in self.endpoints:
            ip, _, port = endpoint.partition(":")
            parse_address(ip, f"service {self.name}'s endpoint")
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"endpoint {endpoint!r} of service {self.name} needs a port 1-65535 (ip:port)")

    @property
    def upstream(self) -> str:
        """ingress-nginx's upstream name: namespace-service-port."""
        return f"{self.namespace}-{self.name}-{self.port}"


@dataclass(frozen=True)
class Location:
    """An nginx location of a server: `=` exact or a prefix; `upstream` "" is the default backend."""

    server: str
    match: str                   # "=" or "prefix"
    path: str
    upstream: str = ""


def build_locations(rules: tuple[IngressRule, ...], backends: dict[str, ServiceBackend]) -> tuple[Location, ...]:
    """The locations ingress-nginx writes for the rules (see the module docstring)."""
    out: list[Location] = []
    servers = sorted({r.host.lower() for r in rules} | {"_"})
    for server in servers:
        paths = [p for r in rules if (r.host.lower() or "_") == server for p in r.paths]
        exact = {p.path for p in paths if p.path_type == "Exact"}
        locs = [Location(server, "prefix", "/")]
        for p in paths:
            upstream = backends[p.service].upstream if p.service in backends else "missing"
            if p.path_type == "Exact":
                locs.append(Location(server, "=", p.path, upstream))
            elif p.path_type == "Prefix" and p.path != "/":
                locs.append(Location(server, "prefix", p.path if p.path.endswith("/") else p.path + "/", upstream))
                if p.path not in exact:
                    locs.append(Location(server, "=", p.path, upstream))
            else:
                locs = [x for x in locs if not (x.match == "prefix" and x.path == p.path)]
                locs.append(Location(server, "prefix", p.path, upstream))
        out.extend(locs)
    return tuple(out)


def select_location(locations: tuple[Location, ...], host: str, path: str) -> Location:
    """nginx: the server by name (else the default server), then an exact location, else the
    longest prefix."""
    name = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
    servers = {loc.server for loc in locations}
    server = name if name in servers else "_"
    mine = [loc for loc in locations if loc.server == server]
    uri = path.split("?", 1)[0]
    for loc in mine:
        if loc.match == "=" and loc.path == uri:
            return loc
    prefixes = [loc for loc in mine if loc.match == "prefix" and uri.startswith(loc.path)]
    return max(prefixes, key=lambda loc: len(loc.path))


# ---------------------------------------------------------------------------- what happened

@dataclass(frozen=True)
class ProxiedRequest:
    """One request through the proxy: both sides' messages and where it went."""

    client: str                  # the client connection's source address and port, as nginx saw it
    client_port: int
    request: HttpMessage         # as the client sent it
    location: Location
    upstream: str = ""           # the endpoint ip:port, "" when nginx answered itself
    upstream_request: HttpMessage | None = None
    response: HttpMessage | None = None   # as the proxy sent it to the client
    reused: bool = False         # an idle keepalive connection carried it
    tries: int = 0


@dataclass
class _Client:
    peer: str
    port: int
    buffer: bytes = b""


@dataclass
class _Upstream:
    endpoint: str
    client: str = ""             # the client socket it serves; "" when idle
    buffer: bytes = b""
    request: HttpMessage | None = None


@dataclass
class _Pending:
    client: str
    request: HttpMessage
    location: Location
    endpoints: tuple[str, ...]
    tries: int = 0
    reused: bool = False
    sent: HttpMessage | None = None
    attempts: list[str] = field(default_factory=list)


class IngressNginx(Program):
    """The controller pod's nginx: socket "http" on `port`; upstream sockets "up1", "up2", ..."""

    name = "ingress-nginx"

    def __init__(self, rules: tuple[IngressRule, ...], backends: tuple[ServiceBackend, ...], port: int = 80,
                 service_upstream: bool = False, scheme: str = "http") -> None:
        super().__init__()
        self.port, self.scheme, self.service_upstream = port, scheme, service_upstream
        self.backends = {b.name: b for b in backends}
        for rule in rules:
            for p in rule.paths:
                if p.service not in self.backends:
                    raise ConfigError(f"ingress path {p.path} names service {p.service!r}, which has no backend "
                                      f"entry; known: {', '.join(sorted(self.backends)) or 'none'}")
        self.locations = build_locations(rules, self.backends)
        self.by_upstream = {b.upstream: b for b in backends}
        self.clients: dict[str, _Client] = {}
        self.upstreams: dict[str, _Upstream] = {}
        self.pending: dict[str, _Pending] = {}      # upstream socket -> the request it carries
        self.turn: dict[str, int] = {}              # round robin position per upstream name
        self.count = 0
        self.log: list[ProxiedRequest] = []

    # ------------------------------------------------------------------ events

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("http", "tcp"), Listen("http", self.port)]
        if isinstance(event, Accepted):
            self.clients[event.sock] = _Client(event.peer, event.peer_port)
            return []
        if isinstance(event, DataReceived) and event.sock in self.clients:
            return self.client_data(event.sock, event.data)
        if isinstance(event, Connected) and event.sock in self.pending:
            return [Send(event.sock, self.forward(event.sock))]
        if isinstance(event, DataReceived) and event.sock in self.upstreams:
            return self.upstream_data(event.sock, event.data, eof=False)
        if isinstance(event, PeerClosed) and event.sock in self.upstreams:
            out = self.upstream_data(event.sock, b"", eof=True) if event.sock in self.pending else []
            self.upstreams.pop(event.sock, None)
            return out + [Close(event.sock)]
        if isinstance(event, (SocketError, ConnectionReset)) and event.sock in self.upstreams:
            self.upstreams.pop(event.sock, None)
            return self.retry(event.sock) + [Close(event.sock)]
        if isinstance(event, (PeerClosed, ConnectionReset)) and event.sock in self.clients:
            del self.clients[event.sock]
            return [Close(event.sock)]
        return []

    def client_data(self, sock: str, data: bytes) -> list[Action]:
        client = self.clients[sock]
        client.buffer += data
        parsed = parse_message(client.buffer)
        if parsed is None:
            return []
        request, client.buffer = parsed
        path = request.start.split(" ")[1] if request.start.count(" ") == 2 else "/"
        location = select_location(self.locations, request.header("host") or "", path)
        if not location.upstream:
            return self.answer(sock, request, location, "404 Not Found")
        backend = self.by_upstream[location.upstream]
        endpoints = (f"{backend.cluster_ip}:{backend.port}",) if self.service_upstream else backend.endpoints
        if not endpoints:
            return self.answer(sock, request, location, "503 Service Temporarily Unavailable")
        pending = _Pending(sock, request, location, endpoints)
        return self.connect(pending)

    def connect(self, pending: _Pending) -> list[Action]:
        """Pick the next endpoint (round robin), reuse an idle connection to it or open one."""
        upstream = pending.location.upstream
        index = self.turn.get(upstream, 0)
        self.turn[upstream] = index + 1
        endpoint = pending.endpoints[index % len(pending.endpoints)]
        pending.tries += 1
        pending.attempts.append(endpoint)
        idle = next((s for s, u in self.upstreams.items() if u.endpoint == endpoint and not u.client), None)
        if idle is not None:
            self.upstreams[idle].client = pending.client
            pending.reused = True
            self.pending[idle] = pending
            return [Send(idle, self.forward(idle))]
        self.count += 1
        sock = f"up{self.count}"
        self.upstreams[sock] = _Upstream(endpoint, pending.client)
        self.pending[sock] = pending
        ip, _, port = endpoint.partition(":")
        return [Open(sock, "tcp"), Connect(sock, ip, int(port))]

    def retry(self, sock: str) -> list[Action]:
        pending = self.pending.pop(sock, None)
        if pending is None:
            return []
        if pending.tries < min(NEXT_UPSTREAM_TRIES, len(pending.endpoints)):
            return self.connect(pending)
        return self.answer(pending.client, pending.request, pending.location, "502 Bad Gateway", pending)

    # ------------------------------------------------------------------ the two messages

    def forward(self, sock: str) -> bytes:
        """The request as nginx writes it to the backend."""
        pending = self.pending[sock]
        client = self.clients[pending.client]
        request = pending.request
        method, target, _version = request.start.split(" ")
        host = request.header("host") or ""
        request_id = request.header("x-request-id") or "%08x%08x%08x%08x" % tuple(
            stable_hash("x-request-id", self.port, len(self.log), i) for i in range(4))
        scheme = self.scheme
        configured: list[tuple[str, str]] = [
            ("Host", host), ("Upgrade", request.header("upgrade") or ""), ("Connection", ""),
            ("X-Request-ID", request_id), ("X-Real-IP", client.peer), ("X-Forwarded-For", client.peer),
            ("X-Forwarded-Host", host), ("X-Forwarded-Port", str(self.port)), ("X-Forwarded-Proto", scheme),
            ("X-Forwarded-Scheme", scheme), ("X-Scheme", scheme),
            ("X-Original-Forwarded-For", request.header("x-forwarded-for") or ""),
            ("X-Original-Forwarded-Host", request.header("x-forwarded-host") or ""), ("Proxy", ""),
            # nginx's own defaults after the template's list
            ("Content-Length", str(len(request.body)) if request.body else ""), ("Transfer-Encoding", ""),
            ("TE", ""), ("Keep-Alive", ""), ("Expect", ""),
        ]
        named = {k.lower() for k, _ in configured}
        headers = tuple((k, v) for k, v in configured if v) + tuple(
            (k, v) for k, v in request.headers if k.lower() not in named)
        sent = HttpMessage(f"{method} {target} HTTP/1.1", headers, request.body)
        pending.sent = sent
        self.upstreams[sock].request = sent
        return sent.to_bytes()

    def upstream_data(self, sock: str, data: bytes, eof: bool) -> list[Action]:
        up = self.upstreams[sock]
        up.buffer += data
        parsed = parse_message(up.buffer, eof)
        if parsed is None:
            return []
        reply, up.buffer = parsed
        pending = self.pending.pop(sock)
        headers = tuple((k, v) for k, v in reply.headers if k.lower() not in HOP_BY_HOP + ("date",))
        response = HttpMessage(reply.start, headers + (("Connection", "keep-alive"),), reply.body)
        client = self.clients.get(pending.client)
        self.log.append(ProxiedRequest(client.peer if client else "", client.port if client else 0, pending.request,
                                       pending.location, up.endpoint, pending.sent, response, pending.reused,
                                       pending.tries))
        up.client = ""
        out: list[Action] = [Send(pending.client, response.to_bytes())] if client else []
        if (reply.header("connection") or "").lower() == "close" and not eof:
            self.upstreams.pop(sock)
            out.append(Close(sock))
        return out

    def answer(self, sock: str, request: HttpMessage, location: Location, status: str,
               pending: _Pending | None = None) -> list[Action]:
        """nginx answers itself: the default backend's 404, 503 without endpoints, 502."""
        body = f"{status}\n".encode()
        response = HttpMessage(f"HTTP/1.1 {status}", (("Content-Type", "text/html"),
                                                      ("Content-Length", str(len(body))),
                                                      ("Connection", "keep-alive")), body)
        client = self.clients[sock]
        self.log.append(ProxiedRequest(client.peer, client.port, request, location, "", None, response,
                                       tries=pending.tries if pending else 0))
        return [Send(sock, response.to_bytes())]


# ---------------------------------------------------------------------------- a backend that shows what it got

@dataclass(frozen=True)
class SeenRequest:
    """What the backend's accept() and read() gave it."""

    peer: str
    peer_port: int
    request: HttpMessage


class EchoHeaders(Program):
    """A backend in the role of the e2e `echoserver`: answers 200 with the client address and the
    request's headers as its body, keeps the connection open (HTTP/1.1)."""

    name = "echoserver"

    def __init__(self, port: int = 8080) -> None:
        super().__init__()
        self.port = port
        self.conns: dict[str, tuple[str, int, bytes]] = {}
        self.seen: list[SeenRequest] = []

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("http", "tcp"), Listen("http", self.port)]
        if isinstance(event, Accepted):
            self.conns[event.sock] = (event.peer, event.peer_port, b"")
            return []
        if isinstance(event, DataReceived) and event.sock in self.conns:
            peer, port, buffer = self.conns[event.sock]
            parsed = parse_message(buffer + event.data)
            if parsed is None:
                self.conns[event.sock] = (peer, port, buffer + event.data)
                return []
            request, rest = parsed
            self.conns[event.sock] = (peer, port, rest)
            self.seen.append(SeenRequest(peer, port, request))
            lines = [f"client_address={peer}", f"request={request.start}"] + [f"{k}={v}" for k, v in request.headers]
            body = ("\n".join(lines) + "\n").encode("latin-1")
            reply = HttpMessage("HTTP/1.1 200 OK", (("Content-Type", "text/plain"),
                                                    ("Content-Length", str(len(body)))), body)
            return [Send(event.sock, reply.to_bytes())]
        if isinstance(event, (PeerClosed, ConnectionReset)) and event.sock in self.conns:
            del self.conns[event.sock]
            return [Close(event.sock)]
        return []


__all__ = ["EchoHeaders", "HttpMessage", "IngressNginx", "IngressPath", "IngressRule", "Location", "ProxiedRequest",
           "SeenRequest", "ServiceBackend", "build_locations", "parse_message", "select_location"]
