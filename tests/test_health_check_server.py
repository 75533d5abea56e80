"""kube-proxy's service health server on a healthCheckNodePort (netsim/programs/healthcheck.py):
the exact bytes Go's net/http writes for hcHandler (service_health.go), the count of ready local
endpoints at the time of the walk, the TCP teardown (the client's FIN first: HTTP/1.1 keep-alive),
one server per Service, and the command line's curl."""

from __future__ import annotations

import io

import pytest

import netsim
from netsim import clock, pcap
from netsim.cli import main
from netsim.cluster import load_balancer_cluster
from netsim.programs.events import Accepted, Close, DataReceived, Listen, Open, PeerClosed, Send, Shutdown
from netsim.programs.healthcheck import ServiceHealthServer, health_response, http_date

NODE1, NODE2 = "192.168.50.11", "192.168.50.12"
HC = 30088
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 192.168.50.12:30088\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"


def body(count: int, name: str = "local-lb") -> bytes:
    return (b'{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "' + name.encode() + b'"\n\t},\n'
            b'\t"localEndpoints": ' + str(count).encode() + b',\n\t"serviceProxyHealthy": true\n}')


OK = (b"HTTP/1.1 200 OK\r\n"
      b"Content-Type: application/json\r\n"
      b"X-Content-Type-Options: nosniff\r\n"
      b"X-Load-Balancing-Endpoint-Weight: 1\r\n"
      b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
      b"Content-Length: 119\r\n"
      b"\r\n" + body(1))
UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\n"
               b"Content-Type: application/json\r\n"
               b"X-Content-Type-Options: nosniff\r\n"
               b"X-Load-Balancing-Endpoint-Weight: 0\r\n"
               b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
               b"Content-Length: 119\r\n"
               b"\r\n" + body(0))


@pytest.fixture(scope="module")
def cluster():
    return load_balancer_cluster()


def served(trace, node_ip: str) -> list[bytes]:
    """The TCP payloads the node sent to ext, as ext's eth0 received them."""
    return [h.ip.payload.payload for h in trace.hops if h.where == "ext/eth0" and h.direction == "rx"
            and h.ip is not None and h.ip.src == node_ip and h.ip.payload.payload]


def test_the_node_with_the_endpoint_answers_200_with_its_count(cluster):
    run = cluster.fetch("ext", f"http://{NODE2}:{HC}/healthz")
    assert (run.status, run.stdout, run.stderr) == (0, body(1).decode(), "")
    assert served(run.traces[-1], NODE2) == [OK]
    assert len(body(1)) == 119


def test_a_node_without_an_endpoint_answers_503_with_zero(cluster):
    run = cluster.fetch("ext", f"http://{NODE1}:{HC}/")        # any path: the handler is the server's root
    assert (run.status, run.stdout) == (0, body(0).decode())   # curl without -f: a 503 is still exit 0
    assert served(run.traces[-1], NODE1) == [UNAVAILABLE]
    assert run.result.status_line == "HTTP/1.1 503 Service Unavailable"


def test_the_client_closes_first_and_the_server_follows(cluster):
    trace = cluster.fetch("ext", f"http://{NODE2}:{HC}/healthz").traces[-1]
    at_ext = [(h.direction, h.ip.payload.flags, len(h.ip.payload.payload)) for h in trace.hops
              if h.where == "ext/eth0" and h.ip is not None]
    assert at_ext == [("tx", "S", 0), ("rx", "SA", 0), ("tx", "A", 0), ("tx", "PA", len(REQUEST)),
                      ("rx", "A", 0), ("rx", "PA", len(OK)), ("tx", "A", 0),
                      ("tx", "FA", 0), ("rx", "FA", 0), ("tx", "A", 0)]


def test_the_count_is_the_nodes_at_the_time_of_the_walk():
    c = load_balancer_cluster()
    c.set_ready("pod-c", False)
    assert served(c.fetch("ext", f"http://{NODE2}:{HC}/").traces[-1], NODE2) == [UNAVAILABLE]
    c.set_ready("pod-c", True)
    assert served(c.fetch("ext", f"http://{NODE2}:{HC}/").traces[-1], NODE2) == [OK]


