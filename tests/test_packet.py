"""netsim.packet: headers serialise to the bytes the kernel puts on the wire; scapy is the
reference builder and dissector."""

import struct

import pytest
from scapy.layers.inet import ICMP as SICMP, IP as SIP, TCP as STCP, UDP as SUDP
from scapy.layers.l2 import ARP as SARP, Ether as SEther
from scapy.layers.vxlan import VXLAN as SVXLAN

from netsim import endpoints as ep
from netsim.packet import (
    ARP, ARP_REQUEST, ETH_P_ARP, ETH_P_IP, ICMP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP, VXLAN,
    Ethernet, IPv4, innermost_ip, internet_checksum, parse_ethernet, tcp_flags_text, tcp_flags_value, vxlan_of,
)
from tests.checks import bad_checksums, scapy_rebuild_matches

MAC_A = "12:fb:49:29:79:0d"
MAC_B = "62:72:96:21:98:9b"


def frame(ip: IPv4) -> Ethernet:
    return Ethernet(MAC_B, MAC_A, ETH_P_IP, ip)


def test_echo_request_bytes_equal_scapy_build_of_the_same_fields():
    ip = ep.echo_request("10.244.0.2", "10.244.0.3", 0x4E53, 1, 64, 0xC670)
    ours = frame(ip).to_bytes()
    ref = bytes(SEther(dst=MAC_B, src=MAC_A) / SIP(src="10.244.0.2", dst="10.244.0.3", ttl=64, id=0xC670,
                                                   flags="DF") / SICMP(type=8, id=0x4E53, seq=1) / ep.PING_DATA)
    assert ours == ref
    assert len(ours) == 14 + 84


def test_ipv4_header_fields_exact():
    ip = IPv4("10.244.0.2", "10.244.1.2", IPPROTO_UDP, UDP(54059, 9090, b"REQ"), ttl=63, id=0x4F4D, df=True,
              tos=0x02)
    raw = ip.to_bytes()
    assert raw[0] == 0x45
    assert raw[1] == 0x02
    assert struct.unpack("!H", raw[2:4])[0] == 20 + 8 + 3
    assert struct.unpack("!H", raw[4:6])[0] == 0x4F4D
    assert struct.unpack("!H", raw[6:8])[0] == 0x4000
    assert raw[8] == 63 and raw[9] == 17
    assert raw[12:16] == bytes([10, 244, 0, 2]) and raw[16:20] == bytes([10, 244, 1, 2])
    assert internet_checksum(raw[:20]) == 0


def test_fragment_header_carries_mf_and_offset_in_8_byte_units():
    ip = IPv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, b"x" * 16, id=7, df=False, mf=True, frag=47)
    raw = ip.to_bytes()
    assert struct.unpack("!H", raw[6:8])[0] == 0x2000 | 47
    assert SIP(raw).frag == 47 and SIP(raw).flags.MF


def test_tcp_syn_checksum_verified_by_scapy():
    syn = ep.tcp_syn("10.244.0.2", "10.244.1.2", 57928, 8080, 1410, 64, 0x4F4D)
    raw = frame(syn).to_bytes()
    parsed = SEther(raw)
    assert parsed[STCP].flags == "S"
    assert parsed[STCP].options[0] == ("MSS", 1410)
    assert [o[0] for o in parsed[STCP].options] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
    assert parsed[STCP].window == 64860   # 46 * 1410: the largest multiple of the MSS under 65536
    assert scapy_rebuild_matches(raw)
    assert bad_checksums(raw) == []


def test_udp_checksum_verified_by_scapy():
    raw = frame(ep.udp_datagram("10.244.0.2", "203.0.113.10", 58081, 9090, b"REQ", 64, 0x46A7)).to_bytes()
    assert SEther(raw)[SUDP].len == 11
    assert scapy_rebuild_matches(raw)


def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff():
    # RFC 768: a computed checksum of 0 is transmitted as all ones (0 means "no checksum").
    base = UDP(1000, 2000, b"\0\0").encode("10.0.0.1", "10.0.0.2")
    csum = struct.unpack("!H", base[6:8])[0]
    # the checksum is ~sum; putting that word into the payload makes the sum 0xFFFF, so the
    # computed checksum becomes 0
    word = csum
    datagram = UDP(1000, 2000, struct.pack("!H", word)).encode("10.0.0.1", "10.0.0.2")
    assert struct.unpack("!H", datagram[6:8])[0] == 0xFFFF


def test_noudpcsum_sends_a_zero_checksum():
    datagram = UDP(1000, 2000, b"abc", checksum=False).encode("10.0.0.1", "10.0.0.2")
    assert datagram[6:8] == b"\0\0"


