"""Pods made by the real CNI plugins, compared with netsim's model of the same pods.

`real_cni_node(cluster, node)` makes a node namespace and one namespace per pod of `node`,
then calls Debian's containernetworking-plugins the way a container runtime does (the CNI
protocol: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH in the environment,
the network configuration as JSON on standard input): `loopback` for `lo`, then `bridge`
with `host-local` IPAM for `eth0`, in the pods' creation order. The bridge configuration is
the one flannel's CNI plugin hands its delegate (flannel-io/cni-plugin, flannel_linux.go,
doCmdAdd and getDelegateIPAM: type bridge, `isGateway` true, `ipMasq` the opposite of
flanneld's --ip-masq, `mtu` from subnet.env, `ipam` host-local with the node's subnet as its
one range and the cluster CIDR as a route; kube-flannel.yml's cni-conf.json adds
`hairpinMode` and `isDefaultGateway`). `compare_cni(cluster, node, real)` lists what differs
from the model: addresses, routes and their order, cni0's address, MTU and MAC assignment,
each host veth's name pattern, MTU, master, hairpin flag and promiscuity and allmulti counts
(1 each: joining cni0 sets them, net/bridge/br_if.c), the pods' eth0 counts (0), and the
sysctls the plugin sets.
A pod with host ports gets the conflist's second plugin, `portmap`, as a runtime calls it: its
configuration from kube-flannel.yml's cni-conf.json (netsim.portmap.CNI_CONFLIST: name
`cbr0`, `"capabilities": {"portMappings": true}`), `runtimeConfig.portMappings` as
containerd's CRI fills it from the pod's ports with a hostPort, and `prevResult` the bridge's
result; every call for a pod names netsim's deterministic container ID, so the plugin's
CNI-DN-<hash> chain is the model's. `compare_portmap` then compares the nat table the plugin
wrote (`iptables-save -t nat` in the node's namespace) with the model's portmap rules, and
cni0's route_localnet.
What the plugins randomise (cni0's MAC, the veth names) is compared by pattern.

Safe as the rest of the lab: every namespace, container id and interface name passes the
validator of its kind, the JSON is built with json.dumps from checked values, nothing is
command text, and host-local's allocation directory lives in a temporary directory the lab
makes and removes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import portmap
from . import commands as tok
from ._netns import netns_path
from .process import LabUnavailable, run, tool

if TYPE_CHECKING:
    from ..cluster import Cluster

CNI_PATH = "/usr/lib/cni"
CNI_VERSION = "0.3.1"          # the cniVersion kube-flannel.yml's cni-conf.json names
VETH_NAME = re.compile(r"veth[0-9a-f]{8}")
CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
MAC = re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}")


def plugins_reason() -> str | None:
    """Why the real plugins cannot run here, or None."""
    for name in ("bridge", "host-local", "loopback", "portmap"):
        if not os.access(os.path.join(CNI_PATH, name), os.X_OK):
            return f"{CNI_PATH}/{name} is missing (Debian package containernetworking-plugins)"
    return None


def plugins_version() -> str:
    """The plugins' own version line (`bridge` answers CNI_COMMAND=VERSION with JSON; the
    package version is in `dpkg-query`)."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def delegate_config(cluster: "Cluster", node: str) -> dict[str, Any]:
    """The configuration flannel's CNI plugin passes to `bridge` for `node`, from the model."""
    ns = cluster.netns(node)
    cni0 = ns.devices["cni0"]
    iface = next(i for i in cni0.addresses)
    subnet = iface.network
    return {
        "cniVersion": CNI_VERSION,
        "name": "cbr0",
        "type": "bridge",
        "hairpinMode": True,
        "isDefaultGateway": True,
        "isGateway": True,
        "ipMasq": False,
        "mtu": int(tok.number(cni0.mtu, 68, 65535, "MTU")),
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": tok.ipv4_network(subnet)}]],
            "routes": [{"dst": tok.ipv4_network(cluster.pod_cidr)}],
        },
    }


@dataclass
class RealPod:
    name: str
    result: dict[str, Any]            # the bridge plugin's result JSON
    addresses: list[str]
    routes: list[str]                 # `ip route` of the pod, in the kernel's order
    mtu: int
    arp_notify: str
    counts: tuple[int, int] = (0, 0)  # eth0's promiscuity and allmulti (`ip -d link`)


