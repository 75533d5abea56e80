"""The Ingress controller program: two TCP connections per request, the headers each side sees.

The expected values follow ingress-nginx controller-v1.15.1's template and controller code as
the module docstring cites them. DirectWire has no NAT: the client's address reaches the
controller unchanged, as with a LoadBalancer Service under `externalTrafficPolicy: Local` (under
`Cluster` the node's address would stand there; that is the integration's part).
"""

from __future__ import annotations

import pytest

from netsim.errors import ConfigError
from netsim.programs.events import Connect, Open, SetTimer, Started, TimerFired
from netsim.programs.http import Fetch, HttpEchoServer
from netsim.programs.ingress import (
    EchoHeaders, HttpMessage, IngressNginx, IngressPath, IngressRule, Location, ServiceBackend, build_locations,
    parse_message, select_location,
)
from netsim.programs.wire import DirectWire
from netsim.packet import TCP

CLIENT, INGRESS = "192.168.0.50", "10.244.1.5"
SHOP_PODS, API_POD = ("10.244.0.7", "10.244.2.9"), "10.244.2.4"


class Curl(Fetch):
    """curl -H 'Host: NAME' URL: curl writes the given Host in its own Host line's place."""

    def __init__(self, url: str, host: str, **kw) -> None:
        super().__init__(url, **kw)
        self.host_header = host

    def request(self) -> bytes:
        lines = super().request().decode().split("\r\n")
        lines[1] = f"Host: {self.host_header}"
        return "\r\n".join(lines).encode()


RULES = (IngressRule("shop.example.com", (IngressPath("/", "shop", 80), IngressPath("/api", "api", 80))),)
BACKENDS = (ServiceBackend("default", "shop", 80, "10.96.0.20", tuple(f"{ip}:8080" for ip in SHOP_PODS)),
            ServiceBackend("default", "api", 80, "10.96.0.21", (f"{API_POD}:8080",)))


def run(*fetches, service_upstream=False, backends=BACKENDS):
    wire = DirectWire()
    proxy = wire.add(INGRESS, IngressNginx(RULES, backends, service_upstream=service_upstream))
    servers = {ip: wire.add(ip, EchoHeaders(8080)) for ip in SHOP_PODS + (API_POD,)}
    clients = [wire.add(CLIENT, f) for f in fetches]
    wire.run()
    return wire, proxy, servers, clients


def syns(wire):
    return [(d.src, d.sport, d.dst, d.dport) for d in wire.log
            if d.proto == "tcp" and isinstance(d.payload, TCP) and d.payload.flags == "S"]


def test_one_request_is_two_tcp_connections():
    wire, proxy, servers, (curl,) = run(Curl("http://10.244.1.5:80/cart", "shop.example.com"))
    (first, second) = syns(wire)
    assert first[0] == CLIENT and first[2:] == (INGRESS, 80)
    assert second[0] == INGRESS and second[2:] == (SHOP_PODS[0], 8080)        # a pod, not the ClusterIP
    assert second[1] != first[1] and 32768 <= second[1] <= 60999
    assert curl.result.status_line == "HTTP/1.1 200 OK"


def test_the_backend_sees_the_proxy_pods_address_and_the_client_in_headers():
    wire, proxy, servers, (curl,) = run(Curl("http://10.244.1.5:80/cart", "shop.example.com"))
    seen = servers[SHOP_PODS[0]].seen[0]
    assert (seen.peer, seen.peer_port) == (INGRESS, syns(wire)[1][1])
    request_id = seen.request.header("X-Request-ID")
    assert seen.request == HttpMessage("GET /cart HTTP/1.1", (
        ("Host", "shop.example.com"), ("X-Request-ID", request_id), ("X-Real-IP", CLIENT),
        ("X-Forwarded-For", CLIENT), ("X-Forwarded-Host", "shop.example.com"), ("X-Forwarded-Port", "80"),
        ("X-Forwarded-Proto", "http"), ("X-Forwarded-Scheme", "http"), ("X-Scheme", "http"),
        ("User-Agent", "curl/7.88.1"), ("Accept", "*/*")))
    assert len(request_id) == 32 and int(request_id, 16) >= 0


