"""Who owns an address in a cluster beyond its devices (netsim.owners names those): each
service's ClusterIP, which no device holds."""

from __future__ import annotations

from .spec import ClusterSpec


def cluster_owners(spec: ClusterSpec) -> dict[str, str]:
    """What a cluster knows beyond its devices: each service's ClusterIP."""
    return {svc.cluster_ip: f"service {svc.name}'s ClusterIP" for svc in spec.services.values()}
