"""A lab namespace's netfilter state, loaded from the plan: the nfacct objects, iptables-restore
of the model's rules and `nft -f` of each batch of its nftables journal.

The order matters where two callbacks share a priority (the kernel runs the one registered
last first: nf_hook_entries_grow), so the iptables rules and the nftables batches go in in the
order the model registered them (`netfilter.core.iptables_first`). Every batch and every rule was
checked when the plan was made (commands.py) and is checked again here, just before it runs.
"""

from __future__ import annotations

import shlex
from typing import Callable

from . import commands as tok
from ._netns import in_netns
from .commands import LabError
from .plan import Plan
from .process import tool


def load(netns: str, name: str, plan: Plan, run: Callable, shown: list[str]) -> None:
    """Load model namespace `name`'s rules into lab namespace `netns` (`run` runs a command for
    the lab; each command is appended to `shown` as a reader would type it)."""
    nfacct = tool("nfacct") or "nfacct"
    for obj in plan.nfacct[name]:             # xt_nfacct refuses a rule whose object does not exist
        tok.nfacct_name(obj)
        shown.append(tok.shown(["ip", "netns", "exec", netns, "nfacct", "add", obj]))
        in_netns(netns, lambda: run([nfacct, "add", obj]))
    if plan.iptables_first[name]:
        _iptables(netns, plan.iptables[name], run, shown)
    _nft(netns, plan.nft[name], run, shown)
    if not plan.iptables_first[name]:
        _iptables(netns, plan.iptables[name], run, shown)


def _nft(netns: str, batches: list[tuple[str, bool]], run: Callable, shown: list[str]) -> None:
    """`nft -f -` (a probe: `nft -c -f -`) of each batch of the model's nftables journal, in
    order, so every handle is the model's."""
    nft = tool("nft") or "nft"
    for text, check in batches:
        tok.check_nft(text)
        flags = ["-c"] if check else []
        shown.append(f"ip netns exec {shlex.quote(netns)} nft {' '.join(flags + ['-f', '-'])} <<'EOF'\n{text}EOF")
        done = in_netns(netns, lambda: run([nft, *flags, "-f", "-"], text, check=False))
        if done.returncode != 0:
            raise LabError(f"nft -f in {netns} failed: {done.stderr.strip()}\n{text}")


def _iptables(netns: str, text: str, run: Callable, shown: list[str]) -> None:
    """iptables-restore of the model's rules."""
    if not text:
        return
    tok.check_restore(text)
    shown.append(f"ip netns exec {shlex.quote(netns)} iptables-restore <<'EOF'\n{text}EOF")
    restore = tool("iptables-restore") or "iptables-restore"
    done = in_netns(netns, lambda: run([restore], text, check=False))
    if done.returncode != 0:
        raise LabError(f"iptables-restore in {netns} failed: {done.stderr.strip()}\n{text}")
