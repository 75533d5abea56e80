"""The Ingress path through the walk (tests/ingress_topology.py): curl on ext asks the
controller's load-balancer address for shop.example.com; kube-proxy on node1 (MetalLB's
elected node) DNATs the SYN to the controller pod, the controller's proxy opens its own
connection to a backend pod, and the backend answers with what it received.

Expected values: the controller learns endpoints, not ClusterIPs (ingress-nginx
controller.go, `serviceEndpoints`); with externalTrafficPolicy Cluster kube-proxy's
KUBE-EXT- chain marks the connection for masquerade, and KUBE-POSTROUTING's MASQUERADE
--random-fully gives it cni0's address (10.244.0.1) and a new port; with Local no mark, the
client's own address; through a NodePort on node2 the source becomes node2's flannel.1
address 10.244.1.0. The headers are nginx.tmpl's proxy_set_header list (programs/ingress.py).
"""

from __future__ import annotations

import pytest

from netsim.cluster.ingress import TcpConnection, tcp_connections
from netsim.errors import ConfigError, UsageError
from netsim.lab import edge
from netsim.programs.ingress import HttpMessage
from tests.ingress_topology import CONTROLLER_IP, HOST, LB_IP, RULES, ingress_cluster

EXT, POD_B, POD_C = "203.0.113.10", "10.244.0.3", "10.244.1.2"


def request(policy="Cluster", path="/cart", host=HOST, **kw):
    cluster, controller = ingress_cluster(policy, **kw)
    run = cluster.fetch("ext", f"http://{LB_IP}{path}", host=host)
    return cluster, controller, run


def test_with_every_default_this_is_the_cluster_chapter_18s_lab_case_builds():
    """netsim.lab.edge.ingress_cluster (the lab's curl runs) and ingress_cluster() are one build:
    the same rules on every node and the same bytes at every hop of the same fetch."""
    ours, _controller = ingress_cluster()
    labs = edge.ingress_cluster()
    for node in ours.nodes:
        assert ours.show(node, "iptables-save") == labs.show(node, "iptables-save"), node
    mine, theirs = (c.fetch("ext", f"http://{LB_IP}/cart", host=HOST) for c in (ours, labs))
    assert mine.stdout == theirs.stdout and mine.status == theirs.status == 0
    assert [[h.data for h in t.hops] for t in mine.traces] == [[h.data for h in t.hops] for t in theirs.traces]


def backend_lines(run) -> dict[str, str]:
    """The echoserver's body: what the backend's accept() and read() gave it."""
    return dict(line.split("=", 1) for line in run.stdout.splitlines())


def test_the_controller_is_a_pod_behind_a_load_balancer_service():
    cluster, controller = ingress_cluster()
    svc = cluster.services["ingress-nginx-controller"]
    assert (controller.pod, controller.service, cluster.pods["ingress-nginx"].ip) == (
        "ingress-nginx", "ingress-nginx-controller", CONTROLLER_IP)
    assert (svc.type, svc.load_balancer_ips, svc.port, svc.target_port, svc.endpoints) == (
        "LoadBalancer", (LB_IP,), 80, 80, [("ingress-nginx", CONTROLLER_IP)])
    assert cluster.l2_announcer("ingress-nginx-controller") == "node1"


def test_one_request_from_outside_is_two_tcp_connections():
    cluster, controller, run = request()
    first, second = tcp_connections(run.trace)
    # client -> proxy: sent to the load-balancer address, accepted by the controller pod from
    # cni0's address (MASQUERADE --random-fully: a new port)
    assert (first.client, first.server) == ("ext", "ingress-nginx")
    assert first.sent[0] == EXT and first.sent[2:] == (LB_IP, 80)
    assert first.accepted[0] == "10.244.0.1" and first.accepted[2:] == (CONTROLLER_IP, 80)
    assert [(where, what, old) for where, what, old, _new in first.nat] == [
        ("node1/eth0", "DNAT", f"{LB_IP}:80"), ("node1/eth0", "MASQUERADE", f"{EXT}:{first.sent[1]}")]
    assert first.nat[0][3] == f"{CONTROLLER_IP}:80" and first.nat[1][3] == f"10.244.0.1:{first.accepted[1]}"
    # proxy -> backend: straight to pod-c's address and target port, nothing translated
    assert second == TcpConnection("ingress-nginx", "pod-c", (CONTROLLER_IP, second.sent[1], POD_C, 8080),
                                   (CONTROLLER_IP, second.sent[1], POD_C, 8080), ())
    assert 32768 <= second.sent[1] <= 60999            # net.ipv4.ip_local_port_range in the controller pod
    assert run.status == 0 and run.command == f"curl -sS -H Host: {HOST} http://{LB_IP}/cart"


def test_the_headers_each_side_sees():
    cluster, controller, run = request()
    (record,) = controller.log
    # what curl sent, as the proxy read it, and from where (its accept())
    assert record.request == HttpMessage("GET /cart HTTP/1.1", (("Host", HOST), ("User-Agent", "curl/7.88.1"),
                                                                ("Accept", "*/*")))
    (first, second) = tcp_connections(run.trace)
    assert (record.client, record.client_port) == first.accepted[:2]
    assert (record.location.server, record.location.path, record.upstream) == (HOST, "/", f"{POD_C}:8080")
    # what the backend read: the proxy pod's address as peer, the client only in headers
    request_id = record.upstream_request.header("X-Request-ID")
    assert backend_lines(run) == {
        "client_address": CONTROLLER_IP, "request": "GET /cart HTTP/1.1", "Host": HOST, "X-Request-ID": request_id,
        "X-Real-IP": "10.244.0.1", "X-Forwarded-For": "10.244.0.1", "X-Forwarded-Host": HOST,
        "X-Forwarded-Port": "80", "X-Forwarded-Proto": "http", "X-Forwarded-Scheme": "http", "X-Scheme": "http",
        "User-Agent": "curl/7.88.1", "Accept": "*/*"}
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    # what curl got back: the backend's answer with nginx's Connection header
    assert [k for k, _ in record.response.headers] == ["Content-Type", "Content-Length", "Connection"]
    assert record.response.header("Connection") == "keep-alive"
    assert run.result.status_line == "HTTP/1.1 200 OK" and run.stdout == record.response.body.decode()


