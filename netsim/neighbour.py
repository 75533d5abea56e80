"""The neighbour (ARP) table, as `ip neigh` shows it.

States follow the kernel's NUD machine as far as a trace can see it: PERMANENT entries are
static (flanneld installs one per remote VTEP, so no ARP ever crosses the tunnel); an ARP
reply makes an entry REACHABLE; an ARP request addressed to us creates a STALE entry for its
sender (`neigh_event_ns`), which is used without a new request; a lookup with no entry
creates an INCOMPLETE one, queues the packet and broadcasts a request; after
`mcast_solicit` (3) unanswered requests the entry is FAILED and the queued packets are
dropped with ICMP host unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import ConfigError

PERMANENT = "PERMANENT"
REACHABLE = "REACHABLE"
STALE = "STALE"
INCOMPLETE = "INCOMPLETE"
FAILED = "FAILED"
NOARP = "NOARP"
STATES = (PERMANENT, REACHABLE, STALE, INCOMPLETE, FAILED, NOARP)
MCAST_SOLICIT = 3


@dataclass(slots=True)
class Neighbour:
    ip: str
    dev: str
    lladdr: str | None
    state: str
    probes: int = 0
    queue: list[Any] = field(default_factory=list, repr=False)
    hh: bool = False        # a cached hardware header (neigh->hh.hh_len): set by the first output through it

    @property
    def usable(self) -> bool:
        return self.state in (PERMANENT, REACHABLE, STALE, NOARP) and self.lladdr is not None

    def __str__(self) -> str:
        if self.lladdr and self.state != FAILED and self.state != INCOMPLETE:
            return f"{self.ip} dev {self.dev} lladdr {self.lladdr} {self.state}"
        return f"{self.ip} dev {self.dev} {self.state}"


class NeighbourTable:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Neighbour] = {}
        self._dynamic: set[tuple[str, str]] = set()      # keys ever set to a learned state (flush_dynamic)

    def get(self, dev: str, ip: str) -> Neighbour | None:
        return self._entries.get((dev, ip))

    def set(self, dev: str, ip: str, lladdr: str | None, state: str) -> Neighbour:
        if state not in STATES:
            raise ConfigError(f"neighbour state {state!r} is not one of {', '.join(STATES)}")
        entry = self._entries.get((dev, ip))
        if state != PERMANENT and state != NOARP:
            self._dynamic.add((dev, ip))
        if entry is None:
            entry = self._entries[(dev, ip)] = Neighbour(ip, dev, lladdr, state)
        else:
            # a new record that takes over the queue and probes (who kept the old one keeps
            # what it saw)
            entry = self._entries[(dev, ip)] = Neighbour(ip, dev, lladdr, state, entry.probes, entry.queue)
        return entry

    def set_many(self, dev: str, pairs: Iterable[tuple[str, str]], state: str) -> None:
        """set(dev, ip, lladdr, state) for each (ip, lladdr) pair, in order (flanneld's
        PERMANENT entry for every other lease): a record of this table's own for each."""
        if state not in STATES:
            raise ConfigError(f"neighbour state {state!r} is not one of {', '.join(STATES)}")
        if state != PERMANENT and state != NOARP:
            for ip, lladdr in pairs:
                self.set(dev, ip, lladdr, state)
            return
        entries = self._entries
        if not entries:
            self._entries = {(dev, ip): Neighbour(ip, dev, lladdr, state) for ip, lladdr in pairs}
            return
        if not any(key[0] == dev for key in entries):      # a new device: nothing to update
            entries.update({(dev, ip): Neighbour(ip, dev, lladdr, state) for ip, lladdr in pairs})
            return
        for ip, lladdr in pairs:
            entry = entries.get((dev, ip))
            if entry is None:
                entries[(dev, ip)] = Neighbour(ip, dev, lladdr, state)
            else:
                entries[(dev, ip)] = Neighbour(ip, dev, lladdr, state, entry.probes, entry.queue)

    def delete(self, dev: str, ip: str) -> None:
        if (dev, ip) not in self._entries:
            raise ConfigError(f"no neighbour entry for {ip} on {dev}")
        del self._entries[(dev, ip)]

    def flush_dynamic(self) -> None:
        """`ip neigh flush all` of learned entries: PERMANENT and NOARP ones stay."""
        entries = self._entries
        for key in self._dynamic:
            entry = entries.get(key)
            if entry is not None and entry.state not in (PERMANENT, NOARP):
                del entries[key]
        self._dynamic.clear()

    def flush_dev(self, dev: str) -> None:
        for key in [k for k in self._entries if k[0] == dev]:
            del self._entries[key]

    def entries(self) -> list[Neighbour]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
