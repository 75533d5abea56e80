"""The tools a reader types in a pod, run on the cluster: ping, traceroute, dig, curl, nc.

Each runs its program (netsim/programs/) in the source's namespace in one walk of the network
(`Network.run`), until nothing is pending: every probe, answer, ACK and FIN, timers included.
The result (`ToolRun`) holds the program's own record, what the real tool would print (its
output functions, stdout and stderr), its exit status, how the destination was resolved
(`dns.Resolution`) and the trace(s): the resolver's walk first when a name went through DNS,
then the tool's. Arguments are checked as netsim's API checks them: a bad value, an unknown
host, a ping size over 65,507 are netsim's own errors naming the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..addresses import stable_hash
from ..errors import ConfigError, UnknownHostError, UsageError
from ..params import check_port
from ..programs.dig import Dig, DigOptions, dig_stderr, format_dig, parse_dig_args
from ..programs.events import Program
from ..programs.http import Fetch, format_fetch
from ..programs.nc import Nc
from ..programs.ping import MAX_PAYLOAD, Ping, PingOptions, PingResult, api_options, format_ping, ping_stderr, ping_stdout
from ..programs.resolver import Resolve, ResolvConf, search_names
from ..programs.traceroute import MAX_PACKET, Traceroute, TracerouteOptions, TracerouteResult, format_traceroute
from ..trace import Trace
from .dns import Cluster, Resolution, resolv_conf, resolve_quietly

TOOL_MAX_HOPS = 400_000            # a loop guard for long conversations (a 100 kB transfer is ~1,500 hops)
MODES = ("udp", "icmp", "tcp")


@dataclass(frozen=True)
class ToolRun:
    """One run of a tool: `text` is what a terminal shows (stdout and stderr as the tool writes
    them), `result` the program's record, `trace` the walk of the tool's traffic."""

    tool: str
    argv: tuple[str, ...]              # the command line a reader would type
    host: str                          # where it ran
    result: object
    status: int
    stdout: str
    stderr: str
    text: str
    traces: tuple[Trace, ...] = ()
    resolution: Resolution | None = None
    program: Program | None = field(default=None, repr=False, compare=False)

    @property
    def trace(self) -> Trace:
        """The walk of the tool's own traffic (the last of `traces`)."""
        return self.traces[-1]

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        hops = sum(len(t) for t in self.traces)
        return f"<ToolRun {self.command!r} on {self.host}: exit {self.status}, {hops} hops>"


def source(cluster: Cluster, src: str) -> str:
    """The namespace a tool runs in: a pod (or pod/container), a node, the external host, the gateway."""
    found = cluster.resolve(src, source=True)
    if found.netns is None:
        raise ConfigError(f"{src!r} cannot run a tool: a service is not a host")
    return found.netns


def walk(cluster: Cluster, ns: str, program: Program, title: str, cold: bool) -> Trace:
    return cluster.network.run([(ns, program)], cold=cold, title=title, max_hops=TOOL_MAX_HOPS)


def destination(cluster: Cluster, src: str, ns: str, name: str, cold: bool) -> tuple[Resolution, tuple[Trace, ...]]:
    """The address a tool sends to: resolved by netsim without traffic when it can be
    (dns.resolve_quietly), else by glibc's resolver in the pod, walked like any traffic. A
    name every query of the search list found NXDOMAIN is an unknown host: netsim's own
    UnknownHostError naming it, the names tried and the known ones, with the lookup's trace
    (the real tool would print "Name or service not known"); a lookup that failed for another
    reason (SERVFAIL, no answer, no data) is the tool's own output, as the network made it."""
    found = resolve_quietly(cluster, src, name)
    if found is not None:
        return found, ()
    conf = resolv_conf(cluster, src)
    assert conf is not None
    lookup = Resolve(name, conf, seed=ns)
    trace = walk(cluster, ns, lookup, f"getaddrinfo({name}) in {src}", cold)
    result = lookup.lookup.result
    if result is not None and result.error == "EAI_NONAME":
        known = ", ".join([*cluster.pods, *cluster.nodes, *cluster.externals, *cluster.services])
        raise UnknownHostError(f"unknown host {name!r}: the cluster DNS answered NXDOMAIN for every name {src}'s "
                               f"resolver tried ({', '.join(search_names(name, conf))}); known names: {known}",
                               (trace,))
    if result is None or result.error or not result.addresses:
        return Resolution(name, "", "failed"), (trace,)
    ipv4 = [a for a in result.addresses if ":" not in a]
    if not ipv4:
        return Resolution(name, "", "failed"), (trace,)
    return Resolution(name, ipv4[0], "dns", result.canonical or name), (trace,)


