"""The real-kernel lab is safe by construction (issue #11): no name becomes command text, and
teardown cannot be skipped.

Hostile clusters are made by renaming objects of a valid cluster after it was built, so the
API's own validation is bypassed and what is tested is the lab's defence: each hostile name
must be refused (UnsafeArgument, a ConfigError) before any command runs, and nothing may be
created. The teardown tests kill and signal real lab processes; they need root on Linux and are
skipped elsewhere with the reason.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from netsim import reference_cluster
from netsim.errors import ConfigError, NetsimError
from netsim.lab import Lab, LabError, LabWarning, UnsafeArgument, _netns, commands, stale_namespaces
from netsim.lab.cleanup import FAMILY, process_alive
from netsim.lab.process import run
from netsim.netfilter import save_string
from netsim.netfilter.matches import CommentMatch

from test_lab import needs_lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETNS_DIR = "/run/netns"


# helpers ------------------------------------------------------------------------------------

def _namespaces() -> set[str]:
    """What `ip netns list` lists (it reads the same directory), without starting a process."""
    return set(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else set()


def _foreign(name: str) -> bool:
    """A namespace of another lab process running at the same time on this machine."""
    m = FAMILY.fullmatch(name)
    return m is not None and int(m[1]) != os.getpid()


def _children() -> list[tuple[int, str]]:
    """(pid, state) of every child process of this one, zombies included."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(rest[1]) == os.getpid():
            out.append((int(pid), rest[0].decode()))
    return out


def rename_namespace(cluster, old: str, new: str) -> None:
    nss = cluster.network.namespaces
    ns = nss.pop(old)
    ns.name = new
    nss[new] = ns


def rename_device(cluster, netns: str, old: str, new: str) -> None:
    devices = cluster.netns(netns).devices
    dev = devices.pop(old)
    dev.name = new
    devices[new] = dev


def _comment_match(cluster, host: str = "node1") -> CommentMatch:
    nf = cluster.netns(host).netfilter
    for rule in nf.rules("nat", "KUBE-SERVICES"):
        for match in rule.matches:
            if isinstance(match, CommentMatch) and "default/web" in (match.comment or ""):
                return match
    raise AssertionError("no kube-proxy comment for service web")


class Spy:
    """Every process started while it is installed (the lab starts them all with Popen)."""

    def __init__(self, monkeypatch):
        self.calls: list[list[str]] = []
        real = subprocess.Popen
        spy = self

        class Recording(real):  # type: ignore[misc, valid-type]
            def __init__(self, args, *a, **kw):
                spy.calls.append(list(args))
                super().__init__(args, *a, **kw)

        monkeypatch.setattr(subprocess, "Popen", Recording)


# the payloads: each would do something if it became command text -----------------------------

def payloads(evil: str, marker: str) -> dict[str, str]:
    return {
        "newline": f"pod-x\nnetns add {evil}",
        "carriage return": f"pod-x\rnetns add {evil}",
        "space": f"pod-x netns add {evil}",
        "tab": "pod-x\tup",
        "semicolon": f"pod-x;touch {marker}",
        "command substitution": f"$(touch {marker})",
        "backquotes": f"`touch {marker}`",
        "single quote": "pod'x",
        "double quote": 'pod"x',
        "hash": "pod#x",
        "backslash": "pod\\x",
        "parent directory": "../../tmp/x",
        "slash": "a/b",
        "dot-dot": "..",
        "leading dash": "-n",
        "NUL": "pod\0x",
        "empty": "",
        "non-ASCII": "pöd",
    }


PAYLOAD_NAMES = list(payloads("e", "m"))


