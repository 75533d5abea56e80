"""The system calls a program makes, performed, and the events it reads, delivered.

`spawn` starts a program in a namespace; `run` performs a list of its actions in order (each a
system call on one of its sockets, netsim/programs/events.py) and then feeds it the events that
came of them (connect() returning, a send refused) until it has nothing more to do; `collect`
hands it events the transport layer produced and returns what it wants done, so the receive
path can send the kernel's own answer (an ACK) before the program's reaction, as a real
kernel does (the program runs after the softirq). A program that is done exits: its sockets
close as close() closes them (a oneshot exchange's go quiet instead, see sockets/__init__.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..programs.events import (
    Action, Bind, CancelTimer, Close, Connect, Done, Event, Listen, Open, Program, Send, SendEcho, SendSegment,
    SendTo, SetOptions, SetTimer, Shutdown, SocketError, TimerFired,
)
from .inet import bind, raw_send_echo, raw_send_segment, udp_connect, udp_sendmsg
from .layer import KINDS, Process, Sock, SocketLayer
from .tcp_sock import tcp_close, tcp_connect, tcp_send, tcp_shutdown

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..netns import Namespace


def spawn(k: Kernel, ns: Namespace, program: Program, oneshot: bool = False) -> Process:
    """Start `program` in `ns` now."""
    proc = k.state(SocketLayer).new_process(program, ns, oneshot)
    run(k, proc, program.start(k.now_us()))
    return proc


def collect(proc: Process, events: list[Event]) -> list[Action]:
    """The program reads `events`; what it wants done (performed by `run`). While it is busy
    performing earlier actions, or blocked in a write, the events wait in its inbox."""
    if proc.running or proc.blocked is not None:
        proc.inbox.extend(events)
        return []
    actions: list[Action] = []
    for event in events:
        actions += proc.program.handle(event)
    return actions


def run(k: Kernel, proc: Process, actions: list[Action]) -> None:
    """Perform `actions`, then deliver what they caused, until the program is idle. A write on
    a stream whose data cannot all leave yet blocks the program: the rest of its actions (and
    what it would read) wait until the data is out (`resume`)."""
    if proc.running:                       # a send error raised while it performs: read later
        return
    if proc.blocked is not None:
        proc.stash.extend(actions)
        return
    if proc.stash:
        actions, proc.stash = proc.stash + list(actions), []
    proc.running = True
    try:
        while True:
            layer = proc.layer
            for i, action in enumerate(actions):
                layer.performing = True
                try:
                    proc.inbox.extend(perform(k, proc, action))
                finally:
                    layer.performing = False
                if proc.blocked is not None:
                    proc.stash = list(actions[i + 1:])
                    return
            if proc.program.done:
                exit_process(k, proc)
                proc.inbox.clear()
                proc.stash.clear()
            if not proc.inbox:
                break
            actions = proc.program.handle(proc.inbox.popleft())
    finally:
        proc.running = False


def perform(k: Kernel, proc: Process, action: Action) -> list[Event]:
    """One system call."""
    if isinstance(action, (SetTimer, CancelTimer, Done, Open)):
        return process_call(k, proc, action)
    found = proc.socks.get(action.sock)
    if found is None or found.closed:
        return [SocketError(action.sock, "EBADF", "local", at=k.now_us())]
    return SOCKET_CALLS[type(action)](k, found, action)


def process_call(k: Kernel, proc: Process, action: Action) -> list[Event]:
    """The calls that name no open socket: timers, exit, socket()."""
    layer = proc.layer
    if isinstance(action, SetTimer) and action.after_us <= 0:
        # a timer of 0: the program yields and goes on at the next moment nothing is in flight,
        # with the programs the kernel woke meanwhile (nc reading the end of its input)
        layer.ready.append((proc, [TimerFired(action.name, k.now_us())], None, None))
    elif isinstance(action, SetTimer):
        layer.arm("program", proc, action.name, k.now_us() + action.after_us)
    elif isinstance(action, CancelTimer):
        layer.cancel("program", id(proc), action.name)
    elif isinstance(action, Open):
        if action.kind not in KINDS:
            return [SocketError(action.sock, "EPROTONOSUPPORT", "local", at=k.now_us())]
        old = proc.socks.get(action.sock)
        if old is not None:
            close(k, old)
        made = Sock(proc, action.sock, action.kind, action.options)
        proc.socks[action.sock] = made
        if action.kind in ("icmp", "raw-tcp"):
            layer.add_raw(made)
    return []


def _set_options(k: Kernel, sock: Sock, action: SetOptions) -> list[Event]:
    sock.options = action.options
    return []


def _connect(k: Kernel, sock: Sock, action: Connect) -> list[Event]:
    if sock.kind == "tcp":
        return tcp_connect(k, sock, action.dst, action.dport)
    return udp_connect(k, sock, action.dst, action.dport)


def _send(k: Kernel, sock: Sock, action: Send) -> list[Event]:
    if sock.kind == "tcp":
        errors = tcp_send(k, sock, action.data)
        if not errors and sock.conn is not None and sock.conn.unsent and not sock.proc.oneshot:
            sock.proc.blocked = sock          # write() returns when its data has left (see run)
        return errors
    return _walked(k, sock, udp_sendmsg(k, sock, action.data, role=role_of(sock)))


def _walked(k: Kernel, sock: Sock, errors: list[Event]) -> list[Event]:
    """A datagram's walk runs to its end before sendmsg returns: veth_xmit puts it on the
    backlog (netif_rx) and __dev_queue_xmit's rcu_read_unlock_bh runs the softirq that takes it
    through the peer namespace and on, ARP round trips included (measured: glibc's AAAA query
    leaves pod-a after its A query reached coredns, tests/test_lab_dns.py). The same for a
    UDP sendto, a raw ICMP echo (ping_v4_sendmsg, raw_sendmsg) and a raw TCP segment: each goes
    out through ip_local_out and dev_queue_xmit."""
    if not sock.proc.oneshot:
        k.do_softirq()
    return errors


def resume(k: Kernel, sock: Sock) -> None:
    """The write `sock`'s program is blocked in has returned (its data left, or the connection
    failed): the program goes on when nothing is in flight."""
    proc = sock.proc
    if proc.blocked is sock and (sock.conn is None or not sock.conn.unsent or sock.conn.state == "CLOSED"):
        proc.blocked = None
        proc.layer.ready.append((proc, [], None, None))


def _shutdown(k: Kernel, sock: Sock, action: Shutdown) -> list[Event]:
    if sock.kind == "tcp":
        tcp_shutdown(k, sock)
    return []


def _close(k: Kernel, sock: Sock, action: Close) -> list[Event]:
    close(k, sock)
    return []


# the system calls on an open socket, by action
SOCKET_CALLS: dict[type, Callable[..., list[Event]]] = {
    SetOptions: _set_options,
    Bind: lambda k, sock, a: bind(k, sock, a.port, a.addr),
    Listen: lambda k, sock, a: listen(k, sock, a.port),
    Connect: _connect,
    Send: _send,
    SendTo: lambda k, sock, a: _walked(k, sock, udp_sendmsg(k, sock, a.data, a.dst, a.dport, role=role_of(sock))),
    SendEcho: lambda k, sock, a: _walked(k, sock, raw_send_echo(k, sock, a.dst, a.ident, a.seq, a.data)),
    SendSegment: lambda k, sock, a: _walked(k, sock, raw_send_segment(k, sock, a.dst, a.segment)),
    Shutdown: _shutdown,
    Close: _close,
}


def role_of(sock: Sock) -> str:
    """A datagram's role: a server's answers are replies, everything else a request."""
    return "reply" if sock.server else "request"


def listen(k: Kernel, sock: Sock, port: int) -> list[Event]:
    """bind() and listen(): a TCP listener, or a UDP socket bound to the port."""
    layer = sock.layer
    if sock.kind == "tcp":
        key = (sock.ns.name, port)
        if key in layer.tcp_listen:
            return [SocketError(sock.name, "EADDRINUSE", "local", at=k.now_us())]
        sock.lport, sock.listening = port, True
        layer.tcp_listen[key] = sock
        return []
    errors = bind(k, sock, port)
    if not errors:
        sock.listening = True
    return errors


def close(k: Kernel, sock: Sock) -> None:
    """close()."""
    layer = sock.layer
    if sock.closed:
        return
    if sock.proc.socks.get(sock.name) is sock:
        del sock.proc.socks[sock.name]
    if sock.kind == "tcp":
        tcp_close(k, sock)
        return
    sock.closed = True
    layer.unbind(sock)


def exit_process(k: Kernel, proc: Process) -> None:
    """The program is done: its timers stop; its sockets close (a oneshot exchange's sockets
    stay, muted: netsim follows the exchange only to the client's answer)."""
    layer = proc.layer
    for key in [key for key in layer.timer_key if key[0] == "program" and key[1] == id(proc)]:
        layer.cancel(*key)
    for sock in list(proc.socks.values()):
        if proc.oneshot:
            sock.muted = True
        else:
            close(k, sock)
