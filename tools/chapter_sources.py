"""The chapter sources that tools/make_notebooks.py turns into notebooks (see its docstring)."""

CHAPTERS: dict[str, str] = {}

CHAPTERS["01-toolbox"] = r'''
%% md
# The toolbox: namespaces, veths, bridges, routes, ARP and netfilter

Every path a packet takes through a Flannel cluster is built from six kernel parts. A pod is a
{term}`network namespace`; a pod is plugged into its node by a {term}`veth pair`; the pods of a
node meet on a Linux {term}`bridge`; the node chooses where a packet goes with its routing table;
it finds the next machine's MAC address with {term}`ARP`; and {term}`netfilter` rules filter and
rewrite packets on the way. This chapter builds each part with `netsim`, one at a time, on a
tiny network of our own, before the later chapters meet them in a cluster.

**What you will learn**

- how to create namespaces, veth pairs and a bridge with `netsim.Network`, and what each does to a frame;
- how a host picks a route and a source address, and why ARP runs before the first packet;
- that only routing (not bridging, not a veth) lowers the {term}`TTL`;
- how a netfilter rule drops or rewrites a forwarded packet, and how {term}`conntrack` remembers it.

**What you need:** Python and this repository's `netsim` package; nothing runs on your real network.

%% md
## Two namespaces and a cable

A network namespace is a private copy of the network stack: its own devices, addresses, routes,
neighbour table and firewall rules. A new one holds only the loopback device `lo`. A veth pair is
a virtual cable: a frame sent into one end comes out of the other, unchanged. Below, two
namespaces, `red` and `blue`, each get one end of a cable and an address in `10.0.0.0/24`.

%% code
from netsim import Network
from netsim import show

net = Network()
for name in ("red", "blue"):
    net.add_netns(name)
net.veth("red", "eth0", "blue", "eth0")
net.netns("red").addr_add("eth0", "10.0.0.2/24")
net.netns("blue").addr_add("eth0", "10.0.0.3/24")
print(show.ip_route(net.netns("red")))

%% md
Adding `10.0.0.2/24` to `eth0` made the kernel add a *connected route*: `10.0.0.0/24 dev eth0
scope link`. It says "every address of this subnet is directly on the wire behind `eth0`". Now
`red` pings `blue`. `send()` returns a trace: one line per point where `tcpdump` could have seen
the frame, as `namespace/device`, `rx` (received) or `tx` (sent).

%% code
trace = net.send("red", "10.0.0.3", "icmp")
print(trace.table())
print(trace.outcome)

%% md
Before the echo request could leave, `red` needed `blue`'s MAC address, so it broadcast an ARP
request (destination `ff:ff:ff:ff:ff:ff`) and `blue` answered. The answer is now cached in `red`'s
{term}`neighbour table`:

%% code
print(show.ip_neigh(net.netns("red")))

%% md
## A bridge joins many cables

A cable joins two namespaces; a node has many pods. A Linux bridge is a switch in software: each
veth's host end becomes a *port* of the bridge, and the bridge forwards frames between ports by
destination MAC address. It learns which MAC lives behind which port from the source address of
the frames it sees, and keeps that in its forwarding database ({term}`FDB`). A frame to an unknown
or broadcast MAC is *flooded* out of every other port.

%% code
net = Network()
for name in ("red", "blue", "host"):
    net.add_netns(name)
net.veth("red", "eth0", "host", "veth-red")
net.veth("blue", "eth0", "host", "veth-blue")
host = net.netns("host")
br0 = net.bridge("host", "br0")
br0.attach(host.device("veth-red"))
br0.attach(host.device("veth-blue"))
net.netns("red").addr_add("eth0", "10.0.0.2/24")
net.netns("blue").addr_add("eth0", "10.0.0.3/24")
trace = net.send("red", "10.0.0.3", "icmp")
print(trace.table())

%% md
The ARP broadcast went out of every port except the one it came in on (here only `veth-blue`),
and up to `br0` itself, the host's own interface on the bridge; the answer and the echo request
went only to the port behind which the bridge had learned the destination MAC. No line shows a
change in the IP header: bridging is layer 2 and leaves the TTL at 64. The learned entries are
the ones without `permanent` (those are the ports' own MACs):

%% code
print(show.bridge_fdb(host))

%% md
## A router joins subnets

Two subnets need a router: a namespace with one address in each and IP forwarding switched on.
The hosts get a *default route* via the router's address. When the router forwards a packet it
lowers the TTL by one; that is how you can count routers from a packet's header.

%% code
net = Network()
for name in ("red", "blue", "router"):
    net.add_netns(name)
net.veth("red", "eth0", "router", "to-red")
net.veth("blue", "eth0", "router", "to-blue")
router = net.netns("router")
router.addr_add("to-red", "10.1.0.1/24")
router.addr_add("to-blue", "10.2.0.1/24")
for name, addr, gw in (("red", "10.1.0.2/24", "10.1.0.1"), ("blue", "10.2.0.2/24", "10.2.0.1")):
    net.netns(name).addr_add("eth0", addr)
    net.netns(name).route_add("default", via=gw)
print("forwarding off:", net.send("red", "10.2.0.2", "icmp").outcome)
router.set_sysctl("net.ipv4.ip_forward", 1)
trace = net.send("red", "10.2.0.2", "icmp")
print("forwarding on: ", trace.outcome)
for hop in trace.request:
    print(hop.summary())

%% md
With `net.ipv4.ip_forward` at 0, the router treats a packet for someone else as not its business
and drops it. With 1, the echo request arrives with TTL 64 and leaves with TTL 63. Each hop also
records *why* the kernel did what it did. Here is the router's reasoning for the request:

%% code
for line in trace.where("router/to-red", "rx", role="request")[0].decisions:
    print(line)

%% md
## Netfilter: filtering and rewriting

Netfilter runs rule chains at fixed points (hooks) of the packet's path: `PREROUTING` on arrival,
`FORWARD` for packets passing through, `POSTROUTING` just before leaving. The `filter` table
decides whether a packet lives; the `nat` table rewrites addresses on a connection's first packet,
and {term}`conntrack` applies the same rewrite to every later packet and undoes it on replies.
First a rule that drops forwarded TCP to port 80:

%% code
blue = net.netns("blue")
blue.listen("tcp", 80)
router.netfilter.append("filter", "FORWARD", "-p tcp --dport 80 -j DROP")
trace = net.send("red", "10.2.0.2", "tcp", 80)
print(trace.outcome)
print(trace.drops[-1].where, trace.drops[-1].decisions[-2:])

%% md
Now replace it with a source NAT rule: packets from `10.1.0.0/24` that leave through `to-blue`
take the router's own address on that interface ({term}`MASQUERADE`).

%% code
router.netfilter.flush("filter", "FORWARD")
router.netfilter.append("nat", "POSTROUTING", "-s 10.1.0.0/24 -o to-blue -j MASQUERADE")
trace = net.send("red", "10.2.0.2", "tcp", 80)
for hop in trace.hops:
    if not hop.is_arp:
        print(hop.summary())
print(show.conntrack_list(router))

%% md
`blue` saw the SYN come from `10.2.0.1`, the router, and answered there. The router's conntrack
entry holds both directions: the original tuple (`src=10.1.0.2`) and the reply tuple it expects
(`dst=10.2.0.1`). When the SYN-ACK arrived, conntrack matched it to the reply tuple and rewrote
its destination back to `10.1.0.2`. Chapters 7 and 8 depend on exactly this.

## What changed at each hop, and why

| Part | Changes | Never changes |
|---|---|---|
| veth pair | nothing: the frame leaves the peer as it entered | MACs, IP header |
| bridge | nothing in the frame; learns source MACs into its FDB | TTL, addresses |
| router (IP forwarding) | TTL minus 1, new source and destination MACs | IP addresses (without NAT) |
| NAT rule + conntrack | source or destination address and port | TTL beyond the router's decrement |

## Try it yourself

1. Add a third namespace `green` to the bridge example with address `10.0.0.4/24`, ping it from
   `red`, and count how many lines of the trace are the ARP broadcast.
2. In the router example, set `red`'s default route to a wrong gateway (`10.1.0.9`) and send a
   ping. What does the trace show, and why does the echo request never reach the wire?

:::{dropdown} Solutions
1. The broadcast is flooded to every port but the one it came in on, and also up to `br0`, so
   it appears on `red/eth0 tx`, `host/veth-red rx`, then `tx` on `veth-blue` and `veth-green`,
   `rx` on `br0`, and `rx` in `blue` and `green`: seven lines, two more (the new port's `tx`
   and the new namespace's `rx`) than the five with two pods.
2. Nobody owns `10.1.0.9`, so `red`'s three ARP requests go unanswered. The echo request waits
   in the neighbour entry's queue and never reaches the wire; when the entry fails, `red`'s own
   kernel reports "destination host unreachable" (ICMP type 3, code 1) to the pinging socket,
   which is the last line of `trace.table()` and `trace.outcome`.
:::

**Predict the next header.** In the last trace, what source address does `blue` see on the
SYN, and what destination does the SYN-ACK have when `red` receives it? Decide, then open the
emulator's answer.

%% code hide-output
syn = trace.where("blue/eth0", "rx", role="request")[0]
synack = trace.where("red/eth0", "rx", role="reply")[0]
print("blue sees the SYN from     ", syn.ip.src)
print("red gets the SYN-ACK sent to", synack.ip.dst)

%% md
## On a real machine

The same toolbox exists as commands (run as root, in a scratch VM):
`ip netns add red`, `ip link add eth0 netns red type veth peer name veth-red`,
`ip link add br0 type bridge`, `ip link set veth-red master br0`, `ip -n red addr add 10.0.0.2/24 dev eth0`,
`ip -n red route`, `ip -n red neigh`, `bridge fdb show br br0`, `sysctl -w net.ipv4.ip_forward=1`,
`iptables -t nat -A POSTROUTING -s 10.1.0.0/24 -o to-blue -j MASQUERADE`, `conntrack -L`.
The appendix {doc}`../book/appendix/real-cluster` lists them for a cluster node.

## Further reading

- `ip-netns(8)`, `ip-route(8)`, `bridge(8)` and `iptables-extensions(8)` man pages.
- The kernel documentation on IP sysctls (`ip_forward`, `ip_default_ttl`): {ref}`ref-l`.
'''

