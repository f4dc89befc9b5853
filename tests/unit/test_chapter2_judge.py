"""chapter-2: each checker's judging logic (checkers/chapter-2/ch2_judge.py) on recorded outputs,
for the passing state and typical mistakes.

NOT run against Windows. The recorded JSON (tests/data/recorded/chapter-2/) is written by hand
from Microsoft's documented property names and enum values; its README cites the pages, e.g.
https://learn.microsoft.com/en-us/powershell/module/hyper-v/get-vmreplication (State, Health, Mode,
FrequencySec), https://learn.microsoft.com/en-us/windows/win32/hyperv_v2/msvm-virtualsystemmigrationservicesettingdata
(CredSSP / Kerberos), Set-VMReplicationServer (AllowedAuthenticationType), New-VMSwitch (SwitchType
External / Internal / Private).
"""

from __future__ import annotations

import pytest

from tests.unit.chapter2_support import recorded

import ch2_judge as j  # noqa: E402  (on sys.path through chapter2_support, as pytest does for checkers)

FQDN, NETBIOS = "kosa.vm", "KOSA"
SWITCHES = {"External": "external", "Internal": "internal", "Private": "private", "Internal2": "internal"}
PREFIXES = j.share_prefixes("DC1", FQDN, "192.168.1.100", "smb")


@pytest.mark.parametrize("case, expected", [
    ("SVR1-joined", None), ("SVR1-workgroup", "not in a domain"), ("SVR1-broken-channel", "secure channel"),
])
def test_membership(case: str, expected: str | None) -> None:
    problems = j.judge_membership(recorded("domain-member", case), "SVR1", FQDN)
    assert (problems == []) if expected is None else (expected in " ".join(problems))


def test_ad_computers() -> None:
    assert j.judge_ad_computers(recorded("ad-computers", "both"), ["SVR1", "SVR2"], FQDN) == []
    assert j.judge_ad_computers(recorded("ad-computers", "only-svr1"), ["SVR1", "SVR2"], FQDN) == \
        ["DC1 has no computer account SVR2 in kosa.vm"]


@pytest.mark.parametrize("case, expected", [
    ("SVR1-all", None),
    ("SVR1-no-internal2", "no virtual switch Internal2"),
    ("SVR1-external-made-internal", "External is Internal, expected External"),
    ("none", "no virtual switch External"),
])
def test_switches(case: str, expected: str | None) -> None:
    problems = j.judge_switches(recorded("switches", case), "SVR1", SWITCHES, "192.168.1.110")
    assert (problems == []) if expected is None else (expected in " ".join(problems))


def test_switches_want_the_host_address_on_the_external_vnic() -> None:
    problems = j.judge_switches(recorded("switches", "SVR2-all"), "SVR2", SWITCHES, "192.168.1.110")
    assert problems == ["SVR2's address 192.168.1.110 is not on 'vEthernet (External)'"]


@pytest.mark.parametrize("case, expected", [
    ("everyone-full", None), ("everyone-read", "Everyone does not have Full"), ("missing", "no share named smb"),
])
def test_share(case: str, expected: str | None) -> None:
    problems = j.judge_share(recorded("smb-share", case), "smb", "C:\\smb")
    assert (problems == []) if expected is None else (expected in " ".join(problems))


def test_share_permissions() -> None:
    assert j.judge_share_permissions(recorded("smb-share", "hosts-full"), "smb", NETBIOS, ["SVR1", "SVR2"]) == []
    problems = j.judge_share_permissions(recorded("smb-share", "hosts-share-only"), "smb", NETBIOS, ["SVR1", "SVR2"])
    assert problems == [
        "KOSA\\SVR1$ does not have FullControl in the NTFS permissions of C:\\smb",
        "KOSA\\SVR2$ does not have FullControl in the NTFS permissions of C:\\smb",
    ]
    assert "KOSA\\SVR1$ does not have Full access on the share smb" in \
        j.judge_share_permissions(recorded("smb-share", "everyone-full"), "smb", NETBIOS, ["SVR1", "SVR2"])


