"""The real-kernel lab: netsim's cluster built with network namespaces, compared with the model."""
from .kernel import Capture, Lab, LabUnavailable, Observation, classify, resolve, to_trace, unavailable_reason
