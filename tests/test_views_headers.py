"""Header tables, layer decomposition and per-hop diffs, checked on the book's scenarios."""

from __future__ import annotations

import pytest

import netsim
from netsim import endpoints as ep
from netsim import packet as P
from netsim.views import decompose, hexdump, hop_diff, hop_layers, layer_ranges, trace_diffs
from netsim.views.hexdump import byte_map
from netsim.views.headers import ICMP_ECHO, ICMP_OTHER, SPECS, previous_hop


@pytest.fixture(scope="module")
def s4():
    return netsim.scenarios.pod_to_pod_cross_node()


def _hop(trace, where, direction, role="request"):
    (hop,) = trace.where(where, direction, role)
    return hop


def test_every_byte_of_every_hop_belongs_to_exactly_one_layer():
    for number, scenario in netsim.scenarios.SIX.items():
        for hop in scenario():
            layers = hop_layers(hop)
            assert layers[0].start == 0 and layers[-1].end == len(hop.data), (number, hop.index)
            for a, b in zip(layers, layers[1:]):
                assert a.end == b.start


def test_vxlan_frame_layers_and_byte_ranges(s4):
    hop = _hop(s4, "node1/eth0", "tx")
    assert layer_ranges(hop_layers(hop)) == [
        ("outer-ethernet", 0, 14), ("outer-ipv4", 14, 34), ("outer-udp", 34, 42), ("outer-vxlan", 42, 50),
        ("ethernet", 50, 64), ("ipv4", 64, 84), ("tcp", 84, 84 + hop.inner_ip.payload.length()),
    ]


def test_field_values_come_from_the_wire_bytes(s4):
    hop = _hop(s4, "node1/eth0", "tx")
    layers = {l.id: l for l in hop_layers(hop)}
    assert layers["outer-udp"].value("dport") == "8472"
    assert layers["outer-vxlan"].value("vni") == "1"
    assert layers["outer-vxlan"].value("flags") == "0x08"
    assert layers["outer-ipv4"].value("df") == "not set"
    assert layers["outer-ipv4"].value("ttl") == "64"
    assert layers["ipv4"].value("ttl") == "63"
    assert layers["ipv4"].value("df") == "set"
    ttl = layers["ipv4"].field("ttl")
    assert (ttl.start, ttl.end) == (64 + 8, 64 + 9)
    assert hop.data[ttl.start] == 63


def test_routing_out_of_cni0_rewrites_macs_and_ttl_only(s4):
    hop = _hop(s4, "node1/flannel.1", "tx")
    d = hop_diff(s4, hop.index)
    assert d.previous == _hop(s4, "node1/cni0", "rx").index
    assert set(d.changed) == {"ethernet.dst", "ethernet.src", "ipv4.ttl", "ipv4.checksum"}
    assert d.added == () and d.removed == ()


def test_encapsulation_adds_outer_layers_and_leaves_the_packet_alone(s4):
    hop = _hop(s4, "node1/eth0", "tx")
    d = hop_diff(s4, hop.index)
    assert d.previous == _hop(s4, "node1/flannel.1", "tx").index
    assert d.added == ("outer-ethernet", "outer-ipv4", "outer-udp", "outer-vxlan")
    assert d.changed == ()


def test_decapsulation_removes_outer_layers(s4):
    d = hop_diff(s4, _hop(s4, "node2/flannel.1", "rx").index)
    assert d.removed == ("outer-ethernet", "outer-ipv4", "outer-udp", "outer-vxlan")
    assert d.changed == ()


def test_bridged_hops_change_nothing():
    trace = netsim.scenarios.pod_to_pod_same_node()
    diffs = [d for d in trace_diffs(trace) if trace[d.index].role == "request" and d.previous is not None]
    assert diffs and all(d.changed == () and d.added == () for d in diffs)


def test_nodeport_dnat_and_snat_are_marked_where_they_happen():
    trace = netsim.scenarios.external_to_nodeport()
    hop = _hop(trace, "node1/flannel.1", "tx")
    d = hop_diff(trace, hop.index)
    assert {"ipv4.src", "ipv4.dst", "tcp.sport", "tcp.dport", "ipv4.ttl"} <= set(d.changed)
    layers = {l.id: l for l in hop_layers(hop)}
    assert layers["ipv4"].value("src") == "10.244.0.0"
    assert layers["tcp"].value("dport") == "8080"


def test_masquerade_to_the_outside_rewrites_source_and_port():
    trace = netsim.scenarios.pod_to_external()
    d = hop_diff(trace, _hop(trace, "node1/eth0", "tx").index)
    assert {"ipv4.src", "tcp.sport", "ethernet.src", "ethernet.dst", "ipv4.ttl"} <= set(d.changed)
    assert "ipv4.dst" not in d.changed


