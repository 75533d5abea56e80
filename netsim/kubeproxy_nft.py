"""kube-proxy in nftables mode: the transaction its first full sync writes, from the same
Service and endpoint model as the iptables mode (kubeproxy.Service).

Facts (docs/kube-proxy-today.md): the ruleset is that of pkg/proxy/nftables/proxier_test.go at
commit 81810de6 (`baseRules`, `TestOverallNFTablesRules`): one table `ip kube-proxy`, filter base
chains at `dstnat - 10` (pre-DNAT: firewall-check) and at `filter` (after DNAT: the
no-endpoint and ClusterIP checks), nat base chains at `dstnat` and `srcnat`, the verdict maps
service-ips, service-nodeports, no-endpoint-services, no-endpoint-nodeports and firewall-ips,
the sets cluster-ips and nodeport-ips, `numgen random mod N` across endpoint chains, and the
masquerade mark 0x4000 set in mark-for-masquerade and cleared in masquerading. The order of the
commands follows setupNFTables and syncProxyRules of pkg/proxy/nftables/proxier.go at b0f823e6
(the newest whole proxier.go the search index holds), with the newer chain names; services are
written sorted by name (kube-proxy walks a Go map, so a real node's order, and with it the
handles of the service chains, varies from sync to sync).

Chain names: `service-`, `local-`, `external-` + base32(sha256(NS/NAME/PROTO/PORTNAME))[:8] + "-" +
that name, `endpoint-` likewise with `__IP/PORT` (hashAndTruncate). nftables mode serves
NodePorts only on the node's primary address by default (`--nodeport-addresses primary`, v1.31):
the set nodeport-ips; with `nodeport_addresses="all"` the services chain uses `fib daddr type
local` instead. A Service with several ports gets each port's chains and map elements on
their own (kube-proxy's svcPortMap holds one entry per port), named by the port's name. A
headless Service (no ClusterIP) gets nothing. A load-balancer address (status.loadBalancer.
ingress) is one more `service-ips` element going to the external chain, or with
loadBalancerSourceRanges a `firewall-ips` element going to chain `firewall-...`, `ip saddr !=
{ RANGES } drop`, which `firewall-check` meets before DNAT (the proxier.go that the search
index holds newest, as read for docs/edge-of-the-cluster.md). No health-check rule: nftables
mode has no default drop to open for it. No externalIPs, session affinity, or
internalTrafficPolicy Local.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from typing import Iterable

from .kubeproxy import PortInfo, Service

TABLE = "ip kube-proxy"
MASQ_MARK = 0x4000                 # 1 << --iptables-masquerade-bit (14), shared with iptables mode
CHAIN_NAME_BASE_MAX = 256 - 16     # knftables.NameLengthMax - chainNamePrefixLengthMax

# (name, type, hook, priority) in the order setupNFTables creates them
BASE_CHAINS = (
    ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
    ("filter-output-pre-dnat", "filter", "output", -110),
    ("filter-input", "filter", "input", 0),
    ("filter-forward", "filter", "forward", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
# (regular chain, the base chain that jumps to it, the match before the jump)
JUMP_CHAINS = (
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting-pre-dnat", "ct state new"),
    ("firewall-check", "filter-output-pre-dnat", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output", "ct state new"),
)


@lru_cache(maxsize=4096)
def hash_and_truncate(name: str) -> str:
    """hashAndTruncate(): the first 8 characters of base32(sha256(name)), '-', the name; cut to
    240 characters with '...' at the end."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8]
    name = f"{digest}-{name}"
    if len(name) > CHAIN_NAME_BASE_MAX:
        name = name[:CHAIN_NAME_BASE_MAX - 3] + "..."
    return name


def chain_base(svc: Service | PortInfo) -> str:
    """servicePortChainNameBase (pkg/proxy/nftables/proxier.go): NS/NAME/PROTO/PORTNAME, the
    port's name empty for a Service's one unnamed port."""
    return hash_and_truncate(f"{svc.namespace}/{svc.name}/{svc.protocol}/{svc.port_label}")


