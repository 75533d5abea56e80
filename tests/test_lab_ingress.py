"""The Ingress path on the kernel, and the Ingress controller program against real nginx.

1. The path (tests/ingress_topology.py): the model's reference cluster with the ingress-nginx
   controller pod behind its LoadBalancer Service, rebuilt by netsim.lab; the controller's port
   80 runs netsim's own IngressNginx program on real sockets in the pod's namespace (lab/
   programs.py ProgramRunner, which also opens the proxy's upstream connection there), the
   backends netsim's echoserver; real curl 7.88.1 on ext asks http://192.168.50.200/... with
   `Host: shop.example.com`. Every frame at every capture point is compared with
   `Cluster.fetch` (netsim/lab/conversation.py: exact headers, payload bytes, sequence numbers
   relative to the ISNs, ports by rule), ARP as a set: 0 differences. One Lab per case: the lab's
   proxy keeps its state (its keepalive pool, its request count) across requests, a walk's is
   fresh.

2. The program against nginx: nginx 1.22.1 (Debian's nginx-light) runs in a namespace with the
   `location` block ingress-nginx controller-v1.15.1 writes for one path (the `proxy_set_header`
   lines of nginx.tmpl in their order, the `$connection_upgrade` and `$req_id` maps,
   `proxy_http_version 1.1`, an upstream with `keepalive 320`), listening on the controller
   pod's address 10.244.1.5:80. Namespaces (npi-<pid>-<role>, `ip netns` through argument
   lists): `ingress` holds 10.244.1.5 on a veth to `outside`, which holds the client's address
   192.168.0.50 and the backend pod's 10.244.0.7 on its lo. curl (7.88.1) sends from
   192.168.0.50 with `Host: shop.example.com`; a Python backend on 10.244.0.7:8080 records each
   request's bytes and its peer. netsim's IngressNginx gets the same client bytes on DirectWire.
   What is compared: the request the backend reads, header for header and the body, but the
   random X-Request-ID; the peer address it accepted; the names and order of the response
   headers curl gets but nginx's Server and Date. Tests wait for lines from the processes, never
   for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from netsim.cluster.ingress import tcp_connections
from netsim.lab import Lab, unavailable_reason
from netsim.lab.conversation import differences
from netsim.lab.tools import run_tool
from netsim.programs.ingress import (
    EchoHeaders, HttpMessage, IngressNginx, IngressPath, IngressRule, ServiceBackend, parse_message,
)
from netsim.programs.wire import DirectWire
from tests import labkit
from tests.ingress_topology import HOST, LB_IP, ingress_cluster
from tests.test_programs_ingress import Curl

needs_nginx = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nginx", "curl")),
    reason="needs root, iproute2, nginx (nginx-light) and curl")
LAB_REASON = unavailable_reason() or (None if shutil.which("curl") else "curl is not installed")
needs_lab = pytest.mark.skipif(LAB_REASON is not None, reason=f"real-kernel lab unavailable: {LAB_REASON}")

# (id, cluster arguments, how ext reaches the controller, path)
PATHS = [
    ("lb-cluster-policy", {}, "lb", "/cart"),
    ("lb-path-to-api", {}, "lb", "/api/items"),
    ("lb-local-policy", {"policy": "Local"}, "lb", "/cart"),
    ("service-upstream", {"service_upstream": True}, "lb", "/cart"),
    ("nodeport-other-node", {"service_type": "NodePort"}, "node2", "/cart"),
    ("lb-nftables-mode", {"proxy_mode": "nftables"}, "lb", "/cart"),
    ("unknown-host-404", {}, "lb", "/cart"),
]


@needs_lab
@pytest.mark.parametrize("case", PATHS, ids=[p[0] for p in PATHS])
def test_the_ingress_path_is_the_kernels_frame_for_frame(case):
    name, kw, entry, path = case
    cluster, controller = ingress_cluster(**kw)
    svc = cluster.services[controller.service]
    url = f"http://{LB_IP}{path}" if entry == "lb" else f"http://192.168.50.12:{svc.node_port}{path}"
    host = "other.example.com" if name == "unknown-host-404" else HOST
    with Lab(cluster) as lab:
        kernel = run_tool(lab, "ext", ["curl", "-sS", "-H", f"Host: {host}", url])
        errors = list(lab._servers.errors)
    model = cluster.fetch("ext", url, host=host)
    assert errors == []
    assert (kernel.returncode, kernel.stdout, kernel.stderr) == (model.status, model.stdout, model.stderr) == (
        0, model.stdout, "")
    assert differences(model.trace, kernel.trace) == []
    connections = tcp_connections(model.trace)
    assert [c.server for c in connections] == (["ingress-nginx"] if name == "unknown-host-404" else
                                               ["ingress-nginx", "pod-b" if "api" in path else "pod-c"])
    # the conversation is all there: each connection's handshake and data at the pods
    assert len(model.trace) > 100 and sum(1 for h in kernel.trace if h.where == "ingress-nginx/eth0") > 10

NAMESPACES = labkit.Namespaces("npi")
PREFIX = NAMESPACES.prefix
run, in_ns, reclaim_stale = labkit.run, NAMESPACES.in_ns, NAMESPACES.reclaim_stale
ROLES = ("ingress", "outside")

NGINX_CONF = """
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' '';
    }}
    map $http_x_request_id $req_id {{
        default $http_x_request_id;
        "" $request_id;
    }}
    proxy_pass_header Server;
    upstream upstream_balancer {{
        server 10.244.0.7:8080;
        keepalive 320;
    }}
    server {{
        listen 10.244.1.5:80;
        server_name shop.example.com;
        location / {{
            set $pass_access_scheme $scheme;
            set $pass_server_port $server_port;
            set $best_http_host $http_host;
            set $pass_port $pass_server_port;
            proxy_set_header Host $best_http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Request-ID $req_id;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $best_http_host;
            proxy_set_header X-Forwarded-Port $pass_port;
            proxy_set_header X-Forwarded-Proto $pass_access_scheme;
            proxy_set_header X-Forwarded-Scheme $pass_access_scheme;
            proxy_set_header X-Scheme $pass_access_scheme;
            proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;
            proxy_set_header X-Original-Forwarded-Host $http_x_forwarded_host;
            proxy_set_header Proxy "";
            proxy_http_version 1.1;
            proxy_pass http://upstream_balancer;
        }}
    }}
}}
"""

BACKEND = """
import json, socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.244.0.7", 8080))
s.listen(8)
print("ready", flush=True)

