"""The matches (`-m NAME`) netsim models, each as its xt_NAME.c extension tests a packet.

One class per extension, with the options its libxt_NAME.c accepts and the text iptables-save
prints for it:

- `-m tcp`, `-m udp` (net/netfilter/xt_tcpudp.c): ports, port ranges, TCP flags, --syn;
- `-m icmp` (net/ipv4/netfilter/ip_tables.c icmp_match): --icmp-type by number or name;
- `-m mark` (xt_mark.c): (skb->mark & mask) == value;
- `-m addrtype` (xt_addrtype.c): --src-type/--dst-type LOCAL only;
- `-m conntrack --ctstate` and `-m state --state` (xt_conntrack.c, xt_state.c);
- `-m comment` (xt_comment.c): matches everything, carries the comment;
- `-m nfacct --nfacct-name NAME` (xt_nfacct.c): matches everything and adds the packet to the
  named accounting object (nfnetlink_acct), which must exist before the rule is added;
- `-m statistic --mode random` (xt_statistic.c), with a deterministic draw in place of
  get_random_u32();
- `-m multiport` (xt_multiport.c, revision 1): --sports/--dports/--ports, up to 15 ports
  with a range counting twice, under -p tcp or udp.

Non-first fragments match no port or ICMP test (the kernel's `par->fragoff != 0` check).
`MATCHES` is the table the rule grammar loads extensions from.
"""

from __future__ import annotations

import zlib
from typing import Callable, Sequence

from ..conntrack import tuple_of
from ..packet import ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP, UDP
from .xtables import (MASK32, Match, PacketContext, RuleHeader, error, parse_int, parse_port_range,
                      parse_value_mask, port_range_text, save_string)

# --icmp-type names iptables knows -> (type, lowest code, highest code)
ICMP_TYPE_NAMES = {
    "any": (0xFF, 0, 0xFF), "echo-reply": (0, 0, 0xFF), "pong": (0, 0, 0xFF),
    "destination-unreachable": (3, 0, 0xFF), "network-unreachable": (3, 0, 0),
    "host-unreachable": (3, 1, 1), "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-quench": (4, 0, 0xFF), "redirect": (5, 0, 0xFF),
    "echo-request": (8, 0, 0xFF), "ping": (8, 0, 0xFF), "time-exceeded": (11, 0, 0xFF),
    "ttl-zero-during-transit": (11, 0, 0), "parameter-problem": (12, 0, 0xFF),
    "timestamp-request": (13, 0, 0xFF), "timestamp-reply": (14, 0, 0xFF),
}
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
TCP_FLAG_NAMES = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
                  ("URG", 0x20))
_TCP_LETTER_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


class PortMatch(Match):
    """-m tcp / -m udp: ports (and TCP flags)."""

    def __init__(self, rule: RuleHeader, name: str):
        super().__init__(rule)
        self.name = name
        self.options = {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1}
        if name == "tcp":
            self.options.update({"--tcp-flags": 2, "--syn": 0})
        self.sport: tuple[int, int] | None = None
        self.dport: tuple[int, int] | None = None
        self.sport_inv = self.dport_inv = self.flags_inv = False
        self.flags: tuple[int, int] | None = None

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if option in ("--sport", "--source-port"):
            self.sport, self.sport_inv = parse_port_range(args[0], option), invert
        elif option in ("--dport", "--destination-port"):
            self.dport, self.dport_inv = parse_port_range(args[0], option), invert
        elif option == "--syn":
            self.flags, self.flags_inv = (0x17, 0x02), invert
        else:
            self.flags = (self._flag_bits(args[0]), self._flag_bits(args[1]))
            self.flags_inv = invert

    @staticmethod
    def _flag_bits(text: str) -> int:
        names = dict(TCP_FLAG_NAMES, ALL=0x3F, NONE=0)
        bits = 0
        for name in text.split(","):
            if name not in names:
                raise error(f"--tcp-flags: unknown flag {name!r}; known: {', '.join(names)}")
            bits |= names[name]
        return bits

    @staticmethod
    def _flag_text(bits: int) -> str:
        if not bits:
            return "NONE"
        return ",".join(name for name, bit in TCP_FLAG_NAMES if bits & bit)

    def save(self) -> str:
        text = f"-m {self.name}"
        if self.sport:
            text += f"{' !' if self.sport_inv else ''} --sport {port_range_text(self.sport)}"
        if self.dport:
            text += f"{' !' if self.dport_inv else ''} --dport {port_range_text(self.dport)}"
        if self.flags:
            text += (f"{' !' if self.flags_inv else ''} --tcp-flags {self._flag_text(self.flags[0])} "
                     f"{self._flag_text(self.flags[1])}")
        return text

    def matches(self, ctx: PacketContext) -> bool:
        payload = ctx.packet.payload
        if not isinstance(payload, (TCP, UDP)) or ctx.packet.frag:
            return False
        if self.sport and (self.sport[0] <= payload.sport <= self.sport[1]) == self.sport_inv:
            return False
        if self.dport and (self.dport[0] <= payload.dport <= self.dport[1]) == self.dport_inv:
            return False
        if self.flags and isinstance(payload, TCP):
            bits = sum(_TCP_LETTER_BITS.get(letter, 0) for letter in payload.flags)
            if ((bits & self.flags[0]) == self.flags[1]) == self.flags_inv:
                return False
        return True


