"""The model's server programs on real sockets: the lab's servers are netsim's own programs.

A namespace's listening ports run the programs `Namespace.listen` names (netsim/sockets/
servers.py: the HTTP echo server, the UDP answering server, a DNS server); in the lab the same
sans-IO programs run on real sockets in the lab namespace, driven by one selector thread: what
the real kernel delivers becomes their events (Accepted, DataReceived, DatagramReceived,
PeerClosed, ConnectionReset), their actions become system calls (socket, bind, listen,
sendto, send, shutdown, close). So the application's bytes are the model's by construction,
and what the comparison checks is what the kernels do with them. One exception: kube-proxy's
health server, which the lab has no kube-proxy to run, is served by a stand-in that builds its
answer from the Go sources on its own (netsim.lab.kube_proxy_health), so its bytes are checked too.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
from typing import TYPE_CHECKING, Callable

from ..programs.events import (
    Accepted, Action, Bind, Close, Connect, Connected, ConnectionReset, DataReceived, DatagramReceived, Event, Listen,
    Open, PeerClosed, Program, Send, SendTo, Shutdown, SocketError,
)
from ._netns import in_netns

if TYPE_CHECKING:  # pragma: no cover
    from ..netns import Namespace

Factory = Callable[[], Program]


class ProgramRunner:
    """Server programs on real sockets, in lab namespaces; one thread serves them all."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.socks: dict[tuple[int, str], socket.socket] = {}    # (program id, socket name) -> socket
        self.programs: dict[int, Program] = {}
        self.netns: dict[int, str] = {}                               # program id -> its lab namespace
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def add(self, lab_netns: str, program: Program) -> Program:
        """Start `program` in namespace `lab_netns`: its sockets are made there."""
        with self.lock:
            self.programs[id(program)] = program
            self.netns[id(program)] = lab_netns
            in_netns(lab_netns, lambda: self.perform(program, program.start()))
        return program

    def open(self, lab_netns: str, ns: "Namespace", listeners: list[tuple[str, int]]) -> list[str]:
        """The server programs of model namespace `ns` on its listening ports, fresh for the lab
        namespace `lab_netns`: the same programs the model runs (netsim/sockets/servers.py).
        Returns a comment per program for the lab's command list."""
        from ..cluster.services import HealthServerFactory
        from ..sockets.servers import default_server
        from .kube_proxy_health import KubeProxyHealthStandIn
        started: set[int] = set()
        comments = []
        for proto, port in listeners:
            factory = ns.servers.get((proto, port))
            if factory is None:
                program = default_server(proto, port)
            elif id(factory) in started:
                continue
            elif isinstance(factory, HealthServerFactory):
                # kube-proxy's health server: the lab has no kube-proxy; a stand-in writes its answer
                started.add(id(factory))
                namespace, name, hc_port = factory.identity()
                program = KubeProxyHealthStandIn(hc_port, namespace, name, factory.local_endpoints())
            else:
                started.add(id(factory))
                program = factory()  # type: ignore[operator]
            self.add(lab_netns, program)
            comments.append(f"# in {lab_netns}: netsim's {program.name} program on {proto} port {port}, on real sockets")
        return comments

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lab-programs", daemon=True)
        self._thread.start()

    # actions -> system calls ------------------------------------------------------------------
    def perform(self, program: Program, actions: list[Action]) -> None:
        for action in actions:
            key = (id(program), getattr(action, "sock", ""))
            try:
                self._call(program, key, action)
            except OSError as exc:                 # recorded, not raised: the server thread keeps going
                self.errors.append(f"{program.name} {action!r}: {exc}")

    def _call(self, program: Program, key: tuple[int, str], action: Action) -> None:
        if isinstance(action, Open):
            kind = socket.SOCK_STREAM if action.kind == "tcp" else socket.SOCK_DGRAM
            # made in the program's namespace: a socket keeps the namespace it was created in,
            # whichever thread opens it (the selector thread, for a proxy's upstream)
            s = in_netns(self.netns[id(program)], lambda: socket.socket(socket.AF_INET, kind))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socks[key] = s
        elif isinstance(action, (Listen, Bind)):
            s = self.socks[key]
            s.bind((getattr(action, "addr", "0.0.0.0"), action.port))
            if isinstance(action, Listen) and s.type == socket.SOCK_STREAM:
                s.listen(4096)
            if isinstance(action, Listen):
                s.setblocking(False)
                self.selector.register(s, selectors.EVENT_READ, (program, key[1], "listen"))
        elif isinstance(action, Connect):
            # a program's own connection (a proxy's upstream): connect() without blocking the
            # thread; writable means done, SO_ERROR says how (Connected or SocketError)
            s = self.socks[key]
            s.setblocking(False)
            s.connect_ex((action.dst, action.dport))
            self.selector.register(s, selectors.EVENT_WRITE, (program, key[1], "connecting"))
        elif isinstance(action, SendTo):
            self.socks[key].sendto(action.data, (action.dst, action.dport))
        elif isinstance(action, Send):
            s = self.socks[key]
            s.setblocking(True)
            s.sendall(action.data)
            s.setblocking(False)
        elif isinstance(action, Shutdown):
            self.socks[key].shutdown(socket.SHUT_WR)
        elif isinstance(action, Close):
            gone: socket.socket | None = self.socks.pop(key, None)
            if gone is not None:
                s = gone
                try:
                    self.selector.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()

    # the kernel's reports -> events -----------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready = self.selector.select(timeout=0.05)
            except (OSError, ValueError):
                return
            for key, _mask in ready:
                program, name, role = key.data
                with self.lock:
                    self._ready(key.fileobj, program, name, role)  # type: ignore[arg-type]

    def _ready(self, s: socket.socket, program: Program, name: str, role: str) -> None:
        events: list[Event] = []
        try:
            if s.type == socket.SOCK_DGRAM:
                data, (ip, port) = s.recvfrom(65535)
                events.append(DatagramReceived(name, data, ip, port))
            elif role == "connecting":
                code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    self.selector.unregister(s)
                    events.append(SocketError(name, errno.errorcode.get(code, str(code)), "local"))
                else:
                    self.selector.modify(s, selectors.EVENT_READ, (program, name, "conn"))
                    events.append(Connected(name, local=s.getsockname()[0]))
            elif role == "listen":
                conn, (ip, port) = s.accept()
                conn.setblocking(False)
                child = f"{name}<{ip}:{port}>"
                self.socks[(id(program), child)] = conn
                self.selector.register(conn, selectors.EVENT_READ, (program, child, "conn"))
                events.append(Accepted(name, child, ip, port))
            else:
                data = s.recv(1 << 20)
                events.append(DataReceived(name, data) if data else PeerClosed(name))
                if not data:
                    self.selector.unregister(s)
        except BlockingIOError:
            return
        except ConnectionResetError:
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            events.append(ConnectionReset(name))
        except OSError as exc:
            self.errors.append(f"{program.name} {name}: {exc}")
            return
        for event in events:
            self.perform(program, program.handle(event))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        with self.lock:
            for s in self.socks.values():
                try:
                    s.close()
                except OSError:
                    pass
            self.socks.clear()