@pytest.fixture
def evidence(tmp_path):
    """A namespace name and a file path that a successful injection would create."""
    evil = f"nslevil{os.getpid()}"
    marker = str(tmp_path / "pwned")
    before = _namespaces()
    yield evil, marker
    made = _namespaces() - before
    for name in made:           # never expected; removed so one failure does not spread
        if evil in name:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _assert_nothing_happened(spy: Spy, before: set[str], evil: str, marker: str) -> None:
    assert spy.calls == [], f"commands ran before the refusal: {spy.calls}"
    new = _namespaces() - before
    assert not [n for n in new if not _foreign(n)], f"namespaces appeared: {sorted(new)}"
    assert not os.path.exists(f"{NETNS_DIR}/{evil}")
    assert not os.path.exists(marker)


# hostile names, each refused before anything runs --------------------------------------------

@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
def test_a_hostile_namespace_name_is_refused_before_any_command(kind, evidence, monkeypatch):
    evil, marker = evidence
    bad = payloads(evil, marker)[kind]
    cluster = reference_cluster()
    rename_namespace(cluster, "pod-b", bad)
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument) as info:
        with Lab(cluster):
            pass
    assert repr(bad) in str(info.value) and "namespace name" in str(info.value)
    _assert_nothing_happened(spy, before, evil, marker)


@pytest.mark.parametrize("kind", PAYLOAD_NAMES + ["16 characters"])
def test_a_hostile_device_name_is_refused_before_any_command(kind, evidence, monkeypatch):
    evil, marker = evidence
    bad = payloads(evil, marker).get(kind, "eth0-sixteen-chr")
    assert kind != "16 characters" or len(bad) == 16
    cluster = reference_cluster()
    rename_device(cluster, "pod-a", "eth0", bad)
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument) as info:
        with Lab(cluster):
            pass
    assert repr(bad) in str(info.value) and "interface name" in str(info.value)
    _assert_nothing_happened(spy, before, evil, marker)


def test_a_newline_in_a_pod_name_cannot_run_a_command_as_root(evidence, monkeypatch):
    """The hole of issue #11: `ip -batch` reads a name with a newline as two commands, and
    `netns exec` in the second runs any program as root. The marker file would appear."""
    evil, marker = evidence
    cluster = reference_cluster()
    lab = Lab(cluster)
    rename_namespace(cluster, "pod-b", f"pod-b\nnetns exec {lab.netns('underlay')} touch {marker}")
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument, match="namespace name"):
        with lab:
            pass
    _assert_nothing_happened(spy, before, evil, marker)
    assert lab.namespaces == [] and lab.leftovers() == []


def test_a_hostile_node_name_is_refused(evidence, monkeypatch):
    evil, marker = evidence
    cluster = reference_cluster()
    rename_namespace(cluster, "node2", f"node2\nnetns add {evil}")
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument, match="namespace name"):
        Lab(cluster).__enter__()
    _assert_nothing_happened(spy, before, evil, marker)


@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
def test_a_hostile_lab_prefix_is_refused_when_the_lab_is_made(kind, evidence, monkeypatch):
    evil, marker = evidence
    bad = payloads(evil, marker)[kind]
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument) as info:
        Lab(reference_cluster(), prefix=bad)
    assert repr(bad) in str(info.value) and "lab prefix" in str(info.value)
    _assert_nothing_happened(spy, before, evil, marker)


@pytest.mark.parametrize("field,value,rule", [
    ("mac", "aa:bb:cc:dd:ee:ff\nnetns add {evil}", "MAC address"),
    ("mac", "aa:bb:cc:dd:ee:ff dev lo", "MAC address"),
    ("mtu", "1500\nnetns add {evil}", "MTU"),
    ("mtu", 10 ** 6, "MTU"),
    ("mtu", True, "MTU"),
])
def test_hostile_device_values_are_refused(field, value, rule, evidence, monkeypatch):
    evil, marker = evidence
    if isinstance(value, str):
        value = value.format(evil=evil)
    cluster = reference_cluster()
    setattr(cluster.netns("pod-a").devices["eth0"], field, value)
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument, match=rule):
        Lab(cluster).__enter__()
    _assert_nothing_happened(spy, before, evil, marker)


