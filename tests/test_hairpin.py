"""Per-port bridge settings (`bridge link set dev X hairpin on|off`, `bridge [-d] link`) and a
pod calling its own Service: with br_netfilter the DNAT back to the pod is bridged and must leave
by the port it came in on, which only hairpin mode allows (the bridge drops it otherwise), and kube-proxy's endpoint chain
masquerades it to cni0's address, since a pod would drop a packet from its own address; without
br_netfilter the packet is routed and hairpin does not matter. tests/test_lab_hairpin.py runs
the same on the kernel."""

from __future__ import annotations

import pytest

import netsim
from netsim import ConfigError
from netsim.decision import BridgeReason, FieldChange, Verdict
from netsim.views import outcome_text
from tests.hairpin_topology import ECHO_IP, POD_C_PORT, PORTS, hairpin_cluster


def test_bridge_link_prints_each_port_as_iproute2_does():
    c = netsim.reference_cluster()
    c.bridge_link_set("node2", POD_C_PORT, hairpin=False)
    flags = ("guard off root_block off fastleave off learning on flood on mcast_flood on bcast_flood on "
             "mcast_router 1 mcast_to_unicast off neigh_suppress off vlan_tunnel off isolated off locked off")
    assert c.show("node2", "bridge link") == (
        "5: veth4bd4e613@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 master cni0 state forwarding priority 32 "
        "cost 2")
    assert c.show("node2", "bridge -d link").splitlines() == [
        "5: veth4bd4e613@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 master cni0 state forwarding priority 32 "
        "cost 2", "    hairpin off " + flags]
    assert c.show("node1", "bridge -d link show dev veth8a32e516").splitlines()[1] == "    hairpin on " + flags
    assert [line.split(":")[0] for line in c.show("node1", "bridge link").splitlines()] == ["5", "6", "7"]
    assert "hairpin off" in c.show("node2", "ip -d link show veth4bd4e613")
    assert c.show("underlay", "bridge link show").count("master sw0") == 3


def test_the_cni_default_is_hairpin_on_for_every_pod_port():
    """flannel's CNI configuration (kube-flannel.yml's cni-conf.json) sets hairpinMode true."""
    c = netsim.reference_cluster()
    for node in ("node1", "node2"):
        details = c.show(node, "bridge -d link").splitlines()[1::2]
        assert details and all(line.startswith("    hairpin on ") for line in details)


