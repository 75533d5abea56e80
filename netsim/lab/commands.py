"""The lab's command lines, made only of checked tokens: no name ever becomes command text.

The lab runs as root. Every value it passes to `ip`, `bridge` or `iptables-restore` comes
from the model: namespace and device names, MACs, addresses, numbers, iptables rules. Each
goes through one validator of its kind (`ifname`, `netns_name`, `mac`, `ipv4`, `number`, ...)
before any command runs; a value that fails raises `UnsafeArgument` (a `ConfigError`) naming
the value and the rule it breaks.

Commands are argument lists (`subprocess.Popen([...])`, no shell). Where the lab feeds a
batch for speed, the input is checked again as a whole:

- `ip -batch` / `bridge -batch` (iproute2 lib/utils.c, getcmdline() and makeargs()) cut each
  line at '#', join lines ending in a backslash and split on blanks; single and double quotes
  group words. `batch()` accepts only tokens of `[A-Za-z0-9_.:/,+!-]`, so no token can hold a
  blank, a quote, a '#' or a backslash, and each line is exactly the tokens it was built from.
- `iptables-restore` (iptables/xshared.c, add_param_to_argv()) splits a rule line on blanks,
  with double quotes grouping and a backslash escaping inside them. `check_restore()` reads
  netsim's `netfilter.save()` text the same way and accepts only the four line forms
  iptables-save prints (`*table`, `:CHAIN POLICY [0:0]`, `-A CHAIN rule`, `COMMIT`), printable
  ASCII only, every token bare and plain except a `--comment` argument, and each line
  identical to its tokens printed back.

Names follow the kernel's own limits: an interface name is what dev_valid_name()
(net/core/dev.c) accepts, at most IFNAMSIZ - 1 = 15 bytes with no '/', ':' or blank, narrowed
here to `[A-Za-z0-9_.-]` and a first character that cannot read as an option; a namespace name
becomes a file in /run/netns, so it has no '/' and cannot be '.' or '..'; a chain name is at
most XT_EXTENSION_MAXNAMELEN - 1 = 28 characters (include/uapi/linux/netfilter/x_tables.h).

`shown(argv)` is a command as a reader would paste it into a shell (`shlex.join`).
"""

from __future__ import annotations

import functools
import re
import shlex
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Iterable, Sequence

from ..errors import ConfigError, NetsimError
from ..netfilter import save_string


class LabError(NetsimError, RuntimeError):
    """A lab command failed, timed out, or the kernel's state differs from what was built."""


class UnsafeArgument(ConfigError):
    """A name or value the lab will not pass to a command: it breaks the rule given."""


# one token kind, one rule ------------------------------------------------------------------

IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
NETNS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
CHAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,27}")
TOKEN = re.compile(r"[A-Za-z0-9_.:/,+!-]+")           # every word of every batch line
PRINTABLE = re.compile(r"[\x20-\x7e]*")

RULES = {
    "interface name": "1-15 characters of [A-Za-z0-9_.-], not starting with '.' or '-' "
                      "(the kernel's dev_valid_name() and IFNAMSIZ)",
    "namespace name": "1-63 characters of [A-Za-z0-9_.-], not starting with '.' or '-' "
                      "(a DNS-1123 label fits; it names a file in /run/netns)",
    "lab prefix": "1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
    "MAC address": "six lowercase hex pairs joined by ':'",
    "chain name": "1-28 characters of [A-Za-z0-9_.-] (XT_EXTENSION_MAXNAMELEN)",
}


def _refuse(kind: str, value: object, rule: str | None = None) -> UnsafeArgument:
    return UnsafeArgument(f"the lab refuses the {kind} {value!r}: it must be {rule or RULES[kind]}; "
                          f"nothing was run")


def _match(kind: str, pattern: re.Pattern, value: object) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise _refuse(kind, value)
    return value


def ifname(value: object) -> str:
    """An interface name, as dev_valid_name() would take it and no option could be read from it."""
    return _match("interface name", IFNAME, value)


def netns_name(value: object) -> str:
    """A model namespace name (the lab's namespace is its prefix plus this)."""
    return _match("namespace name", NETNS_NAME, value)


def prefix(value: object) -> str:
    """The lab's own prefix for its namespace names."""
    return _match("lab prefix", PREFIX, value)


def mac(value: object) -> str:
    return _match("MAC address", MAC, value)


def chain(value: object) -> str:
    return _match("chain name", CHAIN, value)


