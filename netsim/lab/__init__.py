"""The real-kernel lab: netsim's cluster built in network namespaces, and compared with the model.

    from netsim import reference_cluster
    from netsim.lab import Lab, run_scenario

    with Lab(reference_cluster()) as lab:            # root on Linux; LabUnavailable otherwise
        result = run_scenario(lab, 4, "tcp")          # the model's trace against the kernel's
        print(result)                                 # "... 24 hops, 736 values compared, match"

- `Lab` (kernel.py): builds the cluster from netsim's own state, runs one exchange with real
  sockets and captures every device (`Lab.exchange` -> `Observation`, with a netsim `Trace`).
  Its parts: `plan` (the build as checked command lines), `process` (running a command),
  `cleanup` (namespaces removed whatever way the process ends), `capture` (a packet socket
  with a receive ring on every device, copying each frame as it passes), `frames` (captures ordered and classified into a `Trace`), `traffic` (the servers
  and the client).
- `commands` (commands.py): the validators every name and value passes before it reaches a
  command line (`UnsafeArgument`), and the checks on batch and iptables-restore input.
- `compare` (compare.py): lines a model trace up with an observation, field by field.
- `run_scenario`, `conformance`, `report` (conformance.py): every scenario, and the appendix.

The core never imports this package.
"""

from .compare import KNOWN_DEVIATIONS, RULES, Comparison, Difference, checksum_faults, compare
from .conformance import BACKENDS, PROTOS, SCENARIOS, SHAPES, Run, conformance, report, run_scenario
from .commands import LabError, UnsafeArgument
from .capture import Capture
from .cleanup import LabWarning, reclaim_stale, stale_namespaces
from .frames import classify, order, to_trace
from .kernel import Lab, Observation
from .plan import Plan
from .process import LabUnavailable, unavailable_reason
from .traffic import resolve

__all__ = [
    "BACKENDS", "Capture", "Comparison", "Difference", "KNOWN_DEVIATIONS", "Lab", "LabError", "LabUnavailable",
    "LabWarning", "Observation", "PROTOS", "Plan", "RULES", "Run", "SCENARIOS", "SHAPES", "UnsafeArgument",
    "checksum_faults", "classify", "compare", "conformance", "order", "reclaim_stale", "report", "resolve",
    "run_scenario", "stale_namespaces", "to_trace", "unavailable_reason",
]