class IcmpMatch(Match):
    name = "icmp"
    options = {"--icmp-type": 1}

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.type: tuple[int, int, int] | None = None
        self.invert = False

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        text = args[0]
        if text in ICMP_TYPE_NAMES:
            self.type = ICMP_TYPE_NAMES[text]
        else:
            kind, _, code = text.partition("/")
            number = parse_int(kind, option)
            if code:
                self.type = (number, parse_int(code, option), parse_int(code, option))
            else:
                self.type = (number, 0, 0xFF)
        self.invert = invert

    def finish(self) -> None:
        if self.type is None:
            raise error("-m icmp needs --icmp-type")

    def save(self) -> str:
        assert self.type is not None
        kind, low, high = self.type
        value = str(kind) if (low, high) == (0, 0xFF) else f"{kind}/{low}" if low == high else f"{kind}/{low}-{high}"
        if kind == 0xFF:
            value = "any"
        return f"-m icmp{' !' if self.invert else ''} --icmp-type {value}"

    def matches(self, ctx: PacketContext) -> bool:
        payload = ctx.packet.payload
        assert self.type is not None
        if not isinstance(payload, ICMP) or ctx.packet.frag:
            return False
        kind, low, high = self.type
        hit = kind == 0xFF or (payload.type == kind and low <= payload.code <= high)
        return hit != self.invert


class MarkMatch(Match):
    name = "mark"
    options = {"--mark": 1}

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.value: int | None = None
        self.mask = MASK32
        self.invert = False

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        value, mask = parse_value_mask(args[0], option)
        self.value, self.mask, self.invert = value, MASK32 if mask is None else mask, invert

    def finish(self) -> None:
        if self.value is None:
            raise error("-m mark needs --mark value[/mask]")

    def save(self) -> str:
        mask = "" if self.mask == MASK32 else f"/{self.mask:#x}"
        return f"-m mark{' !' if self.invert else ''} --mark {self.value:#x}{mask}"

    def matches(self, ctx: PacketContext) -> bool:
        return ((ctx.skb.mark & self.mask) == self.value) != self.invert


class AddrtypeMatch(Match):
    """-m addrtype: netsim answers only LOCAL, through netns.is_local_address()."""

    name = "addrtype"
    options = {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0}

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.src: bool | None = None      # None: not tested; else the inversion flag
        self.dst: bool | None = None

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if option.startswith("--limit-iface"):
            raise error(f"-m addrtype {option} is not modelled by netsim; supported: "
                         f"[!] --src-type LOCAL, [!] --dst-type LOCAL")
        if args[0] != "LOCAL":
            raise error(f"-m addrtype {option} {args[0]}: netsim models only the LOCAL address "
                         f"type")
        if option == "--src-type":
            self.src = invert
        else:
            self.dst = invert

    def finish(self) -> None:
        if self.src is None and self.dst is None:
            raise error("-m addrtype needs --src-type or --dst-type")

    def save(self) -> str:
        text = "-m addrtype"
        if self.src is not None:
            text += f"{' !' if self.src else ''} --src-type LOCAL"
        if self.dst is not None:
            text += f"{' !' if self.dst else ''} --dst-type LOCAL"
        return text

    def matches(self, ctx: PacketContext) -> bool:
        local = ctx.netns.is_local_address
        if self.src is not None and local(ctx.packet.src) == self.src:
            return False
        if self.dst is not None and local(ctx.packet.dst) == self.dst:
            return False
        return True