CHAPTERS["02-containers-in-a-pod"] = r'''
%% md
# Containers in one pod

*Scenario 1 of six.* A pod often runs more than one container: an application and a sidecar
that proxies, logs or caches for it. How does a request get from one to the other? The answer
is short, and it sets up everything that follows: the containers of a pod share one
{term}`network namespace`, so they talk over its loopback device and never touch a veth.

**What you will learn**

- what the {term}`pod sandbox` is, and why there is one veth pair per pod, not per container;
- how a connection to `127.0.0.1` is routed and delivered inside one namespace;
- why two containers of one pod cannot listen on the same port.

%% md
## The simple story

When the kubelet starts a pod, it first asks the container runtime for a *sandbox*: a new
network namespace held open by a tiny `pause` container. The CNI plugin runs once for that
sandbox and wires it to the node. Then the pod's application containers are started *inside the
same namespace*. They share its `lo`, its `eth0`, its IP address and its port space
({ref}`ref-f`, {ref}`ref-cni`).

The reference cluster used throughout the book has a pod `pod-a` with two containers, `app` and
`sidecar`, on `node1`; `pod-b` on `node1` with one container; and `pod-c` on `node2`.

%% code
import netsim

cluster = netsim.reference_cluster()
for pod in cluster.pods.values():
    print(f"{pod.name:6} on {pod.node}: containers {pod.containers}, ip {pod.ip}, host veth {pod.host_veth}")

%% md
Each pod has exactly one host-side veth, whatever its number of containers. The pod's namespace
holds only two devices, `lo` and `eth0`:

%% code
print(cluster.show("pod-a", "ip addr"))

%% md
## The walk

`app` connects to its sidecar on `127.0.0.1:8080` (the same TCP SYN and SYN-ACK the reference
captures used).

%% code
trace = netsim.scenarios.container_to_container(cluster=cluster)
print(trace.table())
print(trace.outcome)

%% md
The same trace in the hop stepper: the buttons (or a click on a row) move from hop to hop, the
diagram lights up the device that has the frame, and the panel lists every header field with
what changed since the previous hop. At a few hops it first asks you to predict a field.

%% code
from netsim import views

views.Stepper(trace, cluster, predict=True)

%% md
Two lines in total: the SYN and the SYN-ACK, both seen on `pod-a/lo`. Nothing appears on
`pod-a/eth0`, on the node, or anywhere else. (`tcpdump` on a real `lo` also shows each frame
once: the capture socket is offered it on the way out and on the way back in, and libpcap drops
the outgoing copy on loopback ({ref}`ref-kernel`).)

## What the kernel decided

%% code
for hop in trace.hops:
    print(f"{hop.where} {hop.direction} ({hop.role}):")
    for line in hop.decisions:
        print("   ", line)

%% md
The route lookup for `127.0.0.1` hits the *local* routing table, where the kernel keeps one
entry for every address the namespace owns, including `local 127.0.0.0/8 dev lo`. A local route
means "this packet is for me": the packet goes to the loopback device and straight back up the
same stack, to the socket listening on port 8080. There is no ARP (loopback has no neighbours),
no bridge, no NAT, and the TTL stays at the 64 it was sent with:

%% code
print({hop.ip.ttl for hop in trace.hops}, {hop.frame.src for hop in trace.hops})

%% md
The same holds if `app` connects to its own pod IP instead of `127.0.0.1`: the pod's address is
also in the local table, so that traffic too goes through `lo` and never reaches `eth0`.

%% code
print(cluster.show("pod-a", "ip route get 10.244.0.2"))

%% md
## Where the article differs

:::{admonition} The article's picture: a veth pair per container
:class: warning
The seed article ({ref}`ref-article`, scenario 1) draws a `Veth0` inside every container, each
paired with a `Vethx`/`Vethy` in a "pod shared network stack", and has the request travel
container → veth → shared stack → veth → container. That is not how pods are wired. CNI ADD runs
**once per pod sandbox**, creating one veth pair whose pod end is `eth0` in the shared namespace
({ref}`ref-cni`); containers are not given devices of their own. Container-to-container traffic
crosses no veth at all: it is loopback inside one namespace, as the trace above shows.
The article's closing remark, that this is "localhost traffic", is the right one.
:::

## Port clashes

Sharing a namespace means sharing its ports. A listening socket is a property of the namespace,
not of the container, so `pod-a` has one socket per protocol and port:

%% code
print(sorted(cluster.netns("pod-a").listeners))

%% md
If `sidecar` also tried to listen on TCP 8080, its `bind()` would fail with "address already in
use", exactly as two processes on one machine would. Kubernetes does not prevent it (declared
`containerPort`s do not reserve anything): the clash shows only at run time, when the second
container fails to start listening. Two containers of one pod must agree on their ports.

## Try it yourself

1. Send UDP instead of TCP: `netsim.scenarios.container_to_container(proto="udp")`. Which device
   carries it, and how many hops are there?
2. Build a pod with three containers with `cluster.add_pod("pod-x", containers=("a", "b", "c"))`
   and count the veths on `node1` before and after.

:::{dropdown} Solutions
1. Still only `pod-a/lo`: the datagram to `127.0.0.1:9090` and its answer, two hops. The
   protocol does not change the route; the destination address does.
2. One more veth on `node1` (`cluster.show("node1", "ip addr")`), whatever the number of
   containers: CNI ADD runs once for the pod's sandbox.
:::

**Predict.** `app` sends to `pod-a/sidecar` by the pod's own address `10.244.0.2` rather than
`127.0.0.1`. On which device will the SYN be seen? Decide, then reveal the emulator's answer.

%% code hide-output
trace = cluster.send("pod-a", "10.244.0.2:8080")
print(trace.path("request"), trace.outcome)

%% md
## On a real cluster

Find the pod's network namespace from its sandbox, then look inside it from the node:
`crictl inspectp <pod-id>` shows the namespace path (containerd keeps it as
`/var/run/netns/cni-<uuid>`); `ip netns exec cni-<uuid> ip addr` lists `lo` and `eth0` only;
`ip netns exec cni-<uuid> tcpdump -i lo -nn port 8080` shows the loopback traffic. `ss -ltnp` in
that namespace shows every container's listening sockets together.

## Further reading

- The CNI specification and the bridge plugin: {ref}`ref-cni`.
- Pod networking facts used here: {ref}`ref-f` and {doc}`../book/references`.
'''