def unresolved(tool: str, argv: list[str], src: str, resolution: Resolution, traces: tuple[Trace, ...],
               text: str, status: int) -> ToolRun:
    """A name the resolver could not turn into an address: what the tool prints (stderr) and
    its exit status."""
    return ToolRun(tool, tuple(argv), src, None, status, "", text, text, traces, resolution)


def display_name(resolution: Resolution) -> str:
    """The name the tool prints: the canonical name getaddrinfo returned, else as typed."""
    return resolution.fqdn.rstrip(".") if resolution.how in ("dns", "records") and resolution.fqdn else resolution.name


# ------------------------------------------------------------------------------ ping

def ping(cluster: Cluster, src: str, dst: str, count: int = 1, size: int = 56, ttl: int | None = None,
         pmtudisc: str = "want", tos: int = 0, broadcast: bool = False, cold: bool = True) -> ToolRun:
    """`ping -c COUNT -s SIZE [-t TTL] -M PMTUDISC [-Q TOS] [-b] DST` in `src`."""
    if pmtudisc not in ("want", "do", "dont"):
        raise UsageError(f"ping pmtudisc {pmtudisc!r}: use 'want', 'do' or 'dont' (ping -M)")
    options = api_options("127.0.0.1", count, size, ttl, tos, pmtudisc, broadcast)     # netsim's checks
    return ping_with(cluster, src, replace(options, destination=str(dst)), cold)


def ping_argv(options: PingOptions) -> list[str]:
    argv = ["ping", "-c", str(options.count), "-s", str(options.size)]
    argv += ["-t", str(options.ttl)] if options.ttl is not None else []
    argv += ["-M", options.pmtudisc] if options.pmtudisc else []
    argv += ["-Q", str(options.tos)] if options.tos else []
    argv += ["-i", f"{options.interval_ms / 1000:g}"] if options.interval_ms != 1000 else []
    argv += ["-W", f"{options.linger_ms / 1000:g}"] if options.linger_ms != 10000 else []
    return argv + (["-b"] if options.broadcast else []) + (["-q"] if options.quiet else []) + [options.destination]


def ping_with(cluster: Cluster, src: str, options: PingOptions, cold: bool = True) -> ToolRun:
    """ping with its options as parsed from a command line (parse_ping_args) or the API."""
    if options.size > MAX_PAYLOAD:
        raise UsageError(f"ping size {options.size} is out of range: 0 to {MAX_PAYLOAD} bytes of data fit an IPv4 "
                         f"packet (65535 - 20 - 8)")
    argv = ping_argv(options)
    ns = source(cluster, src)
    resolution, traces = destination(cluster, src, ns, options.destination, cold)
    if resolution.how == "failed":
        return unresolved("ping", argv, src, resolution, traces,
                          f"ping: {options.destination}: Name or service not known\n", 2)
    program = Ping(replace(options, destination=resolution.address), hostname=display_name(resolution))
    trace = walk(cluster, ns, program, " ".join(argv) + f" (in {src})", cold and not traces)
    result = program.result
    assert isinstance(result, PingResult)
    return ToolRun("ping", tuple(argv), src, result, program.status, ping_stdout(result), ping_stderr(result),
                   format_ping(result), (*traces, trace), resolution, program)


# ------------------------------------------------------------------------------ traceroute

