"""A pod with a hostPort on the kernel: Debian's portmap plugin (containernetworking-plugins
1.1.1) writes its nat rules for the pod, as the CNI chain flannel's conflist names runs it, and
they are netsim's rules line for line (chain names included); then the hostPort exchanges run
in the lab with netfilter tracing, every frame and every rule evaluation compared with the
model's (tests/test_portmap.py pins the model's verdicts), in both kube-proxy modes. Needs root and the plugins; skipped
with the reason otherwise."""

from __future__ import annotations

import os

import pytest

from netsim.lab import compare
from netsim.lab.cni import compare_portmap, plugins_reason, portmap_lines, real_cni_node
from tests import labkit
from tests.test_portmap import CID, DN, NODE1, hostport_cluster

GATE = labkit.gate(__file__, plugins_reason, unavailable="real-kernel lab or CNI plugins unavailable")
needs_lab = GATE.needs_lab


@needs_lab
def test_the_real_portmap_plugin_writes_netsims_rules():
    cluster = hostport_cluster()
    real = real_cni_node(cluster, "node1", f"nsl-{os.getpid()}-7-")
    assert compare_portmap(cluster, "node1", real) == []
    lines = portmap_lines(real.nat)
    assert f":{DN} -" in lines and real.route_localnet == "1"
    assert f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"cbr0\\" id: \\"{CID}\\"" ' \
           f'-m multiport --dports 8080 -j {DN}' in lines
    assert f"-A {DN} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.0.5:80" in lines
    # the comparison sees a difference: a model rule the plugin did not write
    cluster.netns("node1").netfilter.append("nat", DN, "-p udp --dport 9 -j RETURN")
    diffs = compare_portmap(cluster, "node1", real)
    assert diffs and f"model '-A {DN} -p udp -m udp --dport 9 -j RETURN'" in diffs[0]


# in both kube-proxy modes: with kube-proxy's nftables table beside portmap's iptables-nft
# rules, the mark portmap's SETMARK rule sets (0x2000) is the one kube-proxy's chains see
def two_hostport_pods(proxy_mode: str):
    """hostweb's TCP hostPort 8080, and hostdns publishing UDP 53 as 5353."""
    c = hostport_cluster(proxy_mode)
    c.add_pod("hostdns", "node1", listen=(("udp", 53),),
              host_ports=[{"container_port": 53, "host_port": 5353, "protocol": "udp"}])
    return c


lab = labkit.module_lab(GATE, two_hostport_pods, per_proxy_mode=True, trace_rules=True)


# (client, destination, what the client sees)
EXCHANGES = [
    ("ext", "node1", f"connected to {NODE1}:8080 (SYN-ACK)"),          # DNAT in PREROUTING
    ("pod-c", "node1", f"connected to {NODE1}:8080 (SYN-ACK)"),        # from node2, behind its masquerade
    ("pod-b", "node1", f"connected to {NODE1}:8080 (SYN-ACK)"),        # same node: marked, masqueraded
    ("node1", "127.0.0.1", "connected to 127.0.0.1:8080 (SYN-ACK)"),   # localhost: route_localnet, masqueraded
]


# the same four over UDP, to hostdns's port 53 published as 5353/udp
UDP_EXCHANGES = [(src, dst, f"udp reply from {dst if dst == '127.0.0.1' else NODE1}:5353")
                 for src, dst, _ in EXCHANGES]


@needs_lab
@pytest.mark.parametrize("proto, src, dst, seen", [("tcp", *e) for e in EXCHANGES] + [("udp", *e) for e in UDP_EXCHANGES],
                         ids=[f"tcp-{s}-{d}" for s, d, _ in EXCHANGES] + [f"udp-{s}-{d}" for s, d, _ in UDP_EXCHANGES])
def test_a_hostport_exchange_matches_the_kernel_rule_by_rule(lab, proto, src, dst, seen):
    port = 8080 if proto == "tcp" else 5353
    model = lab.cluster.send(src, dst, proto=proto, dport=port)
    observed = lab.exchange(src, dst, proto, port)
    result = compare(model, observed, cluster=lab.cluster, title=f"{src} -> {dst}:{port}/{proto} (hostPort)")
    assert result.ok, "\n" + str(result)
    assert observed.outcome == seen
    assert result.compared["rule evaluations"] > 0
    if src in ("pod-b", "node1"):        # marked for portmap's masquerade, and the mark compared
        assert result.compared["netfilter mark"] > 0
