"""The modelled cluster built for real: network namespaces on the running kernel.

`Lab(cluster)` walks netsim's own state (every `Namespace` with its devices, addresses,
sysctls, routes, permanent neighbours, FDB entries and `netfilter.save()` text) and turns it
into iproute2, bridge and iptables-restore commands, so the kernel copy cannot drift from the
model. MACs and MTUs are netsim's. Each model namespace `X` becomes `<prefix>X`, the prefix
being `nsl-<pid>-<n>-`; nothing outside those namespaces is touched, and they are deleted when
the lab closes (context exit, atexit, SIGTERM), taking every interface and rule with them.

Safe by construction (commands.py): the whole build is planned first, every name and value
checked by the validator of its kind, so a name the lab refuses stops it before any command
runs. Commands are argument lists; batch and iptables-restore input is made only of checked
tokens. `close()` finishes even when a signal arrives during it, kills and reaps any command
still running, and a new lab removes the namespaces of lab runs whose process has died
(SIGKILL leaves them behind), with a `LabWarning` naming them.

`Lab.exchange(src, dst, proto)` then reproduces one `Cluster.send()` with real sockets: a cold
start (dynamic neighbours, learned bridge FDB entries and conntrack flushed, as netsim's
`send(cold=True)` does), one TCP connect (SYN, SYN-ACK), one UDP datagram and its answer, or
one `ping -c1`, while an AF_PACKET socket on every device of every namespace records each
frame with its direction and kernel timestamp (what `tcpdump -i IF -e -nn -p
--immediate-mode` sees). The frames come back as a `Trace` in netsim's shape.

Conditions, as in kernel-observations.md: IPv6 is disabled in every lab namespace (no ND or
MLD noise), rp_filter is 0, capture sockets are not promiscuous (a promiscuous bridge would
pass forwarded frames up its own stack). Transmit checksum offload is switched off on every
lab device (ETHTOOL_STXCSUM, what `ethtool -K IF tx off` does), so every checksum on the wire
is complete and can be verified; with offload the kernel leaves partial checksums that only
a NIC would finish.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import itertools
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from ..bridge import Bridge
from ..cluster import Cluster
from ..device import Loopback, Veth
from ..errors import ConfigError
from ..neighbour import NOARP, PERMANENT
from ..decision import CaptureReason, Decision, Subsystem, Verdict
from ..packet import ARP, ICMP, TCP, UDP, VXLAN, Ethernet, IPv4, _parse_transport, innermost_ip, parse_ethernet
from ..trace import Hop, Trace
from ..tun import Tun
from ..vxlan import VxlanDevice
from . import commands as tok
from ._netns import NETNS_RUN_DIR, in_netns, netns_path
from .commands import LabError, Line, UnsafeArgument

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
IP_RECVERR = 11
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
CAPTURE_BUFFER = 1 << 20
SETTLE = 0.05            # seconds of quiet on every device that end an exchange's capture
SETTLE_MAX = 1.0         # and the longest it may trail the socket's answer
EXCHANGE_TIMEOUT = 3.0
VXLAN_OVERHEAD = 50      # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
COMMAND_TIMEOUT = 30.0   # the longest one ip/bridge/iptables-restore run may take; then it is killed
MTU_MAX = 65535          # IP_MAX_MTU (include/net/ip.h)
VNI_MAX = (1 << 24) - 1
QLEN_MAX = 0xFFFFFFFF    # dev->tx_queue_len is an unsigned int
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LabUnavailable(LabError):
    """The running system cannot host the lab (not root, no namespaces, a tool missing)."""


class LabWarning(UserWarning):
    """Something the lab did on its own that the user should know of (stale namespaces removed)."""


def _tool(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


# ------------------------------------------------------------------------------------------
# running a command: an argument list, a timeout, and the child always reaped

def _reap(proc: subprocess.Popen, drain: bool = True) -> None:
    """Kill `proc` if it still runs and wait for it, so no zombie is left. Only the thread that
    runs the command reads its pipes (`drain`); another one (close()) just kills and waits."""
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        if drain:
            proc.communicate(timeout=5)
        else:
            proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        proc.wait()


def _run(argv: Sequence[str], input: str | None = None, check: bool = True, timeout: float = COMMAND_TIMEOUT,
         children: "set[subprocess.Popen] | None" = None) -> subprocess.CompletedProcess:
    """Run `argv` (no shell) and return what it printed. The child is reaped whatever happens:
    past `timeout` it is killed (LabError), and on any exception in this thread (a signal's
    KeyboardInterrupt included) it is killed before the exception goes on. `children` is the
    set of live children of one lab, which `Lab.close()` kills and reaps."""
    argv = list(argv)
    # its own session: a terminal's ^C (sent to the foreground process group) does not cut a
    # command short; the lab decides when a child stops
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    if children is not None:
        children.add(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _reap(proc)
        raise LabError(f"`{tok.shown(argv)}` did not finish within {timeout:g} s; it was killed") from None
    except BaseException:
        _reap(proc)
        raise
    finally:
        if children is not None:
            children.discard(proc)
    if check and proc.returncode != 0:
        raise LabError(f"`{tok.shown(argv)}` failed ({proc.returncode}): {err.strip()}\ninput:\n{input or ''}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None if it can."""
    if platform.system() != "Linux":
        return f"the lab needs Linux network namespaces; this is {platform.system()}"
    if os.geteuid() != 0:
        return "the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces"
    for tool, package in (("ip", "iproute2"), ("bridge", "iproute2"), ("iptables-restore", "iptables"),
                          ("conntrack", "conntrack"), ("ping", "iputils-ping")):
        if _tool(tool) is None:
            return f"`{tool}` is missing (Debian package {package})"
    ip = _tool("ip") or "ip"
    probe = f"nsl-{os.getpid()}-probe"
    made = _run([ip, "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip() or made.returncode}"
    try:
        if not in_netns(probe, lambda: os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables")):
            return "br_netfilter is not loaded (no net.bridge.bridge-nf-call-iptables in a new namespace)"
    finally:
        _run([ip, "netns", "del", probe], check=False)
    return None


# ------------------------------------------------------------------------------------------
# namespaces left by a lab run that was killed

# the default prefix family: nsl-<pid>-<n>-<model name>, and unavailable_reason()'s probe
FAMILY = re.compile(r"nsl-([0-9]{1,10})-(?:[0-9]{1,10}-[A-Za-z0-9_.-]{1,63}|probe)")


def _process_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie has ended: it holds no namespace)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:
        return True          # cannot tell: treat it as alive, never remove a live lab's namespaces
    return state not in (b"Z", b"X")


def stale_namespaces() -> list[str]:
    """Namespaces of the `nsl-<pid>-<n>-` family whose owning process no longer runs.

    The pid in a lab's prefix is the process that made it; while that process runs, its
    namespaces are its own (several labs run at once on one machine), so only those of a
    process that has ended are stale. A pid that has been reused keeps its namespaces: the
    safe side. Labs that share /run/netns are taken to share one pid namespace (one machine,
    as here); a lab in a container with its own pids would look dead to one outside it."""
    if not os.path.isdir(NETNS_RUN_DIR):
        return []
    out = []
    for name in os.listdir(NETNS_RUN_DIR):
        m = FAMILY.fullmatch(name)
        if m and int(m[1]) != os.getpid() and not _process_alive(int(m[1])):
            out.append(name)
    return sorted(out)


def reclaim_stale(ip: str | None = None) -> list[str]:
    """Delete `stale_namespaces()` and say so (a `LabWarning`); the names removed."""
    stale = stale_namespaces()
    if not stale:
        return []
    _run([ip or _tool("ip") or "ip", "-force", "-batch", "-"], tok.batch(("netns", "del", n) for n in stale),
         check=False)
    gone = [n for n in stale if not os.path.lexists(netns_path(n))]
    if gone:
        pids = sorted({int(FAMILY.fullmatch(n)[1]) for n in gone})   # type: ignore[index]
        warnings.warn(LabWarning(
            f"netsim.lab: removed {len(gone)} namespace(s) left by lab run(s) whose process has ended "
            f"(pid {', '.join(map(str, pids))}): {' '.join(gone)}"), stacklevel=4)
    return gone


# ------------------------------------------------------------------------------------------
# cleanup of every live lab, whatever way the process ends

_LIVE: "weakref.WeakSet[Lab]" = weakref.WeakSet()
_COUNTER = itertools.count(1)
_HANDLERS_INSTALLED = False


def _close_all() -> None:
    for lab in list(_LIVE):
        lab.close()


def _on_sigterm(signum, frame) -> None:  # pragma: no cover - exercised by a real signal only
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_sigterm)


class _SignalsHeld:
    """Within: SIGINT, SIGTERM and SIGHUP are noted, not acted on; on leaving, the previous
    handlers are back and each noted signal is raised again, so it does what it would have.

    Python runs signal handlers only in the main thread, between bytecodes: holding them there
    is enough for a close() in the main thread. A close() in another thread cannot be
    interrupted by a Python handler (one that calls close() waits for it on the lab's lock)."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.saved: dict[int, object] = {}

    def _note(self, signum, frame) -> None:
        self.pending.append(signum)

    def __enter__(self) -> "_SignalsHeld":
        if threading.current_thread() is threading.main_thread():
            for sig in HELD_SIGNALS:
                previous = signal.getsignal(sig)
                if previous is None:          # installed outside Python: it cannot be put back
                    continue
                try:
                    signal.signal(sig, self._note)
                except (ValueError, OSError):
                    continue
                self.saved[sig] = previous
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self.saved.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self.saved.clear()
        for sig in dict.fromkeys(self.pending):
            signal.raise_signal(sig)


# ------------------------------------------------------------------------------------------
# what a lab run returns

@dataclass(frozen=True)
class Capture:
    """One frame as a capture socket saw it."""

    time: float              # kernel timestamp, seconds
    netns: str               # the model's namespace name
    device: str
    direction: str           # "rx" or "tx"
    data: bytes


@dataclass
class Observation:
    """What the kernel did for one exchange: its hops in netsim's shape, plus how they were got."""

    trace: Trace
    captures: list[Capture]       # in hop order: captures[i] is trace.hops[i]
    src: str
    dst: str
    proto: str
    dport: int | None
    outcome: str
    kernel: str
    checksums_complete: bool      # tx checksum offload was off on every device but lo
    seconds: float
    client_port: int | None = None       # the client socket's own port (getsockname), TCP and UDP
    notes: list[str] = field(default_factory=list)

    @property
    def hops(self) -> tuple[Hop, ...]:
        return self.trace.hops


@dataclass
class Plan:
    """Everything a build will run, made of checked tokens before anything runs."""

    names: list[str]                                       # model namespaces, in model order
    sysctls: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    links: dict[str, list[Line]] = field(default_factory=dict)      # ip -n NS -batch -
    config: dict[str, list[Line]] = field(default_factory=dict)     # ip -n NS -batch -
    bridge: dict[str, list[Line]] = field(default_factory=dict)     # bridge -n NS -batch -
    iptables: dict[str, str] = field(default_factory=dict)          # iptables-restore input, checked
    devices: dict[str, list[str]] = field(default_factory=dict)     # every device (captures)
    offload: dict[str, list[str]] = field(default_factory=dict)     # every device but lo
    listeners: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------

class Lab:
    """A netsim cluster built on the running kernel.

        with Lab(cluster) as lab:
            observed = lab.exchange("pod-a", "pod-c", "tcp")
    """

    def __init__(self, cluster: Cluster, prefix: str | None = None, checksum_offload: bool = False):
        if cluster.backend == "udp":
            raise LabUnavailable("the udp backend has no kernel counterpart without flanneld: flannel0 is a TUN "
                                 "device whose packets only flanneld's userspace proxy forwards, so the lab "
                                 "cannot build it")
        self.cluster = cluster
        self.prefix = tok.prefix(prefix) if prefix is not None else f"nsl-{os.getpid()}-{next(_COUNTER)}-"
        self.checksum_offload = checksum_offload
        self.commands: list[str] = []          # every command, shell-quoted as a reader would paste it
        self.timings: dict[str, float] = {}
        self.kernel = platform.release()
        self.reclaimed: list[str] = []         # stale namespaces this lab's build removed
        self._created: list[str] = []
        self._sockets: dict[tuple[str, str], socket.socket] = {}
        self._servers: list[socket.socket] = []
        self._udp_servers: list[socket.socket] = []
        self._stop = threading.Event()
        self._server_thread: threading.Thread | None = None
        self._closed = False
        self._close_lock = threading.RLock()
        self._children: set[subprocess.Popen] = set()
        self._ip = _tool("ip") or "ip"
        self._bridge = _tool("bridge") or "bridge"

    # naming -------------------------------------------------------------------------------
    def netns(self, model_name: str) -> str:
        """The lab namespace standing for model namespace `model_name` (a checked name)."""
        return f"{self.prefix}{tok.netns_name(model_name)}"

    @property
    def namespaces(self) -> list[str]:
        return list(self._created)

    # context ------------------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # planning -----------------------------------------------------------------------------
    def plan(self) -> Plan:
        """Every command of the build, each value checked; raises UnsafeArgument (and runs
        nothing) on the first name or value the lab refuses."""
        model = self.cluster.network.namespaces
        for key, ns in model.items():
            if key != ns.name:
                raise UnsafeArgument(f"the model namespace {ns.name!r} is filed under {key!r}; nothing was run")
        plan = Plan([tok.netns_name(n) for n in model])
        for name in plan.names:
            self.netns(name)
        for name in plan.names:
            ns = model[name]
            plan.links[name] = [tok.check_line(line) for line in self._link_commands(ns)]
            plan.config[name] = [tok.check_line(line) for line in self._config_commands(ns)]
            plan.bridge[name] = [tok.check_line(line) for line in self._bridge_commands(ns)]
            plan.sysctls[name] = self._sysctl_values(ns)
            text = ns.netfilter.save()
            plan.iptables[name] = tok.check_restore(text) if text.strip() else ""
            plan.devices[name] = [tok.ifname(d.name) for d in ns.devices.values()]
            plan.offload[name] = [tok.ifname(d.name) for d in ns.devices.values() if not isinstance(d, Loopback)]
            plan.listeners[name] = [(tok.word(p, ("tcp", "udp")), int(tok.number(port, 1, 65535, "port")))
                                    for p, port in sorted(ns.listeners)]
        return plan

    # building -----------------------------------------------------------------------------
    def build(self) -> None:
        t0 = time.perf_counter()
        if hasattr(self.cluster, "materialize_all"):
            self.cluster.materialize_all()     # a lazy cluster builds its namespaces on first use
        plan = self.plan()                     # refuses a bad name before anything runs
        self.timings["plan"] = time.perf_counter() - t0
        reason = unavailable_reason()
        if reason:
            raise LabUnavailable(reason)
        t1 = time.perf_counter()
        _install_handlers()
        _LIVE.add(self)
        self.reclaimed = reclaim_stale(self._ip)
        names = plan.names
        wanted = [self.netns(n) for n in names]
        taken = [n for n in wanted if os.path.lexists(netns_path(n))]
        if taken:
            # not ours: another lab with this prefix (close() deletes only what this one made)
            raise LabError(f"namespace {taken[0]} exists already; another lab uses the prefix {self.prefix!r}")
        self._created = wanted
        self._batch(None, [("netns", "add", n) for n in wanted])
        self._parallel(lambda n: self._sysctls(n, plan.sysctls[n]), names)
        # links first (each veth pair once), then everything that refers to them
        for name in names:
            self._batch(name, plan.links[name])
        self._parallel(lambda n: self._batch(n, plan.config[n]), names)
        self._parallel(lambda n: self._batch(n, plan.bridge[n], self._bridge), names)
        self._parallel(self._check_mtus, names)
        self._parallel(lambda n: self._iptables(n, plan.iptables[n]), names)
        if not self.checksum_offload:
            self._parallel(lambda n: self._offload_off(n, plan.offload[n]), names)
        self._parallel(lambda n: self._open_captures(n, plan.devices[n]), names)
        self._parallel(lambda n: self._open_servers(n, plan.listeners[n]), names)
        self._server_thread = threading.Thread(target=self._serve_udp, name="lab-udp-servers", daemon=True)
        self._server_thread.start()
        self.timings["build"] = self.timings["plan"] + time.perf_counter() - t1

    def _parallel(self, fn: Callable[[str], object], names: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(fn, n) for n in names]:
                future.result()

    def _cmd(self, argv: Sequence[str], input: str | None = None, check: bool = True,
             timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run one command on behalf of this lab (close() kills and reaps it if it still runs)."""
        return _run(argv, input, check, timeout, self._children)

    def _batch(self, name: str | None, lines: list[Line], tool: str | None = None, force: bool = False,
               log: bool = True) -> None:
        """`ip` (or `bridge`) `-n <lab namespace> -batch -` fed `lines`, each line checked."""
        if not lines:
            return
        tool = tool or self._ip
        where = ["-n", self.netns(name)] if name is not None else []
        text = tok.batch(lines)
        if log:
            self.commands.extend(tok.shown([os.path.basename(tool), *where, *line]) for line in lines)
        self._cmd([tool, *where, *(["-force"] if force else []), "-batch", "-"], text, check=not force)

    def _sysctl_values(self, ns) -> list[tuple[str, str]]:
        s = ns.sysctl
        low, high = s.ip_local_port_range
        return [
            ("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1"),
            ("net.ipv6.conf.lo.disable_ipv6", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.ip_forward", tok.number(s.ip_forward, 0, 1, "ip_forward")),
            ("net.ipv4.ip_local_port_range", f"{tok.number(low, 1, 65535, 'port')} {tok.number(high, 1, 65535, 'port')}"),
            ("net.ipv4.ip_default_ttl", tok.number(s.ip_default_ttl, 1, 255, "ip_default_ttl")),
            ("net.bridge.bridge-nf-call-iptables", tok.number(s.bridge_nf_call_iptables, 0, 1, "bridge-nf-call-iptables")),
        ]

    def _sysctls(self, name: str, values: list[tuple[str, str]]) -> None:
        def write() -> None:
            for key, value in values:
                path = "/proc/sys/" + key.replace(".", "/")
                if not os.path.exists(path):
                    if key.startswith("net.ipv6"):
                        continue          # no IPv6 in this kernel: nothing to disable
                    raise LabUnavailable(f"{key} does not exist in a new namespace")
                with open(path, "w") as fh:
                    fh.write(value)

        self.commands.extend(tok.shown(["ip", "netns", "exec", self.netns(name), "sysctl", "-qw", f"{k}={v}"])
                             for k, v in values)
        in_netns(self.netns(name), write)

    def _link_commands(self, ns) -> list[Line]:
        lines: list[Line] = []
        for dev in ns.devices.values():
            if isinstance(dev, Tun):
                raise LabUnavailable(f"{ns.name}/{dev.name} is a TUN device; only a userspace program could serve it")
            if isinstance(dev, Veth):
                peer = dev.peer
                if peer is None or peer.netns is None:
                    raise LabUnavailable(f"{ns.name}/{dev.name} has no peer")
                if (ns.name, dev.name) > (peer.netns.name, peer.name):
                    continue              # made from the other side
                lines.append(("link", "add", "dev", tok.ifname(dev.name), "address", tok.mac(dev.mac),
                              "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU"),
                              "txqueuelen", tok.number(dev.qlen, 0, QLEN_MAX, "txqueuelen"), "type", "veth",
                              "peer", "name", tok.ifname(peer.name), "address", tok.mac(peer.mac),
                              "mtu", tok.number(peer.mtu, 68, MTU_MAX, "MTU"),
                              "txqueuelen", tok.number(peer.qlen, 0, QLEN_MAX, "txqueuelen"),
                              "netns", self.netns(peer.netns.name)))
            elif isinstance(dev, Bridge):
                mac = ("address", tok.mac(dev.mac)) if dev.fixed_mac else ()
                lines.append(("link", "add", "dev", tok.ifname(dev.name), *mac,
                              "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU"), "type", "bridge"))
        return lines

    def _config_commands(self, ns) -> list[Line]:
        lines: list[Line] = []
        lowered: list[Line] = []
        for dev in ns.devices.values():
            if isinstance(dev, VxlanDevice):
                rng = (("srcport", tok.number(dev.port_range[0], 1, 65535, "port"),
                        tok.number(dev.port_range[1], 1, 65535, "port")) if dev.port_range else ())
                under = ns.devices.get(dev.underlay)
                if under is not None and under.mtu < dev.mtu + VXLAN_OVERHEAD:
                    # the kernel clamps a new VXLAN device's MTU to its underlay's minus 50, and
                    # refuses to raise it later; a VXLAN MTU above that exists only when the
                    # underlay was lowered after the VXLAN device was made, so do just that
                    lines.append(("link", "set", "dev", tok.ifname(under.name),
                                  "mtu", tok.number(dev.mtu + VXLAN_OVERHEAD, 68, MTU_MAX, "MTU")))
                    lowered.append(("link", "set", "dev", tok.ifname(under.name),
                                    "mtu", tok.number(under.mtu, 68, MTU_MAX, "MTU")))
                lines.append(("link", "add", "dev", tok.ifname(dev.name), "address", tok.mac(dev.mac),
                              "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU"),
                              "txqueuelen", tok.number(dev.qlen, 0, QLEN_MAX, "txqueuelen"), "type", "vxlan",
                              "id", tok.number(dev.vni, 0, VNI_MAX, "VNI"), "local", tok.ipv4(dev.local),
                              "dev", tok.ifname(dev.underlay), "dstport", tok.number(dev.dstport, 1, 65535, "port"),
                              *rng, "learning" if dev.learning else "nolearning",
                              "udpcsum" if dev.udp_csum else "noudpcsum"))
        lines.extend(lowered)
        for dev in ns.devices.values():
            if dev.master is not None:
                lines.append(("link", "set", "dev", tok.ifname(dev.name), "master", tok.ifname(dev.master.name)))
        for dev in ns.devices.values():
            ports = [p.dev.mtu for p in dev.ports.values()] if isinstance(dev, Bridge) else []
            if ports and dev.mtu != min(ports):
                # a bridge follows its smallest port's MTU until one is set on it after creation
                lines.append(("link", "set", "dev", tok.ifname(dev.name), "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU")))
        for dev in ns.devices.values():
            lines.append(("link", "set", "dev", tok.ifname(dev.name), "up" if dev.up else "down"))
        for dev in ns.devices.values():
            for iface in dev.addresses:
                if isinstance(dev, Loopback) and str(iface) == "127.0.0.1/8":
                    continue              # every namespace has it
                brd = ("brd", "+") if iface.network.prefixlen < 31 else ()
                lines.append(("addr", "add", tok.ipv4_interface(iface), *brd, "dev", tok.ifname(dev.name)))
        for route in ns.main_table.routes():
            if route.proto == "kernel":
                continue                  # the kernel adds connected routes itself
            metric = ("metric", tok.number(route.metric, 0, 0xFFFFFFFF, "metric")) if route.metric else ()
            if route.type in ("blackhole", "unreachable"):
                lines.append(("route", "add", route.type, tok.ipv4_network(route.dst), *metric))
                continue
            scope = tok.word("global" if route.scope == "universe" else route.scope, ("global", "link", "host", "site"))
            lines.append(("route", "add", tok.ipv4_network(route.dst),
                          *(("via", tok.ipv4(route.via)) if route.via else ()), "dev", tok.ifname(route.dev),
                          *(("src", tok.ipv4(route.src)) if route.src else ()), "scope", scope, *metric,
                          *(("onlink",) if route.onlink else ())))
        for entry in ns.neighbours.entries():
            if entry.state in (PERMANENT, NOARP) and entry.lladdr:
                lines.append(("neigh", "add", tok.ipv4(entry.ip), "lladdr", tok.mac(entry.lladdr),
                              "dev", tok.ifname(entry.dev), "nud", entry.state.lower()))
        return lines

    def _bridge_commands(self, ns) -> list[Line]:
        lines: list[Line] = []
        for dev in ns.devices.values():
            if isinstance(dev, Bridge):
                for name, port in dev.ports.items():
                    lines.append(("link", "set", "dev", tok.ifname(name), "hairpin", "on" if port.hairpin else "off",
                                  "learning", "on" if port.learning else "off", "flood", "on" if port.flood else "off"))
                for entry in dev.fdb.values():
                    if entry.static and not entry.local:
                        lines.append(("fdb", "add", tok.mac(entry.mac), "dev", tok.ifname(entry.port), "master", "static"))
            elif isinstance(dev, VxlanDevice):
                for vx in dev.fdb.values():
                    lines.append(("fdb", "append", tok.mac(vx.mac), "dev", tok.ifname(dev.name),
                                  "dst", tok.ipv4(vx.dst), "self", "permanent"))
        return lines

    def _check_mtus(self, name: str) -> None:
        """Every device's MTU is the model's (the kernel clamps some silently: a VXLAN device's)."""
        out = self._cmd([self._ip, "-n", self.netns(name), "-o", "link", "show"]).stdout
        model = self.cluster.network.namespaces[name].devices
        for line in out.splitlines():
            parts = line.split()
            dev, mtu = parts[1].rstrip(":").split("@")[0], int(parts[parts.index("mtu") + 1])
            if dev in model and model[dev].mtu != mtu:
                raise LabError(f"{self.netns(name)}/{dev}: MTU {mtu} in the kernel, {model[dev].mtu} in the model")

    def _iptables(self, name: str, text: str) -> None:
        """iptables-restore, in the lab namespace, of the model's rules (checked by the plan)."""
        if not text:
            return
        tok.check_restore(text)
        self.commands.append(f"ip netns exec {shlex.quote(self.netns(name))} iptables-restore <<'EOF'\n{text}EOF")
        tool = _tool("iptables-restore") or "iptables-restore"
        done = in_netns(self.netns(name), lambda: self._cmd([tool], text, check=False))
        if done.returncode != 0:
            raise LabError(f"iptables-restore in {self.netns(name)} failed: {done.stderr.strip()}\n{text}")

    def _offload_off(self, name: str, devices: list[str]) -> None:
        self.commands.extend(tok.shown(["ip", "netns", "exec", self.netns(name), "ethtool", "-K", d, "tx", "off"])
                             for d in devices)

        def apply() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for dev in devices:
                    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0), 8)
                    ifreq = struct.pack("16sP", dev.encode(), ctypes.addressof(value)).ljust(40, b"\0")
                    fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)

        in_netns(self.netns(name), apply)

    def _open_captures(self, name: str, devices: list[str]) -> None:
        def open_all() -> dict[str, socket.socket]:
            out = {}
            for dev in devices:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CAPTURE_BUFFER)
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                s.bind((dev, ETH_P_ALL))
                s.setblocking(False)
                out[dev] = s
            return out

        for dev, s in in_netns(self.netns(name), open_all).items():
            self._sockets[(name, dev)] = s

    def _open_servers(self, name: str, listeners: list[tuple[str, int]]) -> None:
        if not listeners:
            return

        def open_all() -> list[tuple[str, socket.socket]]:
            out = []
            for proto, port in listeners:
                kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
                s = socket.socket(socket.AF_INET, kind)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                if proto == "tcp":
                    s.listen(4096)        # the kernel answers SYNs; nothing needs to accept
                out.append((proto, s))
            return out

        for proto, s in in_netns(self.netns(name), open_all):
            (self._servers if proto == "tcp" else self._udp_servers).append(s)
        self.commands.extend(f"# in {self.netns(name)}: a {p} socket listening on port {port}" for p, port in listeners)

    def _serve_udp(self) -> None:
        """Every UDP listener answers each datagram with b"RSP", as netsim's do."""
        while not self._stop.is_set():
            socks = [s for s in self._udp_servers if s.fileno() >= 0]
            if not socks:
                return
            try:
                ready, _, _ = select.select(socks, [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    data, addr = s.recvfrom(65535)
                    s.sendto(b"RSP", addr)
                except OSError:
                    pass

    # cleaning up --------------------------------------------------------------------------
    def close(self) -> None:
        """Delete every lab namespace (and so every interface and rule in it). Idempotent, and
        it finishes even if SIGINT, SIGTERM or SIGHUP arrives meanwhile: the signal is held
        and raised again once the lab is gone. Any command still running for the lab is killed
        and reaped first."""
        with self._close_lock, _SignalsHeld():
            if self._closed:
                return
            self._stop.set()
            if self._server_thread is not None and self._server_thread is not threading.current_thread():
                self._server_thread.join(timeout=2)
            for s in [*self._sockets.values(), *self._servers, *self._udp_servers]:
                try:
                    s.close()
                except OSError:
                    pass
            self._sockets.clear()
            for proc in list(self._children):
                _reap(proc, drain=False)
            if self._created:
                t0 = time.perf_counter()
                self._delete_namespaces()
                self.timings["teardown"] = time.perf_counter() - t0
            self._closed = True
            _LIVE.discard(self)

    def _delete_namespaces(self) -> None:
        """`ip netns del` of every namespace this lab made that still exists; a second try,
        one by one, for any the batch left."""
        for attempt in range(2):
            doomed = [n for n in self._created if os.path.lexists(netns_path(n))]
            if not doomed:
                return
            if attempt == 0:
                _run([self._ip, "-force", "-batch", "-"], tok.batch(("netns", "del", n) for n in doomed), check=False)
            else:
                for n in doomed:
                    _run([self._ip, "netns", "del", n], check=False)
        left = [n for n in self._created if os.path.lexists(netns_path(n))]
        if left:
            warnings.warn(LabWarning(f"netsim.lab: could not delete {' '.join(left)}; the next lab run removes "
                                     f"them once this process has ended"), stacklevel=3)

    def leftovers(self) -> list[str]:
        """Lab namespaces that still exist (empty after `close()`)."""
        if not os.path.isdir(NETNS_RUN_DIR):
            return []
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(self.prefix))

    # running traffic ----------------------------------------------------------------------
    def cold_start(self) -> None:
        """Flush dynamic neighbours, learned bridge FDB entries and conntrack everywhere."""
        model = self.cluster.network.namespaces
        conntrack = _tool("conntrack") or "conntrack"

        def flush(name: str) -> None:
            ns = model[name]
            lines: list[Line] = []
            for dev in ns.devices.values():
                if not isinstance(dev, Loopback):
                    lines.append(("neigh", "flush", "dev", tok.ifname(dev.name)))
                if isinstance(dev, Bridge):
                    lines.append(("link", "set", "dev", tok.ifname(dev.name), "type", "bridge", "fdb_flush"))
            self._batch(name, lines, force=True, log=False)
            if ns.netfilter.conntrack_active:
                in_netns(self.netns(name), lambda: self._cmd([conntrack, "-F"], check=False))

        self._parallel(flush, list(model))

    def _drain(self) -> list[Capture]:
        out = []
        for (ns, dev), s in self._sockets.items():
            while True:
                try:
                    data, anc, _flags, addr = s.recvmsg(65600, socket.CMSG_SPACE(16))
                except (BlockingIOError, InterruptedError):
                    break
                pkttype = addr[2]
                if dev == "lo" and pkttype == PACKET_OUTGOING:
                    continue              # lo shows each frame twice; libpcap keeps the received copy
                stamp = time.time()
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                        sec, nsec = struct.unpack("qq", raw[:16])
                        stamp = sec + nsec / 1e9
                out.append(Capture(stamp, ns, dev, "tx" if pkttype == PACKET_OUTGOING else "rx", data))
        return out

    def exchange(self, src: str, dst: str, proto: str | None = None, dport: int | None = None,
                 payload: bytes | None = None, timeout: float = EXCHANGE_TIMEOUT) -> Observation:
        """Do with real sockets what `cluster.send(src, dst, proto, dport, payload=payload)` models,
        and capture it. `payload` is the UDP datagram's data (default b"REQ", as in the model);
        `timeout` is how long the client waits for an answer (a silent drop costs all of it)."""
        if self._closed or not self._sockets:
            raise LabError("the lab is not built (use `with Lab(cluster) as lab:`)")
        src_ns, dst_ip, proto, dport = resolve(self.cluster, src, dst, proto, dport)
        if payload is not None and proto != "udp":
            raise ConfigError(f"the lab sends a payload only over UDP, not {proto}")
        request = payload if payload is not None else b"REQ"
        t0 = time.perf_counter()
        self.cold_start()
        time.sleep(0.01)
        self._drain()
        self._client_port = None
        outcome = self._traffic(src_ns, dst_ip, proto, dport, request, timeout)
        # drain until the wire has been quiet for SETTLE: on a loaded machine late copies (a
        # flood's last port, a reply's last hop) can trail the socket's answer
        captures: list[Capture] = []
        deadline = time.perf_counter() + SETTLE_MAX
        while True:
            time.sleep(SETTLE)
            batch = self._drain()
            captures += batch
            if not batch or time.perf_counter() > deadline:
                break
        seconds = time.perf_counter() - t0
        kinds = {(n, d.name): d.kind for n, ns in self.cluster.network.namespaces.items() for d in ns.devices.values()}
        peers = {(n, d.name): (d.peer.netns.name, d.peer.name) for n, ns in self.cluster.network.namespaces.items()
                 for d in ns.devices.values() if isinstance(d, Veth) and d.peer is not None and d.peer.netns is not None}
        captures = order(captures, kinds, peers)
        title = f"kernel: {src} -> {dst} ({proto}{'/' + str(dport) if dport else ''})"
        trace = to_trace(captures, title=title, outcome=outcome, kinds=kinds, refused="refused" in outcome,
                         request=request, peers=peers)
        # an ICMP error that reached the client is the outcome, whatever the socket made of it (a
        # connected UDP socket reports only "hard" errors, ping counts "+1 errors")
        errors = [h for h in trace.hops if h.role == "error" and h.netns == src_ns and h.direction == "rx"]
        if errors and not outcome.startswith(("connected", "udp reply", "echo reply")):
            ip = errors[-1].ip
            if ip is not None and not isinstance(ip.payload, bytes):
                outcome = f"error: {ip.payload.summary()} from {ip.src}"
                trace = Trace(trace.hops, title, outcome)
        return Observation(trace, captures, src, dst, proto, dport, outcome, self.kernel,
                           not self.checksum_offload, seconds, self._client_port)

    def _traffic(self, src_ns: str, dst_ip: str, proto: str, dport: int | None, request: bytes = b"REQ",
                 timeout: float = EXCHANGE_TIMEOUT) -> str:
        lab_ns = self.netns(src_ns)
        if proto == "icmp":
            ping = _tool("ping") or "ping"
            wait = max(1, round(timeout))
            argv = [ping, "-c", "1", "-W", str(wait), "-n", tok.ipv4(dst_ip)]
            done = in_netns(lab_ns, lambda: self._cmd(argv, check=False, timeout=wait + COMMAND_TIMEOUT))
            return f"echo reply from {dst_ip}" if done.returncode == 0 else f"no echo reply ({done.stdout.strip()[-80:]})"
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = in_netns(lab_ns, lambda: socket.socket(socket.AF_INET, kind))
        sock.settimeout(timeout)
        try:
            if proto == "udp":
                # report every ICMP error at once (a connected UDP socket otherwise waits out
                # "soft" ones such as net unreachable); nothing changes on the wire
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            if proto == "tcp":
                try:
                    sock.connect((dst_ip, dport))
                except ConnectionRefusedError:
                    return f"connection refused by {dst_ip}:{dport} (RST)"
                except (socket.timeout, OSError) as exc:
                    return f"no answer: {exc}"
                self._client_port = sock.getsockname()[1]
                peer = sock.getpeername()
                # close with RST at once, so the exchange is over before the next one starts
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return f"connected to {peer[0]}:{peer[1]} (SYN-ACK)"
            sock.connect((dst_ip, dport))
            self._client_port = sock.getsockname()[1]
            try:
                sock.send(request)
            except OSError as exc:            # EMSGSIZE: DF and bigger than a known path MTU
                return f"send: {exc.strerror or exc}"
            try:
                data, peer = sock.recvfrom(65535)
            except socket.timeout:
                return "no answer reached the sender"     # what the model says of a silent drop
            except OSError as exc:
                return f"no answer: {exc}"
            return f"udp reply from {peer[0]}:{peer[1]}"
        finally:
            sock.close()


# ------------------------------------------------------------------------------------------

def resolve(cluster: Cluster, src: str, dst: str, proto: str | None, dport: int | None) -> tuple[str, str, str, int | None]:
    """The namespace, address, protocol and port `Cluster.send` would use."""
    source = cluster.resolve(src, source=True)
    target = cluster.resolve(dst, from_ns=source.netns)
    if proto is None:
        proto = "tcp" if (dport or target.port) else "icmp"
    if dport is None and proto != "icmp":
        dport = target.port if target.port is not None else (8080 if proto == "tcp" else 9090)
    assert source.netns is not None and target.ip is not None   # a source always has a namespace
    return source.netns, target.ip, proto, dport


_LAYER = {"lo": 0}


def _tie_rank(capture: Capture, kinds: dict[tuple[str, str], str]) -> tuple:
    """Frames with one timestamp are one skb seen on several devices: receive before transmit,
    the lower device (veth, NIC, switch port) before the upper one (bridge, VXLAN) on receive,
    the upper before the lower on transmit (kernel-observations.md, fact 10)."""
    upper = kinds.get((capture.netns, capture.device)) in ("bridge", "vxlan")
    if capture.direction == "rx":
        return (0, 1 if upper else 0)
    return (1, 0 if upper else 1)


def classify(frame: Ethernet | IPv4, refused: bool = False, request: bytes = b"REQ") -> str:
    """The role of a captured frame in the exchange, judged from its innermost packet: the
    SYN, echo request or `request` datagram (b"REQ" unless the exchange sent another payload)
    is the request; the SYN-ACK (or, when the connection was refused, the RST-ACK), echo reply
    or b"RSP" the reply; the rest (the handshake's ACK, the client's closing RST) is "other".
    A fragment has no transport header of its own: `to_trace` classifies it by the packet
    it belongs to."""
    if isinstance(frame, Ethernet) and isinstance(frame.payload, ARP):
        return "arp"
    ip = innermost_ip(frame) if isinstance(frame, Ethernet) else frame
    if ip is None:
        return "other"
    p = ip.payload
    if isinstance(p, TCP):
        if p.flags == "S":
            return "request"
        if p.flags == "SA" or (refused and p.flags == "RA"):
            return "reply"
        return "other"
    if isinstance(p, ICMP):
        return {8: "request", 0: "reply"}.get(p.type, "error" if p.is_error else "other")
    if isinstance(p, UDP):
        data = p.payload if isinstance(p.payload, bytes) else b""
        return {request: "request", b"RSP": "reply"}.get(data, "other")
    return "other"


def _fragment_key(ip: IPv4) -> tuple:
    """What ties a fragment to its packet (ip_defrag's key, RFC 791)."""
    return (ip.src, ip.dst, ip.id, ip.proto)


def _fragment_roles(frames: list[Ethernet], refused: bool, request: bytes) -> dict[tuple, str]:
    """The role of every fragmented packet among `frames`, from its reassembled payload.

    The fragments of one packet are gathered by (src, dst, IP ID, protocol), wherever they
    were captured and at whatever depth (outer VXLAN packets are fragmented too); their
    payloads, put in order of offset, are parsed and classified as the whole packet would be.
    A packet whose fragments were not all captured keeps the role "other"."""
    pieces: dict[tuple, dict[int, IPv4]] = {}

    def collect(ip: IPv4 | None) -> None:
        while ip is not None:
            if ip.is_fragment:
                pieces.setdefault(_fragment_key(ip), {}).setdefault(ip.frag * 8, ip)
                return
            ip = _vxlan_inner(ip)

    for frame in frames:
        if isinstance(frame.payload, IPv4):
            collect(frame.payload)
    roles: dict[tuple, str] = {}
    for key, parts in pieces.items():
        data, offset, last = b"", 0, None
        for off in sorted(parts):
            if off != offset:
                break
            part = parts[off]
            chunk = part.payload if isinstance(part.payload, bytes) else part.payload_bytes()
            data += chunk
            offset += len(chunk)
            last = parts[off]
        if last is None or last.mf:
            continue
        whole = replace(parts[0], mf=False, frag=0, payload=_parse_transport(key[3], data, (8472, 4789)))
        roles[key] = classify(innermost_ip(Ethernet("", "", 0x0800, whole)) or whole, refused, request)
    return roles


def order(captures: list[Capture], kinds: dict | None = None, peers: dict | None = None) -> list[Capture]:
    """Captures in time order, ties as `_tie_rank` says. With `peers` ((netns, dev) -> its veth
    peer), a frame received on a veth end never comes before the same bytes sent by its peer:
    a fragment keeps the timestamp of the packet it was cut from, and its peer's receive copy
    can tie with, or precede, the capture of its transmission."""
    kinds = kinds or {}
    out = sorted(captures, key=lambda c: (c.time, *_tie_rank(c, kinds)))
    if not peers:
        return out
    sent: dict[tuple, int] = {}
    i = 0
    while i < len(out):
        c = out[i]
        if c.direction == "tx" and (c.netns, c.device) in peers:
            key = (peers[(c.netns, c.device)], c.data)
            sent[key] = sent.get(key, 0) + 1
        elif c.direction == "rx" and (c.netns, c.device) in peers.values():
            key = ((c.netns, c.device), c.data)
            if sent.get(key):
                sent[key] -= 1
            else:
                j = next((j for j in range(i + 1, len(out)) if out[j].direction == "tx"
                          and peers.get((out[j].netns, out[j].device)) == (c.netns, c.device)
                          and out[j].data == c.data), None)
                if j is not None:
                    out.insert(i, out.pop(j))
                    continue                       # the moved transmission is looked at next
        i += 1
    return out


def _vxlan_inner(ip: IPv4) -> IPv4 | None:
    """The packet a VXLAN datagram carries, if `ip` is one."""
    udp = ip.payload
    if isinstance(udp, UDP) and isinstance(udp.payload, VXLAN):
        return udp.payload.payload.ip
    return None


def _outermost_fragment(frame: Ethernet) -> IPv4 | None:
    ip = frame.ip if isinstance(frame, Ethernet) else None
    while ip is not None:
        if ip.is_fragment:
            return ip
        ip = _vxlan_inner(ip)
    return None


def to_trace(captures: list[Capture], title: str = "", outcome: str = "", kinds: dict | None = None,
             refused: bool = False, request: bytes = b"REQ", peers: dict | None = None) -> Trace:
    """Captured frames as a netsim `Trace`, one hop per capture, in `order()`. A fragment takes
    the role of the packet it belongs to (`_fragment_roles`)."""
    kinds = kinds or {}
    ordered = order(captures, kinds, peers)
    frames = [parse_ethernet(c.data) for c in ordered]
    fragment_roles = _fragment_roles(frames, refused, request)
    hops = []
    packet_ids: dict[tuple, int] = {}
    for i, (c, frame) in enumerate(zip(ordered, frames)):
        frag = _outermost_fragment(frame)
        role = fragment_roles.get(_fragment_key(frag), "other") if frag is not None else classify(frame, refused, request)
        ip = innermost_ip(frame)
        key = (role, ip.src if ip else None, ip.dst if ip else None) if role != "arp" else ("arp", i)
        pid = packet_ids.setdefault(key, len(packet_ids) + 1)
        hops.append(Hop(i, c.netns, c.device, c.direction, frame, (Decision(Subsystem.LAB, "packet_rcv", CaptureReason.CAPTURED, Verdict.CAPTURE, time=c.time),), pid, role, "",
                        kinds.get((c.netns, c.device), "")))
    return Trace(tuple(hops), title, outcome)
