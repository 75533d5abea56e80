"""A rule text parsed before gives a copy of the rule it gave (netfilter/grammar.py parse_rule):
the copy is the rule a parse from scratch gives, owns its extensions, and a text whose -j/-g
names changed meaning (a user chain made or deleted since) is parsed again."""

from __future__ import annotations

from dataclasses import fields

import pytest

from netsim.netfilter.xtables import RuleError
from netsim.netfilter import grammar
from netsim.netfilter.grammar import parse_rule

TEXTS = [
    "-s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN",
    "! -s 10.244.0.0/16 -d 10.244.1.0/24 -j RETURN",
    "-p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -d 10.96.0.100/32 -j KUBE-SVC-X",
    "-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A",
    "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.2:8080",
    "-s 10.244.1.0/24 ! -o cni0 -m conntrack --ctstate NEW -j MASQUERADE --random-fully",
    "-p udp -m multiport --dports 53,5353 -j REJECT --reject-with icmp-port-unreachable",
]
USER_CHAINS = {"KUBE-SVC-X", "KUBE-SEP-A"}


def _fields(rule) -> dict:
    """What a rule is, with each extension as its class and options (not its back-reference)."""
    own = {f.name: getattr(rule, f.name) for f in fields(rule) if f.name not in ("matches", "target")}
    ext = lambda e: (type(e).__name__, {k: v for k, v in vars(e).items() if k != "rule"})
    return {**own, "matches": [ext(m) for m in rule.matches], "target": ext(rule.target)}


@pytest.mark.parametrize("text", TEXTS)
def test_a_remembered_parse_is_the_rule_a_fresh_parse_gives_with_extensions_of_its_own(text, monkeypatch):
    monkeypatch.setattr(grammar, "_PARSED", {})
    table = "nat" if "DNAT" in text or "MASQUERADE" in text or "KUBE" in text else "filter"
    chain = "FORWARD" if table == "filter" else "POSTROUTING" if "MASQUERADE" in text else "PREROUTING"
    first = parse_rule(table, chain, text, USER_CHAINS.__contains__)
    assert len(grammar._PARSED) == 1
    first.position = 3
    first.spec          # its caches filled in, as a rule in a chain has them
    again = parse_rule(table, first.chain, text, USER_CHAINS.__contains__)
    assert again is not first and again.position == 0 and again._spec is None
    assert again.spec == first.spec
    monkeypatch.setattr(grammar, "_PARSED", {})
    fresh = parse_rule(table, first.chain, text, USER_CHAINS.__contains__)
    fresh.spec
    assert _fields(again) == _fields(fresh)
    for ext in [*again.matches, again.target]:
        assert ext.rule is again
    assert not {id(e) for e in again.matches} & {id(e) for e in first.matches}
    assert again.target is not first.target and again.matches is not first.matches


def test_a_jump_name_is_asked_again_when_the_text_comes_back(monkeypatch):
    monkeypatch.setattr(grammar, "_PARSED", {})
    chains = {"KUBE-SVC-X"}
    rule = parse_rule("nat", "KUBE-SERVICES", "-d 10.96.0.100/32 -j KUBE-SVC-X", chains.__contains__)
    assert rule.target.jump == "KUBE-SVC-X"
    chains.clear()            # iptables -X KUBE-SVC-X: the same text now names no target at all
    with pytest.raises(RuleError, match="-j KUBE-SVC-X: no such target or chain in table nat"):
        parse_rule("nat", "KUBE-SERVICES", "-d 10.96.0.100/32 -j KUBE-SVC-X", chains.__contains__)
    chains.add("KUBE-SVC-X")
    assert parse_rule("nat", "KUBE-SERVICES", "-d 10.96.0.100/32 -j KUBE-SVC-X",
                      chains.__contains__).target.jump == "KUBE-SVC-X"


def test_a_refused_text_is_refused_every_time(monkeypatch):
    monkeypatch.setattr(grammar, "_PARSED", {})
    for _ in range(2):
        with pytest.raises(RuleError, match="-m tcp needs -p tcp"):
            parse_rule("filter", "INPUT", "-m tcp --dport 80 -j DROP", lambda name: False)
    assert grammar._PARSED == {}
