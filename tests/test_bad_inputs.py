"""Every input netsim refuses raises netsim's own error, whose message names the bad value.

One table for the API (names, ports, payloads, CIDRs, ClusterIPs and NodePorts, state views,
break_* methods, MTUs, the views' arguments) and one for the command line (exit code 2,
`netsim: error: ...` or argparse's usage message, never a traceback). Each row says what is
called, which error class must come out and which texts its message must contain: the
offending value (as the user wrote it) and, where it matters, the rule that refuses it.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from typing import Callable

import pytest

import netsim
from netsim.cli import main
from netsim.decision import OutcomeReason
from netsim.errors import ConfigError, InvalidNameError, NetsimError, UsageError
from netsim.views.diagram import diagram, diagram_model
from netsim.views.predict import best_challenge, challenge
from netsim.views.stepper import Stepper, header_view


@dataclass(frozen=True)
class Bad:
    id: str
    call: Callable[[netsim.Cluster], object]      # given a fresh reference cluster (eager or lazy): an OnFirstUse
    error: type[NetsimError]
    says: tuple[str, ...]                        # texts the message must contain


class OnFirstUse:
    """A fresh reference cluster, built when a row first reads one of its attributes: the rows
    that never touch it (a `Cluster(...)` of their own, the views on the shared trace) build
    none, and every row that does gets a cluster no other row has used."""

    def __init__(self, lazy: bool) -> None:
        self._lazy = lazy
        self._cluster: netsim.Cluster | None = None

    def __getattr__(self, name: str) -> object:
        if self._cluster is None:
            self._cluster = netsim.reference_cluster(lazy=self._lazy)
        return getattr(self._cluster, name)


@cache
def _trace() -> netsim.Trace:
    """pod-a -> pod-c over VXLAN (read only: the views do not change it)."""
    return netsim.reference_cluster().send("pod-a", "pod-c")


@cache
def _cluster() -> netsim.Cluster:
    return netsim.reference_cluster()


def twice(method: str, *args) -> Callable[[netsim.Cluster], object]:
    def call(c: netsim.Cluster) -> object:
        getattr(c, method)(*args)
        return getattr(c, method)(*args)
    return call


def cluster(**kw) -> Callable[[netsim.Cluster], object]:
    return lambda c: netsim.Cluster(**kw)


def send(*args, **kw) -> Callable[[netsim.Cluster], object]:
    return lambda c: c.send(*args, **kw)


def pod(*args, **kw) -> Callable[[netsim.Cluster], object]:
    return lambda c: c.add_pod(*args, **kw)


def svc(name="api", port=80, target_port=8080, **kw) -> Callable[[netsim.Cluster], object]:
    return lambda c: c.add_service(name, port, target_port, **kw)


N, C, U = InvalidNameError, ConfigError, UsageError
D1123, D1035 = "DNS-1123 label", "DNS-1035 label"

API = [
    # pod names: DNS-1123 labels, not addresses, unique across kinds
    Bad("pod-int", pod(123), N, ("123", "must be a string", D1123)),
    Bad("pod-none", pod(None), N, ("None", D1123)),
    Bad("pod-upper", pod("Pod-A"), N, ("'Pod-A'", D1123)),
    Bad("pod-underscore", pod("pod_a"), N, ("'pod_a'", D1123)),
    Bad("pod-leading-dash", pod("-pod"), N, ("'-pod'", D1123)),
    Bad("pod-trailing-dash", pod("pod-"), N, ("'pod-'", D1123)),
    Bad("pod-empty", pod(""), N, ("''", D1123)),
    Bad("pod-64-chars", pod("a" * 64), N, ("'" + "a" * 64 + "'", "64 characters", "at most 63")),
    Bad("pod-dot", pod("pod.a"), N, ("'pod.a'", D1123)),
    Bad("pod-newline", pod("a\nb"), N, ("'a\\nb'", D1123)),
    Bad("pod-space", pod("a b"), N, ("'a b'", D1123)),
    Bad("pod-semicolon", pod("a;reboot"), N, ("'a;reboot'", D1123)),
    Bad("pod-subshell", pod("$(id)"), N, ("'$(id)'", D1123)),
    Bad("pod-dotdot-slash", pod("../x"), N, ("'../x'", D1123)),
    Bad("pod-quote", pod("pod'x"), N, ("pod'x", D1123)),
    Bad("pod-unicode", pod("pöd"), N, ("'pöd'", D1123)),
    Bad("pod-decimal-address", pod("4"), N, ("'4'", "0.0.0.4", "inet_aton")),
    Bad("pod-hex-address", pod("0x7f"), N, ("'0x7f'", "0.0.0.127")),
    Bad("pod-dotted-address", pod("10.244.0.9"), N, ("'10.244.0.9'", D1123)),
    Bad("pod-taken-by-pod", pod("pod-a"), C, ("'pod-a'", "taken already by a pod")),
    Bad("pod-taken-by-node", pod("node1"), C, ("'node1'", "taken already by a node")),
    Bad("pod-taken-by-service", pod("web"), C, ("'web'", "taken already by a service")),
    Bad("pod-taken-by-external", pod("ext"), C, ("'ext'", "taken already by an external host")),
    Bad("pod-named-gateway", pod("gateway"), C, ("'gateway'", "taken already by the cluster's own host")),
    Bad("pod-named-underlay", pod("underlay"), C, ("'underlay'", "taken already")),
    # containers, node, listening sockets
    Bad("containers-str", pod("pod-x", containers="app"), C, ("'app'", "tuple of names")),
    Bad("containers-empty", pod("pod-x", containers=()), C, ("()", "non-empty")),
    Bad("container-upper", pod("pod-x", containers=("App",)), N, ("container name 'App'", D1123)),
    Bad("container-slash", pod("pod-x", containers=("a/b",)), N, ("'a/b'", D1123)),
    Bad("container-int", pod("pod-x", containers=(1,)), N, ("container name 1", "must be a string")),
    Bad("container-space", pod("pod-x", containers=("a b",)), N, ("container name 'a b'", D1123)),
    Bad("container-subshell", pod("pod-x", containers=("app", "$(id)")), N, ("container name '$(id)'", D1123)),
    Bad("containers-duplicate", pod("pod-x", containers=("app", "app")), C, ("('app', 'app')", "distinct")),
    Bad("pod-unknown-node", pod("pod-x", node="node9"), C, ("'node9'", "node1, node2")),
    Bad("pod-node-int", pod("pod-x", node=1), C, ("node 1", "node name")),
    Bad("listen-sctp", pod("pod-x", listen=(("sctp", 80),)), C, ("('sctp', 80)", "'tcp' or 'udp'")),
    Bad("listen-port-0", pod("pod-x", listen=(("tcp", 0),)), C, ("listen port 0", "1..65535")),
    Bad("listen-str", pod("pod-x", listen="tcp"), C, ("'tcp'", "(protocol, port) pairs")),
    # services: DNS-1035 names, ports, NodePorts, ClusterIPs, endpoints
    Bad("svc-leading-digit", svc("1web"), N, ("'1web'", D1035, "starting with a letter")),
    Bad("svc-upper", svc("Web"), N, ("'Web'", D1035)),
    Bad("svc-64-chars", svc("s" * 64), N, ("64 characters", D1035)),
    Bad("svc-int", svc(5), N, ("service name 5", "must be a string")),
    Bad("svc-newline", svc("web\n-A FORWARD"), N, ("'web\\n-A FORWARD'", D1035)),
    Bad("svc-space", svc("a b"), N, ("'a b'", D1035)),
    Bad("svc-semicolon", svc("a;b"), N, ("'a;b'", D1035)),
    Bad("svc-subshell", svc("$(id)"), N, ("'$(id)'", D1035)),
    Bad("svc-dotdot-slash", svc("../x"), N, ("'../x'", D1035)),
    Bad("svc-quote", svc('a"b'), N, ("'a\"b'", D1035)),
    Bad("svc-taken-by-service", svc("web"), C, ("'web'", "taken already by a service")),
    Bad("svc-taken-by-pod", svc("pod-a"), C, ("'pod-a'", "taken already by a pod")),
    Bad("svc-taken-by-node", svc("node1"), C, ("'node1'", "taken already by a node")),
    Bad("svc-port-0", svc(port=0), C, ("port 0", "1..65535")),
    Bad("svc-port-65536", svc(port=65536), C, ("port 65536", "1..65535")),
    Bad("svc-port-str", svc(port="80"), C, ("'80'", "must be an integer")),
    Bad("svc-port-bool", svc(port=True), C, ("True", "must be an integer")),
    Bad("svc-target-negative", svc(target_port=-1), C, ("targetPort -1", "1..65535")),
    Bad("svc-target-none", svc(target_port=None), C, ("targetPort None", "must be an integer")),
    Bad("nodeport-80", svc(node_port=80), C, ("nodePort 80", "30000-32767")),
    Bad("nodeport-29999", svc(node_port=29999), C, ("nodePort 29999", "30000-32767")),
    Bad("nodeport-32768", svc(node_port=32768), C, ("nodePort 32768", "30000-32767")),
    Bad("nodeport-taken", svc(node_port=30080), C, ("nodePort 30080", "already allocated", "web")),
    Bad("nodeport-str", svc(node_port="30081"), C, ("'30081'", "must be an integer")),
    Bad("clusterip-taken", svc(cluster_ip="10.96.0.100"), C, ("10.96.0.100", "already allocated", "web")),
    Bad("clusterip-outside", svc(cluster_ip="10.0.0.5"), C, ("10.0.0.5", "not in the valid range", "10.96.0.0/12")),
    Bad("clusterip-network", svc(cluster_ip="10.96.0.0"), C, ("10.96.0.0", "not in the valid range")),
    Bad("clusterip-broadcast", svc(cluster_ip="10.111.255.255"), C, ("10.111.255.255", "not in the valid range")),
    Bad("clusterip-bogus", svc(cluster_ip="bogus"), C, ("'bogus'", "not an IPv4 address")),
    Bad("clusterip-int", svc(cluster_ip=167772161), C, ("167772161", "must be an address string")),
    Bad("svc-protocol", svc(protocol="sctp"), C, ("'sctp'", "tcp or udp")),
    Bad("svc-policy", svc(external_traffic_policy="local"), C, ("'local'", "Cluster or Local")),
    Bad("svc-pods-str", svc(pods="pod-c"), C, ("'pod-c'", "list of pod names")),
    Bad("svc-pods-unknown", svc(pods=["pod-z"]), C, ("'pod-z'", "pod-a, pod-b, pod-c")),
    Bad("svc-pods-twice", svc(pods=["pod-c", "pod-c"]), C, ("['pod-c', 'pod-c']", "twice")),
    # external hosts
    Bad("ext-upper", lambda c: c.add_external("Ext2"), N, ("'Ext2'", D1123)),
    Bad("ext-newline", lambda c: c.add_external("e\nx"), N, ("'e\\nx'", D1123)),
    Bad("ext-dotdot-slash", lambda c: c.add_external("../e"), N, ("'../e'", D1123)),
    Bad("ext-gateway-address", lambda c: c.add_external("ext2", ip="203.0.113.1"), C,
        ("203.0.113.1", "gateway's own")),
    Bad("ext-outside", lambda c: c.add_external("ext2", ip="10.0.0.1"), C, ("10.0.0.1", "203.0.113.0/24")),
    Bad("ext-address-none", lambda c: c.add_external("ext2", ip=None), C, ("None", "must be a string")),
    Bad("ext-second", lambda c: c.add_external("ext2", ip="203.0.113.20"), C, ("already cabled to ext",)),
    Bad("ext-taken", lambda c: c.add_external("web", ip="203.0.113.20"), C, ("'web'", "taken already by a service")),
    # clusters: sizes, backends, CIDRs Linux or Kubernetes would refuse
    Bad("nodes-0", cluster(nodes=0), C, ("got 0", "positive integer")),
    Bad("nodes-bool", cluster(nodes=True), C, ("got True", "positive integer")),
    Bad("nodes-str", cluster(nodes="2"), C, ("got '2'", "positive integer")),
    Bad("nodes-too-many", cluster(nodes=300), C, ("300 nodes do not fit", "10.244.0.0/16")),
    Bad("backend-geneve", cluster(backend="geneve"), C, ("'geneve'", "vxlan")),
    Bad("backend-none", cluster(backend=None), C, ("None", "vxlan")),
    Bad("pod-cidr-multicast", cluster(pod_cidr="224.1.0.0/16"), C, ("224.1.0.0/16", "multicast")),
    Bad("pod-cidr-loopback", cluster(pod_cidr="127.0.0.0/16"), C, ("127.0.0.0/16", "loopback")),
    Bad("pod-cidr-link-local", cluster(pod_cidr="169.254.0.0/16"), C, ("169.254.0.0/16", "link-local")),
    Bad("pod-cidr-this-network", cluster(pod_cidr="0.0.0.0/8"), C, ("0.0.0.0/8", "this network")),
    Bad("underlay-broadcast", cluster(underlay_cidr="255.255.255.0/24"), C, ("255.255.255.0/24", "broadcast")),
    Bad("underlay-reserved", cluster(underlay_cidr="240.0.0.0/24"), C, ("240.0.0.0/24", "reserved")),
    Bad("pod-cidr-over-services", cluster(pod_cidr="10.96.0.0/16"), C,
        ("pod_cidr 10.96.0.0/16", "service CIDR 10.96.0.0/12")),
    Bad("underlay-in-pod-cidr", cluster(underlay_cidr="10.244.5.0/24"), C,
        ("10.244.0.0/16", "underlay_cidr 10.244.5.0/24")),
    Bad("underlay-over-services", cluster(underlay_cidr="10.100.0.0/24"), C,
        ("underlay_cidr 10.100.0.0/24", "service CIDR")),
    Bad("underlay-over-external", cluster(underlay_cidr="203.0.113.0/25"), C,
        ("203.0.113.0/25", "external network")),
    Bad("pod-cidr-host-bits", cluster(pod_cidr="10.244.0.1/16"), C, ("'10.244.0.1/16'", "host bits")),
    Bad("pod-cidr-int", cluster(pod_cidr=123), C, ("123", "must be a string")),
    Bad("pod-cidr-garbage", cluster(pod_cidr="10.244/x"), C, ("'10.244/x'", "not a valid IPv4 network")),
    Bad("subnet-len-8", cluster(subnet_len=8), C, ("subnet_len 8", "longer than pod_cidr's /16")),
    Bad("subnet-len-31", cluster(subnet_len=31), C, ("subnet_len 31", "at most 30")),
    Bad("subnet-len-bool", cluster(subnet_len=True), C, ("subnet_len True",)),
    Bad("underlay-mtu-small", cluster(underlay_mtu=100), C, ("underlay_mtu 100", "vxlan")),
    Bad("underlay-mtu-huge", cluster(underlay_mtu=70000), C, ("underlay_mtu 70000", "65535")),
    Bad("underlay-mtu-str", cluster(underlay_mtu="1500"), C, ("'1500'",)),
    Bad("lazy-str", cluster(lazy="yes"), C, ("'yes'", "True, False or None")),
    # sending: ports, payloads, protocols, endpoints
    Bad("dport-str", send("pod-a", "pod-c", dport="abc"), C, ("'abc'", "must be an integer 1..65535")),
    Bad("dport-0", send("pod-a", "pod-c", dport=0), C, ("destination port 0", "1..65535")),
    Bad("dport-65536", send("pod-a", "pod-c", dport=65536), C, ("destination port 65536", "1..65535")),
    Bad("dport-negative", send("pod-a", "pod-c", dport=-1), C, ("destination port -1", "1..65535")),
    Bad("dport-bool", send("pod-a", "pod-c", dport=True), C, ("True", "must be an integer")),
    Bad("dport-float", send("pod-a", "pod-c", dport=8080.0), C, ("8080.0", "must be an integer")),
    Bad("sport-negative", send("pod-a", "pod-c", proto="tcp", sport=-1), C, ("source port -1", "1..65535")),
    Bad("sport-0", send("pod-a", "pod-c", proto="udp", sport=0), C, ("source port 0", "1..65535")),
    Bad("sport-oversized", send("pod-a", "pod-c", proto="tcp", sport=70000), C, ("source port 70000",)),
    Bad("sport-str", send("pod-a", "pod-c", proto="tcp", sport="x"), C, ("'x'", "must be an integer")),
    Bad("sport-implies-tcp", send("pod-a", "pod-c", sport=99999), C, ("source port 99999",)),
    Bad("payload-str", send("pod-a", "pod-c", proto="udp", payload="hi"), C, ("'hi'", "must be bytes")),
    Bad("payload-list", send("pod-a", "pod-c", proto="tcp", payload=[1, 2]), C, ("[1, 2]", "must be bytes")),
    Bad("payload-udp-too-big", send("pod-a", "pod-c", proto="udp", payload=b"x" * 65508), C,
        ("65508 bytes", "at most 65507")),
    Bad("payload-tcp-too-big", send("pod-a", "pod-c", proto="tcp", payload=b"x" * 65484), C,
        ("65484 bytes", "at most 65483")),
    Bad("payload-tcp-empty", send("pod-a", "pod-c", proto="tcp", payload=b""), C, ("b''", "no TCP segment")),
    Bad("proto-upper", send("pod-a", "pod-c", proto="TCP"), C, ("'TCP'", "icmp, tcp, udp")),
    Bad("proto-sctp", send("pod-a", "pod-c", proto="sctp"), C, ("'sctp'", "icmp, tcp, udp")),
    Bad("proto-number", send("pod-a", "pod-c", proto=6), C, ("protocol 6", "icmp, tcp, udp")),
    Bad("icmp-dport", send("pod-a", "pod-c", proto="icmp", dport=80), C, ("dport=80", "does not apply to icmp")),
    Bad("icmp-sport", send("pod-a", "pod-c", proto="icmp", sport=4000), C, ("sport=4000", "icmp")),
    Bad("icmp-payload", send("pod-a", "pod-c", proto="icmp", payload=b"x"), C, ("payload=b'x'", "icmp")),
    Bad("endpoint-port-0", send("pod-a", "10.244.1.2:0"), C, ("'10.244.1.2:0'", "port 0", "1..65535")),
    Bad("endpoint-port-65536", send("pod-a", "10.244.1.2:65536"), C, ("'10.244.1.2:65536'", "1..65535")),
    Bad("endpoint-port-name", send("pod-a", "10.244.1.2:http"), C, ("'http'", "not a number")),
    Bad("endpoint-port-empty", send("pod-a", "10.244.1.2:"), C, ("'10.244.1.2:'", "not a number")),
    Bad("endpoint-bad-address", send("pod-a", "10.244.1.300"), C, ("'10.244.1.300'", "unknown endpoint")),
    Bad("endpoint-unknown", send("pod-a", "nowhere"), C, ("'nowhere'", "unknown endpoint")),
    Bad("endpoint-none", send(None, "pod-c"), C, ("endpoint None", "must be a name")),
    Bad("endpoint-int", send("pod-a", 42), C, ("endpoint 42", "must be a name")),
    Bad("endpoint-no-container", send("pod-a/nope", "pod-c"), C, ("'nope'", "app, sidecar")),
    Bad("service-sends", send("web", "pod-a"), C, ("'web'", "a service is not a host")),
    Bad("cold-str", send("pod-a", "pod-c", cold="no"), C, ("'no'", "True or False")),
    # state views
    Bad("show-host-none", lambda c: c.show(None, "ip route"), C, ("host None",)),
    Bad("show-host-list", lambda c: c.show(["node1"], "ip route"), C, ("['node1']",)),
    Bad("show-view-none", lambda c: c.show("node1", None), C, ("view None", "ip route")),
    Bad("show-unknown-host", lambda c: c.show("node9", "ip route"), C, ("'node9'",)),
    Bad("show-unknown-view", lambda c: c.show("node1", "ip rout"), C, ("'ip rout'", "ip route get ADDR")),
    Bad("route-get-bad-address", lambda c: c.show("node1", "ip route get 1.2.3"), C,
        ("'1.2.3'", "not an IPv4 address")),
    Bad("route-get-no-address", lambda c: c.show("node1", "ip route get"), C, ("'ip route get'",)),
    Bad("route-get-extra-words", lambda c: c.show("node1", "ip route get 10.0.0.1 via x"), C,
        ("'ip route get 10.0.0.1 via x'", "from SRC")),
    Bad("route-get-bad-from", lambda c: c.show("node1", "ip route get 10.244.1.2 from bogus"), C,
        ("'bogus'", "not an IPv4 address")),
    Bad("subnet-env-of-pod", lambda c: c.show("pod-a", "subnet.env"), C, ("'pod-a'", "node1, node2")),
    # breaking things: only on nodes, only what is there
    Bad("break-fdb-pod", lambda c: c.break_fdb("pod-a", "node2"), C, ("'pod-a'", "node1, node2")),
    Bad("break-fdb-unknown-peer", lambda c: c.break_fdb("node1", "node9"), C, ("'node9'",)),
    Bad("break-fdb-self", lambda c: c.break_fdb("node1", "node1"), C, ("peer 'node1'", "itself")),
    Bad("break-fdb-twice", twice("break_fdb", "node1", "node2"), C, ("already broken", "node2's VTEP MAC")),
    Bad("break-fdb-host-gw", lambda c: netsim.reference_cluster("host-gw").break_fdb("node1", "node2"), C,
        ("break_fdb", "vxlan", "host-gw")),
    Bad("break-neighbour-pod", lambda c: c.break_neighbour("pod-a", "node2"), C, ("'pod-a'", "node1, node2")),
    Bad("break-neighbour-twice", twice("break_neighbour", "node1", "node2"), C,
        ("already broken", "10.244.1.0")),
    Bad("break-route-self", lambda c: c.break_route("node1", "node1"), C, ("peer 'node1'", "itself")),
    Bad("break-route-twice", twice("break_route", "node1", "node2"), C, ("10.244.1.0/24", "No such process")),
    Bad("break-route-udp", lambda c: netsim.reference_cluster("udp").break_route("node1", "node2"), C,
        ("break_route", "udp backend", "flannel0")),
    Bad("break-masquerade-twice", twice("break_masquerade", "node1"), C, ("already broken", "10.244.0.0/16")),
    Bad("break-masquerade-external", lambda c: c.break_masquerade("ext"), C, ("'ext'", "node1, node2")),
    Bad("break-forwarding-pod", lambda c: c.break_forwarding("pod-a"), C, ("'pod-a'", "node1, node2")),
    Bad("break-forwarding-none", lambda c: c.break_forwarding(None), C, ("node None",)),
    # MTUs
    Bad("mtu-67", lambda c: c.set_mtu("pod-a", "eth0", 67), C, ("MTU 67", "68..65535")),
    Bad("mtu-70000", lambda c: c.set_mtu("pod-a", "eth0", 70000), C, ("MTU 70000",)),
    Bad("mtu-str", lambda c: c.set_mtu("pod-a", "eth0", "1400"), C, ("MTU '1400'",)),
    Bad("mtu-bool", lambda c: c.set_mtu("pod-a", "eth0", True), C, ("MTU True",)),
    Bad("mtu-unknown-device", lambda c: c.set_mtu("pod-a", "eth9", 1400), C, ("'eth9'", "lo, eth0")),
    Bad("mtu-unknown-host", lambda c: c.set_mtu("pod-9", "eth0", 1400), C, ("'pod-9'",)),
    Bad("mtu-device-int", lambda c: c.set_mtu("pod-a", 0, 1400), C, ("device 0",)),
    # views: a trace where a trace belongs, hops that exist
    Bad("stepper-swapped", lambda c: Stepper(_cluster(), _trace()), U, ("swapped", "Stepper(trace, cluster)")),
    Bad("stepper-not-a-trace", lambda c: Stepper("trace"), U, ("'trace'", "not a Trace")),
    Bad("stepper-cluster-str", lambda c: Stepper(_trace(), "cluster"), U, ("'cluster'", "not a Cluster")),
    Bad("stepper-start-999", lambda c: Stepper(_trace(), start=999), U, ("start 999", "outside 0..")),
    Bad("stepper-start-negative", lambda c: Stepper(_trace(), start=-1), U, ("start -1", "outside 0..")),
    Bad("stepper-start-str", lambda c: Stepper(_trace(), start="0"), U, ("start '0'", "integer")),
    Bad("stepper-predict-999", lambda c: Stepper(_trace(), predict=[999]), U, ("hop 999", "not in the trace")),
    Bad("stepper-predict-negative", lambda c: Stepper(_trace(), predict=[-1]), U, ("hop -1", "not in the trace")),
    Bad("header-view-999", lambda c: header_view(_trace(), 999), U, ("hop 999", "not in the trace")),
    Bad("header-view-negative", lambda c: header_view(_trace(), -1), U, ("hop -1", "not in the trace")),
    Bad("header-view-str", lambda c: header_view(_trace(), "3"), U, ("hop '3'", "integer")),
    Bad("challenge-999", lambda c: challenge(_trace(), 999, "ttl"), U, ("hop 999", "not in the trace")),
    Bad("challenge-kind", lambda c: challenge(_trace(), 3, "colour"), U, ("'colour'", "encap, ttl")),
    Bad("best-challenge-999", lambda c: best_challenge(_trace(), 999), U, ("hop 999", "not in the trace")),
    Bad("diagram-swapped", lambda c: diagram(_trace(), _cluster()), U, ("swapped", "diagram(cluster, trace)")),
    Bad("diagram-hop-999", lambda c: diagram(_cluster(), _trace(), 999), U, ("hop 999", "not in the trace")),
    Bad("diagram-hop-without-trace", lambda c: diagram(_cluster(), hop=3), U, ("hop 3", "without the trace")),
    Bad("diagram-hop-of-another-trace", lambda c: diagram(_cluster(), _trace(), c.send("pod-a", "pod-b")[2]), U,
        ("hop 2", "not a hop of this trace")),
    Bad("diagram-model-none", lambda c: diagram_model(None), U, ("None", "not a Cluster")),
]


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
@pytest.mark.parametrize("case", API, ids=[case.id for case in API])
def test_api_refuses_bad_input(case: Bad, lazy: bool):
    """On a fully built and on a lazy reference cluster alike (a lazy one builds namespaces
    when they are named, so its checks run on another path)."""
    with pytest.raises(NetsimError) as err:
        case.call(OnFirstUse(lazy))
    assert isinstance(err.value, case.error), f"{type(err.value).__name__}: {err.value}"
    message = str(err.value)
    for text in case.says:
        assert text in message, f"{text!r} not in {message!r}"


# The command line: (argv, texts stderr must contain). Input netsim refuses exits 2 with
# `netsim: error: ...`; what argparse refuses exits 2 with its usage message. A missing folder
# and a directory for --pcap are filled in by the test (see `_argv`).
CLI = [
    (["trace", "9"], ("no scenario '9'",)),
    (["trace", "pod-a", "nowhere"], ("unknown endpoint 'nowhere'",)),
    (["trace", "Pod-A", "pod-c"], ("unknown endpoint 'Pod-A'",)),
    (["trace", "pod-a;id", "pod-c"], ("unknown endpoint 'pod-a;id'",)),
    (["trace", "web", "pod-a"], ("'web' cannot send",)),
    (["trace", "4", "--dport", "80"], ("--dport 80", "SRC DST form", "'4'")),
    (["trace", "pod-to-cluster-ip", "--dport", "8080"], ("--dport 8080", "'pod-to-cluster-ip'")),
    (["trace", "pod-a", "pod-c", "--dport", "0"], ("destination port 0", "1..65535")),
    (["trace", "pod-a", "pod-c", "--dport", "70000"], ("destination port 70000", "1..65535")),
    (["trace", "pod-a", "pod-c", "--dport", "-5"], ("destination port -5",)),
    (["trace", "pod-a", "pod-c", "--proto", "icmp", "--dport", "80"], ("--dport 80", "icmp")),
    (["trace", "pod-a", "10.244.1.2:0"], ("'10.244.1.2:0'", "port 0")),
    (["trace", "pod-a", "10.244.1.2:99999"], ("'10.244.1.2:99999'", "1..65535")),
    (["trace", "a", "b", "c"], ("3 targets", "'a b c'")),
    (["trace", "4", "--pcap", "MISSING/x.pcapng"], ("MISSING", "does not exist")),
    (["trace", "4", "--pcap", "DIRECTORY"], ("DIRECTORY", "is a directory")),
    (["show", "node9", "ip route"], ("'node9'",)),
    (["show", "node1", "ip rout"], ("unknown view 'ip rout'",)),
    (["show", "node1", "ip route get 1.2.3"], ("'1.2.3'", "not an IPv4 address")),
    (["show", "node1", "ip route get"], ("'ip route get'",)),
    (["show", "pod-a", "subnet.env"], ("'pod-a'",)),
    (["trace", "pod-a", "pod-c", "--dport", "abc"], ("invalid int value: 'abc'",)),
    (["trace", "4", "--backend", "geneve"], ("invalid choice: 'geneve'",)),
    (["trace", "4", "--proto", "sctp"], ("invalid choice: 'sctp'",)),
    (["summary", "--proto", "sctp"], ("invalid choice: 'sctp'",)),
    (["show", "node1"], ("the following arguments are required: view",)),
    (["trace"], ("the following arguments are required",)),
    (["frobnicate"], ("invalid choice: 'frobnicate'",)),
]


def _argv(argv: list[str], tmp_path) -> tuple[list[str], dict[str, str]]:
    names = {"MISSING": str(tmp_path / "no-such-folder"), "DIRECTORY": str(tmp_path)}
    out = []
    for arg in argv:
        for key, value in names.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out, names


@pytest.mark.parametrize("argv, says", CLI, ids=[" ".join(a) for a, _ in CLI])
def test_cli_refuses_bad_input_with_exit_code_2(argv, says, tmp_path):
    argv, names = _argv(argv, tmp_path)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv, out)
        except SystemExit as e:       # argparse's own errors
            code = e.code
    stderr = err.getvalue()
    assert code == 2, stderr
    assert stderr.startswith(("netsim: error: ", "usage: netsim")), stderr
    assert "Traceback" not in stderr
    for text in says:
        for key, value in names.items():
            text = text.replace(key, value)
        assert text in stderr, f"{text!r} not in {stderr!r}"


def test_cli_in_a_subprocess_prints_no_traceback():
    res = subprocess.run([sys.executable, "-m", "netsim", "trace", "4", "--dport", "80"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("netsim: error: --dport 80 applies only to the SRC DST form")
    assert "Traceback" not in res.stderr


def test_pcap_to_a_missing_folder_runs_no_trace(tmp_path):
    """The path is checked before the trace runs: nothing is printed and nothing created."""
    out = io.StringIO()
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["trace", "4", "--pcap", str(tmp_path / "a" / "b.pcapng")], out) == 2
    assert out.getvalue() == "" and list(tmp_path.iterdir()) == []


def test_automatic_cluster_ip_skips_one_taken_by_hand():
    """kube-apiserver never hands out an allocated ClusterIP: with 10.96.0.101 pinned, the
    next automatic one is .102, and the one after skips nothing."""
    c = netsim.reference_cluster()
    c.add_service("pinned", 80, 8080, pods=["pod-a"], cluster_ip="10.96.0.101")
    assert c.add_service("auto", 80, 8080, pods=["pod-b"]).cluster_ip == "10.96.0.102"
    assert c.add_service("auto2", 80, 8080).cluster_ip == "10.96.0.103"
    assert len({s.cluster_ip for s in c.services.values()}) == 5       # web, kube-dns (10.96.0.10), the three here


def test_break_forwarding_may_be_repeated():
    """A sysctl write is idempotent in the kernel, and so is break_forwarding."""
    c = netsim.reference_cluster()
    c.break_forwarding("node1")
    c.break_forwarding("node1")
    assert c.netns("node1").sysctl.ip_forward == 0


def test_valid_names_are_accepted():
    """The rules refuse only what Kubernetes refuses (and addresses): these all work."""
    c = netsim.reference_cluster()
    for name in ("a", "0a", "pod-4", "x" * 63, "a-b-c-1", "1-2"):
        c.add_pod(name, containers=("app", "c-2"))
    c.add_service("a1", 80, 8080, pods=["0a"])
    c.add_service("s" * 63, 81, 8080)
    outcome = c.send("pod-a", "0a").outcome
    assert (outcome.kind, outcome.reason, outcome.peer) == ("answered", OutcomeReason.ECHO_REPLY, c.pods["0a"].ip)
