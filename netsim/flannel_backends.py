"""Every backend Flannel ships, and the ones it dropped, as facts: what each puts on the wire.

netsim models three backends (vxlan, host-gw, udp: flannel.py). Flannel v0.28.9's pkg/backend
holds six more, and three cloud backends were removed in v0.20.0. This module describes all of
them as data, read from flannel's source at v0.28.9 (paths below are in flannel-io/flannel):
the device flanneld creates, what it programs for each other node, the headers a pod's packet
is wrapped in (outermost first, with their sizes), the MTU overhead flanneld subtracts from the
external interface's MTU and where it does so, the port or protocol on the wire, a capture
filter that shows the traffic, and the version that added (or removed) the backend, from the
repository's tags.

The header layouts of the three modelled backends are checked against netsim's own traces
(tests/test_flannel_backends.py); the others are explained from the source, not modelled.
Sizes are bytes. A field whose size varies (padding) has `size` its smallest and `upto` its
largest size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    size: int
    value: str
    upto: int | None = None        # the largest size, for a field that varies (padding)

    @property
    def largest(self) -> int:
        return self.upto if self.upto is not None else self.size


@dataclass(frozen=True)
class Header:
    """A header (or trailer) the backend adds around the pod's IP packet."""

    name: str
    fields: tuple[Field, ...]
    on_link: bool = False          # an Ethernet header: on the wire, but not counted against an MTU

    @property
    def size(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def largest(self) -> int:
        return sum(f.largest for f in self.fields)


@dataclass(frozen=True)
class Backend:
    name: str                      # Backend.Type in net-conf.json
    status: str                    # as Documentation/backends.md files it, or "removed"
    added: str                     # the first release whose tag contains the backend
    source: str                    # where its code is (or was)
    data_path: str                 # who moves a pod's packet between nodes
    device: str = ""               # the device flanneld creates ("" for none)
    per_peer: str = ""             # what flanneld programs for each other node
    headers: tuple[Header, ...] = ()   # added before the pod's IP packet, outermost first
    trailer: tuple[Header, ...] = ()   # added after it
    overhead: int | None = None    # what flanneld subtracts from the interface's MTU
    overhead_source: str = ""
    wire: str = ""                 # the protocol and port a capture between nodes sees
    capture: str = ""              # a tcpdump filter for it
    decode: str = ""               # the tcpdump option that decodes it, if tcpdump needs one
    removed: str = ""              # the release that removed it, if it was removed
    modelled: bool = False         # netsim models it (flannel.py)
    notes: str = ""
    inner: str = "unchanged but for the TTL the nodes decrement"    # what becomes of the pod's packet

    def added_bytes(self) -> tuple[int, int]:
        """(fewest, most) bytes the backend adds to a pod's IP packet, counted against an MTU."""
        parts = [h for h in (*self.headers, *self.trailer) if not h.on_link]
        return sum(h.size for h in parts), sum(h.largest for h in parts)

    def flannel_mtu(self, interface_mtu: int) -> int | None:
        """FLANNEL_MTU, what flanneld writes to subnet.env for the pods, on an interface of this MTU."""
        return None if self.overhead is None else interface_mtu - self.overhead


def _eth(dst: str, src: str) -> Header:
    return Header("outer Ethernet", (Field("destination MAC", 6, dst), Field("source MAC", 6, src),
                                     Field("EtherType", 2, "0x0800 (IPv4)")), on_link=True)


def _ipv4(proto: str, df: str = "DF clear", ttl: str = "64") -> Header:
    return Header("outer IPv4", (Field("version, IHL, TOS, length", 4, "4, 5, ECN from the inner packet"),
                                 Field("ID, flags, fragment offset", 4, df),
                                 Field("TTL", 1, ttl), Field("protocol", 1, proto), Field("checksum", 2, ""),
                                 Field("source", 4, "this node's public-ip"),
                                 Field("destination", 4, "the peer's public-ip")))


def _udp(sport: str, dport: str) -> Header:
    return Header("outer UDP", (Field("source port", 2, sport), Field("destination port", 2, dport),
                                Field("length", 2, ""), Field("checksum", 2, "")))


UNDERLAY_ETHERNET = _eth("the next hop's MAC (the peer's, on one link)", "this node's eth0")

BACKENDS: tuple[Backend, ...] = (
    Backend(
        "vxlan", "recommended", "v0.2.0", "pkg/backend/vxlan", "the kernel's VXLAN driver",
        device="flannel.1 (VXLAN, VNI 1, nolearning, local <public-ip> dev <iface>)",
        per_peer="a permanent neighbour entry, an FDB entry <VtepMAC> dst <public-ip>, a route <subnet> via "
                 "<subnet>.0 dev flannel.1 onlink",
        headers=(UNDERLAY_ETHERNET, _ipv4("17 (UDP)"),
                 _udp("a hash of the inner flow, 32768-60999", "8472, the kernel's default (Flannel sets none)"),
                 Header("VXLAN", (Field("flags", 1, "0x08 (VNI valid)"), Field("reserved", 3, "0"),
                                  Field("VNI", 3, "1"), Field("reserved", 1, "0"))),
                 Header("inner Ethernet", (Field("destination MAC", 6, "the peer's VtepMAC"),
                                           Field("source MAC", 6, "this node's flannel.1"),
                                           Field("EtherType", 2, "0x0800 (IPv4)")))),
        overhead=50, overhead_source="encapOverhead = 50 in pkg/backend/vxlan/vxlan_network.go; device.go sizes "
                                     "flannel.1 to the interface's MTU minus 50",
        wire="UDP 8472", capture="udp port 8472", decode="-T vxlan", modelled=True),
    Backend(
        "host-gw", "recommended", "v0.2.1", "pkg/backend/hostgw", "the kernel's routing, no tunnel",
        per_peer="a route <subnet> via <public-ip> dev <iface>; the nodes must share a layer-2 link",
        headers=(_eth("the peer node's eth0 MAC", "this node's eth0"),),
        overhead=0, overhead_source="backend.RouteNetwork's MTU() is the interface's MTU (pkg/backend/route_network.go)",
        wire="the pod's packet itself", capture="net 10.244.0.0/16",
        modelled=True),
    Backend(
        "wireguard", "recommended", "v0.16.0", "pkg/backend/wireguard", "the kernel's WireGuard (Linux 5.6 and "
        "later; an extra package before)",
        device="flannel-wg (and flannel-wg-v6 in the default `separate` mode with IPv6)",
        per_peer="a WireGuard peer: the node's public key (from its backend-data annotation), endpoint "
                 "<public-ip>:51820, allowed IPs its pod subnet; one route for the whole pod network dev flannel-wg",
        headers=(UNDERLAY_ETHERNET, _ipv4("17 (UDP)"),
                 _udp("51820, the ListenPort", "51820, the peer's ListenPort"),
                 Header("WireGuard data message", (Field("type", 1, "4 (transport data)"), Field("reserved", 3, "0"),
                                                   Field("receiver index", 4, "the peer's session"),
                                                   Field("counter", 8, "the nonce")))),
        trailer=(Header("WireGuard padding and tag", (Field("padding", 0, "to a multiple of 16 bytes", upto=15),
                                                      Field("Poly1305 tag", 16, ""))),),
        inner="encrypted (ChaCha20-Poly1305): a capture between the nodes cannot read it",
        overhead=80, overhead_source="overhead = 80 in pkg/backend/wireguard/wireguard_network.go: a 40-byte IPv6 "
                                     "header, so that the same MTU works over either family; device.go sizes "
                                     "flannel-wg to the MTU minus 80",
        wire="UDP 51820, encrypted", capture="udp port 51820"),
    Backend(
        "udp", "debugging only", "v0.1.0", "pkg/backend/udp", "flanneld's userspace proxy (proxy_amd64.c)",
        device="flannel0 (TUN, no Ethernet header)",
        per_peer="an entry in the proxy's own route table; one kernel route for the whole pod network dev flannel0",
        headers=(UNDERLAY_ETHERNET, _ipv4("17 (UDP)", "DF set (a UDP socket's default)"), _udp("8285", "8285")),
        overhead=28, overhead_source="the TUN's MTU is the interface's minus 28, IPv4 20 + UDP 8 "
                                     "(pkg/backend/udp/udp_network_amd64.go)",
        wire="UDP 8285", capture="udp port 8285", modelled=True,
        notes="amd64 only since v0.10.0; still shipped in v0.28.9"),
    Backend(
        "ipip", "experimental", "v0.10.0", "pkg/backend/ipip", "the kernel's IPIP tunnel",
        device="flannel.ipip (ipip, local <public-ip>, remote any; tunl0 may exist beside it)",
        per_peer="a route <subnet> via <public-ip> dev flannel.ipip onlink (or via the interface with "
                 "DirectRouting and a peer on the same link)",
        headers=(UNDERLAY_ETHERNET, _ipv4("4 (IPv4 in IPv4)", "DF copied from the inner packet",
                                          "the inner packet's (ttl inherit)")),
        overhead=20, overhead_source="expectMTU = the interface's MTU - 20 in pkg/backend/ipip/ipip.go",
        notes="flanneld creates the device through vishvananda/netlink with TTL 0 and PMTUDISC 0, so the kernel's "
              "ip_tunnel_xmit (net/ipv4/ip_tunnel.c) gives the outer header the inner packet's TTL and DF",
        wire="IP protocol 4", capture="ip proto 4"),
    Backend(
        "ipsec", "experimental", "v0.11.0", "pkg/backend/ipsec", "the kernel's XFRM (ESP tunnel mode); strongSwan's "
        "charon negotiates the keys",
        per_peer="three XFRM policies (out, in, fwd) <own subnet> <-> <peer subnet>, tunnel mode ESP between the "
                 "public IPs; no device and no route of its own",
        headers=(UNDERLAY_ETHERNET, _ipv4("50 (ESP)", "DF copied from the inner packet"),
                 Header("ESP header", (Field("SPI", 4, "the security association"), Field("sequence", 4, ""))),
                 Header("ESP IV", (Field("IV", 8, "AES-GCM, the default proposal aes128gcm16"),))),
        trailer=(Header("ESP trailer", (Field("padding", 0, "to a 4-byte boundary", upto=3), Field("pad length", 1, ""),
                                        Field("next header", 1, "4 (IPv4)"),
                                        Field("ICV", 16, "the 16-byte GCM tag"))),),
        inner="encrypted (AES-GCM): a capture between the nodes cannot read it",
        overhead=77, overhead_source="ipsecOverhead = 77 in pkg/backend/ipsec/ipsec_network.go, counted for AES-CBC "
                                     "with SHA-256 (16-byte IV, up to 15 bytes of padding, 16-byte ICV); plus "
                                     "udpEncapOverhead = 8 with UDPEncap",
        wire="ESP (IP protocol 50), encrypted; IKE on UDP 500, NAT-T on 4500",
        capture="esp or udp port 500 or udp port 4500"),
    Backend("alloc", "experimental", "v0.1.0", "pkg/backend/alloc", "none: it allocates subnets and forwards nothing",
            overhead=0, overhead_source="SimpleNetwork's MTU() is the interface's MTU (pkg/backend/simple_network.go)",
            wire="nothing"),
    Backend("extension", "not in backends.md", "v0.8.0", "pkg/backend/extension",
            "whatever its commands set up",
            per_peer="runs the configured SubnetAddCommand (and SubnetRemoveCommand), with the lease in its "
                     "environment and on stdin",
            overhead=0, overhead_source="SimpleNetwork's MTU() is the interface's MTU (pkg/backend/simple_network.go)",
            wire="what its commands set up"),
    Backend("tencent-vpc", "experimental", "v0.14.0", "pkg/backend/tencentvpc", "the TencentCloud VPC's route table",
            per_peer="a route in the VPC's route table, <subnet> next hop the node, through the cloud's API",
            headers=(_eth("the cloud network's next hop", "this node's eth0"),),
            overhead=0, overhead_source="SimpleNetwork's MTU() is the interface's MTU (pkg/backend/simple_network.go)",
            wire="the pod's packet, cloud-routed", capture="net 10.244.0.0/16"),
    Backend("aws-vpc", "removed", "v0.4.0", "backend/awsvpc", "the AWS VPC route table", removed="v0.20.0",
            wire="the pod's packet, cloud-routed"),
    Backend("gce", "removed", "v0.5.0", "backend/gce", "GCE network routes", removed="v0.20.0",
            wire="the pod's packet, cloud-routed"),
    Backend("ali-vpc", "removed", "v0.8.0", "backend/alivpc", "the Alibaba Cloud VPC route table", removed="v0.20.0",
            wire="the pod's packet, cloud-routed"),
)
BY_NAME = {b.name: b for b in BACKENDS}
SHIPPED = tuple(b.name for b in BACKENDS if not b.removed)
# commit bb657386, "Remove obsolete cloud backends" (alivpc, awsvpc, gce), first in v0.20.0
REMOVAL = "bb657386, first released in v0.20.0"
