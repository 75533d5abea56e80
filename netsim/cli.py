"""`netsim` on the command line: list scenarios, print a trace, show a host's state, write pcaps.

    netsim scenarios
    netsim trace 4 --backend host-gw --proto icmp --pcap out.pcapng
    netsim trace pod-a pod-c --proto udp
    netsim trace 5 --detail summary
    netsim show node1 "ip route"
    netsim summary
    netsim ping pod-a 10.244.1.2 -c 1 -s 1472 -M do
    netsim traceroute pod-a -I pod-c
    netsim dig pod-a web.default.svc.cluster.local +tcp
    netsim curl pod-a http://web/ -d hello
    netsim curl --cluster load-balancer ext http://192.168.50.12:30088/healthz
    netsim nc pod-a -v pod-c 8080 --send 'GET / HTTP/1.1\r\n\r\n'

The tools (ping, traceroute, dig, curl, nc) run in a host (the first argument) of the reference
cluster, or with `--cluster load-balancer` of chapter 18's (the reference cluster plus the
LoadBalancer Services web-lb and local-lb), with the real tool's own options after it, print
what the real tool prints and exit with its status; `--trace` also prints every hop their
traffic took.

An input netsim refuses (an unknown endpoint, a port out of range, an option that does not
apply, a --pcap path that cannot be written) prints `netsim: error: ...` and exits with 2, as
argparse does for its own errors; a traceback means a bug in netsim.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from . import scenarios
from .errors import NetsimError, UsageError

BACKENDS = ("vxlan", "host-gw", "udp")
CLUSTERS = ("reference", "load-balancer")
PROTOS = ("tcp", "udp", "icmp")
VIEWS = ("ip addr", "ip -d link show", "ip route", "ip neigh", "bridge fdb", "iptables-save", "conntrack -L", "subnet.env")
_ROLE_COLOUR = {"request": "34", "reply": "32", "arp": "90", "error": "31"}


def _colour(text: str, code: str, on: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if on and code else text


def _scenario(name: str):
    """The scenario function `name` names (1-6 or an extra's name)."""
    if name.isdigit() and int(name) in scenarios.SIX:
        return scenarios.SIX[int(name)]
    if name in scenarios.EXTRAS:
        return scenarios.EXTRAS[name]
    raise UsageError(f"no scenario {name!r}; use 1-6 or one of {', '.join(scenarios.EXTRAS)} "
                      f"(or give a source and a destination, e.g. `netsim trace pod-a pod-c`)")


def trace_table(trace, colour: bool = False, decisions: bool = False) -> str:
    """A trace as a terminal table: one line per hop, coloured by role when `colour`."""
    from .views.sentences import heading, sentence
    lines = [_colour(heading(trace), "1", colour),
             f"{'#':>3} {'capture point':<22} {'dir':<3} {'role':<8} {'verdict':<9} frame"]
    for h in trace.hops:
        code = "31" if h.verdict == "dropped" else _ROLE_COLOUR.get(h.role, "")
        line = f"{h.index:3d} {h.where:<22} {h.direction:<3} {h.role:<8} {h.verdict:<9} {h.frame.summary()}"
        lines.append(_colour(line, code, colour))
        if decisions:
            lines += [f"{'':>8}- {sentence(d)}" for d in h.decisions]
    return "\n".join(lines)


def _cmd_scenarios(args, out) -> int:
    for number, fn in scenarios.SIX.items():
        print(f"{number}  {fn.__name__:<24} {(fn.__doc__ or '').strip().splitlines()[0]}", file=out)
    for name, fn in scenarios.EXTRAS.items():
        print(f"   {name:<24} {(fn.__doc__ or '').strip().splitlines()[0]}", file=out)
    return 0


def _check_pcap_path(path: str) -> None:
    """Refuse a --pcap FILE that cannot be written, before any trace runs."""
    if os.path.isdir(path):
        raise UsageError(f"--pcap {path!r} is a directory; give a file name, e.g. {os.path.join(path, 'trace.pcapng')}")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"--pcap {path!r}: the folder {folder!r} does not exist; create it first or pick another path")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--pcap {path!r}: the folder {folder!r} is not writable")


def _cmd_trace(args, out) -> int:
    if args.pcap is not None:
        _check_pcap_path(args.pcap)
    if len(args.target) == 1:
        if args.dport is not None:
            raise UsageError(f"--dport {args.dport} applies only to the SRC DST form; scenario "
                             f"{args.target[0]!r} has its own destination port")
        trace = _scenario(args.target[0])(backend=args.backend, proto=args.proto)
    elif len(args.target) == 2:
        from .cluster import reference_cluster
        if args.dport is not None and args.proto == "icmp":
            raise UsageError(f"--dport {args.dport} does not apply to --proto icmp (ping has no ports)")
        trace = reference_cluster(args.backend).send(args.target[0], args.target[1], proto=args.proto,
                                                     dport=args.dport)
    else:
        raise UsageError(f"got {len(args.target)} targets {' '.join(args.target)!r}: give a scenario (1-6 or a "
                         f"name) or a source and a destination")
    colour = args.colour == "always" or (args.colour == "auto" and out.isatty() and "NO_COLOR" not in os.environ)
    if args.detail is None:
        print(trace_table(trace, colour, args.decisions), file=out)
    else:
        from .views.explain import render
        print(render(trace, args.detail), file=out)
    if args.pcap:
        try:
            from .views.sentences import sentence
            trace.to_pcap(args.pcap, sentence)
        except OSError as e:
            raise UsageError(f"--pcap {args.pcap!r}: cannot write it: {e.strerror or e}") from None
        print(f"wrote {len(trace)} packets to {args.pcap} (open with: tshark -r {args.pcap} -d udp.port==8472,vxlan)",
              file=out)
    return 0