def test_arp_request_bytes_equal_scapy_build():
    arp = ARP(ARP_REQUEST, MAC_A, "10.244.0.2", "00:00:00:00:00:00", "10.244.0.1")
    ours = Ethernet("ff:ff:ff:ff:ff:ff", MAC_A, ETH_P_ARP, arp).to_bytes()
    ref = bytes(SEther(dst="ff:ff:ff:ff:ff:ff", src=MAC_A)
                / SARP(op=1, hwsrc=MAC_A, psrc="10.244.0.2", hwdst="00:00:00:00:00:00", pdst="10.244.0.1"))
    assert ours == ref
    assert len(ours) == 42     # no padding: captures on veths show 42-byte ARP frames


def test_vxlan_header_is_flags_08_and_24_bit_vni():
    inner = frame(ep.echo_request("10.244.0.2", "10.244.1.2", 1, 1, 63, 5))
    vx = VXLAN(1, inner)
    raw = vx.to_bytes()
    assert raw[:8] == bytes([0x08, 0, 0, 0, 0, 0, 1, 0])
    assert raw[8:] == inner.to_bytes()
    assert VXLAN(0xABCDEF, inner).to_bytes()[4:8] == bytes([0xAB, 0xCD, 0xEF, 0])


def test_vxlan_frame_dissects_in_scapy_and_every_checksum_verifies():
    inner = frame(ep.tcp_syn("10.244.0.2", "10.244.1.2", 57928, 8080, 1410, 63, 0x4F4D))
    outer = Ethernet(MAC_B, MAC_A, ETH_P_IP,
                     IPv4("192.168.50.11", "192.168.50.12", IPPROTO_UDP, UDP(53611, 8472, VXLAN(1, inner)),
                          ttl=64, id=0x6EED, df=False))
    raw = outer.to_bytes()
    parsed = SEther(raw)
    assert parsed[SIP].flags == 0 and parsed[SIP].ttl == 64
    assert SVXLAN(bytes(parsed[SUDP].payload)).vni == 1
    assert scapy_rebuild_matches(raw)
    assert bad_checksums(raw) == []
    assert innermost_ip(outer) == inner.ip
    assert vxlan_of(outer).vni == 1


@pytest.mark.parametrize("ip", [
    ep.echo_request("10.0.0.1", "10.0.0.2", 0x4E53, 1, 64, 9),
    ep.tcp_syn("10.0.0.1", "10.0.0.2", 40000, 80, 1460, 64, 3),
    ep.udp_datagram("10.0.0.1", "10.0.0.2", 40000, 53, b"REQ", 64, 4),
])
def test_parse_is_the_inverse_of_serialisation(ip):
    original = frame(ip)
    assert parse_ethernet(original.to_bytes()) == original


def test_parse_understands_vxlan_on_8472():
    inner = frame(ep.echo_request("10.244.0.2", "10.244.1.2", 1, 1, 63, 5))
    outer = frame(IPv4("192.168.50.11", "192.168.50.12", IPPROTO_UDP, UDP(40000, 8472, VXLAN(1, inner)), df=False))
    assert parse_ethernet(outer.to_bytes()) == outer


def test_icmp_frag_needed_carries_the_next_hop_mtu_in_the_low_16_bits():
    offender = ep.udp_datagram("10.0.0.1", "10.1.0.2", 40000, 9, b"x" * 1200, 64, 1)
    err = ep.frag_needed(offender, "10.0.0.2", 1000, 64, 77)
    raw = err.to_bytes()
    assert raw[20:24] == bytes([3, 4]) + raw[22:24]
    assert raw[24:28] == b"\x00\x00\x03\xe8"
    assert err.df is False and err.tos == 0xC0
    assert len(raw) == 576      # icmp_send quotes as much as fits in 576 bytes
    assert raw[28:] == offender.to_bytes()[:548]
    assert SIP(raw)[SICMP].nexthopmtu == 1000


def test_tcp_flags_letters_round_trip_and_unknown_letter_is_an_error():
    assert tcp_flags_value("SA") == 0x12
    assert tcp_flags_text(0x14) == "RA"
    with pytest.raises(ValueError, match="unknown TCP flag 'X'"):
        tcp_flags_value("X")


def test_echo_reply_has_df_clear_and_the_request_id_and_data():
    req = ep.echo_request("10.0.0.1", "10.0.0.2", 0x4E53, 1, 64, 9)
    rep = ep.echo_reply(req, 64, 10)
    assert (rep.df, rep.payload.type, rep.payload.rest, rep.payload.data) == (False, 0, req.payload.rest, ep.PING_DATA)