class ConntrackMatch(Match):
    """-m conntrack --ctstate (and the older -m state --state)."""

    def __init__(self, rule: RuleHeader, name: str):
        super().__init__(rule)
        self.name = name
        self.option = "--ctstate" if name == "conntrack" else "--state"
        self.options = {self.option: 1}
        self.states: set[str] = set()
        self.invert = False

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        for state in args[0].split(","):
            if state not in CT_STATES or (self.name == "state" and state in ("SNAT", "DNAT")):
                raise error(f"{option}: unknown state {state!r}; known: {','.join(CT_STATES)}")
            self.states.add(state)
        self.invert = invert

    def finish(self) -> None:
        if not self.states:
            raise error(f"-m {self.name} needs {self.option}; netsim models no other "
                         f"{self.name} option")

    def save(self) -> str:
        states = ",".join(s for s in CT_STATES if s in self.states)
        return f"-m {self.name}{' !' if self.invert else ''} {self.option} {states}"

    def matches(self, ctx: PacketContext) -> bool:
        """The packet's ctstate (INVALID before conntrack) or, for an entry with NAT, SNAT or
        DNAT, is among the states asked for."""
        skb = ctx.skb
        states = self.states
        hit = (skb.ct_state or "INVALID") in states
        ct = skb.ct
        if not hit and ct is not None:
            hit = (ct.snat and "SNAT" in states) or (ct.dnat and "DNAT" in states)
        return hit != self.invert


class CommentMatch(Match):
    name = "comment"
    options = {"--comment": 1}

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.comment: str | None = None

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if invert:
            raise error("--comment cannot be negated")
        # xt_comment keeps XT_MAX_COMMENT_LEN (256) bytes with the closing NUL; iptables
        # (xtopt_parse_string) cuts a longer comment to 255 bytes without a word, as iptables
        # 1.8.9 measured does (a multi-byte character cut in two is dropped here)
        text = args[0]
        raw = text.encode()
        self.comment = raw[:255].decode(errors="ignore") if len(raw) > 255 else text

    def finish(self) -> None:
        if self.comment is None:
            raise error("-m comment needs --comment")

    def save(self) -> str:
        return f"-m comment --comment {save_string(self.comment or '')}"

    def matches(self, ctx: PacketContext) -> bool:
        return True


class NfacctMatch(Match):
    """-m nfacct --nfacct-name NAME: nfacct_mt() counts the packet in the object and always
    matches. netsim keeps no counts. iptables-save prints the name after two blanks
    (libxt_nfacct's " %snfacct-name " and then xtables_save_string's own leading blank; measured
    with iptables 1.8.9)."""

    name = "nfacct"
    options = {"--nfacct-name": 1}
    NAME_MAX = 31                  # NFACCT_NAME_MAX (32) with its NUL

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.object: str | None = None

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if invert:
            raise error("--nfacct-name cannot be negated")
        name = args[0]
        if not name or len(name) > self.NAME_MAX or not all(c.isalnum() or c in "_-" for c in name):
            raise error(f"--nfacct-name {name!r}: 1 to {self.NAME_MAX} letters, digits, '_' or '-'")
        self.object = name

    def finish(self) -> None:
        if self.object is None:
            raise error("-m nfacct needs --nfacct-name")

    def save(self) -> str:
        return f"-m nfacct --nfacct-name  {self.object}"

    def matches(self, ctx: PacketContext) -> bool:
        return True


