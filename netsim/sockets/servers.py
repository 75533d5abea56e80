"""The server programs of a namespace, started when a walk first needs one.

`Namespace.listen(proto, port, program)` says which program serves a port: a factory making it,
or None for netsim's default server of the protocol. The defaults: on TCP the HTTP echo server
(programs/http.py: a request answered with a 3-byte body, then the connection closed), on UDP
a server answering each datagram with b"RSP" (programs/echo.py). A program serving several
ports (a DNS server on UDP and TCP 53) is started once. A program starts, fresh in every walk
(a walk never sees the state another left), when a packet first arrives for one of its ports
and no socket of the walk takes it: what the walk never asks of a server costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..programs.echo import UdpAnswerServer
from ..programs.events import Program
from ..programs.http import HttpEchoServer
from .actions import spawn
from .layer import SocketLayer

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..netns import Namespace

DEFAULT_RESPONSE_SIZE = 3


def default_server(proto: str, port: int) -> Program:
    if proto == "tcp":
        return HttpEchoServer(port, DEFAULT_RESPONSE_SIZE)
    return UdpAnswerServer(port)


def start_server(k: Kernel, ns: Namespace, proto: str, port: int) -> bool:
    """Start the program serving `proto` `port` in `ns`, unless this walk started it already.
    Whether one was started now."""
    key = (proto, port)
    if key not in ns.servers:
        return False
    factory = ns.servers[key]
    layer = k.state(SocketLayer)
    started = (ns.name, id(factory) if factory is not None else key)
    if started in layer.started:
        return False
    layer.started.add(started)
    if factory is None:
        spawn(k, ns, default_server(proto, port))
    else:
        make: Callable[[], Program] = factory      # type: ignore[assignment]
        spawn(k, ns, make())
    return True
