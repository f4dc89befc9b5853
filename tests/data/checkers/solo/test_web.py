"""Step web: three checks, one point of weight each, so a half-done service earns part of the step."""

import pytest

from hyperlab.grading import eventually

FETCH = "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=5).read().decode())\""


@pytest.mark.step("web", weight=1)
def test_port_8080_answers_from_the_lan(lab, probe):
    """port 8080 answers from the LAN"""
    result = eventually(lambda: probe.tcp(lab.ip("S1"), 8080), until=lambda r: r.ok, timeout=10, every=2,
                        what="a TCP connection to port 8080")
    assert result.ok, result.verdict


@pytest.mark.step("web", weight=1)
def test_page_says_hello(node):
    """the page says hello from S1"""
    result = node("S1").sh(FETCH)
    assert result.ok, f"fetching http://127.0.0.1:8080/ on S1 failed:\n{result.summary()}"
    assert "hello from S1" in result.stdout, f"the page says {result.stdout.strip()[:200]!r}, expected 'hello from S1'"


@pytest.mark.step("web", weight=1)
def test_service_runs_as_kosa(node):
    """hello-web.service runs as kosa"""
    s1 = node("S1")
    pid = s1.sh("systemctl show -p MainPID --value hello-web.service").stdout.strip()
    assert pid not in ("", "0"), "hello-web.service is not running (MainPID 0)"
    user = s1.sh(f"ps -o user= -p {pid}").stdout.strip()
    assert user == "kosa", f"hello-web.service runs as {user or 'nobody known'}, expected kosa"
