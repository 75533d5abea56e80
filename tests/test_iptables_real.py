"""The real iptables agrees with netsim's iptables-save text.

Each rule set netsim prints is loaded with `iptables-restore` into a throwaway network namespace
and read back with `iptables-save`; apart from iptables-save's "# Generated/Completed" comment
lines and its packet counters, the two texts must be identical. No packet is sent, and the
host's own namespace is never touched. Needs root and iptables (CI installs both); otherwise the
test is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from ipaddress import IPv4Network

import pytest

from netsim.netfilter import Netfilter
from tests.test_netfilter import FakeNetns, flannel, kube_proxy

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables-restore") is None or shutil.which("ip") is None,
    reason="needs root, iproute2 and iptables (apt-get install iptables) to load rules into a throwaway netns",
)


def real_iptables_save(text: str) -> str:
    """Load `text` into a new network namespace with iptables-restore and return iptables-save's
    output without comment lines and with counters zeroed."""
    name = f"nfcheck-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # xt_nfacct refuses a rule whose accounting object does not exist (kube-proxy creates them)
        for obj in dict.fromkeys(re.findall(r"--nfacct-name +(\S+)", text)):
            subprocess.run(["ip", "netns", "exec", name, "nfacct", "add", obj], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", name, "iptables-restore"], input=text, text=True,
                       check=True, capture_output=True)
        out = subprocess.run(["ip", "netns", "exec", name, "iptables-save"], text=True, check=True,
                             capture_output=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    lines = [re.sub(r"\[\d+:\d+\]$", "[0:0]", line) for line in out.splitlines() if not line.startswith("#")]
    return "".join(line + "\n" for line in lines)


def test_flannel_and_kube_proxy_rules_match_real_iptables_save():
    ns = FakeNetns()
    kube_proxy(ns.netfilter)
    flannel(ns.netfilter)
    ns.netfilter.set_policy("filter", "FORWARD", "DROP")
    text = ns.netfilter.save()
    assert real_iptables_save(text) == text


def test_canonical_forms_match_real_iptables_save():
    nf = FakeNetns().netfilter
    nf.new_chain("nat", "T")
    nf.new_chain("nat", "U")
    for spec in [
        '-m comment --comment "a b" -p tcp --dport 80 -d 10.0.0.1 -s 1.2.3.0/24 -o eth0 -i cni0 -j RETURN',
        "-p tcp -m comment --comment foo --dport 80 -m addrtype --dst-type LOCAL -j RETURN",
        "-m statistic --mode random --probability 0.3333333333 -j RETURN",
        "-m statistic --mode random --probability 0.2 -j RETURN",
        "-m statistic --mode random --probability 1 -j RETURN",
        "-m mark --mark 16384 -j RETURN",
        "-m mark ! --mark 0x4000/0xffffffff -j RETURN",
        "-p udp ! --sport 53 ! --dport 100:200 -j RETURN",
        '-p tcp -m tcp --dport 80 -m comment --comment "kubernetes \\"x\\"" -j RETURN',
        '-m comment --comment "ns/svc:http -> 10.244.1.2:8080" -j RETURN',
        "-m conntrack --ctstate RELATED,ESTABLISHED,NEW,INVALID -j RETURN",
        "-m conntrack ! --ctstate NEW -j RETURN",
        "-m state --state ESTABLISHED -j RETURN",
        "-m addrtype ! --src-type LOCAL --dst-type LOCAL -g U",
        "! -i eth+ -j RETURN",
        "! -p udp -j RETURN",
        "-p icmp --icmp-type echo-request -j RETURN",
        "-p icmp --icmp-type 3/4 -j RETURN",
        "-s 10.0.0.5/255.255.255.0 -j RETURN",
        "-s 0.0.0.0/0 -d 10.0.0.5/24 -j RETURN",
        "-p tcp --tcp-flags SYN,ACK SYN -j RETURN",
        "-p tcp --syn -j RETURN",
        "-j MARK --or-mark 0x4000",
        "-j MARK --xor-mark 0x4000",
        "-j MARK --set-mark 0x10",
        "-j MARK --set-mark 0x4000/0x4000",
        "-j MARK --and-mark 0x10",
    ]:
        nf.append("nat", "T", spec)
    # NAT targets in chains of the hooks that allow them
    nf.new_chain("nat", "DN")
    nf.new_chain("nat", "SN")
    nf.append("nat", "PREROUTING", "-j DN")
    nf.append("nat", "POSTROUTING", "-j SN")
    nf.append("nat", "DN", "-p 6 -j DNAT --to-destination 10.244.1.2")
    nf.append("nat", "DN", "-p udp --sport 53 --dport 100:200 -j DNAT --to-destination 10.244.1.2:53")
    nf.append("nat", "DN", "-p tcp -j DNAT --to-destination 10.244.1.2:8000-8010 --random")
    nf.append("nat", "SN", "-p udp -j MASQUERADE --to-ports 1024-65535 --random-fully")
    nf.append("nat", "SN", "-p tcp -j MASQUERADE --to-ports 1000")
    nf.append("nat", "SN", "-j SNAT --to-source 10.0.0.1 --random-fully")
    nf.append("nat", "SN", "-p tcp -j SNAT --to-source 10.0.0.1:2000-3000 --persistent")
    nf.append("nat", "SN", "-o flannel.1 -j MASQUERADE")
    nf.append("filter", "INPUT", "-p tcp -j REJECT")
    nf.append("filter", "INPUT", "-p tcp -j REJECT --reject-with tcp-reset")
    nf.append("filter", "INPUT", "-j REJECT --reject-with icmp-host-prohibited")
    nf.append("filter", "INPUT", "-j REJECT --reject-with icmp-admin-prohibited")
    nf.append("raw", "PREROUTING", "-p udp --dport 8472 -j ACCEPT")
    nf.append("mangle", "FORWARD", "-j MARK --set-xmark 0x1/0x1")
    text = nf.save()
    assert real_iptables_save(text) == text


def test_the_cluster_rule_builders_match_real_iptables_save():
    """The rules netsim's own flannel and kube-proxy modules write for node1."""
    from netsim import flannel as flannel_mod
    from netsim import kubeproxy
    ns = FakeNetns()
    nf: Netfilter = ns.netfilter
    kubeproxy.base_rules(nf)
    flannel_mod.masquerade_rules(nf, IPv4Network("10.244.0.0/16"), IPv4Network("10.244.0.0/24"))
    web = kubeproxy.Service.single("web", "10.96.0.100", 80, 8080, node_port=30080,
                            endpoints=[("pod-a", "10.244.0.2"), ("pod-b", "10.244.0.3"), ("pod-c", "10.244.1.2")])
    local = kubeproxy.Service.single("local", "10.96.0.101", 80, 8080, node_port=30081, external_traffic_policy="Local",
                              endpoints=[("pod-c", "10.244.1.2")])
    empty = kubeproxy.Service.single("empty", "10.96.0.102", 53, 53, protocol="udp")
    for svc, here in ((web, ["10.244.0.2", "10.244.0.3"]), (local, []), (empty, [])):
        kubeproxy.service_rules(nf, svc, "10.244.0.0/16", here)
    kubeproxy.finish_nodeports(nf)
    text = nf.save()
    assert real_iptables_save(text) == text


