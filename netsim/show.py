"""State views that print like the real tools: `ip addr`, `ip route`, `ip route get`, `ip neigh`,
`bridge fdb`, `bridge [-d] link`, `ip -d link show`, `iptables-save`, `conntrack -L` and `sysctl`.

Each function takes a `Namespace` and returns the text the tool prints inside that namespace
(`ip netns exec NS ...`). The formats were compared with iproute2 6.1 on a Linux 6.18 kernel
for the same configuration (throwaway namespaces, veth pairs, a bridge with a hairpin port, a
`flannel.1` VXLAN device with a permanent neighbour and FDB entry, onlink/metric/blackhole/
unreachable routes). Deliberate differences, all to keep the output short and deterministic:

- IPv6 is not modelled (it was disabled in the reference lab), so there are no `inet6` lines
  and no `33:33:...`/`01:00:5e:...` multicast entries in `bridge fdb`.
- iproute2 ends many lines with a space (`ip route`, `ip neigh`, `ip route get`); the views
  strip trailing whitespace.
- `ip addr` prints `brd` for every address with a prefix shorter than /31. The kernel stores a
  broadcast address only when the tool asks for it: netlink-based tools (the CNI plugins,
  flanneld, systemd-networkd) do, plain `ip addr add` without `brd +` does not.
- `qlen N` is printed as iproute2 prints it (ip/ipaddress.c print_txqlen): only when the
  device's transmit queue length is not 0, so flannel.1 and the CNI plugins' veth ends, which
  are created through netlink with a queue length of 0, show none, while cni0 shows `qlen 1000`.
- `ip -d link` prints the fields the model has and stops: the `promiscuity` and `allmulti`
  counts (a bridge port's are 1, as br_add_if leaves them), the VXLAN line, a bridge port's
  hairpin/learning/flood; not `minmtu`/`maxmtu`, `addrgenmode`, queue counts, GSO limits, the
  bridge's STP and multicast settings or the port timers. Each line is the start of the real one.
- The kernel lists neighbour and FDB entries in hash-table order; the views use the order the
  entries were created, grouped by device in ifindex order as the kernel groups them.
- `ip route get` prints `uid 0` (the reader is root) and the `cache` line as the kernel does;
  no route gives iproute2's `RTNETLINK answers: ...` message as the text.
"""

from __future__ import annotations


from typing import TYPE_CHECKING

from .addresses import parse_address
from .bridge import Bridge
from .device import Device, Loopback, Nic, Veth
from .errors import ConfigError
from .route import RouteResult
from .tun import Tun
from .vxlan import VxlanDevice

if TYPE_CHECKING:  # pragma: no cover
    from .netns import Namespace


# ip link / ip addr ------------------------------------------------------------------------------

def _carrier(dev: Device) -> bool:
    """Whether the device has carrier (LOWER_UP): a veth needs its peer up, a TUN a reader, a
    bridge with ports at least one port up; loopback, VXLAN and a port-less bridge always do."""
    if isinstance(dev, Veth):
        return dev.peer is not None and dev.peer.up
    if isinstance(dev, Tun):
        return dev.program is not None
    if isinstance(dev, Bridge) and dev.ports:
        return any(p.dev.up and _carrier(p.dev) for p in dev.ports.values())
    return True


def _flags(dev: Device) -> str:
    flags = list(dev.flags)
    if dev.up:
        if not _carrier(dev):
            flags.insert(0, "NO-CARRIER")
            flags += ["UP"] + (["M-DOWN"] if isinstance(dev, Veth) else [])
        else:
            flags += ["UP", "LOWER_UP"]
    return "<" + ",".join(flags) + ">"


def _state(dev: Device) -> str:
    """The operstate iproute2 prints: veths, NICs and bridges with ports report UP; loopback,
    VXLAN, TUN and a bridge without ports have no carrier detection and report UNKNOWN."""
    if not dev.up:
        return "DOWN"
    if not _carrier(dev):
        return "LOWERLAYERDOWN" if isinstance(dev, Veth) else "DOWN"
    if isinstance(dev, Veth) or (isinstance(dev, Bridge) and dev.ports):
        return "UP"
    return "UNKNOWN"


