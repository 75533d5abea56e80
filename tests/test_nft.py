"""netsim's nftables model: rules as nft writes and prints them, the kernel's handles, the
evaluation of kube-proxy's and flannel's rulesets, and the exact decisions for a NodePort SYN
and its reply. (tests/test_lab_nft.py checks the same rulesets and paths against the kernel.)"""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from netsim import flannel_nft, kubeproxy_nft
from netsim.decision import FieldChange, NatReason, NetfilterReason, NftRuleRef, Subsystem, Verdict
from netsim.endpoints import tcp_syn, tcp_synack
from netsim.kubeproxy import Service
from netsim.netfilter.nft import NftRuleset, parse_priority, priority_text
from netsim.netfilter.nft_expr import NftError, Pkt, parse_rule
from netsim.packet import ICMP_DEST_UNREACH
from netsim.skb import Skb
from tests.nft_topology import ModelNode, model_events, model_pass, model_ruleset, node_netfilter

WEB_EXT = "external-PFISGYVC-default/web/tcp/"
WEB_SVC = "service-PFISGYVC-default/web/tcp/"
WEB_EP = "endpoint-X665QFQS-default/web/tcp/__10.244.1.2/8080"


# ---- syntax ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("written, listed", [
    ("mark set mark or 0x4000", "meta mark set meta mark | 0x00004000"),
    ("mark set mark xor 0x4000", "meta mark set meta mark ^ 0x00004000"),
    ("mark and 0x4000 == 0 return", "meta mark & 0x00004000 == 0x00000000 return"),
    ("meta mark 0x4000 return", "meta mark 0x00004000 return"),
    ("ct state new jump firewall-check", "ct state new jump firewall-check"),
    ("ip daddr . meta l4proto . th dport vmap @service-ips", "ip daddr . meta l4proto . th dport vmap @service-ips"),
    ("numgen random mod 2 vmap { 0 : goto a , 1 : goto b }", "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }"),
    ("fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"",
     "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\""),
    ("meta l4proto tcp dnat to 10.244.1.2:8080", "meta l4proto tcp dnat to 10.244.1.2:8080"),
    ("ip saddr != 10.244.0.0/24 ip daddr 10.244.0.0/16 return", "ip saddr != 10.244.0.0/24 ip daddr 10.244.0.0/16 return"),
    ("meta l4proto { udp, tcp } th dport 53 accept", "meta l4proto { tcp, udp } th dport 53 accept"),
    ("ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
     "ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random"),
])
def test_rules_print_as_nft_lists_them(written, listed):
    assert str(parse_rule(written)) == listed
    assert str(parse_rule(listed)) == listed


@pytest.mark.parametrize("hook, priority, text", [
    ("prerouting", -110, "dstnat - 10"), ("output", -110, "-110"), ("output", -100, "-100"),
    ("prerouting", -100, "dstnat"), ("postrouting", 100, "srcnat"), ("forward", 0, "filter"),
    ("input", 5, "filter + 5"), ("postrouting", -300, "raw"), ("input", 100, "100"),
])
def test_base_chain_priorities_print_by_name_where_nft_has_one_for_the_hook(hook, priority, text):
    assert priority_text(hook, priority) == text
    assert parse_priority(hook, text) == priority


def test_a_one_element_set_is_folded_and_takes_no_handle_a_vmap_literal_takes_one():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t a\nadd chain ip t b\n"
                "add rule ip t a ip daddr { 10.96.0.0/12 } drop\n"
                "add rule ip t a ip saddr != { 10.0.0.1, 203.0.113.0/25 } drop\n"
                "add rule ip t a numgen random mod 1 vmap { 0 : goto b }\n")
    rules = ruleset.table("ip", "t").chains["a"].rules
    assert [(r.handle, r.text) for r in rules] == [
        (3, "ip daddr 10.96.0.0/12 drop"),
        (5, "ip saddr != { 10.0.0.1, 203.0.113.0/25 } drop"),
        (7, "numgen random mod 1 vmap { 0 : goto b }")]


