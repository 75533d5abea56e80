"""Running the lab's commands: argument lists with no shell, a timeout, and every child reaped.

`run(argv)` starts one command in a session of its own (a terminal's ^C does not cut it
short: the lab decides when a child stops), kills it past its timeout or on any exception in
the calling thread, and always waits for it, so no zombie is left. `unavailable_reason()`
says why this machine cannot host a lab (not Linux, not root, a tool or br_netfilter missing).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Sequence

from . import commands as tok
from ._netns import in_netns
from .commands import LabError

COMMAND_TIMEOUT = 30.0   # the longest one ip/bridge/iptables-restore run may take; then it is killed


class LabUnavailable(LabError):
    """The running system cannot host the lab (not root, no namespaces, a tool missing)."""


def tool(name: str) -> str | None:
    """The path of program `name`: on PATH, or in /usr/sbin or /sbin (root's PATH may lack them)."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


def reap(proc: subprocess.Popen, drain: bool = True) -> None:
    """Kill `proc` if it still runs and wait for it, so no zombie is left. Only the thread that
    runs the command reads its pipes (`drain`); another one (close()) just kills and waits."""
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        if drain:
            proc.communicate(timeout=5)
        else:
            proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        proc.wait()


def run(argv: Sequence[str], input: str | None = None, check: bool = True, timeout: float = COMMAND_TIMEOUT,
        children: "set[subprocess.Popen] | None" = None) -> subprocess.CompletedProcess:
    """Run `argv` (no shell) and return what it printed. The child is reaped whatever happens:
    past `timeout` it is killed (LabError), and on any exception in this thread (a signal's
    KeyboardInterrupt included) it is killed before the exception goes on. `children` is the
    set of live children of one lab, which `Lab.close()` kills and reaps."""
    argv = list(argv)
    # its own session: a terminal's ^C (sent to the foreground process group) does not cut a
    # command short; the lab decides when a child stops
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    if children is not None:
        children.add(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        reap(proc)
        raise LabError(f"`{tok.shown(argv)}` did not finish within {timeout:g} s; it was killed") from None
    except BaseException:
        reap(proc)
        raise
    finally:
        if children is not None:
            children.discard(proc)
    if check and proc.returncode != 0:
        raise LabError(f"`{tok.shown(argv)}` failed ({proc.returncode}): {err.strip()}\ninput:\n{input or ''}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None if it can."""
    if platform.system() != "Linux":
        return f"the lab needs Linux network namespaces; this is {platform.system()}"
    if os.geteuid() != 0:
        return "the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces"
    for name, package in (("ip", "iproute2"), ("bridge", "iproute2"), ("iptables-restore", "iptables"),
                          ("conntrack", "conntrack"), ("ping", "iputils-ping"), ("nft", "nftables"),
                          ("nfacct", "nfacct")):
        if tool(name) is None:
            return f"`{name}` is missing (Debian package {package})"
    ip = tool("ip") or "ip"
    probe = f"nsl-{os.getpid()}-probe"
    made = run([ip, "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip() or made.returncode}"
    try:
        if not in_netns(probe, lambda: os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables")):
            return "br_netfilter is not loaded (no net.bridge.bridge-nf-call-iptables in a new namespace)"
    finally:
        run([ip, "netns", "del", probe], check=False)
    return None


# ------------------------------------------------------------------------------------------
# namespaces left by a lab run that was killed

# the default prefix family: nsl-<pid>-<n>-<model name>, and unavailable_reason()'s probe
