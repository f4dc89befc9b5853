"""Steps rras-nat, telnet, rdp-35000 and port-forwards, judged outside-in through 192.168.1.111.

What runs inside the Windows Server 2003 guests (RRAS, the Telnet service, teluser, the RDP port)
cannot be read without a channel into them (no PowerShell Direct, agent or WinRM on 2003). A
connection from the public side through the router's port mappings proves all of it at once:
the public leg, NAT on Public with GW1/GW2 as private interfaces, the inner host's address and
gateway, and the service answering. So these checks pass once the port mappings exist; the
steps' `requires` in lab.yaml are set so that none of them blocks another.
NOT run against Windows: see docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import router_public_ip

TELNET_PORT = 23
RDP_PORT = 35000


@pytest.mark.step("rras-nat")
def test_nat_delivers_to_an_inner_host(lab, probe):
    """a connection to 192.168.1.111 (23 or 35000) reaches an inner host through NAT"""
    public = router_public_ip(lab)
    telnet = probe.telnet(public, TELNET_PORT, timeout=8)
    rdp = probe.rdp(public, RDP_PORT, timeout=8)
    assert telnet.ok or rdp.ok, ("nothing behind the NAT answers through 192.168.1.111 yet; NAT is only visible "
                                 f"from outside once a port is published (step port-forwards):\n{telnet.verdict}\n{rdp.verdict}")


@pytest.mark.step("telnet")
def test_telnet_answers_through_the_router(lab, probe):
    """Telnet on win2003-2 negotiates, reached at 192.168.1.111:23"""
    answer = probe.telnet(router_public_ip(lab), TELNET_PORT, timeout=8)
    assert answer.ok, f"{answer.verdict} (the Telnet service is reached through the port mapping of step port-forwards)"


@pytest.mark.step("telnet")
def test_teluser_logs_in_through_the_router(lab, probe):
    """teluser logs in over Telnet and a command prompt answers (Windows lets in only TelnetClients members)"""
    answer = probe.telnet_login(router_public_ip(lab), TELNET_PORT, "teluser", str(lab.variables["teluser_password"]),
                                timeout=30)
    assert answer.ok, answer.verdict


@pytest.mark.step("rdp-35000")
def test_rdp_answers_on_35000_through_the_router(lab, probe):
    """RDP (X.224) on win2003-3 answers, reached at 192.168.1.111:35000"""
    answer = probe.rdp(router_public_ip(lab), RDP_PORT, timeout=8)
    assert answer.ok, f"{answer.verdict} (RDP is reached through the port mapping of step port-forwards)"


@pytest.mark.step("port-forwards")
def test_public_23_reaches_telnet(lab, probe):
    """192.168.1.111:23 reaches win2003-2's Telnet from the public side"""
    answer = probe.telnet(router_public_ip(lab), TELNET_PORT, timeout=8)
    assert answer.ok, answer.verdict


@pytest.mark.step("port-forwards")
def test_public_35000_reaches_rdp(lab, probe):
    """192.168.1.111:35000 reaches win2003-3's RDP from the public side"""
    answer = probe.rdp(router_public_ip(lab), RDP_PORT, timeout=8)
    assert answer.ok, answer.verdict
