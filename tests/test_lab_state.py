"""netsim's state views print what the real tools print for the same cluster built in real
namespaces: `ip route`, permanent `ip neigh` entries, `bridge fdb` and `iptables-save`.

Skipped, with the reason, where the lab cannot run (no root, no namespaces)."""

import subprocess
import warnings

import pytest

import netsim
from netsim.lab import Lab, unavailable_reason
from tools.conformance_report import _drop_empty_tables   # iptables-save with its empty tables left out

REASON = unavailable_reason()
if REASON is not None:
    warnings.warn(f"tests/test_lab_state.py: the real-kernel lab is skipped: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"real-kernel lab unavailable: {REASON}")

HOSTS = ("node1", "node2", "pod-a", "pod-c", "gateway", "ext")
LINK_LOCAL_MULTICAST = ("33:33:", "01:00:5e:", "01:80:c2:")


def kernel_view(lab: Lab, host: str, view: str) -> list[str]:
    ns = lab.netns(host)
    command = {
        "ip route": ["ip", "-n", ns, "route"],
        "ip neigh": ["ip", "-n", ns, "neigh", "show", "nud", "permanent"],
        "ip link": ["ip", "-n", ns, "link", "show"],
        "bridge fdb": ["bridge", "-n", ns, "fdb", "show"],
        "iptables-save": ["ip", "netns", "exec", ns, "iptables-save"],
    }[view]
    lines = [line.rstrip() for line in subprocess.run(command, capture_output=True, text=True, check=True).stdout
             .splitlines()]
    if view == "ip link":           # the link lines carry qlen; link-netns names have the lab's prefix
        lines = _qlens(lines)
    if view == "bridge fdb":        # IPv6 and link-local multicast entries the model leaves out
        lines = [line for line in lines if not line.startswith(LINK_LOCAL_MULTICAST)]
    if view == "iptables-save":     # comments, the empty mangle table, counters
        lines = [line.split(" [")[0] if line.startswith(":") else line for line in lines
                 if line and not line.startswith("#")]
        lines = _drop_empty_tables(lines)
    return lines


def model_view(cluster, host: str, view: str) -> list[str]:
    shown = "ip addr" if view == "ip link" else view     # the model's `ip addr` starts each link with the same line
    lines = [line for line in cluster.show(host, shown).splitlines() if line]
    if view == "ip link":
        lines = _qlens(lines)
    if view == "ip neigh":
        lines = [line for line in lines if line.endswith("PERMANENT")]
    if view == "iptables-save":
        lines = _drop_empty_tables([line.split(" [")[0] if line.startswith(":") else line for line in lines])
    return lines


def _qlens(lines: list[str]) -> list[str]:
    """`NAME qlen N` (or `NAME` alone) per link line, by name: the lab's ifindex order and its
    veth-made NICs (qdisc noqueue, peer names) differ from the model's on purpose."""
    out = []
    for line in lines:
        if line[:1].isdigit():
            name = line.split(": ")[1].split("@")[0]
            out.append(name + (" qlen " + line.split(" qlen ")[1] if " qlen " in line else ""))
    return sorted(out)


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_state_views_match_the_kernel(backend):
    cluster = netsim.reference_cluster(backend)
    with Lab(cluster) as lab:
        for host in HOSTS:
            for view in ("ip link", "ip route", "ip neigh", "bridge fdb", "iptables-save"):
                kernel, model = kernel_view(lab, host, view), model_view(cluster, host, view)
                if view in ("ip neigh", "bridge fdb"):     # the kernel's hash order, the model's creation order
                    kernel, model = sorted(kernel), sorted(model)
                assert model == kernel, f"{host} `{view}`:\nkernel:\n" + "\n".join(kernel) + "\nmodel:\n" + \
                    "\n".join(model)
