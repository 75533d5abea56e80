"""Routing: the tables `ip addr add` fills, longest-prefix match, metrics, source selection."""

from ipaddress import IPv4Network

import pytest

from netsim.errors import ConfigError

from netsim.route import FrozenRoutes, Route, RoutingTable, address_int
from netsim.stack import Network
from tests.topologies import flannel_pair, two_hosts


def host_with_two_links() -> Network:
    net = Network()
    net.add_netns("h")
    net.add_netns("x")
    net.add_netns("y")
    net.veth("h", "eth0", "x", "eth0")
    net.veth("h", "eth1", "y", "eth0")
    h = net.netns("h")
    h.addr_add("eth0", "192.168.1.10/24")
    h.addr_add("eth1", "172.16.0.10/24")
    return net


def test_addr_add_creates_connected_local_and_broadcast_routes():
    h1 = two_hosts().netns("h1")
    assert [str(r) for r in h1.main_table.routes()] == ["10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1"]
    assert [str(r) for r in h1.local_table.routes()] == [
        "local 10.0.0.1 dev eth0 proto kernel scope host src 10.0.0.1",
        "broadcast 10.0.0.255 dev eth0 proto kernel scope link src 10.0.0.1",
        "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1",
        "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1",
        "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1",
    ]


def test_a_32_address_gets_only_a_local_route():
    node1 = flannel_pair().netns("node1")
    assert "local 10.244.0.0 dev flannel.1 proto kernel scope host src 10.244.0.0" in \
        [str(r) for r in node1.local_table.routes()]
    assert not any(r.dev == "flannel.1" and r.proto == "kernel" for r in node1.main_table.routes())


def test_longest_prefix_match_and_metric():
    net = host_with_two_links()
    h = net.netns("h")
    h.route_add("default", via="192.168.1.1")
    h.route_add("10.0.0.0/8", via="192.168.1.2")
    h.route_add("10.1.0.0/16", via="172.16.0.1", metric=100)
    h.route_add("10.1.0.0/16", via="192.168.1.3", metric=50)
    assert str(h.route_get("8.8.8.8")) == "8.8.8.8 via 192.168.1.1 dev eth0 src 192.168.1.10"
    assert str(h.route_get("10.9.9.9")) == "10.9.9.9 via 192.168.1.2 dev eth0 src 192.168.1.10"
    # the /16 beats the /8; of the two /16s the lower metric wins
    assert str(h.route_get("10.1.2.3")) == "10.1.2.3 via 192.168.1.3 dev eth0 src 192.168.1.10"
    h.route_del("10.1.0.0/16", via="192.168.1.3")
    assert str(h.route_get("10.1.2.3")) == "10.1.2.3 via 172.16.0.1 dev eth1 src 172.16.0.10"


def test_routes_to_a_down_device_are_skipped():
    net = host_with_two_links()
    h = net.netns("h")
    h.route_add("10.1.0.0/16", via="192.168.1.3", metric=50)
    h.route_add("10.1.0.0/16", via="172.16.0.1", metric=100)
    h.device("eth0").up = False
    assert h.route_get("10.1.0.1").dev == "eth1"


def test_a_remembered_answer_follows_devices_going_down_and_up_and_every_table_change():
    """route_get remembers its answers (Namespace.route_get): a device going down or up, or a
    route added or deleted, is seen by the next lookup of the same address."""
    net = host_with_two_links()
    h = net.netns("h")
    h.route_add("10.1.0.0/16", via="192.168.1.3", metric=50)
    h.route_add("10.1.0.0/16", via="172.16.0.1", metric=100)
    answers = []
    for change in (lambda: None, lambda: setattr(h.device("eth0"), "up", False),
                   lambda: setattr(h.device("eth0"), "up", True), lambda: h.route_add("10.1.2.0/24", via="172.16.0.2"),
                   lambda: h.route_del("10.1.2.0/24", via="172.16.0.2"), lambda: h.addr_add("eth1", "10.1.2.3/32")):
        change()
        answers.append([str(h.route_get("10.1.2.3")) for _ in range(2)])
    assert [a[0] for a in answers] == [a[1] for a in answers]
    assert [a[0] for a in answers] == [
        "10.1.2.3 via 192.168.1.3 dev eth0 src 192.168.1.10", "10.1.2.3 via 172.16.0.1 dev eth1 src 172.16.0.10",
        "10.1.2.3 via 192.168.1.3 dev eth0 src 192.168.1.10", "10.1.2.3 via 172.16.0.2 dev eth1 src 172.16.0.10",
        "10.1.2.3 via 192.168.1.3 dev eth0 src 192.168.1.10", "local 10.1.2.3 dev lo src 10.1.2.3"]


def test_source_address_selection_like_ip_route_get():
    net = flannel_pair()
    node1 = net.netns("node1")
    # flannel.1's /32 is the source towards remote pods (kernel-observations s7)
    assert str(node1.route_get("10.244.1.2")) == "10.244.1.2 via 10.244.1.0 dev flannel.1 src 10.244.0.0"
    # cni0's address towards local pods (s3)
    assert str(node1.route_get("10.244.0.2")) == "10.244.0.2 dev cni0 src 10.244.0.1"
    assert str(node1.route_get("192.168.50.12")) == "192.168.50.12 dev eth0 src 192.168.50.11"
    # an own address resolves through the local table
    assert str(node1.route_get("10.244.0.1")) == "local 10.244.0.1 dev lo src 10.244.0.1"
    # an explicit route src wins over the device address
    node1.route_add("10.99.0.0/16", dev="eth0", src="10.244.0.1")
    assert node1.route_get("10.99.1.1").src == "10.244.0.1"
    # `from` is kept as given
    assert node1.route_get("10.244.1.2", "192.168.50.11").src == "192.168.50.11"


