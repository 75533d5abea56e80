"""What the real-kernel lab test files (tests/test_lab_*.py) share.

- `gate(file)`: why the lab cannot run here (netsim.lab's `unavailable_reason`, or another reason
  the file adds, such as missing CNI plugins), warned once under the file's name, and the mark
  that skips a test with that reason. Lab tests skip, never fail, on a machine without root.
- `module_lab(build, ...)`: a module-scoped `lab` fixture, one Lab for all the tests of a file
  (or one per kube-proxy mode), torn down after the file's last test.
- `assert_rulesets_are_netsims(lab, host)`: the node's rules on the kernel as netsim wrote them.
- `Namespaces(tag)`, `run(...)`: for the files that build a few namespaces by hand with ip(8)
  rather than through netsim.lab: commands as argument lists, names that say which run made them.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from netsim import Cluster
from netsim.lab import Lab, state, unavailable_reason

PROXY_MODES = ("iptables", "nftables")


@dataclass(frozen=True)
class Gate:
    reason: str | None              # why the lab cannot run here, or None
    needs_lab: pytest.MarkDecorator  # skips the test with the reason


def gate(file: str, extra: Callable[[], str | None] | None = None,
         unavailable: str = "real-kernel lab unavailable", skipped: str = "the real-kernel lab is skipped") -> Gate:
    """The lab's gate for the test file `file` (pass `__file__`): the reason is the lab's own,
    else `extra()`'s; a warning names the file when there is one."""
    reason = unavailable_reason() or (extra() if extra else None)
    if reason:
        warnings.warn(f"tests/{Path(file).name}: {skipped}: {reason}")
    return Gate(reason, pytest.mark.skipif(reason is not None, reason=f"{unavailable}: {reason}"))


def module_lab(the_gate: Gate, build: Callable[..., Cluster], *, per_proxy_mode: bool = False,
               **lab_options: object):
    """A module-scoped fixture giving a Lab of `build()`, or, with per_proxy_mode, of
    `build(mode)` once for each kube-proxy mode (the file's tests run once per mode). Assign it
    to the name the tests ask for: `lab = labkit.module_lab(GATE, lb_cluster, per_proxy_mode=True)`."""

    @pytest.fixture(scope="module", params=PROXY_MODES if per_proxy_mode else None)
    def lab(request):
        if the_gate.reason:
            pytest.skip(the_gate.reason)
        cluster = build(request.param) if per_proxy_mode else build()
        with Lab(cluster, **lab_options) as built:
            yield built

    return lab


def assert_rulesets_are_netsims(lab: Lab, host: str) -> None:
    """In nftables mode `nft -a list ruleset` has no difference from netsim's; in iptables mode
    iptables-save's tables are netsim's, table by table, less the raw table, where the lab's
    tracer puts its TRACE rules."""
    if lab.cluster.proxy_mode == "nftables":
        assert state.differences(lab, lab.cluster, host, "nft -a list ruleset") == []
        return
    kernel = [t.strip() for t in "\n".join(state.kernel_view(lab, host, "iptables-save")).split("COMMIT")]
    model = [t.strip() for t in "\n".join(state.model_view(lab.cluster, host, "iptables-save")).split("COMMIT")]
    assert [t for t in kernel if not t.startswith("*raw")] == model


def run(*args: str, input: str | None = None, check: bool = True) -> str:
    """Run a command given as an argument list (never through a shell); its stdout. A failure
    with check is an AssertionError carrying the command and its stderr."""
    done = subprocess.run(list(args), input=input, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{args}: {done.stderr.strip()}")
    return done.stdout


class Namespaces:
    """Network namespaces a test file builds by hand, named `TAG-PID-ROLE`: the pid says which
    run made them, so a run killed midway leaves names the next run can reclaim."""

    def __init__(self, tag: str) -> None:
        if not re.fullmatch(r"[a-z]+", tag):
            raise ValueError(f"namespace tag {tag!r}: lower-case letters only")
        self.tag = tag
        self.prefix = f"{tag}-{os.getpid()}-"

    def in_ns(self, role: str, *args: str, input: str | None = None, check: bool = True) -> str:
        """`ip netns exec` the command in the namespace of `role`."""
        return run("ip", "netns", "exec", self.prefix + role, *args, input=input, check=check)

    def reclaim_stale(self) -> None:
        """Delete this tag's namespaces whose run is gone (its pid no longer exists)."""
        for line in run("ip", "netns", "list").splitlines():
            found = re.match(rf"{self.tag}-(\d+)-\S+", line)
            if found and not os.path.exists(f"/proc/{found.group(1)}"):
                run("ip", "netns", "del", found.group(0), check=False)
