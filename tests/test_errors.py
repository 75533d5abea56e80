"""Configuration the kernel (or iproute2) would refuse raises ConfigError with a message that
names what was wrong and what would be valid."""

import pytest

import netsim
from netsim.errors import ConfigError, InvalidNameError, NetsimError, TraceError, UsageError
from netsim.stack import Network
from netsim.vxlan import VxlanDevice
from tests.topologies import two_hosts


def test_route_via_unreachable_gateway_is_a_clear_error():
    h1 = two_hosts().netns("h1")
    with pytest.raises(ConfigError) as err:
        h1.route_add("10.9.0.0/16", via="192.168.7.1")
    assert str(err.value) == ("route 10.9.0.0/16 via 192.168.7.1: the gateway is not reachable in namespace h1: "
                              "no connected route covers it (Error: Nexthop has invalid gateway)")
    with pytest.raises(ConfigError, match=r"not on-link on eth0 \(Error: Nexthop has invalid gateway\); "
                                          r"add 'onlink' to force it"):
        h1.route_add("10.9.0.0/16", via="192.168.7.1", dev="eth0")
    # with onlink the kernel accepts it, as flanneld's routes rely on
    h1.route_add("10.9.0.0/16", via="192.168.7.1", dev="eth0", onlink=True)


def test_overlapping_address_is_rejected():
    net = two_hosts()
    net.add_netns("h3")
    net.veth("h1", "eth1", "h3", "eth0")
    h1 = net.netns("h1")
    with pytest.raises(ConfigError) as err:
        h1.addr_add("eth1", "10.0.0.9/16")
    assert str(err.value) == "10.0.0.9/16 on eth1 overlaps 10.0.0.1/24 on eth0 in namespace h1"
    with pytest.raises(ConfigError, match=r"address 10.0.0.1 is already on h1/eth0"):
        h1.addr_add("eth1", "10.0.0.1/32")


def test_unknown_namespace_error_lists_valid_ones():
    net = two_hosts()
    with pytest.raises(ConfigError) as err:
        net.netns("h9")
    assert str(err.value) == "no namespace 'h9'; there are h1, h2"
    with pytest.raises(ConfigError, match="no namespace 'nope'; there are h1, h2"):
        net.send("nope", "10.0.0.2")


def test_unknown_device_error_lists_the_devices():
    with pytest.raises(ConfigError) as err:
        two_hosts().netns("h1").addr_add("eth7", "10.7.0.1/24")
    assert str(err.value) == "namespace h1 has no device 'eth7'; it has lo, eth0"


@pytest.mark.parametrize("cidr, message", [
    ("10.0.0.1", "address '10.0.0.1' needs a prefix length, e.g. 10.0.0.1/24"),
    ("10.0.0.300/24", "address '10.0.0.300/24' is not a valid IPv4 address/prefix (e.g. 10.244.0.1/24)"),
])
def test_bad_address_is_a_clear_error(cidr, message):
    with pytest.raises(ConfigError) as err:
        two_hosts().netns("h1").addr_add("eth0", cidr)
    assert str(err.value) == message


def test_route_with_host_bits_suggests_the_network():
    with pytest.raises(ConfigError) as err:
        two_hosts().netns("h1").route_add("10.9.0.1/16", dev="eth0")
    assert str(err.value) == "route destination '10.9.0.1/16' has host bits set; did you mean 10.9.0.0/16?"


def test_duplicate_route_is_file_exists():
    h1 = two_hosts().netns("h1")
    h1.route_add("10.9.0.0/16", via="10.0.0.2")
    with pytest.raises(ConfigError, match=r"exists already in table main \(RTNETLINK: File exists\)"):
        h1.route_add("10.9.0.0/16", via="10.0.0.2")


def test_route_src_must_be_local():
    with pytest.raises(ConfigError, match=r"src 10.0.0.2 is not an address of namespace h1 "
                                          r"\(RTNETLINK: Invalid prefsrc address\)"):
        two_hosts().netns("h1").route_add("10.9.0.0/16", dev="eth0", src="10.0.0.2")