CHAPTERS["03-pod-to-pod-same-node"] = r'''
%% md
# Pod to pod on one node

*Scenario 2 of six.* `pod-a` (10.244.0.2) opens a TCP connection to `pod-b` (10.244.0.3). Both
run on `node1`. Is the node's IP stack involved? Does anything route the packet?

**What you will learn**

- how the pods of a node are joined by the `cni0` {term}`bridge` and their {term}`veth pair`s;
- why the first packet is an ARP broadcast, and why it comes back to its sender ({term}`hairpin mode`);
- how the bridge learns where each pod is (its {term}`FDB`);
- why the TTL does not change.

%% md
## The simple story

Each pod's `eth0` is one end of a veth pair; the other end, `veth` plus eight hex characters,
is a port of the node's bridge `cni0`. The pod's routing table has a connected route for its
node's subnet, so `pod-b` is "on the same wire" from `pod-a`'s point of view: `pod-a` asks for
`pod-b`'s MAC with ARP and sends the frame straight to it. The bridge passes it from one port to
the other. Nothing is routed.

%% code
import netsim

cluster = netsim.reference_cluster()
print(cluster.show("pod-a", "ip route"))
print(cluster.show("pod-a", "ip route get 10.244.0.3"))

%% md
The lookup picks `10.244.0.0/24 dev eth0` (a /24 beats the /16 and the default route): no
gateway, so the next hop is `pod-b` itself.

## The walk

%% code
trace = netsim.scenarios.pod_to_pod_same_node(cluster=cluster)
print(trace.table())
print(trace.outcome)

%% md
Step through it: each ARP copy, the frame on each veth, and the bridge's decisions. The stepper stops at a few hops and asks you to predict a field first.

%% code
from netsim import views

views.Stepper(trace, cluster, predict=True)

%% md
## What changed at each hop, and why

**The ARP exchange.** `pod-a` had no neighbour entry for `10.244.0.3`, so it broadcast
`who-has 10.244.0.3`. On `cni0` a broadcast is flooded to every port, and the host side sees it
on `cni0` itself. Flannel's CNI configuration turns on `hairpinMode` for every port
({ref}`ref-fc`), which lets the bridge send a frame back out of the port it came in on; that is
why the request also leaves `veth…` towards `pod-a` and arrives at `pod-a/eth0` again. A real
kernel shows the same reflection ({ref}`ref-kernel`). `pod-a` ignores its own question:

%% code
arp = [hop for hop in trace.arp if hop.where == "pod-a/eth0" and hop.direction == "rx"]
for hop in arp:
    print(hop.frame.summary(), "->", hop.decisions)

%% md
**The bridge's FDB.** The bridge learned `pod-a`'s MAC from the broadcast and `pod-b`'s from the
reply, so the SYN went to one port only. The learned entries are the ones without `permanent`:

%% code
print(cluster.show("node1", "bridge fdb"))

%% md
**The headers.** From `pod-a/eth0` to `pod-b/eth0` the SYN keeps its MACs (the pods' own), its
addresses and its TTL: a bridge forwards frames, it does not route packets.

%% code
for hop in trace.request:
    print(f"{hop.where:22} {hop.direction} {hop.frame.src} > {hop.frame.dst} ttl {hop.ip.ttl}")

%% md
**Netfilter still sees it.** With `br_netfilter` loaded (Flannel requires it in iptables mode
{ref}`ref-f`), bridged IPv4 frames pass through the iptables hooks. The node's conntrack
therefore holds an entry for this bridged connection, with no NAT: Flannel's
`FLANNEL-POSTRTG` rule 2 returns early for pod-to-pod traffic.

%% code
print(cluster.show("node1", "conntrack -L"))

%% md
## Where the article differs

:::{admonition} The article's picture: eight veths between two pods
:class: warning
The seed article ({ref}`ref-article`, scenario 2) traces the request through "Veth0, Vetha,
Vethb, Vethc, Vethd, Vethe, Vethf" and back to a veth inside the target container. There are
exactly two veth pairs on this path, one per pod: `pod-a/eth0` ↔ its host end, and `pod-b`'s host
end ↔ `pod-b/eth0`. The trace above has four capture points for the SYN and no others.
:::

## Try it yourself

1. Send the same request a second time without flushing caches:
   `cluster.send("pod-a", "pod-b", proto="tcp", cold=False)`. How many ARP lines are left?
2. Predict which capture points see the ARP *reply*, and check with `trace.arp`.

:::{dropdown} Solutions
1. None: `pod-a` still has `pod-b` in its neighbour table and the bridge still knows both MACs,
   so the trace is the SYN and SYN-ACK alone, on four capture points each.
2. The reply is unicast to `pod-a`'s MAC, which the bridge has learned, so it goes
   `pod-b/eth0 tx` → `veth (pod-b) rx` → `veth (pod-a) tx` → `pod-a/eth0 rx`, and is not flooded.
:::

**Predict the next header.** The SYN-ACK leaves `pod-b/eth0`. What TTL does `pod-a` see on it,
and whose MAC is its source? Decide, then reveal.

%% code hide-output
hop = trace.where("pod-a/eth0", "rx", role="reply")[0]
print("ttl", hop.ip.ttl, "source MAC", hop.frame.src, "= pod-b's eth0:",
      hop.frame.src == cluster.netns("pod-b").device("eth0").mac)

%% md
## On a real cluster

On the node: `bridge fdb show br cni0` (learned pod MACs), `bridge link` (look for `hairpin on`),
`ip -d link show cni0`. Capture both ends at once with
`tcpdump -i cni0 -e -nn arp` and, inside each pod namespace, `tcpdump -i eth0 -e -nn`.
`conntrack -L -s 10.244.0.2` shows the bridged connection.

## Further reading

- The bridge plugin's hairpin and gateway options: {ref}`ref-cni`; Flannel's CNI defaults: {ref}`ref-fc`.
- `bridge(8)`; Flannel's `br_netfilter` requirement ({ref}`ref-f`, `main.go`) and what a real
  kernel did with bridged pod traffic ({ref}`ref-kernel`).
'''

CHAPTERS["04-host-to-pod"] = r'''
%% md
# Host to pod

*Scenario 3 of six.* The kubelet on `node1` probes a pod's health endpoint; a monitoring agent on
the node scrapes it. Which device does the node send through, and which source address does the
pod see?

**What you will learn**

- which route a node uses to reach its own pods, and where the source address `10.244.0.1` comes from;
- that `flannel.1` is not on this path, and what its own address is for;
- that a locally generated packet starts at TTL 64 and is not decremented by its own host.

%% md
## The simple story

When the CNI bridge plugin set up `cni0` as the pods' gateway, it gave the bridge the subnet's
first address, `10.244.0.1/24`, and the kernel added the connected route
`10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1` ({ref}`ref-cni`). That route is
how the node reaches its own pods. `flannel.1` carries only routes to *other* nodes' subnets.

%% code
import netsim

cluster = netsim.reference_cluster()
print(cluster.show("node1", "ip route"))
print(cluster.show("node1", "ip route get 10.244.0.2"))

%% md
`ip route get` answers with the device and the `src` hint of the chosen route: a socket that
connects without binding an address takes `10.244.0.1` as its source before the first packet is
built.

## The walk

%% code
trace = netsim.scenarios.host_to_pod(cluster=cluster)
print(trace.table())
print(trace.outcome)

%% md
In the stepper, watch the source address and the first hop: the frame leaves through `cni0`, not `flannel.1`.

%% code
from netsim import views

views.Stepper(trace, cluster, predict=True)

%% md
## What changed at each hop, and why

The node's kernel built the SYN with source `10.244.0.1` and TTL 64, looked up `10.244.0.2`
(found on `cni0`), broadcast an ARP request on the bridge, and sent the frame out of `cni0`; the
bridge delivered it through `pod-a`'s veth. No router is crossed, so the TTL is still 64 when
`pod-a` receives it. The reply goes to `10.244.0.1`, on `pod-a`'s own subnet, and is delivered to
the node's socket through `cni0`.

%% code
for hop in trace.request:
    print(f"{hop.where:22} {hop.direction} {hop.ip.src} > {hop.ip.dst} ttl {hop.ip.ttl}")
print("flannel.1 in the trace:", any(hop.device == "flannel.1" for hop in trace.hops))

%% md
No NAT either: the SYN's first pass through `POSTROUTING` is let go by `FLANNEL-POSTRTG` rule 2,
which returns for sources in the node's pod subnet going to the pod network:

%% code
for line in trace.where("node1/cni0", "tx", role="request")[0].decisions:
    print(line)

%% md
## The node to a pod on *another* node

`flannel.1` does have an address, `10.244.0.0/32`. It matters when the node talks to a pod on
another node: the route to `10.244.1.0/24` goes out of `flannel.1` and has no `src`, so the
kernel picks the address of the outgoing device. Flannel gives `flannel.1` this /32 precisely so
that host-to-remote-pod traffic has a source in the pod network ({ref}`ref-f`).

%% code
print(cluster.show("node1", "ip route get 10.244.1.2"))
remote = netsim.scenarios.host_to_remote_pod(cluster=cluster)
first = remote.where("node1/flannel.1", "tx", role="request")[0]
print(first.summary())

%% md
## Where the article differs

:::{admonition} The article's route: host → flannel.1 → cni0
:class: warning
The seed article ({ref}`ref-article`, scenario 3) sends host-to-pod traffic through
"Flannel.1 (virtual bridge)" and then into `cni0`, with a routing rule "Pod CIDR → Flannel.1".
On a Flannel node the local pod subnet is a connected route on `cni0`, the source is `cni0`'s
`10.244.0.1`, and `flannel.1` never sees the packet (the trace above has no `flannel.1` hop).
`flannel.1` is not a bridge either: it is a VXLAN device with routes only to *remote* subnets
(chapter {doc}`05-vxlan-across-nodes`).
:::

## Try it yourself

1. Which source address would the node use for a pod on `node2` under the `host-gw` backend?
   Check with `netsim.reference_cluster("host-gw").show("node1", "ip route get 10.244.1.2")`.
2. Ping `pod-b` from `node1` and confirm that the ARP request is flooded to both pods.

:::{dropdown} Solutions
1. `192.168.50.11`, the node's `eth0` address: under `host-gw` the route is
   `10.244.1.0/24 via 192.168.50.12 dev eth0`, and there is no `flannel.1`.
2. `cluster.send("node1", "pod-b")`: the request appears on `tx` of both host veths and on
   `rx` of both pods' `eth0`; only `pod-b` answers.
:::

**Predict the next header.** `pod-a` answers the SYN. What are the source and destination of the
SYN-ACK when the node receives it on `cni0`, and what is its TTL? Decide, then reveal.

%% code hide-output
hop = trace.where("node1/cni0", "rx", role="reply")[0]
print(hop.ip.src, ">", hop.ip.dst, "ttl", hop.ip.ttl)

%% md
## On a real cluster

`ip route get <pod IP>` on the node; `ip addr show cni0` and `ip addr show flannel.1`;
`tcpdump -i cni0 -nn host <pod IP>` while you `curl http://<pod IP>:<port>/` from the node.

## Further reading

- The bridge plugin's `isGateway` address and route: {ref}`ref-cni`.
- Why `flannel.1` carries a /32: {ref}`ref-f` (`configureDeviceIPv4IPv6`).
'''

