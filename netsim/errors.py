"""Errors netsim raises. Each message names what was wrong and what would be valid."""


class NetsimError(Exception):
    """Base class of every error netsim raises on purpose."""


class ConfigError(NetsimError, ValueError):
    """A topology, address, route or parameter the kernel (or Flannel) would refuse."""


class InvalidNameError(ConfigError):
    """A name Kubernetes would refuse (netsim.names): the message names the rule and the name."""


class UsageError(NetsimError, ValueError):
    """An argument a netsim function or the command line cannot take: a wrong type, a hop
    outside the trace, arguments swapped, an option that does not apply, a file that cannot be
    written."""


class TraceError(NetsimError):
    """A trace that cannot finish, e.g. a forwarding loop hitting the hop cap."""
