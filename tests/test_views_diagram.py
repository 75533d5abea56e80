"""The topology diagram: a fixed layout, the trace's path, what the current hop highlights."""

from __future__ import annotations

import subprocess
import sys

import pytest

import netsim
from netsim.views import diagram, diagram_model, render_svg
from netsim.views.diagram import dom_ids


@pytest.fixture(scope="module")
def c4():
    cluster = netsim.reference_cluster()
    return cluster, netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)


def test_pods_sit_inside_their_node_box(c4):
    cluster, _ = c4
    m = diagram_model(cluster)
    for pod in cluster.pods.values():
        p, n = m.element(pod.name), m.element(pod.node)
        assert p.parent == pod.node
        assert n.x - n.w / 2 < p.x - p.w / 2 and p.x + p.w / 2 < n.x + n.w / 2
        assert n.y - n.h / 2 < p.y - p.h / 2 and p.y + p.h / 2 < n.y + n.h / 2


def test_every_device_of_every_namespace_is_drawn(c4):
    cluster, _ = c4
    ids = {e.id for e in diagram_model(cluster).elements}
    for ns_name, ns in cluster.network.namespaces.items():
        assert ns_name in ids
        for dev in ns.devices:
            assert f"{ns_name}/{dev}" in ids


def test_the_graph_has_the_cables_and_bridge_ports(c4):
    cluster, _ = c4
    g = diagram_model(cluster).graph
    veth = cluster.pods["pod-a"].host_veth
    assert g.edges["pod-a/eth0", f"node1/{veth}"]["kind"] == "cable"
    assert g.edges[f"node1/{veth}", "node1/cni0"]["kind"] == "port"
    assert g.edges["node1/eth0", "underlay/p-node1"]["kind"] == "cable"
    assert g.edges["underlay/p-node1", "underlay/sw0"]["kind"] == "port"
    assert g.edges["gateway/eth1", "ext/eth0"]["kind"] == "cable"


def test_layout_is_fixed():
    a = diagram_model(netsim.reference_cluster())
    b = diagram_model(netsim.reference_cluster())
    assert [(e.id, e.x, e.y) for e in a.elements] == [(e.id, e.x, e.y) for e in b.elements]


def test_current_hop_highlights_its_device_host_and_the_move_into_it(c4):
    cluster, trace = c4
    (hop,) = trace.where("node1/flannel.1", "tx", "request")
    (before,) = trace.where("node1/cni0", "rx", "request")
    m = diagram_model(cluster, trace, hop.index)
    assert m.current == "node1/flannel.1"
    assert m.highlighted == {"node1/flannel.1", "node1", f"seg:{before.index}->{hop.index}"}


def test_path_lists_the_devices_of_request_and_reply_in_order(c4):
    cluster, trace = c4
    m = diagram_model(cluster, trace)
    assert m.path[:5] == ("pod-a/eth0", f"node1/{cluster.pods['pod-a'].host_veth}", "node1/cni0",
                          "node1/flannel.1", "node1/eth0")
    assert m.path[-1] == "pod-c/eth0"
    assert all(s.a != s.b for s in m.segments)


def test_svg_carries_dom_ids_and_no_date(c4):
    cluster, trace = c4
    m = diagram_model(cluster, trace)
    svg = render_svg(m, "pfx")
    for dom in dom_ids(m, "pfx").values():
        assert f'id="{dom}"' in svg
    assert "<dc:date>" not in svg and "<metadata>" not in svg
    assert svg.startswith("<svg")


def test_diagram_mime_bundle_highlights_the_current_device(c4):
    cluster, trace = c4
    bundle = diagram(cluster, trace, 13)._repr_mimebundle_()
    assert bundle["text/plain"].startswith(f"current hop at {trace[13].where}")
    assert "!important" in bundle["image/svg+xml"]


def test_svg_is_byte_identical_across_processes_and_hash_seeds():
    code = ("import hashlib, netsim; from netsim.views import diagram;"
            "c = netsim.reference_cluster(); t = netsim.scenarios.SIX[5](cluster=c);"
            "print(hashlib.sha256(diagram(c, t, 20).svg().encode()).hexdigest())")
    outs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, check=True).stdout for seed in ("0", "1", "12345")}
    assert len(outs) == 1


def _lum(c: str) -> float:
    def ch(v):
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * ch(int(c[1:3], 16)) + 0.7152 * ch(int(c[3:5], 16)) + 0.0722 * ch(int(c[5:7], 16))


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_lum(a), _lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_labels_contrast_with_their_boxes_in_light_and_dark():
    from netsim.views.diagram import COLOURS, DARK, DETAIL
    for kind, (fill, _edge, ink) in COLOURS.items():
        for f, i in ((fill, ink), (DARK[fill], DARK[ink])):
            assert _contrast(f, i) >= 4.5, (kind, f, i)
        if kind not in ("node", "pod", "gateway", "external", "underlay", "host"):
            assert _contrast(fill, DETAIL) >= 4.5 and _contrast(DARK[fill], DARK[DETAIL]) >= 4.5, kind


