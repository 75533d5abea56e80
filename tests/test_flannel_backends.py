"""Flannel's backends as data (netsim.flannel_backends): the three netsim models agree with its
traces and subnet.env; the others' layouts add up as their sources say."""

from __future__ import annotations

import pytest

import netsim
from netsim import flannel, views
from netsim.errors import UsageError
from netsim.flannel_backends import BACKENDS, BY_NAME, SHIPPED


def test_the_backends_flannel_v0_28_9_ships_are_listed_and_the_removed_ones_name_their_release():
    assert set(SHIPPED) == {"vxlan", "host-gw", "wireguard", "udp", "ipip", "ipsec", "alloc", "extension",
                            "tencent-vpc"}
    assert {b.name: b.removed for b in BACKENDS if b.removed} == {"aws-vpc": "v0.20.0", "gce": "v0.20.0",
                                                                  "ali-vpc": "v0.20.0"}
    assert {b.name for b in BACKENDS if b.modelled} == set(flannel.BACKENDS)


@pytest.mark.parametrize("backend", flannel.BACKENDS)
def test_a_modelled_backends_headers_add_what_netsims_trace_adds(backend):
    trace = netsim.reference_cluster(backend).send("pod-a", "pod-c", proto="tcp")
    wire = trace.where("node1/eth0", "tx", role="request")[0]
    pod = trace.where("pod-a/eth0", "tx", role="request")[0].ip.length()
    assert BY_NAME[backend].added_bytes() == (wire.ip.length() - pod,) * 2
    assert BY_NAME[backend].overhead == flannel.OVERHEAD[backend]


@pytest.mark.parametrize("backend", flannel.BACKENDS)
@pytest.mark.parametrize("mtu", [1500, 9000, 1400])
def test_flannel_mtu_is_what_netsim_writes_to_subnet_env(backend, mtu):
    env = netsim.Cluster(backend=backend, underlay_mtu=mtu).subnet_env("node1")
    assert f"FLANNEL_MTU={BY_NAME[backend].flannel_mtu(mtu)}\n" in env


def test_the_outer_headers_named_in_the_layouts_are_the_traces():
    for backend, port, df in (("vxlan", 8472, False), ("udp", 8285, True)):
        wire = netsim.reference_cluster(backend).send("pod-a", "pod-c").where("node1/eth0", "tx", role="request")[0]
        layout = {(h.name, f.name): f.value for h in BY_NAME[backend].headers for f in h.fields}
        assert layout[("outer UDP", "destination port")].startswith(str(port)) and wire.ip.payload.dport == port
        assert layout[("outer IPv4", "ID, flags, fragment offset")].startswith("DF set" if df else "DF clear")
        assert wire.ip.df is df


def test_what_the_unmodelled_backends_add_fits_what_flannel_subtracts():
    for b in BACKENDS:
        if b.overhead is not None:
            assert b.added_bytes()[1] <= b.overhead, b.name
    assert BY_NAME["ipip"].added_bytes() == (20, 20)
    assert BY_NAME["wireguard"].added_bytes() == (60, 75)       # IPv4 20 + UDP 8 + 16 + tag 16, padding 0-15
    assert BY_NAME["ipsec"].added_bytes() == (54, 57)           # IPv4 20 + ESP 8 + IV 8 + 2 + ICV 16, pad 0-3


def test_a_header_layout_counts_offsets_from_the_outer_ip_header():
    rows = views.header_layout("wireguard", 60).rows()
    inner = next(r for r in rows if r[2] == "the pod's IP packet")
    assert inner[:2] == ["44", "60"]
    assert rows[-1][:2] == ["104-119", "16"]                     # the tag, after 0-15 bytes of padding
    assert [r[0] for r in rows if r[2] == "outer Ethernet"] == ["", "", ""]
    vx = views.header_layout("vxlan").rows()
    assert next(r for r in vx if r[2] == "the pod's IP packet")[:2] == ["50", "n"]
    assert "(from flannel's source, not modelled)" in views.header_layout("ipip").caption
    assert "not modelled" not in views.header_layout("udp").caption
    with pytest.raises(UsageError, match="tencent-vpc"):
        views.header_layout("calico")


def test_the_overview_is_html_and_text_from_the_same_rows():
    table = views.backend_table(9000)
    rows = {r[0]: r for r in table.rows()}
    assert rows["vxlan"][6] == "8950" and rows["wireguard"][6] == "8920" and rows["aws-vpc"][6] == ""
    assert "<td>8950</td>" in table._repr_html_() and "8950" in table.text()