def traceroute(cluster: Cluster, src: str, dst: str, mode: str = "udp", queries: int = 3, max_ttl: int = 30,
               first_ttl: int = 1, port: int | None = None, wait: float = 5.0, packetlen: int | None = None,
               numeric: bool = False, dont_fragment: bool = False, sim_queries: int = 16,
               cold: bool = True) -> ToolRun:
    """`traceroute [-I|-T] [-q Q] [-m MAX] [-f FIRST] [-p PORT] [-w WAIT] [-n] [-F] DST [LEN]` in `src`."""
    if mode not in MODES:
        raise UsageError(f"traceroute mode {mode!r}: use 'udp' (the default), 'icmp' (-I) or 'tcp' (-T)")
    for what, value, low, high in (("queries", queries, 1, 10), ("max_ttl", max_ttl, 1, 255),
                                   ("first_ttl", first_ttl, 1, max_ttl), ("sim_queries", sim_queries, 1, 1000)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise UsageError(f"traceroute {what} {value!r} is out of range {low}..{high}")
    if port is not None:
        check_port(port, "traceroute port")
    if packetlen is not None and (not isinstance(packetlen, int) or not 0 <= packetlen <= MAX_PACKET):
        raise UsageError(f"traceroute packet length {packetlen!r} is out of range 0..{MAX_PACKET}")
    if not isinstance(wait, (int, float)) or not 0 < wait <= 60:
        raise UsageError(f"traceroute wait {wait!r} must be a number of seconds, 0 to 60")
    options = TracerouteOptions(str(dst), mode, first_ttl, max_ttl, queries, port, int(wait * 1000), sim_queries,
                                numeric, dont_fragment, packetlen)
    return traceroute_with(cluster, src, options, cold)


def traceroute_argv(o: TracerouteOptions) -> list[str]:
    argv = ["traceroute"] + {"udp": [], "icmp": ["-I"], "tcp": ["-T"]}[o.method] + ["-q", str(o.queries)]
    argv += (["-m", str(o.max_ttl)] if o.max_ttl != 30 else []) + (["-f", str(o.first_ttl)] if o.first_ttl != 1 else [])
    argv += (["-p", str(o.port)] if o.port is not None else []) + (["-w", f"{o.wait_ms / 1000:g}"]
                                                                   if o.wait_ms != 5000 else [])
    argv += (["-N", str(o.sim_queries)] if o.sim_queries != 16 else [])
    argv += (["-n"] if o.numeric else []) + (["-F"] if o.dont_fragment else []) + [o.destination]
    return argv + ([str(o.packetlen)] if o.packetlen is not None else [])


def traceroute_with(cluster: Cluster, src: str, options: TracerouteOptions, cold: bool = True) -> ToolRun:
    """traceroute with its options as parsed from a command line (parse_traceroute_args) or the API."""
    argv = traceroute_argv(options)
    ns = source(cluster, src)
    dst = options.destination
    resolution, traces = destination(cluster, src, ns, dst, cold)
    if resolution.how == "failed":
        text = f"{dst}: Name or service not known\nCannot handle \"host\" cmdline arg `{dst}' on position 1 (argc 1)\n"
        return unresolved("traceroute", argv, src, resolution, traces, text, 2)
    netns = cluster.netns(ns)
    rr = netns.route_get(resolution.address)
    mtu = netns.path_mtu(rr) if rr is not None else 1500
    program = Traceroute(replace(options, destination=resolution.address), mtu=mtu,
                         seed=f"{ns}-{stable_hash('traceroute', cluster.network.clock.us)}", hostname=resolution.name)
    trace = walk(cluster, ns, program, " ".join(argv) + f" (in {src})", cold and not traces)
    result = program.result
    assert isinstance(result, TracerouteResult)
    text = format_traceroute(result)
    return ToolRun("traceroute", tuple(argv), src, result, program.status, text, "", text, (*traces, trace),
                   resolution, program)


# ------------------------------------------------------------------------------ dig

def dig(cluster: Cluster, src: str, name: str, server: str | None = None, tcp: bool = False, search: bool = False,
        qtype: str = "A", short: bool = False, cold: bool = True, argv: list[str] | None = None) -> ToolRun:
    """`dig [@SERVER] NAME [TYPE] [+tcp] [+search] [+short]` in `src`: queries to the pod's
    resolv.conf nameserver (the cluster DNS address) unless `server` names another."""
    if argv is None:
        argv = ([f"@{server}"] if server is not None else []) + [name] + ([qtype] if qtype != "A" else [])
        argv += (["+tcp"] if tcp else []) + (["+search"] if search else []) + (["+short"] if short else [])
    options: DigOptions = parse_dig_args(argv)
    ns = source(cluster, src)
    if options.server is not None:
        found = resolve_quietly(cluster, src, options.server)
        if found is None or found.how not in ("address", "host"):
            raise ConfigError(f"dig @{options.server}: give the server as an address or a host netsim names")
        argv = [a if not a.startswith("@") else f"@{found.address}" for a in argv]
        options = parse_dig_args(argv)
    conf = resolv_conf(cluster, src)
    if conf is None and options.server is None:
        raise ConfigError(f"dig in {src}: it is not a pod, so its resolv.conf names no cluster DNS; give a server "
                          f"(dig(..., server=ADDRESS) or @ADDRESS)")
    program = Dig(options, conf or ResolvConf(), seed=ns)
    trace = walk(cluster, ns, program, "dig " + " ".join(argv) + f" (in {src})", cold)
    result = program.result
    text = format_dig(result)  # type: ignore[arg-type]
    return ToolRun("dig", ("dig", *argv), src, result, program.status, text, dig_stderr(result),  # type: ignore[arg-type]
                   text + dig_stderr(result), (trace,), None, program)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ curl

def split_target(cluster: Cluster, target: str) -> tuple[str, int | None, str]:
    """`http://HOST[:PORT][/PATH]` or `HOST[:PORT]`: the host, the port (None: not given), the path."""
    if not isinstance(target, str) or not target:
        raise UsageError(f"fetch target {target!r} must be a URL (http://web/) or a host[:port]")
    rest = target[len("http://"):] if target.startswith("http://") else target
    if "://" in rest:
        raise UsageError(f"fetch URL {target!r}: only http:// is modelled")
    hostport, slash, path = rest.partition("/")
    host, colon, port = hostport.partition(":")
    if colon and not (port.isascii() and port.isdigit()):
        raise UsageError(f"fetch target {target!r}: port {port!r} is not a number")
    return host, check_port(int(port), f"fetch target {target!r}: port") if colon else None, "/" + path if slash else "/"


def fetch(cluster: Cluster, src: str, target: str, size: int | None = None, data: bytes | None = None,
          max_time: float | None = None, cold: bool = True, host: str | None = None) -> ToolRun:
    """`curl -sS [-d DATA] [-m SECONDS] [-H "Host: HOST"] http://HOST[:PORT]/[SIZE]` in `src`.
    `target` is a URL or a host[:port]; the port defaults to a Service's port for a Service name,
    else 8080 (the pods' HTTP server, which answers `/N` with N bytes); `size` asks for a
    response of that size; `host` is the Host header curl sends instead of its own (-H)."""
    if host is not None and (not isinstance(host, str) or not host or not host.isascii()
                             or any(c in host for c in "\r\n\0 ")):
        raise UsageError(f"fetch host {host!r} must be a host name for the Host header, without spaces or line ends")
    host_header = host
    host, port, path = split_target(cluster, target)
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 1 << 30:
            raise UsageError(f"fetch size {size!r} must be a whole number of bytes, 0 to {1 << 30}")
        path = f"/{size}"
    if port is None and target.startswith("http://"):
        port = 80
    elif port is None:
        service = cluster.services.get(host)
        port = service.port if service is not None else 8080
    if data is not None and not isinstance(data, bytes):
        raise UsageError(f"fetch data {data!r} must be bytes")
    if max_time is not None and (not isinstance(max_time, (int, float)) or max_time <= 0):
        raise UsageError(f"fetch max_time {max_time!r} must be a positive number of seconds")
    url = f"http://{host}{':' + str(port) if port != 80 else ''}{path}"
    argv = ["curl", "-sS"] + (["-d", data.decode("latin-1")] if data is not None else [])
    argv += (["-m", f"{max_time:g}"] if max_time else []) + (["-H", f"Host: {host_header}"] if host_header else [])
    argv += [url]
    ns = source(cluster, src)
    resolution, traces = destination(cluster, src, ns, host, cold)
    if resolution.how == "failed":
        text = f"curl: (6) Could not resolve host: {host}\n"
        return ToolRun("curl", tuple(argv), src, None, 6, "", text, text, traces, resolution)
    address_url = f"http://{resolution.address}:{port}{path}"
    program = Fetch(address_url, data, int(max_time * 1000) if max_time else 0, host_name=host,
                    host_header=host_header or "")
    trace = walk(cluster, ns, program, " ".join(argv) + f" (in {src})", cold and not traces)
    result = program.result
    out, err = format_fetch(result)  # type: ignore[arg-type]
    return ToolRun("curl", tuple(argv), src, result, program.status, out, err, out + err, (*traces, trace),
                   resolution, program)


# ------------------------------------------------------------------------------ nc

def nc(cluster: Cluster, src: str, dst: str, port: int, data: bytes = b"", udp: bool = False, verbose: bool = False,
       zero: bool = False, wait: int | None = None, shutdown: bool = True, cold: bool = True) -> ToolRun:
    """`nc [-u] [-v] [-z] [-N] [-w WAIT] DST PORT`, sending `data`, in `src`."""
    check_port(port, "nc port")
    if not isinstance(data, bytes):
        raise UsageError(f"nc data {data!r} must be bytes")
    if wait is not None and (not isinstance(wait, int) or isinstance(wait, bool) or not 0 < wait <= 3600):
        raise UsageError(f"nc wait {wait!r} must be a whole number of seconds, 1 to 3600")
    argv = ["nc"] + (["-u"] if udp else []) + (["-v"] if verbose else []) + (["-z"] if zero else [])
    argv += (["-N"] if shutdown and not udp else []) + (["-w", str(wait)] if wait else []) + [dst, str(port)]
    ns = source(cluster, src)
    resolution, traces = destination(cluster, src, ns, dst, cold)
    if resolution.how == "failed":
        text = f"nc: getaddrinfo for host \"{dst}\" port {port}: Name or service not known\n"
        return unresolved("nc", argv, src, resolution, traces, text, 1)
    program = Nc(resolution.address, port, data, udp, verbose, shutdown, zero, wait or (2 if udp else 0), name=dst)
    trace = walk(cluster, ns, program, " ".join(argv) + f" (in {src})", cold and not traces)
    result = program.result
    out = result.received.decode("latin-1") if result is not None else ""  # type: ignore[attr-defined]
    err = result.stderr if result is not None else ""  # type: ignore[attr-defined]
    return ToolRun("nc", tuple(argv), src, result, program.status, out, err, err + out, (*traces, trace),
                   resolution, program)
