"""The errors a socket reports, as Linux names them and glibc prints them.

- `ICMP_UNREACH_ERRNO` is the kernel's `icmp_err_convert[]` table (net/ipv4/icmp.c): the
  errno a UDP, raw or TCP socket gets for each "destination unreachable" code. Time
  exceeded gives EHOSTUNREACH and parameter problem EPROTO (`__udp4_lib_err`,
  `raw_err`, `tcp_v4_err` in net/ipv4/udp.c, raw.c, tcp_ipv4.c).
- `STRERROR` is glibc's text for each errno (what `strerror()` and `perror()` print,
  e.g. curl's "Connection refused" and ping's "Network is unreachable").
"""

from __future__ import annotations

ICMP_DEST_UNREACH = 3
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETERPROB = 12

ICMP_UNREACH_ERRNO: dict[int, str] = {
    0: "ENETUNREACH",      # ICMP_NET_UNREACH
    1: "EHOSTUNREACH",     # ICMP_HOST_UNREACH
    2: "ENOPROTOOPT",      # ICMP_PROT_UNREACH
    3: "ECONNREFUSED",     # ICMP_PORT_UNREACH
    4: "EMSGSIZE",         # ICMP_FRAG_NEEDED
    5: "EOPNOTSUPP",       # ICMP_SR_FAILED
    6: "ENETUNREACH",      # ICMP_NET_UNKNOWN
    7: "EHOSTDOWN",        # ICMP_HOST_UNKNOWN
    8: "ENONET",           # ICMP_HOST_ISOLATED
    9: "ENETUNREACH",      # ICMP_NET_ANO
    10: "EHOSTUNREACH",    # ICMP_HOST_ANO
    11: "ENETUNREACH",     # ICMP_NET_UNR_TOS
    12: "EHOSTUNREACH",    # ICMP_HOST_UNR_TOS
    13: "EHOSTUNREACH",    # ICMP_PKT_FILTERED
    14: "EHOSTUNREACH",    # ICMP_PREC_VIOLATION
    15: "EHOSTUNREACH",    # ICMP_PREC_CUTOFF
}

STRERROR: dict[str, str] = {
    "EPERM": "Operation not permitted",
    "EACCES": "Permission denied",
    "EINVAL": "Invalid argument",
    "EMSGSIZE": "Message too long",
    "ENOPROTOOPT": "Protocol not available",
    "EOPNOTSUPP": "Operation not supported",
    "ENETUNREACH": "Network is unreachable",
    "ECONNRESET": "Connection reset by peer",
    "ENOBUFS": "No buffer space available",
    "ETIMEDOUT": "Connection timed out",
    "ECONNREFUSED": "Connection refused",
    "EHOSTDOWN": "Host is down",
    "EHOSTUNREACH": "No route to host",
    "ENONET": "Machine is not on the network",
    "EPROTO": "Protocol error",
    "EADDRINUSE": "Address already in use",
}


def icmp_errno(icmp_type: int, code: int) -> str:
    """The errno a socket gets for an ICMP error of this type and code ("" if none)."""
    if icmp_type == ICMP_DEST_UNREACH:
        return ICMP_UNREACH_ERRNO.get(code, "EHOSTUNREACH")
    if icmp_type == ICMP_TIME_EXCEEDED:
        return "EHOSTUNREACH"
    if icmp_type == ICMP_PARAMETERPROB:
        return "EPROTO"
    return ""


def strerror(errno: str) -> str:
    """glibc's message for an errno name; an unknown name is returned as it is."""
    return STRERROR.get(errno, errno)
