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
one `ping -c1`, while an AF_PACKET socket with a PACKET_MMAP receive ring on every device of
every namespace records each frame, copied as it passes the device, with its direction and
kernel timestamp (what `tcpdump -i IF -e -nn -p --immediate-mode` sees: capture.py). The
frames come back as a `Trace` in netsim's shape.

Conditions, as in kernel-observations.md: IPv6 is disabled in every lab namespace (no ND or
MLD noise), rp_filter is 0, capture sockets are not promiscuous (a promiscuous bridge would
pass forwarded frames up its own stack). Transmit checksum offload is switched off on every
lab device (ETHTOOL_STXCSUM, what `ethtool -K IF tx off` does), so every checksum on the wire
is complete and can be verified; with offload the kernel leaves partial checksums that only
a NIC would finish.
"""

from __future__ import annotations

import itertools
import os
import platform
import shlex
import subprocess
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..bridge import Bridge
from ..cluster import Cluster
from ..device import Loopback, Veth
from ..errors import ConfigError
from ..trace import Hop, Trace
from . import commands as tok
from . import plan as planning
from . import rulesets
from ._netns import NETNS_RUN_DIR, in_netns, netns_path, tx_checksum_off, write_sysctls
from .capture import Capture, Ring, close_all, drain, flush, open_captures
from .cleanup import LIVE, LabWarning, SignalsHeld, install_handlers, reclaim_stale
from .commands import LabError, Line
from .frames import order, to_trace
from .nftrace import TraceWalk
from .plan import Plan
from .process import COMMAND_TIMEOUT, LabUnavailable, reap, run, tool, unavailable_reason
from .tracer import RuleTracer
from .arp_responder import Responders
from .programs import ProgramRunner
from .traffic import EXCHANGE_TIMEOUT, client, resolve

SETTLE = 0.05            # seconds of quiet on every device that end an exchange's capture
SETTLE_MAX = 1.0         # and the longest it may trail the socket's answer
_COUNTER = itertools.count(1)


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
    rule_walks: dict[str, list[TraceWalk]] | None = None   # model netns -> the netfilter trace (trace_rules)
    rule_texts: dict[str, str] = field(default_factory=dict)   # model netns -> the monitor's text of it

    @property
    def hops(self) -> tuple[Hop, ...]:
        return self.trace.hops


class Lab:
    """A netsim cluster built on the running kernel.

        with Lab(cluster) as lab:
            observed = lab.exchange("pod-a", "pod-c", "tcp")
    """

    def __init__(self, cluster: Cluster, prefix: str | None = None, checksum_offload: bool = False,
                 trace_rules: bool = False):
        if cluster.backend == "udp":
            raise LabUnavailable("the udp backend has no kernel counterpart without flanneld: flannel0 is a TUN "
                                 "device whose packets only flanneld's userspace proxy forwards, so the lab "
                                 "cannot build it")
        self.cluster = cluster
        self.prefix = tok.prefix(prefix) if prefix is not None else f"nsl-{os.getpid()}-{next(_COUNTER)}-"
        self.checksum_offload = checksum_offload
        # netfilter tracing of every namespace with rules (tracer.py): xtables-monitor where the
        # model has only iptables rules, nft monitor trace where it has nftables tables; each
        # exchange's Observation then carries the kernel's rule-by-rule trace
        self.tracer = RuleTracer(self._cmd) if trace_rules else None
        self.nft_tracer = RuleTracer(self._cmd, mode="nft") if trace_rules else None
        self.commands: list[str] = []          # every command, shell-quoted as a reader would paste it
        self.timings: dict[str, float] = {}
        self.kernel = platform.release()
        self.reclaimed: list[str] = []         # stale namespaces this lab's build removed
        self._created: list[str] = []
        self._sockets: dict[tuple[str, str], Ring] = {}   # the capture rings
        self._servers = ProgramRunner()
        self._arp = Responders()               # stand-ins for userspace ARP responders (arp_responder.py)
        self._closed = False
        self._close_lock = threading.RLock()
        self._children: set[subprocess.Popen] = set()
        self._ip = tool("ip") or "ip"
        self._bridge = tool("bridge") or "bridge"

    # naming -------------------------------------------------------------------------------
    def netns(self, model_name: str) -> str:
        """The lab namespace standing for model namespace `model_name` (a checked name)."""
        return f"{self.prefix}{tok.netns_name(model_name)}"

    @property
    def namespaces(self) -> list[str]:
        return list(self._created)

    @property
    def capture_points(self) -> list[tuple[str, str]]:
        """(model namespace, device) of every capture ring the build opened."""
        return sorted(self._sockets)

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
        return planning.make_plan(self.cluster, self.netns)

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
        install_handlers()
        LIVE.add(self)
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
        self._parallel(lambda n: self._sysctls(n, plan.device_sysctls[n]), names)
        self._parallel(self._check_mtus, names)
        self._parallel(lambda n: self._netfilter(n, plan), names)
        if self.tracer is not None and self.nft_tracer is not None:
            tracer, nft_tracer = self.tracer, self.nft_tracer
            self._parallel(lambda n: self.commands.extend(tracer.start(self.netns(n), n)),
                           [n for n in names if plan.iptables[n] and not plan.nft[n]])
            self._parallel(lambda n: self.commands.extend(nft_tracer.start(self.netns(n), n)),
                           [n for n in names if plan.nft[n]])
        if not self.checksum_offload:
            self._parallel(lambda n: self._offload_off(n, plan.offload[n]), names)
        self._parallel(lambda n: self._open_captures(n, plan.devices[n]), names)
        self._parallel(lambda n: self._open_servers(n, plan.listeners[n]), names)
        for n in names:
            self._arp.open(self.netns(n), plan.arp_responders[n])
            self.commands.extend(f"# in {self.netns(n)}: a packet socket on {dev} answering ARP for "
                                 f"{', '.join(addresses)} (MetalLB's speaker)" for dev, addresses in plan.arp_responders[n])
        self._arp.start()
        self._servers.start()
        self.timings["build"] = self.timings["plan"] + time.perf_counter() - t1

    def _parallel(self, fn: Callable[[str], object], names: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(fn, n) for n in names]:
                future.result()

    def _cmd(self, argv: Sequence[str], input: str | None = None, check: bool = True,
             timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run one command on behalf of this lab (close() kills and reaps it if it still runs)."""
        return run(argv, input, check, timeout, self._children)

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

    def _sysctls(self, name: str, values: list[tuple[str, str]]) -> None:
        self.commands.extend(tok.shown(["ip", "netns", "exec", self.netns(name), "sysctl", "-qw", f"{k}={v}"])
                             for k, v in values)
        write_sysctls(self.netns(name), values, LabUnavailable)

    def _check_mtus(self, name: str) -> None:
        """Every device's MTU is the model's (the kernel clamps some silently: a VXLAN device's)."""
        out = self._cmd([self._ip, "-n", self.netns(name), "-o", "link", "show"]).stdout
        model = self.cluster.network.namespaces[name].devices
        for line in out.splitlines():
            parts = line.split()
            dev, mtu = parts[1].rstrip(":").split("@")[0], int(parts[parts.index("mtu") + 1])
            if dev in model and model[dev].mtu != mtu:
                raise LabError(f"{self.netns(name)}/{dev}: MTU {mtu} in the kernel, {model[dev].mtu} in the model")

    def _netfilter(self, name: str, plan: Plan) -> None:
        """The model's iptables rules and nftables batches, in the order it registered them."""
        rulesets.load(self.netns(name), name, plan, self._cmd, self.commands)

    def _offload_off(self, name: str, devices: list[str]) -> None:
        self.commands.extend(tok.shown(["ip", "netns", "exec", self.netns(name), "ethtool", "-K", d, "tx", "off"])
                             for d in devices)
        tx_checksum_off(self.netns(name), devices)

    def _open_captures(self, name: str, devices: list[str]) -> None:
        for dev, s in open_captures(self.netns(name), devices).items():
            self._sockets[(name, dev)] = s

    def _open_servers(self, name: str, listeners: list[tuple[str, int]]) -> None:
        """The namespace's server programs (Namespace.listen), each on real sockets."""
        self.commands.extend(self._servers.open(self.netns(name), self.cluster.network.namespaces[name], listeners))

    # cleaning up --------------------------------------------------------------------------
    def close(self) -> None:
        """Delete every lab namespace (and so every interface and rule in it). Idempotent, and
        it finishes even if SIGINT, SIGTERM or SIGHUP arrives meanwhile: the signal is held
        and raised again once the lab is gone. Any command still running for the lab is killed
        and reaped first."""
        with self._close_lock, SignalsHeld():
            if self._closed:
                return
            self._servers.close()
            self._arp.close()
            for tracer in (self.tracer, self.nft_tracer):
                if tracer is not None:
                    tracer.close()
            close_all(list(self._sockets.values()))
            self._sockets.clear()
            for proc in list(self._children):
                reap(proc, drain=False)
            if self._created:
                t0 = time.perf_counter()
                self._delete_namespaces()
                self.timings["teardown"] = time.perf_counter() - t0
            self._closed = True
            LIVE.discard(self)

    def _delete_namespaces(self) -> None:
        """`ip netns del` of every namespace this lab made that still exists; a second try,
        one by one, for any the batch left."""
        for attempt in range(2):
            doomed = [n for n in self._created if os.path.lexists(netns_path(n))]
            if not doomed:
                return
            if attempt == 0:
                run([self._ip, "-force", "-batch", "-"], tok.batch(("netns", "del", n) for n in doomed), check=False)
            else:
                for n in doomed:
                    run([self._ip, "netns", "del", n], check=False)
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
        conntrack = tool("conntrack") or "conntrack"

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
        flush(self._sockets)
        tracers = [t for t in (self.tracer, self.nft_tracer) if t is not None]
        since = [t.position() for t in tracers]
        noted = [len(t.notes) for t in tracers]
        outcome, client_port = client(self.netns(src_ns), dst_ip, proto, dport, self._cmd, request, timeout)
        # drain until the wire has been quiet for SETTLE: on a loaded machine late copies (a
        # flood's last port, a reply's last hop) can trail the socket's answer
        captures: list[Capture] = []
        deadline = time.perf_counter() + SETTLE_MAX
        while True:
            time.sleep(SETTLE)
            batch = drain(self._sockets)
            captures += batch
            if not batch or time.perf_counter() > deadline:
                break
        walks = None
        texts: dict[str, str] = {}
        notes: list[str] = []
        if tracers:
            walks = {}
            for tracer, position, before in zip(tracers, since, noted):
                tracer.sync()
                walks.update(tracer.walks(position))
                texts.update({name: tracer.texts[name] for name in tracer.monitors})
                notes += tracer.notes[before:]
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
                           not self.checksum_offload, seconds, client_port, notes=notes, rule_walks=walks,
                           rule_texts=texts)