def test_synack_has_ip_id_0_and_df_and_acknowledges_the_syn():
    syn = ep.tcp_syn("10.0.0.1", "10.0.0.2", 40000, 80, 1460, 64, 3)
    synack = ep.tcp_synack(syn, 1460, 64)
    assert (synack.id, synack.df, synack.payload.flags) == (0, True, "SA")
    assert synack.payload.ack == (syn.payload.seq + 1) & 0xFFFFFFFF


def test_rst_for_a_syn_is_rst_ack_acknowledging_it():
    syn = ep.tcp_syn("10.0.0.1", "10.0.0.2", 40000, 80, 1460, 64, 3)
    rst = ep.tcp_rst(syn, 64)
    assert (rst.payload.flags, rst.payload.seq, rst.payload.ack) == ("RA", 0, (syn.payload.seq + 1) & 0xFFFFFFFF)
    assert (rst.payload.sport, rst.payload.dport, rst.payload.window) == (80, 40000, 0)


# the header tables ---------------------------------------------------------------------------

from dataclasses import fields as dataclass_fields  # noqa: E402

from netsim import packet as P  # noqa: E402
from netsim.lab.compare import FIELD_RULES, exact_fields  # noqa: E402

RECORDS = {P.ETHERNET_HEADER: Ethernet, P.ARP_HEADER: ARP, P.IPV4_HEADER: IPv4, P.ICMP_HEADER: ICMP,
           P.ICMP_ECHO_HEADER: ICMP, P.TCP_HEADER: TCP, P.UDP_HEADER: UDP, P.VXLAN_HEADER: VXLAN}
TABLES = list(RECORDS)


def test_each_table_compiles_to_the_kernels_struct_sizes():
    # struct ethhdr 14, arphdr + IPv4 addresses 28, iphdr 20, icmphdr 8, tcphdr 20, udphdr 8, vxlanhdr 8
    assert [(t.kind, t.size) for t in TABLES] == [
        ("ethernet", 14), ("arp", 28), ("ipv4", 20), ("icmp", 8), ("icmp", 8), ("tcp", 20), ("udp", 8), ("vxlan", 8)]
    assert P.IPV4_HEADER.struct.format == "!BBHHHBBH4s4s"
    assert P.TCP_HEADER.struct.format == "!HHIIHHHH"
    assert P.VXLAN_HEADER.struct.format == "!II"


def test_bit_fields_sit_in_the_bytes_that_hold_their_bits():
    slots = {s.name: (s.offset, s.size, s.bits) for s in P.IPV4_HEADER.slots}
    assert slots["version"] == (0, 1, (4, 4)) and slots["ihl"] == (0, 1, (0, 4))
    assert slots["df"] == (6, 1, (6, 1)) and slots["mf"] == (6, 1, (5, 1)) and slots["frag"] == (6, 2, (0, 13))
    assert slots["options"] == (20, -1, None)
    tcp = {s.name: (s.offset, s.size, s.bits) for s in P.TCP_HEADER.slots}
    assert tcp["data_offset"] == (12, 1, (4, 4)) and tcp["flags"] == (12, 2, (0, 9))
    vx = {s.name: (s.offset, s.size) for s in P.VXLAN_HEADER.slots}
    assert vx == {"flags": (0, 1), "reserved1": (1, 3), "vni": (4, 3), "reserved2": (7, 1)}


def test_the_generated_packer_puts_each_bit_slice_in_place():
    raw = P.IPV4_HEADER.pack(tos=0x02, total_length=1500, id=0xBEEF, df=False, mf=True, frag=0x1ABC, ttl=7,
                             proto=17, src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]))
    assert raw.hex() == "450205dcbeef" + "3abc" + "0711" + "0000" + "0a000001" + "0a000002"
    assert P.TCP_HEADER.pack(sport=1, dport=2, data_offset=10, flags=0x1FF)[12:14] == bytes([0xA1, 0xFF])
    assert P.VXLAN_HEADER.pack(vni=0x123456) == bytes([0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0])
    # defaults come from the table: version 4, IHL 5, DF set, TTL 64
    assert P.IPV4_HEADER.pack()[:9] == bytes([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64])


def test_unpack_reads_back_every_field_and_the_options_tail():
    syn = frame(ep.tcp_syn("10.0.0.1", "10.0.0.2", 40000, 80, 1460, 64, 3)).to_bytes()
    ip = P.IPV4_HEADER.unpack(syn[14:])
    assert (ip["version"], ip["ihl"], ip["df"], ip["mf"], ip["frag"], ip["ttl"], ip["proto"]) == (4, 5, 1, 0, 0, 64, 6)
    assert ip["total_length"] == len(syn) - 14 and ip["options"] == b""
    tcp = P.TCP_HEADER.unpack(syn[34:])
    assert (tcp["sport"], tcp["dport"], tcp["data_offset"], tcp["flags"]) == (40000, 80, 10, 0x02)
    assert len(tcp["options"]) == 20 and P.TCP_HEADER.length(syn[34:]) == 40


