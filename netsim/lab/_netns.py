"""Running code inside a network namespace without moving the process.

`in_netns(path, fn)` runs `fn` in a fresh thread that has joined the namespace with
setns(2). Only that thread moves; it ends when `fn` returns, so the caller (and the rest of
the process) never leaves the namespace it started in. Sockets keep the namespace they were
created in, so a socket made here can be used from any thread afterwards; a child process
started here (subprocess) is born in the namespace too.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable, TypeVar

from .commands import UnsafeArgument

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    """/run/netns/NAME, the file `ip netns add NAME` mounts the namespace on. NAME is one path
    component, as iproute2's invalid_name() (ip/ipnetns.c) asks: not empty, no '/', not '.'
    or '..'; so the path never leaves /run/netns."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafeArgument(f"the lab refuses the namespace name {name!r}: it must be one path component "
                             f"(no '/', not '.' or '..'); nothing was run")
    return os.path.join(NETNS_RUN_DIR, name)


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run `fn()` in namespace `name` (as made by `ip netns add`) and return its result."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({name}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