def _canonical(kind: str, parse: type[IPv4Address] | type[IPv4Interface] | type[IPv4Network], value: object,
               form: str) -> str:
    """`value` if `parse` reads it and prints it back unchanged, else refused."""
    try:
        text = str(parse(str(value)))
    except ValueError:
        raise _refuse(kind, value, form) from None
    if text != str(value):
        raise _refuse(kind, value, f"written as {text}")
    return text


def ipv4(value: object) -> str:
    """An IPv4 address in dotted quad, exactly as `ipaddress` prints it."""
    return _canonical("IPv4 address", IPv4Address, value, "an IPv4 address in dotted-quad form")


def ipv4_interface(value: object) -> str:
    """ADDRESS/PREFIXLEN, as `ip addr add` takes it."""
    return _canonical("IPv4 interface address", IPv4Interface, value, "ADDRESS/PREFIXLEN")


def ipv4_network(value: object) -> str:
    """NETWORK/PREFIXLEN with no host bits, as `ip route add` takes it."""
    return _canonical("IPv4 network", IPv4Network, value, "NETWORK/PREFIXLEN with no host bits set")


def number(value: object, low: int, high: int, what: str = "number") -> str:
    """An integer from `low` to `high`, in decimal."""
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        raise _refuse(what, value, f"an integer from {low} to {high}")
    return str(value)


def word(value: str, allowed: Iterable[str]) -> str:
    """One of a fixed set of keywords (a route type, a scope, a neighbour state)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise _refuse("keyword", value, f"one of {', '.join(allowed)}")
    return value


# batches and what the reader sees ----------------------------------------------------------

Line = tuple[str, ...]


def check_line(line: Sequence[str]) -> Line:
    """A batch line: every word a plain token (see the module docstring)."""
    for tok in line:
        if not isinstance(tok, str) or TOKEN.fullmatch(tok) is None:
            raise _refuse("batch word", tok, "a token of [A-Za-z0-9_.:/,+!-] (no blank, quote, '#' or backslash)")
    return tuple(line)


def batch(lines: Iterable[Sequence[str]]) -> str:
    """The input of `ip -batch -` or `bridge -batch -`: one checked line per command."""
    return "".join(" ".join(check_line(line)) + "\n" for line in lines)


def shown(argv: Sequence[str]) -> str:
    """A command as a shell would take it back: every argument quoted where it needs to be."""
    return shlex.join(argv)


# iptables-restore input ---------------------------------------------------------------------

TABLES = ("raw", "mangle", "filter", "nat", "security")
POLICIES = ("ACCEPT", "DROP", "-")
COMMENT_MAX = 255                      # xt_comment's XT_MAX_COMMENT_LEN is 256 with its NUL
# options iptables-save prints with two blanks before their argument (libxt_nfacct.c)
TWO_BLANKS_AFTER = ("--nfacct-name",)


# one word of a rule line in the shape iptables-save prints: a bare word, or a double-quoted
# one with backslash escapes, each followed by one blank or the end of the line
_RESTORE_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"(?= |\Z)|([^ "\\]+)(?= |\Z)')
_UNESCAPE = re.compile(r"\\(.)")


def restore_tokens(text: str) -> list[tuple[str, bool]]:
    """The words of one rule line, as (word, was quoted) pairs, read as iptables-restore's
    add_param_to_argv() reads them (a double quote groups, a backslash inside quotes escapes
    the next character). Only the canonical shape iptables-save prints is accepted: words
    separated by single blanks, a quote only around a whole word; anything else is refused
    (an unclosed quote among them: the mark of a word that held a newline, cut in two)."""
    out: list[tuple[str, bool]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _RESTORE_WORD.match(text, pos)
        if m is None:
            raise _refuse("iptables-restore line", text, "words separated by single blanks, double quotes "
                          "balanced and only around a whole word")
        bare = m.group(2)
        out.append((bare, False) if bare is not None else (_UNESCAPE.sub(r"\1", m.group(1)), True))
        pos = m.end() + 1
        if bare in TWO_BLANKS_AFTER and text[pos:pos + 1] == " ":
            pos += 1
        if pos == end:
            raise _refuse("iptables-restore line", text, "no blank at its end")
    return out


@functools.lru_cache(maxsize=8192)
def _check_rule(line: str) -> None:
    """One `-A` line (remembered once accepted: every node has the same kube-proxy rules)."""
    tokens = restore_tokens(line)
    if len(tokens) < 2 or tokens[0] != ("-A", False):
        raise _refuse("iptables-restore line", line, "-A CHAIN followed by the rule")
    chain(tokens[1][0])
    printed = []
    before = ""                      # the previous word, if it was an option (not an argument)
    for tok, quoted in tokens:
        if before == "--comment":
            if len(tok) > COMMENT_MAX or PRINTABLE.fullmatch(tok) is None:
                raise _refuse("iptables comment", tok, f"at most {COMMENT_MAX} printable ASCII characters")
            printed.append(save_string(tok))
            before = ""
            continue
        if quoted or TOKEN.fullmatch(tok) is None:
            raise _refuse("iptables-restore word", tok, "a token of [A-Za-z0-9_.:/,+!-] (only a --comment "
                          "argument may be quoted)")
        if before in ("-j", "-g", "--jump", "--goto"):
            chain(tok)
        printed.append(tok)
        before = tok
    if "".join(w + ("  " if w in TWO_BLANKS_AFTER else " ") for w in printed).rstrip() != line:
        raise _refuse("iptables-restore line", line, "exactly its words printed back as iptables-save does")


def check_restore(text: str) -> str:
    """`text` (netfilter.save() output), checked line by line before iptables-restore reads it."""
    if "\0" in text or "\r" in text or (text and not text.endswith("\n")):
        raise _refuse("iptables-restore input", text[-80:], "lines of printable ASCII, each ended by a newline")
    table: str | None = None
    for line in text[:-1].split("\n") if text else []:
        if PRINTABLE.fullmatch(line) is None:
            raise _refuse("iptables-restore line", line, "printable ASCII")
        if line.startswith("*"):
            if table is not None:
                raise _refuse("iptables-restore line", line, "a table opened after the last one's COMMIT")
            table = word(line[1:], TABLES)
        elif table is None:
            raise _refuse("iptables-restore line", line, "inside a *table ... COMMIT block")
        elif line == "COMMIT":
            table = None
        elif line.startswith(":"):
            parts = line[1:].split(" ")
            if len(parts) != 3 or parts[2] != "[0:0]":
                raise _refuse("iptables-restore line", line, ":CHAIN POLICY [0:0]")
            chain(parts[0])
            word(parts[1], POLICIES)
        else:
            _check_rule(line)
    if table is not None:
        raise _refuse("iptables-restore input", f"*{table}", "every table closed by COMMIT")
    return text


NFACCT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,30}")


def nfacct_name(value: object) -> str:
    """An nfacct object's name (NFACCT_NAME_MAX 32 with its NUL), as `nfacct add` takes it."""
    if not isinstance(value, str) or NFACCT_NAME.fullmatch(value) is None:
        raise _refuse("nfacct object name", value, "1 to 31 characters of [A-Za-z0-9_-], not starting with '-'")
    return value


