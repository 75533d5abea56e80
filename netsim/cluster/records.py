"""What the cluster's DNS server knows, built from the cluster itself: every Service with its
ClusterIP (None: headless) and the EndpointSlice of its pods, every pod's address, the
namespaces; in the form CoreDNS's kubernetes plugin serves it (netsim.programs.coredns
ClusterDns, netsim.programs.headless for the EndpointSlice controller's and the plugin's
rules). A StatefulSet's pods get their identity as its controller gives it
(`statefulset_pods`): names `<set>-<ordinal>`, spec.hostname the pod's name, spec.subdomain the
governing Service, so a headless Service of that name answers `<pod>.<svc>.<ns>.svc.<zone>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..programs import coredns, headless

if TYPE_CHECKING:
    from ..kubeproxy import Service
    from .spec import ClusterSpec


def endpoint_slice(spec: ClusterSpec, svc: Service) -> tuple[headless.SliceEndpoint, ...]:
    """The EndpointSlice of `svc`: one endpoint per selected pod, `ready` from the pod's Ready
    condition (or true with publishNotReadyAddresses), `hostname` when ShouldSetHostname holds."""
    selection = spec.selectors[svc.name]
    pods = tuple(headless.Pod(p.name, p.namespace, p.ip, p.ready, p.hostname, p.subdomain, p.node)
                 for p in (spec.pods[name] for name in selection.pods))
    return headless.endpoint_slice(svc.name, svc.namespace, pods, selection.publish_not_ready)


# kubeadm's Corefile (cmd/kubeadm/app/phases/addons/dns/manifests.go): `kubernetes cluster.local
# in-addr.arpa ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa; ttl 30 }`
KUBEADM_COREFILE = coredns.CorefileConfig(zone="cluster.local.", ttl=30, pods="insecure")


def cluster_dns(spec: ClusterSpec, config: coredns.CorefileConfig | None = None,
                upstream: coredns.Upstream | None = None) -> coredns.ClusterDns:
    """The data the DNS server answers from (the `kubernetes` plugin's informers), with
    kubeadm's Corefile unless `config` says otherwise."""
    services = tuple(headless.coredns_service(svc.name, svc.namespace, endpoint_slice(spec, svc), svc.cluster_ip)
                     for svc in spec.services.values())
    pods = tuple(coredns.PodRecord(p.ip, p.namespace) for p in spec.pods.values())
    namespaces = tuple(dict.fromkeys(["default", "kube-system", *(p.namespace for p in spec.pods.values()),
                                      *(s.namespace for s in spec.services.values())]))
    return coredns.ClusterDns(services, pods, namespaces, config or KUBEADM_COREFILE,
                              upstream or coredns.Upstream())


def statefulset_pods(name: str, replicas: object) -> list[str]:
    """The pod names a StatefulSet's controller gives its replicas: `<name>-0` upward."""
    from ..errors import ConfigError
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ConfigError(f"statefulset {name}: replicas {replicas!r} must be a whole number, 0 or more")
    return [f"{name}-{i}" for i in range(replicas)]


__all__ = ["cluster_dns", "endpoint_slice", "statefulset_pods"]