def test_device_names_follow_ifnamsiz():
    h1 = two_hosts().netns("h1")
    with pytest.raises(ConfigError, match=r"invalid device name 'a-very-long-name0': 1-15 characters"):
        h1.add_device(VxlanDevice("a-very-long-name0", "02:00:00:00:00:01", 1, "10.0.0.1", "eth0"))
    with pytest.raises(ConfigError, match="namespace h1 already has a device named 'eth0'"):
        two_hosts().veth("h1", "eth0", "h2", "eth9")


def test_duplicate_namespace_is_rejected():
    net = two_hosts()
    with pytest.raises(ConfigError, match="a namespace named 'h1' exists already"):
        net.add_netns("h1")


def test_sysctl_errors_name_the_valid_choices():
    h1 = two_hosts().netns("h1")
    with pytest.raises(ConfigError, match=r"unknown sysctl 'net.ipv4.ip_forwarding'; modelled ones are "
                                          r"net.ipv4.ip_forward, "):
        h1.set_sysctl("net.ipv4.ip_forwarding", 1)
    with pytest.raises(ConfigError, match=r"ip_local_port_range 60999 32768 is invalid"):
        h1.set_sysctl("net.ipv4.ip_local_port_range", "60999 32768")
    with pytest.raises(ConfigError, match=r"ip_default_ttl 0 is out of range 1..255"):
        h1.set_sysctl("net.ipv4.ip_default_ttl", 0)


def test_send_argument_errors():
    net = two_hosts()
    with pytest.raises(ConfigError, match="protocol 'sctp' is not one of icmp, tcp, udp"):
        net.send("h1", "10.0.0.2", "sctp")
    with pytest.raises(ConfigError, match=r"tcp needs a destination port \(dport=\)"):
        net.send("h1", "10.0.0.2", "tcp")
    with pytest.raises(ConfigError, match="destination port 70000 is out of range 1..65535"):
        net.send("h1", "10.0.0.2", "udp", dport=70000)
    with pytest.raises(ConfigError, match=r"source 10.0.0.2 is not an address of h1 \(bind: Cannot assign "):
        net.send("h1", "10.0.0.2", src="10.0.0.2")
    with pytest.raises(ConfigError, match=r"destination '10.0.0.256' is not an IPv4 address"):
        net.send("h1", "10.0.0.256")


def test_vni_must_fit_24_bits():
    with pytest.raises(ValueError, match=r"VNI 16777216 is out of range: a VXLAN VNI is 24 bits"):
        VxlanDevice("vx0", "02:00:00:00:00:01", 1 << 24, "10.0.0.1", "eth0")


def test_all_deliberate_errors_share_a_base_class():
    assert issubclass(ConfigError, NetsimError) and issubclass(ConfigError, ValueError)
    assert issubclass(InvalidNameError, ConfigError)
    assert issubclass(UsageError, NetsimError) and issubclass(UsageError, ValueError)
    assert issubclass(TraceError, NetsimError) and not issubclass(TraceError, ValueError)


def test_name_error_names_the_rule_the_name_and_an_example():
    with pytest.raises(InvalidNameError) as err:
        netsim.reference_cluster().add_service("1web", 80, 8080)
    assert str(err.value) == ("service name '1web' is not a DNS-1035 label: use lowercase letters, digits and '-', "
                              "starting with a letter and ending with a letter or digit, at most 63 characters "
                              "(e.g. 'web'; regex [a-z]([-a-z0-9]*[a-z0-9])?)")


def test_send_checks_ports_and_payload_before_any_packet():
    net = two_hosts()
    with pytest.raises(ConfigError, match=r"destination port 0 is out of range 1..65535: port 0 is not a port"):
        net.send("h1", "10.0.0.2", "tcp", dport=0)
    with pytest.raises(ConfigError, match=r"payload of 65508 bytes does not fit in one IPv4 packet: udp carries at "
                                          r"most 65507 bytes"):
        net.send("h1", "10.0.0.2", "udp", dport=9, payload=bytes(65508))
    # the largest datagram IPv4 carries is sent, in fragments carrying its 8 + 65507 bytes
    trace = net.send("h1", "10.0.0.2", "udp", dport=9, payload=bytes(65507))
    sent = [h.ip for h in trace.where("h1/eth0", "tx", role="request")]
    assert len(sent) == 45 and all(ip.is_fragment for ip in sent)
    assert sum(ip.length() - 20 for ip in sent) == 8 + 65507
