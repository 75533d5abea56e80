"""State views print like iproute2 6.1 printed the same configuration on Linux 6.18 (see the
module docstring of netsim.show for the deliberate differences)."""

import pytest

from netsim import show
from netsim.errors import ConfigError
from tests.topologies import VTEP_MAC, flannel_pair, two_hosts


@pytest.fixture(scope="module")
def net():
    net = flannel_pair()
    net.send("n1pod0", "10.244.1.2")
    return net


def macs(net):
    n1 = net.netns("node1")
    return {"eth0": n1.device("eth0").mac, "veth": n1.device("veth10000000").mac,
            "pod": net.netns("n1pod0").device("eth0").mac, "n2eth0": net.netns("node2").device("eth0").mac}


def test_ip_addr(net):
    m = macs(net)
    assert show.ip_addr(net.netns("node1")) == f"""\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP group default qlen 1000
    link/ether {m['eth0']} brd ff:ff:ff:ff:ff:ff
    inet 192.168.50.11/24 brd 192.168.50.255 scope global eth0
       valid_lft forever preferred_lft forever
3: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP group default qlen 1000
    link/ether 02:42:0a:f4:00:01 brd ff:ff:ff:ff:ff:ff
    inet 10.244.0.1/24 brd 10.244.0.255 scope global cni0
       valid_lft forever preferred_lft forever
4: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN group default qlen 1000
    link/ether {VTEP_MAC[1]} brd ff:ff:ff:ff:ff:ff
    inet 10.244.0.0/32 scope global flannel.1
       valid_lft forever preferred_lft forever
5: veth10000000@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0 state UP group default qlen 1000
    link/ether {m['veth']} brd ff:ff:ff:ff:ff:ff link-netns n1pod0"""


def test_ip_addr_of_a_pod_names_the_peer_ifindex(net):
    m = macs(net)
    assert show.ip_addr(net.netns("n1pod0"), "eth0") == f"""\
2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP group default qlen 1000
    link/ether {m['pod']} brd ff:ff:ff:ff:ff:ff link-netns node1
    inet 10.244.0.2/24 brd 10.244.0.255 scope global eth0
       valid_lft forever preferred_lft forever"""


def test_secondary_address_and_down_and_no_carrier_links():
    net = two_hosts()
    h1 = net.netns("h1")
    h1.addr_add("eth0", "10.0.0.5/24")
    net.netns("h2").device("eth0").up = False
    text = show.ip_addr(h1, "eth0").splitlines()
    assert text[0] == ("2: eth0@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue "
                       "state LOWERLAYERDOWN group default qlen 1000")
    assert text[4] == "    inet 10.0.0.5/24 brd 10.0.0.255 scope global secondary eth0"
    h1.device("eth0").up = False
    assert show.ip_link(h1).splitlines()[2] == \
        "2: eth0@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default qlen 1000"


def test_ip_route_main_and_local(net):
    n1 = net.netns("node1")
    assert show.ip_route(n1) == """\
10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1
10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
192.168.50.0/24 dev eth0 proto kernel scope link src 192.168.50.11"""
    assert show.ip_route(n1, table="local") == """\
local 10.244.0.0 dev flannel.1 proto kernel scope host src 10.244.0.0
local 10.244.0.1 dev cni0 proto kernel scope host src 10.244.0.1
broadcast 10.244.0.255 dev cni0 proto kernel scope link src 10.244.0.1
local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1
local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1
broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1
local 192.168.50.11 dev eth0 proto kernel scope host src 192.168.50.11
broadcast 192.168.50.255 dev eth0 proto kernel scope link src 192.168.50.11"""
    with pytest.raises(ConfigError, match="table 'nat' is not modelled; the tables are main and local"):
        show.ip_route(n1, table="nat")


