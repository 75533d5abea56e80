"""kube-proxy in iptables mode: the chains it writes for ClusterIP and NodePort services.

Facts (flannel-kubernetes-facts.md section I; kubernetes pkg/proxy/iptables/proxier.go and
its TestOverallIPTablesRules, the newest the search index holds, v1.31 or later, and
docs/kube-proxy-today.md): nat PREROUTING and OUTPUT jump to KUBE-SERVICES, POSTROUTING to
KUBE-POSTROUTING (inserted first, so it runs before Flannel's chain); KUBE-SERVICES matches each
ClusterIP and ends with `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`; NodePorts jump to
KUBE-EXT-*, which marks for masquerade (policy Cluster) or keeps the client address and uses
only local endpoints (policy Local, KUBE-SVL-*); KUBE-SVC-* picks an endpoint chain KUBE-SEP-*
with `-m statistic`; KUBE-SEP-* DNATs. KUBE-MARK-MASQ ORs in 0x4000; KUBE-POSTROUTING clears
it and MASQUERADEs. A service with no endpoints gets no nat chain at all, only filter rules
that REJECT its ClusterIP (KUBE-SERVICES) and its NodePort (KUBE-EXTERNAL-SERVICES). Chain
names carry kube-proxy's hash: base32(sha256(name + protocol))[:16].

What a reader of `iptables-save` on a current node sees besides (each with the release that
brought it; the book's chapters show the current rules):

- since v1.31 (kubernetes PR #122812): the KUBE-FORWARD rule dropping ctstate INVALID packets
  also counts them, `-m nfacct --nfacct-name ct_state_invalid_dropped_pkts` (metric
  kubeproxy_iptables_ct_state_invalid_dropped_packets_total), where kube-proxy could create
  the nfacct object (a kernel with nfnetlink_acct and xt_nfacct, as the lab's);
- since v1.31 (PR #125015): every NodePort with endpoints gets a second KUBE-NODEPORTS rule,
  before the usual one, for localhost NodePorts: `-d 127.0.0.0/8 ... -m nfacct --nfacct-name
  localhost_nps_accepted_pkts` (metric kubeproxy_iptables_localhost_nodeports_accepted_packets_total);
- since v1.29 (PR #120412) the INVALID drop is written only while
  net.netfilter.nf_conntrack_tcp_be_liberal is 0, the default (netsim's nodes keep it);
- not new, but missing from netsim's v1.28 rules until now: the empty KUBE-PROXY-CANARY
  chains kube-proxy's iptables monitor keeps in mangle, nat and filter, and KUBE-FIREWALL
  (`! -s 127.0.0.0/8 -d 127.0.0.0/8 ... ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`, issue
  #90259), which kubelet has written since v1.19 (PR #91569) and kube-proxy writes too while
  localhost NodePorts are on (the IPv4 default), jumped to last from INPUT and OUTPUT (kubelet
  put its jump there first; kube-proxy's own jumps are inserted above it). netsim does not
  model route_localnet, which kube-proxy sets for localhost NodePorts.

On the wire nothing changed: the same DNAT, the same MASQUERADE --random-fully.

Before kube-proxy sees a Service, kube-apiserver gives it a ClusterIP and a NodePort or
refuses it; `check_cluster_ip`, `allocate_cluster_ip` and `check_node_port` do what its
allocators do (see "Allocation" below).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network

from .addresses import parse_address
from .errors import ConfigError
from .params import check_port

MASQ_MARK = "0x4000"
# nfacct objects kube-proxy's iptables mode counts in since v1.31 (pkg/proxy/metrics)
NFACCT_INVALID = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NODEPORTS = "localhost_nps_accepted_pkts"
NFACCT_OBJECTS = (NFACCT_INVALID, NFACCT_LOCALHOST_NODEPORTS)
# kube-apiserver's --service-node-port-range default: DefaultServiceNodePortRange =
# PortRange{Base: 30000, Size: 2768} (kubernetes pkg/kubeapiserver/options/options.go).
NODEPORT_RANGE = (30000, 32767)


@lru_cache(maxsize=4096)
def port_proto_hash(service_port_name: str, protocol: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol.lower()).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


@lru_cache(maxsize=4096)
def endpoint_hash(service_port_name: str, protocol: str, endpoint: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol.lower() + endpoint).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


@dataclass
class Service:
    name: str
    cluster_ip: str
    port: int
    target_port: int
    protocol: str = "tcp"
    node_port: int | None = None
    external_traffic_policy: str = "Cluster"
    endpoints: list[tuple[str, str]] = field(default_factory=list)   # (pod name, pod IP)
    namespace: str = "default"

    @property
    def port_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def svc_chain(self) -> str:
        return "KUBE-SVC-" + port_proto_hash(self.port_name, self.protocol)

    @property
    def ext_chain(self) -> str:
        return "KUBE-EXT-" + port_proto_hash(self.port_name, self.protocol)

    @property
    def svl_chain(self) -> str:
        return "KUBE-SVL-" + port_proto_hash(self.port_name, self.protocol)

    def sep_chain(self, endpoint_ip: str) -> str:
        return "KUBE-SEP-" + endpoint_hash(self.port_name, self.protocol, f"{endpoint_ip}:{self.target_port}")


# Allocation -------------------------------------------------------------------------------
# kube-apiserver allocates ClusterIPs and NodePorts (pkg/registry/core/service/ipallocator,
# portallocator) and refuses a Service whose clusterIP is taken ("provided IP is already
# allocated", ErrAllocated in ipallocator/interfaces.go) or outside the service range ("provided
# IP ... is not in the valid range", ErrNotInRange); the range's network and broadcast addresses
# are never handed out. A nodePort must lie in --service-node-port-range and be free.

def check_cluster_ip(text: object, cidr: IPv4Network, taken: dict[str, str]) -> str:
    """A requested clusterIP, if kube-apiserver would accept it; `taken` maps allocated
    ClusterIPs to their service."""
    if not isinstance(text, str):
        raise ConfigError(f"clusterIP {text!r} must be an address string such as '10.96.0.200', "
                          f"not {type(text).__name__}")
    addr = parse_address(text, "clusterIP")
    if addr not in cidr or addr in (cidr.network_address, cidr.broadcast_address):
        raise ConfigError(f"clusterIP {text}: provided IP is not in the valid range: use a host address of the "
                          f"service CIDR {cidr}")
    ip = str(addr)
    if ip in taken:
        raise ConfigError(f"clusterIP {ip}: provided IP is already allocated (to service {taken[ip]}); "
                          f"pick another or leave cluster_ip out")
    return ip


def allocate_cluster_ip(cidr: IPv4Network, first: IPv4Address, count: int, taken: dict[str, str]) -> str:
    """The next free ClusterIP: `first + count` when free (one per service so far, which is
    what the book's clusters get), else the next free host address after it, wrapping round."""
    start = int(first) + count
    low, high = int(cidr.network_address) + 1, int(cidr.broadcast_address) - 1
    size = high - low + 1
    if len(taken) >= size:
        raise ConfigError(f"the service CIDR {cidr} is full: range is full ({len(taken)} ClusterIPs allocated)")
    for i in range(size):
        value = low + (start - low + i) % size
        ip = str(IPv4Address(value))
        if ip not in taken:
            return ip
    raise ConfigError(f"the service CIDR {cidr} is full")        # pragma: no cover (len(taken) < size)


def check_node_port(port: object, taken: dict[int, str]) -> int:
    """A requested nodePort, if it lies in NODEPORT_RANGE and no other service has it."""
    low, high = NODEPORT_RANGE
    if isinstance(port, bool) or not isinstance(port, int):
        check_port(port, "nodePort")
    if not low <= port <= high:                                   # type: ignore[operator]
        raise ConfigError(f"nodePort {port!r} is outside the NodePort range {low}-{high} "
                          f"(kube-apiserver's default --service-node-port-range)")
    if port in taken:
        raise ConfigError(f"nodePort {port}: provided port is already allocated (to service {taken[port]})")
    return port                                                   # type: ignore[return-value]


def base_rules(nf) -> None:
    """The chains and jumps kube-proxy installs once per node."""
    for table in ("mangle", "nat", "filter"):          # its iptables monitor's canary (ipt.Monitor)
        nf.new_chain(table, "KUBE-PROXY-CANARY")
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        nf.new_chain("nat", chain)
    nf.insert("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    nf.insert("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    nf.insert("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING')
    nf.append("nat", "KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQ_MARK}")
    nf.append("nat", "KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    nf.append("nat", "KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQ_MARK}")
    nf.append("nat", "KUBE-POSTROUTING",
              '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully')
    for chain in ("KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL",
                  "KUBE-FIREWALL"):
        nf.new_chain("filter", chain)
    # kubelet's jumps to KUBE-FIREWALL were there first; kube-proxy's are inserted above them
    nf.append("filter", "INPUT", "-j KUBE-FIREWALL")
    nf.append("filter", "OUTPUT", "-j KUBE-FIREWALL")
    nf.insert("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible '
                                 'service portals" -j KUBE-EXTERNAL-SERVICES')
    nf.insert("filter", "INPUT", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS')
    nf.insert("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
                                 'firewall" -j KUBE-PROXY-FIREWALL')
    nf.insert("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible '
                                   'service portals" -j KUBE-EXTERNAL-SERVICES')
    nf.insert("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                                   '-j KUBE-SERVICES')
    nf.insert("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
    nf.insert("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
                                   'firewall" -j KUBE-PROXY-FIREWALL')
    nf.insert("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
                                  '-j KUBE-SERVICES')
    nf.insert("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
                                  'firewall" -j KUBE-PROXY-FIREWALL')
    nf.append("filter", "KUBE-FIREWALL", '! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming '
                                         'localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
    # v1.31: the INVALID drop counts in an nfacct object (PR #122812)
    nf.append("filter", "KUBE-FORWARD", f"-m conntrack --ctstate INVALID -m nfacct --nfacct-name {NFACCT_INVALID} -j DROP")
    nf.append("filter", "KUBE-FORWARD", f'-m comment --comment "kubernetes forwarding rules" '
                                        f'-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT')
    nf.append("filter", "KUBE-FORWARD", '-m comment --comment "kubernetes forwarding conntrack rule" '
                                        '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')


def service_rules(nf, svc: Service, cluster_cidr: str, local_endpoints: list[str]) -> None:
    """One service's rules on one node; `local_endpoints` are the endpoint IPs on this node."""
    p = svc.protocol
    name = svc.port_name
    if not svc.endpoints:
        # no endpoints at all: no nat chain, only filter rules rejecting the ClusterIP and the
        # NodePort (syncProxyRules: hasEndpoints false)
        nf.append("filter", "KUBE-SERVICES", f'-d {svc.cluster_ip}/32 -p {p} -m comment --comment "{name} has no '
                                             f'endpoints" -m {p} --dport {svc.port} -j REJECT '
                                             f'--reject-with icmp-port-unreachable')
        if svc.node_port is not None:
            nf.append("filter", "KUBE-EXTERNAL-SERVICES",
                      f'-p {p} -m comment --comment "{name} has no endpoints" -m addrtype --dst-type LOCAL '
                      f'-m {p} --dport {svc.node_port} -j REJECT --reject-with icmp-port-unreachable')
        return
    nf.new_chain("nat", svc.svc_chain)
    for _, ip in svc.endpoints:
        nf.new_chain("nat", svc.sep_chain(ip))
    if svc.node_port is not None:
        nf.new_chain("nat", svc.ext_chain)
        if svc.external_traffic_policy == "Local":
            nf.new_chain("nat", svc.svl_chain)
    nf.append("nat", "KUBE-SERVICES", f'-d {svc.cluster_ip}/32 -p {p} -m comment --comment "{name} cluster IP" '
                                      f'-m {p} --dport {svc.port} -j {svc.svc_chain}')
    nf.append("nat", svc.svc_chain, f'! -s {cluster_cidr} -d {svc.cluster_ip}/32 -p {p} -m comment --comment '
                                    f'"{name} cluster IP" -m {p} --dport {svc.port} -j KUBE-MARK-MASQ')
    _endpoint_jumps(nf, svc, svc.svc_chain, [ip for _, ip in svc.endpoints])
    for _, ip in svc.endpoints:
        sep = svc.sep_chain(ip)
        nf.append("nat", sep, f'-s {ip}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ')
        nf.append("nat", sep, f'-p {p} -m comment --comment "{name}" -m {p} -j DNAT '
                              f'--to-destination {ip}:{svc.target_port}')
    if svc.node_port is None:
        return
    # v1.31: localhost NodePorts counted first (PR #125015)
    nf.append("nat", "KUBE-NODEPORTS", f'-d 127.0.0.0/8 -p {p} -m comment --comment "{name}" -m {p} --dport '
                                       f'{svc.node_port} -m nfacct --nfacct-name {NFACCT_LOCALHOST_NODEPORTS} '
                                       f'-j {svc.ext_chain}')
    nf.append("nat", "KUBE-NODEPORTS", f'-p {p} -m comment --comment "{name}" -m {p} --dport {svc.node_port} '
                                       f'-j {svc.ext_chain}')
    if svc.external_traffic_policy == "Local":
        nf.append("nat", svc.ext_chain, f'-s {cluster_cidr} -m comment --comment "pod traffic for {name} external '
                                        f'destinations" -j {svc.svc_chain}')
        nf.append("nat", svc.ext_chain, f'-m comment --comment "masquerade LOCAL traffic for {name} external '
                                        f'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
        nf.append("nat", svc.ext_chain, f'-m comment --comment "route LOCAL traffic for {name} external '
                                        f'destinations" -m addrtype --src-type LOCAL -j {svc.svc_chain}')
        nf.append("nat", svc.ext_chain, f"-j {svc.svl_chain}")
        _endpoint_jumps(nf, svc, svc.svl_chain, local_endpoints)
        if not local_endpoints:
            nf.append("filter", "KUBE-EXTERNAL-SERVICES",
                      f'-p {p} -m comment --comment "{name} has no local endpoints" -m addrtype --dst-type LOCAL '
                      f'-m {p} --dport {svc.node_port} -j DROP')
    else:
        nf.append("nat", svc.ext_chain, f'-m comment --comment "masquerade traffic for {name} external '
                                        f'destinations" -j KUBE-MARK-MASQ')
        nf.append("nat", svc.ext_chain, f"-j {svc.svc_chain}")


def _endpoint_jumps(nf, svc: Service, chain: str, ips: list[str]) -> None:
    n = len(ips)
    for i, ip in enumerate(ips):
        remaining = n - i
        stat = f"-m statistic --mode random --probability {1 / remaining:.11f} " if remaining > 1 else ""
        nf.append("nat", chain, f'-m comment --comment "{svc.port_name} -> {ip}:{svc.target_port}" '
                                f'{stat}-j {svc.sep_chain(ip)}')


def finish_nodeports(nf) -> None:
    """KUBE-SERVICES' last rule: traffic to a local address goes to KUBE-NODEPORTS."""
    nf.append("nat", "KUBE-SERVICES", '-m comment --comment "kubernetes service nodeports; NOTE: this must be the '
                                      'last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
