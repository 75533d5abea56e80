"""The kernel's netfilter trace, read: what `xtables-monitor --trace` and `nft monitor trace` print.

A packet whose `nftrace` bit is set (iptables' `-j TRACE` in the raw table, or nftables'
`meta nftrace set 1`) makes nf_tables report every step of its way through the rules
(net/netfilter/nf_tables_trace.c, nft_trace_notify; called from nft_do_chain in
nf_tables_core.c): once per base chain it enters, the packet's headers as that hook sees them,
then one event per rule whose expressions all matched (with the rule's verdict: a rule with no
verdict of its own, such as `-j MARK` or `meta mark set`, reports "continue"), and the
chain's policy when the walk falls off the end of the base chain. Both tools print those
netlink messages as text:

    PACKET: 2 1f7da53b IN=eth0 OUT=flannel.1 ... SRC=203.0.113.10 DST=10.244.1.2 ... MARK=0x4000
     TRACE: 2 1f7da53b nat:KUBE-SEP-PXJ2U7QYT2QW5545:rule:0x1f:ACCEPT  -4 -t nat -A KUBE-SEP-... -j DNAT ...
     TRACE: 2 1f7da53b nat:POSTROUTING:policy:ACCEPT

    trace id 69ce8a0f ip t nat_pre packet: iif "v1" ... ip saddr 10.9.0.1 ip daddr 10.9.0.2 ... tcp dport 99
    trace id 69ce8a0f ip t nat_pre rule tcp dport 99 dnat to 10.9.0.2:80 (verdict accept)
    trace id 69ce8a0f ip t input policy accept meta mark 0x00000010

`parse_xtables_monitor(text)` and `parse_nft_monitor(text)` turn either into `TraceWalk`
records: one per base chain entered, with the packet's fields and its `TraceEvent`s.
xtables-monitor names a rule by its handle; `RuleIndex` (from `nft -j -a list ruleset`) turns
handles into the rule numbers `iptables -L --line-numbers` shows, and for nft's output, which
prints the rule's text but not its handle, finds the rule by its text. Nothing here runs a
command: the lab's tracer (tracer.py) collects the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

# nf_tables' own verdict codes (include/uapi/linux/netfilter/nf_tables.h, enum nft_verdicts):
# xtables-monitor prints those it has no name for as a 32-bit hex number
NFT_VERDICTS = {0xFFFFFFFF: "CONTINUE", 0xFFFFFFFE: "BREAK", 0xFFFFFFFD: "JUMP", 0xFFFFFFFC: "GOTO",
                0xFFFFFFFB: "RETURN"}
HOOK_NAMES = {"prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD", "output": "OUTPUT",
              "postrouting": "POSTROUTING"}


@dataclass(frozen=True)
class TraceEvent:
    """One step nf_tables reported: a rule that matched (its verdict), or a base chain's policy."""

    table: str
    chain: str
    kind: str                  # "rule" or "policy"
    verdict: str               # ACCEPT, DROP, CONTINUE, JUMP, GOTO, RETURN, QUEUE
    target: str = ""           # the chain a JUMP or GOTO goes to
    handle: int | None = None  # nf_tables' rule handle (xtables-monitor prints it)
    text: str = ""             # iptables: "-A CHAIN ..." as iptables-save prints it; nft: the rule's text
    rule: int = 0              # the rule's number in its chain (1-based), 0 for a policy or not known
    mark: int | None = None    # nft prints the packet's mark on a policy event when it is not 0


@dataclass
class TraceWalk:
    """A packet's walk through one base chain (one table at one hook), as traced."""

    id: str                    # nf_tables' trace id (per skb; a clone or a new skb gets a new one)
    family: str                # "ip"
    table: str
    chain: str                 # the base chain: iptables names it after its hook
    packet: dict[str, str]     # the packet at this hook: SRC, DST, ID, SPORT, DPORT, MARK, IN, OUT, PROTO
    flags: frozenset[str] = frozenset()        # TCP flags and DF, as printed
    events: list[TraceEvent] = field(default_factory=list)
    hook: str = ""             # PREROUTING ... POSTROUTING

    @property
    def mark(self) -> int:
        return int(self.packet.get("MARK", "0"), 0)

    def key(self) -> tuple[str, str, int]:
        """(source, destination, IP ID): what ties this packet to a captured frame."""
        return (self.packet.get("SRC", ""), self.packet.get("DST", ""), int(self.packet.get("ID", "-1")))


# ---------------------------------------------------------------------------------- xtables-monitor

_XT_EVENT = re.compile(r"^\s*TRACE: (?P<family>\d+) (?P<id>[0-9a-f]+) (?P<table>[^:\s]+):(?P<chain>[^:\s]+):"
                       r"(?P<kind>rule|policy|return):(?P<rest>\S*)(?:\s+(?P<text>.*))?$")
