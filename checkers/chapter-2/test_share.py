"""Steps smb-share and smb-permissions: DC1's share `smb`, read on DC1, and seen from the
network. NOT run against Windows: see docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import DC, HOSTS, SHARE, domain
from ch2_judge import judge_share, judge_share_permissions
from ch2_ps import query

SHARE_PATH = "C:\\smb"


@pytest.mark.step("smb-share")
def test_share_exists_for_everyone(node):
    """DC1 shares C:\\smb as smb with Everyone: Full"""
    problems = judge_share(query(node(DC), "smb-share", ShareName=SHARE), SHARE, SHARE_PATH)
    assert not problems, "; ".join(problems)


@pytest.mark.step("smb-share", weight=0.5)
def test_share_is_listed_on_the_network(lab, probe):
    """\\\\DC1 lists the share smb to the domain's Administrator (outside-in, SMB)"""
    fqdn, netbios = domain(lab)
    answer = probe.smb_shares(lab.ip(DC), "Administrator", lab.secret("domain-admin"), domain=netbios,
                              expect=SHARE, timeout=10)
    assert answer.ok, answer.verdict


@pytest.mark.step("smb-permissions")
def test_hosts_have_full_control(lab, node):
    """SVR1$ and SVR2$ have Full on the share and FullControl in NTFS; Administrators Full on the share"""
    _, netbios = domain(lab)
    data = query(node(DC), "smb-share", ShareName=SHARE)
    problems = judge_share_permissions(data, SHARE, netbios, list(HOSTS))
    assert not problems, "; ".join(problems)
