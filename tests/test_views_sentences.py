"""The sentence writer (netsim/views/sentences.py): the one place decisions become sentences.

Every kind of decision the core makes (kernel function x reason code) is pinned here once, with
the exact sentence the book, the CLI and the stepper print; the other tests read the records'
fields. The core itself writes no sentence: no f-string in any Decision or Outcome it builds,
no import of the views, and every fact a sentence reads is one the core's call gives.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import netsim
from netsim.decision import (ArpReason, BridgeReason, CaptureReason, ConntrackReason, ConntrackRef, Decision,
                             DevReason, FdbRef, FieldChange, FlannelReason, IcmpReason, IpReason, MetallbReason,
                             NatReason,
                             NeighbourRef, NeighReason, NetfilterReason, NftRuleRef, Outcome, OutcomeReason, Reason, RouteReason,
                             RouteRef, RuleRef, SocketReason, Subsystem, TunReason, Verdict, VethReason, VxlanReason)
from netsim.packet import ICMP, IPPROTO_ICMP, IPPROTO_UDP, IPv4, UDP
from netsim.trace import Ended
from netsim.views import explanation, heading, outcome_text, sentence
from netsim.views.sentences import OUTCOMES, SENTENCES, ended_text
from tests.sources import nodes

NETSIM = Path(netsim.__file__).parent
CORE = sorted(p for p in NETSIM.rglob("*.py") if p.relative_to(NETSIM).parts[0] not in ("views", "lab", "cli.py"))
BUILDERS = ("Decision", "Outcome", "_decision", "_socket")     # the core's record builders and its two wrappers

CASES = [
    (Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.DOWN_TX, Verdict.DROP, dev="vethpod2"),
     "vethpod2 is down: the frame is not sent"),
    (Decision(Subsystem.DEV, "eth_type_trans", DevReason.OTHERHOST, Verdict.DROP, dst="ba:fb:53:a1:3a:91", dev="eth0",
              mac="06:9b:53:a7:bb:f8"),
     "destination MAC ba:fb:53:a1:3a:91 is not eth0's (06:9b:53:a7:bb:f8): not for this host (PACKET_OTHERHOST)"),
    (Decision(Subsystem.BRIDGE, "br_fdb_update", BridgeReason.LEARNED, Verdict.LEARN,
              consulted=(FdbRef("cni0", "82:e5:dd:73:ad:88", "veth9bb860b4"),)),
     "cni0: learned 82:e5:dd:73:ad:88 on port veth9bb860b4"),
    (Decision(Subsystem.BRIDGE, "br_nf_pre_routing_finish_bridge", BridgeReason.RESOLVE_DNAT_TARGET, Verdict.RESOLVE,
              consulted=(RouteRef("main", "10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1", "cni0", "",
                                  "10.244.0.1"),),
               target="10.244.0.3", bridge="cni0"),
     "br_netfilter: DNAT target 10.244.0.3 is on cni0 too and has no neighbour entry: cni0 resolves it, then "
     "bridges the packet"),
    (Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.BROADCAST, Verdict.FLOOD, bridge="cni0"),
     "cni0: broadcast, flooded to every port and passed up to cni0"),
    (Decision(Subsystem.BRIDGE, "br_pass_frame_up", BridgeReason.OWN_MAC, Verdict.UP,
              consulted=(FdbRef("cni0", "da:0d:8a:c2:5c:31"),), bridge="cni0", dst="da:0d:8a:c2:5c:31"),
     "cni0: destination da:0d:8a:c2:5c:31 is the bridge's own MAC: up to its IP stack"),
    (Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.UNKNOWN_UNICAST, Verdict.FLOOD,
              consulted=(FdbRef("cni0", "ba:fb:53:a1:3a:91"),), bridge="cni0", dst="ba:fb:53:a1:3a:91"),
     "cni0: ba:fb:53:a1:3a:91 is not in the FDB: flooded as unknown unicast"),
    (Decision(Subsystem.BRIDGE, "br_forward", BridgeReason.FDB, Verdict.FORWARD,
              consulted=(FdbRef("sw0", "8a:a1:fa:84:72:f3", "p-node1"),), bridge="sw0", dst="8a:a1:fa:84:72:f3",
              port="p-node1"),
     "sw0: FDB 8a:a1:fa:84:72:f3 -> port p-node1"),
    (Decision(Subsystem.BRIDGE, "is_skb_forwardable", BridgeReason.TOO_BIG, Verdict.DROP, bridge="cni0", size=1488,
              port="veth274a81a3", mtu=1450),
     "cni0: a 1488-byte packet does not fit port veth274a81a3's MTU 1450: dropped (is_skb_forwardable)"),
    (Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.HAIRPIN, Verdict.HAIRPIN, bridge="cni0", port="veth9bb860b4"),
     "cni0: hairpin on veth9bb860b4: the flood goes back out of the ingress port"),
    (Decision(Subsystem.BRIDGE, "br_nf_pre_routing_finish_bridge_slow", BridgeReason.DNAT_RESOLVED, Verdict.BRIDGE,
              port="veth9bb860b4", src="82:e5:dd:73:ad:88"),
     "br_netfilter: the bridged DNAT packet's neighbour is resolved: it is bridged as received on veth9bb860b4, "
     "with its own source MAC 82:e5:dd:73:ad:88"),
    (Decision(Subsystem.BRIDGE, "br_dev_xmit", BridgeReason.HOST_BROADCAST, Verdict.FLOOD, bridge="cni0"),
     "cni0: broadcast from the host, flooded to every port"),
    (Decision(Subsystem.BRIDGE, "br_dev_xmit", BridgeReason.FDB, Verdict.FORWARD,
              consulted=(FdbRef("cni0", "82:e5:dd:73:ad:88", "veth9bb860b4"),), bridge="cni0",
              dst="82:e5:dd:73:ad:88", port="veth9bb860b4"),
     "cni0: FDB 82:e5:dd:73:ad:88 -> port veth9bb860b4"),
    (Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.LAZY_NODES, Verdict.FLOOD, bridge="sw0", missing=38,
              nodes=40),
     "sw0: 38 of 40 nodes are not built (lazy cluster) and are left out of the flood; their NICs would ignore it"),
    (Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.LAZY_PODS, Verdict.FLOOD, bridge="cni0", missing=2, pods=3,
              node="node1"),
     "cni0: 2 of the 3 pods on node1 are not built (lazy cluster) and are left out of the flood; each would ignore "
     "it"),
    (Decision(Subsystem.ARP, "arp_process", ArpReason.NOT_FOR_US, Verdict.IGNORE, target="10.244.0.1"),
     "ARP request for 10.244.0.1 is not for this host: ignored"),
    (Decision(Subsystem.ARP, "arp_process", ArpReason.REPLY, Verdict.REPLY,
              consulted=(NeighbourRef("cni0", "10.244.0.2", "82:e5:dd:73:ad:88", "STALE"),), target="10.244.0.1",
              mac="da:0d:8a:c2:5c:31", sender="10.244.0.2", sender_mac="82:e5:dd:73:ad:88", dev="cni0"),
     "ARP: 10.244.0.1 is an address of this host: replying is-at da:0d:8a:c2:5c:31; neighbour 10.244.0.2 lladdr "
     "82:e5:dd:73:ad:88 STALE on cni0"),
    (Decision(Subsystem.ARP, "arp_solicit", ArpReason.SOLICIT, Verdict.SOLICIT, target="10.244.0.1",
              sender="10.244.0.2", dev="eth0"),
     "ARP: who-has 10.244.0.1 tell 10.244.0.2 (no neighbour entry on eth0)"),
    (Decision(Subsystem.NEIGHBOUR, "neigh_update", NeighReason.REACHABLE, Verdict.REACHABLE,
              consulted=(NeighbourRef("eth0", "10.244.0.1", "da:0d:8a:c2:5c:31", "REACHABLE"),)),
     "ARP reply: neighbour 10.244.0.1 lladdr da:0d:8a:c2:5c:31 REACHABLE on eth0"),
    (Decision(Subsystem.NEIGHBOUR, "neigh_update", NeighReason.QUEUED_SENT, Verdict.SEND,
              consulted=(NeighbourRef("eth0", "10.244.0.1", "da:0d:8a:c2:5c:31", "REACHABLE"),)),
     "neighbour 10.244.0.1 resolved to da:0d:8a:c2:5c:31: the queued packet is sent"),
    (Decision(Subsystem.NEIGHBOUR, "neigh_invalidate", NeighReason.FAILED, Verdict.DROP,
              consulted=(NeighbourRef("right1", "10.1.0.99", "", "FAILED"),), probes=3),
     "neighbour 10.1.0.99 on right1 FAILED: no ARP reply after 3 requests"),
    (Decision(Subsystem.NEIGHBOUR, "neigh_resolve_output", NeighReason.RESOLVED, Verdict.RESOLVED,
              consulted=(NeighbourRef("flannel.1", "10.244.1.0", "a2:29:54:fe:a6:54", "PERMANENT"),),
              changes=(FieldChange("ethernet", "dst", "da:0d:8a:c2:5c:31", "a2:29:54:fe:a6:54"),
                       FieldChange("ethernet", "src", "82:e5:dd:73:ad:88", "9e:51:9f:4e:26:5b"))),
     "neighbour: 10.244.1.0 dev flannel.1 lladdr a2:29:54:fe:a6:54 PERMANENT"),
    (Decision(Subsystem.NEIGHBOUR, "__neigh_event_send", NeighReason.NEW_INCOMPLETE, Verdict.QUEUE,
              consulted=(NeighbourRef("eth0", "10.244.0.1", "", "INCOMPLETE"),)),
     "neighbour: no entry for 10.244.0.1 on eth0: INCOMPLETE, packet queued"),
    (Decision(Subsystem.NEIGHBOUR, "__neigh_event_send", NeighReason.INCOMPLETE, Verdict.QUEUE,
              consulted=(NeighbourRef("eth0", "10.244.0.1", "", "INCOMPLETE"),)),
     "neighbour: 10.244.0.1 on eth0 is INCOMPLETE: packet queued"),
    (Decision(Subsystem.ROUTE, "ip_route_input", RouteReason.FORWARD, Verdict.FORWARD,
              consulted=(RouteRef("main", "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink", "flannel.1",
                                  "10.244.1.0", "10.244.0.0"),)),
     "route: 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink"),
    (Decision(Subsystem.ROUTE, "fib_validate_source", RouteReason.MARTIAN, Verdict.DROP, src="10.0.0.1", dev="eth0",
              netns="h2"),
     "martian source 10.0.0.1 on eth0: the source is an address of h2 (accept_local=0)"),
    (Decision(Subsystem.ARP, "arp_process", ArpReason.MARTIAN_SENDER, Verdict.IGNORE, sender="127.0.0.1",
              dev="eth0"),
     "ARP request from 127.0.0.1 on eth0: a 127/8 sender is a martian here (route_localnet 0): no reply"),
    (Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.MARTIAN_DESTINATION, Verdict.DROP,
              dst="127.0.0.1", src="192.168.50.100", dev="eth0"),
     "martian destination 127.0.0.1 from 192.168.50.100 on eth0: 127/8 from outside, and route_localnet is 0"),
    (Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.MARTIAN, Verdict.DROP,
              dst="192.168.50.100", src="127.0.0.1", dev="eth0"),
     "martian source 127.0.0.1 (to 192.168.50.100) on eth0: 127/8 from outside, and route_localnet is 0"),
    (Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.LOOPBACK_SOURCE, Verdict.DROP,
              src="127.0.0.1", dst="192.168.50.100", dev="eth0", errno="EINVAL"),
     "127.0.0.1 -> 192.168.50.100: a 127/8 source may not leave by eth0 (route_localnet 0): Invalid argument"),
    (Decision(Subsystem.ROUTE, "ip_route_me_harder", RouteReason.LOOPBACK_SOURCE, Verdict.DROP,
              src="127.0.0.1", dst="10.244.0.5", dev="cni0", errno="EINVAL"),
     "after NAT, 127.0.0.1 -> 10.244.0.5: a 127/8 source may not leave by cni0 (route_localnet 0): "
     "Invalid argument"),
    (Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.NOT_FORWARDING, Verdict.DROP, dst="10.244.1.2",
              netns="node1"),
     "10.244.1.2 is not an address of node1 and net.ipv4.ip_forward is 0: the packet is not forwarded"),
    (Decision(Subsystem.ROUTE, "ip_error", RouteReason.NO_ROUTE, Verdict.DROP, dst="10.244.0.2"),
     "no route to 10.244.0.2: network unreachable"),
    (Decision(Subsystem.ROUTE, "ip_error", RouteReason.UNREACHABLE, Verdict.DROP,
              consulted=(RouteRef("main", "unreachable 10.11.0.0/16", "lo", "", "127.0.0.1", "unreachable"),)),
     "route unreachable 10.11.0.0/16: host unreachable"),
    (Decision(Subsystem.ROUTE, "ip_error", RouteReason.BLACKHOLE, Verdict.DROP,
              consulted=(RouteRef("main", "blackhole 10.10.0.0/16", "lo", "", "127.0.0.1", "blackhole"),)),
     "route blackhole 10.10.0.0/16: discarded silently"),
    (Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.NO_ROUTE, Verdict.DROP, dst="10.0.0.1", netns="h2"),
     "no route to 10.0.0.1 in h2: Network is unreachable"),
    (Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.OUTPUT, Verdict.OUTPUT,
              consulted=(RouteRef("main", "10.244.0.0/16 via 10.244.0.1 dev eth0", "eth0", "10.244.0.1", "10.244.0.2"),),
              dst="10.244.1.2"),
     "route: 10.244.1.2 via 10.244.0.1 dev eth0 src 10.244.0.2"),
    (Decision(Subsystem.ROUTE, "ip_route_me_harder", RouteReason.NO_ROUTE, Verdict.DROP, dst="10.99.0.1"),
     "no route to 10.99.0.1 after NAT"),
    (Decision(Subsystem.IP, "ip_forward", IpReason.TTL_EXCEEDED, Verdict.DROP, ttl=1),
     "TTL 1 would reach 0 when forwarding: time exceeded"),
    (Decision(Subsystem.IP, "ip_forward", IpReason.FRAG_NEEDED, Verdict.DROP, size=1488, dev="flannel.1", mtu=1450),
     "1488 bytes with DF set exceed flannel.1's MTU 1450: ICMP fragmentation needed (mtu 1450)"),
    (Decision(Subsystem.IP, "ip_forward", IpReason.FORWARDED, Verdict.FORWARD,
              changes=(FieldChange("ipv4", "ttl", 64, 63),)),
     "forwarded: TTL 64 -> 63"),
    (Decision(Subsystem.NAT, "nf_nat_icmp_reply_translation", IpReason.REDIRECT_ON_NAT, Verdict.DROP,
              src="10.244.0.3", dev="cni0"),
     "it leaves by cni0, the device it came in on, from 10.244.0.3 on cni0's subnet: ip_forward asks for an ICMP "
     "redirect, which nf_nat drops at OUTPUT (a NATed connection): IpOutDiscards +1, nothing sent"),
    (Decision(Subsystem.IP, "ip_do_fragment", IpReason.FRAGMENTED, Verdict.FRAGMENT,
              changes=(FieldChange("ipv4", "len", 2078, 1500),), size=2078, dev="eth0", mtu=1500, count=2),
     "2078 bytes exceed eth0's MTU 1500 and DF is clear: 2 fragments"),
    (Decision(Subsystem.IP, "ip_do_fragment", IpReason.REFRAGMENTED, Verdict.FRAGMENT,
              changes=(FieldChange("ipv4", "len", 2078, 1500),), frag_max=1500, count=2),
     "reassembled by conntrack, cut back to its largest fragment (1500 bytes): 2 fragments"),
    (Decision(Subsystem.IP, "ip_defrag", IpReason.HOLD, Verdict.HOLD, offset=0),
     "fragment at offset 0 held for reassembly"),
    (Decision(Subsystem.IP, "nf_defrag_ipv4", IpReason.HOLD, Verdict.HOLD, offset=0),
     "fragment at offset 0 held for conntrack's defragmentation (nf_defrag_ipv4)"),
    (Decision(Subsystem.IP, "ip_defrag", IpReason.REASSEMBLED, Verdict.REASSEMBLE, count=2, size=2078),
     "reassembly: 2 fragments make one packet of 2078 bytes"),
    (Decision(Subsystem.IP, "nf_defrag_ipv4", IpReason.REASSEMBLED, Verdict.REASSEMBLE, count=2, size=2078),
     "conntrack's defragmentation (nf_defrag_ipv4): 2 fragments make one packet of 2078 bytes"),
    (Decision(Subsystem.ICMP, "icmp_send", IcmpReason.ERROR, Verdict.SEND, type=3, code=0, src="203.0.113.1",
              dst="203.0.113.10"),
     "ICMP network unreachable from 203.0.113.1 to 203.0.113.10"),
    (Decision(Subsystem.ICMP, "icmp_send", IcmpReason.REJECTED, Verdict.SEND, type=3, code=3, src="10.244.0.1",
              dst="10.244.0.2"),
     "ICMP rejected from 10.244.0.1 to 10.244.0.2"),
    (Decision(Subsystem.NETFILTER, "nf_hook_slow", NetfilterReason.HOOK_VERDICT, Verdict.DROP, hook="INPUT"),
     "INPUT: DROP"),
    (Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.POLICY, Verdict.ACCEPT,
              consulted=(RuleRef("filter", "OUTPUT", "OUTPUT", 0, (), "ACCEPT", (), ("OUTPUT",)),)),
     "filter OUTPUT: no rule decided, policy ACCEPT"),
    (Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.MARK, Verdict.CONTINUE,
              consulted=(RuleRef("nat", "PREROUTING", "KUBE-MARK-MASQ", 1, (), "MARK",
                                 ("--set-xmark", "0x4000/0x4000"),
                                 ("PREROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXT-LOLE4ISW44XBNF3G",
                                  "KUBE-MARK-MASQ")),),
               changes=(FieldChange("skb", "mark", 0, 16384),)),
     "nat PREROUTING: KUBE-SERVICES -> KUBE-NODEPORTS -> KUBE-EXT-LOLE4ISW44XBNF3G -> KUBE-MARK-MASQ rule 1: MARK "
     "or 0x4000, mark 0x0 -> 0x4000"),
    (Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.REJECT, Verdict.REJECT,
              consulted=(RuleRef("filter", "INPUT", "INPUT", 1, ("-p tcp", "-m tcp --dport 22"), "REJECT",
                                 ("--reject-with", "tcp-reset"), ("INPUT",)),)),
     "filter INPUT: INPUT rule 1: REJECT --reject-with tcp-reset"),
    (Decision(Subsystem.NETFILTER, "ipt_do_table", NetfilterReason.RULE, Verdict.ACCEPT,
              consulted=(RuleRef("filter", "FORWARD", "FLANNEL-FWD", 1,
                                 ("-s 10.244.0.0/16", '-m comment --comment "flanneld forward"'), "ACCEPT", (),
                                 ("FORWARD", "FLANNEL-FWD"), "flanneld forward"),)),
     'filter FORWARD: FLANNEL-FWD rule 1 "flanneld forward": ACCEPT'),
    (Decision(Subsystem.NETFILTER, "ipv4_conntrack_defrag", NetfilterReason.FOLLOWS_FIRST, Verdict.ACCEPT,
              hook="PREROUTING", offset=1480, src="10.244.0.2", dst="10.244.1.2", rewritten=False),
     "netfilter PREROUTING: fragment at offset 1480 follows its first fragment: ACCEPT"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_destroy", ConntrackReason.DISCARD, Verdict.DISCARD,
              consulted=(ConntrackRef("tcp", "203.0.113.10:45198 -> 192.168.50.11:30081",
                                      "192.168.50.11:30081 -> 203.0.113.10:45198", "NEW", "original"),),
               hook_verdict="DROP"),
     "conntrack: packet dropped, unconfirmed tcp entry 203.0.113.10:45198 -> 192.168.50.11:30081 discarded"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.INVALID_TCP, Verdict.INVALID,
              consulted=(ConntrackRef("tcp", "203.0.113.10:80 -> 10.244.0.2:5555", "", "INVALID", "original"),),
              flags="SA"),
     "conntrack: tcp 203.0.113.10:80 -> 10.244.0.2:5555 [SA] belongs to no connection and cannot start one: "
     "INVALID, not tracked"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.NEW, Verdict.NEW,
              consulted=(ConntrackRef("icmp", "10.244.0.2 -> 10.244.1.2 id 20051",
                                      "10.244.1.2 -> 10.244.0.2 id 20051", "NEW", "original"),),
               tcp_state=""),
     "conntrack: new icmp entry 10.244.0.2 -> 10.244.1.2 id 20051"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TRACKED, Verdict.ESTABLISHED,
              consulted=(ConntrackRef("icmp", "10.244.0.2 -> 10.244.1.2 id 20051",
                                      "10.244.1.2 -> 10.244.0.2 id 20051", "ESTABLISHED", "reply"),)),
     "conntrack: reply of icmp 10.244.0.2 -> 10.244.1.2 id 20051"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TCP_INVALID, Verdict.INVALID,
              consulted=(ConntrackRef("tcp", "10.244.0.2:45178 -> 203.0.113.10:8080",
                                      "203.0.113.10:8080 -> 192.168.50.11:20269", "INVALID", "original"),),
               flags="A", old="SYN_SENT"),
     "conntrack: tcp 10.244.0.2:45178 -> 203.0.113.10:8080: [A] is invalid in state SYN_SENT: INVALID, the packet "
     "loses its conntrack entry"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TCP_STATE, Verdict.ESTABLISHED,
              consulted=(ConntrackRef("tcp", "10.244.0.2:49467 -> 10.96.0.101:80",
                                      "10.244.0.3:8080 -> 10.244.0.2:49467", "ESTABLISHED", "reply"),),
               old="SYN_SENT", new="SYN_RECV", assured=False),
     "conntrack: reply of tcp 10.244.0.2:49467 -> 10.96.0.101:80 (SYN_SENT -> SYN_RECV)"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_icmpv4_error", ConntrackReason.NOT_TRACKED, Verdict.INVALID,
              consulted=(ConntrackRef("udp", "10.244.0.2:47294 -> 10.244.1.2:9090", "", "INVALID", "original"),),
              src="10.244.0.1"),
     "conntrack: icmp error from 10.244.0.1 is about udp 10.244.0.2:47294 -> 10.244.1.2:9090, which is not tracked: "
     "INVALID"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_icmpv4_error", ConntrackReason.RELATED, Verdict.RELATED,
              consulted=(ConntrackRef("udp", "203.0.113.10:43204 -> 192.168.50.11:30080",
                                      "192.168.50.11:30080 -> 203.0.113.10:43204", "RELATED", "reply"),),
               src="192.168.50.11"),
     "conntrack: icmp error from 192.168.50.11 is RELATED to udp 203.0.113.10:43204 -> 192.168.50.11:30080 (reply "
     "direction)"),
    (Decision(Subsystem.CONNTRACK, "nf_ct_attach", ConntrackReason.RELATED, Verdict.RELATED,
              consulted=(ConntrackRef("tcp", "203.0.113.10:41000 -> 192.168.50.11:30080",
                                      "10.244.1.2:8080 -> 10.244.0.0:41000", "RELATED", "reply"),),
              src="192.168.50.11"),
     "conntrack: the icmp error from 192.168.50.11 carries the connection of the packet it quotes, RELATED to tcp "
     "203.0.113.10:41000 -> 192.168.50.11:30080 (reply direction; the entry is not in the table yet)"),
    (Decision(Subsystem.NAT, "nf_nat_icmp_reply_translation", NatReason.ICMP_ERROR, Verdict.REWRITE,
              consulted=(ConntrackRef("tcp", "10.244.0.2:45178 -> 203.0.113.10:8080",
                                      "203.0.113.10:8080 -> 192.168.50.11:20269", "RELATED", "reply"),),
              
              changes=(FieldChange("ipv4", "dst", "192.168.50.11", "10.244.0.2"),
                       FieldChange("quoted.ipv4", "src", "192.168.50.11", "10.244.0.2"),
                       FieldChange("quoted.tcp", "sport", 20269, 45178)),
               manip="DST", to="10.244.0.2", quoted="10.244.0.2:45178"),
     "conntrack: icmp error related to tcp 10.244.0.2:45178 -> 203.0.113.10:8080, un-SNAT destination to "
     "10.244.0.2, and the quoted packet's source to 10.244.0.2:45178"),
    (Decision(Subsystem.NAT, "nf_nat_packet", NatReason.REWRITE, Verdict.REWRITE,
              consulted=(ConntrackRef("tcp", "10.244.0.2:49467 -> 10.96.0.101:80",
                                      "10.244.0.3:8080 -> 10.244.0.2:49467", "ESTABLISHED", "reply"),),
              
              changes=(FieldChange("ipv4", "src", "10.244.0.3", "10.96.0.101"), FieldChange("tcp", "sport", 8080, 80)),
              manip="SRC", to="10.96.0.101:80"),
     "conntrack: reply of tcp 10.244.0.2:49467 -> 10.96.0.101:80, un-DNAT source to 10.96.0.101:80"),
    (Decision(Subsystem.NAT, "nf_nat_inet_fn", NatReason.BINDING, Verdict.DNAT,
              consulted=(RuleRef("nat", "PREROUTING", "KUBE-SEP-HK6B5ZGV5VT666WA", 2,
                                 ("-p tcp", '-m comment --comment "default/svc"', "-m tcp"), "DNAT",
                                 ("--to-destination", "10.244.0.3:8080"),
                                 ("PREROUTING", "KUBE-SERVICES", "KUBE-SVC-OCO5LXEQ3LIV3PEO",
                                  "KUBE-SEP-HK6B5ZGV5VT666WA"),
                                  "default/svc"),
                         
                         ConntrackRef("tcp", "10.244.0.2:49467 -> 10.96.0.101:80",
                                      "10.244.0.3:8080 -> 10.244.0.2:49467", "NEW", "original")),
              
              changes=(FieldChange("ipv4", "dst", "10.96.0.101", "10.244.0.3"), FieldChange("tcp", "dport", 80, 8080)),
              manip="DST", old="10.96.0.101:80", new="10.244.0.3:8080"),
     "nat PREROUTING: KUBE-SERVICES -> KUBE-SVC-OCO5LXEQ3LIV3PEO -> KUBE-SEP-HK6B5ZGV5VT666WA rule 2 \"default/svc\": "
     "DNAT, destination 10.96.0.101:80 -> 10.244.0.3:8080"),
    (Decision(Subsystem.NAT, "nf_nat_masquerade_ipv4", NatReason.BINDING, Verdict.MASQUERADE,
              consulted=(RuleRef("nat", "POSTROUTING", "KUBE-POSTROUTING", 3,
                                 ('-m comment --comment "kubernetes service traffic requiring SNAT"',), "MASQUERADE",
                                 ("--random-fully",), ("POSTROUTING", "KUBE-POSTROUTING"),
                                 "kubernetes service traffic requiring SNAT"),
                         
                         ConntrackRef("tcp", "203.0.113.10:45292 -> 192.168.50.11:30080",
                                      "10.244.1.2:8080 -> 10.244.0.0:45662", "NEW", "original")),
              
              changes=(FieldChange("ipv4", "src", "203.0.113.10", "10.244.0.0"),
                       FieldChange("tcp", "sport", 45292, 45662)),
               manip="SRC", old="203.0.113.10:45292", new="10.244.0.0:45662"),
     "nat POSTROUTING: KUBE-POSTROUTING rule 3 \"kubernetes service traffic requiring SNAT\": MASQUERADE "
     "--random-fully, source 203.0.113.10:45292 -> 10.244.0.0:45662"),
    (Decision(Subsystem.VXLAN, "vxlan_xmit", VxlanReason.NO_FDB, Verdict.DROP,
              consulted=(FdbRef("flannel.1", "a2:29:54:fe:a6:54"),)),
     "flannel.1: no FDB entry for a2:29:54:fe:a6:54 and no default destination: the kernel drops the frame "
     "(learning is off)"),
    (Decision(Subsystem.VXLAN, "vxlan_xmit", VxlanReason.ENCAPSULATED, Verdict.ENCAPSULATE,
              consulted=(FdbRef("flannel.1", "a2:29:54:fe:a6:54", "", "192.168.50.12"),),
              changes=(FieldChange("outer-ipv4", "src", "", "192.168.50.11"),
                       FieldChange("outer-ipv4", "dst", "", "192.168.50.12"),
                       FieldChange("outer-ipv4", "ttl", "", 64), FieldChange("outer-udp", "sport", "", 37385),
                       FieldChange("outer-udp", "dport", "", 8472), FieldChange("vxlan", "vni", "", 1)),
               sport=37385, dport=8472, vni=1, ttl=64),
     "flannel.1: FDB a2:29:54:fe:a6:54 dst 192.168.50.12: encapsulated in UDP 37385 -> 8472, VNI 1, outer TTL 64, "
     "DF clear"),
    (Decision(Subsystem.VXLAN, "vxlan_rcv", VxlanReason.DECAPSULATED, Verdict.DECAPSULATE, port=8472, vni=1,
              dev="flannel.1"),
     "UDP socket on port 8472: VXLAN VNI 1, decapsulated into flannel.1"),
    (Decision(Subsystem.VETH, "veth_xmit", VethReason.NO_PEER, Verdict.DROP, dev="right1"),
     "the peer of right1 is missing or down"),
    (Decision(Subsystem.VETH, "is_skb_forwardable", VethReason.TOO_BIG, Verdict.DROP, peer="node1/veth9bb860b4",
              size=1488, mtu=1450),
     "the peer node1/veth9bb860b4 drops it: a 1488-byte packet exceeds its MTU 1450 (is_skb_forwardable; counted in "
     "its rx_dropped, no ICMP)"),
    (Decision(Subsystem.SOCKET, "connect", SocketReason.CONNECT, Verdict.SEND, proto="icmp", netns="pod-a",
              packet=IPv4("10.244.0.2", "10.244.1.2", IPPROTO_ICMP, ICMP(8, 0, 20051 << 16 | 1)), source="10.244.0.2",
              dst="10.244.1.2"),
     "icmp socket in pod-a: 10.244.0.2 > 10.244.1.2 ICMP echo request id 20051 seq 1 (source 10.244.0.2 from `ip "
     "route get 10.244.1.2`)"),
    (Decision(Subsystem.SOCKET, "icmp_echo", SocketReason.ECHO_ANSWER, Verdict.ANSWER, dst="10.244.1.2"),
     "ICMP echo request for 10.244.1.2: the kernel answers with an echo reply"),
    (Decision(Subsystem.SOCKET, "icmp_unreach", SocketReason.ICMP_REPORTED, Verdict.REPORT, type=3, code=4,
              src="10.244.0.1"),
     "ICMP destination unreachable code 4 from 10.244.0.1: reported to the sending socket"),
    (Decision(Subsystem.SOCKET, "icmp_rcv", SocketReason.ICMP_NO_SOCKET, Verdict.DROP, icmp=ICMP(3, 0)),
     "ICMP destination unreachable code 0: no socket waits for it"),
    (Decision(Subsystem.SOCKET, "tcp_v4_send_reset", SocketReason.NO_LISTENER, Verdict.RESET, port=9090),
     "TCP port 9090: nothing listens; the kernel answers RST"),
    (Decision(Subsystem.SOCKET, "udp_rcv", SocketReason.UDP_ANSWER, Verdict.ANSWER, port=9090, size=3),
     "UDP socket on port 9090 receives 3 bytes and answers"),
    (Decision(Subsystem.SOCKET, "udp_rcv", SocketReason.UDP_NO_SOCKET, Verdict.UNREACHABLE, port=9),
     "UDP port 9: no socket; the kernel answers ICMP port unreachable"),
    (Decision(Subsystem.SOCKET, "sendmsg", SocketReason.ANSWER_SENT, Verdict.SEND, netns="pod-c",
              packet=IPv4("10.244.1.2", "10.244.0.2", IPPROTO_ICMP, ICMP(0, 0, 20051 << 16 | 1))),
     "pod-c answers: 10.244.1.2 > 10.244.0.2 ICMP echo reply id 20051 seq 1"),
    (Decision(Subsystem.SOCKET, "tcp_conn_request", SocketReason.SYN_ACCEPTED, Verdict.ACCEPT, port=8080),
     "TCP listener on port 8080: SYN accepted, answering SYN-ACK"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_established", SocketReason.DATA_ANSWERED, Verdict.ANSWER, port=8080, size=5),
     "TCP connection on port 8080 receives 5 bytes and answers"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_state_process", SocketReason.HANDSHAKE_DONE, Verdict.ESTABLISHED, port=8080),
     "TCP connection on port 8080: ACK completes the handshake"),
    (Decision(Subsystem.SOCKET, "ping_rcv", SocketReason.ECHO_REPLY, Verdict.DELIVER),
     "echo reply delivered to the ping socket"),
    (Decision(Subsystem.SOCKET, "udp_rcv", SocketReason.UDP_REPLY, Verdict.DELIVER),
     "UDP reply delivered to the client socket"),
    (Decision(Subsystem.SOCKET, "tcp_reset", SocketReason.REFUSED, Verdict.REFUSED),
     "RST: connect() fails with Connection refused"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_synsent_state_process", SocketReason.SYNACK, Verdict.CONNECTED),
     "SYN-ACK delivered to the connecting socket; the trace stops at the reply"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_synsent_state_process", SocketReason.SYNACK_SENDS_DATA, Verdict.CONNECTED),
     "SYN-ACK: the connection is established; the client sends ACK and its data"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_established", SocketReason.READ, Verdict.READ, data=b'RSP'),
     "the client socket reads 3 bytes: b'RSP'"),
    (Decision(Subsystem.FLANNEL, "tun_to_udp", FlannelReason.ENCAPSULATED, Verdict.ENCAPSULATE,
              changes=(FieldChange("ipv4", "ttl", 63, 62), FieldChange("outer-ipv4", "src", "", "192.168.50.11"),
                       FieldChange("outer-ipv4", "dst", "", "192.168.50.12")),
               tun="flannel0", peer="192.168.50.12", port=8285),
     "flanneld reads the packet from flannel0, decrements TTL 63 -> 62, sends it in UDP to 192.168.50.12:8285"),
    (Decision(Subsystem.FLANNEL, "sendto", FlannelReason.SEND, Verdict.SEND, src="192.168.50.11",
              peer="192.168.50.12", port=8285),
     "flanneld's UDP socket 192.168.50.11:8285 sends to 192.168.50.12:8285"),
    (Decision(Subsystem.FLANNEL, "udp_to_tun", FlannelReason.DECAPSULATED, Verdict.DECAPSULATE,
              changes=(FieldChange("ipv4", "ttl", 62, 61),), port=8285, tun="flannel0"),
     "flanneld receives on port 8285, decrements TTL 62 -> 61, writes the packet to flannel0"),
    (Decision(Subsystem.METALLB, "arpResponder", MetallbReason.ANNOUNCE, Verdict.REPLY, vip="192.168.50.200",
              namespace="default", service="web-lb", node="node1", dev="eth0", mac="8a:a1:fa:84:72:f3",
              sender="192.168.50.1"),
     "MetalLB's speaker on node1 (userspace, a packet socket on eth0): 192.168.50.200 is service default/web-lb's "
     "load-balancer IP and node1 won its election: replying is-at 8a:a1:fa:84:72:f3 to 192.168.50.1"),
    # kinds no digest case reaches: records as the core builds them
    (Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.NO_CABLE, Verdict.DROP, dev="eth9", kind="dummy"),
     "eth9 (dummy) has no cable"),
    (Decision(Subsystem.DEV, "netif_receive_skb", DevReason.DOWN_RX, Verdict.DROP, dev="eth0"),
     "eth0 is down"),
    (Decision(Subsystem.DEV, "__netif_receive_skb_core", DevReason.NO_HANDLER, Verdict.DROP, ethertype=0x86DD,
              here=True),
     "EtherType 0x86dd has no handler here"),
    (Decision(Subsystem.DEV, "__netif_receive_skb_core", DevReason.NO_HANDLER, Verdict.DROP, ethertype=0x86DD,
              here=False),
     "EtherType 0x86dd has no handler"),
    (Decision(Subsystem.BRIDGE, "br_nf_pre_routing_finish", BridgeReason.TO_IP_STACK, Verdict.UP,
              changes=(FieldChange("ethernet", "dst", "ee:b7:a0:3c:d2:42", "da:0d:8a:c2:5c:31"),),
              dst="10.244.1.2", bridge="cni0"),
     "br_netfilter: the new destination 10.244.1.2 is not on cni0: the frame goes up to the IP stack to be routed"),
    (Decision(Subsystem.BRIDGE, "br_nf_pre_routing_finish", BridgeReason.BRIDGE_DNAT, Verdict.BRIDGE,
              consulted=(NeighbourRef("cni0", "10.244.0.3", "ee:b7:a0:3c:d2:42", "REACHABLE"),),
              target="10.244.0.3", bridge="cni0", lladdr="ee:b7:a0:3c:d2:42"),
     "br_netfilter: DNAT target 10.244.0.3 is on cni0 too: bridged to ee:b7:a0:3c:d2:42, not routed"),
    (Decision(Subsystem.BRIDGE, "br_forward", BridgeReason.HAIRPIN_OFF, Verdict.DROP,
              consulted=(FdbRef("cni0", "82:e5:dd:73:ad:88", "veth9bb860b4"),), bridge="cni0",
              dst="82:e5:dd:73:ad:88", port="veth9bb860b4"),
     "cni0: 82:e5:dd:73:ad:88 is on the ingress port veth9bb860b4 and hairpin is off"),
    (Decision(Subsystem.BRIDGE, "br_nf_dev_queue_xmit", BridgeReason.REFRAGMENT, Verdict.FRAGMENT, frag_max=1500,
              count=2),
     "br_netfilter: reassembled by conntrack, cut back to its largest fragment (1500 bytes): 2 fragments"),
    (Decision(Subsystem.BRIDGE, "br_flood", BridgeReason.NO_PORT, Verdict.DROP, bridge="cni0"),
     "cni0: no port to flood to"),
    (Decision(Subsystem.BRIDGE, "br_dev_xmit", BridgeReason.HOST_UNKNOWN, Verdict.FLOOD,
              consulted=(FdbRef("cni0", "ee:b7:a0:3c:d2:42"),), bridge="cni0", dst="ee:b7:a0:3c:d2:42"),
     "cni0: ee:b7:a0:3c:d2:42 is not in the FDB: flooded"),
    (Decision(Subsystem.ARP, "arp_process", ArpReason.UNSOLICITED, Verdict.IGNORE, sender="10.244.0.9"),
     "unsolicited ARP reply from 10.244.0.9: no entry to update (arp_accept=0)"),
    (Decision(Subsystem.ARP, "arp_process", ArpReason.KEEP, Verdict.KEEP,
              consulted=(NeighbourRef("flannel.1", "10.244.1.0", "a2:29:54:fe:a6:54", "PERMANENT"),)),
     "ARP reply from 10.244.1.0: the entry is PERMANENT and stays"),
    (Decision(Subsystem.ROUTE, "ip_route_input_slow", RouteReason.BROADCAST_LOCAL, Verdict.DELIVER,
              consulted=(RouteRef("local", "broadcast 10.244.0.255 dev cni0 proto kernel scope link src 10.244.0.1",
                                  "cni0", "", "10.244.0.1", "broadcast"),), dst="10.244.0.255"),
     "10.244.0.255 is a broadcast address here: delivered locally, never forwarded"),
    (Decision(Subsystem.ROUTE, "ip_route_input_mc", RouteReason.BROADCAST_LOCAL, Verdict.DELIVER, dst="224.0.0.1"),
     "224.0.0.1 is the all-hosts group every IPv4 device joins: delivered locally"),
    (Decision(Subsystem.ROUTE, "ip_route_input_mc", RouteReason.NOT_MEMBER, Verdict.DROP, dst="224.0.0.7",
              dev="cni0"),
     "224.0.0.7 is a multicast group cni0 has not joined: dropped (no multicast routing)"),
    (Decision(Subsystem.NEIGHBOUR, "arp_constructor", NeighReason.NOARP, Verdict.RESOLVED, dst="224.0.0.1",
              kind="multicast", mac="01:00:5e:00:00:01"),
     "224.0.0.1 is a multicast address: no ARP, destination MAC 01:00:5e:00:00:01 (arp_constructor)"),
    (Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.LOCAL_ERROR, Verdict.DROP,
              consulted=(RouteRef("main", "blackhole 10.20.0.0/16", "lo", "", "", "blackhole"),), errno="EINVAL"),
     "route blackhole 10.20.0.0/16: Invalid argument"),
    (Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.LOCAL_ERROR, Verdict.DROP,
              consulted=(RouteRef("main", "unreachable 10.21.0.0/16", "lo", "", "", "unreachable"),),
              errno="EHOSTUNREACH"),
     "route unreachable 10.21.0.0/16: No route to host"),
    (Decision(Subsystem.ROUTE, "ip_route_output_key", RouteReason.OUTPUT, Verdict.OUTPUT,
              consulted=(RouteRef("local", "local 10.244.0.1 dev cni0 proto kernel scope host src 10.244.0.1", "lo", "",
                                  "10.244.0.1", "local"),), dst="10.244.0.1"),
     "route: local 10.244.0.1 dev lo src 10.244.0.1"),
    (Decision(Subsystem.ROUTE, "ip_route_me_harder", RouteReason.REROUTED, Verdict.OUTPUT,
              consulted=(RouteRef("main", "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink", "flannel.1",
                                  "10.244.1.0", "10.244.0.0"),), dst="10.244.1.2"),
     "rerouted after DNAT: 10.244.1.2 via 10.244.1.0 dev flannel.1 src 10.244.0.0"),
    (Decision(Subsystem.IP, "ip_fragment", IpReason.EMSGSIZE, Verdict.DROP, size=1488, dev="eth0", mtu=1450),
     "1488 bytes with DF set exceed eth0's MTU 1450: the socket gets EMSGSIZE"),
    (Decision(Subsystem.IP, "ip_fragment", IpReason.DF_TOO_BIG, Verdict.DROP, size=1488, dev="eth0", mtu=1450),
     "1488 bytes exceed eth0's MTU 1450"),
    (Decision(Subsystem.NETFILTER, "ipv4_conntrack_defrag", NetfilterReason.UNSEEN_FRAGMENT, Verdict.ACCEPT,
              hook="FORWARD", offset=1480),
     "netfilter FORWARD: fragment at offset 1480 of an unseen datagram, passed untouched"),
    (Decision(Subsystem.NETFILTER, "ipv4_conntrack_defrag", NetfilterReason.FOLLOWS_FIRST, Verdict.DROP,
              changes=(FieldChange("ipv4", "dst", "10.96.0.100", "10.244.1.2"),), hook="PREROUTING", offset=1480,
              src="10.244.0.2", dst="10.244.1.2", rewritten=True),
     "netfilter PREROUTING: fragment at offset 1480 follows its first fragment: DROP, now 10.244.0.2 -> 10.244.1.2"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.NOT_MODELLED, Verdict.INVALID, proto="sctp"),
     "conntrack: sctp is not modelled by netsim's conntrack: packet not tracked (ctstate INVALID)"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_tcp_packet", ConntrackReason.REOPEN, Verdict.REMOVE,
              consulted=(ConntrackRef("tcp", "10.244.0.2:1000 -> 10.244.0.3:80", "10.244.0.3:80 -> 10.244.0.2:1000",
                                      "TIME_WAIT", "original"),)),
     "conntrack: SYN reopens tcp 10.244.0.2:1000 -> 10.244.0.3:80 (TIME_WAIT), old entry removed"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.INVALID_ICMP, Verdict.INVALID,
              consulted=(ConntrackRef("icmp", "10.244.0.3 -> 10.244.0.2 id 7", "", "INVALID", "original"),), type=0,
              src="10.244.0.3", dst="10.244.0.2"),
     "conntrack: icmp type 0 from 10.244.0.3 to 10.244.0.2 answers no tracked request: INVALID, not tracked"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TCP_IGNORED, Verdict.ESTABLISHED,
              consulted=(ConntrackRef("tcp", "10.244.0.2:1000 -> 10.244.0.3:80", "10.244.0.3:80 -> 10.244.0.2:1000",
                                      "ESTABLISHED", "reply"),), old="SYN_SENT", flags="S"),
     "conntrack: reply of tcp 10.244.0.2:1000 -> 10.244.0.3:80 (SYN_SENT, [S] ignored by the state machine)"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TCP_RST_REMOVED, Verdict.ESTABLISHED,
              consulted=(ConntrackRef("tcp", "10.244.0.2:1000 -> 10.244.0.3:80", "10.244.0.3:80 -> 10.244.0.2:1000",
                                      "ESTABLISHED", "reply"),), flags="RA"),
     "conntrack: reply of tcp 10.244.0.2:1000 -> 10.244.0.3:80 ([RA] before any reply: entry removed)"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_in", ConntrackReason.TCP_STATE, Verdict.ESTABLISHED,
              consulted=(ConntrackRef("tcp", "10.244.0.2:1000 -> 10.244.0.3:80", "10.244.0.3:80 -> 10.244.0.2:1000",
                                      "ESTABLISHED", "original"),), old="SYN_RECV", new="ESTABLISHED", assured=True),
     "conntrack: tcp 10.244.0.2:1000 -> 10.244.0.3:80 (SYN_RECV -> ESTABLISHED, now ASSURED)"),
    (Decision(Subsystem.CONNTRACK, "nf_conntrack_icmpv4_error", ConntrackReason.SHORT_QUOTE, Verdict.INVALID,
              src="192.168.50.1"),
     "conntrack: icmp error from 192.168.50.1 quotes too little of a packet: INVALID"),
    (Decision(Subsystem.NAT, "nf_nat_masquerade_ipv4", NatReason.NO_SOURCE, Verdict.DROP,
              consulted=(RuleRef("nat", "POSTROUTING", "POSTROUTING", 1, ("-o eth1",), "MASQUERADE", (),
                                 ("POSTROUTING",)),), error="eth1 has no IPv4 address"),
     "nat POSTROUTING: POSTROUTING rule 1: MASQUERADE finds no source address (eth1 has no IPv4 address): "
     "packet dropped"),
    (Decision(Subsystem.NAT, "nf_nat_setup_info", NatReason.NO_FREE_TUPLE, Verdict.DROP,
              consulted=(ConntrackRef("udp", "10.244.0.2:5000 -> 203.0.113.10:53", "203.0.113.10:53 -> 10.244.0.2:5000",
                                      "NEW", "original"),), hook="POSTROUTING"),
     "nat POSTROUTING: no free port for 10.244.0.2:5000 -> 203.0.113.10:53: packet dropped"),
    (Decision(Subsystem.NAT, "nf_nat_setup_info", NatReason.NO_FREE_TUPLE, Verdict.DROP,
              consulted=(ConntrackRef("icmp", "10.244.0.2 -> 203.0.113.10 id 7", "203.0.113.10 -> 10.244.0.2 id 7",
                                      "NEW", "original"),), hook="POSTROUTING"),
     "nat POSTROUTING: no free id for 10.244.0.2 -> 203.0.113.10 id 7: packet dropped"),
    (Decision(Subsystem.NAT, "nf_nat_alloc_null_binding", NatReason.NULL_BINDING_CLASH, Verdict.SNAT,
              consulted=(ConntrackRef("tcp", "10.244.0.3:40000 -> 203.0.113.10:8080",
                                      "203.0.113.10:8080 -> 10.244.0.3:29111", "NEW", "original"),),
              hook="POSTROUTING", old="10.244.0.3:40000", new="10.244.0.3:29111"),
     "nat POSTROUTING: 10.244.0.3:40000 -> 203.0.113.10:8080 would clash with another connection, source port "
     "remapped: 10.244.0.3:40000 -> 10.244.0.3:29111"),
    (Decision(Subsystem.NAT, "nf_nat_packet", NatReason.REWRITE, Verdict.REWRITE,
              consulted=(ConntrackRef("tcp", "203.0.113.10:56756 -> 192.168.50.11:30080",
                                      "10.244.1.2:8080 -> 10.244.0.0:26911", "ESTABLISHED", "original"),),
              manip="DST", to="10.244.1.2:8080"),
     "conntrack: tcp 203.0.113.10:56756 -> 192.168.50.11:30080, DNAT destination to 10.244.1.2:8080"),
    (Decision(Subsystem.NAT, "nf_nat_icmp_reply_translation", NatReason.ICMP_ERROR, Verdict.REWRITE,
              consulted=(ConntrackRef("udp", "203.0.113.10:43204 -> 192.168.50.11:30080",
                                      "10.244.1.2:8080 -> 10.244.0.0:43204", "RELATED", "reply"),),
              manip="SRC", to="192.168.50.11", quoted="192.168.50.11:30080"),
     "conntrack: icmp error related to udp 203.0.113.10:43204 -> 192.168.50.11:30080, un-DNAT source to "
     "192.168.50.11, and the quoted packet's destination to 192.168.50.11:30080"),
    # nftables (netfilter/nft_eval.py): kube-proxy's and flannel's rules as nft_do_chain met them
    (Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.RULE, Verdict.GOTO,
              consulted=(NftRuleRef("ip", "kube-proxy", "services", 54, "PREROUTING",
                                    "goto external-PFISGYVC-default/web/tcp/", ("ip daddr @nodeport-ips",),
                                    ("meta l4proto . th dport vmap @service-nodeports",), ("nat-prerouting", "services"),
                                    "", "service-nodeports", "tcp . 30080 : goto external-PFISGYVC-default/web/tcp/"),)),
     "ip kube-proxy PREROUTING: nat-prerouting -> services handle 54 [ip daddr @nodeport-ips meta l4proto . th dport "
     "vmap @service-nodeports]: goto external-PFISGYVC-default/web/tcp/ (element tcp . 30080 : goto "
     "external-PFISGYVC-default/web/tcp/ of @service-nodeports)"),
    (Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.RULE, Verdict.ACCEPT,
              consulted=(NftRuleRef("ip", "flannel-ipv4", "forward", 12, "FORWARD", "accept", ("ip daddr 10.244.0.0/16",),
                                    ("counter packets 1 bytes 60", "accept"), ("forward",)),)),
     "ip flannel-ipv4 FORWARD: forward handle 12 [ip daddr 10.244.0.0/16 counter packets 1 bytes 60 accept]: accept"),
    (Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.MARK, Verdict.CONTINUE,
              consulted=(NftRuleRef("ip", "kube-proxy", "mark-for-masquerade", 35, "PREROUTING", "continue", (),
                                    ("meta mark set meta mark | 0x00004000",),
                                    ("nat-prerouting", "services", "external-PFISGYVC-default/web/tcp/",
                                     "mark-for-masquerade")),),
              changes=(FieldChange("skb", "mark", 0, 0x4000),)),
     "ip kube-proxy PREROUTING: nat-prerouting -> services -> external-PFISGYVC-default/web/tcp/ -> "
     "mark-for-masquerade handle 35 [meta mark set meta mark | 0x00004000]: mark 0x0 -> 0x4000"),
    (Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.REJECT, Verdict.REJECT,
              consulted=(NftRuleRef("ip", "kube-proxy", "reject-chain", 46, "FORWARD", "drop", (), ("reject",),
                                    ("filter-forward", "service-endpoints-check", "reject-chain")),)),
     "ip kube-proxy FORWARD: filter-forward -> service-endpoints-check -> reject-chain handle 46 [reject]: rejected, "
     "the packet is dropped"),
    (Decision(Subsystem.NETFILTER, "nft_do_chain", NetfilterReason.POLICY, Verdict.ACCEPT,
              consulted=(NftRuleRef("ip", "kube-proxy", "filter-forward", 0, "FORWARD", "accept",
                                    path=("filter-forward",)),)),
     "ip kube-proxy FORWARD: base chain filter-forward: no rule decided, policy accept"),
    (Decision(Subsystem.NAT, "nft_nat_eval", NatReason.BINDING, Verdict.DNAT,
              consulted=(NftRuleRef("ip", "kube-proxy", "endpoint-X665QFQS-default/web/tcp/__10.244.1.2/8080", 107,
                                    "PREROUTING", "accept", ("meta l4proto tcp",), ("dnat to 10.244.1.2:8080",),
                                    ("nat-prerouting", "services", "service-PFISGYVC-default/web/tcp/",
                                     "endpoint-X665QFQS-default/web/tcp/__10.244.1.2/8080")),
                         ConntrackRef("tcp", "10.244.0.2:40000 -> 10.96.0.100:80", "10.244.1.2:8080 -> 10.244.0.2:40000",
                                      "NEW", "original")),
              changes=(FieldChange("ipv4", "dst", "10.96.0.100", "10.244.1.2"), FieldChange("tcp", "dport", 80, 8080)),
              manip="DST", old="10.96.0.100:80", new="10.244.1.2:8080"),
     "ip kube-proxy PREROUTING: nat-prerouting -> services -> service-PFISGYVC-default/web/tcp/ -> "
     "endpoint-X665QFQS-default/web/tcp/__10.244.1.2/8080 handle 107: dnat, destination 10.96.0.100:80 -> "
     "10.244.1.2:8080"),
    (Decision(Subsystem.NAT, "nf_nat_masquerade_ipv4", NatReason.BINDING, Verdict.MASQUERADE,
              consulted=(NftRuleRef("ip", "kube-proxy", "masquerading", 38, "POSTROUTING", "accept", (),
                                    ("masquerade fully-random",), ("nat-postrouting", "masquerading")),),
              manip="SRC", old="203.0.113.10:40002", new="192.168.50.11:40002"),
     "ip kube-proxy POSTROUTING: nat-postrouting -> masquerading handle 38: masquerade fully-random, source "
     "203.0.113.10:40002 -> 192.168.50.11:40002"),
    (Decision(Subsystem.NAT, "nf_nat_masquerade_ipv4", NatReason.NO_SOURCE, Verdict.DROP,
              consulted=(NftRuleRef("ip", "flannel-ipv4", "postrtg", 7, "POSTROUTING", "accept",
                                    ("ip saddr 10.244.0.0/16", "ip daddr != 224.0.0.0/4"),
                                    ("masquerade fully-random",), ("postrtg",)),),
              error="eth1 has no IPv4 address"),
     "ip flannel-ipv4 POSTROUTING: postrtg handle 7: masquerade finds no source address (eth1 has no IPv4 address): "
     "packet dropped"),
    (Decision(Subsystem.VXLAN, "vxlan_rcv", VxlanReason.NOT_VXLAN, Verdict.DROP, port=8472),
     "UDP 8472: not a valid VXLAN header (I flag clear)"),
    (Decision(Subsystem.VXLAN, "vxlan_rcv", VxlanReason.WRONG_VNI, Verdict.DROP, vni=2, dev="flannel.1", dev_vni=1),
     "VXLAN VNI 2 does not match flannel.1 (VNI 1)"),
    (Decision(Subsystem.TUN, "tun_net_xmit", TunReason.NOT_OPEN, Verdict.DROP, dev="flannel0"),
     "nothing holds flannel0 open: the packet is discarded"),
    (Decision(Subsystem.SOCKET, "tcp_v4_rcv", SocketReason.RST_IGNORED, Verdict.DROP),
     "RST for no connection: ignored"),
    (Decision(Subsystem.SOCKET, "ip_protocol_deliver_rcu", SocketReason.NO_PROTOCOL, Verdict.DROP, proto=47),
     "protocol 47: no handler"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_established", SocketReason.DELIVERED, Verdict.DELIVER),
     "taken by its connection: nothing to read"),
    (Decision(Subsystem.SOCKET, "sendmsg", SocketReason.SENT, Verdict.SEND, netns="pod-a",
              packet=IPv4("10.244.0.2", "10.244.1.2", IPPROTO_UDP, UDP(40000, 53, b"Q"))),
     "pod-a sends: 10.244.0.2 > 10.244.1.2 UDP 40000 > 53"),
    (Decision(Subsystem.SOCKET, "udp_rcv", SocketReason.UDP_DELIVERED, Verdict.DELIVER, port=53, size=40),
     "UDP socket on port 53 receives 40 bytes"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_synsent_state_process", SocketReason.SYNACK_ACKED, Verdict.CONNECTED),
     "SYN-ACK: the connection is established (connect() returns) and the kernel acknowledges it"),
    (Decision(Subsystem.SOCKET, "tcp_rcv_established", SocketReason.STREAM_READ, Verdict.READ, port=8080, size=1398),
     "TCP connection on port 8080: 1398 bytes in order, read by the program"),
    (Decision(Subsystem.SOCKET, "tcp_fin", SocketReason.FIN, Verdict.DELIVER, port=8080),
     "TCP connection on port 8080: FIN, the peer closed its side (read() returns 0)"),
    (Decision(Subsystem.SOCKET, "tcp_reset", SocketReason.RESET, Verdict.DELIVER, port=41000),
     "RST: the connection on port 41000 is reset (Connection reset by peer)"),
    (Decision(Subsystem.SOCKET, "icmp_unreach", SocketReason.ICMP_SOFT, Verdict.DELIVER, type=3, code=0,
              src="192.168.50.1"),
     "ICMP destination unreachable code 0 from 192.168.50.1: taken by the socket that sent the "
     "packet, which is not told (a soft error, or a connection not yet accepted)"),
    (Decision(Subsystem.SOCKET, "icmp_echo", SocketReason.ECHO_IGNORED, Verdict.DROP, dst="10.244.0.255"),
     "ICMP echo request for 10.244.0.255, a broadcast or multicast address: ignored "
     "(net.ipv4.icmp_echo_ignore_broadcasts = 1)"),
    (Decision(Subsystem.SOCKET, "__ip_append_data", SocketReason.EMSGSIZE, Verdict.DROP, errno="EMSGSIZE",
              netns="pod-a", size=1500, mtu=1450),
     "a 1500-byte packet with DF asked for does not fit the path MTU 1450 (or 65535): the send fails with "
     "EMSGSIZE (Message too long)"),
    (Decision(Subsystem.SOCKET, "udp_sendmsg", SocketReason.BROADCAST_REFUSED, Verdict.DROP, errno="EACCES",
              netns="pod-a", dst="10.244.0.255"),
     "10.244.0.255 is a broadcast address and the socket has no SO_BROADCAST: the send fails with EACCES"),
    (Decision(Subsystem.SOCKET, "raw_sendmsg", SocketReason.BROADCAST_REFUSED, Verdict.DROP, errno="EACCES",
              netns="pod-a", dst="255.255.255.255"),
     "255.255.255.255 is a broadcast address and the socket has no SO_BROADCAST: the send fails with EACCES"),
    (Decision(Subsystem.SOCKET, "tcp_v4_connect", SocketReason.NOT_UNICAST, Verdict.DROP, errno="ENETUNREACH",
              netns="pod-a", dst="224.0.0.1"),
     "TCP cannot connect to 224.0.0.1, a broadcast or multicast address: connect() fails with ENETUNREACH"),
    (Decision(Subsystem.SOCKET, "tcp_v4_mtu_reduced", SocketReason.MSS_REDUCED, Verdict.DELIVER, mtu=1450, mss=1398,
              port=41000),
     "TCP connection on port 41000: path MTU 1450, the MSS drops to 1398; what was sent too long goes again, "
     "cut to size"),
    (Decision(Subsystem.ROUTE, "__ip_rt_update_pmtu", RouteReason.PMTU_LEARNED, Verdict.DELIVER, dst="10.244.1.2",
              mtu=1450, was=1500, expires=600, locked=False),
     "route exception: the path MTU to 10.244.1.2 drops 1500 -> 1450 for 600 s (net.ipv4.route.mtu_expires)"),
    (Decision(Subsystem.ROUTE, "__ip_rt_update_pmtu", RouteReason.PMTU_LEARNED, Verdict.DELIVER, dst="10.244.1.2",
              mtu=552, was=1500, expires=600, locked=True),
     "route exception: the path MTU to 10.244.1.2 drops 1500 -> 552 for 600 s (net.ipv4.route.mtu_expires); "
     "locked at min_pmtu, DF no longer set"),
    (Decision(Subsystem.ICMP, "icmp_send", IcmpReason.RATELIMITED, Verdict.DROP, type=3, code=3, dst="10.244.0.2",
              ratelimit=1000),
     "no ICMP destination unreachable code 3 to 10.244.0.2: the rate limit for it is spent "
     "(net.ipv4.icmp_ratelimit = 1000 ms)"),
    (Decision(Subsystem.SOCKET, "connect", SocketReason.CONNECT, Verdict.SEND, proto="udp", netns="pod-a",
              packet=IPv4("10.244.0.2", "10.244.1.2", IPPROTO_UDP, UDP(40000, 9090, b"REQ")), source="10.244.0.2",
              dst="10.244.1.2"),
     "udp socket in pod-a: 10.244.0.2 > 10.244.1.2 UDP 40000 > 9090 (source 10.244.0.2 from "
     "`ip route get 10.244.1.2`)"),
    (Decision(Subsystem.FLANNEL, "tun_to_udp", FlannelReason.NO_ROUTE, Verdict.DROP, dst="10.244.9.2"),
     "flanneld: no route for 10.244.9.2 in its table: ICMP net unreachable"),
    (Decision(Subsystem.FLANNEL, "udp_to_tun", FlannelReason.NOT_IPV4, Verdict.DROP),
     "flanneld: UDP payload is not an IPv4 packet"),
    (Decision(Subsystem.FLANNEL, "decrement_ttl", FlannelReason.TTL_ZERO, Verdict.DROP, ttl=1),
     "flanneld: TTL 1 reaches 0: discarded"),
    (Decision(Subsystem.LAB, "packet_rcv", CaptureReason.CAPTURED, Verdict.CAPTURE, time=12.5),
     "captured at 12.500000000"),
    (Decision(Subsystem.ICMP, "icmp_send", IcmpReason.ERROR, Verdict.SEND, type=11, code=0, src="10.1.0.1",
              dst="10.0.0.2"),
     "ICMP time exceeded from 10.1.0.1 to 10.0.0.2"),
]


def _kind(d: Decision) -> str:
    return f"{d.function}-{d.reason.value}"


@pytest.mark.parametrize("record, text", CASES, ids=[f"{_kind(d)}-{i}" for i, (d, _) in enumerate(CASES)])
def test_each_kind_of_decision_has_its_sentence(record, text):
    assert sentence(record) == text


def test_every_writer_is_pinned_and_every_reason_has_a_writer():
    assert {(d.function, d.reason) for d, _ in CASES} == set(SENTENCES)
    reasons = {member for kind in Reason.__subclasses__() if kind is not OutcomeReason for member in kind}
    assert reasons == {reason for _, reason in SENTENCES}
    assert set(OutcomeReason) == set(OUTCOMES)


OUTCOME_CASES = [
    (Outcome("local-error", OutcomeReason.NO_ROUTE, "ENETUNREACH", dst="10.9.0.1", netns="h1"),
     "connect: Network is unreachable (no route to 10.9.0.1 in h1)"),
    (Outcome("local-error", OutcomeReason.ROUTE_ERROR, "EINVAL", route="blackhole 10.20.0.0/16", netns="h1"),
     "connect: Invalid argument (route blackhole 10.20.0.0/16 in h1)"),
    (Outcome("local-error", OutcomeReason.ROUTE_ERROR, "EHOSTUNREACH", route="unreachable 10.21.0.0/16", netns="h1"),
     "connect: No route to host (route unreachable 10.21.0.0/16 in h1)"),
    (Outcome("timed-out", OutcomeReason.NO_ANSWER, "ETIMEDOUT", ended=()), "no answer reached the sender"),
    (Outcome("local-error", OutcomeReason.NO_ANSWER, "EMSGSIZE",
             ended=(("dropped", Decision(Subsystem.IP, "ip_fragment", IpReason.EMSGSIZE, Verdict.DROP, size=1488,
                                         dev="eth0", mtu=1450)),)),
     "no answer reached the sender; dropped: 1488 bytes with DF set exceed eth0's MTU 1450: the socket gets EMSGSIZE"),
    (Outcome("icmp-error", OutcomeReason.ICMP_ERROR, "EHOSTUNREACH", "10.244.0.1", (3, 1)),
     "error: ICMP destination unreachable code 1 from 10.244.0.1"),
    (Outcome("icmp-error", OutcomeReason.ICMP_ERROR, "EHOSTUNREACH", "10.1.0.1", (11, 0)),
     "error: ICMP time exceeded code 0 from 10.1.0.1"),
    (Outcome("answered", OutcomeReason.ECHO_REPLY, peer="10.244.1.2"), "echo reply from 10.244.1.2"),
    (Outcome("answered", OutcomeReason.UDP_REPLY, peer="10.244.1.2:9090"), "udp reply from 10.244.1.2:9090"),
    (Outcome("refused", OutcomeReason.RST, "ECONNREFUSED", "10.0.0.2:80"), "connection refused by 10.0.0.2:80 (RST)"),
    (Outcome("connected", OutcomeReason.CONNECTED, peer="10.244.1.2:8080"), "connected to 10.244.1.2:8080 (SYN-ACK)"),
    (Outcome("received", OutcomeReason.RECEIVED, peer="10.244.1.2:8080", size=3),
     "received 3 bytes from 10.244.1.2:8080"),
]


@pytest.mark.parametrize("outcome, text", OUTCOME_CASES, ids=[o.reason.value + str(i) for i, (o, _) in
                                                               enumerate(OUTCOME_CASES)])
def test_each_kind_of_outcome_has_its_summary(outcome, text):
    assert outcome_text(outcome) == text


def test_a_trace_that_carries_text_keeps_it():
    """The lab's kernel traces carry the client's own words."""
    assert outcome_text("connected to 10.244.1.2:8080 (SYN-ACK)") == "connected to 10.244.1.2:8080 (SYN-ACK)"
    assert outcome_text("") == outcome_text(None) == ""


def test_a_hop_a_trace_and_an_ended_copy_in_words():
    trace = netsim.scenarios.pod_to_pod_cross_node(proto="icmp")
    hop = trace.where("node1/flannel.1", "tx", "request")[0]
    assert explanation(hop) == "; ".join(sentence(d) for d in hop.decisions)
    (encap,) = hop.decided("vxlan_xmit")
    sport = encap.fact("sport")
    assert f"flannel.1: FDB a2:29:54:fe:a6:54 dst 192.168.50.12: encapsulated in UDP {sport} -> 8472, VNI 1, " \
           f"outer TTL 64, DF clear" in explanation(hop).split("; ")
    assert heading(trace) == f"<Trace {trace.title!r}: {len(trace)} hops; echo reply from 10.244.1.2>"
    ended = Ended(7, "request", "node1", "vethpod2", "dropped",
                  Decision(Subsystem.DEV, "dev_queue_xmit", DevReason.DOWN_TX, Verdict.DROP, dev="vethpod2"), 3)
    assert ended_text(ended) == "dropped at node1/vethpod2: vethpod2 is down: the frame is not sent"


# ---- the core writes no sentence -------------------------------------------------------------

def _builder_calls(path: Path):
    for node in nodes(path):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in BUILDERS:
                yield node


def test_no_core_decision_or_outcome_is_built_from_a_sentence():
    """No f-string, no string with a space, no string concatenation in any Decision or
    Outcome the core (and the lab's capture note) builds: only codes, names and numbers."""
    found = []
    for path in [*CORE, NETSIM / "lab" / "frames.py"]:
        for call in _builder_calls(path):
            for node in ast.walk(call):
                texty = (isinstance(node, ast.JoinedStr)
                         or (isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value)
                         or (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod))
                             and any(isinstance(side, ast.JoinedStr) or (isinstance(side, ast.Constant)
                                                                         and isinstance(side.value, str))
                                     for side in (node.left, node.right))))
                if texty:
                    found.append(f"{path.relative_to(NETSIM)}:{call.lineno} {ast.unparse(node)[:60]}")
    assert found == []
    assert sum(1 for path in CORE for _ in _builder_calls(path)) > 100      # the check sees the calls


