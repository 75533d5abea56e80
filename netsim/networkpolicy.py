"""NetworkPolicy beside Flannel: kube-network-policies' nftables table and its agent's verdicts.

Flannel enforces no NetworkPolicy: flanneld programs routes, the VXLAN device and its
masquerade and forward-accept rules, nothing that reads a NetworkPolicy object ("the flanneld
binary does not natively enforce Network Policies", flannel-io/flannel README at v0.28.9), so
on a cluster with Flannel alone a policy is stored by the API server and changes no packet.
Something else must enforce it. Flannel's own Helm chart offers one since v0.25.5: `netpol.enabled`
adds a kube-network-policies container (image registry.k8s.io/networking/kube-network-policies
v1.0.0) to the flannel DaemonSet (Documentation/netpol.md, chart/kube-flannel/values.yaml). netsim
models kubernetes-sigs/kube-network-policies v1.1.1 (pkg/dataplane/controller.go,
pkg/networkpolicy/{engine,networkpolicy}.go; `version="v1.0.0"` leaves out the `input` chain,
which v1.1.1 added); it matches packets by address, so it works on Flannel's cni0 bridge.

What it programs on every node (`syncNFTablesRules`), one table `inet kube-network-policies`:
- set `podips-v4` (and `podips-v6`): the addresses of the pods *on this node* that some
  NetworkPolicy selects (`ManagedIPs`);
- base chain `postrouting`, type filter, hook postrouting, priority srcnat - 5 (95: after the
  FORWARD hook, before SNAT; forwarded and bridged packets alike, since br_netfilter runs the
  inet hooks for bridged IPv4): accept the five ICMPv6 neighbour-discovery types; `meta skuid 0
  accept` (traffic from the node's root processes); accept a packet of an established or related
  connection that carries conntrack label 100 (set on connections the agent accepted); then
  `ip saddr @podips-v4 queue to 100` and `ip daddr @podips-v4 queue to 100` (and v6); last a rule
  setting the label that only a bypassed queue reaches (it enables the kernel's label extension);
- base chain `input`, hook input, priority srcnat + 1 (101): `iifname "lo" accept`, then
  `ip saddr @podips-v4 ct state new queue to 100` (pod to node).
The queue hands each matching packet to the agent over NFQUEUE (nfnetlink_queue); the agent
parses it and answers NF_ACCEPT, setting conntrack label 100, or NF_DROP (`evaluatePacket`):
egress policies of the source pod first, then ingress policies of the destination pod; a
direction no policy selects the pod for passes; a selected pod's traffic passes only if a rule
of one of its policies matches (peer by pod and namespace selector or ipBlock, port and
protocol), else it is dropped. Without `--fail-open` (the default) the queue has no bypass flag,
so with no agent listening the kernel drops the queued packets.

netsim's nftables model has no `queue`, `ct label`, `meta skuid`, `meta nfproto` and runs only
the ip family, and this machine's kernel (6.18, CONFIG_NFT_QUEUE not set) refuses `queue` too.
So `ruleset()` writes the table as netsim and this kernel can run it, saying so: family ip,
only the IPv4 rules, the skuid rule left out (a forwarded packet has no socket, so it never
matches one), the label rule as `ct state established,related accept` (the agent labels every
connection it accepts, and only those become established here), and each queue rule as
`goto nfqueue-100`, a chain holding *the agent's answers* for this node's pods: for each pod an
ingress policy selects, one accept rule per policy rule (peers, ports) and a drop. `ruleset(...,
real=True)` writes kube-network-policies' own text. `PolicyEngine.evaluate` is the agent, rule
for rule; the chain agrees with it on every packet (tests/test_networkpolicy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from .addresses import parse_address
from .errors import ConfigError
from .names import check_name

QUEUE = 100                       # --nfqueue-id default (Config.Defaults)
CT_LABEL = 100                    # --ct-label-accept default
TABLE = "kube-network-policies"   # Config.NFTableName default
PRIORITY_POSTROUTING = 95         # ChainPriorityNATSource - 5
PRIORITY_INPUT = 101              # ChainPriorityNATSource + 1
PROTOCOLS = ("TCP", "UDP", "SCTP")
VERSIONS = ("v1.0.0", "v1.1.1")   # v1.0.0: the flannel chart's pin, no input chain

# reason codes of the agent's decisions (to move into decision.py at integration)
NOT_SELECTED = "netpol-not-selected"          # no policy of this direction selects the pod
ALLOWED = "netpol-allowed-by-rule"            # a rule of a selecting policy matches
NO_RULE = "netpol-no-rule-allows"             # the pod is selected and no rule matches: drop


@dataclass(frozen=True)
class LabelSelector:
    """matchLabels (matchExpressions are not modelled); empty selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()

    def matches(self, labels: tuple[tuple[str, str], ...]) -> bool:
        have = dict(labels)
        return all(have.get(k) == v for k, v in self.match_labels)

    @staticmethod
    def of(**labels: str) -> "LabelSelector":
        return LabelSelector(tuple(sorted(labels.items())))


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        check_name("pod", self.name)


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    ip: str
    labels: tuple[tuple[str, str], ...] = ()
    node: str = ""

    def __post_init__(self) -> None:
        check_name("pod", self.name)
        parse_address(self.ip, f"pod {self.name}'s address")


