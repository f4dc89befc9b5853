"""chapter-2: the real checker functions of checkers/chapter-2/ run against recorded outputs.

A replay double stands in for the `node` fixture: a real `hyperlab.grading.target.Node` (so the
real ps_json wrapping and JSON parsing run) over a channel that answers each ps/ script with a
recorded output; `probe` is a double that returns given probe outcomes. Each checker is shown
to PASS on the solved state and FAIL (AssertionError, the plugin's FAIL) on a typical mistake.

NOT run against Windows: the recorded outputs are hand-written from Microsoft's documentation
(tests/data/recorded/chapter-2/README.md); nothing here proves what real Windows prints.
"""

from __future__ import annotations

from typing import Any

import pytest

from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, plan
from hyperlab.probes import Outcome, ProbeResult
from tests.unit.chapter2_support import LAB, checker_module, replay_nodes


class ReplayLab:
    """The `lab` fixture's shape, from the real lab.yaml and its plan; nothing deployed."""

    def __init__(self) -> None:
        self.loaded = load_lab("chapter-2", LAB.parents[1])
        self.plan = plan(self.loaded, "default", HostFacts())
        self.variables = dict(self.loaded.lab.variables)

    def ip(self, node: str, network: str | None = None) -> str:
        return next(str(n.ip.ip) for n in self.plan.node(node).nics if n.ip is not None)

    def secret(self, name: str) -> str:
        return "replayed-secret"


class ReplayProbe:
    """`probe`: every probe answers with the outcome given for its (kind, port)."""

    def __init__(self, outcomes: dict[tuple[str, int], Outcome]) -> None:
        self.outcomes = outcomes
        self.asked: list[tuple[str, str, int]] = []
        self.logins: list[tuple[str, str]] = []

    def _answer(self, kind: str, host: str, port: int) -> ProbeResult:
        self.asked.append((kind, host, port))
        outcome = self.outcomes.get((kind, port), Outcome.TIMEOUT)
        return ProbeResult(kind=kind, target=f"{host}:{port}", outcome=outcome, detail="replayed")

    def tcp(self, host: str, port: int, **_: Any) -> ProbeResult:
        return self._answer("tcp", host, port)

    def telnet(self, host: str, port: int = 23, **_: Any) -> ProbeResult:
        return self._answer("telnet", host, port)

    def rdp(self, host: str, port: int = 3389, **_: Any) -> ProbeResult:
        return self._answer("rdp", host, port)

    def telnet_login(self, host: str, port: int, user: str, password: str, **_: Any) -> ProbeResult:
        self.logins.append((user, password))
        return self._answer("telnet_login", host, port)


@pytest.fixture(scope="module")
def lab() -> ReplayLab:
    return ReplayLab()


SOLVED_VMS = {"SVR1": {"vms": "SVR1-created"}, "SVR2": {"vms": "SVR2-created"}}


def run(check: Any, **fixtures: Any) -> None:
    check(**{name: value for name, value in fixtures.items() if name in check.__code__.co_varnames})


def test_switches_checker(lab: ReplayLab) -> None:
    check = checker_module("test_switches").test_switches_on_both_hosts
    run(check, lab=lab, node=replay_nodes(lab, {"SVR1": {"switches": "SVR1-all"}, "SVR2": {"switches": "SVR2-all"}}))
    with pytest.raises(AssertionError, match="SVR1 has no virtual switch Internal2"):
        run(check, lab=lab, node=replay_nodes(lab, {"SVR1": {"switches": "SVR1-no-internal2"}, "SVR2": {"switches": "SVR2-all"}}))


def test_domain_checkers(lab: ReplayLab) -> None:
    module = checker_module("test_domain")
    joined = {"SVR1": {"domain-member": "SVR1-joined"}, "SVR2": {"domain-member": "SVR2-joined"},
              "DC1": {"ad-computers": "both"}}
    run(module.test_each_host_is_a_member, lab=lab, node=replay_nodes(lab, joined))
    run(module.test_dc_has_both_computer_accounts, lab=lab, node=replay_nodes(lab, joined))
    with pytest.raises(AssertionError, match="SVR1 is not in a domain"):
        run(module.test_each_host_is_a_member, lab=lab,
            node=replay_nodes(lab, {**joined, "SVR1": {"domain-member": "SVR1-workgroup"}}))


def test_the_replay_goes_through_the_real_powershell_wrapper(lab: ReplayLab) -> None:
    nodes = replay_nodes(lab, {"DC1": {"ad-computers": "both"}})
    run(checker_module("test_domain").test_dc_has_both_computer_accounts, lab=lab, node=nodes)
    sent = nodes("DC1").channel.commands[0]
    assert sent.startswith("$ProgressPreference = 'SilentlyContinue'\n& {\n$Names = @('SVR1', 'SVR2')\n")
    assert sent.endswith("} | ConvertTo-Json -Depth 6 -Compress")


