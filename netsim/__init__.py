"""netsim: a model of the Linux network stack pieces a Flannel cluster uses."""

__version__ = "0.1.0"
