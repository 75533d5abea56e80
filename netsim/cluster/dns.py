"""Names in the cluster: what a DNS server in CoreDNS's role serves, what kubelet writes in a
pod's /etc/resolv.conf, and how the tools turn the name a reader types into an address.

- The records are those of cluster/records.py (`Cluster.dns_records()`), built from the
  cluster's description when a walk first reaches the server: every Service
  (`<svc>.<ns>.svc.cluster.local`: its ClusterIP, or for a headless one its ready endpoints,
  `<pod>.<svc>.<ns>.svc.cluster.local` for a StatefulSet's pods), every pod
  (`<a-b-c-d>.<ns>.pod.cluster.local`), the namespaces; kubeadm's Corefile (ttl 30, pods
  insecure). Names outside cluster.local go to the `forward` plugin, whose upstream netsim does
  not have (no internet): `programs.coredns.Upstream()` stands for a resolver that knows no
  name, so they are answered NXDOMAIN with RA set. (A CoreDNS whose upstream cannot be reached
  at all answers SERVFAIL instead, once forward gives up: `Upstream(reachable=False)`; glibc
  then reports EAI_AGAIN rather than EAI_NONAME.)
- A pod's resolv.conf is kubelet's for a ClusterFirst pod (programs/resolver.py,
  `kubelet_resolv_conf`): `nameserver` the cluster DNS address, `search <ns>.svc.cluster.local
  svc.cluster.local cluster.local` for the pod's namespace, `options ndots:5`. The cluster DNS
  address is kubelet's `--cluster-dns`, kubeadm's default 10.96.0.10, whether or not a server
  answers there.
- `Cluster.set_dns(pod, nameserver)` runs the DNS server program on a pod's UDP and TCP port 53.
  The reference cluster does it for its coredns pod behind the kube-dns ClusterIP, so a name a
  tool is given goes through the pod's resolver, its queries walked like any traffic (DNAT to
  coredns and back). A cluster with no server attached (`Cluster(...)` populated by hand) has
  netsim look the name up in the same records itself, without DNS traffic, and the
  `Resolution` record says so ("records").
- The hosts netsim names (pods, nodes, the external host, the gateway) are not DNS names in
  Kubernetes; netsim resolves them itself, as an /etc/hosts entry would.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ..errors import ConfigError, UnknownHostError
from ..programs.coredns import CoreDnsServer
from ..programs.dns import NOERROR, TYPE_A, A
from ..programs.resolver import ResolvConf, kubelet_resolv_conf, search_names
from .records import cluster_dns
from .spec import ClusterSpec, External, Node, Pod, listing

if TYPE_CHECKING:  # pragma: no cover
    from ..netns import Namespace
    from ..stack import Network
    from .endpoints import Endpoint


class Cluster(Protocol):
    """What this module and tools.py use of a `netsim.Cluster` (named here, not imported: the
    package imports these modules)."""

    dns: DnsServer | None

    @property
    def spec(self) -> ClusterSpec: ...

    @property
    def pods(self) -> Mapping[str, Pod]: ...

    @property
    def nodes(self) -> Mapping[str, Node]: ...

    @property
    def externals(self) -> Mapping[str, External]: ...

    @property
    def services(self) -> Mapping[str, Any]: ...

    @property
    def gateway_ip(self) -> str: ...

    @property
    def network(self) -> Network: ...

    def netns(self, name: str) -> Namespace: ...

    def resolve(self, name: str, *, source: bool = False, from_ns: str | None = None) -> Endpoint: ...

CLUSTER_DOMAIN = "cluster.local"
KUBE_DNS_IP = "10.96.0.10"          # kubeadm's clusterDNS: the tenth address of the service CIDR


@dataclass(frozen=True)
class DnsServer:
    """A DNS server attached to the cluster: the pod it runs in, the address resolv.conf names."""

    pod: str
    nameserver: str


@dataclass(frozen=True)
class Resolution:
    """How a tool's destination became an address. `how`: "address" (it was one), "host" (a
    host netsim names, resolved by netsim as /etc/hosts would), "records" (looked up by netsim
    in the cluster's DNS records: no DNS server is attached, so no DNS traffic), "dns" (the
    resolver's queries were walked: the lookup's trace comes first in the tool's traces),
    "failed" (the resolver found no address)."""

    name: str
    address: str
    how: str
    fqdn: str = ""


def dns_server_factory(cluster: Cluster):
    """What a pod's port 53 runs: a CoreDNS-role server over the cluster's records
    (records.cluster_dns) as they are when a walk starts it."""
    spec = cluster.spec
    return lambda: CoreDnsServer(cluster_dns(spec))


def attach_dns(cluster: Cluster, pod: str, nameserver: str | None = None) -> DnsServer:
    """Run the DNS server in `pod` (UDP and TCP 53) and name `nameserver` (default: the pod's
    own address) in every pod's resolv.conf. In a lazy cluster the server starts with the pod's
    namespace."""
    if not isinstance(pod, str) or pod not in cluster.pods:
        raise ConfigError(f"the DNS server runs in a pod; {pod!r} is not one (pods: {listing(list(cluster.pods))})")
    address = cluster.pods[pod].ip
    if nameserver is not None:
        try:
            address = str(IPv4Address(nameserver))
        except ValueError:
            raise ConfigError(f"nameserver {nameserver!r} is not an IPv4 address") from None
    factory = dns_server_factory(cluster)
    servers = {("udp", 53): factory, ("tcp", 53): factory}
    cluster.spec.servers.setdefault(pod, {}).update(servers)
    if pod in cluster.network.namespaces:
        ns = cluster.netns(pod)
        for (proto, port), make in servers.items():
            ns.listen(proto, port, make)
    cluster.dns = DnsServer(pod, address)
    return cluster.dns


def resolv_conf(cluster: Cluster, host: str) -> ResolvConf | None:
    """A pod's /etc/resolv.conf as kubelet writes it; None for hosts outside the pod network
    (nodes, the external host and the gateway keep their own, which knows no cluster names)."""
    pod = cluster.pods.get(host.split("/", 1)[0])
    if pod is None:
        return None
    server = cluster.dns.nameserver if cluster.dns is not None else KUBE_DNS_IP
    return kubelet_resolv_conf(pod.namespace, cluster_dns=(server,), cluster_domain=CLUSTER_DOMAIN)


def host_address(cluster: Cluster, name: str) -> str | None:
    """A host netsim names (pods, nodes, the external host, the gateway), or None."""
    spec = cluster.spec
    for table in (spec.pods, spec.nodes, spec.externals):
        if name in table:
            return table[name].ip
    if name == "gateway":
        return cluster.gateway_ip
    return None


def resolve_quietly(cluster: Cluster, src: str, name: str) -> Resolution | None:
    """A destination resolved without any traffic: an address, a host netsim names, or (when
    no DNS server is attached) a name the cluster's records hold, tried in the order the pod's
    resolver would ask (search list, ndots:5). None when the name needs the resolver's walk.
    An unknown name is a ConfigError naming it."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"destination {name!r} must be a host name or an IPv4 address")
    try:
        return Resolution(name, str(IPv4Address(name)), "address")
    except ValueError:
        pass
    address = host_address(cluster, name)
    if address is not None:
        return Resolution(name, address, "host")
    conf = resolv_conf(cluster, src)
    if conf is not None and cluster.dns is not None:
        return None
    known = listing([*cluster.pods, *cluster.nodes, *cluster.externals, *cluster.services])
    if conf is None:
        raise UnknownHostError(f"unknown host {name!r}: {src} is not a pod, so it has no cluster DNS in its resolv.conf; "
                          f"use an address or a host netsim names ({known})")
    records = cluster_dns(cluster.spec)
    for candidate in search_names(name, conf):
        if not records.in_zone(candidate):
            continue                      # outside cluster.local: the upstream, which netsim has not
        rcode, answers = records.lookup(candidate, TYPE_A)
        for rr in answers:
            if rcode == NOERROR and rr.type == TYPE_A and isinstance(rr.data, A):
                return Resolution(name, rr.data.address, "records", candidate.rstrip("."))    # ai_canonname
    raise UnknownHostError(f"unknown host {name!r}: no Service or pod of the cluster has that name (tried "
                      f"{', '.join(search_names(name, conf))}); known names: {known}")
