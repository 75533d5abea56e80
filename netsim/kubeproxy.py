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
  put its jump there first; kube-proxy's own jumps are inserted above it). For localhost
  NodePorts kube-proxy also writes net.ipv4.conf.all.route_localnet=1 (ip_input.py and
  ip_output.py apply it).

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


@dataclass(frozen=True)
class ServicePort:
    """One entry of a Service's spec.ports: its name (required once a Service has two ports),
    port, targetPort, protocol and (NodePort and LoadBalancer types) nodePort."""

    name: str = ""
    port: int = 80
    target_port: int = 80
    protocol: str = "tcp"
    node_port: int | None = None


@dataclass
class Service:
    """A Service as kube-proxy sees it: one ClusterIP (None: headless) and one or more ports,
    its ready endpoints, and for type LoadBalancer the addresses of status.loadBalancer.ingress.
    kube-proxy programs each port on its own (`ports_info()`); the single-port attributes
    (`port`, `target_port`, `protocol`, `node_port`, the chain names) are the first port's."""

    name: str
    cluster_ip: str | None
    ports: tuple[ServicePort, ...]
    external_traffic_policy: str = "Cluster"
    endpoints: list[tuple[str, str]] = field(default_factory=list)   # (pod name, pod IP), ready ones
    namespace: str = "default"
    type: str = "ClusterIP"
    load_balancer_ips: tuple[str, ...] = ()             # status.loadBalancer.ingress[].ip
    load_balancer_source_ranges: tuple[str, ...] = ()   # spec.loadBalancerSourceRanges
    health_check_node_port: int | None = None           # spec.healthCheckNodePort (LoadBalancer, policy Local)

    @classmethod
    def single(cls, name: str, cluster_ip: str | None, port: int, target_port: int, protocol: str = "tcp",
               node_port: int | None = None, external_traffic_policy: str = "Cluster",
               endpoints: list[tuple[str, str]] | None = None, namespace: str = "default") -> "Service":
        """A Service with one unnamed port (the form netsim's first clusters had)."""
        return cls(name, cluster_ip, (ServicePort("", port, target_port, protocol, node_port),),
                   external_traffic_policy, list(endpoints or []), namespace,
                   "NodePort" if node_port is not None else "ClusterIP")

    def ports_info(self) -> tuple["PortInfo", ...]:
        """One record per port, as kube-proxy's svcPortMap holds them."""
        return tuple(PortInfo(self, p) for p in self.ports)

    @property
    def first(self) -> "PortInfo":
        return PortInfo(self, self.ports[0])

    @property
    def headless(self) -> bool:
        return self.cluster_ip is None

    # the first port's, for one-port services and the code written for them
    port = property(lambda self: self.ports[0].port)
    target_port = property(lambda self: self.ports[0].target_port)
    protocol = property(lambda self: self.ports[0].protocol)
    node_port = property(lambda self: self.ports[0].node_port)
    port_label = property(lambda self: self.ports[0].name)
    port_name = property(lambda self: self.first.port_name)
    svc_chain = property(lambda self: self.first.svc_chain)
    ext_chain = property(lambda self: self.first.ext_chain)
    svl_chain = property(lambda self: self.first.svl_chain)
    fw_chain = property(lambda self: self.first.fw_chain)

    def sep_chain(self, endpoint_ip: str) -> str:
        return self.first.sep_chain(endpoint_ip)


@dataclass(frozen=True)
class PortInfo:
    """One port of a Service with everything kube-proxy writes rules from (servicePortInfo).
    Its ServicePortName is `NS/NAME` for an unnamed port and `NS/NAME:PORTNAME` for a named
    one (proxy.ServicePortName.String), which names its chains and fills its comments."""

    service: Service
    spec: ServicePort

    name = property(lambda self: self.service.name)
    namespace = property(lambda self: self.service.namespace)
    cluster_ip = property(lambda self: self.service.cluster_ip)
    endpoints = property(lambda self: self.service.endpoints)
    external_traffic_policy = property(lambda self: self.service.external_traffic_policy)
    load_balancer_ips = property(lambda self: self.service.load_balancer_ips)
    load_balancer_source_ranges = property(lambda self: self.service.load_balancer_source_ranges)
    health_check_node_port = property(lambda self: self.service.health_check_node_port)
    port = property(lambda self: self.spec.port)
    target_port = property(lambda self: self.spec.target_port)
    protocol = property(lambda self: self.spec.protocol)
    node_port = property(lambda self: self.spec.node_port)
    port_label = property(lambda self: self.spec.name)

    @property
    def port_name(self) -> str:
        base = f"{self.service.namespace}/{self.service.name}"
        return f"{base}:{self.spec.name}" if self.spec.name else base

    @property
    def externally_accessible(self) -> bool:
        """ExternallyAccessible(): a NodePort, or a load-balancer address."""
        return self.spec.node_port is not None or bool(self.service.load_balancer_ips)

    # servicePortChainName & co. (pkg/proxy/iptables/proxier.go): prefix + portProtoHash
    @property
    def svc_chain(self) -> str:
        return "KUBE-SVC-" + port_proto_hash(self.port_name, self.protocol)

    @property
    def ext_chain(self) -> str:
        return "KUBE-EXT-" + port_proto_hash(self.port_name, self.protocol)

    @property
    def svl_chain(self) -> str:
        return "KUBE-SVL-" + port_proto_hash(self.port_name, self.protocol)

    @property
    def fw_chain(self) -> str:
        return "KUBE-FW-" + port_proto_hash(self.port_name, self.protocol)

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
    """The next free ClusterIP: `first + count` when free (`count`: the ClusterIPs allocated
    so far, which is what the book's clusters get), else the next free host address after it,
    wrapping round. kube-apiserver picks at random; this keeps runs alike."""
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


