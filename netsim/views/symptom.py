"""What the user sees: a trace's outcome as the tool or system call in the sending pod shows it.

Troubleshooting starts from a symptom, not from a trace. `symptom(trace)` writes the exchange's
end (`Trace.outcome`: its kind, errno, the address that answered or reported an error, the ICMP
type and code) the way the user meets it: `ping` (iputils) for ICMP echo, the `connect()` a TCP
client makes (as `strace` prints it) for TCP, `sendto()` and the wait for an answer for UDP.

iputils' wording: ping/ping_common.c and ping/ping.c print "From ADDR icmp_seq=N Destination
Host Unreachable" (and the other ICMP texts below) for an ICMP error, and the statistics line
"N packets transmitted, M received, +E errors, P% packet loss". A TCP connect that gets no
answer fails with ETIMEDOUT once the SYN has been retransmitted net.ipv4.tcp_syn_retries
times (default 6, about 127 s; include/net/tcp.h TCP_SYN_RETRIES); an ICMP error reported to
the socket ends it with the errno `netsim.decision.icmp_errno` gives.
"""

from __future__ import annotations

from ..packet import ICMP, TCP, UDP
from ..programs.socket_errors import strerror as _strerror
from ..trace import Trace
from .sentences import outcome_text

# iputils ping's words for the ICMP errors it reports (type, code).
PING_TEXT = {
    (3, 0): "Destination Net Unreachable", (3, 1): "Destination Host Unreachable",
    (3, 2): "Destination Protocol Unreachable", (3, 3): "Destination Port Unreachable",
    (3, 4): "Frag needed and DF set", (3, 13): "Communication prohibited by filter",
    (11, 0): "Time to live exceeded",
}


def _sockaddr(ip: str, port: int) -> str:
    return f'{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr("{ip}")}}'


def symptom(trace: Trace) -> str:
    """The end of the exchange as the sender's user sees it (a few lines of terminal text)."""
    first = next((h for h in trace.hops if h.role == "request" and h.inner_ip is not None), None)
    if first is None or first.inner_ip is None:
        return outcome_text(trace.outcome)
    ip = first.inner_ip
    outcome = trace.outcome
    kind = getattr(outcome, "kind", "")
    code = getattr(outcome, "errno", "")
    ok = getattr(outcome, "ok", False)
    peer = getattr(outcome, "peer", "")
    icmp = getattr(outcome, "icmp", None)
    who = first.netns
    payload = ip.payload
    if isinstance(payload, ICMP):
        size = ip.length() - 28
        lines = [f"{who}$ ping -c 1 {ip.dst}", f"PING {ip.dst} ({ip.dst}) {size}({size + 28}) bytes of data."]
        errors = ""
        if ok:
            back = [h for h in trace.hops if h.role == "reply" and h.verdict == "delivered" and h.inner_ip is not None]
            ttl = back[-1].inner_ip.ttl if back and back[-1].inner_ip is not None else 64
            lines.append(f"{size + 8} bytes from {ip.dst}: icmp_seq=1 ttl={ttl}")
        elif kind == "icmp-error" and icmp is not None:
            source = peer.split(":")[0] if peer else "?"
            lines.append(f"From {source} icmp_seq=1 {PING_TEXT.get(tuple(icmp), f'ICMP type {icmp[0]} code {icmp[1]}')}")
            errors = "+1 errors, "
        lines += ["", f"--- {ip.dst} ping statistics ---",
                  f"1 packets transmitted, {1 if ok else 0} received, {errors}{0 if ok else 100}% packet loss"]
        return "\n".join(lines)
    if isinstance(payload, TCP):
        call = f"connect(3, {_sockaddr(ip.dst, payload.dport)}, 16)"
        result = "= 0" if ok else f"= -1 {code} ({_strerror(code)})"
        lines = [f"{who}: a TCP client connects to {ip.dst}:{payload.dport}", f"{call} {result}"]
        if code == "ETIMEDOUT":
            lines.append("(after the SYN was sent 7 times over about 127 s: net.ipv4.tcp_syn_retries = 6)")
        return "\n".join(lines)
    if isinstance(payload, UDP):
        size = len(payload.payload) if isinstance(payload.payload, (bytes, bytearray)) else ip.length() - 28
        lines = [f"{who}: a UDP client sends {size} bytes to {ip.dst}:{payload.dport}",
                 f"sendto(3, ..., {size}, 0, {_sockaddr(ip.dst, payload.dport)}, 16) = {size}"]
        if ok:
            lines.append("recvfrom(3, ...) returns the answer")
        elif code and code != "ETIMEDOUT":
            lines.append(f"recv(3, ...) = -1 {code} ({_strerror(code)})")
        else:
            lines.append("recvfrom(3, ...) waits: nothing comes back, until the application's own timeout")
        return "\n".join(lines)
    return outcome_text(outcome)
