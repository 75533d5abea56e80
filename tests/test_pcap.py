"""pcapng export: block structure, and Debian's tshark dissecting every scenario cleanly."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

import netsim
from netsim.pcap import EPOCH_US, LINKTYPE_ETHERNET, LINKTYPE_RAW, pcapng_bytes

TSHARK = shutil.which("tshark")
CHECKS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
          "-d", "udp.port==8472,vxlan", "-d", "udp.port==8285,ip"]


def _blocks(data: bytes):
    pos = 0
    while pos < len(data):
        btype, length = struct.unpack_from("<II", data, pos)
        yield btype, data[pos + 8:pos + length - 4]
        pos += length


def _if_name(body: bytes) -> str:
    pos = 8
    while pos < len(body):
        code, length = struct.unpack_from("<HH", body, pos)
        if code == 2:
            return body[pos + 4:pos + 4 + length].decode()
        pos += 4 + length + (-length % 4)
    raise AssertionError("no if_name")


def test_one_interface_per_capture_point_and_one_packet_per_hop():
    trace = netsim.scenarios.pod_to_pod_cross_node(backend="udp")
    blocks = list(_blocks(pcapng_bytes(trace)))
    assert blocks[0][0] == 0x0A0D0D0A
    idbs = [b for t, b in blocks if t == 1]
    names = [_if_name(b) for b in idbs]
    assert names == list(dict.fromkeys(h.where for h in trace.hops))
    linktypes = dict(zip(names, (struct.unpack_from("<H", b)[0] for b in idbs)))
    assert linktypes["node1/flannel0"] == LINKTYPE_RAW and linktypes["node1/eth0"] == LINKTYPE_ETHERNET
    epbs = [b for t, b in blocks if t == 6]
    assert len(epbs) == len(trace)
    for hop, body in zip(trace.hops, epbs):
        iface, hi, lo, caplen, _ = struct.unpack_from("<IIIII", body)
        assert names[iface] == hop.where
        assert (hi << 32 | lo) == EPOCH_US + hop.index
        assert body[20:20 + caplen] == hop.data


def test_pcap_is_byte_identical_between_runs(tmp_path):
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    netsim.scenarios.external_to_nodeport().to_pcap(a)
    netsim.scenarios.external_to_nodeport().to_pcap(b)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.tools
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make system-packages)")
@pytest.mark.parametrize("backend", ["vxlan", "host-gw", "udp"])
@pytest.mark.parametrize("number", sorted(netsim.scenarios.SIX))
def test_tshark_dissects_every_scenario_without_warnings(tmp_path, number, backend):
    for proto in ("tcp", "icmp", "udp"):
        trace = netsim.scenarios.SIX[number](backend=backend, proto=proto)
        path = tmp_path / f"s{number}-{proto}.pcapng"
        trace.to_pcap(path)
        expert = subprocess.run([TSHARK, "-r", str(path), "-q", *CHECKS, "-z", "expert,warn"],
                                capture_output=True, text=True, check=True)
        assert expert.stdout.strip() == "", expert.stdout
        fields = subprocess.run([TSHARK, "-r", str(path), *CHECKS, "-T", "fields", "-e", "frame.interface_name",
                                 "-e", "frame.protocols", "-e", "ip.checksum.status", "-e", "tcp.checksum.status",
                                 "-e", "udp.checksum.status", "-e", "_ws.malformed"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
        assert len(fields) == len(trace)
        for hop, line in zip(trace.hops, fields):
            name, protocols, ipck, tcpck, udpck, malformed = (line.split("\t") + [""] * 6)[:6]
            assert name == hop.where and malformed == ""
            for status in filter(None, ",".join([ipck, tcpck, udpck]).split(",")):
                assert status == "1", (hop.index, line)          # 1: good
            if hop.encapsulated and hop.link_type == "ether" and "8472" in hop.frame.summary():
                assert "vxlan" in protocols