def service_chain(svc: Service | PortInfo) -> str:
    return "service-" + chain_base(svc)


def local_chain(svc: Service | PortInfo) -> str:
    return "local-" + chain_base(svc)


def external_chain(svc: Service | PortInfo) -> str:
    return "external-" + chain_base(svc)


def firewall_chain(svc: Service | PortInfo) -> str:
    return "firewall-" + chain_base(svc)


def endpoint_chain(svc: Service | PortInfo, ip: str) -> str:
    """servicePortEndpointChainNameBase: NS/NAME/PROTO/PORTNAME__IP/PORT."""
    return "endpoint-" + hash_and_truncate(f"{svc.namespace}/{svc.name}/{svc.protocol}/{svc.port_label}__{ip}/"
                                           f"{svc.target_port}")


@dataclass(frozen=True)
class NodeConfig:
    """What kube-proxy on one node needs besides the Services: the pod network (its local
    traffic detector, `--cluster-cidr`), the ServiceCIDRs, the node's primary address and which
    pods run on the node."""

    cluster_cidr: str
    service_cidrs: tuple[str, ...]
    node_ips: tuple[str, ...]
    local_pods: frozenset[str] = frozenset()
    nodeport_addresses: str = "primary"      # or "all" (`--nodeport-addresses 0.0.0.0/0`)


class _Tx:
    """knftables' Transaction: the commands in order, written as `nft -f` reads them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.created: set[str] = set()

    def add(self, line: str) -> None:
        self.lines.append(line)

    def ensure_chain(self, chain: str) -> None:
        """ensureChain(): add and flush a chain once per transaction."""
        if chain in self.created:
            return
        self.created.add(chain)
        self.add(f"add chain {TABLE} {chain}")
        self.add(f"flush chain {TABLE} {chain}")

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def transaction(services: Iterable[Service], node: NodeConfig, first_sync: bool = True) -> str:
    """The `nft -f` input of kube-proxy's full sync on one node."""
    tx = _Tx()
    _setup(tx, node, first_sync)
    ports = [info for svc in services if svc.cluster_ip is not None for info in svc.ports_info()]
    for info in sorted(ports, key=lambda p: p.port_name):
        _service(tx, info, node)
    return tx.text()


