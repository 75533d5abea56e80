"""The standard verdicts and the MARK target, as ipt_do_table and xt_mark.c apply them.

A standard target (`struct xt_standard_target`) is ACCEPT, DROP, RETURN, or a jump (`-j CHAIN`)
or goto (`-g CHAIN`) to a user chain; ipt_do_table (net/ipv4/netfilter/ip_tables.c) acts on it
itself. MARK (net/netfilter/xt_mark.c mark_tg) rewrites skb->mark and lets the packet go on to
the next rule; libxt_MARK.c turns --set-mark, --or-mark, --and-mark and --xor-mark into the
(value, mask) pair the kernel keeps, which is why iptables-save prints every one of them as
--set-xmark. REJECT lives in reject.py, DNAT, SNAT and MASQUERADE in nat.py.
"""

from __future__ import annotations

from typing import Sequence

from .xtables import MASK32, RuleHeader, Target, error, parse_value_mask

STANDARD = ("ACCEPT", "DROP", "RETURN")
VERDICTS = ("ACCEPT", "DROP", "REJECT")


class StandardTarget(Target):
    """ACCEPT, DROP, RETURN, or a jump (-j) / goto (-g) to a user chain."""

    def __init__(self, rule: RuleHeader, name: str, goto: bool = False):
        super().__init__(rule)
        self.name = name
        self.goto = goto
        # the user chain a -j calls (None for ACCEPT, DROP, RETURN and a goto): ipt_do_table
        # skips such a rule while that chain is empty, as the call would come straight back
        self.jump = None if goto or name in STANDARD else name

    def save(self) -> str:
        return f"{'-g' if self.goto else '-j'} {self.name}"


class MarkTarget(Target):
    """MARK: the kernel keeps (value, mask) and does mark = (mark & ~mask) ^ value."""

    name = "MARK"
    options = {"--set-mark": 1, "--set-xmark": 1, "--or-mark": 1, "--and-mark": 1, "--xor-mark": 1}
    terminal = False

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.value: int | None = None
        self.mask = MASK32

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if self.value is not None:
            raise error("-j MARK takes one of --set-mark, --set-xmark, --or-mark, --and-mark, "
                         "--xor-mark")
        value, mask = parse_value_mask(args[0], option)
        if option == "--set-xmark":
            self.value, self.mask = value, MASK32 if mask is None else mask
        elif option == "--set-mark":
            self.value, self.mask = value, (MASK32 if mask is None else mask | value)
        elif mask is not None:
            raise error(f"{option} takes a value without a mask")
        elif option == "--or-mark":
            self.value, self.mask = value, value
        elif option == "--and-mark":
            self.value, self.mask = 0, ~value & MASK32
        else:
            self.value, self.mask = value, 0

    def finish(self) -> None:
        if self.value is None:
            raise error("-j MARK needs --set-mark, --set-xmark, --or-mark, --and-mark or --xor-mark")

    def save(self) -> str:
        return f"-j MARK --set-xmark {self.value:#x}/{self.mask:#x}"

    def apply(self, mark: int) -> int:
        assert self.value is not None
        return (mark & ~self.mask & MASK32) ^ self.value
