"""`nc -u` (netcat-openbsd 1.219) against the real kernel: what it prints, its exit status and
the datagrams it sends, against an open port (pod-c's UDP 9090, where the lab answers "RSP")
and a closed one (9999: pod-c's port unreachable), with and without -v (udptest's "X" probes)."""

from __future__ import annotations

import shutil

import pytest

from netsim import reference_cluster
from netsim.lab import Lab
from netsim.lab.tools import run_tool
from netsim.programs.http import HttpEchoServer
from netsim.programs.nc import Nc, NcListen
from netsim.programs.wire import DirectWire
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


def test_nc_given_a_name_prints_the_name_and_the_address(nc_lab):
    """Given a name, nc prints it with the address in parentheses, on success and on failure
    (netsim's tools pass the name the reader typed; the lab's real nc resolves only localhost,
    from /etc/hosts, which every lab namespace shares). pod-a's lab server listens on 8080,
    nothing on 9."""
    _, lab = nc_lab
    for port, zero in ((8080, True), (9, False)):
        argv = ["nc", "-v"] + (["-z"] if zero else []) + ["localhost", str(port)]
        kernel = run_tool(lab, "pod-a", argv, stdin="", timeout=30)
        wire = DirectWire()
        wire.add("127.0.0.1", HttpEchoServer(8080) if port == 8080 else NcListen(8081))    # 9: refused
        model = wire.add("10.244.0.2", Nc("127.0.0.1", port, zero=zero, verbose=True, name="localhost"))
        wire.run()
        assert (kernel.returncode, kernel.stderr) == (model.status, model.result.stderr)
    assert kernel.stderr == "nc: connect to localhost (127.0.0.1) port 9 (tcp) failed: Connection refused\n"
