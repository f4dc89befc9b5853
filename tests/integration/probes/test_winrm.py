"""WinRM liveness against real HTTP servers answering like (and unlike) a WinRM listener."""

from __future__ import annotations

import pytest

from hyperlab import probes
from hyperlab.probes import Outcome

pytestmark = pytest.mark.peers

WINRM_401 = [
    ("WWW-Authenticate", "Negotiate"),
    ("WWW-Authenticate", "Kerberos"),
    ("Server", "Microsoft-HTTPAPI/2.0"),
]


def test_winrm_like_listener_is_alive(http_peer) -> None:
    ep = http_peer(401, WINRM_401)
    r = probes.winrm_alive(ep.host, ep.port)
    assert r.ok, r.verdict
    assert r.observed["status"] == 401
    assert r.observed["schemes"] == ["Negotiate", "Kerberos"]
    assert r.observed["server"] == "Microsoft-HTTPAPI/2.0"


def test_basic_only_is_rejected(http_peer) -> None:
    ep = http_peer(401, [("WWW-Authenticate", 'Basic realm="WSMAN"')])
    r = probes.winrm_alive(ep.host, ep.port)
    assert r.outcome is Outcome.REJECTED, r.verdict
    assert "offers Basic, not Negotiate/Kerberos/NTLM" in r.detail


def test_plain_web_server_is_not_winrm(http_peer) -> None:
    ep = http_peer(404)
    r = probes.winrm_alive(ep.host, ep.port)
    assert r.outcome is Outcome.WRONG_PROTOCOL, r.verdict
    assert "answered 404 Not Found: an HTTP server, but not WinRM" in r.detail


def test_non_http_service_is_wrong_protocol(tcp_peer) -> None:
    ep = tcp_peer("banner", b"SSH-2.0-OpenSSH_9.2p1\r\n")
    r = probes.winrm_alive(ep.host, ep.port, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL and "not HTTP" in r.detail, r.verdict
    assert "SSH-2.0" in r.detail


def test_closed_port_is_refused(closed_port) -> None:
    r = probes.winrm_alive(closed_port.host, closed_port.port)
    assert r.outcome is Outcome.REFUSED and "no port mapping" in r.detail, r.verdict


def test_silent_backend_times_out(tcp_peer) -> None:
    ep = tcp_peer("silent")
    r = probes.winrm_alive(ep.host, ep.port, timeout=1)
    assert r.outcome is Outcome.TIMEOUT and "no HTTP answer within 1s" in r.detail, r.verdict


def test_dropped_port_in_netns_times_out(filtered_netns) -> None:
    f = filtered_netns
    r = probes.winrm_alive(f.host, f.drop_port, timeout=1, netns=f.netns)
    assert r.outcome is Outcome.TIMEOUT and "backend does not answer" in r.detail, r.verdict


def test_https_listener_is_alive(http_peer) -> None:
    ep = http_peer(401, [("WWW-Authenticate", "Negotiate, NTLM")], tls=True)
    r = probes.winrm_alive(ep.host, ep.port, https=True)
    assert r.ok, r.verdict
    assert r.observed["url"] == f"https://{ep.host}:{ep.port}/wsman"
    assert r.observed["schemes"] == ["Negotiate", "NTLM"]


def test_https_to_plain_http_port_fails_tls(http_peer) -> None:
    ep = http_peer(401, WINRM_401)
    r = probes.winrm_alive(ep.host, ep.port, https=True, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL and "TLS handshake" in r.detail, r.verdict
