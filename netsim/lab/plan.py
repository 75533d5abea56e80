"""Planning a lab's build: netsim's state turned into checked command lines, before anything runs.

`make_plan(cluster, netns)` walks every model `Namespace` (devices, addresses, sysctls,
routes, permanent neighbours, FDB entries and `netfilter.save()` text) and returns a `Plan`
of `ip`/`bridge` batch lines, sysctl values, iptables-restore input and the nftables batches
netsim's nf_tables state was built from (its journal, replayed with `nft -f`), every name and value
passed through the validator of its kind (commands.py), so the kernel copy cannot drift from
the model and a name the lab refuses stops the build before any command runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..bridge import Bridge
from ..device import Loopback, Veth
from ..neighbour import NOARP, PERMANENT
from ..netfilter.core import iptables_first, nfacct_objects
from ..tun import Tun
from ..vxlan import VxlanDevice
from . import commands as tok
from .commands import Line, UnsafeArgument
from .process import LabUnavailable

if TYPE_CHECKING:
    from ..cluster import Cluster
    from ..netns import Namespace

VXLAN_OVERHEAD = 50      # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
MTU_MAX = 65535          # IP_MAX_MTU (include/net/ip.h)
VNI_MAX = (1 << 24) - 1
QLEN_MAX = 0xFFFFFFFF    # dev->tx_queue_len is an unsigned int


@dataclass
class Plan:
    """Everything a build will run, made of checked tokens before anything runs."""

    names: list[str]                                       # model namespaces, in model order
    sysctls: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    device_sysctls: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # once the devices exist
    links: dict[str, list[Line]] = field(default_factory=dict)      # ip -n NS -batch -
    config: dict[str, list[Line]] = field(default_factory=dict)     # ip -n NS -batch -
    bridge: dict[str, list[Line]] = field(default_factory=dict)     # bridge -n NS -batch -
    iptables: dict[str, str] = field(default_factory=dict)          # iptables-restore input, checked
    nft: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)   # nft -f batches (with -c?), checked
    nfacct: dict[str, list[str]] = field(default_factory=dict)      # nfacct objects the iptables rules count in
    iptables_first: dict[str, bool] = field(default_factory=dict)   # iptables-restore before the nft batches
    devices: dict[str, list[str]] = field(default_factory=dict)     # every device (captures)
    offload: dict[str, list[str]] = field(default_factory=dict)     # every device but lo
    listeners: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    arp_responders: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)  # (dev, addresses)


def make_plan(cluster: Cluster, netns: Callable[[str], str]) -> Plan:
    """Every command of the build of `cluster`, each value checked (`netns` gives the lab
    namespace of a model namespace); raises UnsafeArgument (and runs
    nothing) on the first name or value the lab refuses."""
    model = cluster.network.namespaces
    for key, ns in model.items():
        if key != ns.name:
            raise UnsafeArgument(f"the model namespace {ns.name!r} is filed under {key!r}; nothing was run")
    plan = Plan([tok.netns_name(n) for n in model])
    for name in plan.names:
        netns(name)
    for name in plan.names:
        ns = model[name]
        plan.links[name] = [tok.check_line(line) for line in link_commands(ns, netns)]
        plan.config[name] = [tok.check_line(line) for line in config_commands(ns)]
        plan.bridge[name] = [tok.check_line(line) for line in bridge_commands(ns)]
        plan.sysctls[name] = sysctl_values(ns)
        plan.device_sysctls[name] = [(f"net.ipv4.conf.{tok.ifname(d.name)}.route_localnet", "1")
                                     for d in ns.devices.values() if getattr(d, "route_localnet", False)]
        text = restore_input(ns.netfilter.save())
        plan.iptables[name] = tok.check_restore(text) if text.strip() else ""
        plan.nft[name] = [(tok.check_nft(batch), check) for batch, check in ns.netfilter.nftables.journal]
        plan.nfacct[name] = [tok.nfacct_name(n) for n in nfacct_objects(ns.netfilter.tables.values())]
        plan.iptables_first[name] = iptables_first(ns.netfilter)
        plan.devices[name] = [tok.ifname(d.name) for d in ns.devices.values()]
        plan.offload[name] = [tok.ifname(d.name) for d in ns.devices.values() if not isinstance(d, Loopback)]
        plan.listeners[name] = [(tok.word(p, ("tcp", "udp")), int(tok.number(port, 1, 65535, "port")))
                                for p, port in sorted(ns.listeners)]
        plan.arp_responders[name] = arp_responders(ns)
    return plan


def arp_responders(ns: Namespace) -> list[tuple[str, tuple[str, ...]]]:
    """The userspace ARP responders of `ns` (MetalLB's speaker): per device, the addresses the
    model's responder answers for, checked (lab/arp_responder.py stands in for it)."""
    out = []
    for responder in ns.arp_responders:
        announced = getattr(responder, "announced", None)
        for dev in ns.devices:
            addresses = tuple(tok.ipv4(a) for a in announced(dev)) if announced is not None else ()
            if addresses:
                out.append((tok.ifname(dev), addresses))
    return out


BUILTIN = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def restore_input(saved: str) -> str:
    """iptables-save text as the input that rebuilds the same kernel state: without the
    declarations of built-in chains that hold no rule and accept. iptables-save (nf_tables
    backend) prints every built-in chain of a table, but iptables-nft creates one in the kernel
    (a base chain on its hook, which the kernel's trace reports) only when a rule goes into it or
    its policy is set: after kube-proxy's `iptables -t mangle -N KUBE-PROXY-CANARY` the mangle
    table holds that chain alone (measured with iptables 1.8.9). netsim walks no such chain
    either (ip_tables.py)."""
    out: list[str] = []
    for block in saved.split("COMMIT\n"):
        lines = block.splitlines(keepends=True)
        used = {line.split()[1] for line in lines if line.startswith("-A ")}
        for line in lines:
            if line.startswith(":"):
                chain, policy = line[1:].split()[:2]
                if chain in BUILTIN and policy == "ACCEPT" and chain not in used:
                    continue
            out.append(line)
        if lines:
            out.append("COMMIT\n")
    return "".join(out)


def sysctl_values(ns: Namespace) -> list[tuple[str, str]]:
    """The sysctls the lab writes in `ns`'s namespace: the model's, and IPv6 and rp_filter off."""
    s = ns.sysctl
    low, high = s.ip_local_port_range
    return [
        ("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1"),
        ("net.ipv6.conf.lo.disable_ipv6", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.ip_forward", tok.number(s.ip_forward, 0, 1, "ip_forward")),
        # written even when 0: a new namespace inherits init_net's IPv4 "all" values
        ("net.ipv4.conf.all.route_localnet", tok.number(s.route_localnet, 0, 1, "route_localnet")),
        ("net.ipv4.ip_local_port_range", f"{tok.number(low, 1, 65535, 'port')} {tok.number(high, 1, 65535, 'port')}"),
        ("net.ipv4.ip_default_ttl", tok.number(s.ip_default_ttl, 1, 255, "ip_default_ttl")),
        ("net.ipv4.route.mtu_expires", tok.number(s.mtu_expires, 0, 1 << 31, "mtu_expires")),
        ("net.ipv4.route.min_pmtu", tok.number(s.min_pmtu, 68, 65535, "min_pmtu")),
        ("net.ipv4.ip_no_pmtu_disc", tok.number(s.ip_no_pmtu_disc, 0, 3, "ip_no_pmtu_disc")),
        ("net.ipv4.icmp_ratelimit", tok.number(s.icmp_ratelimit, 0, 1 << 31, "icmp_ratelimit")),
        ("net.ipv4.icmp_ratemask", tok.number(s.icmp_ratemask, 0, (1 << 32) - 1, "icmp_ratemask")),
        ("net.ipv4.icmp_echo_ignore_broadcasts", tok.number(s.icmp_echo_ignore_broadcasts, 0, 1,
                                                            "icmp_echo_ignore_broadcasts")),
        ("net.bridge.bridge-nf-call-iptables", tok.number(s.bridge_nf_call_iptables, 0, 1, "bridge-nf-call-iptables")),
    ]


def link_commands(ns: Namespace, netns: Callable[[str], str]) -> list[Line]:
    """`ip link add` of `ns`'s veth pairs (each once, from the side that sorts first; the peer
    goes to its lab namespace, `netns(model name)`) and bridges."""
    lines: list[Line] = []
    for dev in ns.devices.values():
        if isinstance(dev, Tun):
            raise LabUnavailable(f"{ns.name}/{dev.name} is a TUN device; only a userspace program could serve it")
        if isinstance(dev, Veth):
            peer = dev.peer
            if peer is None or peer.netns is None:
                raise LabUnavailable(f"{ns.name}/{dev.name} has no peer")
            if (ns.name, dev.name) > (peer.netns.name, peer.name):
                continue              # made from the other side
            lines.append(("link", "add", "dev", tok.ifname(dev.name), "address", tok.mac(dev.mac),
                          "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU"),
                          "txqueuelen", tok.number(dev.qlen, 0, QLEN_MAX, "txqueuelen"), "type", "veth",
                          "peer", "name", tok.ifname(peer.name), "address", tok.mac(peer.mac),
                          "mtu", tok.number(peer.mtu, 68, MTU_MAX, "MTU"),
                          "txqueuelen", tok.number(peer.qlen, 0, QLEN_MAX, "txqueuelen"),
                          "netns", netns(peer.netns.name)))
        elif isinstance(dev, Bridge):
            mac = ("address", tok.mac(dev.mac)) if dev.fixed_mac else ()
            lines.append(("link", "add", "dev", tok.ifname(dev.name), *mac,
                          "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU"), "type", "bridge"))
    return lines