def test_arp_request_fields():
    trace = netsim.scenarios.pod_to_pod_same_node()
    layers = hop_layers(trace.arp[0])
    assert [l.id for l in layers] == ["ethernet", "arp"]
    assert layers[1].value("op") == "1 (request)"
    assert layers[1].value("tha") == "00:00:00:00:00:00"
    assert layers[0].value("dst") == "ff:ff:ff:ff:ff:ff"


def test_udp_backend_tun_hop_is_raw_ip_and_the_udp_leg_carries_it():
    trace = netsim.scenarios.pod_to_pod_cross_node(backend="udp")
    tun = _hop(trace, "node1/flannel0", "tx")
    assert [l.id for l in hop_layers(tun)][:2] == ["ipv4", "tcp"]
    wire = _hop(trace, "node1/eth0", "tx")
    ids = [l.id for l in hop_layers(wire)]
    assert ids[:3] == ["outer-ethernet", "outer-ipv4", "outer-udp"] and ids[3:5] == ["ipv4", "tcp"]
    d = hop_diff(trace, wire.index)
    assert d.added == ("outer-ethernet", "outer-ipv4", "outer-udp")


def test_previous_hop_follows_one_packet_only(s4):
    reply = s4.reply[0]
    assert previous_hop(s4, reply.index) is None
    assert previous_hop(s4, s4.reply[1].index) is reply


def test_every_field_has_a_meaning_and_fits_its_header():
    for spec in SPECS.values():
        for f in spec.fields:
            assert f.meaning.strip() and f.title.strip()
            if isinstance(spec.length, int) and f.size > 0:
                assert f.offset + f.size <= spec.length, (spec.kind, f.name)


def test_the_views_tables_are_the_cores_tables():
    for spec, table in [(SPECS["ethernet"], P.ETHERNET_HEADER), (SPECS["arp"], P.ARP_HEADER),
                        (SPECS["ipv4"], P.IPV4_HEADER), (SPECS["tcp"], P.TCP_HEADER), (SPECS["udp"], P.UDP_HEADER),
                        (SPECS["vxlan"], P.VXLAN_HEADER), (ICMP_ECHO, P.ICMP_ECHO_HEADER), (ICMP_OTHER, P.ICMP_HEADER)]:
        assert [(f.name, f.title, f.offset, f.size, f.bits, f.meaning) for f in spec.fields] == [
            (s.name, s.field.title, s.offset, s.size, s.bits, s.field.meaning) for s in table.slots]


def test_every_way_a_table_shows_a_field_is_a_view_format():
    from netsim.views.headers import FORMATS
    assert {f.show for table in P.HEADERS.values() for f in table.fields} | {f.show for f in P.ICMP_ECHO_HEADER.fields} \
        <= set(FORMATS)


def test_the_syns_tcp_options_are_decoded_as_tcpdump_names_them(s4):
    hop = _hop(s4, "node1/eth0", "tx")
    options = {l.id: l for l in hop_layers(hop)}["tcp"].field("options")
    tsval = ep.parse_tsval(hop.inner_ip.payload.options)
    assert options.value == f"mss 1410, sackOK, TS val {tsval} ecr 0, nop, wscale 10"   # flannel.1 MTU 1450 - 40
    assert (options.start, options.end) == (84 + 20, 84 + 40)
    # the SYN-ACK echoes the SYN's clock
    synack = next(h for h in s4.reply if h.encapsulated)
    value = {l.id: l for l in hop_layers(synack)}["tcp"].value("options")
    assert value.startswith("mss 1410, sackOK, TS val ") and value.endswith(f" ecr {tsval}, nop, wscale 10")


def test_flag_bits_are_tied_to_the_byte_that_holds_them(s4):
    hop = _hop(s4, "node1/eth0", "tx")
    ip = {l.id: l for l in hop_layers(hop)}["ipv4"]
    assert [(ip.field(n).start - 64, ip.field(n).end - 64, ip.field(n).bits) for n in ("df", "mf", "frag")] == [
        (6, 7, (6, 1)), (6, 7, (5, 1)), (6, 8, (0, 13))]
    layers = hop_layers(hop)
    cells = byte_map(layers, len(hop.data))
    flat = [f.name for layer in layers for f in layer.fields]
    assert [flat[cells[64 + b][1]] for b in (0, 6, 7, 8)] == ["ihl", "frag", "frag", "ttl"]


def test_hexdump_text_has_offsets_and_a_legend(s4):
    hop = _hop(s4, "node1/eth0", "tx")
    text = hexdump(hop.data, hop_layers(hop))
    assert text.splitlines()[0].startswith("0000  " + " ".join(f"{b:02x}" for b in hop.data[:16]))
    assert "  002a-0031  VXLAN" in text


def test_decompose_stops_cleanly_on_truncated_bytes(s4):
    data = _hop(s4, "node1/eth0", "tx").data[:40]
    layers = decompose(data)
    assert layers[-1].end == 40