def _cmd_show(args, out) -> int:
    from .cluster import reference_cluster
    print(reference_cluster(args.backend).show(args.host, args.view), file=out)
    return 0


def _cmd_summary(args, out) -> int:
    from .views.compare import summary_table
    print(summary_table(backend=args.backend, proto=args.proto).text(), file=out)
    return 0


# ------------------------------------------------------------------------------ the tools

def _tool_cluster(args):
    from .cluster import load_balancer_cluster, reference_cluster
    if getattr(args, "cluster", "reference") == "load-balancer":
        return load_balancer_cluster(args.backend)
    return reference_cluster(args.backend)


def _curl_args(argv: list[str]) -> tuple[str, bytes | None, float | None]:
    """curl's options netsim runs: -s, -S, -sS, -d DATA, -m SECONDS, and one URL."""
    url, data, max_time, i = None, None, None, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-s", "-S", "-sS", "-Ss", "--silent", "--show-error"):
            pass
        elif arg in ("-d", "--data", "-m", "--max-time"):
            if i + 1 >= len(argv):
                raise UsageError(f"curl: option {arg}: requires parameter")
            value = argv[i + 1]
            i += 1
            if arg in ("-d", "--data"):
                data = value.encode()
            else:
                try:
                    max_time = float(value)
                except ValueError:
                    raise UsageError(f"curl: option {arg}: expected a proper numerical parameter, not {value!r}") from None
        elif arg.startswith("-"):
            raise UsageError(f"curl: option {arg}: is unknown to netsim's curl (it runs -s, -S, -d DATA, -m SECONDS)")
        elif url is None:
            url = arg
        else:
            raise UsageError(f"curl: netsim's curl fetches one URL; got {url!r} and {arg!r}")
        i += 1
    if url is None:
        raise UsageError("curl: no URL specified")
    return url, data, max_time


def _nc_args(argv: list[str]) -> dict:
    """nc's options netsim runs: -u, -v, -z, -N, -w SECONDS, then HOST PORT; and netsim's
    --send TEXT, what nc reads from its stdin."""
    opts: dict = {"udp": False, "verbose": False, "zero": False, "wait": None, "send": None}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--send":
            if i + 1 >= len(argv):
                raise UsageError("nc: --send needs the text nc sends")
            opts["send"] = argv[i + 1]
            i += 2
            continue
        if arg.startswith("-") and len(arg) > 1 and not rest:
            for j, letter in enumerate(arg[1:]):
                if letter == "w":
                    value = arg[j + 2:] or (argv[i + 1] if i + 1 < len(argv) else "")
                    if not arg[j + 2:]:
                        i += 1
                    if not value.isdigit():
                        raise UsageError(f"nc: timeout invalid: {value!r}")
                    opts["wait"] = int(value)
                    break
                flag = {"u": "udp", "v": "verbose", "z": "zero", "N": None, "n": None}.get(letter, "?")
                if flag == "?":
                    raise UsageError(f"nc: invalid option -- '{letter}'")
                if flag:
                    opts[flag] = True
        else:
            rest.append(arg)
        i += 1
    if len(rest) != 2 or not rest[1].isdigit():
        raise UsageError(f"nc: give HOST PORT (netsim's nc connects), got {' '.join(rest) or 'nothing'}")
    opts["dst"], opts["port"] = rest[0], int(rest[1])
    return opts


def _run_tool(args, out) -> int:
    from .cluster import tools
    cluster = _tool_cluster(args)
    argv = list(args.args)
    cold = not args.warm
    if args.command == "ping":
        from .programs.ping import parse_ping_args
        run = tools.ping_with(cluster, args.host, parse_ping_args(argv), cold)
    elif args.command == "traceroute":
        from .programs.traceroute import parse_traceroute_args
        run = tools.traceroute_with(cluster, args.host, parse_traceroute_args(argv), cold)
    elif args.command == "dig":
        run = tools.dig(cluster, args.host, "", argv=argv, cold=cold)
    elif args.command == "curl":
        url, data, max_time = _curl_args(argv)
        run = tools.fetch(cluster, args.host, url, data=data, max_time=max_time, cold=cold)
    else:
        opts = _nc_args(argv)
        text = opts["send"] if opts["send"] is not None else (args.send or "")
        send = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
        run = tools.nc(cluster, args.host, opts["dst"], opts["port"], send, opts["udp"], opts["verbose"],
                       opts["zero"], opts["wait"], cold=cold)
    out.write(run.stdout)
    if run.stderr:
        sys.stderr.write(run.stderr)
    if args.trace:
        for trace in run.traces:
            print(trace_table(trace), file=out)
    return run.status


