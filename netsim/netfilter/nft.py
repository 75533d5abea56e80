"""The nf_tables state of one network namespace, as `nft -f` builds it and `nft list ruleset`
prints it (nftables 1.0.6 on Linux 6.18, checked in tests/test_lab_nft.py).

A namespace holds tables (`ip kube-proxy`, `ip flannel-ipv4`, ...); a table holds chains, named
sets and maps. A chain with a type, hook and priority is a base chain: the kernel registers it on
that netfilter hook (net/netfilter/nf_tables_api.c, nf_tables_register_hook). A rule is a list
of expressions (nft_expr.py).

`NftRuleset.run(text)` applies a transaction in nft's command syntax (`add table|chain|set|map|
rule|element`, `flush chain|set|map|ruleset`, `delete chain|set|map|table`) all or nothing, as
`nft -f` commits one batch; `check(text)` is `nft -c -f`. Handles are the kernel's: a table
takes the next number of a per-namespace counter, and every chain, named set, anonymous
set (a `{ ... }` of more than one element or any vmap literal; nft folds a one-element set into
its value) and rule the next number of its table's counter (nf_tables_alloc_handle). Base chains
also take a registration number: at equal priority the chain registered last runs first
(nf_hook_entries_grow, net/netfilter/core.c).

`list_ruleset()` prints what `nft list ruleset` prints (with `handles=True`, `nft -a`): objects in
creation order, sets before chains, set elements sorted by value, IP elements two to a line, base
chain priorities by name where nft has one for the hook (`dstnat - 10` at prerouting, `-110` at
output, nftables src/rule.c prio2str).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .nft_expr import (
    AnonMap, AnonSet, Counter, Match, NftError, RuleBody, SetRef, Verdict, Vmap, parse_key, parse_rule, parse_verdict,
    sort_key, tokenize, unquote, value_text, _element_text,
)

FAMILIES = ("ip",)                       # netsim is IPv4; `ip6` tables are kept and printed, never run
ALL_FAMILIES = ("ip", "ip6", "inet")
HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
CHAIN_TYPES = ("filter", "nat", "route")
# nftables src/rule.c std_prios for the ip, ip6 and inet families; dstnat is a name only at
# prerouting, srcnat only at postrouting (std_prio_family_hook_compat)
STD_PRIOS = (("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0), ("security", 50), ("srcnat", 100))
_PRIO_BY_NAME = dict(STD_PRIOS)
_NAME_ONLY_AT = {"dstnat": "prerouting", "srcnat": "postrouting"}
SET_TYPES = ("ipv4_addr", "inet_proto", "inet_service", "mark", "ct_state", "integer", "ifname")


def priority_text(hook: str, priority: int) -> str:
    """A base chain's priority as nft prints it: a standard name within 10 of the value, if that
    name is valid for the hook; else the number."""
    for name, value in STD_PRIOS:
        if abs(priority - value) <= 10:
            if _NAME_ONLY_AT.get(name, hook) != hook:
                break
            offset = priority - value
            return name + (f" + {offset}" if offset > 0 else f" - {-offset}" if offset < 0 else "")
    return str(priority)


def parse_priority(hook: str, text: str) -> int:
    """`-110`, `filter`, `dstnat - 10`, `srcnat`."""
    words = text.split()
    try:
        if words[0] in _PRIO_BY_NAME:
            base = _PRIO_BY_NAME[words[0]]
            if _NAME_ONLY_AT.get(words[0], hook) != hook:
                raise NftError(f"priority {words[0]} is not valid for hook {hook}")
            if len(words) == 3 and words[1] in "+-":
                return base + int(words[2]) * (1 if words[1] == "+" else -1)
            if len(words) == 1:
                return base
        elif len(words) == 1:
            return int(words[0])
    except ValueError:
        pass
    raise NftError(f"priority {text!r} is not a number or a standard priority name")


@dataclass(eq=False)
class Rule:
    """A rule of a chain: its handle, its expressions and its comment."""

    handle: int
    body: RuleBody
    counts: list[int] = field(default_factory=lambda: [0, 0])     # counter: packets, bytes
    _parts: tuple[tuple[str, ...], tuple[str, ...]] | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The rule as `nft list ruleset` prints it."""
        matches, statements = self.parts()
        text = " ".join((*matches, *statements))
        return text + (f' comment "{self.body.comment}"' if self.body.comment is not None else "")

    def parts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(its leading match expressions, its other statements), each as nft prints it; a
        counter with its current counts."""
        if self._parts is not None:
            return self._parts
        stmts = self.body.stmts
        n = 0
        while n < len(stmts) and type(stmts[n]) is Match:
            n += 1
        counted = any(type(s) is Counter for s in stmts)
        parts = (tuple(str(s) for s in stmts[:n]),
                 tuple(f"counter packets {self.counts[0]} bytes {self.counts[1]}" if type(s) is Counter else str(s)
                       for s in stmts[n:]))
        if not counted:
            self._parts = parts
        return parts


@dataclass(eq=False)
class Chain:
    """A chain; with `type`, `hook` and `priority` a base chain."""

    name: str
    handle: int
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str = "accept"
    comment: str | None = None
    rules: list[Rule] = field(default_factory=list)
    registered: int = 0          # the order base chains were registered on their hook

    @property
    def base(self) -> bool:
        return self.hook is not None


@dataclass
class NftSet:
    """A named set (`map` when it has a data type): typed keys, and per element its verdict (for
    a verdict map) and comment."""

    name: str
    handle: int
    key_type: str                # "ipv4_addr" or "ipv4_addr . inet_proto . inet_service"
    data_type: str | None = None  # "verdict" for a map
    comment: str | None = None
    flags: tuple[str, ...] = ()
    timeout: str | None = None
    elements: dict[Any, tuple[Verdict | None, str | None]] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return self.data_type is not None


@dataclass
class Table:
    """A table of one family: chains and sets by name, in creation order."""

    family: str
    name: str
    handle: int
    comment: str | None = None
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, NftSet] = field(default_factory=dict)
    next_handle: int = 0

    def clone(self) -> "Table":
        """A copy whose chains, sets and elements can change without touching this one (rules
        are shared: a rule's expressions never change)."""
        chains = {name: Chain(c.name, c.handle, c.type, c.hook, c.priority, c.policy, c.comment, list(c.rules),
                              c.registered) for name, c in self.chains.items()}
        sets = {name: NftSet(s.name, s.handle, s.key_type, s.data_type, s.comment, s.flags, s.timeout,
                             dict(s.elements)) for name, s in self.sets.items()}
        return Table(self.family, self.name, self.handle, self.comment, chains, sets, self.next_handle)

    def alloc_handle(self) -> int:
        """nf_tables_alloc_handle(): ++table->hgenerator."""
        self.next_handle += 1
        return self.next_handle

    @property
    def ident(self) -> str:
        return f"{self.family} {self.name}"


class NftRuleset:
    """The nf_tables tables of one network namespace."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], Table] = {}
        self.table_handles = 0
        self.registrations = 0   # base chains registered so far (iptables' tables take numbers too)
        self.generation = 0      # changes with every committed transaction
        self.journal: list[tuple[str, bool]] = []   # every batch sent, in order: (text, sent with --check)

    # ---- transactions ---------------------------------------------------------------------------
    def _work_copy(self) -> "NftRuleset":
        work = NftRuleset()
        work.tables = {key: table.clone() for key, table in self.tables.items()}
        work.table_handles, work.registrations, work.generation = \
            self.table_handles, self.registrations, self.generation
        work.journal = self.journal
        return work

    def next_registration(self) -> int:
        """The number of the next callback registered on a hook of this namespace."""
        self.registrations += 1
        self.generation += 1
        return self.registrations

    def run(self, text: str) -> None:
        """`nft -f`: apply the commands of `text` as one batch; on an error nothing changes."""
        work = self._work_copy()
        for number, line in enumerate(_lines(text), 1):
            try:
                work._command(line)
            except NftError as exc:
                raise NftError(f"line {number}: {line!r}: {exc}") from None
        self.__dict__.update(work.__dict__)
        self.generation += 1
        self.journal.append((text, False))

    def check(self, text: str) -> None:
        """`nft -c -f`: the batch is sent and aborted. Nothing changes but the handles it took:
        the kernel does not give them back (measured: flannel's fully-random probe, a chain and a
        rule, moves its table's next handle by two)."""
        work = self._work_copy()
        for number, line in enumerate(_lines(text), 1):
            try:
                work._command(line)
            except NftError as exc:
                raise NftError(f"line {number}: {line!r}: {exc}") from None
        self.table_handles = work.table_handles
        self.registrations = work.registrations
        self.journal.append((text, True))
        for key, table in self.tables.items():
            if key in work.tables:
                table.next_handle = work.tables[key].next_handle

    def table(self, family: str, name: str) -> Table:
        found = self.tables.get((family, name))
        if found is None:
            raise NftError(f"no table {family} {name}; tables are "
                           f"{', '.join(t.ident for t in self.tables.values()) or 'none'}")
        return found

    def _command(self, line: str) -> None:
        words = line.split(None, 2)
        if len(words) < 2:
            raise NftError("expected a command such as 'add rule ip TABLE CHAIN ...'")
        verb, what = words[0], words[1]
        rest = words[2] if len(words) > 2 else ""
        if verb == "flush" and what == "ruleset":
            self.tables.clear()
            return
        handler = _COMMANDS.get((verb, what))
        if handler is None:
            raise NftError(f"netsim models add table|chain|set|map|rule|element, flush chain|set|map|ruleset, "
                           f"delete chain|set|map|rule|table, not '{verb} {what}'")
        handler(self, rest)

    def _family_name(self, rest: str) -> tuple[str, str, str]:
        parts = rest.split(None, 2)
        if len(parts) < 2 or parts[0] not in ALL_FAMILIES:
            raise NftError(f"expected FAMILY NAME ({'|'.join(ALL_FAMILIES)}), found {rest!r}")
        return parts[0], parts[1], parts[2] if len(parts) > 2 else ""

    def _add_table(self, rest: str) -> None:
        family, name, spec = self._family_name(rest)
        props = _props(spec)
        table = self.tables.get((family, name))
        if table is None:
            self.table_handles += 1
            table = self.tables[(family, name)] = Table(family, name, self.table_handles)
        if "comment" in props:
            table.comment = unquote(props["comment"])

    def _delete_table(self, rest: str) -> None:
        family, name, _ = self._family_name(rest)
        self.table(family, name)
        del self.tables[(family, name)]

    def _object(self, rest: str) -> tuple[Table, str, str]:
        family, table_name, tail = self._family_name(rest)
        parts = tail.split(None, 1)
        if not parts:
            raise NftError("expected a name after the table")
        return self.table(family, table_name), parts[0], parts[1] if len(parts) > 1 else ""

    def _add_chain(self, rest: str) -> None:
        table, name, spec = self._object(rest)
        check_name(name, "chain")
        props = _props(spec)
        chain = table.chains.get(name)
        if chain is None:
            chain = table.chains[name] = Chain(name, table.alloc_handle())
            if "type" in props:
                kind, _, hook_spec = props["type"].partition(" hook ")
                hook, _, prio = hook_spec.partition(" priority ")
                if kind not in CHAIN_TYPES or hook not in HOOKS or not prio:
                    raise NftError(f"base chain needs 'type filter|nat hook HOOK priority P', found {props['type']!r}")
                chain.type, chain.hook, chain.priority = kind, hook, parse_priority(hook, prio)
                self.registrations += 1
                chain.registered = self.registrations
            if props.get("policy", "accept") not in ("accept", "drop"):
                raise NftError(f"policy must be accept or drop, not {props['policy']!r}")
            chain.policy = props.get("policy", "accept")
        elif "type" in props and not chain.base:
            raise NftError(f"chain {name} exists as a regular chain; a base chain needs a new name")
        if "comment" in props:
            chain.comment = unquote(props["comment"])

    def _flush_chain(self, rest: str) -> None:
        table, name, _ = self._object(rest)
        self._chain(table, name).rules.clear()

    def _delete_chain(self, rest: str) -> None:
        table, name, _ = self._object(rest)
        chain = self._chain(table, name)
        if chain.rules:
            raise NftError(f"chain {name} is not empty (Device or resource busy)")
        for other, rule in self._rules(table):
            if name in _targets(rule.body, table):
                raise NftError(f"chain {name} is used by a rule of {other.name} (Device or resource busy)")
        for nft_set in table.sets.values():
            if any(v is not None and v.chain == name for v, _ in nft_set.elements.values()):
                raise NftError(f"chain {name} is used by map {nft_set.name} (Device or resource busy)")
        del table.chains[name]

    def _add_set(self, rest: str, is_map: bool = False) -> None:
        table, name, spec = self._object(rest)
        check_name(name, "map" if is_map else "set")
        props = _props(spec)
        if name in table.sets:
            return
        if "type" not in props:
            raise NftError(f"{'map' if is_map else 'set'} {name} needs a type")
        key_type, _, data_type = props["type"].partition(" : ")
        for part in key_type.split(" . "):
            if part not in SET_TYPES:
                raise NftError(f"set type {part!r} is not modelled; types are {', '.join(SET_TYPES)}")
        if is_map != bool(data_type) or data_type not in ("", "verdict"):
            raise NftError(f"a map is 'type KEY : verdict', a set has no data type; found {props['type']!r}")
        table.sets[name] = NftSet(name, table.alloc_handle(), key_type, data_type or None,
                                  unquote(props["comment"]) if "comment" in props else None,
                                  tuple(props["flags"].split(",")) if "flags" in props else (), props.get("timeout"))

    def _delete_set(self, rest: str) -> None:
        table, name, _ = self._object(rest)
        self._set(table, name)
        for other, rule in self._rules(table):
            if any(isinstance(ref, SetRef) and ref.name == name for ref in _set_refs(rule.body)):
                raise NftError(f"set {name} is used by a rule of {other.name} (Device or resource busy)")
        del table.sets[name]

    def _add_map(self, rest: str) -> None:
        self._add_set(rest, is_map=True)

    def _flush_set(self, rest: str) -> None:
        table, name, _ = self._object(rest)
        self._set(table, name).elements.clear()

    def _add_element(self, rest: str) -> None:
        table, name, spec = self._object(rest)
        nft_set = self._set(table, name)
        tokens = tokenize(spec)
        if not tokens or tokens[0] != "{" or tokens[-1] != "}":
            raise NftError(f"elements are written {{ KEY [comment \"...\"] [: VERDICT], ... }}, found {spec!r}")
        items: list[list[str]] = [[]]
        for token in tokens[1:-1]:
            if token == ",":
                items.append([])
            else:
                items[-1].append(token)
        for item in (i for i in items if i):
            comment = None
            if "comment" in item:
                at = item.index("comment")
                comment = unquote(item[at + 1])
                item = item[:at] + item[at + 2:]
            verdict = None
            if ":" in item:
                cut = item.index(":")
                verdict = parse_verdict(item[cut + 1:])
                item = item[:cut]
                if verdict.chain:
                    self._chain(table, verdict.chain)
            if nft_set.is_map != (verdict is not None):
                raise NftError(f"{'map' if nft_set.is_map else 'set'} {name}: element {' '.join(item)!r} "
                               f"{'needs' if nft_set.is_map else 'takes no'} ': VERDICT'")
            key = parse_key(nft_set.key_type, item)
            if key in nft_set.elements:
                continue
            nft_set.elements[key] = (verdict, comment)

    def _add_rule(self, rest: str) -> None:
        table, chain_name, spec = self._object(rest)
        chain = self._chain(table, chain_name)
        body = _fold(parse_rule(spec))
        for stmt in body.stmts:
            self._check(table, chain, stmt)
        for stmt in body.stmts:
            if isinstance(stmt, Vmap) and isinstance(stmt.target, AnonMap) or \
                    isinstance(stmt, Match) and isinstance(stmt.right, AnonSet):
                table.alloc_handle()          # the anonymous set is created before the rule
        chain.rules.append(Rule(table.alloc_handle(), body))

    def _delete_rule(self, rest: str) -> None:
        """`delete rule FAMILY TABLE CHAIN handle N`."""
        table, chain_name, spec = self._object(rest)
        chain = self._chain(table, chain_name)
        words = spec.split()
        if len(words) != 2 or words[0] != "handle" or not words[1].isdigit():
            raise NftError(f"expected 'handle N' after the chain, found {spec!r}")
        handle = int(words[1])
        for i, rule in enumerate(chain.rules):
            if rule.handle == handle:
                del chain.rules[i]
                return
        raise NftError(f"no rule with handle {handle} in chain {chain_name} (No such file or directory)")

    def _check(self, table: Table, chain: Chain, stmt: Any) -> None:
        """What nft or the kernel refuses when the rule is added."""
        if isinstance(stmt, Verdict) and stmt.chain:
            target = self._chain(table, stmt.chain)
            if target.base:
                raise NftError(f"cannot {stmt.kind} to base chain {stmt.chain}")
        ref = stmt.right if isinstance(stmt, Match) else stmt.target if isinstance(stmt, Vmap) else None
        if isinstance(ref, SetRef):
            nft_set = self._set(table, ref.name)
            if isinstance(stmt, Vmap) != nft_set.is_map:
                raise NftError(f"@{ref.name} is a {'map' if nft_set.is_map else 'set'}; "
                               f"{'vmap needs a map' if isinstance(stmt, Vmap) else 'a match needs a set'}")
            left = stmt.left if isinstance(stmt, Match) else stmt.key
            if left.dtype != nft_set.key_type:
                raise NftError(f"datatype mismatch: @{ref.name} holds {nft_set.key_type}, the expression is "
                               f"{left.dtype}")
        if isinstance(stmt, Vmap) and isinstance(stmt.target, AnonMap):
            for _, verdict in stmt.target.items:
                if verdict.chain:
                    self._chain(table, verdict.chain)
        kind = type(stmt).__name__
        if kind in ("Masquerade", "Dnat") and chain.base and chain.type != "nat":
            raise NftError(f"{kind.lower()} is valid only in nat chains, not in {chain.type} chain {chain.name}")

    def _chain(self, table: Table, name: str) -> Chain:
        found = table.chains.get(name)
        if found is None:
            raise NftError(f"no chain {name} in table {table.ident} (No such file or directory)")
        return found

    def _set(self, table: Table, name: str) -> NftSet:
        found = table.sets.get(name)
        if found is None:
            raise NftError(f"no set or map {name} in table {table.ident} (No such file or directory)")
        return found

    @staticmethod
    def _rules(table: Table) -> Iterator[tuple[Chain, Rule]]:
        for chain in table.chains.values():
            for rule in chain.rules:
                yield chain, rule

    # ---- reading --------------------------------------------------------------------------------
    def base_chains(self, hook: str) -> list[tuple[Table, Chain]]:
        """The base chains of the ip family on `hook`, in the order the kernel runs them."""
        found = [(t, c) for t in self.tables.values() if t.family in FAMILIES
                 for c in t.chains.values() if c.hook == hook]
        found.sort(key=lambda tc: (tc[1].priority, -tc[1].registered))
        return found

    def list_ruleset(self, handles: bool = False) -> str:
        """`nft list ruleset` (`nft -a list ruleset` with handles)."""
        return "".join(_table_text(t, handles) for t in self.tables.values())


_COMMANDS = {
    ("add", "table"): NftRuleset._add_table, ("delete", "table"): NftRuleset._delete_table,
    ("add", "chain"): NftRuleset._add_chain, ("flush", "chain"): NftRuleset._flush_chain,
    ("delete", "chain"): NftRuleset._delete_chain, ("add", "set"): NftRuleset._add_set,
    ("add", "map"): NftRuleset._add_map, ("flush", "set"): NftRuleset._flush_set,
    ("flush", "map"): NftRuleset._flush_set, ("add", "element"): NftRuleset._add_element,
    ("add", "rule"): NftRuleset._add_rule, ("delete", "set"): NftRuleset._delete_set,
    ("delete", "map"): NftRuleset._delete_set, ("delete", "rule"): NftRuleset._delete_rule,
}


def check_name(name: str, what: str) -> None:
    """nft's identifiers: a letter, '_' or '.' first, then letters, digits and [_./-]."""
    if not name or not (name[0].isalpha() or name[0] in "_.") or \
            not all(c.isascii() and (c.isalnum() or c in "_./-") for c in name) or len(name) > 256:
        raise NftError(f"invalid {what} name {name!r}: start with a letter, '_' or '.', then letters, digits "
                       f"and '_./-', at most 256 characters")


def _lines(text: str) -> Iterator[str]:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            yield line


def _props(spec: str) -> dict[str, str]:
    """`{ type filter hook input priority 0 ; policy accept ; comment "x" ; }` as a dict."""
    spec = spec.strip()
    if not spec:
        return {}
    if not (spec.startswith("{") and spec.endswith("}")):
        raise NftError(f"expected {{ ... }}, found {spec!r}")
    props: dict[str, str] = {}
    for part in _split_semicolons(spec[1:-1]):
        key, _, value = part.partition(" ")
        props[key] = value.strip()
    return props


def _split_semicolons(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _fold(body: RuleBody) -> RuleBody:
    """nft's evaluation step folds a one-element anonymous set into its value."""
    stmts = []
    for stmt in body.stmts:
        if isinstance(stmt, Match) and isinstance(stmt.right, AnonSet) and len(stmt.right.items) == 1:
            stmt = Match(stmt.left, stmt.right.items[0], stmt.negate)
        stmts.append(stmt)
    return RuleBody(tuple(stmts), body.comment)


def _set_refs(body: RuleBody) -> list[Any]:
    return [s.right if isinstance(s, Match) else s.target for s in body.stmts if isinstance(s, (Match, Vmap))]


def _targets(body: RuleBody, table: Table) -> set[str]:
    names = {s.chain for s in body.stmts if isinstance(s, Verdict) and s.chain}
    for stmt in body.stmts:
        if isinstance(stmt, Vmap) and isinstance(stmt.target, AnonMap):
            names |= {v.chain for _, v in stmt.target.items if v.chain}
    return names


# ---- `nft list ruleset` --------------------------------------------------------------------------

_NEWLINE = ",\n\t\t\t     "
_PER_LINE = {"ipv4_addr": 2, "ct_state": 2, "inet_proto": 16, "inet_service": 16, "mark": 16, "integer": 16}


def _elements_text(nft_set: NftSet) -> str:
    """`elements = { ... }` as nft 1.0.6 wraps it (src/expression.c calculate_delim)."""
    per_line = _PER_LINE.get(nft_set.key_type, 0)      # 0: one element per line (concatenations)
    out: list[str] = []
    count = 0
    for key in sorted(nft_set.elements, key=lambda k: sort_key(nft_set.key_type, k)):
        verdict, comment = nft_set.elements[key]
        text = _element_text(nft_set.key_type, key)
        if comment is not None:
            text += f' comment "{comment}"'
        if verdict is not None:
            text += f" : {verdict}"
        if out:
            if per_line and count < per_line:
                out.append(", ")
            else:
                out.append(_NEWLINE)
                count = 0
        out.append(text)
        count += 1
    return "{ " + "".join(out) + " }"


def _set_text(nft_set: NftSet, handles: bool) -> str:
    kind = "map" if nft_set.is_map else "set"
    lines = [f"\t{kind} {nft_set.name} {{" + (f" # handle {nft_set.handle}" if handles else "")]
    type_text = nft_set.key_type + (f" : {nft_set.data_type}" if nft_set.data_type else "")
    lines.append(f"\t\ttype {type_text}")
    if nft_set.flags:
        lines.append(f"\t\tflags {','.join(nft_set.flags)}")
    if nft_set.timeout:
        lines.append(f"\t\ttimeout {nft_set.timeout}")
    if nft_set.comment is not None:
        lines.append(f'\t\tcomment "{nft_set.comment}"')
    if nft_set.elements:
        lines.append(f"\t\telements = {_elements_text(nft_set)}")
    lines.append("\t}")
    return "\n".join(lines) + "\n"


def _chain_text(chain: Chain, handles: bool) -> str:
    lines = [f"\tchain {chain.name} {{" + (f" # handle {chain.handle}" if handles else "")]
    if chain.comment is not None:
        lines.append(f'\t\tcomment "{chain.comment}"')
    if chain.base:
        assert chain.hook is not None and chain.priority is not None
        lines.append(f"\t\ttype {chain.type} hook {chain.hook} priority "
                     f"{priority_text(chain.hook, chain.priority)}; policy {chain.policy};")
    for rule in chain.rules:
        lines.append(f"\t\t{rule.text}" + (f" # handle {rule.handle}" if handles else ""))
    lines.append("\t}")
    return "\n".join(lines) + "\n"


def _table_text(table: Table, handles: bool) -> str:
    head = f"table {table.family} {table.name} {{" + (f" # handle {table.handle}" if handles else "") + "\n"
    if table.comment is not None:
        head += f'\tcomment "{table.comment}"\n'
    bodies = [_set_text(s, handles) for s in table.sets.values()] + \
             [_chain_text(c, handles) for c in table.chains.values()]
    return head + "\n".join(bodies) + "}\n"


def element_text(nft_set: NftSet, key: Any) -> str:
    """One element as the listing prints it (for decisions naming the element that matched)."""
    verdict, comment = nft_set.elements[key]
    text = _element_text(nft_set.key_type, key)
    if comment is not None:
        text += f' comment "{comment}"'
    return text + (f" : {verdict}" if verdict is not None else "")


__all__ = ["NftRuleset", "Table", "Chain", "Rule", "NftSet", "NftError", "priority_text", "element_text",
           "value_text"]