CHAPTERS["05-vxlan-across-nodes"] = r'''
%% md
# Pod to pod across nodes with VXLAN

*Scenario 4 of six.* `pod-a` on `node1` connects to `pod-c` (10.244.1.2) on `node2`. The nodes
share a plain layer-2 network, `192.168.50.0/24`, which knows nothing of pod addresses. How does
the packet cross it?

**What you will learn**

- the three entries `flanneld` programs for every other node: a route, a permanent neighbour
  entry and a permanent FDB entry;
- how the kernel's `flannel.1` device wraps the frame in UDP to port 8472 ({term}`VXLAN`);
- why no ARP ever crosses the tunnel;
- where the MTU of 1450 comes from, and what the 50 bytes are;
- how the TTL falls from 64 to 62, and why the outer header has its own TTL of 64.

%% md
## The simple story

Flannel's default backend is VXLAN. Each node has a VXLAN device `flannel.1` (VNI 1) and a
lease for its pod subnet. For every other node, `flanneld` adds, in this order, a neighbour
entry, an FDB entry and a route ({ref}`ref-f`):

%% code
import netsim

cluster = netsim.reference_cluster()
for view in ("ip route", "ip neigh", "bridge fdb"):
    print(f"$ {view}")
    print(cluster.show("node1", view))

%% md
Read them as a chain. The route sends `10.244.1.0/24` to next hop `10.244.1.0` on `flannel.1`
(`onlink`: the kernel need not find the gateway on a subnet). The neighbour entry gives that next
hop a MAC, the {term}`VTEP` MAC of `node2`'s `flannel.1`, and it is `PERMANENT`, so the kernel
never asks for it. The FDB entry on `flannel.1` says where to send frames for that MAC: UDP to
`192.168.50.12`, `node2`'s own address. `flanneld` itself stays out of the data path; it only
writes these entries. The kernel does the rest.

## The walk

%% code
trace = netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)
print(trace.outcome)
for hop in trace.request:
    print(hop.summary())

%% md
Step through the tunnel: at `node1/flannel.1` the inner frame appears, at `node1/eth0` the outer headers are added, and at `node2/flannel.1` they are gone again. Fields that changed since the previous hop are marked.

%% code
from netsim import views

views.Stepper(trace, cluster, predict=True)

%% md
## What changed at each hop, and why

**In `pod-a`.** The destination is outside `10.244.0.0/24`, so the route
`10.244.0.0/16 via 10.244.0.1` applies: the frame goes to `cni0`'s MAC (after an ARP for the
gateway), with `pod-a`'s addresses and TTL 64.

**In `node1`'s IP stack.** The frame is for the bridge's own MAC, so it goes up to `node1`'s IP
layer, which routes it. Here are `node1`'s decisions, from arrival on `cni0` to encapsulation:

%% code
for where, direction in (("node1/cni0", "rx"), ("node1/flannel.1", "tx")):
    print(f"{where} {direction}:")
    for line in trace.where(where, direction, role="request")[0].decisions:
        print("   ", line)

%% md
The TTL drops from 64 to 63 when `node1` forwards. The neighbour lookup for `10.244.1.0` hits the
permanent entry: no ARP. The inner frame gets `node1`'s VTEP MAC as source and `node2`'s as
destination; the FDB entry turns that destination into `192.168.50.12`; the kernel prepends the
outer headers and routes the result out of `eth0` like any packet `node1` sends itself (the only
ARP on the way is for `192.168.50.12`, on the underlay).

**The outer packet.** Here is the frame as it crosses the underlay switch, outer headers first:

%% code
wire = trace.where("node1/eth0", "tx", role="request")[0]
outer, udp = wire.ip, wire.ip.payload
vxlan = udp.payload
inner = vxlan.payload
print(f"outer  {wire.frame.src} > {wire.frame.dst}")
print(f"outer  {outer.src} > {outer.dst} ttl {outer.ttl} df {outer.df}")
print(f"udp    {udp.sport} > {udp.dport}   (source port in 32768-60999: {32768 <= udp.sport <= 60999})")
print(f"udp    checksum {wire.data[40:42].hex()} (bytes 6-7 of the outer UDP header)")
print(f"vxlan  flags {vxlan.flags:#04x} vni {vxlan.vni}")
print(f"inner  {inner.src} > {inner.dst}")
print(f"inner  {inner.ip.src} > {inner.ip.dst} ttl {inner.ip.ttl}")

%% md
- Destination port **8472**: Flannel sets no port, so the kernel uses its own default, 8472,
  not IANA's 4789 ({ref}`ref-l`, {ref}`ref-f`).
- Source port: a hash of the inner flow, mapped into the local port range 32768–60999, so
  different flows spread over the underlay's paths ({ref}`ref-l`).
- Outer TTL 64 and DF clear: `flannel.1` is created with `ttl auto` and no DF setting, so the
  outer header starts fresh, whatever the inner TTL ({ref}`ref-kernel`).
- Outer UDP checksum filled in, not zero: the netlink library asks for a zero checksum only when
  told to, Flannel never tells it, and kernels since about 4.6 default to computing it
  ({ref}`ref-nl`, {ref}`ref-l`). Much older kernels sent zero.
- VXLAN flags `0x08` (the "VNI is valid" bit) and VNI 1.

**In `node2`.** The kernel's UDP socket on port 8472 checks the VNI, strips the outer headers and
hands the inner frame to `node2`'s `flannel.1`. It is addressed to that device's MAC, so it goes
up to `node2`'s IP stack, which routes it to `cni0` (TTL 63 → 62); `cni0` ARPs for `pod-c` and
delivers it. Three TTLs tell the story:

%% code
for where in ("pod-a/eth0", "node1/flannel.1", "node2/flannel.1", "pod-c/eth0"):
    hop = [h for h in trace.request if h.where == where][0]
    print(f"{where:16} inner ttl {hop.inner_ip.ttl}")

%% md
**No ARP across the tunnel.** Every ARP frame in the trace, by capture point:

%% code
print(sorted({hop.where for hop in trace.arp}))

%% md
Not one on `flannel.1`: the neighbour and FDB entries are permanent and learning is off on the
device, so there is nothing to ask.

## The MTU: why 1450, and why 50 bytes

VXLAN adds an outer IPv4 header (20 bytes), a UDP header (8), the VXLAN header (8) and the inner
Ethernet header (14): 50 bytes. A 1500-byte underlay therefore leaves 1450 for the inner IP
packet, and Flannel writes `FLANNEL_MTU=1450` to `/run/flannel/subnet.env`, which the CNI plugin
uses for `cni0`, the veths and the pods' `eth0` ({ref}`ref-f`). The bytes agree:

%% code
on_wire = len(wire.data) - 14            # outer IP packet, without the outer Ethernet header
print("outer IP packet:", on_wire, "bytes; inner IP packet:", inner.ip.length(), "bytes; overhead:",
      on_wire - inner.ip.length())
print(cluster.show("node1", "subnet.env"))

%% md
## Where the article differs

:::{admonition} The article: "flanneld intercepts and encapsulates"
:class: warning
The seed article ({ref}`ref-article`, scenario 4) has `flanneld` intercept packets leaving
`Flannel.1`, look up a table and encapsulate them. With the VXLAN backend, `flanneld` is control
plane only: it programs one route, one permanent neighbour entry and one permanent FDB entry per
remote node, and the kernel's VXLAN driver encapsulates and decapsulates. No userspace process
touches the packet. The article's picture of `cni0` handing the packet to `flannel.1` through
more veths (`Vethd → Vethe`) is also wrong: `node1`'s IP stack routes it from `cni0` to
`flannel.1`, and the nodes' own NICs, which the article labels `Vethf` and `Vethg`, are not veths
either. The "distributed routing table (backed by etcd)" is not what a kube-flannel install uses:
with `--kube-subnet-mgr` each node's subnet is its `node.spec.podCIDR`, read from the Kubernetes
API, and each node's kernel holds the table as the entries above ({ref}`ref-f`). The article
names no port; on Linux it is **8472**, not IANA's 4789. The one backend where `flanneld` does
carry packets is `udp`, in chapter {doc}`06-backends`.
:::

## Try it yourself

1. Send UDP (`proto="udp"`) and ICMP instead of TCP. Does the outer destination port change?
2. Set the pod's `eth0` MTU to 1500 with `cluster.set_mtu("pod-a", "eth0", 1500)` and send a
   1460-byte UDP payload to `pod-c`. Where does it stop, and what does `pod-a` receive?

:::{dropdown} Solutions
1. No: the destination port is the device's, 8472, for every inner protocol; only the outer
   source port (the flow hash) differs.
2. It never reaches `node1`'s IP stack. The 1488-byte packet (1460 + 8 + 20) fits `pod-a`'s
   `eth0`, but the host end of the veth pair still has MTU 1450, and a veth drops what exceeds
   its peer's MTU (`is_skb_forwardable`): the drop shows only in the host veth's `rx_dropped`
   counter, and `pod-a` hears nothing back. Chapter {doc}`09-troubleshooting` has more of this.
:::

**Predict the next header.** The SYN-ACK travels back from `node2`. Predict the outer source and
destination addresses, the outer destination port, and the inner TTL when it reaches `pod-a`.

%% code hide-output
back = trace.where("node2/eth0", "tx", role="reply")[0]
print(back.ip.src, ">", back.ip.dst, "dport", back.ip.payload.dport)
print("inner ttl at pod-a:", trace.where("pod-a/eth0", "rx", role="reply")[0].ip.ttl)

%% md
## On a real cluster

`ip -d link show flannel.1` (look for `vxlan id 1 local <node IP> dev eth0 dstport 8472 nolearning`),
`ip neigh show dev flannel.1`, `bridge fdb show dev flannel.1`, `ip route | grep flannel.1`,
`cat /run/flannel/subnet.env`. On the underlay: `tcpdump -i eth0 -nn -T vxlan udp port 8472`
decodes the inner packets. See {doc}`../book/appendix/real-cluster`.

## Further reading

- Flannel's VXLAN backend (`pkg/backend/vxlan`): {ref}`ref-f`; the netlink attributes it sends: {ref}`ref-nl`.
- The kernel VXLAN driver (`vxlan_core.c`, `udp_flow_src_port`): {ref}`ref-l`.
- RFC 7348, *Virtual eXtensible Local Area Network (VXLAN)*.
'''

