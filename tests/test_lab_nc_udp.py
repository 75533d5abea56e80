"""`nc -u` (netcat-openbsd 1.219) against the real kernel: what it prints, its exit status and
the datagrams it sends, against an open port (pod-c's UDP 9090, where the lab answers "RSP")
and a closed one (9999: pod-c's port unreachable), with and without -v (udptest's "X" probes)."""

from __future__ import annotations

import shutil

import pytest

from netsim import reference_cluster
from netsim.lab import Lab
from netsim.lab.tools import run_tool
from test_lab import needs_lab

pytestmark = [needs_lab, pytest.mark.skipif(shutil.which("nc") is None, reason="missing nc (netcat-openbsd)")]
POD_C = "10.244.1.2"
CASES = [(port, verbose) for port in (9090, 9999) for verbose in (False, True)]


@pytest.fixture(scope="module")
def nc_lab():
    cluster = reference_cluster()
    with Lab(cluster) as lab:
        yield cluster, lab


def _sent(trace) -> list[bytes]:
    return [h.ip.payload.payload_bytes() for h in trace.hops
            if h.where == "pod-a/eth0" and h.direction == "tx" and h.ip is not None and h.ip.proto == 17]


@pytest.mark.parametrize("port, verbose", CASES, ids=[f"{p}{'-v' if v else ''}" for p, v in CASES])
def test_nc_udp_prints_and_sends_what_netcat_openbsd_does(nc_lab, port, verbose):
    cluster, lab = nc_lab
    argv = ["nc", "-u"] + (["-v"] if verbose else []) + ["-w", "1", POD_C, str(port)]
    kernel = run_tool(lab, "pod-a", argv, stdin="hello\n", timeout=30)
    model = cluster.nc("pod-a", POD_C, port, b"hello\n", udp=True, verbose=verbose, wait=1)
    assert (kernel.returncode, kernel.stdout, kernel.stderr) == (model.status, model.stdout, model.stderr)
    assert _sent(kernel.trace) == [b for t in model.traces for b in _sent(t)]
    expected = {(9090, False): [b"hello\n"], (9090, True): [b"X", b"X", b"X", b"hello\n"],
                (9999, False): [b"hello\n"], (9999, True): [b"X"]}[(port, verbose)]
    assert _sent(kernel.trace) == expected
