"""RDP X.224 Connection Request/Confirm against a real xrdp."""

from __future__ import annotations

import pytest

from hyperlab import probes
from hyperlab.probes import Outcome
from hyperlab.probes.rdp import PROTOCOL_HYBRID, PROTOCOL_RDP, PROTOCOL_SSL, connection_request

pytestmark = pytest.mark.peers


def test_connection_request_bytes_follow_ms_rdpbcgr() -> None:
    pdu = connection_request(PROTOCOL_SSL | PROTOCOL_HYBRID, cookie=None)
    # TPKT v3, length 19; X.224 LI 14, CR; RDP_NEG_REQ type 1, length 8, protocols 3
    assert pdu.hex(" ") == "03 00 00 13 0e e0 00 00 00 00 00 01 00 08 00 03 00 00 00"
    with_cookie = connection_request(PROTOCOL_SSL, cookie="alice")
    assert b"Cookie: mstshash=alice\r\n" in with_cookie and with_cookie[3] == len(with_cookie)


def test_xrdp_confirms_and_selects_tls(xrdp_peer) -> None:
    r = probes.rdp_negotiate(xrdp_peer.host, xrdp_peer.port)
    assert r.ok, r.verdict
    assert r.observed["selected_protocol"] == "PROTOCOL_SSL"
    assert r.observed["negotiation"] is True
    assert "RDP server selected PROTOCOL_SSL" in r.detail


def test_xrdp_requiring_tls_refuses_standard_rdp_security(xrdp_peer) -> None:
    r = probes.rdp_negotiate(xrdp_peer.host, xrdp_peer.port, requested=PROTOCOL_RDP)
    assert r.outcome is Outcome.REJECTED, r.verdict
    assert r.observed["failure"] == "SSL_REQUIRED_BY_SERVER"
    assert "refused the requested security protocols: SSL_REQUIRED_BY_SERVER" in r.detail


def test_closed_port_is_refused(closed_port) -> None:
    r = probes.rdp_negotiate(closed_port.host, closed_port.port)
    assert r.outcome is Outcome.REFUSED and "no port mapping" in r.detail, r.verdict


def test_telnet_server_is_not_rdp(telnetd_peer) -> None:
    r = probes.rdp_negotiate(telnetd_peer.host, telnetd_peer.port, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL, r.verdict
    assert r.detail.startswith("not RDP: expected a TPKT header (03 00 ...), got ff ")


def test_http_server_is_not_rdp(http_peer) -> None:
    ep = http_peer(200)
    r = probes.rdp_negotiate(ep.host, ep.port, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL, r.verdict
    # http.server takes the binary request for HTTP/0.9 and answers with a bare HTML error page
    assert "not RDP" in r.detail and "<!DOCTYPE HTML>" in r.detail


def test_silent_backend_times_out(tcp_peer) -> None:
    ep = tcp_peer("silent")
    r = probes.rdp_negotiate(ep.host, ep.port, timeout=1)
    assert r.outcome is Outcome.TIMEOUT, r.verdict
    assert "no X.224 Connection Confirm within 1s" in r.detail


def test_proxy_without_backend_resets(tcp_peer) -> None:
    ep = tcp_peer("close")
    r = probes.rdp_negotiate(ep.host, ep.port, timeout=2)
    assert r.outcome is Outcome.RESET, r.verdict
