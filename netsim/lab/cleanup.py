"""Cleaning up: every lab's namespaces go, whatever way the process ends.

Each live lab is registered in `LIVE`; atexit and a SIGTERM/SIGHUP handler close them all.
`SignalsHeld` keeps a signal from cutting a `close()` short (it is raised again afterwards).
A lab killed outright (SIGKILL) leaves its namespaces behind: `stale_namespaces()` finds the
ones whose owning process has ended, and `reclaim_stale()` deletes them with a `LabWarning`.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import threading
import warnings
import weakref
from typing import Protocol

from . import commands as tok
from ._netns import NETNS_RUN_DIR, netns_path
from .process import run, tool

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LabWarning(UserWarning):
    """Something the lab did on its own that the user should know of (stale namespaces removed)."""


class Closable(Protocol):
    def close(self) -> None: ...


FAMILY = re.compile(r"nsl-([0-9]{1,10})-(?:[0-9]{1,10}-[A-Za-z0-9_.-]{1,63}|probe)")


def process_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie has ended: it holds no namespace)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:
        return True          # cannot tell: treat it as alive, never remove a live lab's namespaces
    return state not in (b"Z", b"X")


def stale_namespaces() -> list[str]:
    """Namespaces of the `nsl-<pid>-<n>-` family whose owning process no longer runs.

    The pid in a lab's prefix is the process that made it; while that process runs, its
    namespaces are its own (several labs run at once on one machine), so only those of a
    process that has ended are stale. A pid that has been reused keeps its namespaces: the
    safe side. Labs that share /run/netns are taken to share one pid namespace (one machine,
    as here); a lab in a container with its own pids would look dead to one outside it."""
    if not os.path.isdir(NETNS_RUN_DIR):
        return []
    out = []
    for name in os.listdir(NETNS_RUN_DIR):
        m = FAMILY.fullmatch(name)
        if m and int(m[1]) != os.getpid() and not process_alive(int(m[1])):
            out.append(name)
    return sorted(out)


def reclaim_stale(ip: str | None = None) -> list[str]:
    """Delete `stale_namespaces()` and say so (a `LabWarning`); the names removed."""
    stale = stale_namespaces()
    if not stale:
        return []
    run([ip or tool("ip") or "ip", "-force", "-batch", "-"], tok.batch(("netns", "del", n) for n in stale),
         check=False)
    gone = [n for n in stale if not os.path.lexists(netns_path(n))]
    if gone:
        pids = sorted({int(FAMILY.fullmatch(n)[1]) for n in gone})   # type: ignore[index]
        warnings.warn(LabWarning(
            f"netsim.lab: removed {len(gone)} namespace(s) left by lab run(s) whose process has ended "
            f"(pid {', '.join(map(str, pids))}): {' '.join(gone)}"), stacklevel=4)
    return gone


# every live lab is closed, whatever way the process ends

LIVE: "weakref.WeakSet[Closable]" = weakref.WeakSet()
_HANDLERS_INSTALLED = False


def _close_all() -> None:
    for lab in list(LIVE):
        lab.close()


def _on_sigterm(signum, frame) -> None:  # pragma: no cover - exercised by a real signal only
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_sigterm)


class SignalsHeld:
    """Within: SIGINT, SIGTERM and SIGHUP are noted, not acted on; on leaving, the previous
    handlers are back and each noted signal is raised again, so it does what it would have.

    Python runs signal handlers only in the main thread, between bytecodes: holding them there
    is enough for a close() in the main thread. A close() in another thread cannot be
    interrupted by a Python handler (one that calls close() waits for it on the lab's lock)."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.saved: dict[int, object] = {}

    def _note(self, signum, frame) -> None:
        self.pending.append(signum)

    def __enter__(self) -> "SignalsHeld":
        if threading.current_thread() is threading.main_thread():
            for sig in HELD_SIGNALS:
                previous = signal.getsignal(sig)
                if previous is None:          # installed outside Python: it cannot be put back
                    continue
                try:
                    signal.signal(sig, self._note)
                except (ValueError, OSError):
                    continue
                self.saved[sig] = previous
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self.saved.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self.saved.clear()
        for sig in dict.fromkeys(self.pending):
            signal.raise_signal(sig)