def test_concatenated_elements_list_in_nfts_order_last_byte_first():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t c\n"
                "add map ip t m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n"
                "add element ip t m { 10.96.0.100 . tcp . 80 : goto c }\n"
                "add element ip t m { 10.96.0.104 . udp . 53 : drop }\n"
                "add element ip t m { 10.96.0.101 . tcp . 80 : goto c }\n")
    assert ruleset.list_ruleset().splitlines()[3:7] == [
        "\t\telements = { 10.96.0.104 . udp . 53 : drop,",
        "\t\t\t     10.96.0.100 . tcp . 80 : goto c,",
        "\t\t\t     10.96.0.101 . tcp . 80 : goto c }",
        "\t}"]


def test_nft_check_changes_nothing_but_keeps_the_handles_it_took():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\n")
    ruleset.check("add chain ip t probe\nadd rule ip t probe ip saddr != 127.0.0.1 drop\n")
    ruleset.run("add chain ip t real\n")
    table = ruleset.table("ip", "t")
    assert list(table.chains) == ["real"]
    assert table.chains["real"].handle == 3


def test_a_batch_with_an_error_changes_nothing():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t a\n")
    before = ruleset.list_ruleset(handles=True)
    with pytest.raises(NftError, match=r"line 2: .*no chain missing in table ip t"):
        ruleset.run("add chain ip t b\nadd rule ip t a jump missing\n")
    assert ruleset.list_ruleset(handles=True) == before


@pytest.mark.parametrize("batch, message", [
    ("add rule ip t f dnat to 10.0.0.1", "dnat is valid only in nat chains"),
    ("add rule ip t f jump f", "cannot jump to base chain f"),
    ("add rule ip t r ip daddr @m accept", "@m is a map"),
    ("add rule ip t r ip daddr . meta l4proto vmap @m", "datatype mismatch"),
    ("add chain ip t 1bad", "invalid chain name '1bad'"),
    ("add rule ip t r ip daddr 10.0.0.300 accept", "'10.0.0.300' is not a valid ipv4_addr value"),
    ("add rule ip t r ip ttl 64 accept", "ip ttl is not modelled"),
    ("add rule ip t r queue", "unknown expression 'queue'"),
    ("insert rule ip t r accept", "not 'insert rule'"),
    ("delete chain ip t r2", "chain r2 is used by a rule of r"),
])
def test_what_nft_refuses_is_refused_with_the_reason(batch, message):
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t f { type filter hook forward priority 0 ; }\nadd chain ip t r\n"
                "add chain ip t r2\nadd rule ip t r jump r2\n"
                "add map ip t m { type ipv4_addr . inet_proto . inet_service : verdict ; }\n")
    with pytest.raises(NftError, match=message):
        ruleset.run(batch)


def test_kube_proxys_chain_names_are_hash_and_truncate_of_the_port_name():
    svc = Service.single("web", "10.96.0.100", 80, 8080, "tcp", 30080, endpoints=[("pod-c", "10.244.1.2")])
    # pkg/proxy/nftables/proxier_test.go at 81810de6 names ns1/svc1:p80's chains so
    assert kubeproxy_nft.hash_and_truncate("ns1/svc1/tcp/p80") == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert kubeproxy_nft.hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80") == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    assert (kubeproxy_nft.service_chain(svc), kubeproxy_nft.external_chain(svc),
            kubeproxy_nft.endpoint_chain(svc, "10.244.1.2")) == (WEB_SVC, WEB_EXT, WEB_EP)
    assert len(kubeproxy_nft.hash_and_truncate("x" * 300)) == 240


def test_flannels_nftables_rules_differ_from_its_iptables_rules_where_its_source_does():
    ruleset = NftRuleset()
    for text, check in flannel_nft.batches(IPv4Network("10.244.0.0/16"), IPv4Network("10.244.1.0/24")):
        (ruleset.check if check else ruleset.run)(text)
    table = ruleset.table("ip", "flannel-ipv4")
    postrtg = table.chains["postrtg"]
    assert (postrtg.type, postrtg.hook, postrtg.priority) == ("nat", "postrouting", 100)
    assert [r.text for r in postrtg.rules] == [
        "meta mark 0x00004000 return",
        "ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return",
        "ip saddr 10.244.0.0/16 ip daddr 10.244.1.0/24 return",
        "ip saddr != 10.244.1.0/24 ip daddr 10.244.0.0/16 return",
        "ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
        "ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random"]
    assert [r.handle for r in postrtg.rules] == [4, 5, 6, 7, 8, 9]     # the probe took 1 and 2
    assert [r.text for r in table.chains["forward"].rules] == ["ip saddr 10.244.0.0/16 accept",
                                                               "ip daddr 10.244.0.0/16 accept"]
    assert ruleset.table("ip6", "flannel-ipv6").chains == {}