def serve(c, peer):
    # one request after another on the connection: nginx keeps its upstream connections
    data = b""
    while True:
        while b"\\r\\n\\r\\n" not in data:
            more = c.recv(65536)
            if not more:
                return
            data += more
        head, _, data = data.partition(b"\\r\\n\\r\\n")
        length = [int(l.split(b":")[1]) for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")]
        while length and len(data) < length[0]:
            data += c.recv(65536)
        body, data = (data[:length[0]], data[length[0]:]) if length else (b"", data)
        print(json.dumps([peer[0], (head + b"\\r\\n\\r\\n" + body).decode("latin-1")]), flush=True)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 2\\r\\n\\r\\nok")

while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""


@pytest.fixture(scope="module")
def nginx_lab():
    reclaim_stale()
    procs: list[subprocess.Popen] = []
    try:
        for role in ROLES:
            run("ip", "netns", "add", PREFIX + role)
            in_ns(role, "ip", "link", "set", "lo", "up")
        in_ns("outside", "ip", "link", "add", "v0", "type", "veth", "peer", "name", "eth0", "netns",
              PREFIX + "ingress")
        in_ns("outside", "ip", "addr", "add", "10.244.1.1/24", "dev", "v0")
        in_ns("outside", "ip", "link", "set", "v0", "up")
        for addr in ("192.168.0.50/32", "10.244.0.7/32"):
            in_ns("outside", "ip", "addr", "add", addr, "dev", "lo")
        in_ns("ingress", "ip", "addr", "add", "10.244.1.5/24", "dev", "eth0")
        in_ns("ingress", "ip", "link", "set", "eth0", "up")
        in_ns("ingress", "ip", "route", "add", "default", "via", "10.244.1.1")
        backend = subprocess.Popen(["ip", "netns", "exec", PREFIX + "outside", sys.executable, "-c", BACKEND],
                                   stdout=subprocess.PIPE, text=True)
        procs.append(backend)
        assert backend.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory(prefix="npi-nginx-") as tmp:
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(dir=tmp))
            in_ns("ingress", "nginx", "-t", "-c", conf, "-p", tmp)
            nginx = subprocess.Popen(["ip", "netns", "exec", PREFIX + "ingress", "nginx", "-c", conf, "-p", tmp],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(nginx)
            # ready when its socket listens
            in_ns("outside", sys.executable, "-c", "import socket, time\n"
                  "for _ in range(500):\n"
                  "    try:\n"
                  "        socket.create_connection(('10.244.1.5', 80), timeout=1).close(); break\n"
                  "    except OSError: time.sleep(0.01)\n")
            yield backend
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        for role in ROLES:
            run("ip", "netns", "del", PREFIX + role, check=False)


def kernel_request(backend, *curl_args: str) -> tuple[str, HttpMessage, str]:
    """curl through real nginx: (the backend's peer address, the request it read, curl's -i output
    with its line ends read as newlines)."""
    out = in_ns("outside", "curl", "-sS", "-i", "--interface", "192.168.0.50", "-H", "Host: shop.example.com",
                *curl_args)
    peer, raw = json.loads(backend.stdout.readline())
    parsed = parse_message(raw.encode("latin-1"))
    assert parsed is not None
    return peer, parsed[0], out


def model_request(url: str, **kw) -> tuple[HttpMessage, HttpMessage]:
    wire = DirectWire()
    proxy = wire.add("10.244.1.5", IngressNginx(
        (IngressRule("shop.example.com", (IngressPath("/", "shop", 80),)),),
        (ServiceBackend("default", "shop", 80, "10.96.0.20", ("10.244.0.7:8080",)),)))
    wire.add("10.244.0.7", EchoHeaders(8080))
    wire.add("192.168.0.50", Curl(url, "shop.example.com", **kw))
    wire.run()
    record = proxy.log[0]
    assert record.upstream_request is not None and record.response is not None
    return record.upstream_request, record.response


def without_request_id(message: HttpMessage) -> HttpMessage:
    return HttpMessage(message.start, tuple((k, "ID" if k == "X-Request-ID" else v) for k, v in message.headers),
                       message.body)


@needs_nginx
def test_the_backend_gets_what_nginx_sends_from_the_proxy_pods_address(nginx_lab):
    peer, real, out = kernel_request(nginx_lab, "http://10.244.1.5/cart")
    model, response = model_request("http://10.244.1.5:80/cart")
    assert peer == "10.244.1.5"
    assert re.fullmatch(r"[0-9a-f]{32}", real.header("X-Request-ID"))
    assert without_request_id(real) == without_request_id(model)
    # the client's answer: nginx's Server and Date lines are the ones netsim leaves out
    head = [line for line in out.split("\n\n")[0].splitlines()[1:]
            if not line.startswith(("Server:", "Date:"))]
    assert [h.split(":")[0] for h in head] == [k for k, _ in response.headers]
    assert head[-1] == "Connection: keep-alive"


@needs_nginx
def test_a_post_and_a_clients_own_x_forwarded_for(nginx_lab):
    peer, real, _ = kernel_request(nginx_lab, "-d", "n=1", "-H", "X-Forwarded-For: 203.0.113.9",
                                   "http://10.244.1.5/api/items")

    class Behind(Curl):
        def request(self) -> bytes:
            head, _, body = super().request().partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            # curl writes -H headers after its own Accept, before Content-Length
            lines.insert(4, b"X-Forwarded-For: 203.0.113.9")
            return b"\r\n".join(lines) + b"\r\n\r\n" + body

    wire = DirectWire()
    proxy = wire.add("10.244.1.5", IngressNginx(
        (IngressRule("shop.example.com", (IngressPath("/", "shop", 80),)),),
        (ServiceBackend("default", "shop", 80, "10.96.0.20", ("10.244.0.7:8080",)),)))
    wire.add("10.244.0.7", EchoHeaders(8080))
    wire.add("192.168.0.50", Behind("http://10.244.1.5:80/api/items", "shop.example.com", data=b"n=1"))
    wire.run()
    model = proxy.log[0].upstream_request
    assert without_request_id(real) == without_request_id(model)
    assert (real.header("X-Forwarded-For"), real.header("X-Original-Forwarded-For"), real.body) == (
        "192.168.0.50", "203.0.113.9", b"n=1")
