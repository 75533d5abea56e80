"""Who owns an address in a cluster beyond its devices (netsim.owners names those): each
service's ClusterIP and load-balancer IP, which no device holds."""

from __future__ import annotations

from .spec import ClusterSpec


def cluster_owners(spec: ClusterSpec) -> dict[str, str]:
    """What a cluster knows beyond its devices: each service's ClusterIP."""
    owners = {svc.cluster_ip: f"service {svc.name}'s ClusterIP" for svc in spec.services.values()
              if svc.cluster_ip is not None}
    owners.update({ip: f"service {svc.name}'s load-balancer IP" for svc in spec.services.values()
                   for ip in svc.load_balancer_ips})
    return owners
