"""What one comparison of a model trace with the kernel's found: each `Difference` (a field of
one hop, or of a rule walk, that disagrees) and the `Comparison` that collects them with the
counts of what was compared. compare.py fills them hop by hop, rules.py rule by rule.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..trace import Hop, Trace


def base_field(field_name: str) -> str:
    """A field's name without its inner/outer side (a known deviation is named once for both)."""
    return field_name.replace("inner ", "").replace("outer ", "").strip()


@dataclass(frozen=True)
class Difference:
    hop: int | None          # the model hop's index (None: not tied to one hop)
    where: str               # "node1/flannel.1 tx"
    field: str
    model: object
    kernel: object

    def __str__(self) -> str:
        at = f"hop {self.hop} {self.where}" if self.hop is not None else self.where
        return f"{at}: {self.field} model {self.model} kernel {self.kernel}"


@dataclass
class Comparison:
    title: str
    model: Trace
    kernel: Trace
    differences: list[Difference] = field(default_factory=list)
    known: list[Difference] = field(default_factory=list)   # in KNOWN_DEVIATIONS: reported, not failures
    compared: Counter = field(default_factory=Counter)      # field -> how many values were compared
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # every (model hop, kernel hop) lined up and compared field by field, each role's in path
    # order: which capture points were compared, as records (ARP frames are compared as a set)
    pairs: list[tuple[Hop, Hop]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def hops_compared(self) -> int:
        return self.compared["hop"]

    def summary(self) -> str:
        verdict = "match" if self.ok else f"{len(self.differences)} difference(s)"
        if self.known:
            verdict += f" ({len(self.known)} known deviation(s): {', '.join(sorted({base_field(d.field) for d in self.known}))})"
        return f"{self.title}: {self.hops_compared} hops, {sum(self.compared.values())} values compared, {verdict}"

    def __str__(self) -> str:
        lines = [self.summary(), *(f"  {d}" for d in self.differences),
                 *(f"  known deviation: {d}" for d in self.known), *(f"  note: {n}" for n in self.notes)]
        return "\n".join(lines)
