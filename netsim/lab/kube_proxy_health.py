"""A stand-in for kube-proxy's Go service health server, in the lab's node namespaces.

The lab runs no kube-proxy: its rules are loaded from the model, and where the model runs
kube-proxy's health server on a Service's healthCheckNodePort (netsim/programs/healthcheck.py)
the lab runs this program instead, on real sockets (netsim.lab.programs). It is not kube-proxy
and not Go's net/http: it writes what those write, built here from the sources and not from
the model's program, so that a comparison with the kernel checks the model's bytes against an
independent reading:

- the handler (kubernetes pkg/proxy/healthcheck/service_health.go at 124526cf, hcHandler.
  ServeHTTP): headers Content-Type, X-Content-Type-Options, X-Load-Balancing-Endpoint-Weight;
  200 with local endpoints, else 503; the body is the Go template below, its common
  indentation removed (lithammer/dedent, which Python's textwrap.dedent matches for this
  text: whitespace-only lines emptied, the common tab prefix cut) and newlines trimmed at
  both ends;
- Go's net/http response (server.go): `HTTP/1.1 <code> <StatusText>`, the handler's headers
  sorted by key (Header.WriteSubset), then Date and Content-Length (extraHeader.Write), a blank
  line and the body in one write; the connection stays open until the client closes it.

What the sources leave to the running process is taken from elsewhere: the Date is this
machine's clock, as Go's time.Now() would be (the comparison matches it to the model's fixed
date by rule, netsim.lab.conversation), and the count of local ready endpoints, which
kube-proxy learns from the API server's EndpointSlices, is the cluster's (the model's
`HealthServerFactory.local_endpoints`, the same input kube-proxy would be given).
"""

from __future__ import annotations

import textwrap
from email.utils import formatdate

from ..programs.events import (
    Accepted, Action, Close, ConnectionReset, DataReceived, Event, Listen, Open, PeerClosed, Program, Send, Started,
)

# the handler's fmt.Sprintf template, with the Go source's two-tab indentation
TEMPLATE = """
\t\t{
\t\t\t"service": {
\t\t\t\t"namespace": %s,
\t\t\t\t"name": %s
\t\t\t},
\t\t\t"localEndpoints": %d,
\t\t\t"serviceProxyHealthy": %s
\t\t}
\t\t"""

REASONS = {200: "OK", 503: "Service Unavailable"}        # net/http's StatusText


def go_quote(text: str) -> str:
    """%q of a DNS label (letters, digits, '-'): the text in double quotes."""
    assert all(c.isalnum() or c == "-" for c in text), text
    return f'"{text}"'


class KubeProxyHealthStandIn(Program):
    """Serves `namespace`/`service`'s health check on TCP `port` with `count` local endpoints."""

    name = "kube-proxy-health-stand-in"

    def __init__(self, port: int, namespace: str, service: str, count: int) -> None:
        super().__init__()
        self.port, self.namespace, self.service, self.count = port, namespace, service, count
        self.pending: dict[str, bytes] = {}

    def answer(self) -> bytes:
        healthy = True                       # the lab has no kube-proxy sync to fail
        body = textwrap.dedent(TEMPLATE % (go_quote(self.namespace), go_quote(self.service), self.count,
                                           "true" if healthy else "false")).strip("\n").encode()
        code = 200 if self.count != 0 and healthy else 503
        handler = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
                   "X-Load-Balancing-Endpoint-Weight": str(self.count)}
        head = f"HTTP/1.1 {code} {REASONS[code]}\r\n"
        head += "".join(f"{key}: {handler[key]}\r\n" for key in sorted(handler))
        head += f"Date: {formatdate(usegmt=True)}\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def on_event(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return [Open("healthz", "tcp"), Listen("healthz", self.port)]
        if isinstance(event, Accepted):
            self.pending[event.sock] = b""
            return []
        if isinstance(event, DataReceived) and event.sock in self.pending:
            data = self.pending[event.sock] + event.data
            out: list[Action] = []
            while b"\r\n\r\n" in data:              # curl's GET has no body: one request per head
                _, data = data.split(b"\r\n\r\n", 1)
                out.append(Send(event.sock, self.answer()))
            self.pending[event.sock] = data
            return out
        if isinstance(event, (PeerClosed, ConnectionReset)):
            self.pending.pop(event.sock, None)
            return [Close(event.sock)]
        return []
