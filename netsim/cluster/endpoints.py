"""Endpoints: what a name in `send()` stands for.

Endpoints are named: a pod (`pod-a`), a container (`pod-a/sidecar`), a node (`node1`), an
external host (`ext`), a service (`web`), or an address, optionally with a port
(`192.168.50.11:30080`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from ..errors import ConfigError
from ..params import check_port
from .builder import Builder
from .spec import ClusterSpec, listing


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint: the namespace to send from, the address to send to, a port."""

    netns: str | None
    ip: str
    port: int | None = None
    container: str | None = None


def resolve(spec: ClusterSpec, builder: Builder, name: str, *, source: bool = False,
            from_ns: str | None = None) -> Endpoint:
    """Turn an endpoint name into a namespace and address (see Cluster.resolve)."""
    if not isinstance(name, str):
        raise ConfigError(f"endpoint {name!r} must be a name or an address string such as 'pod-a' or "
                          f"'10.244.1.2:8080', not {type(name).__name__}")
    text = name.strip()
    if "/" in text and text.split("/")[0] in spec.pods:
        pod_name, container = text.split("/", 1)
        pod = spec.pods[pod_name]
        if container not in pod.containers:
            raise ConfigError(f"pod {pod_name} has no container {container!r}; it has {', '.join(pod.containers)}")
        ip = "127.0.0.1" if from_ns == pod_name else pod.ip
        return Endpoint(pod_name, ip, container=container)
    if text in spec.pods:
        return Endpoint(text, spec.pods[text].ip)
    if text in spec.nodes:
        return Endpoint(text, spec.nodes[text].ip)
    if text in spec.externals:
        return Endpoint(text, spec.externals[text].ip)
    if text == "gateway":
        return Endpoint("gateway", spec.gateway_ip)
    if text in spec.services:
        svc = spec.services[text]
        if svc.cluster_ip is None:
            raise ConfigError(f"service {text} is headless (clusterIP: None): it has no address of its own; "
                              f"send to one of its pods, whose addresses DNS gives")
        return Endpoint(None, svc.cluster_ip, svc.port)
    port = None
    if text.count(":") == 1:
        text, port_text = text.split(":")
        if not (port_text.isascii() and port_text.isdigit()):
            raise ConfigError(f"endpoint {name!r}: port {port_text!r} is not a number")
        port = check_port(int(port_text), f"endpoint {name!r}: port")
    try:
        addr = str(IPv4Address(text))
    except ValueError:
        valid = listing([*spec.pods, *spec.nodes, *spec.externals, *spec.services])
        raise ConfigError(f"unknown endpoint {name!r}: use a pod, pod/container, node, external host, "
                          f"service or IPv4 address[:port] (known names: {valid})") from None
    owner = spec.owner_at(addr)
    if owner is not None:
        builder.materialize(owner)          # a lazy cluster builds the node that would hold it
    owner = next((n for n, ns in builder.network.namespaces.items() if ns.is_local_address(addr)
                  and not addr.startswith("127.")), None)
    return Endpoint(owner, addr, port)