CHAPTERS["06-backends"] = r'''
%% md
# Flannel's backends compared: vxlan, host-gw and udp

The same request from `pod-a` to `pod-c` can cross the underlay in three ways, depending on the
backend in Flannel's `net-conf.json`. This chapter sends it through each and compares what is on
the wire, what `flanneld` programs, and who does the work.

**What you will learn**

- what {term}`host-gw` programs (one plain route per node) and what it requires of the network;
- how the debug-only `udp` backend works: a TUN device `flannel0` and `flanneld` itself in the
  data path, on port 8285;
- how many times the TTL drops under each backend, and each backend's MTU;
- where the article's "flanneld encapsulates" is true.

%% code
import netsim

clusters = {backend: netsim.reference_cluster(backend) for backend in ("vxlan", "host-gw", "udp")}
traces = {backend: c.send("pod-a", "pod-c", proto="tcp") for backend, c in clusters.items()}
for backend, c in clusters.items():
    print(f"--- {backend}: route to node2's pods, and FLANNEL_MTU")
    print("\n".join(line for line in c.show("node1", "ip route").splitlines() if "10.244.1" in line or "flannel0" in line))
    print([line for line in c.show("node1", "subnet.env").splitlines() if "MTU" in line][0])

%% md
- **vxlan**: a route via `10.244.1.0` on `flannel.1`, plus the neighbour and FDB entries of
  chapter {doc}`05-vxlan-across-nodes`; MTU 1500 − 50.
- **host-gw**: `10.244.1.0/24 via 192.168.50.12 dev eth0`. `node2` is simply the router for its
  pods. No tunnel device, no overhead: MTU 1500 ({ref}`ref-f`).
- **udp**: one route for the whole pod network, `10.244.0.0/16 dev flannel0`, a TUN device;
  MTU 1500 − 28 (outer IP and UDP, no inner Ethernet) = 1472 ({ref}`ref-f`).

## The walk, three times

The request's capture points on each backend, leaving out ARP:

%% code
for backend, trace in traces.items():
    print(f"--- {backend}: {trace.outcome}")
    for hop in trace.request:
        inner = hop.inner_ip
        outer = f"  outer {hop.ip.src} > {hop.ip.dst} udp/{hop.ip.payload.dport}" if hop.encapsulated else ""
        print(f"{hop.where:22} {hop.direction}  inner ttl {inner.ttl}{outer}")

%% md
Side by side, `vxlan` against `host-gw`:

%% code
from netsim import views

views.compare(traces["vxlan"], traces["host-gw"], labels=("vxlan", "host-gw"))

%% md
## What changed, and who changed it

**host-gw** puts the pod's packet on the underlay as it is: source `10.244.0.2`, destination
`10.244.1.2`, with `node1`'s and `node2`'s `eth0` MACs. Two kernels forward it, so the TTL goes
64 → 63 → 62, as with VXLAN. The price is that every node must be directly reachable at layer 2
from every other, because a route's gateway must be on-link; the backend refuses to start behind
NAT ({ref}`ref-f`). The switch and any firewall between nodes also see pod addresses.

**udp** sends the packet into `flannel0`, a TUN device: what the kernel writes to it, `flanneld`
reads from a file descriptor. `flanneld`'s proxy looks the destination up in its own table,
lowers the TTL, and sends the bare IP packet (no inner Ethernet) as the payload of a UDP datagram
to the peer's port 8285; the peer's `flanneld` lowers the TTL again and writes it to its TUN
({ref}`ref-f`). Two kernel forwards plus two userspace decrements: the packet arrives with TTL 60.
Every packet crosses into userspace and back twice, which is why the Flannel docs call this
backend "for debugging only".

%% code
for backend, trace in traces.items():
    arrived = trace.where("pod-c/eth0", "rx", role="request")[0]
    wire = trace.where("node1/eth0", "tx", role="request")[0]
    udp = wire.ip.payload if wire.encapsulated else None
    print(f"{backend:8} TTL at pod-c {arrived.ip.ttl}; on the underlay: "
          f"{wire.ip.src} > {wire.ip.dst}" + (f", UDP port {udp.dport}" if udp else ", not encapsulated"))

%% md
## Where the article's picture fits

:::{admonition} "flanneld encapsulates" describes the udp backend
:class: note
Chapter {doc}`05-vxlan-across-nodes` showed that with `vxlan` the kernel, not `flanneld`,
encapsulates ({ref}`ref-article`, scenario 4). The seed article's picture of a daemon that
intercepts and wraps cross-node packets does fit the `udp` backend above, with two differences:
its device is `flannel0`, not `flannel.1`, and it carries the bare IP packet, with no inner
Ethernet header, to port 8285. That backend is still shipped, but amd64-only and documented as
for debugging only. With `host-gw` nothing is encapsulated at all.
:::

## Try it yourself

1. Under `host-gw`, send from `node1` to `pod-c` and compare the source address and ICMP
   identifier that `pod-c` sees with what `node1` sent. Which rule changed what?
2. Compare the number of capture points per request under the three backends (`len(trace.request)`).

:::{dropdown} Solutions
1. The address stays `192.168.50.11` but the identifier changes (try `clusters["host-gw"].send("node1", "pod-c")`). Flannel's
   masquerade rule 6 (`! -s 10.244.0.0/16 -d 10.244.0.0/16 -j MASQUERADE`) matches. It rewrites
   the source to the outgoing device's address, which is the same `192.168.50.11`, and
   `--random-fully` replaces the port (for a ping, the ICMP identifier). A real kernel showed the
   same ({ref}`ref-kernel`).
2. Print `{b: len(t.request) for b, t in traces.items()}`: host-gw has no tunnel device hops;
   vxlan adds `flannel.1` on both nodes; udp adds `flannel0` on both nodes.
:::

**Predict.** Under the `udp` backend, what is the outer source port of the datagram that leaves
`node1`? Decide, then reveal.

%% code hide-output
print(traces["udp"].where("node1/eth0", "tx", role="request")[0].ip.payload.sport)

%% md
## On a real cluster

`kubectl -n kube-flannel get cm kube-flannel-cfg -o yaml` shows `Backend.Type`. Then on a node:
`ip -d link show flannel.1` (vxlan), `ip route` (host-gw routes via node addresses), or
`ip link show flannel0` and `ss -ulpn | grep 8285` (udp, with `flanneld` holding the socket).

## Further reading

- Flannel's backend documentation (`Documentation/backends.md`) and code (`pkg/backend/*`): {ref}`ref-f`.
'''