def test_labels_are_at_least_11_px_at_book_width_and_fit_their_boxes(c4):
    import re
    from netsim.views.diagram import _text_width, min_width_px
    cluster, trace = c4
    m = diagram_model(cluster, trace, 13)
    svg = render_svg(m, "p")
    vbw = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
    sizes = [float(x) for x in re.findall(r"font-size: ([\d.]+)px", svg)]
    assert sizes and min(sizes) > 0
    # the stepper never draws it narrower than min_width_px; the book's column is 700-800 px
    for width in (min_width_px(m), 700, 800):
        assert min(sizes) * max(width, min_width_px(m)) / vbw >= 11.0
    assert min_width_px(m) <= 610          # at 1200 px the book column leaves about 606 px for it
    for e in m.elements:
        if "/" in e.id:
            assert max(_text_width(e.label), _text_width(e.detail)) <= e.w - 0.05, e.id
        else:
            assert _text_width(e.label, bold=True) + 0.1 <= e.w, e.id


def test_svg_has_title_desc_marker_and_reveals_the_path_as_walked(c4):
    cluster, trace = c4
    at = next(h.index for h in trace.hops if (h.where, h.role) == ("node1/flannel.1", "request"))    # hop 15
    svg = diagram(cluster, trace, at).svg()
    assert 'role="img" aria-labelledby="netsim-diagram-title netsim-diagram-desc"' in svg
    assert '<title id="netsim-diagram-title">Cluster diagram: node1, node2 and their pods</title>' in svg
    assert "pod-a (pod, 10.244.0.2; devices lo, eth0)" in svg
    m = diagram_model(cluster, trace, at)
    ids = dom_ids(m, "netsim-diagram")
    later = [ids[f"seg:{s.frm}->{s.to}"] for s in m.segments if s.to > at]
    walked = [ids[f"seg:{s.frm}->{s.to}"] for s in m.segments if s.to <= at]
    assert later and walked
    hidden = svg[svg.rindex("<style>"):]
    assert all(f"#{d}," in hidden or f"#{d}{{visibility:hidden}}" in hidden for d in later)
    assert not any(f"#{d}," in hidden or f"#{d}{{" in hidden for d in walked)
    from netsim.views.diagram import marker_xy
    x, y = marker_xy(m, "node1/flannel.1")
    assert f'<g id="netsim-diagram-pkt" class="pkt" transform="translate({x} {y})">' in svg
    for kind in ("cable or port", "tunnel on eth0", "request", "reply", "this hop", "packet"):
        assert f">{kind}</text>" in svg


def test_graph_finds_an_edge_from_either_end_and_lists_each_once_in_insertion_order():
    from netsim.views.graph import Graph
    g = Graph()
    g.add_node("a", pos=(0.0, 1.0))
    g.add_edge("a", "b", kind="cable")
    g.add_edge("b", "c", kind="port")
    g.add_edge("b", "a", kind="lower")          # the same edge again: its attributes are updated
    assert g.edges["b", "a"] is g.edges["a", "b"]
    assert g.edges["a", "b"] == {"kind": "lower"}
    assert g.edges(data=True) == [("a", "b", {"kind": "lower"}), ("b", "c", {"kind": "port"})]
    assert list(g) == ["a", "b", "c"] and len(g.edges) == 2
    assert g.nodes["a"] == {"pos": (0.0, 1.0)} and g.nodes["c"] == {}
    assert ("c", "b") in g.edges and ("a", "c") not in g.edges and "d" not in g
    assert sorted(g.neighbors("b")) == ["a", "c"]
    with pytest.raises(ValueError, match="loop"):
        g.add_edge("a", "a")


@pytest.mark.tools
def test_the_width_table_is_what_the_dejavu_sans_fonts_give():
    """netsim/views/dejavu_sans.json, regenerated from Debian's fonts-dejavu-core, is unchanged."""
    out = subprocess.run([sys.executable, "tools/font_metrics.py", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_labels_are_measured_with_the_width_table_at_the_labels_font_size():
    from netsim.views.diagram import FONT, PT_PER_UNIT, _metrics, _text_width
    m = _metrics()
    assert m["family"] == "DejaVu Sans" and m["units_per_em"] == 2048
    em = FONT / PT_PER_UNIT                       # one em, in layout units
    # digits share one advance; bold is wider; a character the table lacks counts as an "M"
    assert _text_width("0123456789") == pytest.approx(10 * _text_width("0"))
    assert _text_width("node1", bold=True) > _text_width("node1")
    assert _text_width("\u4e00") == pytest.approx(m["normal"]["M"] / 2048 * em)
    assert _text_width("") == 0.0


def test_the_layout_is_drawn_again_only_when_the_cluster_changed_shape():
    cluster = netsim.reference_cluster()
    trace = cluster.send("pod-a", "pod-c", proto="tcp", dport=8080)
    first, second = diagram_model(cluster, trace, 0), diagram_model(cluster, trace, 5)
    assert second.graph is first.graph and second.elements == first.elements    # stepping: one layout
    assert first.current != second.current
    cluster.add_pod("pod-d", node="node2")
    grown = diagram_model(cluster)
    assert grown.graph is not first.graph
    assert {"pod-d", "pod-d/eth0", f"node2/{cluster.pods['pod-d'].host_veth}"} <= {e.id for e in grown.elements}
    cluster.bridge_link_set("node1", cluster.pods["pod-a"].host_veth, hairpin=True)   # not drawn: same layout
    assert diagram_model(cluster).graph is grown.graph
    fresh = netsim.reference_cluster()
    fresh.add_pod("pod-d", node="node2")
    assert diagram_model(fresh).elements == grown.elements     # the same shape draws the same picture
