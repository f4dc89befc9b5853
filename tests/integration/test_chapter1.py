"""chapter-1 end to end, on two instances: `lab prepare`, then `lab up` of both from its layers (the
start state and the nested guest's image are in them; each instance's machine id and SSH host keys
are its own); one step solved on one of them and that
instance reset from its `start` checkpoint, after which it fails exactly as the cold one does;
`lab solve` it, every step PASS; `lab grade` over the two writes 100 and 0; `lab down` both.

HV1 is a Debian guest with libvirt; vm1 is a guest of HV1, booted with software emulation inside
software emulation here, which takes minutes (twice: the reset step boots it again). The whole test
took 40 minutes in CI on a 2-core host under TCG, beside the rest of the suite.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import CHAPTER1_INSTANCES, ROOT, inventory, run_lab, up_at_once

pytestmark = pytest.mark.vm
LAB = "labs/chapter-1/lab.yaml"
SOLVED, FRESH = CHAPTER1_INSTANCES


def ours(names: dict[str, set[str]]) -> set[str]:
    return {n for group in names.values() for n in group
            if any(f"chapter-1.{name}" in n for name in (SOLVED, FRESH, "template"))}


def test_chapter1_checkers_fail_fresh_pass_solved_and_grade_both(conn: object, lab_env: dict[str, str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperlab.core.load import load_lab
    from hyperlab.grading.runner import run_checks
    from hyperlab.grading.selftest import prove_checkers
    from hyperlab.host.facts import host_plan
    from hyperlab.ops.solve import solve

    monkeypatch.setenv("HYPERLAB_GRADING_KEY", lab_env["HYPERLAB_GRADING_KEY"])
    assert not ours(inventory(conn, alongside=True)), \
        "chapter-1 instances are left over from an earlier run; `lab down` them first"
    started = time.monotonic()
    try:
        prepared = run_lab(lab_env, "prepare", LAB)
        assert "HV1: sealed" in prepared.stderr or "up to date" in prepared.stderr, prepared.stderr
        layers = Path(prepared.stdout.strip())
        assert sorted(p.name for p in layers.iterdir()) == ["HV1.disk1.qcow2", "HV1.qcow2", "layer.json"]
        outputs = up_at_once(lab_env, LAB, (SOLVED, FRESH))  # one Debian guest each
        up = time.monotonic()
        for name in (SOLVED, FRESH):
            assert f"starting from the prepared layers {layers}" in outputs[name], outputs[name]
            assert "HV1: start state: start/hypervisor.sh already done" in outputs[name], outputs[name]
            assert "guest image tiny: copying" not in outputs[name], outputs[name]
        # what makes a machine itself is not in the shared layer: each instance made its own
        identity = ["sh", "-c", "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub"]
        seen = {name: run_lab(lab_env, "exec", LAB, "HV1", "--instance", name, "--", *identity).stdout.split()
                for name in (SOLVED, FRESH)}
        assert len(seen[SOLVED][0]) == 32 and seen[SOLVED][0] != seen[FRESH][0], seen
        assert seen[SOLVED][2] != seen[FRESH][2], seen
        listed = json.loads(run_lab(lab_env, "image", "list", "--json").stdout)
        mine = next(s for s in listed["layers"] if s["folder"] == str(layers))
        assert sorted(mine["users"]) == sorted(f"chapter-1.{name}" for name in (SOLVED, FRESH))
        assert {v["name"]: v["backing_chain"][:1] for v in mine["volumes"]} == {
            "HV1.qcow2": [f"{lab_env.get('HYPERLAB_IMAGES', '/var/lib/libvirt/images/hyperlab')}/debian-12.qcow2"],
            "HV1.disk1.qcow2": []}
        # the framework put the tiny image on HV1, once, and readable by libvirt's QEMU
        listing = run_lab(lab_env, "exec", LAB, "HV1", "--instance", SOLVED, "--", "stat", "-c", "%n %a %U",
                          "/var/lib/libvirt/images/tiny.qcow2", "/var/lib/libvirt/images/tiny.vmlinuz",
                          "/var/lib/libvirt/images/tiny.initrd", "/var/lib/libvirt/images/tiny.cmdline").stdout.splitlines()
        assert listing == ["/var/lib/libvirt/images/tiny.qcow2 644 libvirt-qemu",
                           "/var/lib/libvirt/images/tiny.vmlinuz 644 root",
                           "/var/lib/libvirt/images/tiny.initrd 644 root",
                           "/var/lib/libvirt/images/tiny.cmdline 644 root"]
        # `lab exec --stdin` hands its standard input to the guest's command; without it the command gets none
        piped = run_lab(lab_env, "exec", LAB, "HV1", "--instance", SOLVED, "--stdin", "--", "sha256sum", input="hyperlab\n")
        assert piped.stdout.split()[0] == hashlib.sha256(b"hyperlab\n").hexdigest(), piped.stdout
        unpiped = run_lab(lab_env, "exec", LAB, "HV1", "--instance", SOLVED, "--", "wc", "-c", input="hyperlab\n")
        assert unpiped.stdout.strip() == "0", unpiped.stdout
        loaded = load_lab(LAB, ROOT)
        plan = host_plan(loaded, SOLVED)
        # a student's first step, then `lab reset` from the start checkpoint: the proof below starts
        # from the restored instance, and its first check must say what the cold FRESH one says
        run_lab(lab_env, "solve", LAB, "--instance", SOLVED, "--step", "libvirt-running")
        reset = run_lab(lab_env, "reset", LAB, "--instance", SOLVED)
        assert "HV1: restored checkpoint start" in reset.stderr, reset.stderr
        before, after = prove_checkers(loaded, SOLVED, lambda steps: solve(conn, loaded, plan, steps),  # type: ignore[arg-type]
                                       tmp_path, key=lab_env["HYPERLAB_GRADING_KEY"])
        assert after.score == after.max == 100
        cold = run_checks(loaded, FRESH, tmp_path / "cold.json", key=lab_env["HYPERLAB_GRADING_KEY"])
        assert {s.id: s.status for s in before.steps} == {s.id: s.status for s in cold.steps}

        # `pytest checkers/` typed at the root, as an instructor does: every lab collects beside the
        # others, chapter-1 is checked against both its instances, and every other lab is either
        # checked (another worker may have it up) or said in one line and skipped, never a stop
        proc = subprocess.run([sys.executable, "-m", "pytest", "checkers/", "-p", "no:cacheprovider"], cwd=ROOT,
                              env=lab_env, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 1, proc.stdout + proc.stderr  # the fresh instance fails
        scores = dict(re.findall(r"^=+ hyperlab: chapter-1 / (\S+) =+$.*?^score ([\d.]+) / 100$", proc.stdout, re.M | re.S))
        assert scores == {SOLVED: "100", FRESH: "0"}, proc.stdout
        for other in ("chapter-2", "chapter-2-linux"):
            assert f"hyperlab: lab {other}: " in proc.stdout or f"hyperlab: {other} / " in proc.stdout, proc.stdout

        roster = tmp_path / "roster.csv"
        roster.write_text(f"student,instance\nKim Solved,{SOLVED}\nLee Fresh,{FRESH}\n")
        out = tmp_path / "grades"
        run_lab(lab_env, "grade", LAB, "--roster", str(roster), "-j", "2", "--out", str(out))
        rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
        assert (rows["Kim Solved"]["total"], rows["Kim Solved"]["max"]) == ("100", "100")
        assert rows["Lee Fresh"]["total"] == "0"
        assert {s.id: rows["Kim Solved"][s.id] for s in loaded.lab.steps} == {s.id: str(s.points) for s in loaded.lab.steps}
        assert {rows["Lee Fresh"][s.id] for s in loaded.lab.steps} == {"0"}
        print(f"\nchapter-1: lab up x2 {up - started:.0f}s, checks+solve+checks+grade {time.monotonic() - up:.0f}s; "
              f"before: {[(s.id, str(s.status)) for s in before.steps]}")
    finally:
        downs = [run_lab(lab_env, "down", LAB, "--instance", name, check=False) for name in (SOLVED, FRESH)]
        print(f"chapter-1: total {time.monotonic() - started:.0f}s")
    for down in downs:
        assert down.returncode == 0, down.stdout + down.stderr
    left = ours(inventory(conn, alongside=True))
    assert not left, f"left in libvirt after lab down: {sorted(left)}"