# nft -f input -------------------------------------------------------------------------------

NFT_VERBS = ("add", "flush", "delete")
NFT_OBJECTS = ("table", "chain", "set", "map", "rule", "element")
NFT_FAMILIES = ("ip", "ip6")
# nft's scanner (src/scanner.l) reads `include`, `define` and `$VAR` as directives and `#` as a
# comment: none may appear. A bare word is one of these characters; a quoted string (a comment)
# holds letters, digits, blanks and a few marks, never a quote or a backslash.
NFT_WORD = re.compile(r"[A-Za-z0-9_.:/,;{}@!=<>&|^-]+")
NFT_QUOTED = re.compile(r'"[A-Za-z0-9 _./:@,-]{0,128}"')


def check_nft(text: str) -> str:
    """`text` (one batch of netsim's nftables journal), checked before `nft -f -` reads it:
    lines of printable ASCII, each an `add|flush|delete` of a table, chain, set, map, rule or
    element of the ip or ip6 family, made of plain words and plain double-quoted comments."""
    if "\0" in text or "\r" in text or not text.endswith("\n"):
        raise _refuse("nft -f input", text[-80:], "lines of printable ASCII, each ended by a newline")
    for line in text[:-1].split("\n"):
        if PRINTABLE.fullmatch(line) is None:
            raise _refuse("nft -f line", line, "printable ASCII")
        words = re.findall(r'"[^"]*"|[^ "]+|"', line)
        if " ".join(words) != line or len(words) < 3 or words[0] not in NFT_VERBS \
                or words[1] not in NFT_OBJECTS or words[2] not in NFT_FAMILIES:
            raise _refuse("nft -f line", line, "VERB OBJECT FAMILY ... (add|flush|delete table|chain|set|map|"
                          "rule|element ip|ip6), words separated by single blanks")
        for w in words[3:]:
            if w.startswith('"') and NFT_QUOTED.fullmatch(w) is None or \
                    not w.startswith('"') and (NFT_WORD.fullmatch(w) is None or w in ("include", "define")):
                raise _refuse("nft -f word", w, "a word of [A-Za-z0-9_.:/,;{}@!=<>&|^-] or a double-quoted comment "
                              "of letters, digits, blanks and ._/:@,-")
    return text
