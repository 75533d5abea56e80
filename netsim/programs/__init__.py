"""Programs in the pods, sans-IO: the tools a reader types and the servers they reach.

Theory of operation (h11's shape). A program is a userspace process written as a state machine.
It never touches a socket: it receives *events*, the kernel's reports on its sockets, and
returns *actions*, the system calls it makes (events.py). The kernel side is a separate,
equally pure piece per protocol: `tcp.TcpConnection` turns a socket's writes into segments and
segments into bytes, with Linux's sequence numbers, flags, MSS, ACK and window rules. Whoever
owns the sockets (the socket layer) connects the two:

    program.start(at) / program.handle(event)  ->  [Open, Connect, Send, SendTo, SendEcho, SetTimer, ..., Done]
    socket layer performs each action: builds packets (TcpConnection for streams), hands them to the walk
    the walk delivers packets; the receiving socket layer turns them into events for its programs
    when nothing is pending: the delayed ACKs go out, then the earliest timer fires (TimerFired)

Events (events.py): Started, Connected, Accepted, DataReceived, DatagramReceived,
EchoReplyReceived, SegmentReceived, PeerClosed, ConnectionReset, SocketError (the errno Linux
reports for an ICMP error or a local refusal, with the probe it is about), TimerFired. Every
event carries the walk's clock (`at`, microseconds). Actions: Open, SetOptions, Bind, Listen,
Connect, Send, SendTo, SendEcho, SendSegment, Shutdown, Close, SetTimer, CancelTimer, Done.

`wire.DirectWire` is that socket layer with the network taken out (packets arrive at once): the
programs' tests run on it, and it is the reference for the integration. The next step, once the
walk has its kernel interface: netsim/sockets.py keeps a table of sockets per namespace, performs
these actions through `local_out` and feeds events from `transport_rcv`; `walk.client` and the
fixed b"RSP" replies go, and `Cluster.send()` becomes a small program.

The programs: `ping` (iputils), `traceroute` (2.1), `dig` (BIND 9.18), `http` (an echo server
and a curl-like fetch), `nc` (netcat-openbsd), `resolver` (kubelet's resolv.conf and glibc's
getaddrinfo), `coredns` (the kubernetes and forward plugins) over `dns` (the message codec).
Each module says which program and version it follows and where its facts come from; the
output of each tool is a pure function of its result record (format_ping, format_traceroute,
format_dig, format_fetch).
"""

from __future__ import annotations

from .coredns import ClusterDns, CoreDnsServer, CorefileConfig, PodRecord, ServiceRecord, Upstream
from .dig import Dig, DigOptions, DigResult, format_dig, parse_dig_args
from .events import (
    Accepted, Action, Bind, CancelTimer, Close, Connect, Connected, ConnectionReset, DataReceived,
    DatagramReceived, Done, EchoReplyReceived, Event, Listen, Open, PeerClosed, Probe, Program, SegmentReceived,
    Send, SendEcho, SendSegment, SendTo, SetOptions, SetTimer, Shutdown, SocketError, SocketOptions, Started,
    TimerFired,
)
from .http import Fetch, FetchResult, HttpEchoServer, format_fetch
from .nc import Nc, NcListen, NcResult
from .ping import Ping, PingOptions, PingResult, format_ping, parse_ping_args
from .resolver import GetAddrInfo, LookupResult, ResolvConf, Resolve, kubelet_resolv_conf, search_names
from .tcp import TcpConfig, TcpConnection, TcpOutput
from .traceroute import Traceroute, TracerouteOptions, TracerouteResult, format_traceroute, parse_traceroute_args
from .wire import DirectWire

__all__ = [
    "Accepted", "Action", "Bind", "CancelTimer", "Close", "ClusterDns", "Connect", "Connected", "ConnectionReset",
    "CoreDnsServer", "CorefileConfig", "DataReceived", "DatagramReceived", "Dig", "DigOptions", "DigResult",
    "DirectWire", "Done", "EchoReplyReceived", "Event", "Fetch", "FetchResult", "GetAddrInfo", "HttpEchoServer",
    "Listen", "LookupResult", "Nc", "NcListen", "NcResult", "Open", "PeerClosed", "Ping", "PingOptions", "PingResult",
    "PodRecord", "Probe", "Program", "ResolvConf", "Resolve", "SegmentReceived", "Send", "SendEcho", "SendSegment",
    "SendTo", "ServiceRecord", "SetOptions", "SetTimer", "Shutdown", "SocketError", "SocketOptions", "Started",
    "TcpConfig", "TcpConnection", "TcpOutput", "TimerFired", "Traceroute", "TracerouteOptions", "TracerouteResult",
    "Upstream", "format_dig", "format_fetch", "format_ping", "format_traceroute", "kubelet_resolv_conf",
    "parse_dig_args", "parse_ping_args", "parse_traceroute_args", "search_names",
]