@pytest.mark.parametrize("comment", [
    "default/web\n-A INPUT -j DROP",                       # a service name with a newline
    "default/web\n*filter\n-F\nCOMMIT",
    "default/web\0",
    "default/web\r-F",
    "caf\u00e9",                                           # not ASCII
    "x" * 256,                                             # longer than xt_comment keeps
])
def test_a_hostile_service_name_in_an_iptables_comment_is_refused(comment, evidence, monkeypatch):
    evil, marker = evidence
    cluster = reference_cluster()
    _comment_match(cluster).comment = comment
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument, match="iptables"):
        Lab(cluster).__enter__()
    _assert_nothing_happened(spy, before, evil, marker)


@pytest.mark.parametrize("comment", ['default/web" -j ACCEPT -m comment --comment "x', "default/web\\", "a'b;$(c)"])
def test_quotes_and_backslashes_in_a_comment_stay_inside_it(comment):
    """save_string() escapes them as iptables-save does, so iptables-restore reads the comment
    back as one word, intact: nothing in it can end the comment and add an option."""
    cluster = reference_cluster()
    _comment_match(cluster).comment = comment
    text = cluster.netns("node1").netfilter.save()
    assert commands.check_restore(text) == text
    line = next(line for line in text.splitlines() if save_string(comment) in line)
    words = commands.restore_tokens(line)
    assert (comment, True) in words
    assert [w for w, _ in words].count("-j") == 1


def test_a_hostile_chain_name_is_refused(evidence, monkeypatch):
    evil, marker = evidence
    cluster = reference_cluster()
    nf = cluster.netns("node1").netfilter
    rule = nf.rules("nat", "KUBE-SERVICES")[0]
    rule.chain = "KUBE-SERVICES\n-F"
    before = _namespaces()
    spy = Spy(monkeypatch)
    with pytest.raises(UnsafeArgument, match="iptables"):
        Lab(cluster).__enter__()
    _assert_nothing_happened(spy, before, evil, marker)


def test_the_lab_refuses_a_hostile_name_at_exchange_time_too():
    lab = Lab(reference_cluster())
    for bad in ("a\nb", "a b", "../x", "-n"):
        with pytest.raises(UnsafeArgument):
            lab.netns(bad)
    with pytest.raises(UnsafeArgument):
        _netns.netns_path("../../etc")


def test_every_refusal_is_netsim_s_own_error():
    with pytest.raises(UnsafeArgument) as info:
        commands.ifname("eth0\nx")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, NetsimError)
    assert issubclass(LabError, NetsimError) and issubclass(LabError, RuntimeError)
    assert "'eth0\\nx'" in str(info.value) and "dev_valid_name" in str(info.value)


# the validators and the input checks, rule by rule -------------------------------------------

@pytest.mark.parametrize("value,ok", [
    ("eth0", True), ("flannel.1", True), ("veth9bb860b4", True), ("p-node1", True), ("a" * 15, True),
    ("a" * 16, False), ("", False), (".", False), ("..", False), ("-x", False), (".x", False),
    ("a:b", False), ("a/b", False), ("a b", False), ("a\n", False), ("é", False), (None, False), (5, False),
])
def test_interface_names_follow_dev_valid_name(value, ok):
    if ok:
        assert commands.ifname(value) == value
    else:
        with pytest.raises(UnsafeArgument):
            commands.ifname(value)


@pytest.mark.parametrize("value,check,ok", [
    ("10.244.1.2", commands.ipv4, True), ("10.244.1.2 dev lo", commands.ipv4, False),
    ("010.1.1.1", commands.ipv4, False), ("10.244.1.0/24", commands.ipv4_network, True),
    ("10.244.1.1/24", commands.ipv4_network, False), ("10.244.1.1/24", commands.ipv4_interface, True),
    ("0e:4f:55:99:cf:d7", commands.mac, True), ("0E:4F:55:99:CF:D7", commands.mac, False),
    ("0e:4f:55:99:cf", commands.mac, False), ("KUBE-SVC-LOLE4ISW44XBNF3G", commands.chain, True),
    ("K" * 29, commands.chain, False),
])
def test_addresses_macs_and_chains(value, check, ok):
    if ok:
        assert check(value) == value
    else:
        with pytest.raises(UnsafeArgument):
            check(value)


