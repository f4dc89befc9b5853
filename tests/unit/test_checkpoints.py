"""Checkpoints: names, which nodes can have one, how a reset chooses, and the libvirt calls, against
libvirt's own test driver (test:///default: real snapshot objects, no guest). Real guests restored
from real internal snapshots: tests/integration/test_deploy.py, test_chapter1.py, test_chapter2_linux.py.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import libvirt
import pytest

from hyperlab.core.checkpoints import (START, check_name, check_user_name, checkpoint_of, plan_reset, snapshot_name,
                                       step_checkpoint, unavailable)
from hyperlab.core.errors import UsageError
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, Plan, plan
from hyperlab.host import checkpoints as host_checkpoints
from hyperlab.host.apply import Change
from hyperlab.host.checkpoints import CheckpointError, checkpoints, delete, has, restore, save
from hyperlab.ops.checkpoints import fresh_nodes, reset_to, save_instance, take_start

ROOT = Path(__file__).resolve().parents[2]
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
_instances = itertools.count()


# ------------------------------------------------------------------------------ pure


@pytest.mark.parametrize("name", ["before-migration", "a", "x" * 40, "step2"])
def test_checkpoint_names_are_plain(name: str) -> None:
    assert check_name(name) == name == check_user_name(name)
    assert checkpoint_of(snapshot_name(name)) == name


@pytest.mark.parametrize("name", ["", "Before", "-x", "a b", "a/b", "x" * 41, "a\n", "../start", "ä"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a checkpoint name"):
        check_name(name)


def test_hyperlabs_own_names_are_not_the_users() -> None:
    for name in (START, step_checkpoint("nat")):
        check_name(name)
        with pytest.raises(ValueError, match="hyperlab's own checkpoint"):
            check_user_name(name)
    assert checkpoint_of("someone-elses-snapshot") is None and checkpoint_of("hl-Bad") is None


def lab_plan(lab: str, tmp_path: Path) -> Plan:
    return plan(load_lab(str(ROOT / "labs" / lab)), f"t{next(_instances)}", HostFacts(accel="kvm", instances_dir=tmp_path))


def test_uefi_and_tpm_nodes_cannot_have_one(tmp_path: Path) -> None:
    windows = lab_plan("chapter-2", tmp_path)
    assert {n.name: bool(unavailable(n)) for n in windows.nodes} == {n.name: True for n in windows.nodes}
    assert "UEFI" in (unavailable(windows.node("DC1")) or "")
    linux = lab_plan("chapter-2-linux", tmp_path)
    assert [n.name for n in linux.nodes if unavailable(n)] == []
    tpm = linux.node("DC1").model_copy(update={"tpm": True})
    assert "TPM" in (unavailable(tpm) or "")


def test_a_reset_restores_what_has_a_start_and_boots_the_rest() -> None:
    how = plan_reset(["DC1", "SVR1", "SVR2"], {"DC1", "SVR2"}, clean=False)
    assert (how.restore, how.clean) == (("DC1", "SVR2"), ("SVR1",))
    how = plan_reset(["DC1", "SVR1"], {"DC1", "SVR1"}, clean=True)
    assert (how.restore, how.clean) == ((), ("DC1", "SVR1"))


def test_only_nodes_whose_system_disk_was_just_made_are_fresh(tmp_path: Path) -> None:
    p = lab_plan("chapter-2-linux", tmp_path)
    changes = [Change("volume", p.node("DC1").volumes[0].name, "created"), Change("volume", p.node("SVR1").volumes[0].name, "kept"),
               Change("domain", p.node("SVR2").domain, "created")]
    assert fresh_nodes(p, changes) == ["DC1"]


# ------------------------------------------------------------------------------ libvirt's test driver


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Plan]:
    """chapter-2-linux's plan with its six domains defined and running in the test driver."""
    conn = libvirt.open("test:///default")
    p = lab_plan("chapter-2-linux", tmp_path)
    for node in p.nodes:
        conn.createXML(f"<domain type='test'><name>{node.domain}</name><memory>65536</memory>"
                       "<os><type>hvm</type></os></domain>", 0)
    clocks: list[str] = []
    monkeypatch.setattr(host_checkpoints, "set_clock", lambda domain: clocks.append(domain.name()) or True)
    yield conn, p
    for node in p.nodes:
        domain = conn.lookupByName(node.domain)
        for snapshot in domain.listAllSnapshots(0):
            snapshot.delete(0)
        domain.destroy()
    conn.close()


def names_of(p: Plan) -> list[str]:
    return [n.name for n in p.nodes]