@pytest.mark.parametrize("call, message", [
    (lambda c: c.bridge_link_set("node2", "cni0", hairpin=True), "not a bridge port in node2; its ports are "
                                                                  "veth4bd4e613"),
    (lambda c: c.bridge_link_set("node2", "nope", hairpin=True), "'nope': not a bridge port"),
    (lambda c: c.bridge_link_set("node2", POD_C_PORT, hairpin="on"), "hairpin must be True (on) or False (off)"),
    (lambda c: c.bridge_link_set("node2", POD_C_PORT), "give hairpin=, learning= or flood="),
    (lambda c: c.show("node2", "bridge link show dev nope"), "no bridge port 'nope' in node2"),
    (lambda c: c.show("node2", "bridge link set dev x"), "use 'bridge [-d] link [show [dev DEV]]'"),
])
def test_bad_bridge_link_calls(call, message):
    with pytest.raises(ConfigError) as err:
        call(netsim.reference_cluster())
    assert message in str(err.value)


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_with_br_netfilter_and_hairpin_the_pod_reaches_itself_masqueraded(proxy_mode, proto):
    c = hairpin_cluster(proxy_mode)
    trace = c.send("pod-c", ECHO_IP, proto=proto, dport=PORTS[proto])
    assert outcome_text(trace.outcome) == (f"connected to {ECHO_IP}:80 (SYN-ACK)" if proto == "tcp"
                                           else f"udp reply from {ECHO_IP}:90")
    path = [(h.where, h.direction) for h in trace.request]
    assert path == [("pod-c/eth0", "tx"), (f"node2/{POD_C_PORT}", "rx"), ("node2/cni0", "tx"),
                    (f"node2/{POD_C_PORT}", "tx"), ("pod-c/eth0", "rx")]
    port_rx, bridge_tx, pod_rx = trace.request[1], trace.request[2], trace.request[4]
    # DNAT to the pod on the bridge; node2's entry for 10.244.1.2 is the STALE one pod-c's ARP
    # request taught it, not NUD_CONNECTED, so the packet goes out through the neighbour layer on
    # cni0 and back into the bridge (br_nf_pre_routing_finish_bridge_slow) ...
    assert [d.function for d in port_rx.decisions][-2:] == ["br_nf_pre_routing_finish_bridge",
                                                            "neigh_resolve_output"]
    slow, fwd = bridge_tx.decisions[:2]
    assert (slow.function, slow.fact("port")) == ("br_nf_pre_routing_finish_bridge_slow", POD_C_PORT)
    # ... and out of the port it came in on: hairpin
    assert (fwd.function, fwd.reason, fwd.fact("port")) == ("br_forward", BridgeReason.FDB, POD_C_PORT)
    # DNAT to the pod, then the masquerade the endpoint chain's first rule asked for
    dnat, = [d for h in trace.request for d in h.decisions if d.verdict == Verdict.DNAT]
    masq, = [d for h in trace.request for d in h.decisions if d.verdict == Verdict.MASQUERADE]
    assert dnat.changes[0] == FieldChange("ipv4", "dst", ECHO_IP, "10.244.1.2")
    assert masq.changes[0] == FieldChange("ipv4", "src", "10.244.1.2", "10.244.1.1")
    # the mark came from the endpoint chain's rule for traffic from the endpoint itself
    (mark,) = [d.consulted[0] for d in port_rx.decisions if d.consulted and d.verdict == Verdict.CONTINUE
               and getattr(d.consulted[0], "chain", "") in ("KUBE-MARK-MASQ", "mark-for-masquerade")]
    if proxy_mode == "iptables":
        info = next(p for p in c.services["echo"].ports_info() if p.protocol == proto)
        assert mark.path[-2:] == (info.sep_chain("10.244.1.2"), "KUBE-MARK-MASQ")
        assert f'-A {info.sep_chain("10.244.1.2")} -s 10.244.1.2/32 -m comment --comment "{info.port_name}" ' \
               f'-j KUBE-MARK-MASQ' in c.show("node2", "iptables-save").splitlines()
    else:
        assert mark.path[-2].startswith("endpoint-") and mark.path[-2].endswith("__10.244.1.2/" + (
            "8080" if proto == "tcp" else "9090")) and mark.path[-1] == "mark-for-masquerade"
    assert (pod_rx.ip.src, pod_rx.ip.dst, pod_rx.frame.src, pod_rx.frame.dst) == (
        "10.244.1.1", "10.244.1.2", "86:81:8e:a6:45:a4", "86:81:8e:a6:45:a4")


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_with_br_netfilter_and_hairpin_off_the_bridge_drops_it(proxy_mode, proto):
    c = hairpin_cluster(proxy_mode, hairpin=False)
    trace = c.send("pod-c", ECHO_IP, proto=proto, dport=PORTS[proto])
    assert outcome_text(trace.outcome) == "no answer reached the sender"
    (dropped,) = [h for h in trace.request if h.reason is not None and h.reason.verdict == Verdict.DROP]
    assert (dropped.where, dropped.direction) == ("node2/cni0", "tx")       # back from the neighbour layer
    assert (dropped.reason.function, dropped.reason.reason, dropped.reason.fact("port")) == (
        "br_forward", BridgeReason.HAIRPIN_OFF, POD_C_PORT)
    assert (dropped.ip.src, dropped.ip.dst) == ("10.244.1.2", "10.244.1.2")  # DNATed: PREROUTING ran on the bridge


@pytest.mark.parametrize("proxy_mode", ["iptables", "nftables"])
@pytest.mark.parametrize("hairpin", [True, False])
def test_without_br_netfilter_the_packet_is_routed_and_hairpin_does_not_matter(proxy_mode, hairpin):
    c = hairpin_cluster(proxy_mode, br_netfilter=False, hairpin=hairpin)
    trace = c.send("pod-c", ECHO_IP, proto="tcp", dport=80)
    assert outcome_text(trace.outcome) == f"connected to {ECHO_IP}:80 (SYN-ACK)"
    path = [(h.where, h.direction) for h in trace.request]
    assert path == [("pod-c/eth0", "tx"), (f"node2/{POD_C_PORT}", "rx"), ("node2/cni0", "rx"), ("node2/cni0", "tx"),
                    (f"node2/{POD_C_PORT}", "tx"), ("pod-c/eth0", "rx")]
    last = trace.request[-1]
    assert (last.ip.src, last.ip.dst, last.ip.ttl) == ("10.244.1.1", "10.244.1.2", 63)      # routed: TTL - 1
