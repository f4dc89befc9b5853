"""Telnet IAC negotiation against a real inetutils telnetd (started by inetutils-inetd)."""

from __future__ import annotations

import pytest

from hyperlab import probes
from hyperlab.probes import Outcome
from hyperlab.probes.telnet import DO, DONT, IAC, SB, SE, WILL, WONT, Negotiator

pytestmark = pytest.mark.peers


def test_negotiator_refuses_everything_and_keeps_text() -> None:
    n = Negotiator()
    n.feed(bytes([IAC, DO, 24, IAC, WILL, 1]) + b"lo" + bytes([IAC]))  # IAC split across reads
    n.feed(bytes([IAC]) + b"gin: " + bytes([IAC, SB, 24, 1, IAC, SE]))
    assert n.take_replies() == bytes([IAC, WONT, 24, IAC, DONT, 1])
    assert bytes(n.text) == b"lo\xffgin: "  # IAC IAC is a literal 0xff data byte
    assert [o["verb"] + " " + o["option"] for o in n.seen] == [
        "DO TERMINAL-TYPE",
        "WILL ECHO",
        "SB TERMINAL-TYPE",
    ]


def test_telnetd_negotiates_and_shows_login_prompt(telnetd_peer) -> None:
    r = probes.telnet_negotiate(
        telnetd_peer.host, telnetd_peer.port, require_prompt=True, timeout=5
    )
    assert r.ok, r.verdict
    seen = {(o["verb"], o["option"]) for o in r.observed["options"]}
    assert ("DO", "TERMINAL-TYPE") in seen  # what inetutils telnetd asks first
    assert r.observed["prompt"].endswith("login:")
    assert r.detail.startswith("telnet server negotiated ") and "prompt" in r.detail


def test_ssh_banner_is_not_telnet(tcp_peer) -> None:
    ep = tcp_peer("banner", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    r = probes.telnet_negotiate(ep.host, ep.port, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL, r.verdict
    assert "not telnet" in r.detail and "SSH-2.0-OpenSSH_9.2p1" in r.detail


def test_silent_backend_times_out(tcp_peer) -> None:
    ep = tcp_peer("silent")
    r = probes.telnet_negotiate(ep.host, ep.port, timeout=1)
    assert r.outcome is Outcome.TIMEOUT and "sent nothing within 1s" in r.detail, r.verdict


def test_proxy_without_backend_resets(tcp_peer) -> None:
    ep = tcp_peer("close")
    r = probes.telnet_negotiate(ep.host, ep.port, timeout=2)
    assert r.outcome is Outcome.RESET and "without sending anything" in r.detail, r.verdict


def test_closed_port_is_refused(closed_port) -> None:
    r = probes.telnet_negotiate(closed_port.host, closed_port.port)
    assert r.outcome is Outcome.REFUSED, r.verdict


def test_rdp_server_is_not_telnet(xrdp_peer) -> None:
    # xrdp waits for the client to speak first: no negotiation ever comes
    r = probes.telnet_negotiate(xrdp_peer.host, xrdp_peer.port, timeout=1)
    assert r.outcome is Outcome.TIMEOUT and "a telnet server negotiates options at once" in r.detail