def per_host(svr1: str, svr2: str) -> dict[str, dict]:
    return {"SVR1": recorded("vms", svr1), "SVR2": recorded("vms", svr2)}


def test_guests_pass_when_built_as_the_seed_says() -> None:
    vms = per_host("SVR1-created", "SVR2-created")
    assert j.judge_guest(vms, "win2003-1", ["External", "Internal", "Internal2"]) == []
    assert j.judge_guest(vms, "win2003-2", ["Internal"]) == []
    assert j.judge_guest(vms, "win2003-3", ["Internal2"], PREFIXES) == []
    assert j.judge_guest(vms, "Linux01", ["External"]) == []


def test_guests_typical_mistakes() -> None:
    vms = per_host("SVR1-gen2-and-wrong-switch", "SVR2-created")
    problems = j.judge_guest(vms, "win2003-2", ["Internal"])
    assert "generation 2, expected 1" in problems[0]
    assert "NICs are on ['internal2'], expected ['internal']" in problems[1]
    assert "expected on \\\\dc1\\smb\\" in j.judge_guest(vms, "win2003-3", ["Internal2"], PREFIXES)[0]
    assert j.judge_guest(per_host("SVR1-empty", "SVR2-empty"), "win2003-1", ["External"]) == ["no VM named win2003-1 on SVR1 or SVR2"]
    # a synthetic adapter in a Windows Server 2003 guest: no driver, so no network in every later step
    synthetic = per_host("SVR1-synthetic-nic", "SVR2-created")
    assert j.judge_guest(synthetic, "win2003-1", ["External", "Internal", "Internal2"]) == []
    [problem] = j.judge_guest(synthetic, "win2003-2", ["Internal"])
    assert problem.startswith("win2003-2's NIC on Internal is a synthetic adapter") and "legacy network adapter" in problem
    assert "is a legacy adapter" in j.judge_guest(synthetic, "win2003-1", ["External", "Internal", "Internal2"], adapter="synthetic")[0]


def test_public_leg_by_arp() -> None:
    router = j.where_is(per_host("SVR1-created", "SVR2-created"), "win2003-1")["SVR1"]
    assert j.judge_public_leg(router, recorded("neighbor", "router-answers"), "External", "192.168.1.111") == []
    assert "not by win2003-1's External NIC" in j.judge_public_leg(router, recorded("neighbor", "other-nic-answers"), "External", "192.168.1.111")[0]
    assert "nothing answers ARP" in j.judge_public_leg(router, recorded("neighbor", "nobody"), "External", "192.168.1.111")[0]


def test_reported_addresses() -> None:
    silent = j.where_is(per_host("SVR1-created", "SVR2-created"), "win2003-2")["SVR1"]
    right = j.where_is(per_host("SVR1-created-with-kvp", "SVR2-created"), "win2003-2")["SVR1"]
    wrong = j.where_is(per_host("SVR1-wrong-kvp", "SVR2-created"), "win2003-2")["SVR1"]
    expected = {"Internal": "10.10.10.10/24"}
    assert j.judge_reported_addresses(silent, expected) is None  # no integration services: cannot tell
    assert j.judge_reported_addresses(right, expected) == []
    assert j.judge_reported_addresses(wrong, expected) == ["win2003-2's NIC on Internal reports ['10.10.10.99'], expected 10.10.10.10"]


@pytest.mark.parametrize("case, host_ip, expected", [
    ("SVR1-kerberos", "192.168.1.110", None),
    ("SVR1-default-off", "192.168.1.110", "live migration is off"),
    ("SVR1-credssp", "192.168.1.110", "CredSSP, expected Kerberos"),
    ("SVR2-wrong-network", "192.168.1.120", "do not include 192.168.1.120"),
])
def test_migration_settings(case: str, host_ip: str, expected: str | None) -> None:
    problems = j.judge_migration_host(recorded("vmhost-migration", case), "SVR", host_ip)
    assert (problems == []) if expected is None else (expected in " ".join(problems))


