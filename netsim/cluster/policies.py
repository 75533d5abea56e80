"""NetworkPolicy objects in the cluster, enforced by kube-network-policies beside Flannel.

Flannel enforces none (netsim.networkpolicy says why and which add-on netsim models). A cluster
with policies runs the add-on's agent on every node: its table (`PolicyEngine.ruleset(node)`,
family ip, with the agent's verdicts in the stand-in chain `nfqueue-100` where the real table
queues packets to the agent over NFQUEUE, which this machine's kernel cannot load:
CONFIG_NFT_QUEUE off, tests/test_lab_networkpolicy.py) is written into the node's nf_tables
state after kube-proxy's and flanneld's rules, on every sync, so a SYN a policy denies is
dropped on the node where the pod it would reach lives, by the rule of that chain that stands
for the agent's NF_DROP.

Objects as the API server keeps them: `policyTypes` defaults to Ingress, plus Egress when
egress rules are given (pkg/apis/networking/v1 defaults); every namespace carries the label
kubernetes.io/metadata.name=<name> (the NamespaceDefaultLabelName the API server sets since
v1.21), and `label_namespace` adds others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..names import check_name
from ..networkpolicy import (LabelSelector, Namespace, NetworkPolicy, PodInfo, PolicyEngine, PolicyPeer, PolicyPort,
                             PolicyRule)
from .spec import check_labels

if TYPE_CHECKING:
    from .spec import ClusterSpec

NAME_LABEL = "kubernetes.io/metadata.name"


def namespaces(spec: ClusterSpec) -> tuple[Namespace, ...]:
    """Every namespace the cluster has (default, kube-system, any a pod or Service names, any
    labelled), with its labels."""
    names = dict.fromkeys(["default", "kube-system", *(p.namespace for p in spec.pods.values()),
                           *(s.namespace for s in spec.services.values()), *spec.namespace_labels])
    return tuple(Namespace(n, tuple(sorted({NAME_LABEL: n, **spec.namespace_labels.get(n, {})}.items())))
                 for n in names)


def engine(spec: ClusterSpec) -> PolicyEngine:
    """The agent's view: namespaces, pods (name, namespace, address, labels, node), policies."""
    pods = tuple(PodInfo(p.name, p.namespace, p.ip, p.labels, p.node) for p in spec.pods.values())
    return PolicyEngine(namespaces(spec), pods, tuple(spec.network_policies.values()))


def install(spec: ClusterSpec, nf, node: str) -> None:
    """kube-network-policies' table on `node` (once the cluster has a policy)."""
    if spec.network_policies:
        nf.nftables.run(engine(spec).ruleset(node))


def build_policy(name: object, namespace: object, pod_selector: object, ingress: object, egress: object,
                 policy_types: object) -> NetworkPolicy:
    """A NetworkPolicy from its YAML shape: selectors as label dicts, rules as dicts with
    `from`/`to` (peers: pod_selector, namespace_selector, ip_block) and `ports` (protocol,
    port). `ingress`/`egress` None: the field is absent."""
    check_name("pod", name)
    check_name("namespace", namespace)
    assert isinstance(name, str) and isinstance(namespace, str)
    rules_in = _rules(name, ingress, "from")
    rules_out = _rules(name, egress, "to")
    if policy_types is None:
        types: tuple[str, ...] = ("Ingress", "Egress") if egress is not None else ("Ingress",)
    elif isinstance(policy_types, (list, tuple)) and all(isinstance(t, str) for t in policy_types):
        types = tuple(policy_types)
    else:
        raise ConfigError(f"networkpolicy {name}: policy_types {policy_types!r} must be a list such as ['Ingress']")
    return NetworkPolicy(name, namespace, _selector(name, pod_selector), types, rules_in, rules_out)


def _selector(owner: str, labels: object) -> LabelSelector:
    if labels is None:
        return LabelSelector()
    return LabelSelector(check_labels(owner, labels))


def _rules(owner: str, rules: object, peers_key: str) -> tuple[PolicyRule, ...] | None:
    if rules is None:
        return None
    if isinstance(rules, (str, bytes, dict)) or not isinstance(rules, (list, tuple)):
        raise ConfigError(f"networkpolicy {owner}: rules {rules!r} must be a list of dicts with '{peers_key}' and "
                          f"'ports'")
    out = []
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - {peers_key, "ports"}:
            raise ConfigError(f"networkpolicy {owner}: rule {rule!r} takes only the keys '{peers_key}' and 'ports'")
        peers = tuple(_peer(owner, p) for p in rule.get(peers_key, []))
        ports = tuple(_port(owner, p) for p in rule.get("ports", []))
        out.append(PolicyRule(peers, ports))
    return tuple(out)


def _peer(owner: str, peer: object) -> PolicyPeer:
    if not isinstance(peer, dict) or not peer or set(peer) - {"pod_selector", "namespace_selector", "ip_block"}:
        raise ConfigError(f"networkpolicy {owner}: peer {peer!r} takes pod_selector, namespace_selector or ip_block")
    return PolicyPeer(_selector(owner, peer["pod_selector"]) if "pod_selector" in peer else None,
                      _selector(owner, peer["namespace_selector"]) if "namespace_selector" in peer else None,
                      peer.get("ip_block", ""))


def _port(owner: str, port: object) -> PolicyPort:
    if not isinstance(port, dict) or set(port) - {"protocol", "port"}:
        raise ConfigError(f"networkpolicy {owner}: port {port!r} takes protocol and port")
    return PolicyPort(port.get("protocol", "TCP"), port.get("port"))


__all__ = ["build_policy", "engine", "install", "namespaces"]