def _link_name(dev: Device) -> str:
    """`eth0@if7` for a veth whose peer is in another namespace, `vethA@vethB` in the same one;
    a physical NIC has no peer name."""
    if isinstance(dev, Veth) and not isinstance(dev, Nic) and dev.peer is not None:
        if dev.peer.netns is dev.netns:
            return f"{dev.name}@{dev.peer.name}"
        return f"{dev.name}@if{dev.peer.ifindex}"
    return dev.name


def _qdisc(dev: Device) -> tuple[str, int]:
    """The root qdisc and the transmit queue length: a TUN device's 500 (TUN_READQ_SIZE,
    drivers/net/tun.c), otherwise the device's own `qlen` (0 for netlink-made devices)."""
    if isinstance(dev, Tun):
        return "pfifo_fast", 500
    if isinstance(dev, Nic):
        return "mq", dev.qlen
    return "noqueue", dev.qlen


def _link_header(dev: Device, details: bool) -> list[str]:
    qdisc, qlen = _qdisc(dev)
    master = f" master {dev.master.name}" if dev.master is not None else ""
    mode = " mode DEFAULT" if details else ""
    first = (f"{dev.ifindex}: {_link_name(dev)}: {_flags(dev)} mtu {dev.mtu} qdisc {qdisc}{master} "
             f"state {_state(dev)}{mode} group default" + (f" qlen {qlen}" if qlen else ""))
    if isinstance(dev, Loopback):
        second = "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00"
    elif isinstance(dev, Tun):
        second = "    link/none"
    else:
        second = f"    link/ether {dev.mac} brd ff:ff:ff:ff:ff:ff"
        if isinstance(dev, Veth) and not isinstance(dev, Nic) and dev.peer is not None \
                and dev.peer.netns is not dev.netns and dev.peer.netns is not None:
            second += f" link-netns {dev.peer.netns.name}"
    if details:     # ip/ipaddress.c print_linkinfo: " promiscuity %u " then " allmulti %u "
        second += f" promiscuity {dev.promiscuity}  allmulti {dev.allmulti}"
    return [first, second]


def ip_link(ns: "Namespace") -> str:
    """`ip link show`: every device in ifindex order."""
    lines: list[str] = []
    for dev in _devices(ns):
        lines += _link_header(dev, details=False)
    return "\n".join(lines)


def ip_addr(ns: "Namespace", dev: str | None = None) -> str:
    """`ip addr [show dev DEV]`: links with their IPv4 addresses. The first address of a subnet
    on a device is primary; later ones in the same subnet are flagged `secondary`, as the
    kernel flags them. 127.0.0.0/8 addresses get `scope host` (iproute2 asks for it), all
    others `scope global`."""
    devices = [ns.device(dev)] if dev is not None else _devices(ns)
    lines: list[str] = []
    for d in devices:
        lines += _link_header(d, details=False)
        seen: list = []
        for iface in d.addresses:
            secondary = any(iface.network == other.network for other in seen)
            seen.append(iface)
            brd = f" brd {iface.network.broadcast_address}" if iface.network.prefixlen < 31 and not isinstance(d, Loopback) else ""
            scope = "host" if iface.ip.is_loopback else "global"
            flags = " secondary" if secondary else ""
            lines.append(f"    inet {iface.with_prefixlen}{brd} scope {scope}{flags} {d.name}")
            lines.append("       valid_lft forever preferred_lft forever")
    return "\n".join(lines)


def ip_link_details(ns: "Namespace", dev: str | None = None) -> str:
    """`ip -d link show [DEV]`: the link lines with the promiscuity and allmulti counts, the
    driver's own line (for VXLAN the `vxlan id ... udpcsum` line flannel's configuration
    produces) and, for a bridge port, the port's hairpin, learning and flood settings."""
    devices = [ns.device(dev)] if dev is not None else _devices(ns)
    return "\n".join(line for d in devices for line in _link_details(d))


def _link_details(d: Device) -> list[str]:
    lines = _link_header(d, details=True)
    if isinstance(d, VxlanDevice):
        lines.append("    " + d.details())
    elif isinstance(d, Veth) and not isinstance(d, Nic):
        lines.append("    veth")
    elif isinstance(d, Bridge):
        lines.append("    bridge")
    elif isinstance(d, Tun):
        lines.append("    tun type tun pi off vnet_hdr off persist off")
    if d.master is not None and isinstance(d.master, Bridge):
        port = d.master.ports[d.name]
        onoff = {True: "on", False: "off"}
        lines.append(f"    bridge_slave state {_port_state(d)} priority 32 cost 2 hairpin {onoff[port.hairpin]} "
                     f"guard off root_block off fastleave off learning {onoff[port.learning]} "
                     f"flood {onoff[port.flood]}")
    return lines


