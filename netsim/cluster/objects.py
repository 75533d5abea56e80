"""The Kubernetes objects a Cluster holds beyond pods and Services, and the per-port bridge
settings: StatefulSets, readiness, NetworkPolicy objects and namespace labels, the DNS server's
data and EndpointSlices, MetalLB's announcer, `bridge link set` (methods of Cluster, kept here
so that class stays small)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError
from ..names import check_name
from . import metallb
from .spec import POD_PORTS, Pod

if TYPE_CHECKING:
    from ..kubeproxy import Service
    from ..netns import Namespace
    from .builder import Builder
    from .spec import ClusterSpec


class ClusterObjects:
    """Cluster's methods for the objects above (a mixin: Cluster holds `spec` and `_builder`)."""

    spec: ClusterSpec
    _builder: Builder
    add_pod: Callable[..., Pod]
    netns: Callable[[str], Namespace]
    services: dict[str, Service]

    def add_statefulset(self, name: str, service: str, replicas: int, nodes: list[str] | tuple[str, ...] = (),
                        *, namespace: str = "default", labels: dict[str, str] | None = None,
                        listen: tuple[tuple[str, int], ...] = POD_PORTS) -> list[Pod]:
        """A StatefulSet's pods as its controller makes them: `<name>-0` upward, each with
        spec.hostname its own name and spec.subdomain the governing Service `service` (which a
        headless Service of that name turns into `<pod>.<service>.<ns>.svc.cluster.local`),
        scheduled on `nodes` in turn (node1 when none are given)."""
        from .records import statefulset_pods
        check_name("pod", name)
        check_name("service", service)
        if isinstance(nodes, str) or not isinstance(nodes, (list, tuple)):
            raise ConfigError(f"statefulset {name}: nodes {nodes!r} must be a list of node names")
        names = statefulset_pods(name, replicas)
        return [self.add_pod(pod, node=nodes[i % len(nodes)] if nodes else "node1", listen=listen,
                             namespace=namespace, labels=labels, hostname=pod, subdomain=service)
                for i, pod in enumerate(names)]

    def dns_records(self):
        """What the cluster's DNS server answers from (netsim.programs.coredns.ClusterDns),
        built from the Services, their EndpointSlices and the pods (cluster/records.py)."""
        from .records import cluster_dns
        return cluster_dns(self.spec)

    def endpoint_slice(self, service: str):
        """The EndpointSlice of a Service: per selected pod its address, `ready` and (when
        ShouldSetHostname holds) hostname (netsim.programs.headless.SliceEndpoint records)."""
        from .records import endpoint_slice
        if not isinstance(service, str) or service not in self.services:
            raise ConfigError(f"no service {service!r}; services are {', '.join(self.services) or 'none'}")
        return endpoint_slice(self.spec, self.services[service])

    def add_network_policy(self, name: str, namespace: str = "default", pod_selector: dict[str, str] | None = None,
                           ingress: list | None = None, egress: list | None = None,
                           policy_types: list[str] | None = None):
        """A NetworkPolicy, in its YAML shape: `pod_selector` a label dict ({} or None: every pod
        of the namespace), `ingress` a list of {"from": [peer, ...], "ports": [{"protocol": "TCP",
        "port": 8080}]} (a peer: {"pod_selector": {...}, "namespace_selector": {...}} or
        {"ip_block": "CIDR"}); None leaves the field out (a default-deny). Flannel enforces none;
        netsim runs kube-network-policies on every node (cluster/policies.py), whose table the
        node's nf_tables then holds. Egress rules are evaluated by the agent's model
        (networkpolicy.PolicyEngine) but not written into the table, so they are refused here."""
        from . import policies
        policy = policies.build_policy(name, namespace, pod_selector, ingress, egress, policy_types)
        if "Egress" in policy.policy_types:
            raise ConfigError(f"networkpolicy {name}: policyTypes Egress is not written into netsim's table (the "
                              f"agent's egress verdicts are modelled only in networkpolicy.PolicyEngine); use Ingress")
        key = (policy.namespace, policy.name)
        if key in self.spec.network_policies:
            raise ConfigError(f"networkpolicy {namespace}/{name} exists already")
        self.spec.network_policies[key] = policy
        self._builder.kube_proxy.sync_all()
        return policy

    def label_namespace(self, namespace: str, labels: dict[str, str]) -> None:
        """Labels of a namespace, for NetworkPolicy namespaceSelectors (every namespace also has
        kubernetes.io/metadata.name=<its name>)."""
        from .spec import check_labels
        check_name("namespace", namespace)
        self.spec.namespace_labels[namespace] = dict(check_labels(namespace, labels))
        if self.spec.network_policies:
            self._builder.kube_proxy.sync_all()

    def set_ready(self, pod: str, ready: bool) -> None:
        """The pod's Ready condition: a pod that is not ready is no endpoint of its Services
        (unless publishNotReadyAddresses), so kube-proxy rewrites every node's rules."""
        if not isinstance(pod, str) or pod not in self.spec.pods:
            raise ConfigError(f"no pod {pod!r}; pods are {', '.join(self.spec.pods) or 'none'}")
        if not isinstance(ready, bool):
            raise ConfigError(f"ready must be True or False, got {ready!r}")
        self._builder.kube_proxy.set_ready(pod, ready)

    def l2_announcer(self, service: str) -> str | None:
        """The node whose MetalLB speaker answers ARP for the LoadBalancer Service's address
        (layer-2 mode: the election every speaker holds, cluster/metallb.py), or None when no
        ready endpoint makes anyone announce."""
        if not isinstance(service, str) or service not in self.services:
            raise ConfigError(f"no service {service!r}; services are {', '.join(self.services) or 'none'}")
        svc = self.services[service]
        if not svc.load_balancer_ips:
            raise ConfigError(f"service {service} is of type {svc.type}: only a LoadBalancer Service has an address "
                              f"to announce")
        return metallb.announcer(self.spec, svc, svc.load_balancer_ips[0])

    def add_ingress_controller(self, rules: object, *, name: str = "ingress-nginx", node: str = "node1",
                               service_type: str = "LoadBalancer", external_traffic_policy: str = "Cluster",
                               node_port: int | None = None, load_balancer_ip: str | None = None,
                               service_upstream: bool = False):
        """An Ingress controller (ingress-nginx's role, cluster/ingress.py): pod `name` on `node`
        running the reverse proxy (netsim/programs/ingress.py) on port 80, Service
        `<name>-controller` of `service_type` in front of it, serving the Ingress `rules`
        ([{"host": "shop.example.com", "paths": [{"path": "/", "pathType": "Prefix", "service":
        "web", "port": 80}]}]). The proxy connects to the backend pods' own addresses, or with
        `service_upstream=True` to the backend Service's ClusterIP. Returns the controller
        record (`.log`: the requests the latest walk proxied)."""
        from .ingress import add_ingress_controller
        return add_ingress_controller(self, rules, name=name, node=node, service_type=service_type,
                                      external_traffic_policy=external_traffic_policy, node_port=node_port,
                                      load_balancer_ip=load_balancer_ip, service_upstream=service_upstream)

    def add_echoserver(self, pod: str, port: int = 8080) -> None:
        """Port `port` of `pod` runs a server in the role of Kubernetes' e2e echoserver: each
        request answered 200 with the peer address it accepted and the request's headers as the
        body (netsim.programs.ingress.EchoHeaders), the connection kept open."""
        from ..params import check_port
        from ..programs.ingress import EchoHeaders
        if not isinstance(pod, str) or pod not in self.spec.pods:
            raise ConfigError(f"no pod {pod!r}; pods are {', '.join(self.spec.pods) or 'none'}")
        check_port(port, "echoserver port")
        self.netns(pod).listen("tcp", port, lambda: EchoHeaders(port))

    def bridge_link_set(self, host: str, dev: str, *, hairpin: bool | None = None, learning: bool | None = None,
                        flood: bool | None = None) -> None:
        """`bridge link set dev DEV hairpin on|off [learning on|off] [flood on|off]` on `host`:
        the settings of one bridge port (a pod's host veth on cni0, a port of the underlay
        switch). The CNI bridge plugin turns hairpin on for every pod's port (flannel's
        hairpinMode: true); turned off, a frame can no longer leave by the port it came in on."""
        ns = self.netns(host)
        port = _bridge_port(ns, dev)
        for name, value in (("hairpin", hairpin), ("learning", learning), ("flood", flood)):
            if value is not None and not isinstance(value, bool):
                raise ConfigError(f"bridge link set dev {dev}: {name} must be True (on) or False (off), "
                                  f"got {value!r}")
        if hairpin is None and learning is None and flood is None:
            raise ConfigError(f"bridge link set dev {dev}: give hairpin=, learning= or flood=")
        if hairpin is not None:
            port.hairpin = hairpin
        if learning is not None:
            port.learning = learning
        if flood is not None:
            port.flood = flood


def _bridge_port(ns, dev: object):
    """The BridgePort record of device `dev` in namespace `ns`."""
    from ..bridge import Bridge
    device = ns.devices.get(dev) if isinstance(dev, str) else None
    if device is None or device.master is None or not isinstance(device.master, Bridge):
        ports = [d.name for d in ns.devices.values() if d.master is not None]
        raise ConfigError(f"bridge link set dev {dev!r}: not a bridge port in {ns.name}; its ports are "
                          f"{', '.join(ports) or 'none'}")
    return device.master.ports[device.name]
