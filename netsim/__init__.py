"""netsim: a model of the Linux network stack pieces a Flannel cluster uses.

    import netsim
    cluster = netsim.reference_cluster()
    trace = cluster.send("pod-a", "pod-c", proto="tcp", dport=8080)
    for hop in trace.hops:
        print(hop.summary())
"""

from . import scenarios
from .cluster import Cluster, Endpoint, External, Node, Pod, reference_cluster
from .errors import ConfigError, InvalidNameError, NetsimError, TraceError, UnknownHostError, UsageError
from .packet import ARP, ICMP, TCP, UDP, VXLAN, Ethernet, IPv4
from .stack import Network
from .trace import Hop, Trace

__version__ = "0.1.0"

__all__ = [
    "ARP", "Cluster", "ConfigError", "Endpoint", "Ethernet", "External", "Hop", "ICMP", "IPv4", "InvalidNameError", "Network",
    "NetsimError", "Node", "Pod", "TCP", "Trace", "TraceError", "UDP", "UnknownHostError", "UsageError", "VXLAN", "reference_cluster", "scenarios",
]
