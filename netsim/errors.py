"""Errors netsim raises. Each message names what was wrong and what would be valid."""


class NetsimError(Exception):
    """Base class of every error netsim raises on purpose."""


class ConfigError(NetsimError, ValueError):
    """A topology, address, route or parameter the kernel (or Flannel) would refuse."""


class TraceError(NetsimError):
    """A trace that cannot finish, e.g. a forwarding loop hitting the hop cap."""
