"""Netfilter tracing in the lab's namespaces: the TRACE rules, the monitors, and what they printed.

`RuleTracer.start(lab_netns, model_name)` appends `-j TRACE` to the raw table's PREROUTING and
OUTPUT chains of one namespace (iptables' nf_tables backend turns it into `meta nftrace set
1`), so every packet that enters or leaves the namespace is traced, and starts
`xtables-monitor --trace` inside it. The rules go last in their chains, so the model's own
rule numbers stay as they are; a raw rule the model has before them is not traced. For an
nftables ruleset (`mode="nft"`) a table of its own, `nsl_trace`, sets the bit at priority
-350 instead, and `nft monitor trace` reads it.

A monitor prints each event as the kernel sends it, but a few milliseconds later: `sync()`
sends one marker datagram from 127.0.0.1 to itself in every traced namespace and waits until
each monitor has printed it, so everything before it is in. `walks(since)` parses what came
between (nftrace.py) and numbers the rules from the ruleset's handles (`nft -j -a list
ruleset`, read once when tracing starts).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from typing import Callable

from ._netns import in_netns
from .nftrace import RuleIndex, TraceWalk, parse_nft_monitor, parse_xtables_monitor
from .process import reap, tool

TRACE_RULES = "*raw\n-A PREROUTING -j TRACE\n-A OUTPUT -j TRACE\nCOMMIT\n"
# the lab's own rules, as the monitor prints them: left out of every comparison
LAB_RULES = {("raw", "-A PREROUTING -j TRACE"), ("raw", "-A OUTPUT -j TRACE"),
             ("nsl_trace", "meta nftrace set 1")}
NFT_TRACE_TABLE = """table ip nsl_trace {
  chain pre { type filter hook prerouting priority -350; policy accept; meta nftrace set 1; }
  chain out { type filter hook output priority -350; policy accept; meta nftrace set 1; }
}
"""
SYNC_TIMEOUT = 3.0
# how long `sync` waits for a marker before it says the trace is incomplete: a loaded machine
# can hold a monitor's output back for seconds, and a walk cut off is a false difference
SYNC_LIMIT = 15.0


class _Monitor:
    """One monitor process and the lines it has printed so far."""

    def __init__(self, proc: subprocess.Popen, index: RuleIndex):
        self.proc = proc
        self.index = index
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True, name="lab-nftrace")
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def since(self, start: int) -> list[str]:
        with self.lock:
            return self.lines[start:]

    def __len__(self) -> int:
        with self.lock:
            return len(self.lines)


class RuleTracer:
    """Netfilter tracing in a lab's namespaces (one monitor each), read per exchange."""

    def __init__(self, run: Callable[..., subprocess.CompletedProcess], mode: str = "xtables"):
        if mode not in ("xtables", "nft"):
            raise ValueError(f"tracing mode {mode!r}: xtables or nft")
        self.mode = mode
        self._run = run                      # runs a command for the lab (its children are reaped)
        self.monitors: dict[str, _Monitor] = {}
        self.lab_netns: dict[str, str] = {}
        self.notes: list[str] = []
        self._marker_ports: dict[str, int] = {}
        self.texts: dict[str, str] = {}     # model netns -> the monitor's text of the last `walks`

    def start(self, lab_netns: str, model_name: str) -> list[str]:
        """Trace every packet of namespace `lab_netns` and start its monitor; the commands, as
        a reader would type them."""
        if self.mode == "xtables":
            restore = tool("iptables-restore") or "iptables-restore"
            in_netns(lab_netns, lambda: self._run([restore, "--noflush"], TRACE_RULES))
            argv = [tool("xtables-monitor") or "xtables-monitor", "--trace"]
            shown = [f"ip netns exec {lab_netns} iptables-restore --noflush <<'EOF'\n{TRACE_RULES}EOF"]
        else:
            nft = tool("nft") or "nft"
            in_netns(lab_netns, lambda: self._run([nft, "-f", "-"], NFT_TRACE_TABLE))
            argv = [nft, "monitor", "trace"]
            shown = [f"ip netns exec {lab_netns} nft -f - <<'EOF'\n{NFT_TRACE_TABLE}EOF"]
        nft = tool("nft") or "nft"
        listing = in_netns(lab_netns, lambda: self._run([nft, "-j", "-a", "list", "ruleset"])).stdout
        texts = in_netns(lab_netns, lambda: self._run([nft, "-a", "list", "ruleset"])).stdout
        index = RuleIndex.from_nft_json(listing, texts)
        proc = in_netns(lab_netns, lambda: subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True))
        self.monitors[model_name] = _Monitor(proc, index)
        self.lab_netns[model_name] = lab_netns
        self._wait_ready(model_name)
        return shown + [f"ip netns exec {lab_netns} {' '.join(argv[-2:] if self.mode == 'nft' else argv[-1:])}"]

    def _wait_ready(self, name: str) -> None:
        """The monitor has subscribed once it prints a marker sent after it started."""
        deadline = time.monotonic() + SYNC_TIMEOUT
        while time.monotonic() < deadline:
            if self._sync_one(name, 0.2):
                return
        self.notes.append(f"{name}: the trace monitor printed nothing within {SYNC_TIMEOUT:g} s")

    def position(self) -> dict[str, int]:
        """Where each monitor's output stands now (pass it to `walks`)."""
        return {name: len(m) for name, m in self.monitors.items()}

    def _marker(self, name: str) -> int:
        """Send one datagram 127.0.0.1 -> 127.0.0.1 in namespace `name`; its port."""
        def send() -> int:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
                s.sendto(b"nsl-trace-marker", ("127.0.0.1", port))
                return port
        return in_netns(self.lab_netns[name], send)

    def _seen(self, line: str, port: int) -> bool:
        if self.mode == "xtables":
            return "SRC=127.0.0.1 DST=127.0.0.1" in line and f"SPORT={port} DPORT={port}" in line
        return "ip saddr 127.0.0.1 ip daddr 127.0.0.1" in line and f"udp sport {port} udp dport {port}" in line

    def _sync_one(self, name: str, timeout: float) -> bool:
        monitor = self.monitors[name]
        start = len(monitor)
        port = self._marker(name)
        self._marker_ports[name] = port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(self._seen(line, port) for line in monitor.since(start)):
                return True
            time.sleep(0.002)
        return False

    def sync(self) -> None:
        """Wait until every monitor has printed all that happened before now."""
        for name in self.monitors:
            if not self._sync_one(name, SYNC_LIMIT):
                self.notes.append(f"{name}: the trace marker did not come back within {SYNC_LIMIT:g} s:"
                                  " its walks may be incomplete")

    def walks(self, since: dict[str, int]) -> dict[str, list[TraceWalk]]:
        """Every walk each monitor printed after `since` and before the last marker, numbered,
        without the lab's own rules (a walk left with no event is dropped)."""
        out: dict[str, list[TraceWalk]] = {}
        for name, monitor in self.monitors.items():
            lines = monitor.since(since.get(name, 0))
            port = self._marker_ports.get(name)
            cut = next((i for i, line in enumerate(lines) if port is not None and self._seen(line, port)),
                       len(lines))
            text = "\n".join(lines[:cut])
            self.texts[name] = text
            parsed = parse_xtables_monitor(text) if self.mode == "xtables" else parse_nft_monitor(text)
            walks = []
            for walk in parsed:
                walk = monitor.index.number(walk)
                walk.events = [e for e in walk.events if (e.table, e.text) not in LAB_RULES]
                if walk.events and walk.table not in ("nsl_trace",):
                    walks.append(walk)
            out[name] = walks
        return out

    def close(self) -> None:
        for monitor in self.monitors.values():
            reap(monitor.proc, drain=False)
            if monitor.proc.stdout is not None:
                monitor.proc.stdout.close()