def test_the_core_never_imports_the_views():
    imports = []
    for path in CORE:
        for node in nodes(path):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                names = [module] + [f"{module}.{a.name}" for a in node.names]
                if any("views" in n.split(".") or n.startswith("netsim.views") for n in names):
                    imports.append(f"{path.relative_to(NETSIM)}:{node.lineno} {module}")
            elif isinstance(node, ast.Import) and any(a.name.startswith("netsim.views") for a in node.names):
                imports.append(f"{path.relative_to(NETSIM)}:{node.lineno}")
    assert imports == []


def _facts_read(node: ast.AST, functions: dict[str, ast.FunctionDef]) -> set[str]:
    """The facts a writer reads (`f.NAME`), through the module's helper functions it calls."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "f":
            out.add(n.attr)
        elif isinstance(n, ast.Name) and n.id in functions and functions[n.id] is not node:
            out |= _facts_read(functions[n.id], functions)
    return out


def test_every_fact_a_sentence_reads_is_one_the_core_gives():
    """For each core call with a literal kernel function and reason code, the named facts it
    passes are exactly those the sentence for that (function, reason) reads."""
    tree = ast.parse((NETSIM / "views" / "sentences.py").read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    kinds = {a.asname or a.name: a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    table = next(n.value for n in tree.body if isinstance(n, ast.AnnAssign) and n.target.id == "SENTENCES")
    reads = {}
    for key, value in zip(table.keys, table.values):
        if key is not None:         # a `**{...}` entry repeats one writer for several functions
            kind, member = ast.unparse(key.elts[1]).split(".")
            reads[(key.elts[0].value, f"{kinds[kind]}.{member}")] = _facts_read(value, functions)
    checked = 0
    for path in [*CORE, NETSIM / "lab" / "frames.py"]:
        for call in _builder_calls(path):
            if isinstance(call.func, ast.Name) and call.func.id == "Outcome":
                continue
            given = {k.arg for k in call.keywords} - {"consulted", "changes", "function", None}
            literal = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            literal += [k.value.value for k in call.keywords if k.arg == "function" and isinstance(k.value, ast.Constant)]
            reason = [ast.unparse(a) for a in call.args if isinstance(a, ast.Attribute)
                      and ast.unparse(a).split(".")[0].endswith("Reason")]
            if not literal or not reason or (literal[0], reason[0]) not in reads:
                continue
            assert given == reads[(literal[0], reason[0])], f"{path.relative_to(NETSIM)}:{call.lineno}"
            checked += 1
    assert checked > 80


def test_decisions_and_outcomes_are_frozen_records_not_strings():
    for record in (Decision, Outcome):
        assert not issubclass(record, str)
        assert dataclasses.is_dataclass(record) and hasattr(record, "__slots__")
        params = record.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen and params.eq
    a = Decision(Subsystem.IP, "ip_forward", IpReason.TTL_EXCEEDED, Verdict.DROP, ttl=1)
    assert a == Decision(Subsystem.IP, "ip_forward", IpReason.TTL_EXCEEDED, Verdict.DROP, ttl=1)
    assert a != Decision(Subsystem.IP, "ip_forward", IpReason.TTL_EXCEEDED, Verdict.DROP, ttl=2)
    assert a.fact("ttl") == 1 and a.fact("dev") is None
    assert len({a, dataclasses.replace(a)}) == 1
