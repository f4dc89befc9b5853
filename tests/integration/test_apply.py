"""converge/teardown against the real libvirtd, defining objects without booting them."""

from __future__ import annotations

import subprocess

import pytest

from hyperlab.host.apply import converge, teardown
from hyperlab.host.conn import ForeignObject, lookup_domain
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, plan
from tests.integration.conftest import ROOT, inventory

pytestmark = pytest.mark.libvirtd


@pytest.fixture
def lab_plan(fake_images: HostFacts, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    p = plan(load_lab("chapter-2-linux", ROOT), f"t{abs(hash(request.node.name)) % 10**6}", fake_images)
    yield p
    from hyperlab.host.conn import connect

    teardown(connect(), p)


def test_converge_creates_everything_then_keeps_it_and_down_restores_the_inventory(conn, lab_plan) -> None:  # type: ignore[no-untyped-def]
    before = inventory(conn)
    first = converge(conn, lab_plan)
    assert {c.action for c in first} == {"created"}
    assert len([c for c in first if c.kind == "domain"]) == 6 and len([c for c in first if c.kind == "network"]) == 3
    overlay = lab_plan.pool_path / "DC1.qcow2"
    info = subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], capture_output=True, text=True, check=True)
    assert '"backing-filename": "' + str(lab_plan.node("DC1").volumes[0].backing) in info.stdout
    assert overlay.stat().st_size < 1 << 20  # thin

    again = converge(conn, lab_plan)
    assert {c.action for c in again} == {"kept"} and len(again) == len(first)

    removed = teardown(conn, lab_plan)
    assert {c.action for c in removed} == {"removed"}
    assert inventory(conn) == before
    assert not lab_plan.pool_path.exists()


def test_a_foreign_domain_with_a_wanted_name_is_refused_and_left_untouched(conn, lab_plan) -> None:  # type: ignore[no-untyped-def]
    name = lab_plan.node("ROUTER").domain
    foreign_xml = f"<domain type='qemu'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os></domain>"
    foreign = conn.defineXML(foreign_xml)
    try:
        before = inventory(conn)
        with pytest.raises(ForeignObject, match=f"domain '{name}' already exists and was not made by hyperlab"):
            converge(conn, lab_plan)
        assert inventory(conn) == before  # nothing created
        assert teardown(conn, lab_plan) == []  # and down does not remove it either
        assert lookup_domain(conn, name) is not None
    finally:
        foreign.undefine()


def test_another_instances_objects_are_foreign(conn, lab_plan, fake_images: HostFacts) -> None:  # type: ignore[no-untyped-def]
    converge(conn, lab_plan)
    other = lab_plan.model_copy(update={"instance": "intruder"})  # same names, another owner
    with pytest.raises(ForeignObject, match="belongs to lab chapter-2-linux instance " + lab_plan.instance):
        converge(conn, other)


def test_two_instances_coexist(conn, fake_images: HostFacts) -> None:  # type: ignore[no-untyped-def]
    loaded = load_lab("chapter-2-linux", ROOT)
    a, b = plan(loaded, "pair-a", fake_images), plan(loaded, "pair-b", fake_images)
    try:
        converge(conn, a)
        converge(conn, b)
        assert all(lookup_domain(conn, n.domain) for n in a.nodes + b.nodes)
    finally:
        teardown(conn, a)
        teardown(conn, b)


def test_a_run_killed_before_the_pool_was_defined_is_claimed_by_the_next(conn, lab_plan) -> None:  # type: ignore[no-untyped-def]
    from hyperlab.host.instance_files import write_plan_record

    before = inventory(conn)
    write_plan_record(lab_plan)  # what a run killed right after its first step leaves behind
    assert {c.action for c in converge(conn, lab_plan)} == {"created"}
    teardown(conn, lab_plan)
    assert inventory(conn) == before and not lab_plan.pool_path.exists()


def test_an_instance_deployed_from_another_topology_version_is_refused(conn, lab_plan) -> None:  # type: ignore[no-untyped-def]
    from hyperlab.host.apply import StaleInstance

    converge(conn, lab_plan)
    changed = lab_plan.model_copy(update={"topology_hash": "0" * 16})
    with pytest.raises(StaleInstance, match="another version of topology kosa-linux; `lab down"):
        converge(conn, changed)


def test_a_command_on_an_instance_another_command_is_changing_is_refused(conn) -> None:  # type: ignore[no-untyped-def]
    import sys

    from hyperlab.host.facts import host_plan
    from hyperlab.host.instance_lock import changing

    before = inventory(conn)
    with changing(host_plan(load_lab("chapter-1", ROOT), "lockt"), "up"):
        result = subprocess.run([sys.executable, "-m", "hyperlab", "down", "chapter-1", "--instance", "lockt"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("refused: `lab up` (pid ") and result.stderr.count("\n") == 1, result.stderr
    assert "is changing chapter-1 instance lockt right now" in result.stderr
    assert inventory(conn) == before