def test_the_client_sees_the_backends_answer_with_keep_alive():
    _wire, proxy, servers, (curl,) = run(Curl("http://10.244.1.5:80/cart", "shop.example.com"))
    body = curl.result.body.decode()
    assert body.splitlines()[:3] == ["client_address=10.244.1.5", "request=GET /cart HTTP/1.1",
                                     "Host=shop.example.com"]
    assert curl.result.headers == (("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                   ("Connection", "keep-alive"))
    record = proxy.log[0]
    assert (record.client, record.upstream, record.location) == (
        CLIENT, "10.244.0.7:8080", Location("shop.example.com", "prefix", "/", "default-shop-80"))


def test_path_api_goes_to_the_api_service():
    _wire, proxy, servers, _ = run(Curl("http://10.244.1.5:80/api/items", "shop.example.com"),
                                   Curl("http://10.244.1.5:80/api", "shop.example.com"))
    assert [s.request.start for s in servers[API_POD].seen] == ["GET /api/items HTTP/1.1", "GET /api HTTP/1.1"]
    assert [r.location.match for r in proxy.log] == ["prefix", "="]


def test_locations_follow_ingress_nginx_for_each_path_type():
    rules = (IngressRule("a.test", (IngressPath("/api", "api", 80), IngressPath("/x", "shop", 80, "Exact"),
                                    IngressPath("/raw", "shop", 80, "ImplementationSpecific"))),)
    locs = build_locations(rules, {b.name: b for b in BACKENDS})
    assert [(l.server, l.match, l.path, l.upstream) for l in locs] == [
        ("_", "prefix", "/", ""),
        ("a.test", "prefix", "/", ""), ("a.test", "prefix", "/api/", "default-api-80"),
        ("a.test", "=", "/api", "default-api-80"), ("a.test", "=", "/x", "default-shop-80"),
        ("a.test", "prefix", "/raw", "default-shop-80")]
    pick = lambda host, path: select_location(locs, host, path)       # noqa: E731
    assert pick("a.test", "/apix").upstream == ""                      # Prefix is per path element
    assert pick("A.TEST:8080", "/api/v1?q=1").path == "/api/"          # host without port, any case
    assert pick("a.test", "/rawdata").path == "/raw"                   # ImplementationSpecific: plain prefix
    assert pick("a.test", "/x/y").upstream == ""                       # Exact only
    assert pick("other.test", "/api").server == "_"


def test_unknown_host_gets_the_default_backends_404_and_no_second_connection():
    wire, proxy, _servers, (curl,) = run(Curl("http://10.244.1.5:80/cart", "nosuch.example.com"))
    assert curl.result.status_line == "HTTP/1.1 404 Not Found"
    assert len(syns(wire)) == 1
    assert proxy.log[0].upstream == ""


class Later(Curl):
    """The same curl, started `after_us` later (a second command typed after the first ended)."""

    def __init__(self, *args, after_us: int, **kw) -> None:
        super().__init__(*args, **kw)
        self.after_us = after_us

    def on_event(self, event):
        if isinstance(event, Started):
            return [SetTimer("later", self.after_us)]
        if isinstance(event, TimerFired) and event.name == "later":
            return super().on_event(Started(event.at))
        return super().on_event(event)


def test_round_robin_over_the_endpoints_and_keepalive_reuse():
    # two at once take both endpoints; one a second later finds the first connection idle
    _wire, proxy, servers, _ = run(Curl("http://10.244.1.5:80/", "shop.example.com"),
                                   Curl("http://10.244.1.5:80/", "shop.example.com"),
                                   Later("http://10.244.1.5:80/", "shop.example.com", after_us=1_000_000))
    assert [(r.upstream, r.reused) for r in proxy.log] == [
        ("10.244.0.7:8080", False), ("10.244.2.9:8080", False), ("10.244.0.7:8080", True)]
    first = servers[SHOP_PODS[0]].seen
    assert len(first) == 2 and first[0].peer_port == first[1].peer_port        # one upstream connection


def test_concurrent_requests_each_open_their_own_upstream_connection():
    _wire, proxy, servers, _ = run(*(Curl("http://10.244.1.5:80/", "shop.example.com") for _ in range(3)))
    assert [(r.upstream, r.reused) for r in proxy.log] == [
        ("10.244.0.7:8080", False), ("10.244.2.9:8080", False), ("10.244.0.7:8080", False)]


def test_client_x_forwarded_for_is_replaced_and_kept_as_original():
    class Behind(Curl):
        def request(self) -> bytes:
            head, _, body = super().request().partition(b"\r\n\r\n")
            return head + b"\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n" + body

    _wire, _proxy, servers, _ = run(Behind("http://10.244.1.5:80/", "shop.example.com"))
    req = servers[SHOP_PODS[0]].seen[0].request
    assert (req.header("X-Forwarded-For"), req.header("X-Original-Forwarded-For")) == (CLIENT, "203.0.113.9")
    assert [k for k, _ in req.headers].count("X-Forwarded-For") == 1


def test_a_post_body_goes_through_with_its_length():
    _wire, _proxy, servers, _ = run(Curl("http://10.244.1.5:80/api/items", "shop.example.com", data=b"n=1"))
    req = servers[API_POD].seen[0].request
    assert (req.start, req.body) == ("POST /api/items HTTP/1.1", b"n=1")
    assert [k for k, _ in req.headers][-4:] == ["Content-Length", "User-Agent", "Accept", "Content-Type"]
    assert req.header("Content-Length") == "3"


def test_service_upstream_connects_to_the_cluster_ip():
    proxy = IngressNginx(RULES, BACKENDS, service_upstream=True)
    proxy.start()
    from netsim.programs.events import Accepted, DataReceived
    proxy.handle(Accepted("http", "c1", CLIENT, 40000))
    actions = proxy.handle(DataReceived("c1", b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"))
    assert actions == [Open("up1", "tcp"), Connect("up1", "10.96.0.20", 80)]


def test_no_endpoints_is_503_and_a_dead_endpoint_is_retried_then_502():
    empty = (ServiceBackend("default", "shop", 80, "10.96.0.20"), BACKENDS[1])
    _wire, _proxy, _s, (curl,) = run(Curl("http://10.244.1.5:80/", "shop.example.com"), backends=empty)
    assert curl.result.status_line == "HTTP/1.1 503 Service Temporarily Unavailable"
    dead = (ServiceBackend("default", "shop", 80, "10.96.0.20", ("10.244.0.7:9999", "10.244.2.9:8080")), BACKENDS[1])
    _wire, proxy, servers, (curl,) = run(Curl("http://10.244.1.5:80/", "shop.example.com"), backends=dead)
    assert (curl.result.status_line, proxy.log[0].tries, proxy.log[0].upstream) == (
        "HTTP/1.1 200 OK", 2, "10.244.2.9:8080")
    all_dead = (ServiceBackend("default", "shop", 80, "10.96.0.20", ("10.244.0.7:9999",)), BACKENDS[1])
    _wire, proxy, _s, (curl,) = run(Curl("http://10.244.1.5:80/", "shop.example.com"), backends=all_dead)
    assert curl.result.status_line == "HTTP/1.1 502 Bad Gateway"


def test_a_backend_that_closes_after_its_answer_is_not_kept():
    wire = DirectWire()
    proxy = wire.add(INGRESS, IngressNginx(RULES, (BACKENDS[0], BACKENDS[1])))
    wire.add(SHOP_PODS[0], HttpEchoServer(8080, response_size=5))
    wire.add(SHOP_PODS[1], HttpEchoServer(8080, response_size=5))
    curls = [wire.add(CLIENT, Curl("http://10.244.1.5:80/", "shop.example.com")) for _ in range(3)]
    wire.run()
    assert [c.result.body for c in curls] == [b"rrrrr"] * 3
    assert [r.reused for r in proxy.log] == [False, False, False]
    assert curls[0].result.headers == (("Content-Length", "5"), ("Connection", "keep-alive"))


def test_parse_message_waits_for_the_whole_body():
    assert parse_message(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab") is None
    msg, rest = parse_message(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET")
    assert (msg.body, rest) == (b"ab", b"GET")
    assert parse_message(b"HTTP/1.1 200 OK\r\n\r\nxyz") is None
    assert parse_message(b"HTTP/1.1 200 OK\r\n\r\nxyz", eof=True)[0].start == "HTTP/1.1 200 OK"


def test_bad_ingress_objects_are_refused():
    with pytest.raises(ConfigError, match="must start with '/'"):
        IngressPath("api", "api", 80)
    with pytest.raises(ConfigError, match="pathType 'Regex'"):
        IngressPath("/api", "api", 80, "Regex")
    with pytest.raises(ConfigError, match="names service 'nosuch'"):
        IngressNginx((IngressRule("a", (IngressPath("/", "nosuch", 80),)),), BACKENDS)
    with pytest.raises(ConfigError, match="needs a port"):
        ServiceBackend("default", "shop", 80, "10.96.0.20", ("10.244.0.7",))