def test_numbers_are_integers_in_range():
    assert commands.number(1500, 68, 65535) == "1500"
    for bad in (67, 65536, "1500", 1.5, None):
        with pytest.raises(UnsafeArgument, match="an integer from 68 to 65535"):
            commands.number(bad, 68, 65535)


@pytest.mark.parametrize("word", ["a b", "a\nb", "a#b", "a'b", 'a"b', "a\\b", "", "a\tb", "a;b", "$(x)"])
def test_a_batch_line_takes_only_plain_tokens(word):
    with pytest.raises(UnsafeArgument, match="batch word"):
        commands.batch([("link", "set", "dev", word, "up")])


def test_a_batch_is_exactly_its_lines():
    assert commands.batch([("netns", "add", "nsl-1-1-pod-a"), ("netns", "add", "nsl-1-1-pod-b")]) == \
        "netns add nsl-1-1-pod-a\nnetns add nsl-1-1-pod-b\n"


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_every_model_ruleset_passes_the_restore_check(backend):
    from netsim.lab import SHAPES
    for shape, (_, make) in SHAPES.items():
        cluster = make(backend)
        for name, ns in cluster.network.namespaces.items():
            text = ns.netfilter.save()
            assert commands.check_restore(text) == text, (shape, name)


@pytest.mark.parametrize("text,why", [
    ("*filter\n-F\nCOMMIT\n", "-A CHAIN"),
    ("*filter\n-X\nCOMMIT\n", "-A CHAIN"),
    ("*filter\n-A INPUT -j ACCEPT\n", "closed by COMMIT"),
    ("*filter\n*nat\nCOMMIT\n", "after the last one's COMMIT"),
    ("*bogus\nCOMMIT\n", "one of raw"),
    ("-A INPUT -j ACCEPT\n", "inside a"),
    ("*filter\n:INPUT ACCEPT\nCOMMIT\n", ":CHAIN POLICY"),
    ("*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n", "one of ACCEPT"),
    ("*filter\n-A INPUT -j \"ACCEPT\"\nCOMMIT\n", "only a --comment"),
    ("*filter\n-A INPUT  -j ACCEPT\nCOMMIT\n", "single blanks"),
    ("*filter\n-A INPUT -m comment --comment \"a\nb\" -j ACCEPT\nCOMMIT\n", "balanced"),
    ("*filter\n-A INPUT -j ACCEPT\nCOMMIT", "ended by a newline"),
    ("*filter\n-A INPUT -j ACCEPT\x00\nCOMMIT\n", "printable"),
    ("*filter\n-A INPUT -m comment --comment caf\u00e9 -j ACCEPT\nCOMMIT\n", "printable"),
    ("*filter\n-A INPUT -m comment --comment \"a\" -j ACCEPT;\nCOMMIT\n", "token"),
    ("*filter\n-A INPUT -j KUBE-" + "X" * 30 + "\nCOMMIT\n", "chain name"),
    ("*filter\n-A INPUT -m comment --comment \"plain\" -j ACCEPT\nCOMMIT\n", "printed back"),
])
def test_the_restore_check_refuses_every_other_form(text, why):
    with pytest.raises(UnsafeArgument, match=why):
        commands.check_restore(text)


def test_restore_words_are_read_as_iptables_restore_reads_them():
    assert commands.restore_tokens('-A X -m comment --comment "a \\" b\\\\" -j Y') == [
        ("-A", False), ("X", False), ("-m", False), ("comment", False), ("--comment", False),
        ('a " b\\', True), ("-j", False), ("Y", False)]