def test_migrations() -> None:
    before = per_host("SVR1-created", "SVR2-created")
    after = per_host("SVR1-after-migrations", "SVR2-after-migrations")
    assert j.judge_runs_on(before, "win2003-1", "SVR2") == ["win2003-1 is still on SVR1, expected on SVR2"]
    assert j.judge_runs_on(after, "win2003-1", "SVR2") == []
    assert j.judge_local_disks(j.where_is(after, "win2003-1")["SVR2"], PREFIXES) == []
    assert j.judge_runs_on(after, "win2003-3", "SVR2") == []
    assert j.judge_disks_on_share(j.where_is(after, "win2003-3")["SVR2"], PREFIXES) == []
    assert j.judge_disks_on_share(j.where_is(after, "win2003-2")["SVR1"], PREFIXES) == []
    assert "is not on \\\\dc1\\smb\\" in j.judge_disks_on_share(j.where_is(before, "win2003-2")["SVR1"], PREFIXES)[0]
    stopped = per_host("SVR1-empty", "SVR2-router-stopped")
    assert j.judge_runs_on(stopped, "win2003-1", "SVR2") == ["win2003-1 on SVR2 is Off, expected Running"]


@pytest.mark.parametrize("case, expected", [
    ("both", None),
    ("none", "may not delegate to cifs/DC1"),
    ("cifs-only", "may not delegate to Microsoft Virtual System Migration Service/SVR2"),
    ("unconstrained", "unconstrained delegation"),
])
def test_delegation(case: str, expected: str | None) -> None:
    problems = j.judge_delegation(recorded("delegation", case), "SVR1", "SVR2", "DC1", FQDN)
    assert (problems == []) if expected is None else (expected in " ".join(problems))


@pytest.mark.parametrize("case, expected", [
    ("enabled", None), ("default-off", "not a Replica server"), ("rule-disabled", "Enabled=False"),
    ("certificate-only", "accepts Certificate replication"),
])
def test_replica_server(case: str, expected: str | None) -> None:
    problems = j.judge_replica_server(recorded("replica-server", case), "SVR1")
    assert (problems == []) if expected is None else (expected in " ".join(problems))


@pytest.mark.parametrize("primary, replica, expected", [
    ("SVR2-primary-normal", "SVR1-replica-normal", None),
    ("SVR2-primary-initial", "SVR1-replica-normal", "health is Warning"),
    ("SVR2-primary-30s", "SVR1-replica-normal", "every 30 s, expected 300 s"),
    ("SVR2-not-replicated", "SVR1-replica-normal", "is not replicated from SVR2"),
])
def test_replication(primary: str, replica: str, expected: str | None) -> None:
    problems = j.judge_replication(recorded("replication", primary), recorded("replication", replica),
                                   "Linux01", "SVR2", "SVR1", 300)
    assert (problems == []) if expected is None else (expected in " ".join(problems))


def test_planned_failover_needs_the_reverse_direction() -> None:
    reversed_ = j.judge_replication(recorded("replication", "SVR1-primary-reversed"), recorded("replication", "SVR2-replica-reversed"),
                                    "Linux01", "SVR1", "SVR2", 300, running=True)
    assert reversed_ == []
    not_yet = j.judge_replication(recorded("replication", "SVR1-failed-over-not-reversed"), recorded("replication", "SVR2-primary-normal"),
                                  "Linux01", "SVR1", "SVR2", 300, running=True)
    assert "on SVR1, Linux01 is the Replica side, expected Primary" in not_yet
    assert "SVR2 holds no replica of Linux01" in not_yet


def test_powershell_51_single_elements_are_tolerated() -> None:
    """ConvertTo-Json may print a one-element array as its element: the judges do not care."""
    data = recorded("ad-computers", "only-svr1")
    data["Computers"] = data["Computers"][0]
    assert j.judge_ad_computers(data, ["SVR1"], FQDN) == []