def real_iptables_restore_refuses(text: str) -> str:
    """iptables-restore's error for `text` in a throwaway namespace, "" if it loaded."""
    name = f"nfcheck-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        done = subprocess.run(["ip", "netns", "exec", name, "iptables-restore"], input=text, text=True,
                              capture_output=True)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return done.stderr.strip() if done.returncode != 0 else ""


# rules iptables or the kernel refuses: netsim refuses each of them as well
REFUSED = [
    ("filter", "INPUT", "-j REJECT --reject-with tcp-reset", "tcp-reset is valid only with -p tcp"),
    ("nat", "PREROUTING", "-o eth0 -j ACCEPT", "-o cannot be used in the PREROUTING chain"),
    ("nat", "POSTROUTING", "-i eth0 -j ACCEPT", "-i cannot be used in the POSTROUTING chain"),
    ("filter", "INPUT", "-j MASQUERADE", "valid only in the nat table"),
    ("nat", "POSTROUTING", "-j DNAT --to-destination 10.0.0.1", "valid only in PREROUTING/OUTPUT"),
    ("nat", "PREROUTING", "-j MASQUERADE", "valid only in POSTROUTING, not in PREROUTING"),
    ("nat", "INPUT", "-j MASQUERADE", "valid only in POSTROUTING, not in INPUT"),
    ("nat", "OUTPUT", "-j SNAT --to-source 10.0.0.1", "valid only in POSTROUTING/INPUT"),
    ("filter", "INPUT", "-m tcp --dport 80 -j ACCEPT", "-m tcp needs -p tcp"),
    ("filter", "INPUT", "-m icmp --icmp-type 8 -j ACCEPT", "-m icmp needs -p icmp"),
    ("filter", "INPUT", "-p tcp --tcp-flags FOO SYN -j ACCEPT", "unknown flag 'FOO'"),
    ("mangle", "INPUT", "-j MARK", "-j MARK needs --set-mark"),
    ("filter", "INPUT", "-p tcp --dport 70000 -j ACCEPT", "port '70000' is not a number from 0 to 65535"),
    ("filter", "INPUT", "-p tcp --dport 90:80 -j ACCEPT", "port range '90:80' is inverted"),
    ("filter", "INPUT", "-m conntrack --ctstate BOGUS -j ACCEPT", "unknown state 'BOGUS'"),
    ("filter", "INPUT", "-m conntrack -j ACCEPT", "-m conntrack needs --ctstate"),
    ("filter", "INPUT", "-j REJECT --reject-with icmp-bogus", "--reject-with 'icmp-bogus': known types are"),
    ("nat", "PREROUTING", "-j DNAT", "-j DNAT needs --to-destination"),
    ("nat", "PREROUTING", "-j DNAT --to-destination 10.0.0.1:80", "a port needs -p tcp or -p udp"),
    ("filter", "INPUT", "-m statistic --mode random --probability 2 -j ACCEPT", "must be between 0 and 1"),
    ("filter", "INPUT", "-s 10.0.0.1 -s 10.0.0.2 -j ACCEPT", "-s given twice"),
    ("filter", "INPUT", "! ! -s 10.0.0.1 -j ACCEPT", "two '!' in a row"),
    ("filter", "INPUT", "-m mark -j ACCEPT", "-m mark needs --mark"),
    ("filter", "INPUT", "-m addrtype -j ACCEPT", "-m addrtype needs --src-type or --dst-type"),
    ("filter", "INPUT", "-j NOSUCHCHAIN", "-j NOSUCHCHAIN: no such target or chain"),
    ("filter", "INPUT", "-g NOSUCHCHAIN", "-g NOSUCHCHAIN: goto needs an existing user chain"),
    ("filter", "INPUT", "-p tcp -j ACCEPT -j DROP", "more than one target"),
]


