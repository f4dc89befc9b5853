"""Hostile labs in a throw-away checkout: a lab that claims another lab's id, a topology that
claims another name than its file's, a lesson that is a link out of the lab. Each is one line,
exit 2, and nothing is planned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.clihelp import run_lab

TOPOLOGY = """name: tiny
networks: {lan: {cidr: 10.9.0.0/24}}
nodes: {N1: {image: debian-12, nics: [{network: lan, ip: 10.9.0.10}]}}
"""
LAB = """id: alpha
title: {ko: 가, en: A}
topology: tiny
steps:
  - {id: one, title: {ko: 하나, en: One}, points: 1}
"""


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "tiny.yaml").write_text(TOPOLOGY)
    (tmp_path / "labs" / "alpha").mkdir(parents=True)
    (tmp_path / "labs" / "alpha" / "lab.yaml").write_text(LAB)
    monkeypatch.chdir(tmp_path)
    assert run_lab("validate", "alpha").exit_code == 0
    return tmp_path


def refused(*args: str) -> str:
    result = run_lab(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


def test_a_lab_cannot_claim_another_labs_id(checkout: Path) -> None:
    lab = checkout / "labs" / "alpha" / "lab.yaml"
    lab.write_text(LAB.replace("id: alpha", "id: chapter-1"))
    for command in ("validate", "plan"):
        assert refused(command, "alpha") == ("labs/alpha/lab.yaml:1:5: id 'chapter-1' differs from the lab's folder 'alpha'; "
                                             "a lab's id is its folder's name: write id: alpha")


def test_a_topology_cannot_claim_another_name_than_its_files(checkout: Path) -> None:
    (checkout / "topologies" / "tiny.yaml").write_text(TOPOLOGY.replace("name: tiny", "name: kosa-linux"))
    assert refused("validate", "topologies/tiny.yaml") == (
        "topologies/tiny.yaml:1:7: name 'kosa-linux' differs from the file tiny.yaml; a topology's name is its file's: "
        "write name: tiny")
    assert "differs from the file tiny.yaml" in refused("plan", "alpha")


def test_a_lesson_that_links_out_of_the_lab_is_refused(checkout: Path) -> None:
    lessons = checkout / "labs" / "alpha" / "lessons"
    lessons.mkdir()
    os.symlink("/etc/passwd", lessons / "one.ko.md")
    (lessons / "one.en.md").write_text("# One\n")
    assert refused("validate", "alpha").endswith("one.ko.md:1:1: one.ko.md is a link that leaves the lab folder; "
                                                 "copy the lesson into lessons/")


def test_a_start_script_inside_the_lab_through_a_link_is_fine(checkout: Path) -> None:
    """The rule is where the link leads, not that it is one."""
    folder = checkout / "labs" / "alpha"
    (folder / "scripts").mkdir()
    (folder / "scripts" / "real.sh").write_text("true\n")
    (folder / "start").mkdir()
    os.symlink("../scripts/real.sh", folder / "start" / "s.sh")
    (folder / "lab.yaml").write_text(LAB + "start:\n  - {nodes: [N1], run: start/s.sh}\n")
    assert run_lab("validate", "alpha").exit_code == 0


def test_a_topology_that_links_out_of_topologies_is_refused(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "tiny.yaml"
    elsewhere.write_text(TOPOLOGY)
    (checkout / "topologies" / "tiny.yaml").unlink()
    os.symlink(elsewhere, checkout / "topologies" / "tiny.yaml")
    assert refused("validate", "alpha") == ("labs/alpha/lab.yaml:3:11: topologies/tiny.yaml is a link that leaves "
                                            "topologies; copy the topology there")


def test_a_file_far_larger_than_any_lab_is_refused_at_once(checkout: Path) -> None:
    big = checkout / "labs" / "alpha" / "lab.yaml"
    big.write_text(LAB + "".join(f"# {'x' * 98}\n" for _ in range(20_000)))  # 2 MB of comments
    assert refused("validate", "alpha") == ("labs/alpha/lab.yaml:1:1: the file is 1.9 MiB; a lab or topology file is "
                                            "at most 1 MiB (is it the right file?)")


@pytest.mark.parametrize("args, message", [
    (["plan", "alpha", "--xml", "afile"], "error: --xml afile: afile is a file, not a folder"),
    (["diagram", "alpha", "-o", "nodir/x.svg"], "error: --output nodir/x.svg: the folder nodir does not exist; create it first"),
    (["diagram", "alpha", "-o", "adir"], "error: --output adir: is a folder; give a file name inside it"),
    (["schema", "--out", "afile"], "error: --out afile: afile is a file, not a folder"),
    (["check", "alpha", "--evidence", "adir"], "error: --evidence adir: is a folder; give a file name inside it"),
    (["check", "alpha", "--uri", "qemu+ssh://-oProxyCommand=id/system"],
     "error: --uri: 'qemu+ssh://-oProxyCommand=id/system' is not a libvirt URI such as qemu:///system or qemu+ssh://root@lab-02/system"),
    (["check", "alpha", "--key", "garbage.key"], "error: --key: garbage.key is not a grading key (64 hex digits expected)"),
    (["grade", "--verify", "adir"], "error: adir: is a folder; give the evidence file inside it"),
    (["grade", "alpha", "--roster", "roster.csv", "--out", "afile"], "error: --out afile: afile is a file, not a folder"),
])
def test_output_paths_and_keys_are_checked_before_anything_runs(checkout: Path, args: list[str], message: str) -> None:
    (checkout / "afile").write_text("")
    (checkout / "adir").mkdir()
    (checkout / "garbage.key").write_bytes(b"\xff\xfe not hex")
    (checkout / "roster.csv").write_text("student,instance\nkim,kim\n")
    assert refused(*args) == message
    assert sorted(p.name for p in checkout.iterdir()) == ["adir", "afile", "garbage.key", "labs", "roster.csv", "topologies"]


def test_a_title_with_markup_is_printed_as_written(checkout: Path) -> None:
    lab = checkout / "labs" / "alpha" / "lab.yaml"
    lab.write_text(LAB.replace("title: {ko: 가, en: A}", 'title: {ko: "[bold red]가[/]", en: "[link]A"}'))
    result = run_lab("list")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "[link]A" in result.stdout and "[bold red]가[/]" in result.stdout


def test_a_file_name_with_control_characters_is_printed_escaped(checkout: Path) -> None:
    assert refused("validate", "x\x1b[31mred\n.yaml").startswith("error: no lab 'x\\x1b[31mred\\n.yaml'")


def test_only_a_lab_yaml_touches_instances(checkout: Path) -> None:
    """A draft of any other name may claim any id; it is validated and planned, never deployed."""
    draft = checkout / "labs" / "alpha" / "draft.yaml"
    draft.write_text(LAB.replace("id: alpha", "id: chapter-1"))
    assert run_lab("validate", str(draft)).exit_code == 0
    for command in (["up", "--accel", "tcg"], ["down"], ["reset"], ["status"], ["check"], ["solve"]):
        message = refused(command[0], str(draft), *command[1:])
        assert message == ("error: labs/alpha/draft.yaml: only a lab folder's lab.yaml is deployed, checked or graded; "
                           "put it at labs/chapter-1/lab.yaml (validate, plan and diagram take any file)"), command


def test_a_lab_is_validated_from_inside_its_own_folder(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder rule reads the folder's name from the absolute path: lab.yaml's parent is '' here."""
    monkeypatch.chdir(checkout / "labs" / "alpha")
    result = run_lab("validate", "lab.yaml")
    assert result.exit_code == 0, result.stdout + result.stderr


def test_text_with_no_break_and_ideographic_spaces_is_text(checkout: Path) -> None:
    lab = checkout / "labs" / "alpha" / "lab.yaml"
    lab.write_text(LAB.replace("title: {ko: 가, en: A}", 'title: {ko: "가\u3000나", en: "A\u00a0B"}'))
    assert run_lab("validate", "alpha").exit_code == 0


def test_a_key_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    from hyperlab.grading import evidence

    # /proc takes no new folders, not even root's: as an unprivileged user's /var/lib/hyperlab
    with pytest.raises(evidence.EvidenceError, match="cannot make the grading key /proc/hyperlab-test/grading.key"):
        evidence.load_key(Path("/proc/hyperlab-test/grading.key"), create=True)
