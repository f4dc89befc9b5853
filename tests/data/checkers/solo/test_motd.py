"""Step motd: the login message."""

import pytest


@pytest.mark.step("motd")
def test_motd_welcomes(node):
    """/etc/motd says Welcome to hyperlab"""
    result = node("S1").sh("cat /etc/motd")
    lines = result.stdout.strip().splitlines() or ["(nothing)"]
    assert "Welcome to hyperlab" in result.stdout, f"/etc/motd does not say Welcome to hyperlab; it begins {lines[0][:80]!r}"
