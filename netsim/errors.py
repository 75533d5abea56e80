"""Errors netsim raises. Each message names what was wrong and what would be valid."""


class NetsimError(Exception):
    """Base class of every error netsim raises on purpose."""


class ConfigError(NetsimError, ValueError):
    """A topology, address, route or parameter the kernel (or Flannel) would refuse."""


class InvalidNameError(ConfigError):
    """A name Kubernetes would refuse (netsim.names): the message names the rule and the name."""


class UnknownHostError(ConfigError):
    """A name no host, Service or pod of the cluster has: the pod's resolver asked the cluster
    DNS for every name of its search list and each was NXDOMAIN. `traces` holds the walk of
    those queries (empty when netsim looked the name up itself)."""

    def __init__(self, message: str, traces: tuple = ()) -> None:
        super().__init__(message)
        self.traces = traces


class UsageError(NetsimError, ValueError):
    """An argument a netsim function or the command line cannot take: a wrong type, a hop
    outside the trace, arguments swapped, an option that does not apply, a file that cannot be
    written."""


class TraceError(NetsimError):
    """A trace that cannot finish, e.g. a forwarding loop hitting the hop cap."""