def test_save_list_restore_delete(instance: tuple[Any, Plan]) -> None:
    conn, p = instance
    save(conn, p, ["DC1", "SVR1"], START)
    save(conn, p, ["DC1", "SVR1"], START)  # replaced, not doubled
    assert [(c.name, c.nodes) for c in checkpoints(conn, p)] == [(START, ("DC1", "SVR1"))]
    assert len(conn.lookupByName(p.node("DC1").domain).listAllSnapshots(0)) == 1
    assert has(conn, p, "DC1", START) and not has(conn, p, "SVR2", START)
    for name in ("DC1", "SVR1"):
        assert conn.lookupByName(p.node(name).domain).isActive()  # paused for the cut, running again
        assert conn.lookupByName(p.node(name).domain).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert restore(conn, p, ["DC1", "SVR1"], START) == []
    assert conn.lookupByName(p.node("DC1").domain).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    with pytest.raises(CheckpointError, match="SVR2 has no checkpoint 'start'"):
        restore(conn, p, ["SVR2"], START)
    assert delete(conn, p, START) == ["DC1", "SVR1"]
    assert checkpoints(conn, p) == []


def test_a_node_that_is_not_running_cannot_be_checkpointed(instance: tuple[Any, Plan]) -> None:
    conn, p = instance
    conn.lookupByName(p.node("SVR2").domain).destroy()
    try:
        with pytest.raises(CheckpointError, match="SVR2 is not running"):
            save(conn, p, ["DC1", "SVR2"], START)
        assert checkpoints(conn, p) == []  # nothing half-made
    finally:
        conn.createXML(f"<domain type='test'><name>{p.node('SVR2').domain}</name><memory>65536</memory>"
                       "<os><type>hvm</type></os></domain>", 0)


def test_user_checkpoints_sit_beside_start_and_a_foreign_snapshot_is_ignored(instance: tuple[Any, Plan]) -> None:
    conn, p = instance
    take_start(conn, p, names_of(p))
    save_instance(conn, p, "before-migration")
    conn.lookupByName(p.node("DC1").domain).snapshotCreateXML("<domainsnapshot><name>mine</name></domainsnapshot>", 0)
    assert {c.name: c.nodes for c in checkpoints(conn, p)} == {START: tuple(names_of(p)),
                                                               "before-migration": tuple(names_of(p))}


def test_reset_to_a_step_solves_it_once_and_keeps_it(instance: tuple[Any, Plan]) -> None:
    conn, p = instance
    loaded = load_lab(str(ROOT / "labs" / "chapter-2-linux"))
    solved: list[list[str]] = []

    def solve(steps: list[str]) -> list[str]:
        solved.append(steps)
        return []

    with pytest.raises(CheckpointError, match="starts from every node's 'start'"):
        reset_to(conn, loaded, p, "nat", solve)
    assert solved == []
    take_start(conn, p, names_of(p))
    assert reset_to(conn, loaded, p, "nat", solve) == "step-nat"
    assert solved == [["nat"]]
    assert reset_to(conn, loaded, p, "nat", solve) == "step-nat"  # kept: not solved again
    assert solved == [["nat"]]
    save_instance(conn, p, "mine")
    assert reset_to(conn, loaded, p, "mine", solve) == "mine"
    with pytest.raises(UsageError, match=r"--to nope: no checkpoint and no step .*checkpoints: mine, start, step-nat"):
        reset_to(conn, loaded, p, "nope", solve)


def test_reset_to_a_step_without_a_solution_says_so(instance: tuple[Any, Plan]) -> None:
    conn, p = instance
    loaded = load_lab(str(ROOT / "labs" / "chapter-2-linux"))
    take_start(conn, p, names_of(p))
    with pytest.raises(CheckpointError, match="without a reference solution: nat"):
        reset_to(conn, loaded, p, "nat", lambda steps: ["nat"])
    assert "step-nat" not in {c.name for c in checkpoints(conn, p)}


def test_windows_nodes_get_no_checkpoint_and_say_why(tmp_path: Path) -> None:
    p = lab_plan("chapter-2", tmp_path)
    said: list[tuple[str, str]] = []
    assert take_start(None, p, names_of(p), lambda node, what: said.append((node, what))) == []  # type: ignore[arg-type]
    assert [node for node, _ in said] == names_of(p) and all("UEFI" in what for _, what in said)
    with pytest.raises(UsageError, match="DC1 cannot have one"):
        save_instance(None, p, "mine")  # type: ignore[arg-type]