def _port_state(dev: Device) -> str:
    """A bridge port's STP state with STP off (cni0's): forwarding while its device is up with
    carrier, disabled otherwise (br_port_carrier_check)."""
    return "forwarding" if dev.up and _carrier(dev) else "disabled"


def bridge_link(ns: "Namespace", details: bool = False, dev: str | None = None) -> str:
    """`bridge link show [dev DEV]` and `bridge -d link show`: each bridge port, in ifindex
    order, as iproute2 6.1 prints it (bridge/link.c print_linkinfo, print_protinfo); `-d` adds the
    port's flags: hairpin, learning and flood as the model has them, the others at the values
    br_add_if gives a new port (the CNI plugin changes none of them)."""
    onoff = {True: "on", False: "off"}
    ports = [d for d in _devices(ns) if d.master is not None and isinstance(d.master, Bridge)]
    if dev is not None:
        ports = [d for d in ports if d.name == dev]
        if not ports:
            raise ConfigError(f"bridge link show dev {dev}: no bridge port {dev!r} in {ns.name}; ports are "
                              f"{', '.join(d.name for d in _devices(ns) if d.master is not None) or 'none'}")
    lines = []
    for d in ports:
        assert isinstance(d.master, Bridge)
        port = d.master.ports[d.name]
        lines.append(f"{d.ifindex}: {_link_name(d)}: {_flags(d)} mtu {d.mtu} master {d.master.name} "
                     f"state {_port_state(d)} priority 32 cost 2")
        if details:
            lines.append(f"    hairpin {onoff[port.hairpin]} guard off root_block off fastleave off "
                         f"learning {onoff[port.learning]} flood {onoff[port.flood]} mcast_flood on bcast_flood on "
                         f"mcast_router 1 mcast_to_unicast off neigh_suppress off vlan_tunnel off isolated off "
                         f"locked off")
    return "\n".join(lines)


def _devices(ns: "Namespace") -> list[Device]:
    return sorted(ns.devices.values(), key=lambda d: d.ifindex)


# routes -----------------------------------------------------------------------------------------

def ip_route(ns: "Namespace", table: str = "main") -> str:
    """`ip route show [table local]`: one route per line, in the kernel's dump order."""
    if table == "main":
        routes = ns.main_table.routes()
    elif table == "local":
        routes = ns.local_table.routes()
    else:
        raise ConfigError(f"table {table!r} is not modelled; the tables are main and local")
    return "\n".join(str(r) for r in routes)


def ip_route_get(ns: "Namespace", addr: str, src: str | None = None) -> str:
    """`ip route get ADDR [from SRC]`, as iproute2 prints the kernel's answer:
    `10.244.1.2 via 10.244.1.0 dev flannel.1 src 10.244.0.0 uid 0` then `    cache`, or with a
    learned path MTU (pmtu.py) `    cache expires 599sec mtu 1450` (trailing spaces left out); local
    destinations go through `lo` (`cache <local>`); with `from`, the source is printed after the
    destination and no `src` follows. An argument that is not an IPv4 address is a ConfigError
    (iproute2: `Error: any valid prefix is expected rather than ...`)."""
    addr = str(parse_address(addr, "ip route get: destination"))
    if src is not None:
        src = str(parse_address(src, "ip route get: from"))
    rr = ns.route_output(addr, src)
    if rr is None:
        return "RTNETLINK answers: Network is unreachable"
    if addr == "0.0.0.0":
        rr = rr._replace(dst=addr)              # the lookup went to this host; iproute2 prints the address asked
    text = format_route_get(rr, src)
    exception = ns.route_cache.get(rr.dst, ns.clock.us) if ns.route_cache.by_dst and rr.route.type == "unicast" else None
    if exception is not None:
        # rt_fill_info: the exception's expiry (seconds left) and its MTU metric, after "cache"
        text += f" expires {exception.seconds_left(ns.clock.us)}sec mtu {'lock ' if exception.locked else ''}" \
                f"{exception.mtu}"
    return text


