"""The CNI portmap plugin: what it writes on a node for a pod that asks for a hostPort.

Flannel's CNI configuration (kube-flannel.yml's cni-conf.json, `CNI_CONFLIST` below) is a
list of two plugins, `flannel` (which hands `bridge` its delegate, cni.py) and `portmap` with
`"capabilities": {"portMappings": true}`. A container runtime that finds that capability
passes the pod's ports that have a hostPort as `runtimeConfig.portMappings` (containerd's CRI:
each PortMapping with hostPort > 0, protocol in lower case), and calls portmap after flannel
with the previous result, under the network name `cbr0` and the sandbox's container ID.

What portmap (containernetworking/plugins v1.1.1, the version Debian 12 ships, 1.1.1+ds1-3)
then does, all in the nat table of the node, read from plugins/meta/portmap/:

- main.go parseConfig: `snat` defaults to true, `markMasqBit` to 13 (DefaultMarkBit: the mark
  0x2000); the container address is the prevResult IP on the `eth0` interface;
- portmap.go forwardPorts: with snat, CNI-HOSTPORT-SETMARK (one rule: `-m comment --comment
  "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000`) and CNI-HOSTPORT-MASQ
  (`-m mark --mark 0x2000/0x2000 -j MASQUERADE`, entered from POSTROUTING by a rule inserted
  first, `prependEntry`), then route_localnet=1 on the host interface that routes the
  container's address (utils.go getRoutableHostIF: cni0), then CNI-HOSTPORT-DNAT, entered
  from PREROUTING and OUTPUT by `-m addrtype --dst-type LOCAL` (appended), then the
  container's own chain;
- portmap.go genDnatChain: that chain is named by pkg/utils/utils.go
  MustFormatChainNameWithPrefix: "CNI-DN-" + the hex SHA-512 of network name + container ID,
  cut to 28 characters; CNI-HOSTPORT-DNAT jumps to it for `-m comment --comment "dnat name:
  \\"NET\\" id: \\"ID\\"" -m multiport -p PROTO --destination-ports P1,P2..` (one rule per
  protocol, protocols sorted, at most 15 ports each, splitPortList);
- portmap.go fillDnatRules: for each mapping, in order, `-p PROTO --dport HOSTPORT [-d
  HOSTIP]` followed by `-s <container address/prefix> -j CNI-HOSTPORT-SETMARK` (hairpin: the
  prefix is the pod's subnet, iptables clears the host bits), `-s 127.0.0.1 -j
  CNI-HOSTPORT-SETMARK` (IPv4 localhost) and `-j DNAT --to-destination ADDR:CONTAINERPORT`;
- chain.go setup: each chain is created if missing (EnsureChain), its rules appended unless
  an equal rule is there (InsertUnique), then its entry rules added to each entry chain the
  same way (inserted at 1 where prependEntry).

The rules are data here (`Chain` records with the plugin's argument lists); `install` applies
them to a namespace's netfilter as the plugin's iptables calls do. netsim's container ID is
its own deterministic choice (`container_id`: the SHA-256 of namespace/name in hex, 64
digits like a containerd sandbox ID); the chain names follow from it exactly as the
plugin's do.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from .errors import ConfigError
from .params import check_port

NETWORK_NAME = "cbr0"                 # kube-flannel.yml's cni-conf.json "name"
MARK_MASQ_BIT = 13                    # main.go DefaultMarkBit
TOP_DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
MAX_CHAIN_LENGTH = 28                 # pkg/utils/utils.go maxChainLength
MULTIPORT_MAX = 15                    # utils.go splitPortList: multiport takes 15 ports
PROTOCOLS = ("tcp", "udp")            # the pod spec also allows SCTP, which netsim does not model
CNI_CONFLIST: dict[str, Any] = {     # kube-flannel.yml's cni-conf.json
    "name": NETWORK_NAME,
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


@dataclass(frozen=True)
class HostPort:
    """One entry of a pod's ports with a hostPort (the pod spec's containerPort, hostPort,
    protocol, hostIP), as the runtime passes it to portmap (a PortMapEntry)."""

    container_port: int
    host_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def runtime_entry(self) -> dict[str, object]:
        """The entry of runtimeConfig.portMappings (main.go PortMapEntry's JSON names)."""
        entry: dict[str, object] = {"hostPort": self.host_port, "containerPort": self.container_port,
                                    "protocol": self.protocol}
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


def check_host_ports(owner: str, value: object) -> tuple[HostPort, ...]:
    """`host_ports` as add_pod takes it: a list of {"container_port", "host_port", "protocol"
    (tcp or udp, default tcp), "host_ip" (optional, an IPv4 address)} dicts, as the pod
    spec's ports[] with a hostPort; two entries may not share host port, protocol and host IP
    (the API server's validation refuses a duplicate)."""
    if value is None or value == ():
        return ()
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"pod {owner}: host_ports {value!r} must be a list of dicts such as "
                          f"[{{'container_port': 80, 'host_port': 8080, 'protocol': 'tcp'}}]")
    out: list[HostPort] = []
    for item in value:
        if not isinstance(item, dict) or not {"container_port", "host_port"} <= set(item) or \
                not set(item) <= {"container_port", "host_port", "protocol", "host_ip"}:
            raise ConfigError(f"pod {owner}: host port entry {item!r} needs container_port and host_port "
                              f"(and may give protocol and host_ip), nothing else")
        protocol = item.get("protocol", "tcp")
        if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
            raise ConfigError(f"pod {owner}: host port protocol {protocol!r} must be tcp or udp")
        host_ip = item.get("host_ip", "")
        if host_ip:
            try:
                host_ip = str(IPv4Address(host_ip))
            except (ValueError, TypeError):
                raise ConfigError(f"pod {owner}: host_ip {host_ip!r} must be an IPv4 address") from None
        entry = HostPort(check_port(item["container_port"], f"pod {owner}: container_port"),
                         check_port(item["host_port"], f"pod {owner}: host_port"), protocol.lower(), host_ip)
        if any((e.host_port, e.protocol, e.host_ip) == (entry.host_port, entry.protocol, entry.host_ip)
               for e in out):
            raise ConfigError(f"pod {owner}: host port {entry.host_port}/{entry.protocol} is given twice")
        out.append(entry)
    return tuple(out)