def test_every_field_has_a_title_a_meaning_and_a_record_attribute():
    for table, record in RECORDS.items():
        attributes = {f.name for f in dataclass_fields(record)} | {"id", "seq"}
        for f in table.fields:
            assert f.title.strip() and f.meaning.strip(), (table.kind, f.name)
            assert f.attribute == "" or f.attribute in attributes, (table.kind, f.name, f.attribute)


def test_every_field_of_every_table_has_a_comparison_rule_in_the_lab():
    for table in TABLES:
        assert set(FIELD_RULES[table]) == {f.name for f in table.fields}, table.kind
        assert set(FIELD_RULES[table].values()) <= {"exact", "rule", "ignored", "checksum", "implied", "options"}
    assert exact_fields(P.IPV4_HEADER) == ("tos", "total_length", "df", "mf", "frag", "ttl", "proto", "src", "dst")


def test_tcp_options_of_a_linux_syn_decode_in_the_kernels_order():
    syn = ep.tcp_syn("10.0.0.1", "10.0.0.2", 40000, 80, 1410, 64, 3).payload
    opts = syn.option_list
    assert [o.name for o in opts] == ["mss", "sackOK", "TS", "nop", "wscale"]
    assert [(o.offset, o.length) for o in opts] == [(0, 4), (4, 2), (6, 10), (16, 1), (17, 3)]
    assert opts[0].values == (1410,) and opts[4].values == (ep.WSCALE,)
    tsval = ep.parse_tsval(syn.options)
    assert opts[2].values == (tsval, 0) and str(opts[2]) == f"TS val {tsval} ecr 0"
    assert [str(o) for o in opts[:2]] + [str(o) for o in opts[3:]] == ["mss 1410", "sackOK", "nop", "wscale 10"]
    rebuilt = (P.tcp_option_bytes(P.TCPOPT_MSS, 1410) + P.tcp_option_bytes(P.TCPOPT_SACK_PERM)
               + P.tcp_option_bytes(P.TCPOPT_TIMESTAMP, tsval, 0) + P.tcp_option_bytes(P.TCPOPT_NOP)
               + P.tcp_option_bytes(P.TCPOPT_WINDOW, ep.WSCALE))
    assert rebuilt == syn.options


def test_tcp_options_that_do_not_parse_are_kept_without_values():
    # an MSS with a wrong length, then an unknown kind 30 of 4 bytes, then EOL and padding
    raw = bytes([2, 3, 5]) + bytes([30, 4, 0xAA, 0xBB]) + bytes([0, 0, 0])
    opts = P.tcp_options(raw)
    assert [(o.kind, o.offset, o.length, o.values) for o in opts] == [(2, 0, 3, ()), (30, 3, 4, ()), (0, 7, 1, ())]
    assert str(opts[1]) == "option 30 (4 bytes)"
    # a length that runs past the end stops the walk there
    assert [(o.kind, o.length) for o in P.tcp_options(bytes([1, 8, 10, 0, 0]))] == [(1, 1), (8, 4)]
    # SACK carries left and right edges of the blocks received (RFC 2018)
    (sack,) = P.tcp_options(bytes([5, 18]) + struct.pack("!IIII", 1000, 2000, 3000, 4000))
    assert sack.values == (1000, 2000, 3000, 4000) and str(sack) == "sack 1000:2000 3000:4000"


from hypothesis import given, settings, strategies as st  # noqa: E402


def _values(table: P.Header) -> st.SearchStrategy[dict]:
    """Any value each fixed field can hold: its bit width, or its struct item's size."""
    out = {}
    for s in table.slots:
        f = s.field
        if s.size < 0:
            continue
        if f.fmt.endswith("s"):
            out[f.name] = st.binary(min_size=s.size, max_size=s.size)
        else:
            width = f.bits[1] if f.bits else 8 * s.size
            out[f.name] = st.integers(0, (1 << width) - 1)
    return st.fixed_dictionaries(out)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.sampled_from(TABLES).flatmap(lambda t: st.tuples(st.just(t), _values(t))))
def test_unpack_reads_back_whatever_the_generated_packer_wrote(case):
    table, values = case
    raw = table.pack(**values)
    assert len(raw) == table.size
    fixed = {k: v for k, v in table.unpack(raw + bytes(64)).items() if k in values}
    assert fixed == values
    for s in table.slots:                    # and every slot reads the same number from the bytes
        if s.size > 0 and not s.field.fmt.endswith("s"):
            assert s.read(raw) == values[s.name], (table.kind, s.name)
