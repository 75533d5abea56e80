"""An Ingress controller in the cluster: a pod running ingress-nginx's proxy behind a Service.

`add_ingress_controller` does what installing ingress-nginx and applying one Ingress do, as far
as the network sees it: a controller pod (kubernetes/ingress-nginx's Deployment, here one
replica) whose port 80 runs netsim/programs/ingress.py, and the Service in front of it
(`<name>-controller`, type LoadBalancer as the project's cloud and bare-metal manifests make it,
or NodePort). The proxy's configuration is built when a walk starts it, from the cluster as it
is then: for each Service an Ingress path names, its ClusterIP and its ready endpoints
(pod address : targetPort of the named port), as the controller reads them from the
EndpointSlices (internal/ingress/controller/controller.go, `serviceEndpoints`). So a request
from outside is two TCP connections: client -> the controller's Service (kube-proxy DNATs it to
the controller pod), then controller pod -> a backend pod's own address (no DNAT), or with
`service_upstream=True` (the annotation nginx.ingress.kubernetes.io/service-upstream) -> the
backend Service's ClusterIP, which kube-proxy on the controller's node DNATs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..names import check_name
from ..programs.ingress import IngressNginx, IngressPath, IngressRule, ProxiedRequest, ServiceBackend

if TYPE_CHECKING:  # pragma: no cover
    from ..kubeproxy import Service

SERVICE_TYPES = ("LoadBalancer", "NodePort")


@dataclass
class IngressController:
    """The controller as the cluster holds it: its pod, its Service, the Ingress rules, and the
    proxy programs the walks started (`programs`; the last is the latest walk's)."""

    pod: str
    service: str
    rules: tuple[IngressRule, ...]
    port: int
    service_upstream: bool
    programs: list[IngressNginx] = field(default_factory=list, repr=False)

    @property
    def log(self) -> list[ProxiedRequest]:
        """The requests the latest walk's proxy handled (both sides' messages, the endpoint)."""
        return self.programs[-1].log if self.programs else []


def ingress_rules(rules: Any) -> tuple[IngressRule, ...]:
    """Rules as IngressRule records, or in the Ingress object's shape: [{"host": "shop.example.com",
    "paths": [{"path": "/", "pathType": "Prefix", "service": "shop", "port": 80}]}]."""
    if isinstance(rules, (str, bytes)) or not isinstance(rules, (list, tuple)) or not rules:
        raise ConfigError(f"ingress rules {rules!r} must be a non-empty list of rules "
                          f"({{'host': ..., 'paths': [{{'path': '/', 'service': NAME, 'port': PORT}}]}})")
    out = []
    for rule in rules:
        if isinstance(rule, IngressRule):
            out.append(rule)
            continue
        if not isinstance(rule, dict) or set(rule) - {"host", "paths"} or not isinstance(rule.get("paths"), list):
            raise ConfigError(f"ingress rule {rule!r} must be a dict with 'host' and a list 'paths'")
        host = rule.get("host", "")
        if not isinstance(host, str) or (host and not all(check_label(part) for part in host.lower().split("."))):
            raise ConfigError(f"ingress host {host!r} must be a DNS name (e.g. shop.example.com) or ''")
        paths = []
        for p in rule["paths"]:
            if not isinstance(p, dict) or set(p) - {"path", "pathType", "service", "port"}:
                raise ConfigError(f"ingress path {p!r} must be a dict with path, pathType, service and port")
            port = p.get("port")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(f"ingress path {p!r}: port must be a Service port 1-65535")
            path = p.get("path", "/")
            if not isinstance(path, str):
                raise ConfigError(f"ingress path {path!r} must be a string starting with '/'")
            paths.append(IngressPath(path, str(p.get("service", "")), port, str(p.get("pathType", "Prefix"))))
        out.append(IngressRule(host, tuple(paths)))
    return tuple(out)


def check_label(part: str) -> bool:
    return 0 < len(part) <= 63 and part.isascii() and all(c.isalnum() or c == "-" for c in part) \
        and part[0] != "-" and part[-1] != "-"


def backend(svc: Service, port: int) -> ServiceBackend:
    """What the controller learns of Service `svc` for Service port `port`."""
    found = next((p for p in svc.ports if p.port == port and p.protocol == "tcp"), None)
    if found is None:
        raise ConfigError(f"ingress backend {svc.name}:{port}: the Service has no TCP port {port} "
                          f"(ports: {', '.join(str(p.port) for p in svc.ports)})")
    if svc.cluster_ip is None:
        raise ConfigError(f"ingress backend {svc.name}: a headless Service has no ClusterIP; netsim's controller "
                          f"needs one")
    endpoints = tuple(f"{ip}:{found.target_port}" for _pod, ip in svc.endpoints)
    return ServiceBackend(svc.namespace, svc.name, port, svc.cluster_ip, endpoints)


def add_ingress_controller(cluster: Any, rules: Any, *, name: str = "ingress-nginx", node: str = "node1",
                           service_type: str = "LoadBalancer", external_traffic_policy: str = "Cluster",
                           node_port: int | None = None, load_balancer_ip: str | None = None,
                           service_upstream: bool = False) -> IngressController:
    """The controller pod `name` on `node`, its proxy on port 80, its Service `<name>-controller`
    (port 80 -> 80) of `service_type`, and the Ingress `rules` it serves."""
    check_name("pod", name)
    parsed = ingress_rules(rules)
    if service_type not in SERVICE_TYPES:
        raise ConfigError(f"ingress controller service type {service_type!r}: use one of {', '.join(SERVICE_TYPES)}")
    if not isinstance(service_upstream, bool):
        raise ConfigError(f"service_upstream must be True or False, got {service_upstream!r}")
    wanted = {(p.service, p.port) for r in parsed for p in r.paths}
    ports: dict[str, int] = {}
    for svc_name, svc_port in sorted(wanted):
        if ports.setdefault(svc_name, svc_port) != svc_port:
            raise ConfigError(f"ingress paths name service {svc_name} with ports {ports[svc_name]} and {svc_port}: "
                              f"netsim's controller keeps one port per Service")
    for svc_name, port in sorted(wanted):
        if svc_name not in cluster.services:
            raise ConfigError(f"ingress path names service {svc_name!r}, which does not exist; services are "
                              f"{', '.join(cluster.services) or 'none'}")
        backend(cluster.services[svc_name], port)                # the port exists
    port = 80
    controller = IngressController(name, f"{name}-controller", parsed, port, service_upstream)

    def proxy() -> IngressNginx:
        services = cluster.services
        backends = tuple(backend(services[s], p) for s, p in sorted(wanted))
        program = IngressNginx(parsed, backends, port=port, service_upstream=service_upstream)
        controller.programs.append(program)
        return program

    cluster.add_pod(name, node=node, listen=(("tcp", port),), labels={"app.kubernetes.io/name": name})
    cluster.netns(name).listen("tcp", port, proxy)
    cluster.add_service(controller.service, port=port, target_port=port, pods=[name], node_port=node_port,
                        type=service_type, external_traffic_policy=external_traffic_policy,
                        load_balancer_ip=load_balancer_ip)
    return controller


# ---------------------------------------------------------------------------- what a walk shows

Tuple4 = tuple[str, int, str, int]


@dataclass(frozen=True)
class TcpConnection:
    """One TCP connection of a walk, from its SYN: who called connect() and who accepted, the
    four-tuple as the SYN left the client and as it reached the listener, and each address
    translation on the way (where, what: DNAT, SNAT or MASQUERADE, the old and new address:port)."""

    client: str
    server: str
    sent: Tuple4
    accepted: Tuple4
    nat: tuple[tuple[str, str, str, str], ...] = ()


def tcp_connections(trace: Any) -> tuple[TcpConnection, ...]:
    """The connections whose SYN reached a listener in `trace`, in the order they were opened."""
    firsts: dict[int, Any] = {}
    nats: dict[int, list[tuple[str, str, str, str]]] = {}
    out = []
    for hop in trace:
        ip = hop.ip
        seg = getattr(ip, "payload", None) if ip is not None and not hop.encapsulated else None
        if seg is None or getattr(seg, "flags", "") != "S":
            continue
        firsts.setdefault(hop.packet_id, hop)
        for d in hop.decisions:
            if d.subsystem.value == "nat":
                facts = dict(d.facts)
                nats.setdefault(hop.packet_id, []).append(
                    (hop.where, d.verdict.name, str(facts.get("old", "")), str(facts.get("new", ""))))
        if hop.verdict == "delivered" and any(d.function == "tcp_conn_request" for d in hop.decisions):
            first = firsts[hop.packet_id]
            fip = first.ip
            out.append(TcpConnection(first.netns, hop.netns, (fip.src, fip.payload.sport, fip.dst, fip.payload.dport),
                                     (ip.src, seg.sport, ip.dst, seg.dport), tuple(nats.get(hop.packet_id, ()))))
    return tuple(out)