class StatisticMatch(Match):
    """-m statistic --mode random. The kernel matches when (get_random_u32() & 0x7fffffff) is
    below round(p * 2^31); netsim replaces the random number by crc32 of the namespace name, the
    rule's chain and position and the packet's tuple, so the same connection always takes the
    same branch and different rules draw independently."""

    name = "statistic"
    options = {"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1}

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.mode: str | None = None
        self.probability: int | None = None
        self.invert = False

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if option == "--mode":
            if args[0] != "random":
                raise error(f"-m statistic --mode {args[0]}: netsim models only --mode random")
            self.mode = "random"
        elif option == "--probability":
            try:
                value = float(args[0])
            except ValueError:
                raise error(f"--probability {args[0]!r} is not a number") from None
            if not 0.0 <= value <= 1.0:
                raise error(f"--probability {args[0]!r} must be between 0 and 1")
            self.probability = int(value * 0x80000000 + 0.5)   # lround(0x80000000 * p)
            self.invert = invert
        else:
            raise error(f"-m statistic {option} (nth mode) is not modelled by netsim; supported: "
                         f"--mode random --probability P")

    def finish(self) -> None:
        if self.mode != "random" or self.probability is None:
            raise error("-m statistic needs --mode random --probability P")

    def save(self) -> str:
        assert self.probability is not None
        return (f"-m statistic --mode random{' !' if self.invert else ''} --probability "
                f"{self.probability / 0x80000000:.11f}")

    def draw(self, ctx: PacketContext) -> int:
        tup = tuple_of(ctx.packet)
        where = f"{self.rule.table}/{self.rule.chain}/{self.rule.position}"
        key = f"{ctx.netns.name} {where} {tup}" if tup else f"{ctx.netns.name} {where} {ctx.packet.src} {ctx.packet.dst}"
        return zlib.crc32(key.encode()) & 0x7FFFFFFF

    def matches(self, ctx: PacketContext) -> bool:
        assert self.probability is not None
        return (self.draw(ctx) < self.probability) != self.invert


class MultiportMatch(Match):
    """-m multiport (xt_multiport.c, revision 1 as libxt_multiport.c writes it): one list of up
    to XT_MULTI_PORTS (15) ports and `first:last` ranges (a range takes two slots), tested
    against the source port, the destination port, or either (--ports)."""

    name = "multiport"
    options = {"--sports": 1, "--source-ports": 1, "--dports": 1, "--destination-ports": 1, "--ports": 1}
    MAX_PORTS = 15                  # XT_MULTI_PORTS (include/uapi/linux/netfilter/xt_multiport.h)

    def __init__(self, rule: RuleHeader):
        super().__init__(rule)
        self.flag: str | None = None          # "--sports", "--dports" or "--ports"
        self.ports: tuple[tuple[int, int], ...] = ()
        self.invert = False

    def parse(self, option: str, args: Sequence[str], invert: bool) -> None:
        if self.flag is not None:
            raise error("-m multiport takes one of --sports, --dports, --ports, once")
        self.flag = {"--source-ports": "--sports", "--destination-ports": "--dports"}.get(option, option)
        ranges = [parse_port_range(item, option) for item in args[0].split(",")]
        if sum(1 if low == high else 2 for low, high in ranges) > self.MAX_PORTS:
            raise error(f"{option} {args[0]}: too many ports specified (at most {self.MAX_PORTS}, "
                        f"a range counting as two)")
        self.ports, self.invert = tuple(ranges), invert

    def finish(self) -> None:
        # libxt_multiport.c check_proto(): the rule's protocol must carry ports
        if self.rule.proto not in (IPPROTO_TCP, IPPROTO_UDP) or self.rule.proto_inv:
            raise error("multiport needs `-p tcp' or `-p udp' (netsim models no other protocol with ports)")
        if self.flag is None:
            raise error("-m multiport needs --sports, --dports or --ports")

    def save(self) -> str:
        ports = ",".join(port_range_text(r) for r in self.ports)
        return f"-m multiport{' !' if self.invert else ''} {self.flag} {ports}"

    def matches(self, ctx: PacketContext) -> bool:
        """ports_match_v1(): a hit on any entry gives !invert; non-first fragments never match."""
        payload = ctx.packet.payload
        if not isinstance(payload, (TCP, UDP)) or ctx.packet.frag:
            return False
        sport, dport = payload.sport, payload.dport
        for low, high in self.ports:
            if self.flag in ("--sports", "--ports") and low <= sport <= high:
                return not self.invert
            if self.flag in ("--dports", "--ports") and low <= dport <= high:
                return not self.invert
        return self.invert


MATCHES: dict[str, Callable[[RuleHeader], Match]] = {
    "tcp": lambda rule: PortMatch(rule, "tcp"),
    "udp": lambda rule: PortMatch(rule, "udp"),
    "icmp": IcmpMatch,
    "mark": MarkMatch,
    "addrtype": AddrtypeMatch,
    "conntrack": lambda rule: ConntrackMatch(rule, "conntrack"),
    "state": lambda rule: ConntrackMatch(rule, "state"),
    "comment": CommentMatch,
    "nfacct": NfacctMatch,
    "statistic": StatisticMatch,
    "multiport": MultiportMatch,
}
UNSUPPORTED_MATCHES = {
    "physdev": "-m physdev is not modelled by netsim (bridge port matching needs br_netfilter's "
               "physical-device information, which the model does not carry)",
}