def config_commands(ns: Namespace) -> list[Line]:
    """Everything else `ip` sets up in `ns`: VXLAN devices, masters, MTUs, links up, addresses,
    routes and permanent neighbours."""
    lines: list[Line] = []
    lowered: list[Line] = []
    for dev in ns.devices.values():
        if isinstance(dev, VxlanDevice):
            rng = (("srcport", tok.number(dev.port_range[0], 1, 65535, "port"),
                    tok.number(dev.port_range[1], 1, 65535, "port")) if dev.port_range else ())
            under = ns.devices.get(dev.underlay)
            if under is not None and under.mtu < dev.mtu + VXLAN_OVERHEAD:
                # the kernel clamps a new VXLAN device's MTU to its underlay's minus 50, and
                # refuses to raise it later; a VXLAN MTU above that exists only when the
                # underlay was lowered after the VXLAN device was made, so do just that
                lines.append(("link", "set", "dev", tok.ifname(under.name),
                              "mtu", tok.number(dev.mtu + VXLAN_OVERHEAD, 68, MTU_MAX, "MTU")))
                lowered.append(("link", "set", "dev", tok.ifname(under.name),
                                "mtu", tok.number(under.mtu, 68, MTU_MAX, "MTU")))
            lines.append(("link", "add", "dev", tok.ifname(dev.name), "address", tok.mac(dev.mac),
                          "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU"),
                          "txqueuelen", tok.number(dev.qlen, 0, QLEN_MAX, "txqueuelen"), "type", "vxlan",
                          "id", tok.number(dev.vni, 0, VNI_MAX, "VNI"), "local", tok.ipv4(dev.local),
                          "dev", tok.ifname(dev.underlay), "dstport", tok.number(dev.dstport, 1, 65535, "port"),
                          *rng, "learning" if dev.learning else "nolearning",
                          "udpcsum" if dev.udp_csum else "noudpcsum"))
    lines.extend(lowered)
    for dev in ns.devices.values():
        if dev.master is not None:
            lines.append(("link", "set", "dev", tok.ifname(dev.name), "master", tok.ifname(dev.master.name)))
    for dev in ns.devices.values():
        ports = [p.dev.mtu for p in dev.ports.values()] if isinstance(dev, Bridge) else []
        if ports and dev.mtu != min(ports):
            # a bridge follows its smallest port's MTU until one is set on it after creation
            lines.append(("link", "set", "dev", tok.ifname(dev.name), "mtu", tok.number(dev.mtu, 68, MTU_MAX, "MTU")))
    for dev in ns.devices.values():
        lines.append(("link", "set", "dev", tok.ifname(dev.name), "up" if dev.up else "down"))
    for dev in ns.devices.values():
        for iface in dev.addresses:
            if isinstance(dev, Loopback) and str(iface) == "127.0.0.1/8":
                continue              # every namespace has it
            brd = ("brd", "+") if iface.network.prefixlen < 31 else ()
            lines.append(("addr", "add", tok.ipv4_interface(iface), *brd, "dev", tok.ifname(dev.name)))
    for route in ns.main_table.routes():
        if route.proto == "kernel":
            continue                  # the kernel adds connected routes itself
        metric = ("metric", tok.number(route.metric, 0, 0xFFFFFFFF, "metric")) if route.metric else ()
        if route.type in ("blackhole", "unreachable"):
            lines.append(("route", "add", route.type, tok.ipv4_network(route.dst), *metric))
            continue
        scope = tok.word("global" if route.scope == "universe" else route.scope, ("global", "link", "host", "site"))
        lines.append(("route", "add", tok.ipv4_network(route.dst),
                      *(("via", tok.ipv4(route.via)) if route.via else ()), "dev", tok.ifname(route.dev),
                      *(("src", tok.ipv4(route.src)) if route.src else ()), "scope", scope, *metric,
                      *(("onlink",) if route.onlink else ())))
    for entry in ns.neighbours.entries():
        if entry.state in (PERMANENT, NOARP) and entry.lladdr:
            lines.append(("neigh", "add", tok.ipv4(entry.ip), "lladdr", tok.mac(entry.lladdr),
                          "dev", tok.ifname(entry.dev), "nud", entry.state.lower()))
    return lines


def bridge_commands(ns: Namespace) -> list[Line]:
    """`bridge` port flags, static FDB entries of bridges and the VXLAN devices' FDB entries."""
    lines: list[Line] = []
    for dev in ns.devices.values():
        if isinstance(dev, Bridge):
            for name, port in dev.ports.items():
                lines.append(("link", "set", "dev", tok.ifname(name), "hairpin", "on" if port.hairpin else "off",
                              "learning", "on" if port.learning else "off", "flood", "on" if port.flood else "off"))
            for entry in dev.fdb.values():
                if entry.static and not entry.local:
                    lines.append(("fdb", "add", tok.mac(entry.mac), "dev", tok.ifname(entry.port), "master", "static"))
        elif isinstance(dev, VxlanDevice):
            for vx in dev.fdb.values():
                lines.append(("fdb", "append", tok.mac(vx.mac), "dev", tok.ifname(dev.name),
                              "dst", tok.ipv4(vx.dst), "self", "permanent"))
    return lines