@pytest.mark.parametrize("addr, src, text", [
    ("10.244.1.2", None, "10.244.1.2 via 10.244.1.0 dev flannel.1 src 10.244.0.0 uid 0\n    cache"),
    ("10.244.1.2", "192.168.50.11", "10.244.1.2 from 192.168.50.11 via 10.244.1.0 dev flannel.1 uid 0\n    cache"),
    ("10.244.0.3", None, "10.244.0.3 dev cni0 src 10.244.0.1 uid 0\n    cache"),
    ("10.244.0.1", None, "local 10.244.0.1 dev lo src 10.244.0.1 uid 0\n    cache <local>"),
    ("127.0.0.1", None, "local 127.0.0.1 dev lo src 127.0.0.1 uid 0\n    cache <local>"),
    ("10.244.0.255", None, "broadcast 10.244.0.255 dev cni0 src 10.244.0.1 uid 0\n    cache <local,brd>"),
    ("8.8.8.8", None, "RTNETLINK answers: Network is unreachable"),
])
def test_ip_route_get(net, addr, src, text):
    assert show.ip_route_get(net.netns("node1"), addr, src) == text


def test_ip_route_get_blackhole_and_unreachable():
    h1 = two_hosts().netns("h1")
    h1.route_add("10.10.0.0/16", type="blackhole")
    h1.route_add("10.11.0.0/16", type="unreachable")
    assert show.ip_route_get(h1, "10.10.0.1") == "RTNETLINK answers: Invalid argument"
    assert show.ip_route_get(h1, "10.11.0.1") == "RTNETLINK answers: No route to host"


def test_ip_neigh(net):
    m = macs(net)
    assert show.ip_neigh(net.netns("node1")) == f"""\
192.168.50.12 dev eth0 lladdr {m['n2eth0']} REACHABLE
10.244.0.2 dev cni0 lladdr {m['pod']} STALE
10.244.1.0 dev flannel.1 lladdr {VTEP_MAC[2]} PERMANENT"""


def test_bridge_fdb(net):
    m = macs(net)
    assert show.bridge_fdb(net.netns("node1")) == f"""\
02:42:0a:f4:00:01 dev cni0 master cni0 permanent
{VTEP_MAC[2]} dev flannel.1 dst 192.168.50.12 self permanent
{m['veth']} dev veth10000000 master cni0 permanent
{m['pod']} dev veth10000000 master cni0"""


def test_ip_link_details(net):
    n1 = net.netns("node1")
    assert show.ip_link_details(n1, "flannel.1") == f"""\
4: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000
    link/ether {VTEP_MAC[1]} brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0
    vxlan id 1 local 192.168.50.11 dev eth0 srcport 0 0 dstport 8472 nolearning ttl auto ageing 300 udpcsum"""
    assert show.ip_link_details(n1, "veth10000000").splitlines()[1:] == [
        f"    link/ether {macs(net)['veth']} brd ff:ff:ff:ff:ff:ff link-netns n1pod0 promiscuity 1  allmulti 1",
        "    veth",
        "    bridge_slave state forwarding priority 32 cost 2 hairpin on guard off root_block off fastleave off "
        "learning on flood on"]


def test_joining_a_bridge_makes_a_port_promiscuous_and_leaving_undoes_it():
    """net/bridge/br_if.c: br_add_if raises allmulti, br_manage_promisc (no VLAN filtering)
    promiscuity, nbp_delete_promisc lowers both; the bridge device itself stays at 0."""
    from netsim.bridge import Bridge
    from netsim.device import Veth
    br, port, other = Bridge("br0"), Veth("vethx", "02:00:00:00:00:0a"), Veth("vethy", "02:00:00:00:00:0b")
    assert (port.promiscuity, port.allmulti) == (0, 0)
    br.attach(port)
    br.attach(other)
    assert (port.promiscuity, port.allmulti, other.promiscuity) == (1, 1, 1)
    assert (br.promiscuity, br.allmulti) == (0, 0)
    br.detach("vethx")
    assert (port.promiscuity, port.allmulti, other.promiscuity) == (0, 0, 1)