def container_id(namespace: str, pod: str) -> str:
    """netsim's deterministic sandbox ID for a pod: 64 hex digits (containerd's are random)."""
    return hashlib.sha256(f"{namespace}/{pod}".encode()).hexdigest()


def chain_name(network: str, cid: str, prefix: str = "DN-") -> str:
    """MustFormatChainNameWithPrefix(network, cid, prefix): "CNI-" + prefix + hex SHA-512."""
    return ("CNI-" + prefix + hashlib.sha512((network + cid).encode()).hexdigest())[:MAX_CHAIN_LENGTH]


@dataclass(frozen=True)
class Chain:
    """chain.go's chain: a nat chain, its rules, and the rules in other chains that enter it,
    each an argument list as the plugin hands it to iptables."""

    name: str
    rules: tuple[tuple[str, ...], ...] = ()
    entry_chains: tuple[str, ...] = ()
    entry_rules: tuple[tuple[str, ...], ...] = ()
    prepend_entry: bool = False
    table: str = "nat"


def setmark_chain(bit: int = MARK_MASQ_BIT) -> Chain:
    """genSetMarkChain."""
    mark = f"{1 << bit:#x}/{1 << bit:#x}"
    return Chain(SETMARK_CHAIN, rules=(("-m", "comment", "--comment", "CNI portfwd masquerade mark",
                                        "-j", "MARK", "--set-xmark", mark),))


