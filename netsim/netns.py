"""A network namespace: its devices, addresses, sysctls, routing tables, neighbours, netfilter
rules, conntrack table and listening sockets.

Adding an address does what the kernel does: it installs `local` and `broadcast` routes in the
`local` table and, unless the prefix is /32, the connected route `proto kernel scope link src
ADDR` in `main`. Every namespace starts with `lo` up and 127.0.0.1/8, like one made by
`ip netns add` once `ip link set lo up` has run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from ipaddress import IPv4Interface, IPv4Network
from typing import Any, Callable, Iterable

from .addresses import parse_address, parse_interface, parse_network, stable_hash
from .clock import Clock
from .device import Device, Loopback
from .errors import ConfigError
from .neighbour import NeighbourTable, PERMANENT
from .pmtu import RouteExceptions
from .route import Route, RouteResult, RoutingTable, address_int


@dataclass
class Sysctls:
    """The sysctls that change a trace. Defaults are those of a new namespace."""

    ip_forward: bool = False                       # net.ipv4.ip_forward
    bridge_nf_call_iptables: bool = True           # net.bridge.bridge-nf-call-iptables (br_netfilter loaded)
    ip_local_port_range: tuple[int, int] = (32768, 60999)   # net.ipv4.ip_local_port_range
    ip_default_ttl: int = 64                       # net.ipv4.ip_default_ttl
    mtu_expires: int = 600                         # net.ipv4.route.mtu_expires (seconds)
    min_pmtu: int = 552                            # net.ipv4.route.min_pmtu
    ip_no_pmtu_disc: int = 0                       # net.ipv4.ip_no_pmtu_disc
    icmp_ratelimit: int = 1000                     # net.ipv4.icmp_ratelimit (ms per error and peer)
    icmp_ratemask: int = 0x1818                    # net.ipv4.icmp_ratemask: unreachable, quench, time exceeded, param
    icmp_echo_ignore_broadcasts: bool = True       # net.ipv4.icmp_echo_ignore_broadcasts
    route_localnet: bool = False                   # net.ipv4.conf.all.route_localnet (kube-proxy sets it)

    NAMES = {
        "net.ipv4.ip_forward": "ip_forward",
        "net.bridge.bridge-nf-call-iptables": "bridge_nf_call_iptables",
        "net.ipv4.ip_local_port_range": "ip_local_port_range",
        "net.ipv4.ip_default_ttl": "ip_default_ttl",
        "net.ipv4.route.mtu_expires": "mtu_expires",
        "net.ipv4.route.min_pmtu": "min_pmtu",
        "net.ipv4.ip_no_pmtu_disc": "ip_no_pmtu_disc",
        "net.ipv4.icmp_ratelimit": "icmp_ratelimit",
        "net.ipv4.icmp_ratemask": "icmp_ratemask",
        "net.ipv4.icmp_echo_ignore_broadcasts": "icmp_echo_ignore_broadcasts",
        "net.ipv4.conf.all.route_localnet": "route_localnet",
    }
    # the integer sysctls and their ranges (what the kernel's proc handlers accept)
    RANGES = {"ip_default_ttl": (1, 255), "mtu_expires": (0, 1 << 31), "min_pmtu": (68, 65535),
              "ip_no_pmtu_disc": (0, 3), "icmp_ratelimit": (0, 1 << 31), "icmp_ratemask": (0, (1 << 32) - 1)}

    def lines(self) -> list[str]:
        """As `sysctl NAME` prints them."""
        out = []
        for key, attr in self.NAMES.items():
            value = getattr(self, attr)
            if isinstance(value, tuple):
                text = "\t".join(str(v) for v in value)
            else:
                text = str(int(value))
            out.append(f"{key} = {text}")
        return out


@lru_cache(maxsize=1 << 14)
def _interface_ints(iface: IPv4Interface) -> tuple[int, int, str]:
    """An address's network and mask as integers, and the address as text (source selection
    asks for them on every route lookup)."""
    network = iface.network
    return int(network.network_address), int(network.netmask), str(iface.ip)


def _device_sysctl(devices: dict, key: object, value: object) -> bool:
    """net.ipv4.conf.DEV.route_localnet written to DEV (True), or not a per-device key (False)."""
    parts = key.split(".") if isinstance(key, str) else []
    # sysctl(8) writes a dot in a device name as '/': net.ipv4.conf.flannel/1.route_localnet
    if len(parts) != 5 or parts[:3] != ["net", "ipv4", "conf"] or parts[4] != "route_localnet" \
            or parts[3].replace("/", ".") not in devices:
        return False
    if str(value) not in ("0", "1"):
        raise ConfigError(f"sysctl {key}: {value!r} must be 0 or 1")
    devices[parts[3].replace("/", ".")].route_localnet = str(value) == "1"
    return True


def route_localnet(ns: Namespace, dev: Device) -> bool:
    """IN_DEV_ROUTE_LOCALNET: net.ipv4.conf.all.route_localnet or DEV's own key is 1, so 127/8
    may be routed to and from `dev` (the loopback device needs neither)."""
    return ns.sysctl.route_localnet or dev.route_localnet or "LOOPBACK" in dev.flags


# route_get's answer to (dst, src): the answer, the routes it took, those it passed over, the tables' versions
RouteGot = tuple[RouteResult, tuple[Route, ...], tuple[Route, ...], tuple[int, int]]


def route_get(self: Namespace, dst: str, src: str | None = None) -> RouteResult | None:
    """`ip route get DST [from SRC]` (Namespace.route_get): local table first, then main. An
    answer is remembered while neither table changes, the routes it took stay usable and those
    it passed over (their device down or gone) stay unusable: every packet a trace sends asks
    again."""
    local, main, usable = self.local_table, self.main_table, self._usable
    known = self._routes_got.get((dst, src))
    if known is not None:
        rr, took, skipped, versions = known
        if (versions == (local.version, main.version) and all(map(usable, took))
                and not any(map(usable, skipped))):
            return rr
    addr = address_int(dst)
    passed: list[Route] = []
    route = local.lookup_noting(addr, usable, passed)
    took = (route,) if route is not None else ()
    if route is None or route.type not in ("local", "broadcast"):
        route = main.lookup_noting(addr, usable, passed)
        took = (*took, route) if route is not None else took
    if route is None:
        return None
    if route.type == "local":
        rr = RouteResult(dst, route, "lo", dst, src or dst)
    else:
        nexthop = route.via or dst
        rr = RouteResult(dst, route, route.dev, nexthop, src or self.select_source(route, nexthop))
    if len(self._routes_got) >= 4096:
        self._routes_got.clear()
    self._routes_got[(dst, src)] = (rr, took, tuple(passed), (local.version, main.version))
    return rr


class Namespace:
    def __init__(self, name: str):
        from .conntrack import Conntrack
        from .netfilter import Netfilter

        self.name = name
        self.devices: dict[str, Device] = {}
        self.bridges: list[Device] = []         # the bridge devices among them, in the order added
        self.sysctl = Sysctls()
        self.local_table = RoutingTable("local")
        self.main_table = RoutingTable("main")
        self._routes_got: dict[tuple[str, str | None], RouteGot] = {}     # route_get's answers
        self.neighbours = NeighbourTable()
        self.route_cache = RouteExceptions()        # learned path MTUs (pmtu.py)
        self.clock = Clock()                        # the network's clock, once the namespace joins one
        self.icmp_peers: dict[str, tuple[int, int]] = {}   # inet_peer: destination -> (rate tokens, last), us
        self.listeners: set[tuple[str, int]] = set()
        # the server programs that run on this namespace's listening sockets, by (proto, port):
        # a factory making the program, or None for the default server of the protocol
        # (sockets/servers.py: the HTTP echo server on TCP, the answering server on UDP)
        self.servers: dict[tuple[str, int], object] = {}
        # programs reading ARP from a packet socket (AF_PACKET, ETH_P_ARP), like MetalLB's speaker:
        # each is called with (device, ARP request) and returns (its decision, a frame to send) or None
        self.arp_responders: list[Callable[[Device, Any], tuple[Any, Any] | None]] = []
        self.conntrack = Conntrack(self)
        self.netfilter = Netfilter(self)
        self._ifindex = 0
        self._local_addrs: dict[str, str] = {}      # address -> device
        self._counters: dict[object, int] = {}
        self.add_device(Loopback())
        self.addr_add("lo", "127.0.0.1/8")

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"

    # devices ---------------------------------------------------------------------------
    def add_device(self, dev: Device) -> Device:
        if dev.name in self.devices:
            raise ConfigError(f"namespace {self.name} already has a device named {dev.name!r}")
        if not dev.name or len(dev.name) > 15 or "/" in dev.name or " " in dev.name:
            raise ConfigError(f"invalid device name {dev.name!r}: 1-15 characters, no '/' or spaces (IFNAMSIZ)")
        self._ifindex += 1
        dev.ifindex = self._ifindex
        dev.netns = self
        self.devices[dev.name] = dev
        if dev.kind == "bridge":
            self.bridges.append(dev)
        return dev

    def device(self, name: str) -> Device:
        try:
            return self.devices[name]
        except KeyError:
            raise ConfigError(f"namespace {self.name} has no device {name!r}; "
                              f"it has {', '.join(self.devices)}") from None

    def set_sysctl(self, key: str, value) -> None:
        """`sysctl -w KEY=VALUE` with the kernel's names (per device: net.ipv4.conf.DEV.route_localnet)."""
        if _device_sysctl(self.devices, key, value):
            return
        attr = Sysctls.NAMES.get(key)
        if attr is None:
            raise ConfigError(f"unknown sysctl {key!r}; modelled ones are {', '.join(Sysctls.NAMES)}")
        if attr == "ip_local_port_range":
            low, high = (int(v) for v in (value.split() if isinstance(value, str) else value))
            if not 1 <= low < high <= 65535:
                raise ConfigError(f"ip_local_port_range {low} {high} is invalid: need 1 <= low < high <= 65535")
            value = (low, high)
        elif attr in Sysctls.RANGES:
            low, high = Sysctls.RANGES[attr]
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"sysctl {key}: {value!r} is not an integer") from None
            if not low <= value <= high:
                raise ConfigError(f"{attr} {value} is out of range {low}..{high}")
        else:
            value = bool(int(value))
        setattr(self.sysctl, attr, value)

    # addresses -------------------------------------------------------------------------
    def addr_add(self, dev_name: str, cidr: str) -> IPv4Interface:
        """`ip addr add CIDR dev DEV`."""
        dev = self.device(dev_name)
        iface = parse_interface(cidr)
        addr = str(iface.ip)
        if addr in self._local_addrs:
            raise ConfigError(f"address {addr} is already on {self.name}/{self._local_addrs[addr]}")
        if iface.network.prefixlen < 31:
            for other in self.devices.values():
                for existing in other.addresses:
                    if other is not dev and existing.network.prefixlen < 31 and existing.network.overlaps(iface.network):
                        raise ConfigError(
                            f"{cidr} on {dev_name} overlaps {existing} on {other.name} in namespace {self.name}")
        # inet_insert_ifa: an address in the subnet (same mask) of one already on the device is
        # secondary; it gets its local route but no prefix or broadcast route of its own.
        secondary = any(e.network == iface.network for e in dev.addresses)
        dev.addresses.append(iface)
        self._local_addrs[addr] = dev_name
        self.local_table.add(Route(parse_network(addr), dev_name, src=addr, scope="host",
                                   proto="kernel", type="local"))
        if secondary:
            return iface
        if dev_name == "lo" and iface.network.prefixlen < 32:
            self.local_table.add(Route(iface.network, "lo", src=addr, scope="host", proto="kernel", type="local"))
        if iface.network.prefixlen < 31:
            bcast = parse_network(str(iface.network.broadcast_address))
            try:
                self.local_table.add(Route(bcast, dev_name, src=addr, scope="link", proto="kernel", type="broadcast"))
            except ValueError:
                pass
        if iface.network.prefixlen < 32 and dev_name != "lo":
            self.main_table.add(Route(iface.network, dev_name, src=addr, scope="link", proto="kernel"))
        return iface

    def is_local_address(self, addr: str) -> bool:
        return self.local_table.is_local(addr)

    def addresses(self) -> Iterable[tuple[str, IPv4Interface]]:
        for dev in self.devices.values():
            for iface in dev.addresses:
                yield dev.name, iface

    # routes ----------------------------------------------------------------------------
    def route_add(self, dst: str, dev: str | None = None, via: str | None = None, src: str | None = None,
                  onlink: bool = False, metric: int = 0, scope: str | None = None,
                  type: str = "unicast") -> Route:
        """`ip route add DST [via GW] [dev DEV] [src ADDR] [onlink] [metric N]`."""
        net = parse_network(dst, "route destination")
        if via is not None:
            parse_address(via, "gateway")
        if src is not None:
            parse_address(src, "route source")
            if not self.is_local_address(src):
                raise ConfigError(f"route {dst}: src {src} is not an address of namespace {self.name} "
                                  f"(RTNETLINK: Invalid prefsrc address)")
        if type in ("blackhole", "unreachable"):
            route = Route(net, dev or "lo", type=type, metric=metric)
            self.main_table.add(route)
            return route
        if dev is None:
            if via is None:
                raise ConfigError(f"route {dst} needs a 'dev' or a 'via' gateway")
            connected = self.main_table.lookup(address_int(via), lambda r: r.scope == "link" and r.via is None)
            if connected is None:
                raise ConfigError(f"route {dst} via {via}: the gateway is not reachable in namespace {self.name}: "
                                  f"no connected route covers it (Error: Nexthop has invalid gateway)")
            dev = connected.dev
        else:
            self.device(dev)
            if via is not None and not onlink:
                connected = self.main_table.lookup(address_int(via), lambda r: r.scope == "link" and r.via is None)
                if connected is None or connected.dev != dev:
                    raise ConfigError(f"route {dst} via {via} dev {dev}: the gateway is not on-link on {dev} "
                                      f"(Error: Nexthop has invalid gateway); add 'onlink' to force it")
        if scope is None:
            scope = "universe" if via is not None else "link"
        route = Route(net, dev, via=via, src=src, scope=scope, metric=metric, onlink=onlink)
        try:
            self.main_table.add(route)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return route

    def route_del(self, dst: str, dev: str | None = None, via: str | None = None) -> list[Route]:
        net = parse_network(dst, "route destination")
        gone = self.main_table.remove_where(
            lambda r: r.dst == net and (dev is None or r.dev == dev) and (via is None or r.via == via))
        if not gone:
            raise ConfigError(f"namespace {self.name} has no route {dst} to delete (RTNETLINK: No such process)")
        return gone

    def _usable(self, route: Route) -> bool:
        dev = self.devices.get(route.dev)
        return dev is not None and dev.up

    route_get = route_get         # `ip route get DST [from SRC]` (the module's function, remembered answers)

    def route_output(self, dst: str, src: str | None = None) -> RouteResult | None:
        """ip_route_output_key, what a socket's send and `ip route get` ask: the route lookup,
        then __mkroute_output's special destinations: 0.0.0.0 is this host (127.0.0.1 on lo);
        the limited broadcast (a `broadcast` route) and a multicast group (a `multicast` route)
        leave by the device the lookup found, to no gateway."""
        if dst == "0.0.0.0":
            dst = src or "127.0.0.1"
        rr = self.route_get(dst, src)
        if rr is None or rr.route.type in ("local", "broadcast", "blackhole", "unreachable"):
            return rr
        value = address_int(dst)
        kind = "broadcast" if value == 0xFFFFFFFF else "multicast" if 0xE0000000 <= value <= 0xEFFFFFFF else ""
        if not kind:
            return rr
        route = Route(parse_network(dst), rr.dev, src=rr.src, scope="link", type=kind)
        return RouteResult(dst, route, rr.dev, dst, rr.src)

    def select_source(self, route: Route, nexthop: str) -> str | None:
        """`inet_select_addr`: the route's src, else an address on the output device (one in the
        gateway's subnet first), else any global address of the namespace."""
        if route.src:
            return route.src
        dev = self.devices.get(route.dev)
        if dev is not None and dev.addresses:
            target = address_int(nexthop)
            for iface in dev.addresses:
                network, mask, ip = _interface_ints(iface)
                if target & mask == network:
                    return ip
            return _interface_ints(dev.addresses[0])[2]
        for name, iface in self.addresses():
            if name != "lo":
                return str(iface.ip)
        return None

    def masquerade_source(self, outdev: str, nexthop: str | None) -> str:
        """MASQUERADE's source: the address the kernel would pick on the outgoing device."""
        dev = self.device(outdev)
        if nexthop is not None:
            target = address_int(nexthop)
            for iface in dev.addresses:
                network, mask, ip = _interface_ints(iface)
                if target & mask == network:
                    return ip
        if dev.addresses:
            return _interface_ints(dev.addresses[0])[2]
        raise ConfigError(f"MASQUERADE on {self.name}/{outdev}: the device has no IPv4 address")

    # neighbours -------------------------------------------------------------------------
    def neigh_add(self, ip: str, dev: str, lladdr: str, state: str = PERMANENT) -> None:
        """`ip neigh add IP lladdr MAC dev DEV nud permanent`."""
        parse_address(ip, "neighbour")
        self.device(dev)
        self.neighbours.set(dev, ip, lladdr, state)

    # sockets ----------------------------------------------------------------------------
    def listen(self, proto: str, port: int, program: object = None) -> None:
        """A server program listening on `port`: by default an HTTP echo server on TCP and a
        server answering every datagram on UDP (netsim/sockets/servers.py); `program` is a
        callable making another one (a fresh program for every walk), e.g.
        `lambda: CoreDnsServer(data)`."""
        if proto not in ("tcp", "udp"):
            raise ConfigError(f"can only listen on tcp or udp, not {proto!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"port {port!r} is out of range 1..65535")
        if program is not None and not callable(program):
            raise ConfigError(f"program {program!r} must be a callable that makes the server program")
        self.listeners.add((proto, port))
        self.servers[(proto, port)] = program

    def unlisten(self, proto: str, port: int) -> None:
        self.listeners.discard((proto, int(port)))
        self.servers.pop((proto, int(port)), None)

    def path_mtu(self, rr: RouteResult) -> int:
        """The MTU a packet this namespace sends along `rr` must fit (ipv4_mtu): a learned
        route exception's, else the output device's."""
        dev = self.devices.get(rr.dev)
        mtu = dev.mtu if dev is not None else 1500
        if self.route_cache.by_dst:
            exception = self.route_cache.get(rr.dst, self.clock.us)
            if exception is not None and exception.mtu < mtu:
                return exception.mtu
        return mtu

    # deterministic stand-ins for kernel randomness ---------------------------------------
    def counter(self, key: object, start: int, modulo: int = 1 << 16) -> int:
        """A per-namespace counter seeded by a stable hash, like the kernel's hashed ID and
        port generators."""
        value = self._counters.get(key)
        if value is None:
            value = start % modulo
        self._counters[key] = (value + 1) % modulo
        return value

    def ip_id(self, src: str, dst: str, proto: int) -> int:
        """`ip_select_ident`: a counter per (destination, protocol) bucket, never 0."""
        key = ("ipid", src, dst, proto)
        value = self._counters.get(key)     # the seed is hashed for the bucket's first packet only
        value = self.counter(key, stable_hash(self.name, src, dst, proto) if value is None else value)
        return value or self.counter(key, 1)

    def ephemeral_port(self, src: str, dst: str, dport: int, proto: str) -> int:
        """`__inet_hash_connect`: a hashed offset into ip_local_port_range, then the next one."""
        low, high = self.sysctl.ip_local_port_range
        span = high - low + 1
        start = stable_hash("port", self.name, src, dst, dport, proto)
        return low + self.counter(("port", proto), start % span, span)

    def reset_counters(self) -> None:
        self._counters.clear()
