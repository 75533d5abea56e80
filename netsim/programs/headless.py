"""Headless Services and StatefulSet names: what the cluster hands the DNS server.

A headless Service (`clusterIP: None`) has no virtual address and so no DNAT: kube-proxy
writes no rule for it, and a client reaches a pod by the pod's own address, which DNS gives.
Three controllers and the DNS server's plugin decide those answers; each step is a pure
function here, with its source:

- The StatefulSet controller names its pods `<set>-<ordinal>` and gives each the identity
  `spec.hostname = <pod name>`, `spec.subdomain = <set's spec.serviceName>`
  (kubernetes/kubernetes pkg/controller/statefulset/stateful_set_utils.go, `updateIdentity`).
- The EndpointSlice controller writes one endpoint per pod the Service selects, with
  `conditions.ready` true when the pod is Ready (or for every pod when the Service sets
  `publishNotReadyAddresses`), and `hostname` only when `ShouldSetHostname` holds: the pod has
  a hostname, its subdomain is the Service's name and it is in the Service's namespace
  (pkg/controller/util/endpoint/controller_utils.go; staging k8s.io/endpointslice).
- CoreDNS's kubernetes plugin reads the slices (plugin/kubernetes/object/endpoint.go,
  `endpointSliceToEndpoints`): an endpoint whose `ready` is false is left out (nil counts as
  ready), the hostname and the pod's name (TargetRef, if shorter than 64) are kept. Then
  (plugin/kubernetes/kubernetes.go, `findServices`, `endpointHostname`) the Service's name
  answers one A record per address it kept, an endpoint's name is its hostname, else with the
  `endpoint_pod_names` option its pod's name, else its address with dashes; a headless Service
  with no ready endpoint answers NXDOMAIN (its error stays `errNoItems`). CoreDNS v1.14.7 read.

`coredns_service()` turns a Service and its pods into the `coredns.ServiceRecord` the server
program answers from; `endpoint_slice()` is the slice the integration must keep per Service.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..addresses import parse_address
from ..errors import ConfigError
from ..names import check_name
from .coredns import ServiceRecord

MAX_TARGET_NAME = 63          # CoreDNS keeps a TargetRef name only if shorter than 64 (a label)


@dataclass(frozen=True)
class Pod:
    """The fields of a pod the EndpointSlice controller and CoreDNS read."""

    name: str
    namespace: str
    ip: str
    ready: bool = True
    hostname: str = ""           # spec.hostname
    subdomain: str = ""          # spec.subdomain
    node: str = ""

    def __post_init__(self) -> None:
        check_name("pod", self.name)
        check_name("pod", self.namespace)
        parse_address(self.ip, f"pod {self.name}'s address")
        if self.hostname:
            check_name("pod", self.hostname)
        if self.subdomain:
            check_name("service", self.subdomain)


@dataclass(frozen=True)
class SliceEndpoint:
    """One endpoint of an EndpointSlice (discovery.k8s.io/v1), the fields DNS uses."""

    address: str
    ready: bool
    hostname: str | None          # None: the field is absent
    target: str                   # targetRef.name, the pod
    node: str = ""


def statefulset_pods(name: str, namespace: str, service_name: str, ips: tuple[str, ...],
                     ready: tuple[bool, ...] | None = None, nodes: tuple[str, ...] = ()) -> tuple[Pod, ...]:
    """The pods of StatefulSet `name` with `len(ips)` replicas: `<name>-<i>`, each with its
    hostname and the governing Service as subdomain."""
    check_name("pod", name)
    check_name("service", service_name)
    if ready is not None and len(ready) != len(ips):
        raise ConfigError(f"statefulset {name}: {len(ips)} addresses but {len(ready)} readiness values; "
                          f"give one per replica")
    pods = []
    for i, ip in enumerate(ips):
        pod_name = f"{name}-{i}"
        pods.append(Pod(pod_name, namespace, ip, True if ready is None else ready[i], hostname=pod_name,
                        subdomain=service_name, node=nodes[i] if i < len(nodes) else ""))
    return tuple(pods)


def should_set_hostname(pod: Pod, service: str, namespace: str) -> bool:
    """ShouldSetHostname: a hostname, the Service as subdomain, the same namespace."""
    return bool(pod.hostname) and pod.subdomain == service and pod.namespace == namespace


def endpoint_slice(service: str, namespace: str, pods: tuple[Pod, ...],
                   publish_not_ready: bool = False) -> tuple[SliceEndpoint, ...]:
    """The endpoints the EndpointSlice controller writes for the pods a Service selects (the
    caller passes only those), in the order given."""
    check_name("service", service)
    out = []
    for pod in pods:
        if pod.namespace != namespace:
            raise ConfigError(f"pod {pod.namespace}/{pod.name} is not in service {service}'s namespace "
                              f"{namespace}: a Service selects pods of its own namespace only")
        out.append(SliceEndpoint(pod.ip, publish_not_ready or pod.ready,
                                 pod.hostname if should_set_hostname(pod, service, namespace) else None,
                                 pod.name, pod.node))
    return tuple(out)


def coredns_service(service: str, namespace: str, endpoints: tuple[SliceEndpoint, ...],
                    cluster_ip: str | None = None, endpoint_pod_names: bool = False) -> ServiceRecord:
    """The Service as CoreDNS's plugin serves it: the ready endpoints only, each with the name
    `endpointHostname` gives it (the hostname; with `endpoint_pod_names` the pod's name; else
    the address with dashes, which ServiceRecord writes itself). `cluster_ip` None: headless."""
    kept = [e for e in endpoints if e.ready]
    names = []
    for e in kept:
        if e.hostname:
            names.append(e.hostname)
        elif endpoint_pod_names and e.target and len(e.target) <= MAX_TARGET_NAME:
            names.append(e.target)
        else:
            names.append("")
    return ServiceRecord(service, namespace, cluster_ip, tuple(e.address for e in kept), tuple(names))


__all__ = ["Pod", "SliceEndpoint", "coredns_service", "endpoint_slice", "should_set_hostname", "statefulset_pods"]