_XT_PACKET = re.compile(r"^\s*PACKET: (?P<family>\d+) (?P<id>[0-9a-f]+) (?P<fields>.*)$")
_XT_RULE_PREFIX = re.compile(r"^-4 -t \S+ ")
_FAMILIES = {"2": "ip", "10": "ip6", "7": "bridge", "3": "arp", "1": "inet"}


def _xt_packet(fields: str) -> tuple[dict[str, str], frozenset[str]]:
    values: dict[str, str] = {}
    flags = set()
    # OPT (...) and LL=0x... <hex> carry no key=value pairs we need
    for token in re.sub(r"OPT \([0-9A-F]*\)", "", fields).split():
        key, eq, value = token.partition("=")
        if eq:
            values.setdefault(key, value)
        elif re.fullmatch(r"[A-Z]+", token):
            flags.add(token)
    return values, frozenset(flags)


def _xt_verdict(rest: str) -> tuple[str, str]:
    """`ACCEPT`, `JUMP:KUBE-SERVICES`, `0xfffffffb` -> (verdict, target chain)."""
    verdict, _, target = rest.partition(":")
    if verdict.startswith("0x"):
        verdict = NFT_VERDICTS.get(int(verdict, 16), verdict)
    return verdict.upper(), target


def parse_xtables_monitor(text: str) -> list[TraceWalk]:
    """`xtables-monitor --trace` output as walks, in the order printed. A PACKET line opens a
    walk; the TRACE lines after it with the same id belong to it, even when another packet's
    lines come between (two CPUs trace at once: an IGMP report arriving while a VXLAN packet
    walks the nat table prints its PACKET and TRACE lines among the other's)."""
    walks: list[TraceWalk] = []
    open_walks: dict[str, TraceWalk] = {}
    for line in text.splitlines():
        m = _XT_PACKET.match(line)
        if m:
            values, flags = _xt_packet(m["fields"])
            opened = TraceWalk(m["id"], _FAMILIES.get(m["family"], m["family"]), "", "", values, flags)
            walks.append(opened)
            open_walks[m["id"]] = opened
            continue
        m = _XT_EVENT.match(line)
        current = open_walks.get(m["id"]) if m else None
        if m is None or current is None:
            continue
        verdict, target = _xt_verdict(m["rest"])
        handle = None
        if m["kind"] == "rule":
            handle_text, _, rest = m["rest"].partition(":")
            handle = int(handle_text, 16)
            verdict, target = _xt_verdict(rest)
        rule_text = _XT_RULE_PREFIX.sub("", (m["text"] or "").strip())
        if not current.events:
            current.table, current.chain = m["table"], m["chain"]
            current.hook = current.chain if current.chain in HOOK_NAMES.values() else ""
        current.events.append(TraceEvent(m["table"], m["chain"], m["kind"], verdict, target, handle, rule_text))
    return [w for w in walks if w.events]


# ---------------------------------------------------------------------------------- nft monitor trace

_NFT_LINE = re.compile(r"^trace id (?P<id>[0-9a-f]+) (?P<family>\S+) (?P<table>\S+) (?P<chain>\S+) "
                       r"(?P<kind>packet|rule|policy|verdict|unknown):?\s*(?P<rest>.*)$")
_NFT_VERDICT = re.compile(r"\s*\(verdict (?P<verdict>\w+)(?: (?P<target>\S+))?\)\s*$")
# `ip saddr 10.9.0.1` -> SRC, and so on: the names xtables-monitor uses, so one walk reads alike
_NFT_FIELDS = {("ip", "saddr"): "SRC", ("ip", "daddr"): "DST", ("ip", "id"): "ID", ("ip", "ttl"): "TTL",
               ("ip", "length"): "LEN", ("tcp", "sport"): "SPORT", ("tcp", "dport"): "DPORT",
               ("udp", "sport"): "SPORT", ("udp", "dport"): "DPORT", ("meta", "mark"): "MARK",
               ("icmp", "id"): "ICMPID", ("icmp", "type"): "ICMPTYPE"}


def _nft_packet(rest: str) -> tuple[dict[str, str], frozenset[str]]:
    values: dict[str, str] = {}
    tokens = rest.split()
    for i, token in enumerate(tokens[:-1]):
        if token in ("iif", "oif"):
            values["IN" if token == "iif" else "OUT"] = tokens[i + 1].strip('"')
        if i + 2 < len(tokens) and (token, tokens[i + 1]) in _NFT_FIELDS:
            values[_NFT_FIELDS[(token, tokens[i + 1])]] = tokens[i + 2]
        if token in ("tcp", "udp", "icmp") and "PROTO" not in values:
            values["PROTO"] = token.upper()
    flags: set[str] = set()
    m = re.search(r"tcp flags == (\S+)", rest)
    if m:
        flags.update(f.upper() for f in m[1].split("|") if not f.startswith("0x"))
    return values, frozenset(flags)