CHAPTERS["07-nodeport"] = r'''
%% md
# External client to a pod: NodePort

*Scenario 5 of six.* A client outside the cluster, `ext` (203.0.113.10), connects to service
`web` through its {term}`NodePort`, `192.168.50.11:30080`. The only pod behind `web` is `pod-c`,
on the *other* node. The request has to be redirected twice (to another address, then to another
node), and the answer has to find its way back to a client that knows nothing of pods.

**What you will learn**

- how {term}`kube-proxy`'s iptables chains turn a NodePort into a pod address ({term}`DNAT`);
- why the source is rewritten too ({term}`SNAT`), to which address, and what
  {term}`externalTrafficPolicy` changes;
- how {term}`conntrack` puts both rewrites back on the reply.

%% md
## The simple story

kube-proxy writes iptables rules on every node. A packet to any local address on port 30080 is
sent through `KUBE-SERVICES` → `KUBE-NODEPORTS` → `KUBE-EXT-…` (which marks it for masquerade) →
`KUBE-SVC-…` (which picks an endpoint) → `KUBE-SEP-…` (which DNATs to it) ({ref}`ref-kp`). The
packet is then routed to the endpoint, here across `flannel.1`, and just before it leaves,
`KUBE-POSTROUTING` masquerades it because of the mark.

%% code
import netsim

cluster = netsim.reference_cluster()
rules = cluster.show("node1", "iptables-save").splitlines()
nat = rules[rules.index("*nat"):]
print("\n".join(line for line in nat if line.startswith("-A") and ("KUBE" in line.split()[1]
      or line.split()[1] in ("PREROUTING", "POSTROUTING"))))

%% md
## The walk

%% code
trace = netsim.scenarios.external_to_nodeport(cluster=cluster)
print(trace.outcome)
for hop in trace.hops:
    if not hop.is_arp and (hop.device in ("eth0", "flannel.1") or hop.netns.startswith("pod")):
        print(hop.summary())

%% md
Step through the NAT: the destination changes at `node1/eth0`'s PREROUTING, the source at its POSTROUTING, and the reply is rewritten back on the same node.

%% code
from netsim import views

views.Stepper(trace, cluster, predict=True)

%% md
## What changed at each hop, and why

**Arriving at `node1`.** The request comes in on `eth0` as `203.0.113.10 → 192.168.50.11:30080`
(TTL 63: the gateway forwarded it once). `node1`'s decisions for it:

%% code
for line in trace.where("node1/eth0", "rx", role="request")[0].decisions:
    print(line)

%% md
In `PREROUTING` the packet is marked `0x4000` and DNATed to `10.244.1.2:8080`. The route lookup
that follows sees the *new* destination and picks `flannel.1`. `KUBE-FORWARD` accepts it because
of the mark. In `POSTROUTING`, `KUBE-POSTROUTING` clears the mark and masquerades: the source
becomes the address of the outgoing device. That device is `flannel.1`, so the source is
`10.244.0.0`, its /32, and `--random-fully` picks a new source port ({ref}`ref-kp`, {ref}`ref-kernel`).
A real kernel picks that port at random, and it may lie outside the ephemeral range; `netsim`
derives it from a hash of the connection, so that the book's outputs are the same on every run.
Because MASQUERADE is terminal, `FLANNEL-POSTRTG` is never reached for this connection.

**Across the tunnel.** From here the packet travels exactly like chapter
{doc}`05-vxlan-across-nodes`'s: VXLAN to `node2`, routed to `cni0`, delivered to `pod-c`. `pod-c`
sees neither the client nor the NodePort:

%% code
seen = trace.where("pod-c/eth0", "rx", role="request")[0]
print("pod-c sees", seen.ip.src, "port", seen.ip.payload.sport, "->", seen.ip.dst, "port", seen.ip.payload.dport)

%% md
**The reply.** `pod-c` answers `10.244.0.0`, which `node2` routes back through its `flannel.1` to
`node1`. On `node1`, conntrack recognises the SYN-ACK as the reply of the entry it created for
the SYN and reverses both rewrites: the destination goes back to `203.0.113.10` and its port,
the source back to `192.168.50.11:30080`. The client sees an answer from the address it called.

%% code
for line in trace.where("node1/flannel.1", "rx", role="reply")[0].decisions:
    print(line)
print(cluster.show("node1", "conntrack -L"))

%% md
The conntrack line holds the whole story: the original direction
`src=203.0.113.10 dst=192.168.50.11 … dport=30080` and the reply direction expected from the pod,
`src=10.244.1.2 dst=10.244.0.0 sport=8080`. `node1`'s table also holds two `udp … dport=8472
[UNREPLIED]` entries: the VXLAN packets themselves are tracked, and because each direction has
its own source port, neither is ever seen as the other's reply ({ref}`ref-kernel`).

## externalTrafficPolicy: Local

With `externalTrafficPolicy: Local`, a node sends NodePort traffic only to endpoints on itself and
does not masquerade, so the pod sees the real client address. A node without a local endpoint
drops the traffic ({ref}`ref-kp`). Below, service `web-local` (NodePort 30081) is backed by
`pod-c` on `node2`:

%% code
cluster.add_service("web-local", port=81, target_port=8080, pods=["pod-c"], node_port=30081,
                    external_traffic_policy="Local")
for node in ("node1", "node2"):
    t = cluster.send("ext", f"{cluster.nodes[node].ip}:30081")
    seen = t.where("pod-c/eth0", "rx", role="request")
    print(f"via {node}: {t.outcome}; pod-c sees", seen[0].ip.src if seen else "nothing")
    print("   ", [d for h in t.drops for d in h.decisions if "DROP" in d and "rule" in d])

%% md
## Where the article differs

:::{admonition} The article: a "gateway service" and "the Flannel process"
:class: warning
The seed article ({ref}`ref-article`, scenario 5) has a "gateway service" intercept the request
and route it to the pod's host, whose routing table passes it to "the Flannel process". Neither
exists on this path. (The `gateway` in this book's topology is a plain router: it forwards the
packet to `192.168.50.11` and changes nothing but the TTL.) The request reaches any node's own
address; kube-proxy's iptables rules in that node's kernel DNAT it to a pod and masquerade it;
Flannel's kernel-side `flannel.1` carries it to the pod's node like any other pod-bound packet.
The reply does cross the same interfaces in reverse order, as the article says, but it is
conntrack on `node1` that undoes both rewrites. The article's account also loses the fact that
the pod sees `10.244.0.0`, not the client, under the default policy.
:::

## Try it yourself

1. Send the NodePort request to `node2` instead (`cluster.send("ext", "192.168.50.12:30080")`).
   Which source does `pod-c` see now, and is there a VXLAN hop?
2. Send from `pod-a` to the service's ClusterIP (`netsim.scenarios.pod_to_cluster_ip()`). Which
   chains match, and is the source masqueraded?

:::{dropdown} Solutions
1. `pod-c` is local to `node2`, so the DNATed packet is routed to `cni0`. It is still marked and
   masqueraded, now to `cni0`'s address `10.244.1.1`; no VXLAN hop appears.
2. `KUBE-SERVICES` matches the ClusterIP rule and `KUBE-SVC-…` jumps straight to the endpoint: the
   source is inside the cluster CIDR, so the `! -s 10.244.0.0/16 … KUBE-MARK-MASQ` rule does not
   match, and `pod-c` sees `pod-a`'s own address.
:::

**Predict the next header.** The SYN-ACK leaves `node1`'s `eth0` towards the gateway. What are its
source address and port, and its destination port? Decide, then reveal.

%% code hide-output
out = trace.where("node1/eth0", "tx", role="reply")[0]
print(out.ip.src, out.ip.payload.sport, ">", out.ip.dst, out.ip.payload.dport)

%% md
## On a real cluster

`iptables -t nat -S KUBE-NODEPORTS`, then follow the `KUBE-EXT-…`, `KUBE-SVC-…` and `KUBE-SEP-…`
chains; `iptables -t nat -L KUBE-POSTROUTING -n -v` (packet counters rise as you connect);
`conntrack -L -p tcp --dport 30080` on the node you called; `tcpdump -i flannel.1 -nn port 8080`
to see the masqueraded source.

## Further reading

- kube-proxy's iptables proxier (`pkg/proxy/iptables/proxier.go`): {ref}`ref-kp`.
- Kubernetes documentation on Service `externalTrafficPolicy` and source IP preservation.
'''

CHAPTERS["08-pod-to-outside"] = r'''
%% md
# Pod to the outside world

*Scenario 6 of six.* `pod-a` connects to `ext` (203.0.113.10), a host outside the cluster. Pod
addresses mean nothing outside: the gateway has no route to `10.244.0.0/16`. How does the answer
come back?

**What you will learn**

- that the packet leaves through the node's `eth0`, routed and not tunnelled;
- how Flannel's `FLANNEL-POSTRTG` rule 5 masquerades it to the node's address;
- how conntrack maps the reply back to the pod.

%% md
## The simple story

`pod-a` sends to its default gateway, `cni0`. `node1` routes the packet with its own default
route, out of `eth0` to the underlay gateway. Just before it leaves, the `nat` `POSTROUTING`
chain runs: kube-proxy's chain returns (the packet is not marked), and Flannel's rule
`-s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully` rewrites the source to `eth0`'s
address ({ref}`ref-f`). The outside world only ever sees the node.

%% code
import netsim

cluster = netsim.reference_cluster()
print(cluster.show("node1", "ip route get 203.0.113.10"))
print("\n".join(l for l in cluster.show("node1", "iptables-save").splitlines() if "FLANNEL-POSTRTG" in l))

%% md
## The walk

%% code
trace = netsim.scenarios.pod_to_external(cluster=cluster)
print(trace.outcome)
for hop in trace.hops:
    if not hop.is_arp and hop.netns != "underlay":
        print(hop.summary())

%% md
Step through the masquerade: the source address and port change as the packet leaves `node1/eth0`, and change back when the reply arrives.

%% code
from netsim import views

views.Stepper(trace, cluster, predict=True)

%% md
## What changed at each hop, and why

%% code
for line in trace.where("node1/cni0", "rx", role="request")[0].decisions:
    print(line)

%% md
- The route is the node's default, `via 192.168.50.1 dev eth0`: no `flannel.1` anywhere.
- Forwarding lowers the TTL from 64 to 63; the gateway lowers it again, so `ext` sees 62.
- `FLANNEL-POSTRTG` rule 5 masquerades: source `10.244.0.2` becomes `192.168.50.11`, and
  `--random-fully` picks a new source port instead of keeping the pod's (at random on a real
  kernel, from a hash in `netsim`; see chapter {doc}`07-nodeport`).

The reply from `ext` comes back to `192.168.50.11` and that port; conntrack finds the entry and
rewrites the destination back to the pod:

%% code
for line in trace.where("node1/eth0", "rx", role="reply")[0].decisions[:2]:
    print(line)
print(cluster.show("node1", "conntrack -L"))
print("flannel.1 in the trace:", any(hop.device.startswith("flannel") for hop in trace.hops))

%% md
## Where the article differs

:::{admonition} The article: "flanneld encapsulates for external routing"
:class: warning
The seed article ({ref}`ref-article`, scenario 6) routes pod-to-external traffic through
`Flannel.1` and `flanneld`, which would "encapsulate for external routing", and calls it
scenario 5 in reverse. Neither holds. The packet is routed natively out of `eth0`, and its source
is rewritten by an iptables MASQUERADE rule that `flanneld` installed (`--ip-masq`); no tunnel
and no userspace process touches it (the trace has no `flannel.1` hop). And it is not scenario 5
reversed: there the client's connection is DNATed *into* the cluster; here the pod's connection
is SNATed *out* of it.
:::

## Try it yourself

1. Remove the masquerade rule with `cluster.break_masquerade("node1")` and send again. Which host
   drops what, and why?
2. Ping `ext` from `pod-a` (`cluster.send("pod-a", "ext")`). ICMP has no ports: what does
   masquerade rewrite instead?

:::{dropdown} Solutions
1. The request now leaves with source `10.244.0.2`. `ext` answers it, and the gateway has no route
   to `10.244.0.0/16`, so it drops the reply and sends `ext` an ICMP network unreachable.
   `[h.where for h in trace.drops]` shows it; chapter {doc}`09-troubleshooting` walks through it.
2. The ICMP echo identifier, which conntrack treats as the "port" of an ICMP flow; a real kernel
   does the same ({ref}`ref-kernel`).
:::

**Predict the next header.** What source address and TTL does `ext` see on the SYN? Decide, then
reveal.

%% code hide-output
got = trace.where("ext/eth0", "rx", role="request")[0]
print(got.ip.src, "ttl", got.ip.ttl)

%% md
## On a real cluster

`iptables -t nat -S FLANNEL-POSTRTG` (or `nft list table ip flannel-ipv4` with the nftables
backend); `conntrack -L -s <pod IP>`; `tcpdump -i eth0 -nn host <external IP>` shows the node's
address, never the pod's.

## Further reading

- Flannel's masquerade rules (`pkg/trafficmngr/iptables`): {ref}`ref-f`.
- `iptables-extensions(8)`, target `MASQUERADE` and option `--random-fully`.
'''