def _setup(tx: _Tx, node: NodeConfig, first_sync: bool) -> None:
    """setupNFTables()."""
    mark = f"{MASQ_MARK:#x}"
    tx.add(f'add table {TABLE} {{ comment "rules for kube-proxy" ; }}')
    if first_sync:          # proxier.flushed: recreate the base chains once, so priorities can change
        for name, *_ in BASE_CHAINS:
            tx.add(f"add chain {TABLE} {name}")
            tx.add(f"delete chain {TABLE} {name}")
    for name, kind, hook, priority in BASE_CHAINS:
        tx.add(f"add chain {TABLE} {name} {{ type {kind} hook {hook} priority {priority} ; }}")
        tx.add(f"flush chain {TABLE} {name}")
    for dst, src, extra in JUMP_CHAINS:
        tx.ensure_chain(dst)
        tx.add(f"add rule {TABLE} {src} {extra + ' ' if extra else ''}jump {dst}")
    for chain in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        tx.ensure_chain(chain)
    tx.add(f"add rule {TABLE} mark-for-masquerade mark set mark or {mark}")
    tx.add(f"add rule {TABLE} masquerading mark and {mark} == 0 return")
    tx.add(f"add rule {TABLE} masquerading mark set mark xor {mark}")
    tx.add(f"add rule {TABLE} masquerading masquerade fully-random")
    tx.add(f'add set {TABLE} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}')
    tx.add(f'add rule {TABLE} cluster-ips-check ip daddr @cluster-ips reject '
           f'comment "Reject traffic to invalid ports of ClusterIPs"')
    if node.service_cidrs:
        tx.add(f'add rule {TABLE} cluster-ips-check ip daddr {{ {", ".join(node.service_cidrs)} }} drop '
               f'comment "Drop traffic to unallocated ClusterIPs"')
    tx.add(f'add set {TABLE} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}')
    match_all = node.nodeport_addresses == "all"
    if match_all:
        tx.add(f"delete set {TABLE} nodeport-ips")
    else:
        tx.add(f"flush set {TABLE} nodeport-ips")
        for ip in node.node_ips:
            tx.add(f"add element {TABLE} nodeport-ips {{ {ip} }}")
    tx.add(f'add map {TABLE} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
           f'comment "vmap to drop or reject packets to services with no endpoints" ; }}')
    tx.add(f'add map {TABLE} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; '
           f'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}')
    tx.add(f'add chain {TABLE} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}')
    tx.add(f"flush chain {TABLE} reject-chain")
    tx.add(f"add rule {TABLE} reject-chain reject")
    tx.add(f"add rule {TABLE} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    nodeports = "ip daddr != 127.0.0.0/8" if match_all else "ip daddr @nodeport-ips"
    tx.add(f"add rule {TABLE} nodeport-endpoints-check {nodeports} meta l4proto . th dport vmap @no-endpoint-nodeports")
    tx.add(f'add map {TABLE} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
           f'comment "destinations that are subject to LoadBalancerSourceRanges" ; }}')
    tx.add(f"add rule {TABLE} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips")
    tx.add(f'add map {TABLE} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
           f'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}')
    tx.add(f'add map {TABLE} service-nodeports {{ type inet_proto . inet_service : verdict ; '
           f'comment "NodePort traffic" ; }}')
    tx.add(f"add rule {TABLE} services ip daddr . meta l4proto . th dport vmap @service-ips")
    if match_all:
        tx.add(f"add rule {TABLE} services fib daddr type local ip daddr != 127.0.0.0/8 "
               f"meta l4proto . th dport vmap @service-nodeports")
    else:
        tx.add(f"add rule {TABLE} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports")
    for kind, name in (("set", "cluster-ips"), ("map", "service-ips"), ("map", "firewall-ips"),
                       ("map", "no-endpoint-services"), ("map", "no-endpoint-nodeports"),
                       ("map", "service-nodeports")):
        tx.add(f"flush {kind} {TABLE} {name}")


def _service(tx: _Tx, svc: PortInfo, node: NodeConfig) -> None:
    """One service port of syncProxyRules()."""
    proto, name = svc.protocol, svc.port_name
    endpoints = [ip for _, ip in svc.endpoints]
    local = [ip for pod, ip in svc.endpoints if pod in node.local_pods]
    has_endpoints = bool(endpoints)
    external = svc.externally_accessible
    policy_local = external and svc.external_traffic_policy == "Local"
    cluster, local_c, ext = service_chain(svc), local_chain(svc), external_chain(svc)
    uses_local_chain = bool(local) and policy_local
    has_external_endpoints = has_endpoints and (bool(local) if policy_local else True)
    uses_external_chain = has_endpoints and external
    for ip in endpoints:                       # allLocallyReachableEndpoints (cluster policy uses them all)
        tx.ensure_chain(endpoint_chain(svc, ip))
    if endpoints:
        tx.ensure_chain(cluster)
    if uses_local_chain:
        tx.ensure_chain(local_c)
    if uses_external_chain:
        tx.ensure_chain(ext)
    if not has_endpoints:
        filter_verdict = "goto reject-chain"
    else:
        filter_verdict = "drop"
    tx.add(f"add element {TABLE} cluster-ips {{ {svc.cluster_ip} }}")
    key = f"{svc.cluster_ip} . {proto} . {svc.port}"
    if has_endpoints:
        tx.add(f"add element {TABLE} service-ips {{ {key} : goto {cluster} }}")
    else:
        tx.add(f'add element {TABLE} no-endpoint-services {{ {key} comment "{name}" : {filter_verdict} }}')
    _load_balancer_elements(tx, svc, has_endpoints, has_external_endpoints, filter_verdict)
    if svc.node_port is not None:
        if has_endpoints:
            tx.add(f"add element {TABLE} service-nodeports {{ {proto} . {svc.node_port} : goto {ext} }}")
        if not has_external_endpoints:
            tx.add(f'add element {TABLE} no-endpoint-nodeports {{ {proto} . {svc.node_port} comment "{name}" : '
                   f'{filter_verdict} }}')
    if has_endpoints:
        tx.add(f"add rule {TABLE} {cluster} ip daddr {svc.cluster_ip} ip saddr != {node.cluster_cidr} "
               f"jump mark-for-masquerade")
    if uses_external_chain:
        if not policy_local:
            tx.add(f"add rule {TABLE} {ext} jump mark-for-masquerade")
        else:
            tx.add(f'add rule {TABLE} {ext} ip saddr {node.cluster_cidr} goto {cluster} comment "short-circuit pod traffic"')
            tx.add(f'add rule {TABLE} {ext} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"')
            tx.add(f'add rule {TABLE} {ext} fib saddr type local goto {cluster} comment "short-circuit local traffic"')
        if has_external_endpoints:
            tx.add(f"add rule {TABLE} {ext} goto {local_c if policy_local else cluster}")
    if svc.load_balancer_ips and svc.load_balancer_source_ranges:
        _firewall_rule(tx, svc, node)
    if endpoints:
        _endpoint_rules(tx, svc, cluster, endpoints)
    if uses_local_chain:
        _endpoint_rules(tx, svc, local_c, local)
    for ip in endpoints:
        chain = endpoint_chain(svc, ip)
        tx.add(f"add rule {TABLE} {chain} ip saddr {ip} jump mark-for-masquerade")
        tx.add(f"add rule {TABLE} {chain} meta l4proto {proto} dnat to {ip}:{svc.target_port}")


def _load_balancer_elements(tx: _Tx, svc: PortInfo, has_endpoints: bool, has_external: bool, verdict: str) -> None:
    """The load-balancer addresses: a service-ips element to the external chain, with source
    ranges a firewall-ips element to the firewall chain (usesFWChain does not ask for
    endpoints in this mode), and without external endpoints a no-endpoint-services element."""
    proto, fw = svc.protocol, firewall_chain(svc)
    uses_fw = bool(svc.load_balancer_ips) and bool(svc.load_balancer_source_ranges)
    if uses_fw:
        tx.ensure_chain(fw)
    for ip in svc.load_balancer_ips:
        key = f"{ip} . {proto} . {svc.port}"
        if has_endpoints:
            tx.add(f"add element {TABLE} service-ips {{ {key} : goto {external_chain(svc)} }}")
        if uses_fw:
            tx.add(f"add element {TABLE} firewall-ips {{ {key} : goto {fw} }}")
    if not has_external:
        for ip in svc.load_balancer_ips:
            tx.add(f'add element {TABLE} no-endpoint-services {{ {ip} . {proto} . {svc.port} comment '
                   f'"{svc.port_name}" : {verdict} }}')


def _firewall_rule(tx: _Tx, svc: PortInfo, node: NodeConfig) -> None:
    """The firewall chain: drop a source outside loadBalancerSourceRanges (and, when a range
    holds the node's address, outside the load-balancer addresses too)."""
    sources = list(svc.load_balancer_source_ranges)
    node_ips = [IPv4Address(ip) for ip in node.node_ips]
    if any(ip in IPv4Network(cidr) for cidr in sources for ip in node_ips):
        sources += list(svc.load_balancer_ips)
    tx.add(f"add rule {TABLE} {firewall_chain(svc)} ip saddr != {{ {', '.join(sources)} }} drop")


def _endpoint_rules(tx: _Tx, svc: PortInfo, chain: str, ips: list[str]) -> None:
    """writeServiceToEndpointRules(): one numgen vmap across the endpoint chains."""
    elements = " , ".join(f"{i} : goto {endpoint_chain(svc, ip)}" for i, ip in enumerate(ips))
    tx.add(f"add rule {TABLE} {chain} numgen random mod {len(ips)} vmap {{ {elements} }}")


__all__ = ["NodeConfig", "transaction", "service_chain", "local_chain", "external_chain", "endpoint_chain",
           "firewall_chain",
           "hash_and_truncate", "BASE_CHAINS", "JUMP_CHAINS", "MASQ_MARK"]
