"""LDAP, DNS and SMB probes against a real Samba AD DC (KOSA.VM) in its own network namespace.

Every probe here runs with ``netns=``: the DC listens on 127.0.0.10 inside its namespace only,
as a lab's DC is reached through the instance's namespace.
"""

from __future__ import annotations

import pytest

from hyperlab import probes
from hyperlab.probes import Outcome

pytestmark = pytest.mark.peers


# --------------------------------------------------------------------------- DNS


def test_dc_locator_srv_record(samba_dc) -> None:
    r = probes.dc_locator(samba_dc.ip, samba_dc.domain, netns=samba_dc.netns)
    assert r.ok, r.verdict
    assert r.observed["records"] == [
        {"priority": 0, "weight": 100, "port": 389, "target": "dc1.kosa.vm"}
    ]
    assert r.detail == "_ldap._tcp.dc._msdcs.kosa.vm SRV -> dc1.kosa.vm:389"


def test_a_record_of_the_dc(samba_dc) -> None:
    r = probes.dns_a(samba_dc.ip, "dc1.kosa.vm", netns=samba_dc.netns)
    assert r.ok and r.observed["records"] == [samba_dc.ip], r.verdict
    assert r.observed["authoritative"] is True


def test_nxdomain(samba_dc) -> None:
    r = probes.dns_a(samba_dc.ip, "nosuchhost.kosa.vm", netns=samba_dc.netns)
    assert r.outcome is Outcome.NXDOMAIN, r.verdict
    assert r.detail == "nosuchhost.kosa.vm does not exist (NXDOMAIN from 127.0.0.10:53)"


def test_name_without_that_record_type_is_no_answer(samba_dc) -> None:
    r = probes.dns_srv(samba_dc.ip, "dc1.kosa.vm", netns=samba_dc.netns)
    assert r.outcome is Outcome.NO_ANSWER, r.verdict
    assert "exists but has no SRV record" in r.detail


def test_srv_of_another_domain_is_nxdomain(samba_dc) -> None:
    # a student who named the domain wrong: the locator record is not there
    # (outside its zone the DC forwards, and its forwarder is unreachable: SERVFAIL)
    r = probes.dc_locator(samba_dc.ip, "kosa.local", netns=samba_dc.netns, timeout=2)
    assert r.outcome is Outcome.REJECTED, r.verdict
    assert r.detail == "127.0.0.10:53 answered SERVFAIL for _ldap._tcp.dc._msdcs.kosa.local SRV"


def test_dns_over_tcp(samba_dc) -> None:
    r = probes.dc_locator(samba_dc.ip, samba_dc.domain, tcp=True, netns=samba_dc.netns)
    assert r.ok and r.observed["transport"] == "tcp", r.verdict


def test_dns_dropped_times_out(filtered_netns) -> None:
    f = filtered_netns
    r = probes.dns_srv(
        f.host, "_ldap._tcp.dc._msdcs.kosa.vm", port=f.dns_drop_port, timeout=1, netns=f.netns
    )
    assert r.outcome is Outcome.TIMEOUT, r.verdict
    assert "no DNS answer from 127.0.0.1:35053 (udp) within 1s" in r.detail


def test_no_dns_server_is_refused(closed_port) -> None:
    r = probes.dns_a(closed_port.host, "dc1.kosa.vm", port=closed_port.port, timeout=2)
    assert r.outcome is Outcome.REFUSED and "nothing listens for DNS" in r.detail, r.verdict