def parse_nft_monitor(text: str) -> list[TraceWalk]:
    """`nft monitor trace` output as walks, in the order printed. A `packet:` line opens a walk
    in its chain; rule and policy lines with the same id and table follow it. Rule numbers are
    left 0: nft prints no handle, `RuleIndex.number` finds them by text."""
    walks: list[TraceWalk] = []
    open_walks: dict[tuple[str, str], TraceWalk] = {}
    for line in text.splitlines():
        m = _NFT_LINE.match(line.strip())
        if not m:
            continue
        key = (m["id"], m["table"])
        if m["kind"] == "packet":
            values, flags = _nft_packet(m["rest"])
            opened = TraceWalk(m["id"], m["family"], m["table"], m["chain"], values, flags)
            walks.append(opened)
            open_walks[key] = opened
            continue
        walk = open_walks.get(key)
        if walk is None:
            continue
        rest = m["rest"]
        if m["kind"] == "policy":
            verdict, _, tail = rest.partition(" ")
            mark = re.search(r"meta mark (0x[0-9a-f]+)", tail)
            walk.events.append(TraceEvent(m["table"], m["chain"], "policy", verdict.upper(),
                                          mark=int(mark[1], 16) if mark else None))
            continue
        v = _NFT_VERDICT.search(rest)
        verdict, target = (v["verdict"].upper(), v["target"] or "") if v else ("CONTINUE", "")
        rule_text = _NFT_VERDICT.sub("", rest).strip()
        walk.events.append(TraceEvent(m["table"], m["chain"], m["kind"] if m["kind"] == "rule" else "rule",
                                      verdict, target, None, rule_text))
    return [w for w in walks if w.events]


# ---------------------------------------------------------------------------------- rule numbers

_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def _plain(text: str) -> str:
    """A rule's nft text without its counter values (they change as packets pass)."""
    return " ".join(_COUNTER.sub("counter", text).split())


@dataclass
class RuleIndex:
    """Where every rule of a ruleset sits: handle -> (table, chain, number), and base chain -> hook."""

    by_handle: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)   # (table, handle)
    hooks: dict[tuple[str, str], str] = field(default_factory=dict)                   # (table, chain)
    texts: dict[tuple[str, str], list[str]] = field(default_factory=dict)             # nft text per chain

    @classmethod
    def from_nft_json(cls, text: str, nft_texts: str = "") -> "RuleIndex":
        """From `nft -j -a list ruleset`; `nft_texts` (`nft -a list ruleset`) adds each rule's
        nft text, which `number()` needs for nft's trace."""
        index = cls()
        counts: dict[tuple[str, str], int] = {}
        for item in json.loads(text or "{}").get("nftables", []):
            if "chain" in item and item["chain"].get("hook"):
                c = item["chain"]
                index.hooks[(c["table"], c["name"])] = HOOK_NAMES.get(c["hook"], c["hook"].upper())
            elif "rule" in item:
                r = item["rule"]
                n = counts[(r["table"], r["chain"])] = counts.get((r["table"], r["chain"]), 0) + 1
                index.by_handle[(r["table"], r["handle"])] = (r["chain"], n)
        table = ""
        chain: str | None = None
        for line in nft_texts.splitlines():
            m = re.match(r"\s*table \S+ (\S+) \{", line)
            if m:
                table, chain = m[1], None
                continue
            m = re.match(r"\s*chain (\S+) \{", line)
            if m:
                chain = m[1]
                index.texts.setdefault((table, chain), [])
                continue
            if re.match(r"\s*(set|map) \S+ \{", line):
                chain = None            # a set's or map's block holds no rule
                continue
            m = re.match(r"\s*(.*?) # handle (\d+)$", line)
            if m and table and chain is not None and not m[1].startswith(("type ", "chain ", "table ")):
                index.texts.setdefault((table, chain), []).append(_plain(m[1]))
        return index

    def number(self, walk: TraceWalk) -> TraceWalk:
        """`walk` with every event's rule number, and the walk's hook, filled in."""
        events = []
        for e in walk.events:
            n = 0
            if e.kind == "rule" and e.handle is not None:
                n = self.by_handle.get((e.table, e.handle), ("", 0))[1]
            elif e.kind == "rule":
                texts = self.texts.get((e.table, e.chain), [])
                plain = _plain(e.text)
                n = texts.index(plain) + 1 if plain in texts else 0
            events.append(replace(e, rule=n))
        hook = walk.hook or self.hooks.get((walk.table, walk.chain), "")
        return replace(walk, events=events, hook=hook)
