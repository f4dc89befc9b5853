"""The WinRM channel's transport against real HTTP servers (no Windows here to run a command on):
a listener that refuses the credentials, one that is not there, and a plain web server."""

from __future__ import annotations

import pytest

from hyperlab.guest.base import ChannelError
from hyperlab.guest.winrm import WinRMChannel, encoded

pytestmark = pytest.mark.peers


def channel(ep) -> WinRMChannel:
    return WinRMChannel(ep.host, netns=None, username="Administrator", password="Wrong-9a", node="DC1", port=ep.port)


def test_refused_credentials_are_said_plainly(http_peer) -> None:
    ep = http_peer(401, [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")])
    with pytest.raises(ChannelError, match=r"cannot reach DC1 over WinRM: 127.0.0.1:\d+ refused the credentials of Administrator"):
        channel(ep).run("Get-Service WinRM", timeout=10)


def test_no_listener_is_unreachable_not_a_failure(closed_port) -> None:
    with pytest.raises(ChannelError, match=r"cannot reach DC1 over WinRM at 127.0.0.1:\d+: ConnectionError"):
        channel(closed_port).run("hostname", timeout=10)


def test_a_web_server_that_is_not_winrm_is_an_error(http_peer) -> None:
    ep = http_peer(404, [])
    with pytest.raises(ChannelError, match="cannot reach DC1 over WinRM"):
        channel(ep).run("hostname", timeout=10)


def test_scripts_travel_as_utf16_base64() -> None:
    import base64

    assert base64.b64decode(encoded("Write-Output '한글'")).decode("utf-16-le") == "Write-Output '한글'"
