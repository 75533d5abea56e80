"""Small topologies built with the core API only (`Network`, `Namespace`, `VxlanDevice`), shared
by the unit tests and the property tests. Plain functions: each returns a new `Network`."""

from __future__ import annotations

from netsim.stack import Network
from netsim.vxlan import VxlanDevice


def two_hosts(mtu: int = 1500) -> Network:
    """h1 (10.0.0.1/24) and h2 (10.0.0.2/24) joined by one veth pair."""
    net = Network()
    net.add_netns("h1")
    net.add_netns("h2")
    net.veth("h1", "eth0", "h2", "eth0", mtu=mtu)
    net.netns("h1").addr_add("eth0", "10.0.0.1/24")
    net.netns("h2").addr_add("eth0", "10.0.0.2/24")
    return net


def router_chain(routers: int, subnets: list[str] | None = None, mtus: list[int] | None = None) -> Network:
    """h1 - r1 - r2 - ... - rN - h2: N forwarding namespaces joined by veths, one /24 per link.

    Link i (0 = h1-r1, N = rN-h2) uses `subnets[i]` (a "A.B.C" prefix, default 10.i.0) with the
    left side at .1 and the right side at .2, and `mtus[i]` (default 1500). Every namespace has
    a default route towards h2, and each router a route for every link further left, so every
    address is reachable from everywhere and replies retrace the request.
    Device names: the left end of link i is `right<i>`, the right end `left<i>`; the hosts'
    ends are `eth0`.
    """
    assert routers >= 1
    links = routers + 1
    subnets = subnets or [f"10.{i}.0" for i in range(links)]
    mtus = mtus or [1500] * links
    names = ["h1"] + [f"r{i}" for i in range(1, routers + 1)] + ["h2"]
    net = Network()
    for name in names:
        net.add_netns(name)
    for i in range(links):
        left, right = names[i], names[i + 1]
        lname = "eth0" if left == "h1" else f"right{i}"
        rname = "eth0" if right == "h2" else f"left{i}"
        net.veth(left, lname, right, rname, mtu=mtus[i])
        net.netns(left).addr_add(lname, f"{subnets[i]}.1/24")
        net.netns(right).addr_add(rname, f"{subnets[i]}.2/24")
    for i, name in enumerate(names):
        ns = net.netns(name)
        if name == "h2":
            ns.route_add("default", via=f"{subnets[-1]}.1")
            continue
        ns.route_add("default", via=f"{subnets[i]}.2")        # towards h2
        if name.startswith("r"):
            ns.set_sysctl("net.ipv4.ip_forward", 1)
            for j in range(i - 1):                           # every link further left
                ns.route_add(f"{subnets[j]}.0/24", via=f"{subnets[i - 1]}.1")
    return net


def bridged_pods(pods: int = 2, hairpin: bool = True, bridge_mac: str | None = "02:42:0a:f4:00:01",
                 pod_routes: bool = True) -> Network:
    """One node with `cni0` (10.244.0.1/24, MTU 1450) and `pods` pods `pod0..` at
    10.244.0.2.. behind veths `vethpod0..`; hairpin as the CNI plugin sets it for Flannel.
    Each pod has a default route via 10.244.0.1; the node forwards."""
    net = Network()
    node = net.add_netns("node")
    node.set_sysctl("net.ipv4.ip_forward", 1)
    cni0 = net.bridge("node", "cni0", mac=bridge_mac, mtu=1450)
    node.addr_add("cni0", "10.244.0.1/24")
    for i in range(pods):
        pod = f"pod{i}"
        net.add_netns(pod)
        host_end, _ = net.veth("node", f"vethpod{i}", pod, "eth0", mtu=1450)
        cni0.attach(host_end, hairpin=hairpin)
        net.netns(pod).addr_add("eth0", f"10.244.0.{i + 2}/24")
        if pod_routes:
            net.netns(pod).route_add("default", via="10.244.0.1")
    return net


VTEP_MAC = {1: "36:8c:3b:64:f5:9e", 2: "3e:8f:2b:31:6a:69"}


def flannel_pair(pods_per_node: int = 1, mtu: int = 1500) -> Network:
    """Two nodes on an underlay switch (`underlay/sw0`), each with Flannel's VXLAN data plane.

    node1: eth0 192.168.50.11/24, cni0 10.244.0.1/24, flannel.1 10.244.0.0/32; pods
    n1pod0.. at 10.244.0.2... node2 likewise with .12, 10.244.1.0/24 and n2pod0... Each node
    has `10.244.M.0/24 via 10.244.M.0 dev flannel.1 onlink`, a PERMANENT neighbour entry for
    the peer VTEP and `fdb append <peer VTEP MAC> dst <peer IP>`, as flanneld installs them.
    """
    net = Network()
    net.add_netns("underlay")
    sw0 = net.bridge("underlay", "sw0", mac="02:00:00:00:50:01", mtu=mtu)
    for n in (1, 2):
        name = f"node{n}"
        ns = net.add_netns(name)
        ns.set_sysctl("net.ipv4.ip_forward", 1)
        nic, port = net.veth(name, "eth0", "underlay", f"p-{name}", mtu=mtu, nic="a")
        sw0.attach(port)
        ns.addr_add("eth0", f"192.168.50.{10 + n}/24")
        cni0 = net.bridge(name, "cni0", mac=f"02:42:0a:f4:0{n - 1}:01", mtu=1450)
        ns.addr_add("cni0", f"10.244.{n - 1}.1/24")
        vx = ns.add_device(VxlanDevice("flannel.1", VTEP_MAC[n], 1, f"192.168.50.{10 + n}", "eth0"))
        ns.addr_add("flannel.1", f"10.244.{n - 1}.0/32")
        for p in range(pods_per_node):
            pod = f"n{n}pod{p}"
            net.add_netns(pod)
            host_end, _ = net.veth(name, f"veth{n}{p:07x}", pod, "eth0", mtu=1450)
            cni0.attach(host_end, hairpin=True)
            pns = net.netns(pod)
            pns.addr_add("eth0", f"10.244.{n - 1}.{p + 2}/24")
            pns.route_add("10.244.0.0/16", via=f"10.244.{n - 1}.1")
            pns.route_add("default", via=f"10.244.{n - 1}.1")
        assert vx.mtu == 1450
    for n, m in ((1, 2), (2, 1)):
        ns = net.netns(f"node{n}")
        vx = ns.device("flannel.1")
        ns.route_add(f"10.244.{m - 1}.0/24", dev="flannel.1", via=f"10.244.{m - 1}.0", onlink=True)
        ns.neigh_add(f"10.244.{m - 1}.0", "flannel.1", VTEP_MAC[m])
        vx.fdb_append(VTEP_MAC[m], f"192.168.50.{10 + m}")
    return net
