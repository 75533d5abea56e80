"""kube-proxy's and flannel's nftables rulesets, as netsim writes and evaluates them, against the
real kernel (nftables 1.0.6, Linux 6.18 on the test machine).

1. The batches netsim writes (kube-proxy's first full sync, then flanneld's five) are loaded
   with `nft -f` (flannel's fully-random probe with `nft -c -f`) into a fresh namespace; `nft
   list ruleset` and `nft -a list ruleset` must equal netsim's listing byte for byte. nft adds
   nothing here that netsim does not print: handles only with -a, counters are not used.
2. The Service paths: a small node built with `ip netns` (a bridge cni0 with pod-a and pod-b,
   eth0 to a peer holding the remote pod 10.244.1.2, eth1 to an external client) gets the same
   ruleset and a tracing table (`meta nftrace set 1` on TCP at priority -350, before every chain
   compared). Each scenario connects with a fixed source port; `nft monitor trace` must show, for
   the client's SYN and for the endpoint's SYN-ACK, the same rules in the same order, with the
   same handles and verdicts, as netsim's decisions (table, chain, handle, verdict; the base
   chains' policies included); the kernel's conntrack entry must carry netsim's NAT (endpoint
   address and port; the masquerade address; the masqueraded port is random in the kernel and
   is left out); and the client must see what netsim's verdict implies (connected, refused by
   the ICMP port unreachable `reject` sends, or a drop).

Every command is an argument list; the namespaces are named nftl-<pid>-<role> and deleted at the
end (and, if a run was killed, by the next run: only those whose pid no longer exists). Tests
wait for conditions (a trace line, a ready line), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from netsim.endpoints import tcp_syn, tcp_synack
from tests import labkit
from tests.nft_topology import (HOSTS, NODE_ADDRS, ModelNode, batches, model_events, model_pass, model_ruleset,
                                node_netfilter)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft", "conntrack")),
    reason="needs root, iproute2, nftables and conntrack to build namespaces and load rulesets")

NAMESPACES = labkit.Namespaces("nftl")
PREFIX = NAMESPACES.prefix
run, in_ns, reclaim_stale = labkit.run, NAMESPACES.in_ns, NAMESPACES.reclaim_stale
ROLES = ("node", "pod-a", "pod-b", "remote", "ext")
TRACE_TABLE = ("add table ip nsltrace\n"
               "add chain ip nsltrace pre { type filter hook prerouting priority -350 ; }\n"
               "add chain ip nsltrace out { type filter hook output priority -350 ; }\n"
               "add rule ip nsltrace pre meta l4proto tcp meta nftrace set 1\n"
               "add rule ip nsltrace out meta l4proto tcp meta nftrace set 1\n")


# ---- the kernel side: namespaces through argument lists ---------------------------------------------

def load(role: str, pairs: list[tuple[str, bool]]) -> None:
    for text, check in pairs:
        in_ns(role, "nft", *(["-c"] if check else []), "-f", "-", input=text)


def build() -> None:
    for role in ROLES:
        run("ip", "netns", "add", PREFIX + role)
        in_ns(role, "ip", "link", "set", "lo", "up")
    node = PREFIX + "node"
    in_ns("node", "ip", "link", "add", "cni0", "type", "bridge")
    in_ns("node", "ip", "addr", "add", "10.244.0.1/24", "dev", "cni0")
    in_ns("node", "ip", "link", "set", "cni0", "up")
    for pod, veth in (("pod-a", "vetha"), ("pod-b", "vethb")):
        in_ns("node", "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", PREFIX + pod)
        in_ns("node", "ip", "link", "set", veth, "master", "cni0", "up")
        in_ns(pod, "ip", "addr", "add", HOSTS[pod] + "/24", "dev", "eth0")
        in_ns(pod, "ip", "link", "set", "eth0", "up")
        in_ns(pod, "ip", "route", "add", "default", "via", "10.244.0.1")
    for dev, peer, mine, theirs in (("eth0", "remote", "192.168.50.11/24", "192.168.50.12/24"),
                                    ("eth1", "ext", "203.0.113.1/24", "203.0.113.10/24")):
        in_ns("node", "ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", PREFIX + peer)
        in_ns("node", "ip", "addr", "add", mine, "dev", dev)
        in_ns("node", "ip", "link", "set", dev, "up")
        in_ns(peer, "ip", "addr", "add", theirs, "dev", "eth0")
        in_ns(peer, "ip", "link", "set", "eth0", "up")
    in_ns("remote", "ip", "addr", "add", "10.244.1.2/32", "dev", "lo")
    in_ns("remote", "ip", "route", "add", "default", "via", "192.168.50.11")
    in_ns("ext", "ip", "route", "add", "default", "via", "203.0.113.1")
    in_ns("node", "ip", "route", "add", "10.244.1.0/24", "via", "192.168.50.12")
    in_ns("node", "ip", "route", "add", "default", "via", "192.168.50.12")
    for key in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
        in_ns("node", "sysctl", "-qw", key)
    assert node


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""

CLIENT = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[5]))
try:
    s.connect((sys.argv[3], int(sys.argv[4])))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""


class Monitor:
    """`nft -a monitor trace` (with rule handles) in the node's namespace, read line by line in a thread."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", PREFIX + "node", "nft", "-a", "monitor", "trace"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.probes = 0
        self.mode = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, pattern: str, start: int, timeout: float = 20.0) -> int:
        """The index of the first line from `start` on that contains `pattern`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for i in range(start, len(self.lines)):
                    if pattern in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no trace line with {pattern!r}; saw:\n" + "\n".join(self.lines[start:]))
                self.changed.wait(left)

    def sync(self) -> int:
        """Trace a probe (the external client to port 9 of the node, which answers RST) until its
        line shows: every event before it has been read. Returns the index after it."""
        start = len(self.lines)
        while True:
            self.probes += 1
            port = 45000 + self.probes
            client("ext", port, NODE_ADDRS["eth1"], 9, wait=True)
            try:
                return self.wait_for(f"tcp sport {port} tcp dport 9 ", start, timeout=2.0) + 1
            except AssertionError:
                if self.probes > 20:
                    raise

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def client(role: str, sport: int, dst: str, dport: int, wait: bool, timeout: float = 5.0) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", PREFIX + role, sys.executable, "-c", CLIENT, HOSTS.get(role, ""),
                             str(sport), dst, str(dport), str(timeout)], stdout=subprocess.PIPE, text=True)
    if wait:
        proc.wait()
    return proc


@pytest.fixture(scope="module")
def lab(request):
    """The node with kube-proxy's ruleset for `--nodeport-addresses` request.param (primary or
    all), flannel's, the tracing table, two listening endpoints and a running trace monitor."""
    reclaim_stale()
    servers: list[subprocess.Popen] = []
    monitor = None
    try:
        build()
        load("node", batches(request.param))
        in_ns("node", "nft", "-f", "-", input=TRACE_TABLE)
        for role in ("pod-a", "remote"):
            proc = subprocess.Popen(["ip", "netns", "exec", PREFIX + role, sys.executable, "-c", SERVER, HOSTS[role],
                                     "8080"], stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        monitor = Monitor()
        monitor.mode = request.param
        monitor.sync()
        yield monitor
    finally:
        if monitor is not None:
            monitor.close()
        for proc in servers:
            proc.terminate()
            proc.wait()
        for role in ROLES:
            run("ip", "netns", "del", PREFIX + role, check=False)


TRACE_RULE = re.compile(r"^trace id (\w+) ip (\S+) (\S+) rule .* # handle (\d+) \(verdict (.*)\)$")
TRACE_POLICY = re.compile(r"^trace id (\w+) ip (\S+) (\S+) policy (\w+)")
TRACE_PACKET = re.compile(r"^trace id (\w+) ip (\S+) (\S+) packet: (.*)$")


def kernel_events(lines: list[str], flags: str, tuples: list[tuple[str, int, str, int]]) -> list[tuple[str, str, int, str]]:
    """The trace events of one packet, in order: those of every trace id whose `packet:` line
    shows TCP flags `flags` and one of `tuples` (src, sport, dst, dport). The kernel gives the
    packet a new trace id when NAT rewrites it (the id hashes the skb's flow hash), so a packet
    is followed through the tuples it has before and after its NAT."""
    wanted = [(f"ip saddr {s} ip daddr {d} ", f"tcp sport {sp} tcp dport {dp} tcp flags == {flags} ")
              for s, sp, d, dp in tuples]
    ours: set[str] = set()
    out = []
    for line in lines:
        packet, rule, policy = TRACE_PACKET.match(line), TRACE_RULE.match(line), TRACE_POLICY.match(line)
        if packet:
            if any(a in packet.group(4) and b in packet.group(4) for a, b in wanted):
                ours.add(packet.group(1))
            else:
                ours.discard(packet.group(1))
        elif rule and rule.group(1) in ours and rule.group(2) != "nsltrace":
            out.append((rule.group(2), rule.group(3), int(rule.group(4)), rule.group(5)))
        elif policy and policy.group(1) in ours and policy.group(2) != "nsltrace":
            out.append((policy.group(2), policy.group(3), 0, f"policy {policy.group(4)}"))
    assert out, f"no trace events of a packet with flags {flags} and one of {tuples}:\n" + "\n".join(lines)
    return out


def kernel_conntrack(sport: int) -> tuple[dict[str, str], dict[str, str]] | None:
    """The node's conntrack entry of the flow from source port `sport`: (original, reply)."""
    out = in_ns("node", "conntrack", "-L", "-p", "tcp", "--sport", str(sport), check=False)
    for line in out.splitlines():
        pairs = re.findall(r"(src|dst|sport|dport)=(\S+)", line)
        if len(pairs) >= 8:
            return dict(pairs[:4]), dict(pairs[4:8])
    return None


# ---- the tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("nodeport_addresses", ["primary", "all"])
def test_nft_list_ruleset_equals_the_kernels(nodeport_addresses):
    reclaim_stale()
    ns = PREFIX + "list"
    run("ip", "netns", "add", ns)
    try:
        model = model_ruleset(nodeport_addresses)
        for text, check in batches(nodeport_addresses):
            run("ip", "netns", "exec", ns, "nft", *(["-c"] if check else []), "-f", "-", input=text)
        assert run("ip", "netns", "exec", ns, "nft", "list", "ruleset") == model.list_ruleset()
        assert run("ip", "netns", "exec", ns, "nft", "-a", "list", "ruleset") == model.list_ruleset(handles=True)
    finally:
        run("ip", "netns", "del", ns, check=False)


@dataclass(frozen=True)
class Scenario:
    name: str
    client: str
    dst: str
    dport: int
    verdict: str              # the model's verdict for the SYN: ACCEPT, DROP, REJECT
    seen: str                 # what the kernel's client sees: connected, refused, dropped
    endpoint: str | None = None   # where the SYN goes after NAT
    masquerade: str | None = None  # the source address the node masquerades to
    modes: tuple[str, ...] = ("primary", "all")   # the --nodeport-addresses the scenario runs with


SCENARIOS = [
    Scenario("clusterip-same-node", "pod-b", "10.96.0.101", 80, "ACCEPT", "connected", "10.244.0.2"),
    Scenario("clusterip-other-node", "pod-b", "10.96.0.100", 80, "ACCEPT", "connected", "10.244.1.2"),
    Scenario("nodeport", "ext", "192.168.50.11", 30080, "ACCEPT", "connected", "10.244.1.2", "192.168.50.11"),
    Scenario("nodeport-local-policy", "ext", "192.168.50.11", 30081, "ACCEPT", "connected", "10.244.0.2"),
    Scenario("nodeport-local-policy-no-local-endpoint", "ext", "192.168.50.11", 30082, "DROP", "dropped"),
    Scenario("clusterip-no-endpoints", "pod-b", "10.96.0.104", 80, "REJECT", "refused"),
    Scenario("nodeport-no-endpoints", "ext", "192.168.50.11", 30083, "REJECT", "refused"),
    Scenario("clusterip-unknown-port", "pod-b", "10.96.0.100", 81, "REJECT", "refused"),
    Scenario("unallocated-clusterip", "pod-b", "10.96.0.200", 80, "DROP", "dropped"),
    # a NodePort on another local address: only `--nodeport-addresses 0.0.0.0/0` (fib daddr type
    # local) serves it; with the default, primary, the SYN reaches the node's own stack (RST)
    Scenario("nodeport-other-address", "ext", "203.0.113.1", 30080, "ACCEPT", "refused", modes=("primary",)),
    Scenario("nodeport-other-address", "ext", "203.0.113.1", 30080, "ACCEPT", "connected", "10.244.1.2",
             "192.168.50.11", modes=("all",)),
]
CASES = [(mode, s) for mode in ("primary", "all") for s in SCENARIOS if mode in s.modes]
INDEV = {"pod-a": "cni0", "pod-b": "cni0", "ext": "eth1", "remote": "eth0"}


@pytest.mark.parametrize("lab, scenario", CASES, ids=[f"{m}-{s.name}" for m, s in CASES], indirect=["lab"])
def test_service_path_matches_the_kernel_rule_by_rule(lab, scenario):
    sport = 40000 + SCENARIOS.index(scenario)
    client_ip = HOSTS[scenario.client]
    # the model
    hooks = node_netfilter(model_ruleset(lab.mode))
    syn = tcp_syn(client_ip, scenario.dst, sport, scenario.dport, 1460, 64, 1)
    verdict, after, syn_decisions = model_pass(hooks, syn, INDEV[scenario.client])
    assert verdict == scenario.verdict
    # the kernel
    start = len(lab.lines)
    proc = client(scenario.client, sport, scenario.dst, scenario.dport, wait=scenario.seen != "dropped")
    if scenario.seen == "dropped":
        lab.wait_for("(verdict drop)", start)
        proc.kill()
        proc.wait()
        seen = "dropped"
    else:
        assert proc.stdout is not None
        seen = proc.stdout.read().strip()
    end = lab.sync()
    lines = lab.lines[start:end]
    assert seen == scenario.seen
    found = kernel_conntrack(sport)
    syn_tuples = [(client_ip, sport, scenario.dst, scenario.dport)]
    if found is not None:
        reply = found[1]
        syn_tuples.append((client_ip, sport, reply["src"], int(reply["sport"])))
    assert kernel_events(lines, "syn", syn_tuples) == model_events(syn_decisions), "\n".join(lines)
    if scenario.endpoint is None:
        assert after.dst == scenario.dst
        return
    # the NAT: the kernel's conntrack entry against netsim's
    assert found is not None
    original, reply = found
    entry = next(e for e in hooks.netns.conntrack.entries if e.original.sport == sport)
    assert (reply["src"], int(reply["sport"])) == (entry.reply.src, entry.reply.sport) == (scenario.endpoint, 8080)
    assert reply["dst"] == entry.reply.dst == (scenario.masquerade or client_ip)
    if scenario.masquerade is None:
        assert int(reply["dport"]) == entry.reply.dport == sport
    assert (after.dst, after.src) == (scenario.endpoint, scenario.masquerade or client_ip)
    # the endpoint's SYN-ACK through the node, rule by rule
    synack = tcp_synack(after, 1460, 64)
    server_dev = "eth0" if scenario.endpoint == HOSTS["remote"] else "cni0"
    reply_verdict, back, reply_decisions = model_pass(hooks, synack, server_dev)
    assert reply_verdict == "ACCEPT"
    assert (back.src, back.dst) == (scenario.dst, client_ip)
    reply_tuples = [(reply["src"], int(reply["sport"]), reply["dst"], int(reply["dport"])),
                    (reply["src"], int(reply["sport"]), client_ip, sport)]
    assert kernel_events(lines, "0x12", reply_tuples) == model_events(reply_decisions), "\n".join(lines)
