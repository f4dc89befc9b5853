"""Step domain-join: SVR1 and SVR2 are members of kosa.vm, as the DC, DNS and the hosts themselves see it."""

import pytest

HOSTS = {"SVR1": "192.168.1.110", "SVR2": "192.168.1.120"}
DC = "192.168.1.100"


@pytest.mark.step("domain-join")
def test_the_dc_has_both_computer_accounts(lab, probe):
    """DC1's directory has computer accounts for SVR1 and SVR2"""
    for name in HOSTS:
        # Samba AD takes simple binds only over TLS (and no NTLM binds at all)
        found = probe.ldap_search(DC, "Administrator@kosa.vm", lab.secret("domain-admin"), tls="ldaps",
                                  search_filter=f"(&(objectClass=computer)(cn={name}))", min_entries=1, timeout=10)
        assert found.ok, f"no computer account {name} in kosa.vm: {found.verdict}"


@pytest.mark.step("domain-join")
def test_dns_resolves_both_hosts(probe):
    """kosa.vm's DNS resolves svr1.kosa.vm and svr2.kosa.vm"""
    for name, address in HOSTS.items():
        answer = probe.dns_a(DC, f"{name.lower()}.kosa.vm", timeout=5)
        assert answer.ok, f"{name.lower()}.kosa.vm does not resolve at DC1: {answer.verdict}"
        records = [str(r) for r in answer.observed["records"]]
        assert address in records, f"{name.lower()}.kosa.vm resolves to {records}, expected {address}"


@pytest.mark.step("domain-join")
def test_each_host_trusts_its_join(node):
    """net ads testjoin says OK on SVR1 and SVR2"""
    for name in HOSTS:
        result = node(name).sh("net ads testjoin 2>&1")
        assert result.ok, f"{name}: net ads testjoin failed: {result.stdout.strip()[-300:] or result.exit_code}"
