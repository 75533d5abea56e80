"""Routing tables and lookups, as `ip route` shows them and `ip route get` resolves them.

Models the FIB of one namespace: the `local` table (filled by the kernel when an address is
added: `local` routes for own addresses, `broadcast` routes) consulted before `main`;
longest-prefix match, then the lowest metric; `via` gateways, `dev`, `src`, `scope`,
`onlink`. Lookups walk the prefix lengths present (at most 33 dict probes), never the routes,
so a node with thousands of Flannel routes resolves as fast as one with three.
Source address selection follows `inet_select_addr`: the route's `src`, else an address on
the output device in the gateway's subnet, else the device's first address, else any global
address of the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, NamedTuple

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .decision import RouteRef

SCOPES = ("universe", "link", "host")
_set_attr = object.__setattr__          # a frozen route filling in what it worked out


@dataclass(frozen=True)
class Route:
    dst: IPv4Network
    dev: str
    via: str | None = None
    src: str | None = None
    scope: str = "universe"
    proto: str = ""
    metric: int = 0
    onlink: bool = False
    type: str = "unicast"   # unicast | local | broadcast | blackhole | unreachable
    # worked out once (a route does not change): its hash, as every forwarded packet's decision
    # looks its record up by the route, and its text
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)
    _text: str | None = field(default=None, init=False, repr=False, compare=False)
    _slot: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def slot(self) -> tuple[int, int]:
        """(prefix length, network address as an int): where the route sits in a table."""
        slot = self._slot
        if slot is None:
            slot = (self.dst.prefixlen, int(self.dst.network_address))
            _set_attr(self, "_slot", slot)
        return slot

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            value = hash((self.dst, self.dev, self.via, self.src, self.scope, self.proto, self.metric, self.onlink,
                          self.type))
            _set_attr(self, "_hash", value)
        return value

    def __str__(self) -> str:
        """The route as `ip route` prints it."""
        text = self._text
        if text is None:
            text = self.text()
            _set_attr(self, "_text", text)
        return text

    def text(self) -> str:
        if self.dst.prefixlen == 0:
            dst = "default"
        elif self.dst.prefixlen == 32:
            dst = str(self.dst.network_address)
        else:
            dst = str(self.dst)
        parts = [dst] if self.type == "unicast" else [self.type, dst]
        if self.via:
            parts += ["via", self.via]
        if self.type not in ("blackhole", "unreachable"):
            parts += ["dev", self.dev]
        if self.proto:
            parts += ["proto", self.proto]
        if self.scope != "universe":
            parts += ["scope", self.scope]
        if self.src:
            parts += ["src", self.src]
        if self.metric:
            parts += ["metric", str(self.metric)]
        if self.onlink:
            parts.append("onlink")
        return " ".join(parts)


class FrozenRoutes:
    """A set of routes as a table keys them, frozen: built once (flanneld's route to every
    lease) and loaded into any number of tables (`RoutingTable.load`). What it holds never
    changes, so tables may hold the same routes; each table copies the mapping it loads."""

    __slots__ = ("by_len",)

    def __init__(self, routes: Iterable[Route]):
        by_len: dict[int, dict[int, tuple[Route, ...]]] = {}
        for route in routes:
            plen, key = route.slot
            bucket = by_len.setdefault(plen, {})
            bucket[key] = _by_metric((*bucket.get(key, ()), route))
        self.by_len: Mapping[int, Mapping[int, tuple[Route, ...]]] = MappingProxyType(
            {plen: MappingProxyType(bucket) for plen, bucket in by_len.items()})

    def __len__(self) -> int:
        return sum(len(rs) for bucket in self.by_len.values() for rs in bucket.values())


def _by_metric(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    return tuple(sorted(routes, key=lambda r: r.metric))


class RoutingTable:
    """One table (`local` or `main`): routes grouped by prefix length for O(33) lookups. The
    routes under one destination are an immutable tuple, replaced on every change."""

    def __init__(self, name: str):
        self.name = name
        self._by_len: dict[int, dict[int, tuple[Route, ...]]] = {}
        self._lengths: list[int] = []   # present prefix lengths, longest first
        # address -> every route covering it, longest prefix first: what a lookup of it walks
        # (a trace looks the same few addresses up again and again); emptied on every change
        self._covering: dict[int, tuple[Route, ...]] = {}
        self._local: dict[str, bool] = {}           # address text -> is its longest match `local`
        self.version = 0                            # counts the changes (Namespace.route_get's memo)

    def add(self, route: Route) -> None:
        self._covering.clear()
        self._local.clear()
        self.version += 1
        plen = route.dst.prefixlen
        bucket = self._by_len.get(plen)
        if bucket is None:
            bucket = self._by_len[plen] = {}
            self._lengths = sorted(self._by_len, reverse=True)
        key = int(route.dst.network_address)
        routes = bucket.get(key, ())
        for existing in routes:
            if existing.metric == route.metric and existing.type == route.type and existing.dev == route.dev \
                    and existing.via == route.via:
                raise ConfigError(f"route {route} exists already in table {self.name} (RTNETLINK: File exists)")
        bucket[key] = _by_metric((*routes, route))

    def load(self, frozen: FrozenRoutes, without: Route | None = None) -> None:
        """add() every route of `frozen` but `without`: one dict copy per prefix length when
        none of its destinations is in the table yet (flanneld's thousands of peer routes on
        a node of a big cluster), else one add() per route."""
        self._covering.clear()
        self._local.clear()
        self.version += 1
        for plen, entries in frozen.by_len.items():
            skip = without.slot[1] if without is not None and without.slot[0] == plen else None
            bucket = self._by_len.get(plen)
            if bucket and any(key in entries and key != skip for key in bucket):
                for routes in entries.values():
                    for route in routes:
                        if route != without:
                            self.add(route)
                continue
            merged = dict(entries)
            if skip is not None and skip in merged:
                rest = tuple(r for r in merged[skip] if r != without)
                if rest:
                    merged[skip] = rest
                else:
                    del merged[skip]
            if bucket:
                merged.update(bucket)
            self._by_len[plen] = merged
        self._lengths = sorted(self._by_len, reverse=True)

    def remove(self, route: Route) -> None:
        self._covering.clear()
        self._local.clear()
        self.version += 1
        bucket = self._by_len.get(route.dst.prefixlen, {})
        routes = bucket.get(int(route.dst.network_address), ())
        if route not in routes:
            raise ConfigError(f"no route {route} in table {self.name} (RTNETLINK: No such process)")
        remaining = tuple(r for r in routes if r != route)
        if remaining:
            bucket[int(route.dst.network_address)] = remaining
        else:
            del bucket[int(route.dst.network_address)]

    def remove_where(self, predicate) -> list[Route]:
        gone = [r for r in self.routes() if predicate(r)]
        for route in gone:
            self.remove(route)
        return gone

    def lookup(self, addr: int, usable=None) -> Route | None:
        """Longest prefix match; `usable(route)` filters out routes whose device is down."""
        routes = self._covering.get(addr)
        if routes is None:
            routes = self._covers(addr)
        for route in routes:
            if usable is None or usable(route):
                return route
        return None

    def lookup_noting(self, addr: int, usable: Callable[[Route], bool],
                      skipped: list[Route]) -> Route | None:
        """lookup() that adds the covering routes it passed over as unusable to `skipped`."""
        routes = self._covering.get(addr)
        if routes is None:
            routes = self._covers(addr)
        for route in routes:
            if usable(route):
                return route
            skipped.append(route)
        return None

    def is_local(self, addr: str) -> bool:
        """Whether the longest match for the address `addr` is a `local` route (the local
        table answering "is this one of ours?", which every received packet asks twice)."""
        found = self._local.get(addr)
        if found is None:
            if len(self._local) >= 4096:
                self._local.clear()
            route = self.lookup(address_int(addr))
            found = self._local[addr] = route is not None and route.type == "local"
        return found

    def _covers(self, addr: int) -> tuple[Route, ...]:
        found: list[Route] = []
        for plen in self._lengths:
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            found.extend(self._by_len[plen].get(addr & mask, ()))
        if len(self._covering) >= 4096:
            self._covering.clear()
        routes = self._covering[addr] = tuple(found)
        return routes

    def routes(self) -> list[Route]:
        """All routes in the order `ip route show` prints them: the FIB trie's order, by network
        address, then the longer prefix first (10.0.0.0/24 before 10.0.0.0/16), then metric."""
        out = [r for bucket in self._by_len.values() for rs in bucket.values() for r in rs]
        return sorted(out, key=lambda r: (int(r.dst.network_address), -r.dst.prefixlen, r.metric,
                                          r.type != "broadcast"))

    def __len__(self) -> int:
        return sum(len(rs) for bucket in self._by_len.values() for rs in bucket.values())


class RouteResult(NamedTuple):
    """What `ip route get ADDR` answers: the route, the device, the next hop and the source (a
    named tuple: every packet's route lookup makes one)."""

    dst: str
    route: Route
    dev: str
    nexthop: str
    src: str | None

    @property
    def is_local(self) -> bool:
        return self.route.type == "local"

    def __str__(self) -> str:
        if self.route.type == "local":
            return f"local {self.dst} dev lo src {self.src}"
        via = f" via {self.route.via}" if self.route.via else ""
        src = f" src {self.src}" if self.src else ""
        return f"{self.dst}{via} dev {self.dev}{src}"


@lru_cache(maxsize=1 << 16)       # every lookup of a trace parses one of a few addresses
def address_int(addr: str | IPv4Address) -> int:
    return int(IPv4Address(addr))


def route_ref(rr: "RouteResult | Route", text: str | None = None) -> "RouteRef":
    """The route a decision consulted, as a record (netsim.decision.RouteRef)."""
    if isinstance(rr, RouteResult):
        route, src, dev = rr.route, rr.src or "", rr.dev
    else:
        route, src, dev = rr, rr.src or "", rr.dev
    return _route_ref(route, src, dev, text)


def route_ref_for(route: Route, src: str, dev: str, text: str | None = None) -> "RouteRef":
    """route_ref of a lookup's result given by its parts: the route, the source it chose
    ("" for none) and the device."""
    return _route_ref(route, src, dev, text)


@lru_cache(maxsize=1 << 14)
def _route_ref(route: Route, src: str, dev: str, text: str | None) -> "RouteRef":
    from .decision import RouteRef
    table = "local" if route.type in ("local", "broadcast") else "main"
    return RouteRef(table, text if text is not None else str(route), dev, route.via or "", src, route.type)
