"""Bad input to each tool, in the API and on the command line, is netsim's own error naming the
value: a bad option, an unknown host (every search-list name NXDOMAIN from the cluster DNS, or
no such host in a cluster without one), a size over 65,507 where the tool takes a size."""

from __future__ import annotations

import pytest

from netsim import Cluster, ConfigError, UnknownHostError, UsageError, reference_cluster
from test_cli import run

SEARCHED = "nosuch.default.svc.cluster.local"


@pytest.mark.parametrize("call, error, words", [
    # a bad option
    (lambda c: c.ping("pod-a", "pod-c", pmtudisc="probe"), UsageError, ("'probe'",)),
    (lambda c: c.traceroute("pod-a", "pod-c", mode="gre"), UsageError, ("'gre'",)),
    (lambda c: c.dig("pod-a", "web", qtype="BOGUS"), UsageError, ("BOGUS",)),
    (lambda c: c.fetch("pod-a", "ftp://pod-c/"), UsageError, ("ftp://pod-c/",)),
    (lambda c: c.nc("pod-a", "pod-c", 8080, wait=0), UsageError, ("wait 0",)),
    # an unknown host
    (lambda c: c.ping("pod-a", "nosuch"), UnknownHostError, ("'nosuch'", SEARCHED)),
    (lambda c: c.traceroute("pod-a", "nosuch"), UnknownHostError, ("'nosuch'", SEARCHED)),
    (lambda c: c.dig("pod-a", "web", server="nosuch"), ConfigError, ("@nosuch",)),
    (lambda c: c.fetch("pod-a", "http://nosuch/"), UnknownHostError, ("'nosuch'", SEARCHED)),
    (lambda c: c.nc("pod-a", "nosuch", 80), UnknownHostError, ("'nosuch'", SEARCHED)),
    (lambda c: c.ping("nohost", "pod-c"), ConfigError, ("'nohost'",)),
    # a size over 65,507
    (lambda c: c.ping("pod-a", "pod-c", size=65508), UsageError, ("65508", "65507")),
    (lambda c: c.traceroute("pod-a", "pod-c", packetlen=65508), UsageError, ("65508",)),
    (lambda c: c.fetch("pod-a", "pod-c", size=-1), UsageError, ("-1",)),
])
def test_the_api_refuses_naming_the_value(call, error, words):
    with pytest.raises(error) as caught:
        call(reference_cluster())
    assert all(w in str(caught.value) for w in words), str(caught.value)


@pytest.mark.parametrize("argv, words", [
    (("ping", "pod-a", "-x", "pod-c"), ("'x'",)),
    (("traceroute", "pod-a", "pod-c", "65508"), ("65508",)),
    (("dig", "pod-a", "+bogus", "web"), ("+bogus",)),
    (("curl", "pod-a", "-X", "http://web/"), ("-X",)),
    (("nc", "pod-a", "-Q", "pod-c", "80"), ("'Q'",)),
    (("ping", "pod-a", "-c", "1", "-s", "65508", "pod-c"), ("65508", "65507")),
    (("ping", "pod-a", "-c", "1", "nosuch"), ("unknown host 'nosuch'", SEARCHED)),
    (("traceroute", "pod-a", "nosuch"), ("unknown host 'nosuch'",)),
    (("curl", "pod-a", "http://nosuch/"), ("unknown host 'nosuch'",)),
    (("nc", "pod-a", "nosuch", "80"), ("unknown host 'nosuch'",)),
    (("dig", "pod-a", "@nosuch", "web"), ("@nosuch",)),
    (("ping", "nohost", "-c", "1", "pod-c"), ("'nohost'",)),
])
def test_the_command_line_refuses_naming_the_value(capsys, argv, words):
    code, out = run(*argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("netsim: error: ") and all(w in err for w in words), err


def test_without_a_dns_server_an_unknown_name_is_refused_without_traffic():
    cluster = Cluster()
    cluster.add_pod("pod-a")
    with pytest.raises(UnknownHostError) as caught:
        cluster.fetch("pod-a", "http://nosuch/")
    assert "'nosuch'" in str(caught.value) and SEARCHED in str(caught.value) and caught.value.traces == ()