def test_share_checkers(lab: ReplayLab) -> None:
    module = checker_module("test_share")
    run(module.test_share_exists_for_everyone, node=replay_nodes(lab, {"DC1": {"smb-share": "everyone-full"}}))
    with pytest.raises(AssertionError, match="no share named smb"):
        run(module.test_share_exists_for_everyone, node=replay_nodes(lab, {"DC1": {"smb-share": "missing"}}))
    run(module.test_hosts_have_full_control, lab=lab, node=replay_nodes(lab, {"DC1": {"smb-share": "hosts-full"}}))
    with pytest.raises(AssertionError, match="FullControl in the NTFS"):
        run(module.test_hosts_have_full_control, lab=lab, node=replay_nodes(lab, {"DC1": {"smb-share": "hosts-share-only"}}))


def test_guest_checkers(lab: ReplayLab) -> None:
    module = checker_module("test_guests")
    run(module.test_guests_and_their_switches, lab=lab, node=replay_nodes(lab, SOLVED_VMS))
    with pytest.raises(AssertionError, match="generation 2"):
        run(module.test_guests_and_their_switches, lab=lab,
            node=replay_nodes(lab, {**SOLVED_VMS, "SVR1": {"vms": "SVR1-gen2-and-wrong-switch"}}))
    router = {"SVR1": {"vms": "SVR1-created", "neighbor": "router-answers"}, "SVR2": {"vms": "SVR2-created"}}
    run(module.test_public_address_is_on_the_external_nic, lab=lab, node=replay_nodes(lab, router))
    with pytest.raises(AssertionError, match="not by win2003-1's External NIC"):
        run(module.test_public_address_is_on_the_external_nic, lab=lab,
            node=replay_nodes(lab, {**router, "SVR1": {"vms": "SVR1-created", "neighbor": "other-nic-answers"}}))
    # silent guests (no integration services) are not judged; wrong reported addresses are
    run(module.test_addresses_reported_by_the_guests, lab=lab, node=replay_nodes(lab, SOLVED_VMS))
    run(module.test_addresses_reported_by_the_guests, lab=lab,
        node=replay_nodes(lab, {**SOLVED_VMS, "SVR1": {"vms": "SVR1-created-with-kvp"}}))
    with pytest.raises(AssertionError, match="expected 10.10.10.10"):
        run(module.test_addresses_reported_by_the_guests, lab=lab,
            node=replay_nodes(lab, {**SOLVED_VMS, "SVR1": {"vms": "SVR1-wrong-kvp"}}))


def test_outside_in_checkers(lab: ReplayLab) -> None:
    module = checker_module("test_nat")
    published = ReplayProbe({("telnet", 23): Outcome.OK, ("rdp", 35000): Outcome.OK, ("telnet_login", 23): Outcome.OK})
    for check in (module.test_nat_delivers_to_an_inner_host, module.test_telnet_answers_through_the_router,
                  module.test_teluser_logs_in_through_the_router,
                  module.test_rdp_answers_on_35000_through_the_router, module.test_public_23_reaches_telnet,
                  module.test_public_35000_reaches_rdp):
        run(check, lab=lab, probe=published)
    assert ("telnet", "192.168.1.111", 23) in published.asked
    assert published.logins == [("teluser", "Telnet-2003")]
    # teluser not in TelnetClients: Windows refuses the login (the probe's AUTH_FAILED, proven against telnetd)
    with pytest.raises(AssertionError, match="AUTH_FAILED|auth-failed|credentials"):
        run(module.test_teluser_logs_in_through_the_router, lab=lab,
            probe=ReplayProbe({("telnet", 23): Outcome.OK, ("telnet_login", 23): Outcome.AUTH_FAILED}))
    nothing = ReplayProbe({})
    with pytest.raises(AssertionError, match="only visible from outside once a port is published"):
        run(module.test_nat_delivers_to_an_inner_host, lab=lab, probe=nothing)
    with pytest.raises(AssertionError, match="TIMEOUT"):
        run(module.test_public_35000_reaches_rdp, lab=lab, probe=ReplayProbe({("telnet", 23): Outcome.OK}))
    guests = checker_module("test_guests")
    run(guests.test_public_address_answers_from_outside, lab=lab, probe=ReplayProbe({("tcp", 445): Outcome.REFUSED}))
    with pytest.raises(AssertionError, match="no host at 192.168.1.111"):
        run(guests.test_public_address_answers_from_outside, lab=lab, probe=nothing)


