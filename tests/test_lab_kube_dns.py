"""kube-dns's three ports on one ClusterIP (10.96.0.10: dns/UDP 53, dns-tcp/TCP 53,
metrics/TCP 9153) on the kernel, in both kube-proxy modes: from pod-b, on coredns's node, and
from pod-c, on the other node, every frame and every rule evaluation compared with netsim's;
the nodes' rulesets equal netsim's. Needs root on Linux, like tests/test_lab.py; skipped with
the reason otherwise."""

from __future__ import annotations

import warnings

import pytest

import netsim
from netsim.lab import Lab, compare, unavailable_reason
from netsim.lab import state
from netsim.lab.exchanges import KUBE_DNS_CLIENTS, KUBE_DNS_PORTS

REASON = unavailable_reason()
if REASON:
    warnings.warn(f"tests/test_lab_kube_dns.py: the real-kernel lab is skipped: {REASON}")
needs_lab = pytest.mark.skipif(REASON is not None, reason=f"real-kernel lab unavailable: {REASON}")

from netsim.lab.exchanges import kube_dns_payload  # noqa: E402

PORTS = KUBE_DNS_PORTS          # netsim.lab.exchanges, where tools/chapter_traces.py lists them too


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request):
    if REASON:
        pytest.skip(REASON)
    with Lab(netsim.reference_cluster(proxy_mode=request.param), trace_rules=True) as built:
        yield built


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
    if lab.cluster.proxy_mode == "nftables":
        assert state.differences(lab, lab.cluster, host, "nft -a list ruleset") == []
        return
    kernel = [t.strip() for t in "\n".join(state.kernel_view(lab, host, "iptables-save")).split("COMMIT")]
    model = [t.strip() for t in "\n".join(state.model_view(lab.cluster, host, "iptables-save")).split("COMMIT")]
    assert [t for t in kernel if not t.startswith("*raw")] == model
