"""iptables-save and iptables-restore: the tables as text, and text back into tables.

iptables-save (iptables 1.8.9, nf_tables backend: iptables/nft.c and xtables-save.c) prints each
table that exists as a `*table` block: one `:CHAIN POLICY [packets:bytes]` line per chain
(built-in chains in hook order with their policy, then user chains by name with `-`), every
rule as `-A CHAIN spec`, and COMMIT. netsim leaves out the "# Generated/Completed" comments and
prints zero counters. iptables-restore (xtables-restore.c) reads the same blocks: each `*table`
replaces the whole table unless --noflush is given, in which case rules are added and only the
chains declared with a `:CHAIN` line are emptied, which kube-proxy's partial syncs rely on. The
whole input is checked before anything changes; an error names the line.
"""

from __future__ import annotations

import shlex
from typing import Protocol

from .grammar import Rule, parse_rule
from .ip_tables import BUILTIN_CHAINS, TABLE_ORDER, Chain, Table
from .xtables import RuleError, error


class RestoreInto(Protocol):
    """What iptables-restore changes of a namespace's netfilter state (core.Netfilter)."""

    tables: dict[str, Table]

    def note_rule(self, rule: Rule) -> None: ...


def save(tables: dict[str, Table], table: str | None = None) -> str:
    """iptables-save [-t TABLE] of `tables`, in iptables-save's (nf_tables) table order."""
    names = [n for n in TABLE_ORDER if n in tables and table in (None, n)]
    lines: list[str] = []
    for name in names:
        t = tables[name]
        lines.append(f"*{name}")
        chains = t.ordered_chains()
        for c in chains:
            lines.append(f":{c.name} {c.policy if c.builtin else '-'} [0:0]")
        for c in chains:
            lines.extend(str(rule) for rule in c.rules)
        lines.append("COMMIT")
    return "".join(line + "\n" for line in lines)


def restore(nf: RestoreInto, text: str, noflush: bool = False) -> None:
    """iptables-restore [--noflush] into `nf`; nothing changes if any line is refused."""
    staged: dict[str, Table] = {}
    current: Table | None = None
    pending: list[tuple[int, str]] = []
    declared: list[tuple[int, str, str]] = []

    def commit() -> None:
        assert current is not None
        for number, name, policy in declared:
            chain = current.chains.get(name)
            if chain is None:
                if policy != "-":
                    raise error(f"line {number}: {name!r} is not a built-in chain of "
                                f"{current.name}, its policy must be '-'")
                current.chains[name] = Chain(name, False)
            elif chain.builtin:
                if policy not in ("ACCEPT", "DROP"):
                    raise error(f"line {number}: bad policy {policy!r} for {name}")
                chain.policy = policy
                if noflush:
                    chain.rules.clear()
            elif noflush:
                chain.rules.clear()
        for number, line in pending:
            try:
                _restore_line(current, line)
            except RuleError as exc:
                raise error(f"line {number}: {exc}") from None
        staged[current.name] = current

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            if current is not None:
                raise error(f"line {lineno}: table {line[1:]!r} starts before COMMIT of "
                            f"{current.name!r}")
            name = line[1:]
            if name not in BUILTIN_CHAINS:
                raise error(f"line {lineno}: unknown table {name!r}; netsim models "
                            f"{', '.join(TABLE_ORDER)}")
            if noflush:
                base = staged.get(name) or nf.tables.get(name)
                current = base.copy() if base is not None else Table.new(name)
            else:
                current = Table.new(name)
            pending, declared = [], []
        elif current is None:
            raise error(f"line {lineno}: {line!r} outside a *table block")
        elif line == "COMMIT":
            commit()
            current = None
        elif line.startswith(":"):
            fields = line[1:].split()
            if len(fields) < 2:
                raise error(f"line {lineno}: bad chain line {line!r}")
            declared.append((lineno, fields[0], fields[1]))
        else:
            pending.append((lineno, line))
    if current is not None:
        raise error(f"table {current.name!r} has no COMMIT")
    for name, table in staged.items():
        nf.tables[name] = table
        for chain in table.chains.values():
            for rule in chain.rules:
                nf.note_rule(rule)


_COMMANDS = "-A, -I, -D, -N, -F or -X"


def _restore_line(table: Table, line: str) -> None:
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise error(f"cannot split {line!r}: {exc}") from None
    if len(tokens) < 2:
        raise error(f"cannot parse {line!r}; an iptables-restore line is a command ({_COMMANDS}) "
                    f"and a chain")
    command, chain_name = tokens[0], tokens[1]
    chains = table.chains

    def exists(name: str) -> bool:
        return name in chains and not chains[name].builtin

    if command in ("-N", "--new-chain"):
        if chain_name in chains:
            raise error(f"chain {chain_name!r} already exists")
        chains[chain_name] = Chain(chain_name, False)
        return
    if chain_name not in chains:
        raise error(f"no chain {chain_name!r} in table {table.name!r}")
    chain = chains[chain_name]
    words = line.split(None, 2)
    rest = words[2] if len(words) > 2 else ""
    if command in ("-A", "--append"):
        chain.rules.append(parse_rule(table.name, chain_name, rest, exists))
    elif command in ("-I", "--insert"):
        position = 1
        parts = rest.split(None, 1)
        if parts and parts[0].isdigit():
            position, rest = int(parts[0]), parts[1] if len(parts) > 1 else ""
        if not 1 <= position <= len(chain.rules) + 1:
            raise error(f"index of insertion too big: {position}")
        chain.rules.insert(position - 1, parse_rule(table.name, chain_name, rest, exists))
    elif command in ("-F", "--flush"):
        chain.rules.clear()
    elif command in ("-X", "--delete-chain"):
        if chain.builtin or chain.rules:
            raise error(f"cannot delete chain {chain_name!r}")
        del chains[chain_name]
    elif command in ("-D", "--delete"):
        wanted = parse_rule(table.name, chain_name, rest, exists).spec
        for index, rule in enumerate(chain.rules):
            if rule.spec == wanted:
                del chain.rules[index]
                break
        else:
            raise error(f"bad rule (does a matching rule exist in that chain?): {rest}")
    else:
        raise error(f"iptables-restore command {command!r} is not modelled; use {_COMMANDS}")
    chain.renumber()
