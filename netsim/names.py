"""Names of cluster objects, checked where they enter, by the rules kube-apiserver applies.

kube-apiserver validates names with k8s.io/apimachinery/pkg/util/validation (validation.go):
- a DNS-1123 label (`IsDNS1123Label`): at most 63 characters, lowercase letters, digits and
  '-', starting and ending with a letter or digit (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`);
- a DNS-1035 label (`IsDNS1035Label`): the same, but starting with a letter
  (`[a-z]([-a-z0-9]*[a-z0-9])?`), which Kubernetes requires of Service names
  (pkg/apis/core/validation: `ValidateServiceName` is `NameIsDNS1035Label`).

Kubernetes takes a container name as a DNS-1123 label, and a pod or node name as a DNS-1123
subdomain (labels joined by dots). netsim asks pods, nodes and external hosts for the
stricter label: their names become network namespace names and endpoint names, and a dotted
name would read like an address. For the same reason a name that the C library's
`inet_aton()` (which `ping` and most tools use) would read as an IPv4 address, such as `4`
(0.0.0.4) or `0x7f` (0.0.0.127), is refused. A name is also refused if another object of any
kind already has it (Cluster checks that, since only it knows every name).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from .errors import InvalidNameError

MAX_LABEL = 63      # DNS1123LabelMaxLength and DNS1035LabelMaxLength in validation.go


@dataclass(frozen=True)
class NameRule:
    """One of Kubernetes' name formats."""

    rule: str           # "DNS-1123 label"
    pattern: str        # the regular expression validation.go uses
    words: str          # the rule in words, for messages
    example: str

    def matches(self, name: str) -> bool:
        return len(name) <= MAX_LABEL and _compiled(self.pattern).fullmatch(name) is not None


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


DNS1123_LABEL = NameRule("DNS-1123 label", r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                         "lowercase letters, digits and '-', starting and ending with a letter or digit, "
                         f"at most {MAX_LABEL} characters", "pod-a")
DNS1035_LABEL = NameRule("DNS-1035 label", r"[a-z]([-a-z0-9]*[a-z0-9])?",
                         "lowercase letters, digits and '-', starting with a letter and ending with a letter "
                         f"or digit, at most {MAX_LABEL} characters", "web")

# Which rule each kind of name follows.
RULES: dict[str, NameRule] = {
    "pod": DNS1123_LABEL,
    "node": DNS1123_LABEL,
    "container": DNS1123_LABEL,
    "external host": DNS1123_LABEL,
    "service": DNS1035_LABEL,
    "namespace": DNS1123_LABEL,          # ValidateNamespaceName: a DNS-1123 label
    "service port": DNS1123_LABEL,       # validateServicePort: ValidateDNS1123Label(sp.Name)
}


def _reads_as_ipv4(name: str) -> str | None:
    """The address `inet_aton()` reads `name` as (decimal, octal or hex forms), if any. A
    label has no dots, so only a lone number can be one: digits, or 0x and hex digits."""
    if not (name[:1].isdigit() and (name.isdigit() or name.startswith("0x"))):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(name))
    except (OSError, ValueError):
        return None


def _quick(rule: NameRule) -> Callable[[str], object]:
    """The rule's pattern as one regular expression that also bounds the length and refuses a
    leading digit (so that inet_aton cannot read the name): the common case at C speed."""
    body = rule.pattern.replace("*", f"{{0,{MAX_LABEL - 2}}}", 1)
    assert body != rule.pattern and body.endswith(")?")
    return re.compile(f"(?![0-9]){body}").fullmatch


_QUICK = {kind: _quick(rule) for kind, rule in RULES.items()}


def quick_match(kind: str) -> Callable[[str], object]:
    """A test of a string that is true only for a name `check_name(kind, name)` accepts (a
    false answer means: ask check_name, which says why, or accepts a name with a leading
    digit). For callers that check half a million pod names."""
    return _QUICK[kind]


def check_name(kind: str, name: object) -> str:
    """`name` if it is a valid name for an object of `kind` (see RULES); otherwise an
    InvalidNameError naming the rule and the name."""
    if type(name) is str and _QUICK[kind](name):
        return name
    rule = RULES[kind]
    if not isinstance(name, str):
        raise InvalidNameError(f"{kind} name {name!r} must be a string, not {type(name).__name__}: "
                               f"a {rule.rule} such as {rule.example!r}")
    if len(name) > MAX_LABEL:
        raise InvalidNameError(f"{kind} name {name!r} is {len(name)} characters long; a {rule.rule} has at most "
                               f"{MAX_LABEL}")
    if not rule.matches(name):
        raise InvalidNameError(f"{kind} name {name!r} is not a {rule.rule}: use {rule.words} "
                               f"(e.g. {rule.example!r}; regex {rule.pattern})")
    address = _reads_as_ipv4(name)
    if address is not None:
        raise InvalidNameError(f"{kind} name {name!r} reads as the IPv4 address {address} (inet_aton); "
                               f"use a name with a letter in it, e.g. {kind.split()[0]}-{name}")
    return name
