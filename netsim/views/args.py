"""Argument checks the views share: a trace where a trace belongs, a hop that exists.

A view given a cluster where it wants a trace, or a hop the trace does not have, raises
UsageError naming the value and the valid range, instead of failing somewhere inside.
"""

from __future__ import annotations

from ..cluster import Cluster
from ..errors import UsageError
from ..trace import Hop, Trace


def check_trace(trace: object, cluster: object = None, where: str = "view") -> Trace:
    """`trace` if it is a Trace (and `cluster`, if given, a Cluster); swapped arguments are
    named as such."""
    if isinstance(trace, Cluster) and isinstance(cluster, Trace):
        raise UsageError(f"{where}: the arguments are swapped: pass the trace first, then the cluster "
                         f"({where}(trace, cluster))")
    if not isinstance(trace, Trace):
        raise UsageError(f"{where}: {trace!r:.60} is not a Trace (a Trace comes from cluster.send(...) or a "
                         f"netsim.scenarios function)")
    if cluster is not None and not isinstance(cluster, Cluster):
        raise UsageError(f"{where}: cluster {cluster!r:.60} is not a Cluster (netsim.Cluster or "
                         f"netsim.reference_cluster())")
    return trace


def check_cluster(cluster: object, trace: object = None, where: str = "diagram") -> Cluster:
    """`cluster` if it is a Cluster (and `trace`, if given, a Trace)."""
    if isinstance(cluster, Trace) and isinstance(trace, Cluster):
        raise UsageError(f"{where}: the arguments are swapped: pass the cluster first, then the trace "
                         f"({where}(cluster, trace))")
    if not isinstance(cluster, Cluster):
        raise UsageError(f"{where}: {cluster!r:.60} is not a Cluster (netsim.Cluster or netsim.reference_cluster())")
    if trace is not None and not isinstance(trace, Trace):
        raise UsageError(f"{where}: trace {trace!r:.60} is not a Trace")
    return cluster


def check_hop(trace: Trace, hop: object, where: str = "view") -> int:
    """The index of `hop` (an index into the trace, or one of its Hops), if the trace has it."""
    if isinstance(hop, Hop):
        if not (0 <= hop.index < len(trace.hops) and trace.hops[hop.index] is hop):
            raise UsageError(f"{where}: hop {hop.index} ({hop.where} {hop.direction}) is not a hop of this trace")
        return hop.index
    if isinstance(hop, bool) or not isinstance(hop, int):
        raise UsageError(f"{where}: hop {hop!r} must be an integer index into the trace, not {type(hop).__name__}")
    if not 0 <= hop < len(trace.hops):
        valid = f"0..{len(trace.hops) - 1}" if trace.hops else "none: the trace has no hops"
        raise UsageError(f"{where}: hop {hop} is not in the trace: its hops are {valid}")
    return hop
