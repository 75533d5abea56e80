"""The Linux bridge: learning, FDB forwarding, flooding, hairpin, frames for the host."""

from netsim.bridge import Bridge
from netsim.decision import FdbRef, OutcomeReason
from netsim.device import Veth
from netsim.packet import BROADCAST_MAC
from tests.topologies import bridged_pods


def test_bridge_does_not_touch_ttl():
    net = bridged_pods(2)
    net.netns("pod1").listen("tcp", 8080)
    trace = net.send("pod0", "10.244.0.3", "tcp", dport=8080)
    assert trace.path("request") == ["pod0/eth0 tx", "node/vethpod0 rx", "node/vethpod1 tx", "pod1/eth0 rx"]
    assert {h.ip.ttl for h in trace.request} == {64}
    assert {h.ip.ttl for h in trace.reply} == {64}
    # pure L2: the pods' own MACs end to end
    pod0_mac, pod1_mac = (net.netns(p).device("eth0").mac for p in ("pod0", "pod1"))
    assert {(h.frame.src, h.frame.dst) for h in trace.request} == {(pod0_mac, pod1_mac)}
    forward = trace.where("node/vethpod0", "rx", "request")[0].decisions[-1]
    assert (forward.subsystem, forward.function, forward.verdict, forward.consulted) == (
        "bridge", "br_forward", "forward", (FdbRef("cni0", pod1_mac, port="vethpod1"),))


def test_hairpin_reflects_broadcast_to_sender():
    net = bridged_pods(2, hairpin=True)
    trace = net.send("pod0", "10.244.0.3")
    request = [h for h in trace.arp if h.frame.dst == BROADCAST_MAC]
    assert [f"{h.where} {h.direction}" for h in request] == [
        "pod0/eth0 tx", "node/vethpod0 rx", "node/vethpod0 tx", "node/vethpod1 tx", "node/cni0 rx",
        "pod0/eth0 rx", "pod1/eth0 rx"]
    learned, flooded, hairpin = trace.where("node/vethpod0", "rx")[0].decisions
    assert (learned.function, learned.verdict, learned.consulted) == (
        "br_fdb_update", "learn", (FdbRef("cni0", request[0].frame.src, port="vethpod0"),))
    assert [(d.function, d.verdict) for d in (flooded, hairpin)] == [("br_flood", "flood"), ("br_flood", "hairpin")]
    assert trace.where("pod0/eth0", "rx")[0].verdict == "dropped"


def test_without_hairpin_the_broadcast_is_not_reflected():
    trace = bridged_pods(2, hairpin=False).send("pod0", "10.244.0.3")
    assert not [h for h in trace.arp if h.where == "pod0/eth0" and h.frame.dst == BROADCAST_MAC and h.direction == "rx"]


def test_bridge_learns_source_macs_on_their_ports():
    net = bridged_pods(2)
    net.send("pod0", "10.244.0.3")
    cni0 = net.netns("node").device("cni0")
    pod0_mac, pod1_mac = (net.netns(p).device("eth0").mac for p in ("pod0", "pod1"))
    assert (cni0.fdb[pod0_mac].port, cni0.fdb[pod1_mac].port) == ("vethpod0", "vethpod1")
    assert str(cni0.fdb[pod0_mac]) == f"{pod0_mac} dev vethpod0 master cni0"
    net.flush_caches()
    assert pod0_mac not in cni0.fdb
    assert cni0.fdb[net.netns("node").device("vethpod0").mac].local    # the port's own MAC stays


def test_unknown_unicast_is_flooded_to_every_port_but_the_ingress_one():
    net = bridged_pods(3, hairpin=False)
    net.send("pod0", "10.244.0.3")                    # everybody learned, pod0 has pod1 in its table
    net.netns("node").device("cni0").flush_learned()
    trace = net.send("pod0", "10.244.0.3", cold=False)
    assert trace.path("request") == ["pod0/eth0 tx", "node/vethpod0 rx", "node/vethpod1 tx", "node/vethpod2 tx",
                                     "pod1/eth0 rx", "pod2/eth0 rx"]
    pod1_mac = net.netns("pod1").device("eth0").mac
    flood = trace.where("node/vethpod0", "rx")[0].decisions[-1]
    assert (flood.function, flood.verdict, flood.consulted) == ("br_flood", "flood", (FdbRef("cni0", pod1_mac),))
    other = trace.where("pod2/eth0", "rx")[0]
    assert (other.verdict, other.reason.function, other.reason.verdict) == ("dropped", "eth_type_trans", "drop")