def test_ip_d_link_show_is_a_view_of_every_device_or_one():
    import netsim
    cluster = netsim.reference_cluster("vxlan")
    node = show.ip_link_details(cluster.netns("node1"))
    assert cluster.show("node1", "ip -d link show") == node
    counts = {b[0].split(": ")[1].split("@")[0]: b[1].split(" promiscuity ")[1]
              for b in (block.splitlines() for block in _blocks(node))}
    ports = sorted(cluster.netns("node1").devices["cni0"].ports)
    assert {n: c for n, c in counts.items() if c != "0  allmulti 0"} == {p: "1  allmulti 1" for p in ports}
    assert set(counts) == {"lo", "eth0", "flannel.1", "cni0", *ports}
    first = next(iter(cluster.netns("node1").devices["cni0"].ports))      # pod-a's, attached first
    one = cluster.show("node1", f"ip -d link show {first}").splitlines()
    assert one[0].startswith("5: " + first + "@if2: ") and one[1].endswith(" link-netns pod-a promiscuity 1  allmulti 1")
    with pytest.raises(ConfigError, match="has no device 'nope'"):
        cluster.show("node1", "ip -d link show nope")


def _blocks(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        if line[0].isdigit():
            out.append(line)
        else:
            out[-1] += "\n" + line
    return out


def test_sysctl(net):
    assert show.sysctl(net.netns("node1")) == """\
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.ipv4.ip_local_port_range = 32768\t60999
net.ipv4.ip_default_ttl = 64
net.ipv4.route.mtu_expires = 600
net.ipv4.route.min_pmtu = 552
net.ipv4.ip_no_pmtu_disc = 0
net.ipv4.icmp_ratelimit = 1000
net.ipv4.icmp_ratemask = 6168
net.ipv4.icmp_echo_ignore_broadcasts = 1
net.ipv4.conf.all.route_localnet = 0"""


def test_iptables_and_conntrack_views_delegate(net):
    n1 = net.netns("node1")
    assert show.iptables_save(n1) == n1.netfilter.save(None)
    assert show.iptables_save(n1, "nat") == n1.netfilter.save("nat")
    assert show.conntrack_list(n1) == n1.conntrack.listing()


def test_netlink_made_devices_print_no_qlen():
    """flanneld's flannel.1 and the CNI plugins' veth ends are created with txqueuelen 0, so
    iproute2 prints no `qlen`; cni0 (the bridge plugin asks for the default) and eth0 keep 1000."""
    import netsim
    cluster = netsim.reference_cluster("vxlan")
    heads = {line.split(": ")[1].split("@")[0]: line for line in cluster.show("node1", "ip addr").splitlines()
             if line[0].isdigit()}
    assert heads["flannel.1"].endswith("state UNKNOWN group default")
    assert heads["cni0"].endswith("state UP group default qlen 1000")
    assert heads["eth0"].endswith("state UP group default qlen 1000")
    assert [h for name, h in heads.items() if name.startswith("veth")] and \
        all(h.endswith("master cni0 state UP group default") for name, h in heads.items() if name.startswith("veth"))
    pod = cluster.show("pod-a", "ip addr").splitlines()
    assert pod[4] == "2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UP group default"


def test_node_annotations_carry_the_vtep_mac_and_public_ip_the_peers_program():
    """flanneld's Node annotations (pkg/subnet/kube/annotations.go): what node1's FDB and
    neighbour entries for node2 are made from."""
    import netsim
    from netsim import flannel
    cluster = netsim.reference_cluster()
    mac = flannel.vtep_mac("node2")
    assert cluster.show("node2", "node annotations") == f"""\
annotations:
  flannel.alpha.coreos.com/backend-data: '{{"VNI":1,"VtepMAC":"{mac}"}}'
  flannel.alpha.coreos.com/backend-type: vxlan
  flannel.alpha.coreos.com/kube-subnet-manager: "true"
  flannel.alpha.coreos.com/public-ip: 192.168.50.12"""
    assert f"{mac} dev flannel.1 dst 192.168.50.12 self permanent" in cluster.show("node1", "bridge fdb")
    assert f"10.244.1.0 dev flannel.1 lladdr {mac} PERMANENT" in cluster.show("node1", "ip neigh")
    hostgw = netsim.reference_cluster("host-gw").show("node2", "node annotations").splitlines()
    assert hostgw[1] == '  flannel.alpha.coreos.com/backend-data: "null"'
    with pytest.raises(netsim.ConfigError, match="pod-a"):
        cluster.show("pod-a", "node annotations")