# ---- evaluation ------------------------------------------------------------------------------------

def test_numgen_is_a_deterministic_draw_per_flow_across_the_endpoints():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t c\nadd rule ip t c numgen random mod 3 vmap "
                "{ 0 : accept , 1 : drop , 2 : return }\n")
    expr = ruleset.table("ip", "t").chains["c"].rules[0].body.stmts[0].key
    seen = set()
    for sport in range(1000, 1060):
        pkt = Pkt(tcp_syn("10.244.0.3", "10.96.0.105", sport, 53, 1460, 64, 1), Skb(), "cni0", None, ModelNode(),
                  "PREROUTING")
        pkt.rule_id = ("ip", "t", "c", 1)
        first = expr.value(pkt)
        assert first == expr.value(pkt) and 0 <= first < 3
        seen.add(first)
    assert seen == {0, 1, 2}


def test_equal_priority_base_chains_run_last_registered_first():
    hooks = node_netfilter(model_ruleset())
    order = [(s.nft[0].name, s.nft[1].name) for s in hooks.stages("FORWARD") if s.nft is not None]
    assert order == [("flannel-ipv4", "forward"), ("kube-proxy", "filter-forward")]
    assert [s.name for s in hooks.stages("POSTROUTING")] == ["nat-src", "confirm"]
    assert [(s.name, s.priority) for s in hooks.stages("PREROUTING")] == [
        ("conntrack", -200), ("nft", -110), ("nat-dst", -100)]
    assert len(hooks.nat_lookups("POSTROUTING")) == 2 and len(hooks.nat_lookups("PREROUTING")) == 1


