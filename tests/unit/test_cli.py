from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hyperlab.core.schema import SCHEMAS, schema_text
from tests.unit.clihelp import run_lab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_every_lab_and_topology_validates() -> None:
    files = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("labs/*/lab.yaml")) + sorted(ROOT.glob("topologies/*.yaml"))]
    result = run_lab("validate", *files)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("ok: ") == len(files) >= 6


def test_list_shows_every_lab_with_its_points() -> None:
    rows = json.loads(run_lab("list", "--json").stdout)
    assert {r["id"]: r["points"] for r in rows} == {"chapter-1": 100, "chapter-2": 100, "chapter-2-linux": 100}
    assert all(r["title"]["ko"] and r["title"]["en"] for r in rows)


def test_plan_prints_the_full_plan_for_chapter_2() -> None:
    result = run_lab("plan", "chapter-2")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for expected in ("hl.chapter-2.default.DC1", "hl.chapter-2.default.SVR1", "hl.chapter-2.default.SVR2",
                     "hl.chapter-2.default.public", "192.168.1.110/24", "192.168.1.2/24", "nested",
                     "unattend medium", "boot wave 0: DC1"):
        assert expected in text
    assert "…" not in text  # nothing truncated


def test_plan_json_is_the_plan() -> None:
    data = json.loads(run_lab("plan", "chapter-2-linux", "--instance", "bob", "--json", "--accel", "tcg").stdout)
    assert data["instance"] == "bob" and data["accel"] == "tcg"
    assert [n["name"] for n in data["nodes"]] == ["DC1", "SVR1", "SVR2", "ROUTER", "INNER1", "INNER2"]


def test_plan_writes_one_xml_file_per_libvirt_object(tmp_path: Path) -> None:
    result = run_lab("plan", "chapter-2", "--xml", str(tmp_path))
    assert result.exit_code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["network-public.xml", "pool.xml", "domain-DC1.xml", "domain-SVR1.xml", "domain-SVR2.xml",
                            "volume-DC1.xml", "volume-DC1.disk1.xml", "volume-SVR1.xml", "volume-SVR1.disk1.xml",
                            "volume-SVR1.disk2.xml", "volume-SVR2.xml", "volume-SVR2.disk1.xml", "volume-SVR2.disk2.xml"])
    for path in tmp_path.iterdir():
        ET.parse(path)
    # the VHDX disk: one thin overlay per node on the read-only store image, never a copy
    for name in ("volume-DC1.disk1.xml", "volume-SVR1.disk2.xml", "volume-SVR2.disk2.xml"):
        backing = ET.parse(tmp_path / name).getroot().findtext("backingStore/path") or ""
        assert backing.endswith("/guest-vhdx.qcow2"), (name, backing)


@pytest.mark.parametrize(("args", "message"), [
    (["plan", "chapter-2", "--instance", "Alice!"], "error: --instance: 'Alice!' is not a valid id"),
    (["plan", "no-such-lab"], "error: no lab 'no-such-lab'"),
    (["plan", "chapter-2", "--accel", "hvf"], "error: --accel must be kvm or tcg, not 'hvf'"),
    (["validate", "no/such/file.yaml"], "error: no lab 'no/such/file.yaml'"),
    (["diagram", "nope"], "error: no lab 'nope'"),
    (["up", "chapter-2-linux", "--var", "nope=1"], "error: --var nope: the lab declares no such variable"),
    (["up", "chapter-2-linux", "--var", "replication_interval_seconds=soon"],
     "error: --var replication_interval_seconds=soon: expected a whole number like 300"),
    (["up", "chapter-2-linux", "--var", "replication_interval_seconds"], "error: --var 'replication_interval_seconds': write NAME=VALUE"),
    # what click itself refuses (a type, a range, a missing value, an unknown name): one line too, not a box
    (["up", "chapter-2-linux", "--timeout", "soon"], "error: Invalid value for '--timeout'"),
    (["acceptance", "chapter-2", "--frozen-after", "0"], "error: Invalid value for '--frozen-after'"),
    (["check", "chapter-2", "--lang"], "error: Option '--lang' requires an argument"),
    (["up"], "error: Missing argument 'lab'. (see: lab up --help)"),
    (["up", "chapter-2", "--bogus"], "error: No such option: --bogus (see: lab up --help)"),
    (["nosuch"], "error: No such command 'nosuch'. (see: lab --help)"),
    (["image", "nosuch"], "error: No such command 'nosuch'. (see: lab image --help)"),
    (["image", "build", "windows-server-2022", "--frozen-after", "x"], "error: Invalid value for '--frozen-after'"),
])
def test_argument_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_lab(*args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message)


def test_validate_reports_every_bad_file_and_still_confirms_the_good_ones(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnetworks: {n: {cidr: 10.0.0.0/24}}\nnodes: {A: {image: nope}}\n")
    result = run_lab("validate", "chapter-1", str(bad))
    assert result.exit_code == 2
    assert "ok: labs/chapter-1/lab.yaml" in result.stdout
    assert result.stderr.splitlines() == [f"{bad}:3:20: nodes.A.image: unknown image 'nope'; known images: "
                                          "debian-12, ticker, tiny, windows-server-2019, windows-server-2022, windows-server-2025"]


def test_committed_schemas_are_current() -> None:
    for name, model in SCHEMAS.items():
        assert (ROOT / "schema" / f"{name}.schema.json").read_text() == schema_text(model), "run `lab schema`"


def test_yaml_files_point_editors_at_the_schema() -> None:
    for path in ROOT.glob("topologies/*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../schema/topology.schema.json\n"), path
    for path in ROOT.glob("labs/*/lab.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../../schema/lab.schema.json\n"), path


def test_schema_writes_both_files(tmp_path: Path) -> None:
    result = run_lab("schema", "--out", str(tmp_path))
    assert result.exit_code == 0
    lab = json.loads((tmp_path / "lab.schema.json").read_text())
    assert "steps" in lab["properties"] and "steps" in lab["required"]


def test_diagram_draws_nodes_networks_addresses_and_guests(tmp_path: Path) -> None:
    out = tmp_path / "c2.svg"
    assert run_lab("diagram", "chapter-2", "-o", str(out)).exit_code == 0
    svg = ET.parse(out).getroot()
    text = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    for expected in ("DC1", "SVR1", "SVR2", "192.168.1.100", "192.168.1.110", "192.168.1.0/24", "win2003-1", "kosa.vm"):
        assert expected in text
    assert run_lab("diagram", "chapter-2").stdout == out.read_text()
