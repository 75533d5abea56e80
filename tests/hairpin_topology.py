"""A pod calling its own Service (hairpin traffic), for tests/test_hairpin.py and
tests/test_lab_hairpin.py: the cluster and the cases are netsim.lab.exchanges's (where
tools/chapter_traces.py lists them too)."""

from __future__ import annotations

from netsim.lab.exchanges import ECHO_IP, HAIRPIN_CASES, HAIRPIN_PORTS as PORTS, POD_C_PORT, hairpin_cluster, hairpin_key

__all__ = ["ECHO_IP", "HAIRPIN_CASES", "PORTS", "POD_C_PORT", "hairpin_cluster", "hairpin_key"]
