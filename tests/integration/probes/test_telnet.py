"""Telnet IAC negotiation against a real inetutils telnetd (started by inetutils-inetd)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

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


@pytest.fixture
def telnet_account() -> Iterator[tuple[str, str]]:
    """A throwaway local account with a password, removed afterwards (telnetd logs in through PAM)."""
    user = f"hltel{secrets.token_hex(3)}"
    password = f"Hl-{secrets.token_urlsafe(9)}9a"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", user], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
        yield user, password
    finally:
        subprocess.run(["userdel", user], check=False)


def test_telnet_login_runs_a_command_as_the_user(telnetd_peer, telnet_account) -> None:
    user, password = telnet_account
    r = probes.telnet_login(telnetd_peer.host, telnetd_peer.port, user, password, timeout=30)
    assert r.ok, r.verdict
    assert r.observed["output"] == "hl-%OS%-42"  # sh expanded it: a shell ran our command


def test_telnet_login_with_a_wrong_password_is_auth_failed(telnetd_peer, telnet_account) -> None:
    user, _ = telnet_account
    r = probes.telnet_login(telnetd_peer.host, telnetd_peer.port, user, "not-the-password", timeout=30)
    assert r.outcome == probes.Outcome.AUTH_FAILED, r.verdict
    assert "Login incorrect" in r.observed["refusal"]


def test_telnet_login_to_something_else_is_not_a_login(tcp_peer) -> None:
    ep = tcp_peer("banner", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    r = probes.telnet_login(ep.host, ep.port, "teluser", "x", timeout=3)
    assert r.outcome == probes.Outcome.WRONG_PROTOCOL, r.verdict