def test_source_is_the_device_address_in_the_gateways_subnet():
    net = host_with_two_links()
    h = net.netns("h")
    h.addr_add("eth0", "10.50.0.10/24")
    h.route_add("10.60.0.0/16", via="10.50.0.1", dev="eth0")
    assert h.route_get("10.60.0.1").src == "10.50.0.10"
    h.route_add("10.61.0.0/16", dev="eth0")
    assert h.route_get("10.61.0.1").src == "192.168.1.10"   # the device's primary address


def test_routes_are_listed_like_the_kernel_dumps_them():
    net = host_with_two_links()
    h = net.netns("h")
    h.route_add("10.0.0.0/8", via="192.168.1.254", metric=5)
    h.route_add("10.0.0.0/16", via="192.168.1.254")
    h.route_add("10.0.0.0/24", via="192.168.1.253", metric=7)
    h.route_add("10.5.0.0/16", via="192.168.1.254", dev="eth0", src="192.168.1.10", metric=9, onlink=True)
    h.route_add("10.5.0.0/16", via="192.168.1.254", metric=3)
    h.route_add("10.10.0.0/16", type="blackhole")
    h.route_add("10.11.0.0/16", type="unreachable")
    # the same order and text as iproute2 6.1 printed for this configuration on Linux 6.18
    assert [str(r) for r in h.main_table.routes()] == [
        "10.0.0.0/24 via 192.168.1.253 dev eth0 metric 7",
        "10.0.0.0/16 via 192.168.1.254 dev eth0",
        "10.0.0.0/8 via 192.168.1.254 dev eth0 metric 5",
        "10.5.0.0/16 via 192.168.1.254 dev eth0 metric 3",
        "10.5.0.0/16 via 192.168.1.254 dev eth0 src 192.168.1.10 metric 9 onlink",
        "blackhole 10.10.0.0/16",
        "unreachable 10.11.0.0/16",
        "172.16.0.0/24 dev eth1 proto kernel scope link src 172.16.0.10",
        "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.10",
    ]


def test_secondary_address_adds_no_second_connected_route():
    h1 = two_hosts().netns("h1")
    h1.addr_add("eth0", "10.0.0.5/24")
    assert [str(r) for r in h1.main_table.routes()] == ["10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1"]
    assert h1.is_local_address("10.0.0.5")
    assert h1.route_get("10.0.0.7").src == "10.0.0.1"


def test_table_lookup_walks_prefix_lengths_not_routes():
    table = RoutingTable("main")
    for i in range(256):
        table.add(Route(IPv4Network(f"10.{i}.0.0/16"), "flannel.1", via=f"10.{i}.0.0", onlink=True))
    table.add(Route(IPv4Network("0.0.0.0/0"), "eth0", via="192.168.50.1"))
    assert table.lookup(address_int("10.77.3.4")).via == "10.77.0.0"
    assert table.lookup(address_int("11.0.0.1")).via == "192.168.50.1"
    assert len(table) == 257


def _peer_routes(n: int) -> list[Route]:
    return [Route(IPv4Network(f"10.244.{i}.0/24"), "flannel.1", via=f"10.244.{i}.0", onlink=True) for i in range(n)]


def test_a_table_loads_frozen_routes_but_one_and_changes_only_its_own_copy():
    routes = _peer_routes(4)
    frozen = FrozenRoutes(routes)
    a, b = RoutingTable("main"), RoutingTable("main")
    a.add(Route(IPv4Network("192.168.50.0/24"), "eth0", src="192.168.50.11", scope="link", proto="kernel"))
    a.load(frozen, without=routes[0])
    b.load(frozen, without=routes[2])
    assert [str(r.dst) for r in a.routes()] == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24", "192.168.50.0/24"]
    assert a.lookup(address_int("10.244.0.9")) is None and b.lookup(address_int("10.244.0.9")) is routes[0]
    a.remove(routes[1])
    a.add(Route(IPv4Network("10.244.3.0/24"), "eth0", via="192.168.50.14", metric=5))
    assert a.lookup(address_int("10.244.1.9")) is None and b.lookup(address_int("10.244.1.9")) is routes[1]
    assert [str(r) for r in b.routes() if str(r.dst) == "10.244.3.0/24"] == \
        ["10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink"]
    assert len(frozen) == 4 and len(a) == 4 and len(b) == 3


def test_loading_a_route_the_table_holds_already_fails_as_adding_it_would():
    routes = _peer_routes(3)
    table = RoutingTable("main")
    table.add(routes[1])
    with pytest.raises(ConfigError, match="exists already in table main"):
        table.load(FrozenRoutes(routes))
    assert [r for r in table.routes()] == [routes[0], routes[1]]      # added in order until the duplicate