def format_route_get(rr: RouteResult, src: str | None = None) -> str:
    kind = rr.route.type
    if kind == "blackhole":
        return "RTNETLINK answers: Invalid argument"
    if kind == "unreachable":
        return "RTNETLINK answers: No route to host"
    words = [rr.dst] if kind == "unicast" else [kind, rr.dst]
    if src is not None:
        words += ["from", src]
    if kind == "unicast" and rr.route.via:
        words += ["via", rr.route.via]
    words += ["dev", rr.dev]
    if src is None and rr.src:
        words += ["src", rr.src]
    if kind == "multicast":
        # rt_fill_info copies rt_flags' high bits into rtm_flags: RTCF_MULTICAST (0x20000000) is
        # the bit iproute2 reads as RTM_F_OFFLOAD_FAILED (as Linux 6.18 and iproute2 6.1 print it)
        words.append("rt_offload_failed")
    words += ["uid", "0"]
    joined = kind == "multicast" and rr.dst == "224.0.0.1"      # every device is in the all-hosts group
    cache = {"local": "    cache <local>", "broadcast": "    cache <local,brd>",
             "multicast": "    cache <local,mc>" if joined else "    cache <mc>"}.get(kind, "    cache")
    return " ".join(words) + "\n" + cache


# neighbours and FDB -----------------------------------------------------------------------------

def ip_neigh(ns: "Namespace") -> str:
    """`ip neigh show`: `IP dev DEV lladdr MAC STATE`, or `IP dev DEV INCOMPLETE|FAILED`."""
    order = {d.name: d.ifindex for d in ns.devices.values()}
    entries = sorted(ns.neighbours.entries(), key=lambda e: order.get(e.dev, 1 << 30))
    return "\n".join(str(e) for e in entries)


def bridge_fdb(ns: "Namespace") -> str:
    """`bridge fdb show`: per device in ifindex order, the bridge's entries for that port
    (`MAC dev PORT master BR`, `permanent` for a port's own MAC) and the device's own
    (`self`) entries; a VXLAN device lists `MAC dev flannel.1 dst IP self permanent`. A bridge
    whose MAC was set explicitly also lists that MAC on itself."""
    lines: list[str] = []
    for dev in _devices(ns):
        if isinstance(dev, Bridge) and dev.fixed_mac:
            lines.append(f"{dev.mac} dev {dev.name} master {dev.name} permanent")
        master = dev.master
        if isinstance(master, Bridge):
            lines += [str(e) for e in master.fdb.values() if e.port == dev.name]
        if isinstance(dev, VxlanDevice):
            lines += [str(e) for e in dev.fdb.values()]
    return "\n".join(lines)


# netfilter, conntrack, sysctls ------------------------------------------------------------------

def iptables_save(ns: "Namespace", table: str | None = None) -> str:
    """`iptables-save [-t TABLE]`."""
    return ns.netfilter.save(table)


def nft_list_ruleset(ns: "Namespace") -> str:
    """`nft list ruleset`: the namespace's nf_tables tables, as nft 1.0.6 prints them."""
    return ns.netfilter.nftables.list_ruleset()


def nft_list_ruleset_handles(ns: "Namespace") -> str:
    """`nft -a list ruleset`: the same with every chain's, set's and rule's handle."""
    return ns.netfilter.nftables.list_ruleset(handles=True)


def conntrack_list(ns: "Namespace") -> str:
    """`conntrack -L`."""
    return ns.conntrack.listing()


def sysctl(ns: "Namespace") -> str:
    """`sysctl NAME...` for the modelled sysctls: `net.ipv4.ip_forward = 1`."""
    return "\n".join(ns.sysctl.lines())


# the Node object --------------------------------------------------------------------------------

def node_annotations(annotations: dict[str, str]) -> str:
    """The `annotations:` block of `kubectl get node NODE -o yaml`: keys sorted, as kubectl
    prints a map, and a value quoted the way its YAML writer quotes it (single quotes around
    JSON, double quotes around a string YAML would read as something else: "true", "null")."""
    def value(v: str) -> str:
        if v.startswith(("{", "[")):
            return "'" + v.replace("'", "''") + "'"
        if v in ("true", "false", "null", "yes", "no", "on", "off", "~", ""):
            return f'"{v}"'
        return v
    return "\n".join(["annotations:", *(f"  {k}: {value(v)}" for k, v in sorted(annotations.items()))])