def test_nodeport_syn_decisions_rule_by_rule():
    """An external client's SYN to the node's NodePort 30080: DNAT to pod-c's 10.244.1.2:8080,
    the masquerade mark, and masquerade to the node's eth0 address (externalTrafficPolicy
    Cluster). The handles are the kernel's for this ruleset (tests/test_lab_nft.py loads it and
    compares `nft -a list ruleset`, and this path with `nft -a monitor trace`)."""
    hooks = node_netfilter(model_ruleset())
    syn = tcp_syn("203.0.113.10", "192.168.50.11", 40002, 30080, 1460, 64, 1)
    verdict, after, decisions = model_pass(hooks, syn, "eth1")
    assert verdict == "ACCEPT"
    refs = [ref for d in decisions for ref in d.consulted if isinstance(ref, NftRuleRef) and d.function == "nft_do_chain"]
    assert refs[:9] == [
        NftRuleRef("ip", "kube-proxy", "filter-prerouting-pre-dnat", 24, "PREROUTING", "jump firewall-check",
                   ("ct state new",), ("jump firewall-check",), ("filter-prerouting-pre-dnat",)),
        NftRuleRef("ip", "kube-proxy", "filter-prerouting-pre-dnat", 0, "PREROUTING", "accept",
                   path=("filter-prerouting-pre-dnat",)),
        NftRuleRef("ip", "kube-proxy", "nat-prerouting", 28, "PREROUTING", "jump services", (), ("jump services",),
                   ("nat-prerouting",)),
        NftRuleRef("ip", "kube-proxy", "services", 54, "PREROUTING", f"goto {WEB_EXT}", ("ip daddr @nodeport-ips",),
                   ("meta l4proto . th dport vmap @service-nodeports",), ("nat-prerouting", "services"), "",
                   "service-nodeports", f"tcp . 30080 : goto {WEB_EXT}"),
        NftRuleRef("ip", "kube-proxy", WEB_EXT, 102, "PREROUTING", "jump mark-for-masquerade", (),
                   ("jump mark-for-masquerade",), ("nat-prerouting", "services", WEB_EXT)),
        NftRuleRef("ip", "kube-proxy", "mark-for-masquerade", 35, "PREROUTING", "continue", (),
                   ("meta mark set meta mark | 0x00004000",),
                   ("nat-prerouting", "services", WEB_EXT, "mark-for-masquerade")),
        NftRuleRef("ip", "kube-proxy", WEB_EXT, 103, "PREROUTING", f"goto {WEB_SVC}", (), (f"goto {WEB_SVC}",),
                   ("nat-prerouting", "services", WEB_EXT)),
        NftRuleRef("ip", "kube-proxy", WEB_SVC, 105, "PREROUTING", f"goto {WEB_EP}", (),
                   (f"numgen random mod 1 vmap {{ 0 : goto {WEB_EP} }}",),
                   ("nat-prerouting", "services", WEB_EXT, WEB_SVC), "", "", f"0 : goto {WEB_EP}"),
        NftRuleRef("ip", "kube-proxy", WEB_EP, 107, "PREROUTING", "accept", ("meta l4proto tcp",),
                   ("dnat to 10.244.1.2:8080",), ("nat-prerouting", "services", WEB_EXT, WEB_SVC, WEB_EP)),
    ]
    assert [(r.table, r.chain, r.handle, r.verdict) for r in refs[9:]] == [
        ("flannel-ipv4", "forward", 12, "accept"),
        ("kube-proxy", "filter-forward", 21, "jump service-endpoints-check"),
        ("kube-proxy", "filter-forward", 32, "jump cluster-ips-check"),
        ("kube-proxy", "filter-forward", 0, "accept"),
        ("flannel-ipv4", "postrtg", 4, "return"),
        ("flannel-ipv4", "postrtg", 0, "accept"),
        ("kube-proxy", "nat-postrouting", 30, "jump masquerading"),
        ("kube-proxy", "masquerading", 37, "continue"),
        ("kube-proxy", "masquerading", 38, "accept"),
    ]
    rules = [d for d in decisions if d.function == "nft_do_chain"]
    assert [(d.reason, d.verdict) for d in rules] == [
        (NetfilterReason.RULE, Verdict.JUMP), (NetfilterReason.POLICY, Verdict.ACCEPT),
        (NetfilterReason.RULE, Verdict.JUMP), (NetfilterReason.RULE, Verdict.GOTO),
        (NetfilterReason.RULE, Verdict.JUMP), (NetfilterReason.MARK, Verdict.CONTINUE),
        (NetfilterReason.RULE, Verdict.GOTO), (NetfilterReason.RULE, Verdict.GOTO),
        (NetfilterReason.RULE, Verdict.ACCEPT),
        (NetfilterReason.RULE, Verdict.ACCEPT), (NetfilterReason.RULE, Verdict.JUMP),
        (NetfilterReason.RULE, Verdict.JUMP), (NetfilterReason.POLICY, Verdict.ACCEPT),
        (NetfilterReason.RULE, Verdict.RETURN), (NetfilterReason.POLICY, Verdict.ACCEPT),
        (NetfilterReason.RULE, Verdict.JUMP), (NetfilterReason.MARK, Verdict.CONTINUE),
        (NetfilterReason.RULE, Verdict.ACCEPT),
    ]
    assert all(d.subsystem is Subsystem.NETFILTER and d.facts == () for d in rules)
    marks = [c for d in decisions for c in d.changes if c.layer == "skb"]
    assert marks == [FieldChange("skb", "mark", 0, 0x4000), FieldChange("skb", "mark", 0x4000, 0)]
    nat = [d for d in decisions if d.subsystem == "nat"]
    assert [(d.function, d.reason, d.verdict) for d in nat] == [
        ("nft_nat_eval", NatReason.BINDING, Verdict.DNAT),
        ("nf_nat_masquerade_ipv4", NatReason.BINDING, Verdict.MASQUERADE)]
    assert nat[0].consulted[0] == refs[8]
    assert nat[1].consulted[0] == refs[-1]
    assert nat[0].changes == (FieldChange("ipv4", "dst", "192.168.50.11", "10.244.1.2"),
                              FieldChange("tcp", "dport", 30080, 8080))
    masq_port = after.payload.sport
    assert nat[1].changes == (FieldChange("ipv4", "src", "203.0.113.10", "192.168.50.11"),
                              FieldChange("tcp", "sport", 40002, masq_port))
    assert nat[0].facts == (("manip", "DST"), ("old", "192.168.50.11:30080"), ("new", "10.244.1.2:8080"))
    assert nat[1].facts == (("manip", "SRC"), ("old", "203.0.113.10:40002"), ("new", f"192.168.50.11:{masq_port}"))
    assert 1024 <= masq_port <= 65535
    (entry,) = hooks.netns.conntrack.entries
    assert (entry.reply.src, entry.reply.sport, entry.reply.dst, entry.reply.dport) == \
        ("10.244.1.2", 8080, "192.168.50.11", masq_port)
    assert (after.src, after.dst, after.payload.dport) == ("192.168.50.11", "10.244.1.2", 8080)


