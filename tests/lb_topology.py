"""LoadBalancer Services on the reference cluster, for tests/test_loadbalancer.py and
tests/test_lab_loadbalancer.py: the cluster and the paths are netsim.lab.exchanges's (where
tools/chapter_traces.py lists them too)."""

from __future__ import annotations

from netsim.lab.exchanges import LB, LB_PATHS, lb_cluster

__all__ = ["LB", "LB_PATHS", "lb_cluster"]
