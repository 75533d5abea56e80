"""flanneld's nftables mode (`"EnableNFTables": true` in net-conf.json, flannel v0.25.0 and
later, documented as experimental): the tables and rules it writes, as the batches it sends.

Source: flannel-io/flannel v0.28.9 pkg/trafficmngr/nftables/nftables.go and utils.go (knftables).
`Init` adds `table ip flannel-ipv4` and `table ip6 flannel-ipv6`, one batch each.
`SetupAndEnsureMasqRules` first asks the kernel whether `masquerade fully-random` is supported
(`checkRandomfully`: a chain `masqueradeTest` and one rule, sent with `nft --check`; the kernel
keeps the two handles it gave them), then adds chain `postrtg` (nat, postrouting, srcnat) with
six rules: kube-proxy's 0x4000 mark returns (an exact match, `meta mark 0x4000`, where the
iptables mode tests `--mark 0x4000/0x4000`), traffic within the pod network returns, traffic
from outside the node's subnet to the pod network returns (the iptables mode's rule is `! -s
NETWORK -d SUBNET`), the pod network's traffic leaving it is masqueraded (not multicast), and
the host's traffic into the pod network is masqueraded. `SetupAndEnsureForwardRules` adds chain
`forward` (filter, forward, filter) accepting the pod network both ways. main.go runs the
masquerade setup before the forward setup.
"""

from __future__ import annotations

from ipaddress import IPv4Network

IPV4_TABLE = "ip flannel-ipv4"
IPV6_TABLE = "ip6 flannel-ipv6"
MULTICAST = "224.0.0.0/4"


def batches(network: IPv4Network, subnet: IPv4Network, random_fully: bool = True) -> list[tuple[str, bool]]:
    """flanneld's nft batches in order, each as (`nft -f` text, sent with --check)."""
    masq = "masquerade fully-random" if random_fully else "masquerade"
    net, sub = str(network), str(subnet)
    init4 = f'add table {IPV4_TABLE} {{ comment "rules for flannel-ipv4" ; }}\n'
    init6 = f'add table {IPV6_TABLE} {{ comment "rules for flannel-ipv6" ; }}\n'
    probe = (f"add chain {IPV4_TABLE} masqueradeTest {{ type nat hook postrouting priority 100 ; "
             f'comment "chain to test if masquerade random fully is supported" ; }}\n'
             f"flush chain {IPV4_TABLE} masqueradeTest\n"
             f"add rule {IPV4_TABLE} masqueradeTest ip saddr != 127.0.0.1 masquerade fully-random\n")
    rules = (f"meta mark 0x4000 return", f"ip saddr {sub} ip daddr {net} return",
             f"ip saddr {net} ip daddr {sub} return", f"ip saddr != {sub} ip daddr {net} return",
             f"ip saddr {net} ip daddr != {MULTICAST} {masq}", f"ip saddr != {net} ip daddr {net} {masq}")
    masquerade = (f"add chain {IPV4_TABLE} postrtg {{ type nat hook postrouting priority 100 ; "
                  f'comment "chain to manage traffic masquerading by flannel" ; }}\n'
                  f"flush chain {IPV4_TABLE} postrtg\n"
                  + "".join(f"add rule {IPV4_TABLE} postrtg {rule}\n" for rule in rules))
    forward = (f"add chain {IPV4_TABLE} forward {{ type filter hook forward priority 0 ; "
               f'comment "chain to accept flannel traffic" ; }}\n'
               f"flush chain {IPV4_TABLE} forward\n"
               f"add rule {IPV4_TABLE} forward ip saddr {net} accept\n"
               f"add rule {IPV4_TABLE} forward ip daddr {net} accept\n")
    return [(init4, False), (init6, False), (probe, True), (masquerade, False), (forward, False)]


__all__ = ["batches", "IPV4_TABLE", "IPV6_TABLE"]