def test_nodeport_reply_is_un_nated_by_conntrack_and_meets_no_nat_chain():
    hooks = node_netfilter(model_ruleset())
    _, after, _ = model_pass(hooks, tcp_syn("203.0.113.10", "192.168.50.11", 40002, 30080, 1460, 64, 1), "eth1")
    verdict, back, decisions = model_pass(hooks, tcp_synack(after, 1460, 64), "eth0")
    assert verdict == "ACCEPT"
    assert model_events(decisions) == [
        ("kube-proxy", "filter-prerouting-pre-dnat", 0, "policy accept"),
        ("flannel-ipv4", "forward", 11, "accept"),
        ("kube-proxy", "filter-forward", 0, "policy accept"),
    ]
    assert [(d.reason, d.verdict, d.consulted[0].handle) for d in decisions if d.function == "nft_do_chain"] == [
        (NetfilterReason.POLICY, Verdict.ACCEPT, 0), (NetfilterReason.RULE, Verdict.ACCEPT, 11),
        (NetfilterReason.POLICY, Verdict.ACCEPT, 0)]
    nat = [d for d in decisions if d.subsystem == "nat"]
    assert [(d.function, d.reason, d.verdict, d.facts, d.changes) for d in nat] == [
        ("nf_nat_packet", NatReason.REWRITE, Verdict.REWRITE, (("manip", "DST"), ("to", "203.0.113.10:40002")),
         (FieldChange("ipv4", "dst", "192.168.50.11", "203.0.113.10"),
          FieldChange("tcp", "dport", after.payload.sport, 40002))),
        ("nf_nat_packet", NatReason.REWRITE, Verdict.REWRITE, (("manip", "SRC"), ("to", "192.168.50.11:30080")),
         (FieldChange("ipv4", "src", "10.244.1.2", "192.168.50.11"), FieldChange("tcp", "sport", 8080, 30080))),
    ]
    assert [(c.proto, c.state, c.direction) for d in nat for c in d.consulted] == [
        ("tcp", "ESTABLISHED", "reply"), ("tcp", "ESTABLISHED", "reply")]
    assert (back.src, back.payload.sport, back.dst, back.payload.dport) == ("192.168.50.11", 30080, "203.0.113.10", 40002)


def test_the_same_connection_always_takes_the_same_masquerade_port_and_endpoint():
    def run():
        hooks = node_netfilter(model_ruleset())
        _, after, _ = model_pass(hooks, tcp_syn("10.244.0.3", "10.96.0.105", 40100, 53, 1460, 64, 1), "cni0")
        return after
    assert run() == run()


@pytest.mark.parametrize("client, dst, dport, verdict, decided_by", [
    ("10.244.0.3", "10.96.0.104", 80, "REJECT", ("kube-proxy", "reject-chain", 46, "drop")),
    ("203.0.113.10", "192.168.50.11", 30083, "REJECT", ("kube-proxy", "reject-chain", 46, "drop")),
    ("203.0.113.10", "192.168.50.11", 30082, "DROP", ("kube-proxy", "nodeport-endpoints-check", 48, "drop")),
    ("10.244.0.3", "10.96.0.100", 81, "REJECT", ("kube-proxy", "cluster-ips-check", 40, "drop")),
    ("10.244.0.3", "10.96.0.200", 80, "DROP", ("kube-proxy", "cluster-ips-check", 41, "drop")),
])
def test_services_without_an_endpoint_for_the_packet_drop_or_reject_it(client, dst, dport, verdict, decided_by):
    hooks = node_netfilter(model_ruleset())
    syn = tcp_syn(client, dst, 40200, dport, 1460, 64, 1)
    got, _, decisions = model_pass(hooks, syn, "cni0" if client.startswith("10.244.") else "eth1")
    assert got == verdict
    assert model_events(decisions)[-1] == decided_by
    assert hooks.netns.conntrack.entries == []          # the unconfirmed entry went with the packet


