"""Side-by-side comparison and the six-scenario summary."""

from __future__ import annotations

import netsim
from netsim.views import compare, path_facts, summary_table


def test_summary_of_the_six_scenarios():
    rows = {r[0]: r for r in summary_table().rows()}
    assert rows["1"][3] == "64 -> 64" and rows["1"][4] == "none"
    assert rows["2"][3] == "64 -> 64"
    assert rows["4"][3] == "64 -> 62" and rows["4"][4] == "VXLAN (UDP 8472)"
    assert rows["5"][3] == "64 -> 61"
    assert rows["5"][6] == "192.168.50.11:30080 -> 10.244.1.2:8080"
    assert rows["5"][5].startswith("203.0.113.10:") and " -> 10.244.0.0:" in rows["5"][5]
    assert rows["6"][5].startswith("10.244.0.2:") and " -> 192.168.50.11:" in rows["6"][5]
    assert rows["6"][6] == "none" and rows["6"][4] == "none"


def test_summary_has_text_and_html_faces():
    bundle = summary_table()._repr_mimebundle_()
    assert bundle["text/plain"].splitlines()[0].startswith("#  scenario")
    assert bundle["text/html"].count("<tr>") == 7


def test_vxlan_and_host_gw_side_by_side():
    a = netsim.scenarios.pod_to_pod_cross_node()
    b = netsim.scenarios.pod_to_pod_cross_node(backend="host-gw")
    cmp = compare(a, b, ("vxlan", "host-gw"))
    rows = {r[0]: r[1:] for r in cmp.rows()}
    assert rows["encapsulation"] == ["VXLAN (UDP 8472)", "none"]
    assert rows["TTL first -> last"] == ["64 -> 62", "64 -> 62"]
    assert "node1/flannel.1 tx" in rows["request path"][0] and "flannel.1" not in rows["request path"][1]
    assert 'class="diff"' in cmp.html()


def test_icmp_masquerade_reports_the_echo_id_as_the_port():
    facts = path_facts(netsim.scenarios.pod_to_external(proto="icmp"))
    assert facts.snat.startswith("10.244.0.2:") and facts.dnat == "none"
