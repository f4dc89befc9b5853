"""Steps live-migration-settings, delegation, shared-nothing, smb-migration and storage-migration.

Host settings are read on each host, delegation from AD on DC1, and where a VM lives from each
host's own Get-VM. NOT run against Windows: see docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import DC, HOSTS, ROUTER, domain, per_host_vms, prefixes, router_public_ip
from ch2_judge import judge_delegation, judge_disks_on_share, judge_local_disks, judge_migration_host, judge_runs_on, where_is
from ch2_ps import query
from hyperlab.probes import Outcome


@pytest.mark.step("live-migration-settings")
def test_live_migration_with_kerberos(lab, node):
    """both hosts allow incoming/outgoing live migration with Kerberos on their own address"""
    problems = [p for host in HOSTS
                for p in judge_migration_host(query(node(host), "vmhost-migration"), host, lab.ip(host))]
    assert not problems, "; ".join(problems)


@pytest.mark.step("delegation")
def test_constrained_delegation_in_ad(lab, node):
    """DC1's AD lets SVR1 and SVR2 delegate cifs/DC1 and the migration service to each other"""
    fqdn, _ = domain(lab)
    data = query(node(DC), "delegation", Names=list(HOSTS))
    problems = [p for host, other in (HOSTS, HOSTS[::-1]) for p in judge_delegation(data, host, other, DC, fqdn)]
    assert not problems, "; ".join(problems)


@pytest.mark.step("shared-nothing")
def test_router_runs_on_svr2_with_its_disks(lab, node):
    """win2003-1 runs on SVR2 only, its disks moved along (not on the share)"""
    vms = per_host_vms(lab, node)
    problems = judge_runs_on(vms, ROUTER, "SVR2")
    if not problems:
        problems = judge_local_disks(where_is(vms, ROUTER)["SVR2"], prefixes(lab))
    assert not problems, "; ".join(problems)


@pytest.mark.step("shared-nothing", weight=0.5)
def test_router_still_answers(lab, probe):
    """192.168.1.111 still answers from the public side after the move (live, not restarted elsewhere dead)"""
    answer = probe.tcp(router_public_ip(lab), 445, timeout=5)
    assert answer.outcome in (Outcome.OK, Outcome.REFUSED), answer.verdict


@pytest.mark.step("smb-migration")
def test_win2003_3_runs_on_svr2_from_the_share(lab, node):
    """win2003-3 runs on SVR2, its disk still on \\\\DC1\\smb (only the VM moved)"""
    vms = per_host_vms(lab, node)
    problems = judge_runs_on(vms, "win2003-3", "SVR2")
    if not problems:
        problems = judge_disks_on_share(where_is(vms, "win2003-3")["SVR2"], prefixes(lab))
    assert not problems, "; ".join(problems)


@pytest.mark.step("storage-migration")
def test_win2003_2_disk_on_the_share(lab, node):
    """win2003-2 keeps running on SVR1 with its disk moved to \\\\DC1\\smb"""
    vms = per_host_vms(lab, node)
    problems = judge_runs_on(vms, "win2003-2", "SVR1")
    if not problems:
        problems = judge_disks_on_share(where_is(vms, "win2003-2")["SVR1"], prefixes(lab))
    assert not problems, "; ".join(problems)