@dataclass(frozen=True)
class PolicyPeer:
    """One `from`/`to` item: pod selector, namespace selector (None: absent), or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: str = ""                       # CIDR; `except` is not modelled

    def __post_init__(self) -> None:
        if not self.ip_block and self.pod_selector is None and self.namespace_selector is None:
            raise ConfigError("a NetworkPolicy peer needs a podSelector, a namespaceSelector or an ipBlock")
        if self.ip_block:
            try:
                IPv4Network(self.ip_block)
            except ValueError:
                raise ConfigError(f"ipBlock {self.ip_block!r} is not an IPv4 CIDR (e.g. 10.0.0.0/8)") from None


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | None = None                  # None: every port of the protocol

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"NetworkPolicy port protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"NetworkPolicy port {self.port} is out of range 1-65535")


@dataclass(frozen=True)
class PolicyRule:
    """An ingress rule (`from`) or egress rule (`to`): empty peers or ports match everything."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    """networking.k8s.io/v1 NetworkPolicy. `ingress`/`egress` None: the field is absent (with its
    policyType listed, the selected pods are isolated and nothing is allowed)."""

    name: str
    namespace: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[str, ...] = ("Ingress",)
    ingress: tuple[PolicyRule, ...] | None = None
    egress: tuple[PolicyRule, ...] | None = None

    def __post_init__(self) -> None:
        check_name("pod", self.name)
        for t in self.policy_types:
            if t not in ("Ingress", "Egress"):
                raise ConfigError(f"policyType {t!r} is neither Ingress nor Egress")


@dataclass(frozen=True)
class PolicyDecision:
    """What the agent decided for one queued packet, and why (a record; sentences are the views')."""

    verdict: str                 # "accept" (NF_ACCEPT, label set) or "drop" (NF_DROP)
    reason: str                  # NOT_SELECTED, ALLOWED or NO_RULE
    direction: str               # "egress" or "ingress": the direction that decided
    pod: str                     # namespace/name of the pod the deciding policies select
    policies: tuple[str, ...]    # namespace/name of every policy of that direction selecting the pod
    policy: str = ""             # the policy whose rule allowed
    rule: int = -1               # that rule's index in its ingress/egress list


class PolicyEngine:
    """The agent's policy evaluation (StandardNetworkPolicy and PolicyEngine.EvaluatePacket)."""

    def __init__(self, namespaces: tuple[Namespace, ...], pods: tuple[PodInfo, ...],
                 policies: tuple[NetworkPolicy, ...]) -> None:
        self.namespaces = {n.name: n for n in namespaces}
        self.pods = pods
        self.by_ip = {p.ip: p for p in pods}
        for p in pods:
            if p.namespace not in self.namespaces:
                raise ConfigError(f"pod {p.name} is in namespace {p.namespace!r}, which is not defined")
        self.policies = policies

    def selecting(self, pod: PodInfo | None, policy_type: str) -> list[NetworkPolicy]:
        if pod is None:
            return []
        return [p for p in self.policies if p.namespace == pod.namespace and p.pod_selector.matches(pod.labels)
                and policy_type in p.policy_types]

    def managed_ips(self, node: str) -> tuple[str, ...]:
        """ManagedIPs: the addresses of `node`'s pods that some policy's podSelector selects."""
        ips = {pod.ip for pol in self.policies for pod in self.pods
               if pod.node == node and pod.namespace == pol.namespace and pol.pod_selector.matches(pod.labels)}
        return tuple(sorted(ips, key=lambda ip: int(IPv4Address(ip))))

    def peer_matches(self, peer: PolicyPeer, pod: PodInfo | None, ip: str, policy_ns: str) -> bool:
        """evaluateSelectors / evaluateIPBlocks for the other end of the packet."""
        if peer.ip_block:
            return IPv4Address(ip) in IPv4Network(peer.ip_block)
        if pod is None:
            return False
        if peer.pod_selector is not None:
            if not peer.pod_selector.matches(pod.labels):
                return False
            if peer.namespace_selector is None:
                return pod.namespace == policy_ns
        if peer.namespace_selector is not None:
            return peer.namespace_selector.matches(self.namespaces[pod.namespace].labels)
        return True

    @staticmethod
    def port_matches(ports: tuple[PolicyPort, ...], proto: str, port: int) -> bool:
        return not ports or any(p.protocol == proto and (p.port is None or p.port == port) for p in ports)

    def direction(self, kind: str, pod: PodInfo | None, peer: PodInfo | None, peer_ip: str, proto: str,
                  port: int) -> PolicyDecision | None:
        """EvaluatePolicyDirection for one direction; None when no policy selects the pod."""
        policies = self.selecting(pod, "Ingress" if kind == "ingress" else "Egress")
        if pod is None or not policies:
            return None
        names = tuple(f"{p.namespace}/{p.name}" for p in policies)
        for pol in policies:
            rules = pol.ingress if kind == "ingress" else pol.egress
            for i, rule in enumerate(rules or ()):
                if not self.port_matches(rule.ports, proto, port):
                    continue
                if not rule.peers or any(self.peer_matches(x, peer, peer_ip, pol.namespace) for x in rule.peers):
                    return PolicyDecision("accept", ALLOWED, kind, f"{pod.namespace}/{pod.name}", names,
                                          f"{pol.namespace}/{pol.name}", i)
            if rules is not None and not rules:
                return PolicyDecision("accept", ALLOWED, kind, f"{pod.namespace}/{pod.name}", names,
                                      f"{pol.namespace}/{pol.name}")
        return PolicyDecision("drop", NO_RULE, kind, f"{pod.namespace}/{pod.name}", names)

    def evaluate(self, src: str, dst: str, proto: str, dport: int) -> PolicyDecision:
        """EvaluatePacket: egress of the source pod, then ingress of the destination pod."""
        if proto not in PROTOCOLS:
            raise ConfigError(f"protocol {proto!r} is not one of {', '.join(PROTOCOLS)}")
        src_pod, dst_pod = self.by_ip.get(src), self.by_ip.get(dst)
        egress = self.direction("egress", src_pod, dst_pod, dst, proto, dport)
        if egress is not None and egress.verdict == "drop":
            return egress
        ingress = self.direction("ingress", dst_pod, src_pod, src, proto, dport)
        if ingress is not None:
            return ingress
        if egress is not None:
            return egress
        return PolicyDecision("accept", NOT_SELECTED, "ingress", f"{dst_pod.namespace}/{dst_pod.name}"
                              if dst_pod else "", ())

    # ---------------------------------------------------------------- the nftables table

    def ruleset(self, node: str, real: bool = False, fail_open: bool = False, version: str = "v1.1.1") -> str:
        """The `nft -f` text of the node's table: kube-network-policies' own (`real`), or the
        form netsim and this kernel run, with the agent's answers in chain nfqueue-100."""
        if version not in VERSIONS:
            raise ConfigError(f"kube-network-policies version {version!r} is not modelled; "
                              f"versions: {', '.join(VERSIONS)}")
        ips = self.managed_ips(node)
        text = _real_text(ips, fail_open) if real else _model_text(ips, self.agent_rules(node))
        if version == "v1.0.0":
            text = "".join(line + "\n" for line in text.splitlines() if f"{TABLE} input" not in line)
        return text

    def agent_rules(self, node: str) -> list[str]:
        """The agent's answers as rules: ingress only (a policy with Egress is refused here)."""
        out: list[str] = []
        for pod in self.pods:
            if pod.node != node:
                continue
            if self.selecting(pod, "Egress"):
                raise ConfigError(f"pod {pod.namespace}/{pod.name}: egress policies are evaluated by "
                                  f"PolicyEngine.evaluate but not written into the model's chain")
            policies = self.selecting(pod, "Ingress")
            if not policies:
                continue
            for pol in policies:
                for i, rule in enumerate(pol.ingress or ()):
                    out.extend(self.rule_lines(pod, pol, i, rule))
                if pol.ingress is not None and not pol.ingress:
                    out.append(f'ip daddr {pod.ip} counter accept comment "{pol.namespace}/{pol.name} allows all"')
            out.append(f'ip daddr {pod.ip} counter drop comment "{pod.namespace}/{pod.name} isolated for ingress"')
        return out

    def rule_lines(self, pod: PodInfo, pol: NetworkPolicy, index: int, rule: PolicyRule) -> list[str]:
        comment = f'comment "{pol.namespace}/{pol.name} ingress rule {index}"'
        if rule.peers:
            sources = sorted({p.ip for p in self.pods for x in rule.peers
                              if not x.ip_block and self.peer_matches(x, p, p.ip, pol.namespace)},
                             key=lambda ip: int(IPv4Address(ip)))
            sources += [x.ip_block for x in rule.peers if x.ip_block]
            if not sources:
                return []
            src = f"ip saddr {sources[0]} " if len(sources) == 1 else f"ip saddr {{ {', '.join(sources)} }} "
        else:
            src = ""
        ports = [f"{p.protocol.lower()} dport {p.port} " if p.port is not None else f"meta l4proto {p.protocol.lower()} "
                 for p in rule.ports] or [""]
        return [f"ip daddr {pod.ip} {src}{port}counter accept {comment}" for port in ports]


def _model_text(ips: tuple[str, ...], agent: list[str]) -> str:
    t = f"ip {TABLE}"
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}",
             f"add set {t} podips-v4 {{ type ipv4_addr ; }}",
             f"add chain {t} postrouting {{ type filter hook postrouting priority {PRIORITY_POSTROUTING} ; }}",
             f"add chain {t} input {{ type filter hook input priority {PRIORITY_INPUT} ; }}",
             f"add chain {t} nfqueue-{QUEUE}",
             f"add rule {t} postrouting ct state established,related accept",
             f"add rule {t} postrouting ip saddr @podips-v4 goto nfqueue-{QUEUE}",
             f"add rule {t} postrouting ip daddr @podips-v4 goto nfqueue-{QUEUE}",
             f'add rule {t} input iifname "lo" accept',
             f"add rule {t} input ip saddr @podips-v4 ct state new goto nfqueue-{QUEUE}"]
    lines += [f"add rule {t} nfqueue-{QUEUE} {rule}" for rule in agent]
    lines.append(f"add rule {t} nfqueue-{QUEUE} accept")
    if ips:
        lines.append(f"add element {t} podips-v4 {{ {', '.join(ips)} }}")
    return "\n".join(lines) + "\n"