def test_commands_are_shown_shell_quoted():
    argv = ["ip", "netns", "exec", "nsl-1-1-node1", "sysctl", "-qw", "net.ipv4.ip_local_port_range=32768 60999"]
    assert commands.shown(argv) == \
        "ip netns exec nsl-1-1-node1 sysctl -qw 'net.ipv4.ip_local_port_range=32768 60999'"
    assert shlex.split(commands.shown(argv)) == argv


# commands that run too long, or are left running, are killed and reaped ----------------------

def test_a_command_past_its_timeout_is_killed_and_reaped():
    before = {pid for pid, _ in _children()}
    t0 = time.perf_counter()
    with pytest.raises(LabError, match="did not finish within 0.3 s; it was killed"):
        run(["sleep", "30"], timeout=0.3)
    assert time.perf_counter() - t0 < 10
    left = [(pid, state) for pid, state in _children() if pid not in before]
    assert left == [], f"children left (Z = zombie): {left}"


def test_a_failing_command_is_a_lab_error_with_its_argv_quoted():
    with pytest.raises(LabError, match="`sh -c 'exit 3'` failed \\(3\\)"):
        run(["sh", "-c", "exit 3"])


def test_a_zombie_is_not_alive():
    proc = subprocess.Popen(["true"])
    deadline = time.time() + 5
    while time.time() < deadline and dict(_children()).get(proc.pid) != "Z":
        time.sleep(0.01)
    assert dict(_children()).get(proc.pid) == "Z"
    assert not process_alive(proc.pid)
    proc.wait()
    assert not process_alive(proc.pid)
    assert process_alive(os.getpid())


# the lab itself (root) -------------------------------------------------------------------------

@needs_lab
def test_a_lab_creates_namespaces_only_under_its_prefix_and_shows_its_commands_quoted():
    before = _namespaces()
    with Lab(reference_cluster()) as lab:
        new = {n for n in _namespaces() - before if not _foreign(n)}
        assert new and all(n.startswith(lab.prefix) for n in new), sorted(new)
        assert sorted(new) == sorted(lab.namespaces)
        ns = lab.netns("node1")
        assert f"ip netns exec {ns} sysctl -qw 'net.ipv4.ip_local_port_range=32768 60999'" in lab.commands
        for command in lab.commands:
            if command.startswith("#") or "<<'EOF'" in command:
                continue
            assert commands.shown(shlex.split(command)) == command
    assert lab.leftovers() == []


@needs_lab
def test_a_namespace_the_lab_did_not_make_is_never_deleted():
    prefix = f"nsltaken{os.getpid()}-"
    theirs = f"{prefix}pod-c"
    subprocess.run(["ip", "netns", "add", theirs], check=True, capture_output=True)
    try:
        lab = Lab(reference_cluster(), prefix=prefix)
        with pytest.raises(LabError, match=f"namespace {theirs} exists already"):
            with lab:
                pass
        assert lab.namespaces == [] and lab.leftovers() == [theirs]    # left as it was
    finally:
        subprocess.run(["ip", "netns", "del", theirs], capture_output=True)


@needs_lab
def test_close_is_idempotent():
    lab = Lab(reference_cluster()).__enter__()
    lab.close()
    teardown = lab.timings["teardown"]
    lab.close()
    lab.close()
    assert lab.leftovers() == [] and lab.timings["teardown"] == teardown
    with pytest.raises(LabError, match="not built"):
        lab.exchange("pod-a", "pod-c", "tcp")