def test_reject_answers_with_icmp_port_unreachable():
    hooks = node_netfilter(model_ruleset())
    skb = Skb()
    syn = tcp_syn("10.244.0.3", "10.96.0.104", 40300, 80, 1460, 64, 1)
    hooks.hook("PREROUTING", syn, skb, "cni0", None)
    result = hooks.hook("FORWARD", syn, skb, "cni0", "eth0")
    assert (result.verdict, result.reject_with, result.reject_name) == \
        ("REJECT", (ICMP_DEST_UNREACH, 3), "icmp-port-unreachable")


def test_local_policy_keeps_the_client_address_and_short_circuits_pods():
    hooks = node_netfilter(model_ruleset())
    _, from_outside, _ = model_pass(hooks, tcp_syn("203.0.113.10", "192.168.50.11", 40400, 30081, 1460, 64, 1), "eth1")
    assert (from_outside.src, from_outside.dst) == ("203.0.113.10", "10.244.0.2")
    _, from_pod, decisions = model_pass(hooks, tcp_syn("10.244.0.3", "192.168.50.11", 40401, 30081, 1460, 64, 1),
                                        "cni0")
    assert (from_pod.src, from_pod.dst) == ("10.244.0.3", "10.244.0.2")
    assert [e[3] for e in model_events(decisions) if e[1].startswith("external-")] == \
        ["goto service-O7JKBUXF-default/local/tcp/"]


@pytest.mark.parametrize("mode, dst_after", [("primary", "203.0.113.1"), ("all", "10.244.1.2")])
def test_nodeports_on_every_local_address_only_with_fib_daddr_type_local(mode, dst_after):
    hooks = node_netfilter(model_ruleset(mode))
    verdict, after, decisions = model_pass(hooks, tcp_syn("203.0.113.10", "203.0.113.1", 40500, 30080, 1460, 64, 1),
                                           "eth1")
    assert (verdict, after.dst) == ("ACCEPT", dst_after)
    services = [e for e in model_events(decisions) if e[1] == "services"]
    assert services == ([] if mode == "primary" else [("kube-proxy", "services", 54, f"goto {WEB_EXT}")])


def test_counter_counts_packets_and_bytes_as_nft_lists_them():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t in { type filter hook input priority 0 ; }\n"
                "add rule ip t in tcp dport 8080 counter accept\n")
    hooks = node_netfilter(ruleset)
    syn = tcp_syn("10.244.0.3", "10.244.0.1", 40600, 8080, 1460, 64, 1)
    for _ in range(2):
        result = hooks.hook("INPUT", syn, Skb(), "cni0", None)
    assert model_events(result.decisions) == [("t", "in", 2, "accept")]
    assert ruleset.table("ip", "t").chains["in"].rules[0].text == \
        f"tcp dport 8080 counter packets 2 bytes {2 * syn.length()} accept"
    assert hooks.hook("INPUT", tcp_syn("10.244.0.3", "10.244.0.1", 40600, 80, 1460, 64, 1), Skb(), "cni0",
                      None).decisions[-1].verdict == "accept"        # no match: the policy
    assert not hooks.conntrack_active                                 # no ct expression, no nat chain


def test_a_source_port_clash_is_remapped_by_the_null_binding():
    ruleset = NftRuleset()
    ruleset.run("add table ip t\nadd chain ip t post { type nat hook postrouting priority 100 ; }\n"
                "add rule ip t post ip saddr 10.244.0.0/16 masquerade\n")
    hooks = node_netfilter(ruleset)
    # a first connection is masqueraded to 192.168.50.11:40700; a second one from the node's own
    # address and port to the same destination needs another source port
    first = tcp_syn("10.244.0.3", "10.96.0.1", 40700, 443, 1460, 64, 1)
    skb = Skb()
    hooks.hook("PREROUTING", first, skb, "cni0", None)
    hooks.hook("POSTROUTING", first, skb, None, "eth0", "192.168.50.12")
    taken = hooks.netns.conntrack.entries[0].reply
    assert (taken.dst, taken.dport) == ("192.168.50.11", 40700)
    second = tcp_syn("192.168.50.11", "10.96.0.1", 40700, 443, 1460, 64, 1)
    skb = Skb()
    hooks.hook("OUTPUT", second, skb, None, "eth0")
    result = hooks.hook("POSTROUTING", second, skb, None, "eth0", "192.168.50.12")
    (remap,) = [d for d in result.decisions if d.function == "nf_nat_alloc_null_binding"]
    assert remap.change("ipv4", "src") is None
    assert remap.change("tcp", "sport").old == 40700 and remap.change("tcp", "sport").new != 40700


