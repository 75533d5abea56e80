"""The command line: subcommands, output, colour only on a terminal, clear errors."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import netsim
from netsim.cli import main
from netsim.views.sentences import heading


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_scenarios_lists_the_six_and_the_extras():
    code, out = run("scenarios")
    assert code == 0
    assert out.splitlines()[3].startswith("4  pod_to_pod_cross_node")
    assert "host-to-remote-pod" in out


def test_trace_prints_one_line_per_hop_without_colour_when_not_a_tty():
    code, out = run("trace", "4", "--backend", "host-gw", "--proto", "icmp")
    trace = netsim.scenarios.pod_to_pod_cross_node(backend="host-gw", proto="icmp")
    lines = out.splitlines()
    assert code == 0 and "\033[" not in out
    assert lines[0] == heading(trace)
    assert len(lines) == 2 + len(trace)
    assert lines[2 + trace.request[0].index].split()[:4] == ["%d" % trace.request[0].index, "pod-a/eth0", "tx",
                                                              "request"]


def test_colour_always_colours_requests_blue():
    _, out = run("trace", "2", "--colour", "always")
    assert "\033[34m" in out and "\033[0m" in out


def test_trace_from_source_and_destination_with_decisions():
    code, out = run("trace", "pod-a", "pod-c", "--proto", "udp", "--decisions")
    assert code == 0 and "UDP socket on port 8472" in out


def test_trace_writes_a_pcap(tmp_path):
    path = tmp_path / "s5.pcapng"
    code, out = run("trace", "5", "--pcap", str(path))
    assert code == 0 and path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert f"wrote {len(netsim.scenarios.external_to_nodeport())} packets" in out


def test_show_prints_the_state_view():
    code, out = run("show", "node1", "ip route")
    assert code == 0 and "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink" in out


def test_summary():
    code, out = run("summary")
    assert code == 0 and "VXLAN (UDP 8472)" in out


@pytest.mark.parametrize("argv, message", [
    (["trace", "9"], "no scenario '9'"),
    (["trace", "pod-a", "nowhere"], "unknown endpoint 'nowhere'"),
    (["show", "node9", "ip route"], "node9"),
    (["show", "node1", "ip rout"], "unknown view 'ip rout'"),
])
def test_bad_input_gives_a_clear_error(capsys, argv, message):
    assert main(argv, io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("netsim: error: ") and message in err and "Traceback" not in err


def test_bad_choice_and_help_come_from_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["trace", "4", "--backend", "flannel"])
    assert e.value.code == 2 and "invalid choice: 'flannel'" in capsys.readouterr().err
    for argv in (["--help"], ["trace", "--help"], ["show", "--help"], ["scenarios", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "usage: netsim" in capsys.readouterr().out


def test_python_dash_m_netsim():
    res = subprocess.run([sys.executable, "-m", "netsim", "scenarios"], capture_output=True, text=True)
    assert res.returncode == 0 and "pod_to_external" in res.stdout


def test_only_netsim_errors_become_exit_code_2(monkeypatch, capsys):
    """A refused input is exit code 2 with one line on stderr; any other exception is a bug in
    netsim and is not disguised as a usage error."""
    from netsim import cli
    from netsim.errors import ConfigError

    def refuse(**kw):
        raise ConfigError("refused for the test")

    def crash(**kw):
        raise KeyError("a bug")

    monkeypatch.setitem(cli.scenarios.SIX, 4, refuse)
    assert main(["trace", "4"], io.StringIO()) == 2
    assert capsys.readouterr().err == "netsim: error: refused for the test\n"
    monkeypatch.setitem(cli.scenarios.SIX, 4, crash)
    with pytest.raises(KeyError, match="a bug"):
        main(["trace", "4"], io.StringIO())


# ------------------------------------------------------------------------------ the tools


def test_ping_prints_what_iputils_prints_and_exits_with_its_status(capsys):
    code, out = run("ping", "pod-a", "10.244.1.2", "-c", "1", "-s", "1472", "-M", "do")
    assert code == 1
    assert out.splitlines()[0] == "PING 10.244.1.2 (10.244.1.2) 1472(1500) bytes of data."
    assert "1 packets transmitted, 0 received, +1 errors, 100% packet loss" in out
    assert capsys.readouterr().err == "ping: local error: message too long, mtu=1450\n"


def test_ping_refuses_a_size_over_65507_naming_it(capsys):
    code, out = run("ping", "pod-a", "-c", "1", "-s", "65508", "pod-c")
    assert (code, out) == (2, "")
    assert capsys.readouterr().err == ("netsim: error: ping size 65508 is out of range: 0 to 65507 bytes of data fit "
                                       "an IPv4 packet (65535 - 20 - 8)\n")


@pytest.mark.parametrize("argv, words", [
    (("ping", "pod-a", "-x", "pod-c"), ("invalid option -- 'x'",)),
    (("ping", "pod-a", "-c", "1", "nosuch"), ("unknown host 'nosuch'",)),
    (("traceroute", "pod-a", "-q", "11", "pod-c"), ("no more than 10 probes per hop",)),
    (("curl", "pod-a", "-X", "http://web/"), ("-X",)),
    (("nc", "pod-a", "pod-c"), ("HOST PORT",)),
    (("dig", "node1", "web.default.svc.cluster.local"), ("node1",)),
])
def test_a_tools_bad_input_is_netsims_error(capsys, argv, words):
    code, _ = run(*argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("netsim: error: ") and all(w in err for w in words), err


def test_traceroute_curl_and_nc(capsys):
    code, out = run("traceroute", "pod-a", "-n", "-q", "1", "pod-c")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["1", "10.244.0.1"], ["2", "10.244.1.0"],
                                                                    ["3", "10.244.1.2"]]
    assert run("curl", "pod-a", "http://pod-c:8080/5") == (0, "rrrrr")
    code, out = run("nc", "pod-a", "-v", "pod-c", "8080", "--send", r"GET /2 HTTP/1.1\r\n\r\n")
    assert (code, out) == (0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nrr")
    assert capsys.readouterr().err == "Connection to pod-c (10.244.1.2) 8080 port [tcp/http-alt] succeeded!\n"


def test_a_tool_with_trace_prints_its_hops():
    code, out = run("ping", "--trace", "pod-a", "-c", "1", "pod-b")
    assert code == 0
    assert "1 packets transmitted, 1 received" in out and "pod-b/eth0" in out and "pod-a/eth0" in out
