"""Step domain-join: SVR1 and SVR2 are members of kosa.vm, as each host, DC1's directory and
DC1's DNS see it. NOT run against Windows: see docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import DC, HOSTS, domain
from ch2_judge import judge_ad_computers, judge_membership
from ch2_ps import query


@pytest.mark.step("domain-join")
def test_each_host_is_a_member(lab, node):
    """SVR1 and SVR2 are members of kosa.vm with a working secure channel"""
    fqdn, _ = domain(lab)
    problems = [p for host in HOSTS for p in judge_membership(query(node(host), "domain-member"), host, fqdn)]
    assert not problems, "; ".join(problems)


@pytest.mark.step("domain-join")
def test_dc_has_both_computer_accounts(lab, node):
    """DC1's directory has enabled computer accounts for SVR1 and SVR2"""
    fqdn, _ = domain(lab)
    problems = judge_ad_computers(query(node(DC), "ad-computers", Names=list(HOSTS)), list(HOSTS), fqdn)
    assert not problems, "; ".join(problems)


@pytest.mark.step("domain-join", weight=0.5)
def test_dns_resolves_both_hosts(lab, probe):
    """DC1's DNS resolves svr1.kosa.vm and svr2.kosa.vm to the hosts (outside-in)"""
    fqdn, _ = domain(lab)
    for host in HOSTS:
        answer = probe.dns_a(lab.ip(DC), f"{host.lower()}.{fqdn}", timeout=5)
        assert answer.ok, f"{host.lower()}.{fqdn} does not resolve at DC1: {answer.verdict}"
        records = [str(r) for r in answer.observed["records"]]
        assert lab.ip(host) in records, f"{host.lower()}.{fqdn} resolves to {records}, expected {lab.ip(host)}"