# ---- iptables and nftables in one namespace -----------------------------------------------------------

def _syn_forward(nf, indev="cni0", outdev="eth0"):
    syn = tcp_syn("10.244.0.2", "203.0.113.10", 40700, 80, 1460, 64, 1)
    skb = Skb()
    nf.hook("PREROUTING", syn, skb, indev, None)
    forward = nf.hook("FORWARD", syn, skb, indev, outdev)
    post = nf.hook("POSTROUTING", forward.packet, skb, None, outdev, "192.168.50.1")
    return forward, post


def test_iptables_tables_and_nft_base_chains_run_by_priority_the_last_registered_first():
    """nf_hook_entries_grow: a callback is inserted before the first one whose priority is not
    lower, so at equal priority the one registered last runs first; iptables' filter table
    (priority 0) takes its place in the same order as nft's filter chains."""
    from netsim.netfilter import Netfilter
    nf = Netfilter(ModelNode())
    nf.append("filter", "FORWARD", "-s 10.244.0.0/16 -j ACCEPT")            # registered first
    nf.nftables.run("add table ip t\nadd chain ip t fwd { type filter hook forward priority 0 ; }\n"
                    "add rule ip t fwd ip saddr 10.244.0.0/16 accept\n"
                    "add chain ip t early { type filter hook forward priority -5 ; }\n"
                    "add rule ip t early ip daddr 203.0.113.10 counter\n")
    forward, _ = _syn_forward(nf)
    assert [(d.function, d.consulted[0].chain) for d in forward.decisions] == [
        ("nft_do_chain", "early"), ("nft_do_chain", "early"), ("nft_do_chain", "fwd"), ("ipt_do_table", "FORWARD")]
    assert [s.name for s in nf.stages("FORWARD")] == ["nft", "nft", "filter"]
    later = Netfilter(ModelNode())
    later.nftables.run("add table ip t\nadd chain ip t fwd { type filter hook forward priority 0 ; }\n")
    later.append("filter", "FORWARD", "-s 10.244.0.0/16 -j ACCEPT")         # registered last: runs first
    assert [s.name for s in later.stages("FORWARD")] == ["filter", "nft"]


def test_the_nat_core_asks_iptables_nat_table_and_nft_nat_chains_in_order_until_one_binds():
    """Both hang off the nat core (nf_nat_register_fn): at POSTROUTING iptables' nat table sits
    at NF_IP_PRI_NAT_SRC (100), an nft nat chain at its own priority; the first that binds the
    connection wins, the others are not asked."""
    from netsim.netfilter import Netfilter
    nf = Netfilter(ModelNode())
    nf.nftables.run("add table ip t\nadd chain ip t post { type nat hook postrouting priority 90 ; }\n"
                    "add rule ip t post ip saddr 10.244.0.0/16 masquerade\n")
    nf.append("nat", "POSTROUTING", "-s 10.244.0.0/16 -j MASQUERADE --random-fully")
    _, post = _syn_forward(nf)
    nat = [d for d in post.decisions if d.subsystem is Subsystem.NAT]
    assert [(d.function, d.reason, d.consulted[0].table) for d in nat] == [
        ("nf_nat_masquerade_ipv4", NatReason.BINDING, "t")]
    assert not [d for d in post.decisions if d.function == "ipt_do_table"]    # iptables' nat table not asked
    assert post.packet.src == "192.168.50.11"
    late = Netfilter(ModelNode())
    late.nftables.run("add table ip t\nadd chain ip t post { type nat hook postrouting priority 110 ; }\n"
                      "add rule ip t post ip saddr 10.244.0.0/16 masquerade\n")
    late.append("nat", "POSTROUTING", "-s 10.244.0.0/16 -j MASQUERADE --random-fully")
    _, post = _syn_forward(late)
    nat = [d for d in post.decisions if d.subsystem is Subsystem.NAT]
    assert [(d.function, d.consulted[0].table, d.consulted[0].target) for d in nat] == [
        ("nf_nat_masquerade_ipv4", "nat", "MASQUERADE")]
    assert not [d for d in post.decisions if d.function == "nft_do_chain"]
