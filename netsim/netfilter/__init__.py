"""iptables as the kernel runs it: tables, chains, rules, NAT, REJECT, and the netfilter hooks
of IPv4.

Rules are written and printed in iptables' own syntax; a rule is parsed into the matches and
the target the kernel would hold, and printed back in iptables-save's canonical form (iptables
1.8.9, nf_tables backend; tests/test_iptables_real.py compares the two on a real kernel).
`Netfilter.hook()` runs one hook the way nf_hook_slow runs its callbacks, by priority
(include/uapi/linux/netfilter_ipv4.h):

    PREROUTING   raw (-300), conntrack (-200), mangle (-150), nat DST (-100)
    OUTPUT       raw (-300), conntrack (-200), mangle (-150), nat DST (-100), filter (0)
    FORWARD      mangle (-150), filter (0)
    INPUT        mangle (-150), filter (0), nat SRC (100), conntrack confirm (INT_MAX)
    POSTROUTING  mangle (-150), nat SRC (100), conntrack confirm (INT_MAX)

The modules, one per piece of the kernel or of iptables:

- `hooks`: the table above, as data (`HOOK_ORDER`);
- `core`: `Netfilter`, a namespace's tables and the iptables commands, and `hook()`;
- `ip_tables`: tables, chains and ipt_do_table's traversal (net/ipv4/netfilter/ip_tables.c);
- `grammar`: the rule syntax (iptables' option parsing) and `Rule`, the parsed rule;
- `xtables`: the match/target extension interface and libxtables' value parsing;
- `matches`: -m tcp, udp, icmp, mark, addrtype, conntrack, state, comment, statistic (xt_*.c);
- `targets`: ACCEPT, DROP, RETURN, jumps, MARK;
- `nat`: DNAT, SNAT, MASQUERADE and the nat hooks (nf_nat_core.c, nf_nat_masquerade.c);
- `reject`: REJECT and what it sends (nf_reject_ipv4.c: nf_send_reset, nf_send_unreach);
- `save_restore`: iptables-save and iptables-restore.

The nat table is walked only for a connection's first packet; every other packet is rewritten
from the conntrack entry (netsim/conntrack.py). Every step leaves a `netsim.decision.Decision`
on the `HookResult`: a record (function, reason code, the rule or conntrack entry consulted, the
fields changed) that netsim.views.sentences tells as the sentence the book prints.
"""

from .core import HookResult, Netfilter
from .grammar import Rule, parse_rule
from .hooks import HOOK_ORDER, HOOKS
from .ip_tables import BUILTIN_CHAINS, TABLE_ORDER, Chain, Table
from .reject import REJECT_TYPES, nf_send_reset, nf_send_unreach, reject_reply
from .xtables import RuleError, save_string

__all__ = ["Netfilter", "HookResult", "Rule", "Chain", "Table", "parse_rule", "reject_reply",
           "save_string", "HOOKS", "TABLE_ORDER", "HOOK_ORDER", "BUILTIN_CHAINS", "REJECT_TYPES",
           "RuleError", "nf_send_reset", "nf_send_unreach"]
