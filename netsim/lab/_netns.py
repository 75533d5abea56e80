"""Running code inside a network namespace without moving the process.

`in_netns(path, fn)` runs `fn` in a fresh thread that has joined the namespace with
setns(2). Only that thread moves; it ends when `fn` returns, so the caller (and the rest of
the process) never leaves the namespace it started in. Sockets keep the namespace they were
created in, so a socket made here can be used from any thread afterwards; a child process
started here (subprocess) is born in the namespace too.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import threading
from typing import Callable, TypeVar

from .commands import UnsafeArgument

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
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


def write_sysctls(name: str, values: list[tuple[str, str]], missing: type[Exception]) -> None:
    """Write each (key, value) under /proc/sys in namespace `name`, what `sysctl -w` does; a key
    the namespace lacks raises `missing`, except an IPv6 one (no IPv6: nothing to disable)."""
    def write() -> None:
        for key, value in values:
            path = "/proc/sys/" + key.replace(".", "/")
            if not os.path.exists(path):
                if key.startswith("net.ipv6"):
                    continue
                raise missing(f"{key} does not exist in a new namespace")
            with open(path, "w") as fh:
                fh.write(value)

    in_netns(name, write)


def tx_checksum_off(name: str, devices: list[str]) -> None:
    """Transmit checksum offload off on `devices` of namespace `name` (the ETHTOOL_STXCSUM ioctl,
    what `ethtool -K IF tx off` does)."""
    def apply() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for dev in devices:
                value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0), 8)
                ifreq = struct.pack("16sP", dev.encode(), ctypes.addressof(value)).ljust(40, b"\0")
                fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)

    in_netns(name, apply)
