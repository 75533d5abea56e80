"""netsim._scapy loads scapy's VXLAN layer in an interpreter without IPv6, as Pyodide's is.

Pyodide's CPython has `socket.has_ipv6 == False` and an `inet_pton` that refuses AF_INET6 (issue
#23). A stand-in socket module with the same two traits shows what the shim does to it; the
real run in Pyodide is tests/browser/test_run_in_page.py.
"""

from __future__ import annotations

import socket
import types

import pytest

from netsim._scapy import _give_ipv6_text_forms, _ipv6_for_import


def _socket_without_ipv6():
    def refuse(family, value):
        if family == socket.AF_INET6:
            raise OSError("can't use AF_INET6, IPv6 is disabled")
        return (socket.inet_pton if isinstance(value, str) else socket.inet_ntop)(family, value)
    return types.SimpleNamespace(has_ipv6=False, AF_INET=socket.AF_INET, AF_INET6=socket.AF_INET6,
                                 inet_pton=refuse, inet_ntop=refuse)


def test_ipv6_is_there_while_scapy_loads_and_gone_again_after():
    sock = _socket_without_ipv6()
    with _ipv6_for_import(sock):
        assert sock.has_ipv6 is True
        assert sock.inet_pton(sock.AF_INET6, "2001:db8::2") == bytes.fromhex("20010db8" + "00" * 11 + "02")
        assert sock.inet_ntop(sock.AF_INET6, bytes(15) + b"\x01") == "::1"
    assert sock.has_ipv6 is False
    # the conversions stay (they are plain arithmetic); IPv4 still goes to the original functions
    assert sock.inet_pton(sock.AF_INET, "10.244.1.2") == bytes([10, 244, 1, 2])
    assert sock.inet_ntop(sock.AF_INET, bytes([192, 168, 50, 11])) == "192.168.50.11"


def test_bad_ipv6_text_and_length_raise_what_the_socket_module_raises():
    sock = _socket_without_ipv6()
    _give_ipv6_text_forms(sock)
    with pytest.raises(OSError, match="illegal IP address"):
        sock.inet_pton(sock.AF_INET6, "10.0.0.1")
    with pytest.raises(ValueError, match="invalid length"):
        sock.inet_ntop(sock.AF_INET6, b"\x00" * 4)
    first = sock.inet_pton
    _give_ipv6_text_forms(sock)                       # a second call wraps nothing twice
    assert sock.inet_pton is first


def test_an_interpreter_with_ipv6_is_left_alone():
    sock = _socket_without_ipv6()
    sock.has_ipv6 = True
    original = sock.inet_pton
    with _ipv6_for_import(sock):
        pass
    assert sock.inet_pton is original and sock.has_ipv6 is True