def test_frame_for_the_bridge_mac_goes_up_to_the_host_and_is_routed():
    net = bridged_pods(1)
    trace = net.send("pod0", "10.244.0.1")
    assert trace.path("request") == ["pod0/eth0 tx", "node/vethpod0 rx", "node/cni0 rx"]
    up = trace.where("node/vethpod0", "rx", "request")[0].decided("br_pass_frame_up")
    assert [(d.verdict, d.consulted[0].mac) for d in up] == [("up", net.netns("node").device("cni0").mac)]
    assert trace.path("reply") == ["node/cni0 tx", "node/vethpod0 tx", "pod0/eth0 rx"]


def test_bridge_without_explicit_mac_takes_the_lowest_port_mac():
    br = Bridge("br0")
    a, b = Veth("a", "6a:00:00:00:00:02"), Veth("b", "0e:00:00:00:00:09")
    br.attach(a)
    assert br.mac == "6a:00:00:00:00:02"
    br.attach(b)
    assert br.mac == "0e:00:00:00:00:09"
    br.detach("b")
    assert br.mac == "6a:00:00:00:00:02"
    fixed = Bridge("cni0", "02:42:0a:f4:00:01")
    fixed.attach(Veth("c", "00:00:00:00:00:01"))
    assert fixed.mac == "02:42:0a:f4:00:01"


def test_service_endpoint_on_the_clients_own_bridge_is_resolved_by_cni0_and_connects():
    """br_netfilter's DNAT to a pod behind another port of cni0 with no neighbour entry: cni0
    ARPs for it (from its own MAC and 10.244.0.1, flooded to every port), the SYN waits in the
    queue, then leaves cni0 with cni0's source MAC (neigh_resolve_output's header, what a capture
    on cni0 shows) and is bridged to pod-b's port with pod-a's own source MAC put back
    (br_nf_pre_routing_finish_bridge_slow). The kernel does the same (tests/test_lab_services.py,
    tests/test_lab_capture_points.py)."""
    import netsim
    cluster = netsim.reference_cluster()
    cluster.add_service("svc", port=80, target_port=8080, pods=["pod-b"])
    trace = cluster.send("pod-a", "svc", proto="tcp")
    assert (trace.outcome.kind, trace.outcome.reason, trace.outcome.peer) == (
        "connected", OutcomeReason.CONNECTED, "10.96.0.101:80")
    cni0_mac, pod_a_mac, pod_b_mac = "da:0d:8a:c2:5c:31", "82:e5:dd:73:ad:88", "ee:b7:a0:3c:d2:42"
    arrived = trace.where("node1/veth9bb860b4", "rx", "request")[0]
    assert [(d.subsystem, d.function, d.verdict) for d in arrived.decisions][-3:] == [
        ("bridge", "br_nf_pre_routing_finish_bridge", "resolve"), ("neighbour", "__neigh_event_send", "queue"),
        ("neighbour", "neigh_update", "send")]
    (who_has,) = [h for h in trace.where("node1/cni0", "tx", "arp") if h.frame.dst == BROADCAST_MAC]
    assert (who_has.frame.src, who_has.frame.dst) == (cni0_mac, BROADCAST_MAC)
    arp = who_has.frame.payload
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, cni0_mac, "10.244.0.1", "10.244.0.3")
    assert {h.device for h in trace.of_role("arp") if h.frame.payload.pdst == "10.244.0.3"
            and h.direction == "tx" and h.netns == "node1"} == {"cni0", "veth9bb860b4", "veth274a81a3",
                                                                 "veth8a32e516"}     # coredns's port too
    syn = [(h.netns, h.device, h.direction, h.frame.src, h.frame.dst, h.ip.dst, h.ip.ttl)
           for h in trace.request if h.ip.payload.flags == "S"]
    assert syn == [
        ("pod-a", "eth0", "tx", pod_a_mac, cni0_mac, "10.96.0.101", 64),
        ("node1", "veth9bb860b4", "rx", pod_a_mac, cni0_mac, "10.96.0.101", 64),
        ("node1", "cni0", "tx", cni0_mac, pod_b_mac, "10.244.0.3", 64),        # bridged: TTL kept
        ("node1", "veth274a81a3", "tx", pod_a_mac, pod_b_mac, "10.244.0.3", 64),
        ("pod-b", "eth0", "rx", pod_a_mac, pod_b_mac, "10.244.0.3", 64)]
    assert "br_nf_pre_routing_finish_bridge_slow" in [d.function for d in trace.request[2].decisions]