@dataclass
class RealNode:
    config: dict[str, Any]
    pods: list[RealPod] = field(default_factory=list)
    bridge: dict[str, Any] = field(default_factory=dict)          # `ip -j -d link show cni0`
    bridge_addresses: list[str] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)     # the host veths, `ip -j -d link`
    ip_forward: str = ""
    version: str = ""
    nat: str = ""                        # `iptables-save -t nat` of the node, after the plugins
    route_localnet: str = ""             # net.ipv4.conf.cni0.route_localnet


def _ip(ns: str, *args: str) -> Any:
    return json.loads(run([tool("ip") or "ip", "-n", ns, "-j", *args]).stdout or "[]")


def real_cni_node(cluster: "Cluster", node: str, prefix: str) -> RealNode:
    """Run the plugins for every pod of `node`, in namespaces named `prefix` + model name;
    the namespaces and host-local's directory are removed before it returns."""
    reason = plugins_reason()
    if reason:
        raise LabUnavailable(reason)
    prefix = tok.prefix(prefix)
    pods = [p for p, spec in cluster.pods.items() if spec.node == node]
    config = delegate_config(cluster, node)
    names = [f"{prefix}{tok.netns_name(n)}" for n in [node, *pods]]
    state = tempfile.mkdtemp(prefix="nsl-cni-")
    config["ipam"]["dataDir"] = state
    real = RealNode(config, version=plugins_version())
    ip = tool("ip") or "ip"
    try:
        for n in names:
            run([ip, "netns", "add", n])
        node_ns = names[0]
        for pod, pod_ns in zip(pods, names[1:]):
            spec = cluster.spec.pods[pod]
            cid = spec.container_id
            if not CONTAINER_ID.fullmatch(cid):
                raise tok.UnsafeArgument(f"container ID {cid!r} is not 64 hex digits; nothing more was run")
            base = {"CNI_CONTAINERID": cid, "CNI_NETNS": netns_path(pod_ns), "CNI_PATH": CNI_PATH,
                    "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
            _plugin("loopback", {**base, "CNI_COMMAND": "ADD", "CNI_IFNAME": "lo"},
                    {"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"}, node_ns)
            result = _plugin("bridge", {**base, "CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"}, config, node_ns)
            if spec.host_ports:
                _plugin("portmap", {**base, "CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"},
                        portmap_config(spec.host_ports, result), node_ns)
            link = _ip(pod_ns, "-d", "link", "show", "eth0")[0]
            addrs = [f"{a['local']}/{a['prefixlen']}" for i in _ip(pod_ns, "addr", "show", "eth0")
                     for a in i.get("addr_info", []) if a.get("family") == "inet"]
            routes = run([ip, "-n", pod_ns, "route"]).stdout.splitlines()
            notify = run([ip, "netns", "exec", pod_ns, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).stdout
            real.pods.append(RealPod(pod, result, addrs, routes, link["mtu"], notify.strip(),
                                     (link.get("promiscuity", -1), link.get("allmulti", -1))))
        real.bridge = _ip(node_ns, "-d", "link", "show", "cni0")[0]
        # iproute2 does not print it: sysfs does (ip netns exec mounts the namespace's own /sys)
        real.bridge["addr_assign_type"] = int(run([ip, "netns", "exec", node_ns, "cat",
                                                   "/sys/class/net/cni0/addr_assign_type"]).stdout.strip() or -1)
        real.bridge_addresses = [f"{a['local']}/{a['prefixlen']}" for i in _ip(node_ns, "addr", "show", "cni0")
                                 for a in i.get("addr_info", []) if a.get("family") == "inet"]
        real.ports = [link for link in _ip(node_ns, "-d", "link", "show") if link.get("master") == "cni0"]
        real.ip_forward = run([ip, "netns", "exec", node_ns, "cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
        real.route_localnet = run([ip, "netns", "exec", node_ns, "cat",
                                   "/proc/sys/net/ipv4/conf/cni0/route_localnet"]).stdout.strip()
        real.nat = run([ip, "netns", "exec", node_ns, tool("iptables-save") or "iptables-save", "-t", "nat"],
                       check=False).stdout
    finally:
        for n in reversed(names):
            run([ip, "netns", "del", n], check=False)
        shutil.rmtree(state, ignore_errors=True)
    return real


def portmap_config(host_ports, prev_result: dict[str, Any]) -> dict[str, Any]:
    """portmap's configuration as libcni builds it from the conflist for one pod: the
    conflist's name and cniVersion, the plugin's own entry, runtimeConfig.portMappings (the
    capability it declares, filled by the runtime) and prevResult."""
    entry = next(p for p in portmap.CNI_CONFLIST["plugins"] if p["type"] == "portmap")
    mappings = [{"hostPort": int(tok.number(h.host_port, 1, 65535, "host port")),
                 "containerPort": int(tok.number(h.container_port, 1, 65535, "container port")),
                 "protocol": tok.word(h.protocol, portmap.PROTOCOLS),
                 **({"hostIP": tok.ipv4(h.host_ip)} if h.host_ip else {})} for h in host_ports]
    return {"cniVersion": CNI_VERSION, "name": portmap.NETWORK_NAME, **entry,
            "runtimeConfig": {"portMappings": mappings}, "prevResult": prev_result}


def portmap_lines(saved: str) -> list[str]:
    """The lines of an iptables-save nat table that are portmap's: its chains' declarations
    (counters cleared) and every rule in them or jumping to them."""
    out = []
    for line in saved.splitlines():
        if line.startswith(":CNI-"):
            out.append(line.split(" [")[0])
        elif line.startswith("-A ") and ("CNI-" in line.split()[1] or " -j CNI-" in line):
            out.append(line)
    return out


def compare_portmap(cluster: "Cluster", node: str, real: RealNode) -> list[str]:
    """What differs between portmap's rules in the model's nat table of `node` and the ones
    the real plugin wrote (the same lines in the same order; rule numbers in the built-in
    chains differ only by kube-proxy's and flanneld's rules, which the plugin's node lacks),
    and cni0's route_localnet."""
    out: list[str] = []
    model = portmap_lines(cluster.netns(node).netfilter.save("nat"))
    plugin = portmap_lines(real.nat)
    for i in range(max(len(model), len(plugin))):
        m = model[i] if i < len(model) else None
        p = plugin[i] if i < len(plugin) else None
        if m != p:
            out.append(f"nat line {i + 1}: model {m!r}, plugin {p!r}")
    model_localnet = str(int(bool(getattr(cluster.netns(node).devices["cni0"], "route_localnet", False))))
    if real.route_localnet != model_localnet:
        out.append(f"cni0 route_localnet: model {model_localnet}, plugin {real.route_localnet}")
    return out


def chapter_record(real: RealNode, node: str) -> dict[str, Any]:
    """What the toolbox chapter shows (notebooks/data/cni-result.json): the plugins' version, the
    configuration handed to `bridge` (without host-local's `dataDir`, a temporary directory of
    the run) and each pod's result JSON as the plugin printed it."""
    config = dict(real.config)
    config["ipam"] = {k: v for k, v in config["ipam"].items() if k != "dataDir"}
    return {"plugins": f"containernetworking-plugins {real.version}", "node": node, "config": config,
            "pods": [{"name": pod.name, "result": pod.result} for pod in real.pods]}


LAB_NETNS = re.compile(r"/nsl-[0-9]+-[a-z0-9]+-")


def masked(value: Any, key: str = "") -> Any:
    """`value` (a chapter record) with what changes from run to run replaced by its kind: the
    MACs and host veth names the plugins and the kernel pick at random, and the prefix of the
    lab's namespace names in `sandbox` paths; two runs of the same plugins then compare equal."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if isinstance(value, str):
        if MAC.fullmatch(value):
            return "<random MAC>"
        if VETH_NAME.fullmatch(value):
            return "veth<8 random hex digits>"
        if key == "sandbox":
            return LAB_NETNS.sub("/<lab prefix>", value)
    return value


def _plugin(name: str, env: dict[str, str], config: dict[str, Any], node_ns: str) -> dict[str, Any]:
    """One CNI call: the plugin runs in the node's namespace (as a runtime on the node does),
    its configuration on stdin; its result JSON back."""
    ip = tool("ip") or "ip"
    argv = [ip, "netns", "exec", node_ns, os.path.join(CNI_PATH, name)]
    done = subprocess.run(argv, input=json.dumps(config), capture_output=True, text=True, env=env, timeout=30,
                          check=False)
    if done.returncode != 0:
        raise LabUnavailable(f"the CNI plugin {name} failed ({done.returncode}): {done.stdout.strip()} "
                             f"{done.stderr.strip()}")
    return json.loads(done.stdout or "{}")


def compare_cni(cluster: "Cluster", node: str, real: RealNode) -> list[str]:
    """What differs between netsim's pods on `node` and the plugins' (empty: nothing)."""
    out: list[str] = []
    ns = cluster.netns(node)
    cni0 = ns.devices["cni0"]
    model_addr = [str(i) for i in cni0.addresses]
    if real.bridge_addresses != model_addr:
        out.append(f"cni0 addresses: model {model_addr}, plugins {real.bridge_addresses}")
    if real.bridge.get("mtu") != cni0.mtu:
        out.append(f"cni0 mtu: model {cni0.mtu}, plugins {real.bridge.get('mtu')}")
    if not MAC.fullmatch(real.bridge.get("address", "")) or real.bridge.get("addr_assign_type") != 3:
        out.append(f"cni0 MAC: plugins {real.bridge.get('address')} (addr_assign_type "
                   f"{real.bridge.get('addr_assign_type')}), the model's is set at creation (type 3)")
    if not getattr(cni0, "fixed_mac", False):
        out.append("cni0 MAC: the plugins set it when they create the bridge; the model's follows its ports")
    if real.ip_forward != str(int(ns.sysctl.ip_forward)):
        out.append(f"node ip_forward: model {ns.sysctl.ip_forward}, plugins {real.ip_forward}")
    host_names = sorted(p["ifname"] for p in real.ports)
    for name in host_names:
        if not VETH_NAME.fullmatch(name):
            out.append(f"host veth name {name!r} is not veth + 8 hex digits")
    model_ports = sorted(cni0.ports)
    for name in model_ports:
        if not VETH_NAME.fullmatch(name):
            out.append(f"model host veth name {name!r} is not veth + 8 hex digits")
    if len(real.ports) != len(model_ports):
        out.append(f"cni0 ports: model {len(model_ports)}, plugins {len(real.ports)}")
    counts = (cni0.promiscuity, cni0.allmulti)
    if (real.bridge.get("promiscuity"), real.bridge.get("allmulti")) != counts:
        out.append(f"cni0 promiscuity/allmulti: model {counts}, plugins "
                   f"{(real.bridge.get('promiscuity'), real.bridge.get('allmulti'))}")
    by_name = {port["ifname"]: port for port in real.ports}
    for pod in real.pods:
        # the plugin's result lists the host veth second (interfaces: cni0, host veth, eth0)
        names = [i.get("name") for i in pod.result.get("interfaces", [])]
        port = by_name.get(names[1]) if len(names) == 3 else None
        model_dev = getattr(cluster.netns(pod.name).devices["eth0"], "peer", None)
        if port is None or model_dev is None or model_dev.name not in cni0.ports:
            out.append(f"{pod.name} host veth: model {getattr(model_dev, 'name', None)}, plugins {names}")
            continue
        model_port = cni0.ports[model_dev.name]
        info = port.get("linkinfo", {}).get("info_slave_data", {})
        if bool(info.get("hairpin")) != bool(model_port.hairpin):
            out.append(f"{port['ifname']} hairpin: model {model_port.hairpin}, plugins {info.get('hairpin')}")
        if port.get("mtu") != model_dev.mtu:
            out.append(f"{port['ifname']} mtu: plugins {port.get('mtu')}, model {model_dev.mtu}")
        counts = (model_dev.promiscuity, model_dev.allmulti)
        if (port.get("promiscuity"), port.get("allmulti")) != counts:
            out.append(f"{port['ifname']} promiscuity/allmulti: model {counts} ({model_dev.name}), plugins "
                       f"{(port.get('promiscuity'), port.get('allmulti'))}")
    for pod in real.pods:
        if pod.arp_notify != "1":
            out.append(f"{pod.name} eth0 arp_notify: plugins {pod.arp_notify}, expected 1 (the bridge plugin sets it)")
        pns = cluster.netns(pod.name)
        eth0 = pns.devices["eth0"]
        model_addrs = [str(i) for i in eth0.addresses]
        if pod.addresses != model_addrs:
            out.append(f"{pod.name} eth0 addresses: model {model_addrs}, plugins {pod.addresses}")
        if pod.mtu != eth0.mtu:
            out.append(f"{pod.name} eth0 mtu: model {eth0.mtu}, plugins {pod.mtu}")
        if pod.counts != (eth0.promiscuity, eth0.allmulti):
            out.append(f"{pod.name} eth0 promiscuity/allmulti: model {(eth0.promiscuity, eth0.allmulti)}, "
                       f"plugins {pod.counts}")
        model_routes = [line for line in cluster.show(pod.name, "ip route").splitlines() if line.strip()]
        if [" ".join(r.split()) for r in pod.routes] != [" ".join(r.split()) for r in model_routes]:
            out.append(f"{pod.name} routes: model {model_routes}, plugins {pod.routes}")
    return out