def test_policy_local_keeps_the_clients_address_for_the_headers():
    cluster, controller, run = request("Local")
    first, _second = tcp_connections(run.trace)
    assert first.accepted[:2] == first.sent[:2] == (EXT, first.sent[1])
    assert [n[:2] for n in first.nat] == [("node1/eth0", "DNAT")]
    lines = backend_lines(run)
    assert (lines["client_address"], lines["X-Real-IP"], lines["X-Forwarded-For"]) == (CONTROLLER_IP, EXT, EXT)
    assert cluster.services["ingress-nginx-controller"].health_check_node_port is not None


def test_path_routing_picks_the_api_service_and_unknown_hosts_get_the_default_backend():
    _, controller, run = request(path="/api/items")
    assert [c.server for c in tcp_connections(run.trace)] == ["ingress-nginx", "pod-b"]
    assert backend_lines(run)["request"] == "GET /api/items HTTP/1.1" and controller.log[0].upstream == f"{POD_B}:8080"
    # Prefix /api is location /api/ plus = /api: /apix falls to `/`, the shop
    _, controller, run = request(path="/apix")
    assert controller.log[0].upstream == f"{POD_C}:8080"
    # a Host no rule names: the default server's location / is the default backend, 404,
    # answered by nginx itself: one connection only
    _, controller, run = request(host="other.example.com")
    assert [c.server for c in tcp_connections(run.trace)] == ["ingress-nginx"]
    assert (run.status, run.result.status_line, run.stdout) == (0, "HTTP/1.1 404 Not Found", "404 Not Found\n")
    assert controller.log[0].upstream == "" and controller.log[0].location.server == "_"


def test_service_upstream_goes_through_the_backends_cluster_ip():
    cluster, controller, run = request(service_upstream=True)
    _first, second = tcp_connections(run.trace)
    shop = cluster.services["shop"].cluster_ip
    assert second.sent[2:] == (shop, 80) and second.accepted[2:] == (POD_C, 8080)
    # kube-proxy on the controller's node DNATs it as the pod's packet enters node1 (bridged:
    # br_netfilter's PREROUTING on the pod's host veth); the source stays the controller's
    assert [(what, old, new) for _where, what, old, new in second.nat] == [("DNAT", f"{shop}:80", f"{POD_C}:8080")]
    assert second.nat[0][0].startswith("node1/veth") and second.accepted[0] == CONTROLLER_IP
    assert controller.log[0].upstream == f"{shop}:80"


def test_through_a_node_port_on_the_other_node():
    cluster, controller = ingress_cluster(service_type="NodePort")
    node_port = cluster.services["ingress-nginx-controller"].node_port
    run = cluster.fetch("ext", f"http://192.168.50.12:{node_port}/cart", host=HOST)
    first, second = tcp_connections(run.trace)
    assert first.sent[2:] == ("192.168.50.12", node_port) and first.accepted[0] == "10.244.1.0"
    assert [n[:2] for n in first.nat] == [("node2/eth0", "DNAT"), ("node2/eth0", "MASQUERADE")]
    assert backend_lines(run)["X-Forwarded-For"] == "10.244.1.0" and second.server == "pod-c"


def test_a_backend_with_no_ready_endpoint_is_nginx_s_503():
    cluster, controller = ingress_cluster()
    cluster.set_ready("pod-c", False)
    run = cluster.fetch("ext", f"http://{LB_IP}/cart", host=HOST)
    assert run.result.status_line == "HTTP/1.1 503 Service Temporarily Unavailable"
    assert [c.server for c in tcp_connections(run.trace)] == ["ingress-nginx"]


def test_the_same_bytes_every_run():
    one = request()[2]
    two = request()[2]
    assert [h.data for h in one.trace] == [h.data for h in two.trace]


@pytest.mark.parametrize("rules, error", [
    ([], "must be a non-empty list"),
    ([{"host": "shop.example.com", "paths": [{"path": "/", "service": "nope", "port": 80}]}], "'nope', which does not"),
    ([{"host": "shop.example.com", "paths": [{"path": "/", "service": "shop", "port": 81}]}], "has no TCP port 81"),
    ([{"host": "bad host!", "paths": []}], "must be a DNS name"),
    ([{"host": "a.example", "paths": [{"path": "api", "service": "shop", "port": 80}]}], "must start with '/'"),
    ([{"host": "a.example", "paths": [{"path": "/", "service": "shop", "port": 80, "pathType": "Regex"}]}],
     "pathType 'Regex'"),
    ("shop", "must be a non-empty list"),
])
def test_bad_ingress_rules_are_refused_naming_the_value(rules, error):
    cluster, _controller = ingress_cluster()
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace("!", "!")):
        cluster.add_ingress_controller(rules, name="second")


def test_bad_host_headers_and_service_types_are_refused():
    cluster, _controller = ingress_cluster()
    with pytest.raises(UsageError, match="Host header"):
        cluster.fetch("ext", f"http://{LB_IP}/", host="a\r\nX-Evil: 1")
    with pytest.raises(ConfigError, match="service type 'ClusterIP'"):
        cluster.add_ingress_controller(RULES, name="second", service_type="ClusterIP")