CHAPTERS["09-troubleshooting"] = r'''
%% md
# Troubleshooting: seven broken clusters

Every chapter so far walked a working path. This one breaks the path in seven ways that happen
on real clusters, and diagnoses each from what a trace and the state views show: where the
packet stopped, what the kernel decided there, and which entry was missing or wrong.

**What you will learn**

- to read a failed trace: its outcome, its drops, and the decision at the drop;
- which state view (`ip route`, `ip neigh`, `bridge fdb`, `iptables-save`, `ip link`) confirms each fault;
- the symptom each fault gives a user, which is often far from its cause.

%% md
One helper prints what matters in a failed exchange. ARP requests that reach hosts they are not
for are dropped by design on every broadcast, so it leaves them out.

%% code
import netsim

def diagnose(trace):
    lines = [f"outcome: {trace.outcome}"]
    for hop in trace.drops:
        if "is not for this host" not in hop.decisions[-1]:
            lines.append(f"dropped at {hop.where} {hop.direction}: {hop.decisions[-1]}")
    print("\n".join(lines))

%% md
## Case 1: a missing FDB entry

`pod-a` cannot reach `pod-c`; `pod-b` is fine.

%% code
cluster = netsim.reference_cluster()
cluster.break_fdb("node1", "node2")
diagnose(cluster.send("pod-a", "pod-c"))
print(cluster.show("node1", "bridge fdb"))

%% md
:::{dropdown} Diagnosis
The route and the permanent neighbour entry still send the packet to `flannel.1` with `node2`'s
VTEP MAC, but `flannel.1` has no FDB entry saying which underlay address owns that MAC. With
learning off and no default destination, the kernel drops the frame silently: the sender sees
nothing at all, not even an error. `bridge fdb show dev flannel.1` lacks the `dst 192.168.50.12`
line. `flanneld` re-adds entries when it handles the node's lease event; restarting it on `node1`
reprograms all three entries ({ref}`ref-f`).
:::

## Case 2: a missing neighbour entry

%% code
cluster = netsim.reference_cluster()
cluster.break_neighbour("node1", "node2")
diagnose(cluster.send("pod-a", "pod-c"))
print(cluster.show("node1", "ip neigh"))

%% md
:::{dropdown} Diagnosis
Without the permanent entry for `10.244.1.0`, `node1` tries to ARP for it on `flannel.1`. An
ARP request is a broadcast, and `flannel.1` has no FDB entry for the broadcast MAC (Flannel adds
none: no multicast group, no flooding), so each request is dropped. After three tries the
neighbour entry fails and `node1` answers `pod-a` with ICMP "host unreachable" from `10.244.0.1`.
This is the one place in the book where ARP is *attempted* on `flannel.1`; in a healthy cluster
the permanent entries make it unnecessary.
:::

## Case 3: IP forwarding switched off

%% code
cluster = netsim.reference_cluster()
cluster.break_forwarding("node1")
diagnose(cluster.send("pod-a", "pod-c"))
diagnose(cluster.send("pod-a", "pod-b"))

%% md
:::{dropdown} Diagnosis
With `net.ipv4.ip_forward=0`, `node1` drops everything it would have to route: to other nodes'
pods, to the outside, and from NodePorts to pods. Traffic between pods on the same node still
works, because the bridge forwards it at layer 2 and never asks the IP layer. Check with
`sysctl net.ipv4.ip_forward`; the CNI bridge plugin enables it when it sets up the gateway
({ref}`ref-cni`), so a host configuration tool that resets it later is the usual culprit.
:::

## Case 4: no masquerade

%% code
cluster = netsim.reference_cluster()
cluster.break_masquerade("node1")
diagnose(cluster.send("pod-a", "ext", proto="tcp"))

%% md
:::{dropdown} Diagnosis
The request leaves `node1` with the pod's own source `10.244.0.2`, and `ext` answers it. The
answer reaches the gateway, which has no route to `10.244.0.0/16` and drops it, telling `ext`
that the network is unreachable. From `pod-a` the connection just times out. `iptables -t nat -S
FLANNEL-POSTRTG` lacks the `-s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE` rule: check that
`flanneld` runs with `--ip-masq` ({ref}`ref-f`).
:::

## Case 5: a wrong route

%% code
cluster = netsim.reference_cluster()
cluster.break_route("node1", "node2")
diagnose(cluster.send("pod-a", "pod-c"))
print(cluster.show("node1", "ip route get 10.244.1.2"))

%% md
:::{dropdown} Diagnosis
Without the route to `10.244.1.0/24`, `node1`'s default route wins: the packet leaves unencapsulated
towards the underlay gateway, which has no route to the pod network and drops it. The
`ip route get` output gives it away: `via 192.168.50.1 dev eth0` instead of
`via 10.244.1.0 dev flannel.1 onlink`.
:::

## Case 6: an MTU mismatch

A pod whose `eth0` was left at 1500 (an image or a CNI configuration that ignores
`FLANNEL_MTU`) sends a large UDP datagram across nodes:

%% code
cluster = netsim.reference_cluster()
cluster.set_mtu("pod-a", "eth0", 1500)
diagnose(cluster.send("pod-a", "pod-c", proto="udp", payload=b"x" * 1460))

%% md
:::{dropdown} Diagnosis
The 1488-byte packet fits `pod-a`'s 1500-byte `eth0`, but not the host end of the veth pair,
which the CNI plugin gave Flannel's MTU, 1450. A veth drops a frame bigger than the receiving
end's MTU (`is_skb_forwardable`) and counts it in that device's `rx_dropped`: no ICMP error, no
log line, nothing in a capture on `node1`. Small messages work and large ones vanish, which is
why MTU trouble is so often mistaken for a flaky network. (Had the packet reached `node1`, the
route through `flannel.1`, MTU 1450, with DF set would have produced an ICMP "fragmentation
needed" instead.) Check `ip -s link` on the host veth for dropped packets, and `ip link` inside
the pod against `FLANNEL_MTU` in `/run/flannel/subnet.env`. TCP between pods often hides the
problem: each side announces in its SYN a maximum segment size taken from its own interface MTU
and sends no larger segments than its peer announced, so `pod-a` keeps to the 1410 bytes that
`pod-c` (MTU 1450) asks for. UDP suffers, and so does TCP to a peer with a 1500-byte MTU, such as
a host outside the cluster.
:::

## Case 7: an underlay smaller than Flannel assumed

Someone lowered the MTU of the nodes' network to 1400 (a VPN, a cloud network with a smaller
MTU) after `flanneld` had set `flannel.1` to 1450. Nothing fails:

%% code
cluster = netsim.reference_cluster()
for host, dev in (("node1", "eth0"), ("node2", "eth0"), ("underlay", "p-node1"), ("underlay", "p-node2")):
    cluster.set_mtu(host, dev, 1400)
trace = cluster.send("pod-a", "pod-c", proto="udp", payload=bytes(1400))
diagnose(trace)
for hop in trace.where("node1/eth0", "tx", role="request"):
    ip = hop.ip
    print(f"node1/eth0 tx: outer {ip.length()} bytes, offset {ip.frag * 8}, MF {ip.mf}, DF {ip.df}, id {ip.id:#06x}")
for line in trace.where("node2/eth0", "rx", role="request")[-1].decisions:
    print("node2/eth0 rx:", line)

%% md
:::{dropdown} Diagnosis
The 1428-byte pod packet fits `flannel.1`'s 1450, and with the 50 bytes of VXLAN overhead the
outer packet is 1478 bytes, too big for the 1400-byte underlay. The kernel does not set DF on
the outer header ({ref}`ref-l`), so instead of dropping it `node1` fragments the outer packet
(1396 and 102 bytes, one IP ID), and `node2` reassembles it before its UDP socket on port 8472
can decapsulate it. A real 6.18 kernel did exactly this in the conformance lab. The exchange
works, but every large packet now costs two on the wire and a reassembly on the receiving node,
the loss of either fragment loses the whole packet, and any firewall between the nodes that
drops fragments breaks large packets outright. `ip -d link show flannel.1` (MTU 1450) against
`ip link show eth0` (1400) shows the mismatch; `flanneld` derives the MTU from the interface at
start-up, so restarting it (and the pods, whose MTU came from `FLANNEL_MTU`) fixes it.
:::

## Try it yourself

1. Break the FDB entry on `node2` instead (`break_fdb("node2", "node1")`) and send from `pod-a` to
   `pod-c`. Does the SYN arrive? Where does the exchange fail?
2. With forwarding off on `node1`, which of the six scenarios still work?

:::{dropdown} Solutions
1. The SYN arrives at `pod-c` (node1's entries are intact), but the SYN-ACK is dropped on
   `node2`'s `flannel.1`: a one-way failure, visible only in a trace of both directions.
2. Scenarios 1, 2 and 3: loopback, bridging and the host's own traffic to its pods. Scenarios 4,
   5 and 6 need `node1` to route.
:::

**Predict.** With `node1`'s route to `node2`'s pods deleted, which capture point is the last
one the SYN reaches? Decide, then reveal.

%% code hide-output
cluster = netsim.reference_cluster()
cluster.break_route("node1", "node2")
print(cluster.send("pod-a", "pod-c", proto="tcp").path("request")[-1])

%% md
## On a real cluster

The same order of questions works on a node: `ip route get <pod IP>` (which device?),
`ip neigh show dev flannel.1` and `bridge fdb show dev flannel.1` (permanent entries for every
other node?), `sysctl net.ipv4.ip_forward`, `iptables -t nat -S FLANNEL-POSTRTG`, `ip link` in the
pod against `/run/flannel/subnet.env`, and a `tcpdump` on both ends of the suspected hop. The
Flannel troubleshooting guide lists more ({ref}`ref-f`).

## Further reading

- Flannel's `Documentation/troubleshooting.md`: {ref}`ref-f`.
'''

