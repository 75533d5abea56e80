"""The NetworkPolicy table on the real kernel: node2's kube-network-policies table as netsim runs
it (tests/npol_topology.py), loaded with `nft -f` into a real namespace.

Namespaces (named npl-<pid>-<role>, built with `ip netns` through argument lists): node1 holds
pod-a's and pod-b's addresses (10.244.0.2, 10.244.0.3 on its lo, as the lab's remote pods do),
node2 a bridge cni0 (10.244.1.1/24) with pod-c (10.244.1.3) behind a veth; node1 and node2 are
joined by eth0 (192.168.50.11/12) and route each other's pod subnet, so node2 forwards and its
POSTROUTING hook sees the SYN, as under Flannel's host-gw. Checked:
1. `nft -a list ruleset` in node2 equals netsim's listing with handles, byte for byte;
2. one SYN from pod-b (sent once, raw) is dropped: the drop rule's counter (handle 11) reads
   1 packet and pod-c's listener accepts nothing, as netsim's decisions say (DROP at handle 11);
3. pod-a's connect succeeds: the allow rule's counter (handle 10) reads exactly 1 packet, the
   SYN, since every later packet of the connection matches `ct state established,related accept`
   first, as in netsim (the SYN-ACK decided by handle 5).
Tests wait for conditions (a counter, a line from a process), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from netsim.endpoints import tcp_syn
from tests import labkit
from tests.npol_topology import engine, forward, model_ruleset, node2_netfilter, rule_hits

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft")),
    reason="needs root, iproute2 and nftables to build namespaces and load the ruleset")

NAMESPACES = labkit.Namespaces("npl")
PREFIX = NAMESPACES.prefix
run, in_ns, reclaim_stale = labkit.run, NAMESPACES.in_ns, NAMESPACES.reclaim_stale
ROLES = ("node1", "node2", "pod-c")


def build() -> None:
    for role in ROLES:
        run("ip", "netns", "add", PREFIX + role)
        in_ns(role, "ip", "link", "set", "lo", "up")
    in_ns("node2", "ip", "link", "add", "cni0", "type", "bridge")
    in_ns("node2", "ip", "addr", "add", "10.244.1.1/24", "dev", "cni0")
    in_ns("node2", "ip", "link", "set", "cni0", "up")
    in_ns("node2", "ip", "link", "add", "vethc", "type", "veth", "peer", "name", "eth0", "netns", PREFIX + "pod-c")
    in_ns("node2", "ip", "link", "set", "vethc", "master", "cni0", "up")
    in_ns("pod-c", "ip", "addr", "add", "10.244.1.3/24", "dev", "eth0")
    in_ns("pod-c", "ip", "link", "set", "eth0", "up")
    in_ns("pod-c", "ip", "route", "add", "default", "via", "10.244.1.1")
    in_ns("node2", "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", PREFIX + "node1")
    for role, mine, route, via in (("node2", "192.168.50.12/24", "10.244.0.0/24", "192.168.50.11"),
                                   ("node1", "192.168.50.11/24", "10.244.1.0/24", "192.168.50.12")):
        in_ns(role, "ip", "addr", "add", mine, "dev", "eth0")
        in_ns(role, "ip", "link", "set", "eth0", "up")
        in_ns(role, "ip", "route", "add", route, "via", via)
    for pod_ip in ("10.244.0.2/32", "10.244.0.3/32"):
        in_ns("node1", "ip", "addr", "add", pod_ip, "dev", "lo")
    in_ns("node2", "sysctl", "-qw", "net.ipv4.ip_forward=1")


@pytest.fixture(scope="module")
def lab():
    reclaim_stale()
    try:
        build()
        in_ns("node2", "nft", "-f", "-", input=engine().ruleset("node2"))
        yield
    finally:
        for role in ROLES:
            run("ip", "netns", "del", PREFIX + role, check=False)


SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.244.1.3", 8080))
s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    print("accepted", peer[0], flush=True)
    c.close()
"""

CLIENT = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(5)
s.connect(("10.244.1.3", 8080))
print("connected", flush=True)
"""

ONE_SYN = """
import sys
from scapy.all import IP, TCP, send
send(IP(src=sys.argv[1], dst="10.244.1.3") / TCP(sport=40000, dport=8080, flags="S", seq=1), verbose=False)
"""


def counter(handle: int) -> int:
    """The packets counter of rule `handle` in chain nfqueue-100, as the kernel lists it."""
    listing = in_ns("node2", "nft", "-a", "list", "chain", "ip", "kube-network-policies", "nfqueue-100")
    line = next(x for x in listing.splitlines() if x.rstrip().endswith(f"# handle {handle}"))
    return int(re.search(r"counter packets (\d+)", line).group(1))


def wait_for(condition, what: str, limit_s: float = 10.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_kernel_lists_the_table_as_netsim_does(lab):
    kernel = in_ns("node2", "nft", "-a", "list", "ruleset")
    assert kernel == model_ruleset().list_ruleset(handles=True)


def test_the_kernel_drops_pod_bs_syn_and_accepts_pod_as_as_netsim_decides(lab):
    # netsim's decisions for the two SYNs (node2 forwards them from eth0 to cni0)
    dropped = forward(node2_netfilter(),
                      tcp_syn("10.244.0.3", "10.244.1.3", 40000, 8080, 1460, 63, 1), "eth0", "cni0")
    allowed = forward(node2_netfilter(),
                      tcp_syn("10.244.0.2", "10.244.1.3", 40001, 8080, 1460, 63, 1), "eth0", "cni0")
    assert (dropped[0], rule_hits(dropped[1])[-1]) == ("DROP", ("nfqueue-100", 11, "drop"))
    assert (allowed[0], rule_hits(allowed[1])[-1]) == ("ACCEPT", ("nfqueue-100", 10, "accept"))

    server = subprocess.Popen(["ip", "netns", "exec", PREFIX + "pod-c", sys.executable, "-c", SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        in_ns("node1", sys.executable, "-c", ONE_SYN, "10.244.0.3")
        assert wait_for(lambda: counter(11) == 1, "the drop rule to count pod-b's SYN")
        out = in_ns("node1", sys.executable, "-c", CLIENT, "10.244.0.2")
        assert out.strip() == "connected"
        assert server.stdout.readline().split() == ["accepted", "10.244.0.2"]     # pod-b's SYN never arrived
        assert (counter(10), counter(11)) == (1, 1)
    finally:
        server.kill()
        server.wait()