def node_port_offset(low: int = NODEPORT_RANGE[0], high: int = NODEPORT_RANGE[1]) -> int:
    """The size of the range's lower band, kept for ports users ask for (KEP-3668,
    portallocator's calculateRangeOffset: min(max(16, size / 32), 128)); 86 for the default."""
    size = high - low + 1
    return 0 if size <= 16 else min(max(16, size // 32), 128)


def allocate_node_port(taken: dict[int, str]) -> int:
    """A nodePort for a Service that asked for none. kube-apiserver picks one at random from
    the upper band, then from the lower; netsim takes the lowest free port of the upper band,
    then of the lower, so the same cluster gets the same ports on every run."""
    low, high = NODEPORT_RANGE
    start = low + node_port_offset()
    for port in (*range(start, high + 1), *range(low, start)):
        if port not in taken:
            return port
    raise ConfigError(f"the NodePort range {low}-{high} is full: range is full")


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


def service_rules(nf, svc: Service, cluster_cidr: str, local_endpoints: list[str], node_ip: str = "") -> None:
    """One service's rules on one node, port by port; `local_endpoints` are the endpoint IPs on
    this node, `node_ip` its primary address (loadBalancerSourceRanges that contain it also
    let the load-balancer addresses through). A headless service gets none: kube-proxy skips a
    Service without a ClusterIP (ServiceChangeTracker, `IsServiceIPSet`)."""
    if svc.cluster_ip is None:
        return
    for info in svc.ports_info():
        _port_rules(nf, info, cluster_cidr, local_endpoints, node_ip)


def _port_rules(nf, svc: PortInfo, cluster_cidr: str, local_endpoints: list[str], node_ip: str) -> None:
    """syncProxyRules for one service port (pkg/proxy/iptables/proxier.go)."""
    p, port, name = svc.protocol, svc.port, svc.port_name
    match = f"-p {p} -m comment --comment"
    lb_ips = svc.load_balancer_ips
    policy_local = svc.external_traffic_policy == "Local" and svc.externally_accessible
    has_external = bool(svc.endpoints) and (bool(local_endpoints) if policy_local else True)
    uses_ext = bool(svc.endpoints) and svc.externally_accessible
    uses_fw = bool(svc.endpoints) and bool(lb_ips) and bool(svc.load_balancer_source_ranges)
    if not svc.endpoints:
        # no endpoints at all: no nat chain, only filter rules rejecting the ClusterIP, the
        # load-balancer addresses and the NodePort (syncProxyRules: hasEndpoints false)
        reject = "-j REJECT --reject-with icmp-port-unreachable"
        nf.append("filter", "KUBE-SERVICES", f'-d {svc.cluster_ip}/32 {match} "{name} has no endpoints" '
                                             f'-m {p} --dport {port} {reject}')
        for ip in lb_ips:
            nf.append("filter", "KUBE-EXTERNAL-SERVICES", f'-d {ip}/32 {match} "{name} has no endpoints" '
                                                          f'-m {p} --dport {port} {reject}')
        if svc.node_port is not None:
            nf.append("filter", "KUBE-EXTERNAL-SERVICES",
                      f'{match} "{name} has no endpoints" -m addrtype --dst-type LOCAL '
                      f'-m {p} --dport {svc.node_port} {reject}')
        _health_check_rule(nf, svc)
        return
    nf.new_chain("nat", svc.svc_chain)
    for _, ip in svc.endpoints:
        nf.new_chain("nat", svc.sep_chain(ip))
    if uses_ext:
        nf.new_chain("nat", svc.ext_chain)
        if policy_local and local_endpoints:
            nf.new_chain("nat", svc.svl_chain)
    if uses_fw:
        nf.new_chain("nat", svc.fw_chain)
    nf.append("nat", "KUBE-SERVICES", f'-d {svc.cluster_ip}/32 {match} "{name} cluster IP" '
                                      f'-m {p} --dport {port} -j {svc.svc_chain}')
    for ip in lb_ips:
        nf.append("nat", "KUBE-SERVICES", f'-d {ip}/32 {match} "{name} loadbalancer IP" -m {p} --dport {port} '
                                          f'-j {svc.fw_chain if uses_fw else svc.ext_chain}')
        if uses_fw:
            nf.append("filter", "KUBE-PROXY-FIREWALL", f'-d {ip}/32 {match} "{name} traffic not accepted by '
                                                       f'{svc.fw_chain}" -m {p} --dport {port} -j DROP')
    if not has_external:
        for ip in lb_ips:
            nf.append("filter", "KUBE-EXTERNAL-SERVICES", f'-d {ip}/32 {match} "{name} has no local endpoints" '
                                                          f'-m {p} --dport {port} -j DROP')
    if svc.node_port is not None:
        # v1.31: localhost NodePorts counted first (PR #125015)
        nf.append("nat", "KUBE-NODEPORTS", f'-d 127.0.0.0/8 {match} "{name}" -m {p} --dport {svc.node_port} '
                                           f'-m nfacct --nfacct-name {NFACCT_LOCALHOST_NODEPORTS} -j {svc.ext_chain}')
        nf.append("nat", "KUBE-NODEPORTS", f'{match} "{name}" -m {p} --dport {svc.node_port} -j {svc.ext_chain}')
        if not has_external:
            nf.append("filter", "KUBE-EXTERNAL-SERVICES",
                      f'{match} "{name} has no local endpoints" -m addrtype --dst-type LOCAL '
                      f'-m {p} --dport {svc.node_port} -j DROP')
    _health_check_rule(nf, svc)
    nf.append("nat", svc.svc_chain, f'! -s {cluster_cidr} -d {svc.cluster_ip}/32 {match} "{name} cluster IP" '
                                    f'-m {p} --dport {port} -j KUBE-MARK-MASQ')
    _endpoint_jumps(nf, svc, svc.svc_chain, [ip for _, ip in svc.endpoints])
    if uses_ext:
        _external_rules(nf, svc, cluster_cidr, policy_local, has_external)
    if uses_fw:
        _firewall_rules(nf, svc, node_ip)
    if policy_local and local_endpoints:
        _endpoint_jumps(nf, svc, svc.svl_chain, local_endpoints)
    for _, ip in svc.endpoints:
        sep = svc.sep_chain(ip)
        nf.append("nat", sep, f'-s {ip}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ')
        nf.append("nat", sep, f'{match} "{name}" -m {p} -j DNAT --to-destination {ip}:{svc.target_port}')


def _external_rules(nf, svc: PortInfo, cluster_cidr: str, policy_local: bool, has_external: bool) -> None:
    """KUBE-EXT-: where NodePort and load-balancer traffic goes before the endpoints."""
    name, ext = svc.port_name, svc.ext_chain
    if not policy_local:
        nf.append("nat", ext, f'-m comment --comment "masquerade traffic for {name} external destinations" '
                              f'-j KUBE-MARK-MASQ')
        nf.append("nat", ext, f"-j {svc.svc_chain}")
        return
    nf.append("nat", ext, f'-s {cluster_cidr} -m comment --comment "pod traffic for {name} external '
                          f'destinations" -j {svc.svc_chain}')
    nf.append("nat", ext, f'-m comment --comment "masquerade LOCAL traffic for {name} external destinations" '
                          f'-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
    nf.append("nat", ext, f'-m comment --comment "route LOCAL traffic for {name} external destinations" '
                          f'-m addrtype --src-type LOCAL -j {svc.svc_chain}')
    if has_external:
        nf.append("nat", ext, f"-j {svc.svl_chain}")


def _firewall_rules(nf, svc: PortInfo, node_ip: str) -> None:
    """KUBE-FW-: loadBalancerSourceRanges. A source in a range goes on to KUBE-EXT-; the rest
    falls off the chain undNATed and meets KUBE-PROXY-FIREWALL's DROP in filter."""
    name, comment = svc.port_name, f'-m comment --comment "{svc.port_name} loadbalancer IP"'
    allow_node = False
    for cidr in svc.load_balancer_source_ranges:
        nf.append("nat", svc.fw_chain, f"-s {cidr} {comment} -j {svc.ext_chain}")
        allow_node = allow_node or (bool(node_ip) and IPv4Address(node_ip) in IPv4Network(cidr))
    if allow_node:           # a node reaching a VIP it holds arrives from the VIP itself
        for ip in svc.load_balancer_ips:
            nf.append("nat", svc.fw_chain, f"-s {ip}/32 {comment} -j {svc.ext_chain}")
    nf.append("nat", svc.fw_chain, f'-m comment --comment "other traffic to {name} will be dropped by '
                                   f'KUBE-PROXY-FIREWALL"')


def _health_check_rule(nf, svc: PortInfo) -> None:
    """The healthCheckNodePort is accepted in filter KUBE-NODEPORTS, with or without local
    endpoints (kube-proxy's health server answers 200 or 503 there)."""
    if svc.health_check_node_port is not None:
        nf.append("filter", "KUBE-NODEPORTS", f'-p tcp -m comment --comment "{svc.port_name} health check node '
                                              f'port" -m tcp --dport {svc.health_check_node_port} -j ACCEPT')


def _endpoint_jumps(nf, svc: PortInfo, chain: str, ips: list[str]) -> None:
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
