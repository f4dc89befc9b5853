"""TCP connect and the network-namespace helpers, against real listeners and nftables rules."""

from __future__ import annotations

import socket

import pytest

from hyperlab import probes
from hyperlab.probes import NetnsError, Outcome, in_netns, run_in_netns

pytestmark = pytest.mark.peers


def test_open_port_on_loopback(tcp_peer) -> None:
    ep = tcp_peer("silent")
    r = probes.tcp_connect(ep.host, ep.port)
    assert r.ok, r.verdict
    assert r.observed["peer"] == f"127.0.0.1:{ep.port}"


def test_closed_port_is_refused_no_port_mapping(closed_port) -> None:
    r = probes.tcp_connect(closed_port.host, closed_port.port)
    assert r.outcome is Outcome.REFUSED, r.verdict
    assert "nothing listens there (no port mapping)" in r.verdict


def test_open_port_inside_netns_only(filtered_netns) -> None:
    f = filtered_netns
    inside = probes.tcp_connect(f.host, f.open_port, netns=f.netns)
    assert inside.ok and inside.netns == f.netns, inside.verdict
    assert f"(netns {f.netns})" in inside.verdict
    # the host's own loopback has no such listener: the probe really ran in the namespace
    outside = probes.tcp_connect(f.host, f.open_port)
    assert outside.outcome is Outcome.REFUSED, outside.verdict


def test_dropped_port_times_out_mapping_exists_backend_silent(filtered_netns) -> None:
    f = filtered_netns
    r = probes.tcp_connect(f.host, f.drop_port, timeout=1, netns=f.netns)
    assert r.outcome is Outcome.TIMEOUT, r.verdict
    assert "backend does not answer" in r.detail and "within 1s" in r.detail
    assert 0.9 <= r.elapsed < 3


def test_rejected_port_is_unreachable(filtered_netns) -> None:
    f = filtered_netns
    r = probes.tcp_connect(f.host, f.reject_port, timeout=2, netns=f.netns)
    assert r.outcome is Outcome.UNREACHABLE, r.verdict
    assert "unreachable" in r.detail.lower()


def test_missing_netns_is_an_error_result() -> None:
    r = probes.tcp_connect("127.0.0.1", 22, netns="hlp-no-such-namespace")
    assert r.outcome is Outcome.ERROR, r.verdict
    assert "network namespace 'hlp-no-such-namespace' does not exist" in r.detail


def test_unresolvable_name_is_an_error_result(filtered_netns) -> None:
    # inside the isolated namespace no resolver is reachable: resolution fails locally, at once
    r = probes.tcp_connect("no-such-host.invalid", 80, timeout=2, netns=filtered_netns.netns)
    assert r.outcome is Outcome.ERROR and "cannot resolve" in r.detail, r.verdict


def test_in_netns_switches_this_thread_and_back(filtered_netns) -> None:
    f = filtered_netns

    def inode() -> int:
        import os

        return os.stat("/proc/thread-self/ns/net").st_ino

    before = inode()
    with in_netns(f.netns):
        assert inode() != before
        s = socket.create_connection((f.host, f.open_port), timeout=2)  # only exists in there
    s.close()
    assert inode() == before
    assert run_in_netns(f.netns, inode) != before
    assert inode() == before


def test_run_in_netns_reraises_and_names_missing_namespace(filtered_netns) -> None:
    with pytest.raises(ZeroDivisionError):
        run_in_netns(filtered_netns.netns, lambda: 1 / 0)
    with pytest.raises(NetnsError, match="does not exist"):
        run_in_netns("hlp-no-such-namespace", lambda: None)
