"""Steps telnet, rdp-35000 and port-forwards: the inner services, and publishing them on the public address."""

import pytest


@pytest.mark.step("telnet")
def test_telnet_answers_on_inner1(node):
    """Telnet negotiates on 10.10.10.10:23, seen from ROUTER"""
    answer = node("ROUTER").probe("telnet", "10.10.10.10", 23, timeout=8)
    assert answer.ok, answer.verdict


@pytest.mark.step("telnet")
def test_teluser_exists(host):
    """INNER1 has the teluser account"""
    assert host("INNER1").user("teluser").exists, "INNER1 has no user teluser"


@pytest.mark.step("rdp-35000")
def test_rdp_answers_on_35000(node):
    """RDP (X.224) answers on 10.10.20.10:35000, seen from ROUTER"""
    answer = node("ROUTER").probe("rdp", "10.10.20.10", 35000, timeout=8)
    assert answer.ok, answer.verdict


@pytest.mark.step("rdp-35000")
def test_nothing_on_3389(node):
    """nothing listens on 10.10.20.10:3389 any more"""
    answer = node("ROUTER").probe("tcp", "10.10.20.10", 3389, timeout=5)
    assert not answer.ok, f"something still listens on 3389: {answer.verdict}"


@pytest.mark.step("port-forwards")
def test_public_23_reaches_telnet(probe):
    """192.168.1.111:23 reaches INNER1's Telnet from the public side"""
    answer = probe.telnet("192.168.1.111", 23, timeout=8)
    assert answer.ok, answer.verdict


@pytest.mark.step("port-forwards")
def test_public_35000_reaches_rdp(probe):
    """192.168.1.111:35000 reaches INNER2's RDP from the public side"""
    answer = probe.rdp("192.168.1.111", 35000, timeout=8)
    assert answer.ok, answer.verdict