def _tool_parser(sub, name: str, what: str, example: str) -> None:
    t = sub.add_parser(name, help=what, description=f"{what}, run in a host of the reference cluster; the "
                       f"tool's own options follow the host, e.g. `netsim {name} {example}`.")
    t.add_argument("--backend", choices=BACKENDS, default="vxlan", help="Flannel backend (default vxlan)")
    t.add_argument("--cluster", choices=CLUSTERS, default="reference",
                   help="reference (default), or load-balancer: the reference cluster plus chapter 18's "
                        "LoadBalancer Services web-lb (192.168.50.200) and local-lb (192.168.50.201, policy "
                        "Local, kube-proxy's health check on port 30088 of every node)")
    t.add_argument("--trace", action="store_true", help="also print every hop of the traffic")
    t.add_argument("--warm", action="store_true", help="keep learned neighbours, FDB entries and conntrack "
                                                       "(default: flushed first, as the book's traces start)")
    if name == "nc":
        t.add_argument("--send", metavar="TEXT", help="what nc sends (its stdin); \\r\\n escapes allowed")
    t.add_argument("host", help="where the tool runs: pod-a, pod-a/sidecar, node1, ext, gateway")
    t.add_argument("args", nargs=argparse.REMAINDER, help=f"{name}'s own arguments")
    t.set_defaults(run=_run_tool)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netsim", description="Packets in a Kubernetes/Flannel cluster, as the Linux "
                                "kernel handles them: traces, state views and pcaps from the emulator.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("scenarios", help="list the book's scenarios", description="List the six scenarios and extras.")
    s.set_defaults(run=_cmd_scenarios)

    t = sub.add_parser("trace", help="print a trace hop by hop (and write it as pcapng)",
                       description="Run a scenario (1-6 or an extra's name) or SRC DST on the reference cluster "
                                   "and print every hop.")
    t.add_argument("target", nargs="+", metavar="SCENARIO | SRC DST",
                   help="a scenario number or name, or a source and a destination (pod-a, node1, ext, web, "
                        "192.168.50.11:30080)")
    t.add_argument("--backend", choices=BACKENDS, default="vxlan", help="Flannel backend (default vxlan)")
    t.add_argument("--proto", choices=PROTOS, default="tcp", help="protocol (default tcp)")
    t.add_argument("--dport", type=int, help="destination port (SRC DST form only)")
    t.add_argument("--pcap", metavar="FILE", help="also write the trace as pcapng to FILE")
    t.add_argument("--decisions", action="store_true", help="print the kernel's decisions under each hop")
    t.add_argument("--detail", choices=("minimal", "summary", "detailed"),
                   help="print the trace explained at one level instead of the hop table: minimal (only the "
                        "header changes), summary (one line per hop), detailed (every decision)")
    t.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto",
                   help="colour by role (default: when stdout is a terminal)")
    t.set_defaults(run=_cmd_trace)

    v = sub.add_parser("show", help="a host's state as the real tools print it",
                       description="Print a view of one host of the reference cluster.")
    v.add_argument("host", help="node1, node2, pod-a, gateway, ext, underlay...")
    v.add_argument("view", help=f"one of: {', '.join(VIEWS)}, or 'ip route get ADDR'")
    v.add_argument("--backend", choices=BACKENDS, default="vxlan")
    v.set_defaults(run=_cmd_show)

    m = sub.add_parser("summary", help="one line per scenario: TTL, encapsulation, NAT",
                       description="The six scenarios side by side.")
    m.add_argument("--backend", choices=BACKENDS, default="vxlan")
    m.add_argument("--proto", choices=PROTOS, default="tcp")
    m.set_defaults(run=_cmd_summary)

    _tool_parser(sub, "ping", "iputils ping", "pod-a 10.244.1.2 -c 1 -s 1472 -M do")
    _tool_parser(sub, "traceroute", "traceroute 2.1 (UDP, -I ICMP, -T TCP)", "pod-a -T -p 8080 pod-c")
    _tool_parser(sub, "dig", "BIND's dig", "pod-a @10.244.1.2 web.default.svc.cluster.local")
    _tool_parser(sub, "curl", "curl (-sS, -d, -m)", "pod-a http://web/")
    _tool_parser(sub, "nc", "netcat-openbsd (-u, -v, -z, -w)", "pod-a -v pod-c 8080 --send hello")
    return p


def main(argv: Sequence[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        return args.run(args, out)
    except NetsimError as e:
        print(f"netsim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":   # pragma: no cover
    sys.exit(main())
