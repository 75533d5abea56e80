"""The transport layer: sockets, the programs that own them, and the kernel's own responders.

Programs (netsim/programs/: ping, traceroute, dig, curl, nc, the servers) are sans-IO state
machines: they ask for system calls (actions) and read what the kernel reports (events). This
package is the kernel side of that contract for a walk, as `programs.wire.DirectWire` is with
the network taken out:

| module | kernel |
| --- | --- |
| layer.py | the socket table of the walk: sockets, processes, lookup tables, timers |
| actions.py | the system calls: socket(), bind(), listen(), connect(), send(), close(), timers |
| inet.py | a send's route, source, TTL, DF and refusals (EACCES, EMSGSIZE, ENETUNREACH) |
| tcp_sock.py | TCP sockets: a `programs.tcp.TcpConnection` each, segments in and out |
| input.py | ip_protocol_deliver: TCP, UDP, raw and ICMP receive, ICMP errors to sockets, timers |
| servers.py | the server programs a namespace runs on its listening ports |

It is reached through the kernel interface (netsim/kernel.py) only: packets leave by
`ip_local_out`, arrive by `ip_protocol_deliver`, a refused send comes back by
`sock_send_error`; the walk calls `sock_timers` when the wire is quiet; the per-walk state is
`Kernel.state(SocketLayer)`. Several programs, each with several sockets, may run in one walk;
the walk runs until no event is pending.

`Cluster.send()` runs one small program, `programs.exchange.Exchange`, as a *oneshot*
process in a walk without socket timers: it sends one request (no retransmission, no delayed
ACK, no program timer) and netsim follows the exchange to the client's answer, the reply's
delivery, as the book's traces always have. What the client's kernel would send after that
(the handshake's ACK of a connect() without data, the ACK of the response) is not sent: the
socket is muted once the program has its answer. The tools (`Cluster.ping`, `fetch`, `nc`,
...) run whole conversations, timers and teardown included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actions import spawn
from .inet import LOCAL_OUT_ERRNO, socket_hash
from .input import ip_protocol_deliver, sock_send_error, sock_timers, transport_rcv
from .layer import Process, Sock, SocketLayer

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel  # noqa: F401  (the interface this package is written against)

__all__ = ["LOCAL_OUT_ERRNO", "Process", "Sock", "SocketLayer", "ip_protocol_deliver", "sock_send_error",
           "sock_timers", "socket_hash", "spawn", "transport_rcv"]
