"""MetalLB in layer-2 mode: which node answers ARP for a LoadBalancer Service's address.

What a bare-metal cluster has instead of a cloud load balancer (docs/edge-of-the-cluster.md,
metallb/metallb v0.16.1):
- the controller gives the Service an address from an IPAddressPool and writes it into
  status.loadBalancer.ingress (here: services.py, pool spec.LB_POOL);
- a speaker runs on every node (a DaemonSet with hostNetwork). Every speaker holds the same
  election for each address (`ShouldAnnounce`, speaker/layer2_controller.go): no ready endpoint,
  no announcement; the candidates are the nodes with a live speaker (with
  externalTrafficPolicy Local only those with a ready endpoint of the Service), sorted by
  sha256(node name + "#" + address), and the first one announces. No lease, no vote: each
  speaker reaches the same answer from the same data;
- the winner's ARP responder (internal/layer2/arp.go, on a packet socket per interface) answers
  each ARP request for the address with a reply from the interface's MAC, addressed to the
  asker, laid out as the kernel's own replies but zero-padded to 60 bytes (mdlayher/arp writes
  its frames with mdlayher/ethernet, which pads to the Ethernet minimum). The address is on no interface: frames for it
  arrive at the node's MAC and kube-proxy's PREROUTING DNAT takes them.
Not modelled: the gratuitous ARP a new winner broadcasts on failover (`Gratuitous`), the
memberlist that notices a dead speaker, L2Advertisement node and interface selectors; the
speaker answers on the node's uplink eth0 only (pods reach the address through cni0, routed,
and never ask for it).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ..decision import Decision, MetallbReason, Subsystem, Verdict
from ..packet import ARP, ARP_REPLY, ETH_P_ARP, Ethernet

# mdlayher/ethernet's Frame.MarshalBinary zero-pads a payload to 46 bytes (minPayload), so the
# speaker's 28-byte ARP reply leaves in a 60-byte frame, 18 zero bytes after the message
PAD = 46 - 28

if TYPE_CHECKING:
    from ..device import Device
    from ..kubeproxy import Service
    from .spec import ClusterSpec


def election(nodes: list[str], address: str) -> list[str]:
    """The candidate nodes in the order every speaker sorts them for `address`: by
    sha256(node + "#" + address), lowest first. The first announces."""
    return sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{address}".encode()).digest())


def announcer(spec: ClusterSpec, svc: Service, address: str) -> str | None:
    """The node whose speaker answers for `address`, or None (no ready endpoint, no candidate)."""
    if not svc.endpoints:
        return None
    if svc.external_traffic_policy == "Local":
        candidates = sorted({spec.pods[pod].node for pod, _ in svc.endpoints})
    else:
        candidates = list(spec.nodes)
    order = election(candidates, address)
    return order[0] if order else None


class Speaker:
    """MetalLB's speaker on one node, as the ARP responder its namespace calls (netns
    arp_responders): it answers a request for an address whose election this node won."""

    def __init__(self, spec: ClusterSpec, node: str):
        self.spec = spec
        self.node = node

    def owner(self, address: str) -> Service | None:
        """The LoadBalancer Service this node announces `address` for, if any."""
        for svc in self.spec.services.values():
            if address in svc.load_balancer_ips and announcer(self.spec, svc, address) == self.node:
                return svc
        return None

    def announced(self, dev: str) -> tuple[str, ...]:
        """The addresses this speaker answers for on device `dev` (what the lab's stand-in
        responder is told, netsim.lab.arp_responder)."""
        if dev != "eth0":
            return ()
        return tuple(ip for svc in self.spec.services.values() for ip in svc.load_balancer_ips
                     if announcer(self.spec, svc, ip) == self.node)

    def __call__(self, dev: Device, arp: ARP) -> tuple[Decision, Ethernet] | None:
        if dev.name != "eth0":
            return None
        svc = self.owner(arp.pdst)
        if svc is None:
            return None
        reply = Ethernet(arp.hwsrc, dev.mac, ETH_P_ARP, ARP(ARP_REPLY, dev.mac, arp.pdst, arp.hwsrc, arp.psrc,
                                                            pad=PAD))
        decision = Decision(Subsystem.METALLB, "arpResponder", MetallbReason.ANNOUNCE, Verdict.REPLY,
                            vip=arp.pdst, namespace=svc.namespace, service=svc.name, node=self.node, dev=dev.name,
                            mac=dev.mac, sender=arp.psrc)
        return decision, reply


def install(spec: ClusterSpec, network, node: str) -> None:
    """Start the speaker on `node` (once), if the cluster has a LoadBalancer Service."""
    ns = network.namespaces.get(node)
    if ns is None or not any(s.load_balancer_ips for s in spec.services.values()):
        return
    if not any(isinstance(r, Speaker) for r in ns.arp_responders):
        ns.arp_responders.append(Speaker(spec, node))


__all__ = ["Speaker", "announcer", "election", "install"]