def masq_chain(bit: int = MARK_MASQ_BIT) -> Chain:
    """genMarkMasqChain: entered first in POSTROUTING."""
    mark = f"{1 << bit:#x}/{1 << bit:#x}"
    return Chain(MASQ_CHAIN, rules=(("-m", "mark", "--mark", mark, "-j", "MASQUERADE"),),
                 entry_chains=("POSTROUTING",), prepend_entry=True,
                 entry_rules=(("-m", "comment", "--comment", "CNI portfwd requiring masquerade"),))


def toplevel_dnat_chain() -> Chain:
    """genToplevelDnatChain."""
    return Chain(TOP_DNAT_CHAIN, entry_chains=("PREROUTING", "OUTPUT"),
                 entry_rules=(("-m", "addrtype", "--dst-type", "LOCAL"),))


def dnat_chain(network: str, cid: str, address: IPv4Interface, entries: tuple[HostPort, ...]) -> Chain:
    """genDnatChain filled by fillDnatRules for an IPv4 container address (with snat)."""
    comment = f'dnat name: "{network}" id: "{cid}"'
    if len(comment) > 255:                          # trimComment
        comment = comment[:253] + "..."
    by_proto: dict[str, list[int]] = {}
    for e in entries:
        by_proto.setdefault(e.protocol, []).append(e.host_port)
    entry_rules = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        for i in range(0, len(ports), MULTIPORT_MAX):
            entry_rules.append(("-m", "comment", "--comment", comment, "-m", "multiport", "-p", proto,
                                "--destination-ports", ",".join(str(p) for p in ports[i:i + MULTIPORT_MAX])))
    rules = []
    for e in entries:
        base: tuple[str, ...] = ("-p", e.protocol, "--dport", str(e.host_port))
        if e.host_ip and e.host_ip != "0.0.0.0":
            base += ("-d", e.host_ip)
        rules.append(base + ("-s", str(address), "-j", SETMARK_CHAIN))       # hairpin
        rules.append(base + ("-s", "127.0.0.1", "-j", SETMARK_CHAIN))         # localhost
        rules.append(base + ("-j", "DNAT", "--to-destination", f"{address.ip}:{e.container_port}"))
    return Chain(chain_name(network, cid), rules=tuple(rules), entry_chains=(TOP_DNAT_CHAIN,),
                 entry_rules=tuple(entry_rules))


@dataclass(frozen=True)
class PortmapAdd:
    """What one portmap ADD does, in order: the chains it sets up and the interface whose
    route_localnet it turns on."""

    container_id: str
    chains: tuple[Chain, ...]
    route_localnet: str


def plan(cid: str, address: IPv4Interface, entries: tuple[HostPort, ...], host_if: str = "cni0",
         network: str = NETWORK_NAME) -> PortmapAdd | None:
    """forwardPorts' steps for one container (None: no mapping, portmap passes the result on)."""
    if not entries:
        return None
    return PortmapAdd(cid, (setmark_chain(), masq_chain(), toplevel_dnat_chain(),
                            dnat_chain(network, cid, address, entries)), host_if)


def install(nf, add: PortmapAdd) -> None:
    """chain.go setup for each chain, on a namespace's netfilter (core.Netfilter)."""
    for chain in add.chains:
        if chain.name not in nf.chains(chain.table):
            nf.new_chain(chain.table, chain.name)
        for rule in chain.rules:
            _insert_unique(nf, chain.table, chain.name, False, rule)
        for entry in chain.entry_chains:
            for rule in chain.entry_rules:
                _insert_unique(nf, chain.table, entry, chain.prepend_entry, rule + ("-j", chain.name))


def _insert_unique(nf, table: str, chain: str, prepend: bool, args: tuple[str, ...]) -> None:
    """utils.InsertUnique: `iptables -C`, then -I 1 or -A."""
    spec = shlex.join(args)
    wanted = nf._parse(table, chain, spec).spec
    if any(rule.spec == wanted for rule in nf.rules(table, chain)):
        return
    if prepend:
        nf.insert(table, chain, spec, 1)
    else:
        nf.append(table, chain, spec)