@pytest.mark.parametrize("table, chain, spec, message", REFUSED)
def test_rules_iptables_refuses_netsim_refuses_too(table, chain, spec, message):
    from netsim.netfilter import RuleError
    assert real_iptables_restore_refuses(f"*{table}\n-A {chain} {spec}\nCOMMIT\n")
    nf = FakeNetns().netfilter
    with pytest.raises(RuleError, match=re.escape(message)):
        nf.append(table, chain, spec)


def test_a_long_comment_is_cut_to_255_bytes_as_iptables_does():
    nf = FakeNetns().netfilter
    nf.append("filter", "INPUT", "-m comment --comment " + "c" * 300 + " -j ACCEPT")
    assert nf.rules("filter", "INPUT")[0].comment == "c" * 255
    text = nf.save()
    assert real_iptables_save(f"*filter\n-A INPUT -m comment --comment {'c' * 300} -j ACCEPT\nCOMMIT\n") == text


def test_masquerade_reached_from_input_through_a_jump_is_refused_by_both():
    """xt_MASQUERADE runs only at POSTROUTING; the kernel refuses a jump that would bring it to
    INPUT when the rules are loaded, netsim when a packet gets there."""
    from netsim.netfilter import RuleError
    from netsim.skb import Skb
    from tests.test_netfilter import tcp
    text = "*nat\n:U - [0:0]\n-A U -j MASQUERADE\n-A INPUT -j U\nCOMMIT\n"
    assert "line 4: RULE_APPEND failed (Invalid argument)" in real_iptables_restore_refuses(text)
    nf = FakeNetns().netfilter
    nf.restore(text)
    skb = Skb()
    syn = tcp("203.0.113.10", 40000, "192.168.50.11", 22)
    nf.hook("PREROUTING", syn, skb, "eth0", None)
    with pytest.raises(RuleError, match="U rule 1: -j MASQUERADE reached in INPUT; iptables refuses this: "
                                        "DNAT belongs to PREROUTING/OUTPUT, SNAT belongs to POSTROUTING/INPUT, "
                                        "MASQUERADE belongs to POSTROUTING"):
        nf.hook("INPUT", syn, skb, "eth0", None)