CHAPTERS["10-scale"] = r'''
%% md
# Scale: what Flannel programs as the cluster grows

Chapter {doc}`05-vxlan-across-nodes` showed that `flanneld` adds three kernel entries on each
node for every *other* node. This chapter counts them for clusters of growing size and asks
what that costs.

**What you will learn**

- how the per-node state grows with the number of nodes under each backend;
- how much state the whole cluster holds, and how much changes when one node joins;
- what does *not* grow: the masquerade rules.

%% code
import netsim
import matplotlib.pyplot as plt

def state(cluster, node="node1"):
    pod_routes = [l for l in cluster.show(node, "ip route").splitlines() if l.startswith("10.244.") and "cni0" not in l]
    return {
        "routes": len(pod_routes),
        "neighbours": len(cluster.show(node, "ip neigh").splitlines()),
        "fdb": len([l for l in cluster.show(node, "bridge fdb").splitlines() if "flannel.1" in l]),
        "masq rules": sum(l.startswith("-A FLANNEL-POSTRTG") for l in cluster.show(node, "iptables-save").splitlines()),
    }

sizes = (2, 4, 8, 16, 32, 64)
counts = {b: [state(netsim.Cluster(nodes=n, backend=b)) for n in sizes] for b in ("vxlan", "host-gw", "udp")}
for backend, rows in counts.items():
    print(backend)
    for n, row in zip(sizes, rows):
        print(f"  {n:3} nodes: {row}")

%% md
The counts match what the Flannel code programs ({ref}`ref-f`):

- **vxlan**: one route, one permanent neighbour entry and one FDB entry per other node, so
  3 × (N − 1) entries on each node.
- **host-gw**: one route per other node and nothing else.
- **udp**: a single route for the whole pod network, whatever N; the per-node table lives in
  `flanneld`'s memory instead.
- The six `FLANNEL-POSTRTG` rules do not depend on N.

%% code
fig, ax = plt.subplots(figsize=(6, 3.5))
for backend, rows in counts.items():
    total = [r["routes"] + r["neighbours"] + r["fdb"] for r in rows]
    ax.plot(sizes, total, marker="o", label=backend)
ax.set_xlabel("nodes in the cluster")
ax.set_ylabel("kernel entries on one node")
ax.set_title("Flannel state programmed on each node")
ax.legend()
fig.tight_layout();

%% md
## What that costs

Across the cluster the total is N × 3(N − 1) entries for vxlan: 12 096 for 64 nodes, and about
three million for 1 000. When one node joins, every other node learns of its lease and adds
three entries, so one join causes 3(N − 1) changes across the cluster, and each `flanneld`
watches every node's lease to do it.

%% code
for n in (64, 1000):
    print(f"{n} nodes: {n * 3 * (n - 1):,} vxlan entries in the cluster, {3 * (n - 1):,} changes when one node joins")

%% md
These are small numbers for a kernel: routes live in a longest-prefix-match trie and
neighbour and FDB entries in hash tables, so a lookup does not walk all the entries. The cost
that grows is the control plane's: watching all leases and reprogramming on every change.
The emulator's lookups do not walk the entries either: it keeps one hash table per prefix
length.

**Big clusters in the emulator.** A `netsim.Cluster` of more than 16 nodes is built lazily: it
keeps a record of every node and pod (addresses, lease, IPAM) and builds a namespace, with all
the entries counted above, when a trace, `show()` or `netns()` first reaches it;
`cluster.materialize_all()` builds everything. One thing differs from a cluster built all at
once: a broadcast (an ARP request on the underlay switch or on `cni0`) reaches only the nodes and
pods built so far. The one it asks for is built first and answers as usual; the others would
only have ignored it, and the flooding device's hop says how many were left out.

## Try it yourself

1. Change `subnet_len` to 26 (`netsim.Cluster(nodes=4, subnet_len=26)`). What changes in the
   routes, and how many nodes fit in `10.244.0.0/16`?
2. Under `host-gw`, what happens to the route count if half the nodes sit on another subnet
   behind a router?

:::{dropdown} Solutions
1. The routes are `/26` instead of `/24`, one per other node as before. `10.244.0.0/16` holds
   2^(26−16) = 1024 subnets of /26, so 1024 nodes; `netsim.Cluster` refuses more.
2. `host-gw` cannot serve them: a route's gateway must be on-link, and Flannel's docs require
   direct layer-2 connectivity between nodes ({ref}`ref-f`). That is where vxlan (with
   `DirectRouting` for the nodes that are on-link) is the usual choice.
:::

**Predict.** How many entries does a node of a 10-node vxlan cluster hold on `flannel.1`
(neighbours plus FDB)? Decide, then reveal.

%% code hide-output
s = state(netsim.Cluster(nodes=10))
print(s["neighbours"] + s["fdb"])

%% md
## On a real cluster

`ip route | grep -c flannel.1`, `ip neigh show dev flannel.1 | wc -l` and
`bridge fdb show dev flannel.1 | wc -l` should each equal the number of other nodes;
`kubectl get nodes --no-headers | wc -l` gives N.

## Further reading

- Flannel's VXLAN backend and its design notes (`pkg/backend/vxlan/vxlan.go`): {ref}`ref-f`.
'''

CHAPTERS["11-summary"] = r'''
%% md
# The six paths side by side

The six scenarios, sent once more on the reference cluster, and summarised from their traces:
how many capture points the request crossed, whether anything routed, tunnelled or rewrote it,
the TTL it arrived with, and the source address the receiver saw.

%% code
import netsim

cluster = netsim.reference_cluster()
names = {1: "container to container", 2: "pod to pod, one node", 3: "host to pod",
         4: "pod to pod, two nodes", 5: "external to NodePort", 6: "pod to external"}
print(f"{'#':2} {'scenario':24} {'points':>6} {'routers':>7} {'tunnel':>6} {'NAT':>15}  {'TTL':>3}  source seen")
for number, scenario in netsim.scenarios.SIX.items():
    trace = scenario(cluster=cluster)
    request = trace.request
    decisions = [d for hop in request for d in hop.decisions]
    routers = sum(d.startswith("forwarded:") for d in decisions)
    tunnel = "yes" if any(hop.encapsulated for hop in request) else "no"
    nat = "+".join(sorted({k for d in decisions for k in ("DNAT", "MASQUERADE") if k in d})) or "none"
    last = request[-1]
    print(f"{number:<2} {names[number]:24} {len(request):6} {routers:7} {tunnel:>6} {nat:>15}  {last.inner_ip.ttl:3}  {last.inner_ip.src}")

%% md
The same summary, as the views module draws it from the six traces (with the NAT rewrites
spelled out):

%% code
from netsim import views

views.summary_table()

%% md
Read down the columns:

- **Routers.** A packet's TTL drops once per IP forward and only then. Loopback, bridging and the
  host's own traffic route nothing; scenario 4 is routed by both nodes; scenarios 5 and 6 add
  the underlay gateway. (Scenario 5's request starts at `ext` with TTL 64.)
- **Tunnel.** Only traffic between pods on different nodes is encapsulated, and the kernel's
  `flannel.1` does it (scenarios 4 and 5). Pod-to-external traffic is not.
- **NAT.** Inside the pod network nothing is rewritten. A NodePort is DNATed and, under
  `externalTrafficPolicy: Cluster`, masqueraded; pod-to-external traffic is masqueraded by
  Flannel's rule.
- **Source seen.** Only in scenarios 5 and 6 does the receiver see an address other than the
  sender's: the masquerade address of the outgoing device (`flannel.1`'s `10.244.0.0`, or
  `eth0`'s `192.168.50.11`).

## The article's six paths, corrected

| # | Seed article ({ref}`ref-article`) | What the kernel does | Chapter |
|---|---|---|---|
| 1 | container → veth → shared stack → veth → container | loopback inside one shared namespace; no veth | {doc}`02-containers-in-a-pod` |
| 2 | a chain of eight veths through `cni0` | two veth pairs and one bridge; TTL unchanged | {doc}`03-pod-to-pod-same-node` |
| 3 | host → `flannel.1` → `cni0` | connected route on `cni0`, source `10.244.0.1`; no `flannel.1` | {doc}`04-host-to-pod` |
| 4 | `flanneld` intercepts and encapsulates | the kernel's `flannel.1` encapsulates, UDP 8472; `flanneld` only programs entries | {doc}`05-vxlan-across-nodes` |
| 5 | a gateway service, then "the Flannel process" | kube-proxy's iptables DNAT and masquerade on the receiving node, conntrack on the reply | {doc}`07-nodeport` |
| 6 | `flannel.1` and `flanneld` "encapsulate for external routing" | routed out of `eth0`, masqueraded by `FLANNEL-POSTRTG`; no tunnel | {doc}`08-pod-to-outside` |

`flanneld` sits in the data path only with the debug-only `udp` backend
({doc}`06-backends`).

## Try it yourself

Build the table again on `netsim.reference_cluster("host-gw")`. Which columns change, and why?

:::{dropdown} Solution
The tunnel column reads "no" everywhere: host-gw routes pod packets natively via the other
node's `eth0` address. Scenarios 4 and 5 cross two capture points fewer (12 → 10 and 15 → 13):
no `flannel.1` on either node. The TTLs stay the same (the same kernels forward). Scenario 5's pod now
sees `192.168.50.11`: the masquerade address is that of the outgoing device, which is `eth0`
instead of `flannel.1`.
:::

**Predict.** Under host-gw, what source does `pod-c` see in scenario 5? Decide, then reveal.

%% code hide-output
trace = netsim.scenarios.external_to_nodeport(cluster=netsim.reference_cluster("host-gw"))
print(trace.request[-1].ip.src)
'''
