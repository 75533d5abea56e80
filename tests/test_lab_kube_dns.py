"""kube-dns's three ports on one ClusterIP (10.96.0.10: dns/UDP 53, dns-tcp/TCP 53,
metrics/TCP 9153) on the kernel, in both kube-proxy modes: from pod-b, on coredns's node, and
from pod-c, on the other node, every frame and every rule evaluation compared with netsim's;
the nodes' rulesets equal netsim's. Needs root on Linux, like tests/test_lab.py; skipped with
the reason otherwise."""

from __future__ import annotations

import pytest

import netsim
from netsim.lab import compare
from netsim.lab.exchanges import KUBE_DNS_CLIENTS, KUBE_DNS_PORTS, kube_dns_payload
from tests import labkit

GATE = labkit.gate(__file__)
needs_lab = GATE.needs_lab

PORTS = KUBE_DNS_PORTS          # netsim.lab.exchanges, where tools/chapter_traces.py lists them too


lab = labkit.module_lab(GATE, lambda mode: netsim.reference_cluster(proxy_mode=mode), per_proxy_mode=True,
                        trace_rules=True)


@needs_lab
@pytest.mark.parametrize("client", KUBE_DNS_CLIENTS)
@pytest.mark.parametrize("proto, port", PORTS, ids=[f"{p}-{n}" for p, n in PORTS])
def test_each_port_of_the_cluster_ip_matches_the_kernel(lab, client, proto, port):
    payload = kube_dns_payload(proto, port)
    model = lab.cluster.send(client, "10.96.0.10", proto=proto, dport=port, payload=payload)
    observed = lab.exchange(client, "10.96.0.10", proto, port, payload=payload)
    result = compare(model, observed, cluster=lab.cluster, title=f"{client} -> kube-dns {proto}/{port}")
    assert result.ok, "\n" + str(result)
    assert observed.outcome == ("udp reply from 10.96.0.10:53" if proto == "udp" else
                                f"connected to 10.96.0.10:{port} (SYN-ACK)")
    assert result.compared["netfilter nat"] > 0 and result.compared["rule evaluations"] > 0


@needs_lab
@pytest.mark.parametrize("host", ["node1", "node2"])
def test_the_rulesets_are_netsims(lab, host):
    """iptables-save without the raw table, where the lab's tracer puts its TRACE rules."""
    labkit.assert_rulesets_are_netsims(lab, host)