@needs_lab
def test_close_kills_and_reaps_a_command_still_running_for_the_lab():
    lab = Lab(reference_cluster()).__enter__()
    before = {pid for pid, _ in _children()}
    errors: list[BaseException] = []

    def orphan() -> None:
        try:
            lab._cmd(["sleep", "30"])
        except BaseException as exc:      # the kill shows up here, in the thread that ran it
            errors.append(exc)

    thread = threading.Thread(target=orphan)
    thread.start()
    deadline = time.time() + 5
    while not lab._children and time.time() < deadline:
        time.sleep(0.01)
    assert lab._children, "the command never started"
    t0 = time.perf_counter()
    lab.close()
    thread.join(timeout=10)
    assert time.perf_counter() - t0 < 10
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], LabError) and "failed (-9)" in str(errors[0])
    assert lab.leftovers() == []
    left = [(pid, state) for pid, state in _children() if pid not in before]
    assert left == [], f"children left (Z = zombie): {left}"


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    import netsim
    from netsim.lab import Lab
    lab = Lab(netsim.reference_cluster()).__enter__()
    print(lab.prefix, len(lab.namespaces), flush=True)
    mode = sys.argv[1]
    if mode == "block":
        time.sleep(120)
    sig = getattr(signal, mode)
    real = Lab._delete_namespaces

    def interrupted(self):
        if not sent:
            sent.append(sig)
            os.kill(os.getpid(), sig)  # the signal arrives while close() runs ...
            time.sleep(0.3)            # ... and would be handled here
            print("still closing", flush=True)
        real(self)

    sent = []

    Lab._delete_namespaces = interrupted
    try:
        lab.close()
    except KeyboardInterrupt:
        print("KeyboardInterrupt after close, leftovers", lab.leftovers(), flush=True)
        sys.exit(0)
    print("close returned", flush=True)
""")


def _child(mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


@needs_lab
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_during_close_lets_close_finish_then_terminates(name):
    proc = _child(name)
    out, err = proc.communicate(timeout=60)
    prefix = out.split()[0]
    assert prefix.startswith("nsl-"), err
    assert "still closing" in out and "close returned" not in out, out + err
    assert proc.returncode == -getattr(signal, name), (proc.returncode, err)
    assert sorted(n for n in _namespaces() if n.startswith(prefix)) == []


@needs_lab
def test_sigint_during_close_lets_close_finish_then_raises_keyboardinterrupt():
    proc = _child("SIGINT")
    out, err = proc.communicate(timeout=60)
    prefix = out.split()[0]
    assert prefix.startswith("nsl-"), err
    assert "KeyboardInterrupt after close, leftovers []" in out, out + err
    assert proc.returncode == 0, err
    assert sorted(n for n in _namespaces() if n.startswith(prefix)) == []


def _start_blocking_lab() -> tuple[subprocess.Popen, str, int]:
    proc = _child("block")
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0].startswith("nsl-"), proc.stderr.read() if proc.stderr else ""
    return proc, line[0], int(line[1])


@needs_lab
def test_after_sigkill_the_next_lab_removes_the_dead_run_s_namespaces_and_says_so():
    killed, killed_prefix, count = _start_blocking_lab()
    alive, alive_prefix, _ = _start_blocking_lab()       # a lab running at the same time
    try:
        mine = sorted(n for n in _namespaces() if n.startswith(killed_prefix))
        assert len(mine) == count == len(reference_cluster().network.namespaces)
        killed.kill()                                     # SIGKILL: no handler, no atexit
        killed.wait()
        assert sorted(n for n in _namespaces() if n.startswith(killed_prefix)) == mine   # left behind
        assert set(mine) <= set(stale_namespaces())
        with pytest.warns(LabWarning, match=rf"removed .*\b{killed.pid}\b") as caught:
            with Lab(reference_cluster()) as lab:
                assert set(mine) <= set(lab.reclaimed)
                assert not set(lab.namespaces) & set(lab.reclaimed)
        assert any(killed_prefix in str(w.message) for w in caught)
        assert sorted(n for n in _namespaces() if n.startswith(killed_prefix)) == []
        # the live lab's namespaces were not touched
        assert len([n for n in _namespaces() if n.startswith(alive_prefix)]) == count
    finally:
        for proc in (killed, alive):
            if proc.poll() is None:
                proc.terminate()
            proc.communicate(timeout=60)
    assert alive.returncode == -signal.SIGTERM
    assert sorted(n for n in _namespaces() if n.startswith(alive_prefix)) == []   # it cleaned up itself