def test_non_dns_udp_answer_is_wrong_protocol(udp_garbage_peer) -> None:
    ep = udp_garbage_peer
    r = probes.dns_a(ep.host, "dc1.kosa.vm", port=ep.port, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL and "not in DNS" in r.detail, r.verdict


# --------------------------------------------------------------------------- LDAP


def test_rootdse_anonymous(samba_dc) -> None:
    r = probes.ldap_rootdse(samba_dc.ip, netns=samba_dc.netns)
    assert r.ok, r.verdict
    assert r.observed["defaultNamingContext"] == "DC=kosa,DC=vm"
    assert r.observed["dnsHostName"] == "dc1.kosa.vm"
    assert "3" in r.observed["supportedLDAPVersion"]
    assert r.observed["isGlobalCatalogReady"] == "TRUE"


def test_search_computers_over_ldaps(samba_dc) -> None:
    r = probes.ldap_search(
        samba_dc.ip,
        samba_dc.upn,
        samba_dc.password,
        tls="ldaps",
        search_filter="(objectClass=computer)",
        attributes=["dNSHostName", "sAMAccountName"],
        min_entries=1,
        netns=samba_dc.netns,
    )
    assert r.ok, r.verdict
    assert r.observed["base"] == "DC=kosa,DC=vm"
    [dc1] = r.observed["entries"]
    assert dc1["dn"] == "CN=DC1,OU=Domain Controllers,DC=kosa,DC=vm"
    assert dc1["attributes"] == {"dNSHostName": ["dc1.kosa.vm"], "sAMAccountName": ["DC1$"]}


def test_search_with_starttls(samba_dc) -> None:
    r = probes.ldap_search(
        samba_dc.ip,
        samba_dc.upn,
        samba_dc.password,
        tls="starttls",
        search_filter="(sAMAccountName=Administrator)",
        min_entries=1,
        netns=samba_dc.netns,
    )
    assert r.ok and r.observed["count"] == 1, r.verdict


def test_wrong_password_is_auth_failed(samba_dc) -> None:
    r = probes.ldap_search(
        samba_dc.ip, samba_dc.upn, "not-the-password", tls="ldaps", netns=samba_dc.netns
    )
    assert r.outcome is Outcome.AUTH_FAILED, r.verdict
    assert "refused the credentials: invalidCredentials (wrong user name or password)" in r.detail


def test_simple_bind_without_tls_is_rejected(samba_dc) -> None:
    r = probes.ldap_search(samba_dc.ip, samba_dc.upn, samba_dc.password, netns=samba_dc.netns)
    assert r.outcome is Outcome.REJECTED, r.verdict
    assert "strongerAuthRequired" in r.detail and "use tls='ldaps' or 'starttls'" in r.detail


def test_ntlm_bind_is_rejected_by_samba(samba_dc) -> None:
    r = probes.ldap_search(
        samba_dc.ip,
        f"{samba_dc.netbios}\\{samba_dc.admin}",
        samba_dc.password,
        authentication="ntlm",
        netns=samba_dc.netns,
    )
    assert r.outcome is Outcome.REJECTED, r.verdict
    assert "does not accept NTLM binds" in r.detail


def test_too_few_entries_is_no_answer(samba_dc) -> None:
    r = probes.ldap_search(
        samba_dc.ip,
        samba_dc.upn,
        samba_dc.password,
        tls="ldaps",
        search_filter="(&(objectClass=computer)(cn=SVR1))",
        min_entries=1,
        netns=samba_dc.netns,
    )
    assert r.outcome is Outcome.NO_ANSWER, r.verdict
    assert "found 0 entries, expected at least 1" in r.detail


def test_ldap_to_smb_port_is_not_ldap(samba_dc) -> None:
    r = probes.ldap_rootdse(samba_dc.ip, 445, netns=samba_dc.netns, timeout=2)
    assert r.outcome is Outcome.RESET, r.verdict
    assert "closed the connection during the rootDSE search (not LDAP" in r.detail


def test_ldaps_to_plain_ldap_port_fails_tls(samba_dc) -> None:
    r = probes.ldap_rootdse(samba_dc.ip, 389, tls="ldaps", netns=samba_dc.netns, timeout=2)
    assert r.outcome is Outcome.WRONG_PROTOCOL and "TLS failed" in r.detail, r.verdict


def test_ldap_closed_port_is_refused(samba_dc) -> None:
    # the DC's address on the host's side of the namespace: nothing there
    r = probes.ldap_rootdse(samba_dc.ip, 389, timeout=2)
    assert r.outcome is Outcome.REFUSED, r.verdict


# --------------------------------------------------------------------------- SMB


def test_share_listing(samba_dc) -> None:
    r = probes.smb_shares(
        samba_dc.ip,
        samba_dc.admin,
        samba_dc.password,
        domain=samba_dc.netbios,
        expect=[samba_dc.share, "SYSVOL", "netlogon"],
        netns=samba_dc.netns,
    )
    assert r.ok, r.verdict
    by_name = {s["name"]: s for s in r.observed["shares"]}
    assert by_name["labshare"]["comment"] == "hyperlab probe test share"
    assert by_name["labshare"]["type"] == "disk" and by_name["IPC$"]["type"] == "ipc"


def test_wrong_password_is_auth_failed_smb(samba_dc) -> None:
    r = probes.smb_shares(
        samba_dc.ip,
        samba_dc.admin,
        "not-the-password",
        domain=samba_dc.netbios,
        netns=samba_dc.netns,
    )
    assert r.outcome is Outcome.AUTH_FAILED, r.verdict
    assert (
        r.detail == "127.0.0.10:445 refused the logon of KOSA\\Administrator "
        "(wrong user, password or domain)"
    )


def test_missing_share_is_no_answer(samba_dc) -> None:
    r = probes.smb_shares(
        samba_dc.ip,
        samba_dc.admin,
        samba_dc.password,
        domain=samba_dc.netbios,
        expect="Profiles",
        netns=samba_dc.netns,
    )
    assert r.outcome is Outcome.NO_ANSWER, r.verdict
    assert r.detail.endswith("; missing Profiles") and "labshare" in r.detail


def test_smb_to_ldap_port_is_not_smb(samba_dc) -> None:
    r = probes.smb_shares(
        samba_dc.ip,
        samba_dc.admin,
        samba_dc.password,
        domain=samba_dc.netbios,
        port=389,
        timeout=2,
        netns=samba_dc.netns,
    )
    assert r.outcome is Outcome.RESET and "reset the connection" in r.detail, r.verdict


def test_smb_to_telnet_is_not_smb(telnetd_peer) -> None:
    # telnetd talks first (IAC ...) and then waits: no SMB answer ever comes
    r = probes.smb_shares(telnetd_peer.host, "u", "p", port=telnetd_peer.port, timeout=2)
    assert r.outcome is Outcome.TIMEOUT and "no SMB negotiation/logon answer" in r.detail, r.verdict


def test_smb_closed_port_is_refused(closed_port) -> None:
    r = probes.smb_shares(closed_port.host, "u", "p", port=closed_port.port)
    assert r.outcome is Outcome.REFUSED and "no port mapping" in r.detail, r.verdict