def test_a_second_services_port_on_the_same_node_is_its_own_server():
    """Service `near` has pod-a and pod-b on node1 behind two ports: node1 counts two endpoints
    (distinct addresses, not address and port pairs) on near's port, while local-lb's port on
    the same node still answers 503 with 0."""
    c = load_balancer_cluster()
    near = c.add_service("near", pods=["pod-a", "pod-b"], type="LoadBalancer", external_traffic_policy="Local",
                         ports=[{"name": "http", "port": 80, "target_port": 8080},
                                {"name": "alt", "port": 81, "target_port": 8081}])
    assert near.health_check_node_port not in (None, HC)
    answer = served(c.fetch("ext", f"http://{NODE1}:{near.health_check_node_port}/").traces[-1], NODE1)
    assert answer == [OK.replace(b"Weight: 1", b"Weight: 2").replace(b"Length: 119", b"Length: 115")
                      .replace(body(1), body(2, "near"))]
    assert served(c.fetch("ext", f"http://{NODE1}:{HC}/").traces[-1], NODE1) == [UNAVAILABLE]
    assert served(c.fetch("ext", f"http://{NODE2}:{near.health_check_node_port}/").traces[-1], NODE2) == [
        UNAVAILABLE.replace(b"Length: 119", b"Length: 115").replace(body(0), body(0, "near"))]


def test_the_program_keeps_the_connection_for_the_next_request():
    server = ServiceHealthServer(HC, "default", "local-lb", 1)
    assert server.start() == [Open("healthz", "tcp"), Listen("healthz", HC)]
    assert server.handle(Accepted("healthz", "c1", "203.0.113.10", 40000)) == []
    assert server.handle(DataReceived("c1", REQUEST[:20])) == []
    assert server.handle(DataReceived("c1", REQUEST[20:] + REQUEST)) == [Send("c1", OK), Send("c1", OK)]
    head = server.handle(DataReceived("c1", REQUEST.replace(b"GET", b"HEAD", 1)))
    assert head == [Send("c1", OK[:OK.index(b"\r\n\r\n") + 4])]       # HEAD: the same head, Content-Length too
    close = server.handle(DataReceived("c1", REQUEST.replace(b"Accept", b"Connection: close\r\nAccept")))
    assert close == [Send("c1", OK.replace(b"Content-Length: 119\r\n", b"Content-Length: 119\r\nConnection: close\r\n")),
                     Shutdown("c1")]
    assert server.handle(PeerClosed("c1")) == [Close("c1")]
    assert [m for m, _ in server.requests] == ["GET", "GET", "HEAD", "GET"]


def test_the_date_is_gos_time_format_from_the_fixed_epoch():
    assert clock.EPOCH_US == pcap.EPOCH_US             # the date a pcap file's first frame carries
    assert http_date(0) == "Thu, 01 Jan 2026 00:00:00 GMT"
    assert http_date(86_400 * 1_000_000 * 59 + 3_723_999_999) == "Sun, 01 Mar 2026 01:02:03 GMT"
    assert health_response("default", "x", 3, 1_000_000).split(b"\r\n")[4] == b"Date: Thu, 01 Jan 2026 00:00:01 GMT"


def test_the_command_lines_curl_prints_the_body(capsys):
    out = io.StringIO()
    assert main(["curl", "--cluster", "load-balancer", "ext", f"http://{NODE2}:{HC}/healthz"], out) == 0
    assert out.getvalue() == body(1).decode()
    out = io.StringIO()
    assert main(["curl", "--cluster", "load-balancer", "ext", f"http://{NODE1}:{HC}/healthz"], out) == 0
    assert out.getvalue() == body(0).decode()
    assert capsys.readouterr().err == ""


def test_the_reference_cluster_has_no_health_check_port(capsys):
    assert netsim.reference_cluster().services["web"].health_check_node_port is None
    assert main(["curl", "ext", f"http://{NODE2}:{HC}/"], io.StringIO()) == 7       # refused: nothing listens
    assert capsys.readouterr().err.startswith(f"curl: (7) Failed to connect to {NODE2} port {HC} after ")