ND_TYPES = ("nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert", "nd-redirect")


def _real_text(ips: tuple[str, ...], fail_open: bool) -> str:
    t = f"inet {TABLE}"
    queue = f"queue flags bypass to {QUEUE}" if fail_open else f"queue to {QUEUE}"
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}",
             f"add set {t} podips-v4 {{ type ipv4_addr ; }}", f"add set {t} podips-v6 {{ type ipv6_addr ; }}",
             f"add chain {t} postrouting {{ type filter hook postrouting priority {PRIORITY_POSTROUTING} ; }}"]
    lines += [f"add rule {t} postrouting meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type {nd} accept"
              for nd in ND_TYPES]
    lines += [f"add rule {t} postrouting meta skuid 0 counter accept",
              f"add rule {t} postrouting ct label {CT_LABEL} ct state established,related counter accept",
              f"add rule {t} postrouting meta nfproto ipv4 ip saddr @podips-v4 {queue}",
              f"add rule {t} postrouting meta nfproto ipv4 ip daddr @podips-v4 {queue}",
              f"add rule {t} postrouting meta nfproto ipv6 ip6 saddr @podips-v6 {queue}",
              f"add rule {t} postrouting meta nfproto ipv6 ip6 daddr @podips-v6 {queue}",
              f"add rule {t} postrouting ct label set {CT_LABEL}",
              f"add chain {t} input {{ type filter hook input priority {PRIORITY_INPUT} ; }}",
              f'add rule {t} input iifname "lo" accept',
              f"add rule {t} input meta nfproto ipv4 ip saddr @podips-v4 ct state new {queue}",
              f"add rule {t} input meta nfproto ipv6 ip6 saddr @podips-v6 ct state new {queue}"]
    if ips:
        lines.append(f"add element {t} podips-v4 {{ {', '.join(ips)} }}")
    return "\n".join(lines) + "\n"


__all__ = ["ALLOWED", "LabelSelector", "NO_RULE", "NOT_SELECTED", "Namespace", "NetworkPolicy", "PodInfo",
           "PolicyDecision", "PolicyEngine", "PolicyPeer", "PolicyPort", "PolicyRule"]