def test_migration_checkers(lab: ReplayLab) -> None:
    module = checker_module("test_migration")
    hosts = {"SVR1": {"vmhost-migration": "SVR1-kerberos"}, "SVR2": {"vmhost-migration": "SVR2-kerberos"}}
    run(module.test_live_migration_with_kerberos, lab=lab, node=replay_nodes(lab, hosts))
    with pytest.raises(AssertionError, match="CredSSP"):
        run(module.test_live_migration_with_kerberos, lab=lab,
            node=replay_nodes(lab, {**hosts, "SVR1": {"vmhost-migration": "SVR1-credssp"}}))
    run(module.test_constrained_delegation_in_ad, lab=lab, node=replay_nodes(lab, {"DC1": {"delegation": "both"}}))
    with pytest.raises(AssertionError, match="may not delegate"):
        run(module.test_constrained_delegation_in_ad, lab=lab, node=replay_nodes(lab, {"DC1": {"delegation": "cifs-only"}}))
    # a storage move writes to the destination's SMB: its cifs is needed too (the solution once left it out)
    with pytest.raises(AssertionError, match="may not delegate to cifs/SVR2"):
        run(module.test_constrained_delegation_in_ad, lab=lab,
            node=replay_nodes(lab, {"DC1": {"delegation": "no-destination-cifs"}}))
    after = {"SVR1": {"vms": "SVR1-after-migrations"}, "SVR2": {"vms": "SVR2-after-migrations"}}
    for check in (module.test_router_runs_on_svr2_with_its_disks, module.test_win2003_3_runs_on_svr2_from_the_share,
                  module.test_win2003_2_disk_on_the_share):
        run(check, lab=lab, node=replay_nodes(lab, after))
        with pytest.raises(AssertionError):
            run(check, lab=lab, node=replay_nodes(lab, SOLVED_VMS))


def test_replica_checkers(lab: ReplayLab, monkeypatch: pytest.MonkeyPatch) -> None:
    module = checker_module("test_replica")
    monkeypatch.setattr(module, "HEALTH_TIMEOUT", 0.01)  # the recorded state does not converge
    servers = {"SVR1": {"replica-server": "enabled"}, "SVR2": {"replica-server": "enabled"}}
    run(module.test_replica_server_settings, node=replay_nodes(lab, servers))
    with pytest.raises(AssertionError, match="Enabled=False"):
        run(module.test_replica_server_settings, node=replay_nodes(lab, {**servers, "SVR2": {"replica-server": "rule-disabled"}}))
    run(module.test_replica_listener_reachable, lab=lab, node=replay_nodes(lab, servers), probe=ReplayProbe({("tcp", 80): Outcome.OK}))
    healthy = {"SVR2": {"replication": "SVR2-primary-normal"}, "SVR1": {"replication": "SVR1-replica-normal"}}
    run(module.test_replication_healthy, lab=lab, node=replay_nodes(lab, healthy))
    with pytest.raises(AssertionError, match="every 30 s, expected 300 s"):
        run(module.test_replication_healthy, lab=lab,
            node=replay_nodes(lab, {**healthy, "SVR2": {"replication": "SVR2-primary-30s"}}))
    reversed_ = {"SVR1": {"replication": "SVR1-primary-reversed"}, "SVR2": {"replication": "SVR2-replica-reversed"}}
    run(module.test_failed_over_and_reversed, lab=lab, node=replay_nodes(lab, reversed_))
    with pytest.raises(AssertionError, match="expected Primary"):
        run(module.test_failed_over_and_reversed, lab=lab, node=replay_nodes(lab, healthy))


def test_every_step_has_a_checker() -> None:
    """Each step of lab.yaml is named by at least one @pytest.mark.step in checkers/chapter-2."""
    import ast

    marked = set()
    for path in (LAB.parents[1] / "checkers" / "chapter-2").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "step" and node.args:
                marked.add(node.args[0].value)
    steps = {s.id for s in load_lab("chapter-2", LAB.parents[1]).lab.steps}
    assert steps - marked == set()
    assert marked - steps == set()


def test_the_delegation_solution_grants_what_the_checker_requires() -> None:
    """The SPNs the reference solution adds, read from its text, pass the judge for both hosts."""
    import re

    judge = checker_module("ch2_judge")
    text = (LAB / "solutions" / "delegation.ps1").read_text()
    listed = re.search(r"\$services = @\((.*?)\)\n", text, re.S)
    assert listed is not None
    templates = re.findall(r'"([^"]+)"', listed.group(1))
    for host, other in (("SVR1", "SVR2"), ("SVR2", "SVR1")):
        spns = [t.replace("$other", other).replace("$fqdn", "kosa.vm") for t in templates]
        data = {"Computers": [{"Name": host, "AllowedToDelegateTo": spns, "TrustedForDelegation": False}]}
        assert judge.judge_delegation(data, host, other, "DC1", "kosa.vm") == [], spns
