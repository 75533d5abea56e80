"""kube-proxy in iptables mode: the chains it writes for ClusterIP and NodePort services.

Facts (flannel-kubernetes-facts.md section I; kubernetes pkg/proxy/iptables/proxier.go,
v1.28): nat PREROUTING and OUTPUT jump to KUBE-SERVICES, POSTROUTING to KUBE-POSTROUTING
(inserted first, so it runs before Flannel's chain); KUBE-SERVICES matches each ClusterIP and
ends with `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`; NodePorts jump to KUBE-EXT-*,
which marks for masquerade (policy Cluster) or keeps the client address and uses only local
endpoints (policy Local, KUBE-SVL-*); KUBE-SVC-* picks an endpoint chain KUBE-SEP-* with
`-m statistic`; KUBE-SEP-* DNATs. KUBE-MARK-MASQ ORs in 0x4000; KUBE-POSTROUTING clears it
and MASQUERADEs. Chain names carry kube-proxy's hash: base32(sha256(name + protocol))[:16].
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

MASQ_MARK = "0x4000"
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


def base_rules(nf) -> None:
    """The chains and jumps kube-proxy installs once per node."""
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
    for chain in ("KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"):
        nf.new_chain("filter", chain)
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
    nf.append("filter", "KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    nf.append("filter", "KUBE-FORWARD", f'-m comment --comment "kubernetes forwarding rules" '
                                        f'-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT')
    nf.append("filter", "KUBE-FORWARD", '-m comment --comment "kubernetes forwarding conntrack rule" '
                                        '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')


def service_rules(nf, svc: Service, cluster_cidr: str, local_endpoints: list[str]) -> None:
    """One service's rules on one node; `local_endpoints` are the endpoint IPs on this node."""
    p = svc.protocol
    name = svc.port_name
    nf.new_chain("nat", svc.svc_chain)
    for _, ip in svc.endpoints:
        nf.new_chain("nat", svc.sep_chain(ip))
    if svc.node_port is not None:
        nf.new_chain("nat", svc.ext_chain)
        if svc.external_traffic_policy == "Local":
            nf.new_chain("nat", svc.svl_chain)
    if not svc.endpoints:
        nf.append("filter", "KUBE-SERVICES", f'-d {svc.cluster_ip}/32 -p {p} -m comment --comment "{name} has no '
                                             f'endpoints" -m {p} --dport {svc.port} -j REJECT '
                                             f'--reject-with icmp-port-unreachable')
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
