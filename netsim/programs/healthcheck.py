"""kube-proxy's service health server: the HTTP answer on a Service's healthCheckNodePort.

A LoadBalancer Service with externalTrafficPolicy Local gets a healthCheckNodePort, and
kube-proxy on every node serves HTTP on it, one server per Service (pkg/proxy/healthcheck/
service_health.go, read at kubernetes commit 124526cf, the version docs/edge-of-the-cluster.md
cites; netsim models kube-proxy v1.37). A cloud load balancer probes the port to send only to
nodes with an endpoint. `hcHandler.ServeHTTP` is the server's only handler, so every path and
every method gets the same answer:

- status 200 when the node has local endpoints and kube-proxy is healthy, else 503 ("Service
  Unavailable");
- headers Content-Type: application/json, X-Content-Type-Options: nosniff, and
  X-Load-Balancing-Endpoint-Weight: the count (kubernetes PR #118999, released in v1.28; the
  older file at 025f2834 has no such header);
- the body `strings.Trim(dedent.Dedent(template), "\\n")`: a JSON object indented with tabs,
  without a final newline, giving the Service's namespace and name, `localEndpoints` and
  `serviceProxyHealthy`.

The count is what kube-proxy hands the server in SyncEndpoints: `EndpointsMap.
LocalReadyEndpoints()`, the distinct addresses of this node's ready endpoints over all the
Service's ports (a terminating or unready one does not count). netsim's kube-proxy is always
healthy (`serviceProxyHealthy` true): it has no sync that fails or lags.

Go's net/http writes the response (server.go, `chunkWriter.writeHeader`): the status line, the
handler's headers sorted by key, then `extraHeader.Write`: Date (http.TimeFormat, the time the
header is written), Content-Length (the handler finished before the buffer filled), Connection
(only `close` when the request asked for it), all in one write. HTTP/1.1 keeps the connection
open for the next request until the client closes it; the server then closes its end. A
request with `Connection: close` is answered with `Connection: close` and the server shuts its
side (closeWriteAndWait; netsim leaves out its 500 ms wait before close()). A HEAD request gets
the same head (Content-Length included) and no body. Requests that do not parse as HTTP/1.x
are not modelled: the server closes the connection.

The Date: netsim's clock is microseconds since the network was made (netsim/clock.py) and has
no calendar. The date is `clock.EPOCH_US` (2026-01-01T00:00:00Z, the fixed epoch pcap files
carry too) plus the walk's clock when the request arrived, so the same walk always writes
`Thu, 01 Jan 2026 00:00:00 GMT` and the bytes stay deterministic.
"""

from __future__ import annotations

from ..clock import EPOCH_US
from .events import (
    Accepted, Action, Close, ConnectionReset, DataReceived, Event, Listen, Open, PeerClosed, Program, Send, Shutdown,
    Started,
)
from .http import parse_request

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
STATUS_TEXT = {200: "OK", 503: "Service Unavailable"}


def http_date(at_us: int) -> str:
    """Go's http.TimeFormat ("Mon, 02 Jan 2006 15:04:05 GMT") of netsim's clock `at_us`,
    counted from EPOCH_US."""
    from datetime import datetime, timezone
    t = datetime.fromtimestamp((EPOCH_US + at_us) // 1_000_000, tz=timezone.utc)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


def health_body(namespace: str, name: str, local_endpoints: int, healthy: bool = True) -> bytes:
    """The handler's JSON, as Trim(Dedent(template), "\\n") leaves it: tab-indented, no final
    newline. Namespace and name are DNS labels, which %q quotes as they are."""
    lines = ["{", '\t"service": {', f'\t\t"namespace": "{namespace}",', f'\t\t"name": "{name}"', "\t},",
             f'\t"localEndpoints": {local_endpoints},', f'\t"serviceProxyHealthy": {"true" if healthy else "false"}',
             "}"]
    return "\n".join(lines).encode()


def health_response(namespace: str, name: str, local_endpoints: int, at_us: int, healthy: bool = True,
                    head: bool = False, close: bool = False) -> bytes:
    """The bytes Go writes for one request (module docstring)."""
    status = 200 if local_endpoints != 0 and healthy else 503
    body = health_body(namespace, name, local_endpoints, healthy)
    lines = [f"HTTP/1.1 {status} {STATUS_TEXT[status]}",
             "Content-Type: application/json",
             "X-Content-Type-Options: nosniff",
             f"X-Load-Balancing-Endpoint-Weight: {local_endpoints}",
             f"Date: {http_date(at_us)}",
             f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


class ServiceHealthServer(Program):
    """kube-proxy's health server for one Service on one node: socket "healthz" on `port`,
    answering every request with the node's `local_endpoints` (the count when the walk
    started it)."""

    name = "kube-proxy-health"

    def __init__(self, port: int, namespace: str, service: str, local_endpoints: int, healthy: bool = True) -> None:
        super().__init__()
        self.port, self.namespace, self.service = port, namespace, service
        self.local_endpoints, self.healthy = local_endpoints, healthy
        self.buffers: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []          # (method, path)

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("healthz", "tcp"), Listen("healthz", self.port)]
        if isinstance(event, Accepted):
            self.buffers[event.sock] = b""
            return []
        if isinstance(event, DataReceived) and event.sock in self.buffers:
            self.buffers[event.sock] += event.data
            out: list[Action] = []
            while True:
                request = parse_request(self.buffers[event.sock])
                if request is None:
                    return out
                method, path, headers, body = request
                if method == "BAD":
                    del self.buffers[event.sock]
                    return out + [Close(event.sock)]
                head_len = self.buffers[event.sock].index(b"\r\n\r\n") + 4
                self.buffers[event.sock] = self.buffers[event.sock][head_len + len(body):]
                self.requests.append((method, path))
                close = headers.get("connection", "").lower() == "close"
                out.append(Send(event.sock, health_response(self.namespace, self.service, self.local_endpoints,
                                                            event.at, self.healthy, method == "HEAD", close)))
                if close:
                    del self.buffers[event.sock]
                    return out + [Shutdown(event.sock)]
        if isinstance(event, (PeerClosed, ConnectionReset)):
            self.buffers.pop(event.sock, None)
            return [Close(event.sock)]
        return []
