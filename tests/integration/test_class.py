"""A class over three hosts on this machine, reached only over SSH (tests/nshosts.py): each host a
network namespace with its own sshd and its own libvirtd with private state.

Six students of the solo lab (tests/data/labs/solo, one 320 MiB Debian guest each) on hosts whose
hosts.yaml sizes force spreading (2 + 2 + 1) and refuse the sixth. Then, in order: `lab capacity`
and `lab class plan` (no host contacted: the file gives every fact); `lab class up` with one host
crashed midway (the others finish, its students are reported), its reboot and a rerun that
converges; status; check (every step FAIL or BLOCKED); one student solves the exercise on their
host; `lab grade` (that student 9/9, the others 0, the refused one ERROR, every host's rows
present, every evidence file verified against its host's domains) and the same through
`pytest --roster --hosts-file`; `lab class down` leaves each host's libvirt as it was.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlab.core.load import load_lab
from hyperlab.images.registry import ensure_images
from hyperlab.images.store import ImageStore
from hyperlab.remote.bundle import make_bundle
from tests.integration.conftest import ROOT, inventory, run_lab
from tests.nshosts import Fleet

pytestmark = pytest.mark.vm
LAB = "tests/data/labs/solo/lab.yaml"
STUDENTS = ("Kim", "Lee", "Park", "Choi", "Jung", "Kang")
# solo needs 448 MiB per student (320 MiB guest + QEMU): 2 + 2 + 1 fit, the sixth does not
FACTS = {"hv1": "memory: 2GiB, cpus: 2, disk: 10GiB, reserve: 1GiB",
         "hv2": "memory: 2GiB, cpus: 2, disk: 10GiB, reserve: 1GiB",
         "hv3": "memory: 1536MiB, cpus: 2, disk: 10GiB, reserve: 1GiB"}
PLACED = {"Kim": "hv1", "Lee": "hv2", "Park": "hv3", "Choi": "hv1", "Jung": "hv2"}


class Class:
    def __init__(self, fleet: Fleet, env: dict[str, str]) -> None:
        self.fleet = fleet
        self.env = env
        self.hosts = fleet.hosts_yaml(FACTS)
        self.roster = fleet.folder / "roster.csv"
        self.roster.write_text("# the class of this test\nstudent,instance\n"
                               + "".join(f"{s},{s.lower()}\n" for s in STUDENTS))
        self.before = {name: host.inventory() for name, host in fleet.hosts.items()}

    def lab(self, *args: str, check: bool = False, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return run_lab(self.env, *args, check=check, timeout=timeout)

    def cls(self, command: str, *extra: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return self.lab("class", command, LAB, "--roster", str(self.roster), "--hosts", str(self.hosts), *extra,
                        timeout=timeout)


@pytest.fixture(scope="module")
def klass(lab_env: dict[str, str]) -> Iterator[Class]:
    ensure_images(ImageStore(), {"debian-12"})  # the instructor's store: class up copies it to each host
    # not under pytest's tmp_path: QEMU (libvirt-qemu) must walk down to each host's image store
    fleet = Fleet(Path(f"/var/tmp/hyperlab-test-class-{time.time_ns()}"), ["hv1", "hv2", "hv3"])
    try:
        fleet.up()
        yield Class(fleet, lab_env)
    finally:
        fleet.down()


def by_student(document: dict) -> dict[str, dict]:
    return {row["student"]: row for row in document["students"]}


def test_a_class_across_three_hosts(klass: Class, conn: object) -> None:
    root_before = inventory(conn)
    fleet = klass.fleet
    for host in fleet.hosts.values():  # nothing a host sends can leave this machine
        assert host.run("ip", "route", "show", "default").stdout.strip() == ""

    # --- capacity and plan: the file gives every fact, so no host is contacted
    capacity = klass.lab("capacity", LAB, "--hosts", str(klass.hosts), "--students", "6", "--json", check=True)
    assert json.loads(capacity.stdout) == {
        "hosts": [{"host": "hv1", "students": 2, "limit": "memory"}, {"host": "hv2", "students": 2, "limit": "memory"},
                  {"host": "hv3", "students": 1, "limit": "memory"}],
        "total": 5, "students": 6, "like": "hv1", "more_hosts": 1}
    plan = klass.cls("plan", "--json")
    assert plan.returncode == 1, plan.stdout + plan.stderr  # one student refused
    placements = {p["student"]: p for p in json.loads(plan.stdout)["placements"]}
    assert {s: p["host"] for s, p in placements.items() if p["host"]} == PLACED
    assert placements["Kang"]["host"] is None and "320 MiB short" in placements["Kang"]["reason"]
    assert all(host.connections() == 0 for host in fleet.hosts.values())
    assert klass.roster.read_text().startswith("# the class of this test\nstudent,instance,host\nKim,kim,hv1\n")
    again = klass.cls("plan", "--json")  # stable: a second plan keeps everyone where they are
    assert {p["student"]: p["host"] for p in json.loads(again.stdout)["placements"]} == {**PLACED, "Kang": None}

    # --- class up with hv2 crashing midway: hv1 and hv3 finish, hv2's students are reported
    up = subprocess.Popen([sys.executable, "-m", "hyperlab", "class", "up", LAB, "--roster", str(klass.roster), "--hosts",
                           str(klass.hosts), "--accel", "tcg", "--json"], cwd=ROOT, env=klass.env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hv2 = fleet.hosts["hv2"]
    deadline = time.monotonic() + 900
    while not [d for d in hv2.inventory()["domains"] if d.startswith("hl.solo.")]:
        assert up.poll() is None and time.monotonic() < deadline, "hv2 never began a lab up"
        time.sleep(1)
    hv2.kill()
    output, errors = up.communicate(timeout=3600)
    assert up.returncode == 1, output + errors
    first = by_student(json.loads(output))
    assert {s for s, row in first.items() if row["ok"]} == {"Kim", "Choi", "Park"}, output
    assert {first[s]["host"] for s in ("Lee", "Jung")} == {"hv2"}
    assert all(first[s]["state"] in ("host down", "failed") for s in ("Lee", "Jung")), output
    assert first["Kang"]["state"] == "not placed"
    assert "hv1: 2/2 up" in errors and "hv3: 1/1 up" in errors

    hv2.start()  # its reboot: a fresh /run, libvirt's persistent state kept
    rerun = klass.cls("up", "--accel", "tcg", "--json")
    again_up = by_student(json.loads(rerun.stdout))
    assert {s for s, row in again_up.items() if row["ok"]} == set(PLACED), rerun.stdout + rerun.stderr
    assert rerun.returncode == 1  # Kang still has no host

    # --- status and check: every placed student's lab is up and nothing is solved yet
    status = by_student(json.loads(klass.cls("status", "--json").stdout))
    assert {s for s, row in status.items() if row["state"] == "ready"} == set(PLACED), status
    checked = by_student(json.loads(klass.cls("check", "--json").stdout))
    for student in PLACED:
        assert set(checked[student]["steps"].values()) <= {"FAIL", "BLOCKED"}, checked[student]
        assert checked[student]["host"] == PLACED[student]
    assert checked["Kang"]["error"] and "not placed" in checked["Kang"]["error"]

    # --- Park (on hv3) does the exercise on their host
    bundle = make_bundle(load_lab(ROOT / LAB, ROOT)).folder()
    hv3 = fleet.hosts["hv3"]
    solved = subprocess.run(["ssh", "-F", str(fleet.ssh_config), f"root@{hv3.address}",
                             f"cd {bundle} && {Path(sys.executable).parent / 'lab'} solve labs/solo/lab.yaml --instance park"],
                            capture_output=True, text=True, timeout=1800)
    assert solved.returncode == 0, solved.stdout + solved.stderr

    # --- the gradebook reaches every host
    grades = fleet.folder / "grades"
    graded = klass.lab("grade", LAB, "--roster", str(klass.roster), "--hosts", str(klass.hosts), "--out", str(grades))
    assert graded.returncode == 0, graded.stdout + graded.stderr
    rows = {r["student"]: r for r in csv.DictReader((grades / "grades.csv").open())}
    assert (rows["Park"]["total"], rows["Park"]["max"], rows["Park"]["host"]) == ("9", "9", "hv3")
    assert all(rows[s]["total"] == "0" for s in PLACED if s != "Park")
    assert {rows[s]["host"] for s in PLACED} == {"hv1", "hv2", "hv3"}
    assert rows["Kang"]["total"] == "ERROR" and "not placed" in rows["Kang"]["notes"]
    for student in PLACED:
        verified = klass.lab("grade", "--verify", str(grades / "evidence" / f"{student}.json"), "--hosts", str(klass.hosts))
        assert verified.returncode == 0 and "1 UUIDs match" in verified.stdout, verified.stdout + verified.stderr
    unverified = klass.lab("grade", "--verify", str(grades / "evidence" / "Kang.json"))
    assert unverified.returncode == 0 and "domains not compared" in unverified.stdout

    by_pytest = fleet.folder / "grades-pytest"
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/data/checkers/solo", "--roster", str(klass.roster),
                           "--hosts-file", str(klass.hosts), "--out", str(by_pytest), "-p", "no:cacheprovider"],
                          cwd=ROOT, env=klass.env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again_rows = {r["student"]: r for r in csv.DictReader((by_pytest / "grades.csv").open())}
    assert {s: r["total"] for s, r in again_rows.items()} == {s: r["total"] for s, r in rows.items()}

    # --- down: each host's libvirt as it was, and this machine's never touched
    down = klass.cls("down", "--json")
    assert {s for s, row in by_student(json.loads(down.stdout)).items() if row["ok"]} == set(PLACED), down.stdout
    assert {name: host.inventory() for name, host in fleet.hosts.items()} == klass.before
    assert inventory(conn) == root_before
    # an appeal after class: the evidence still verifies, with nothing left on hv3 to compare it with
    later = klass.lab("grade", "--verify", str(grades / "evidence" / "Park.json"), "--hosts", str(klass.hosts))
    assert later.returncode == 0 and "domains not compared" in later.stdout, later.stdout + later.stderr


def test_a_host_running_another_hyperlab_is_refused_and_the_others_go_on(klass: Class, tmp_path: Path) -> None:
    """A host whose hyperlab is another version (a stand-in `lab` that answers an old hello) does no
    work; its students are reported, the other hosts' are not held up."""
    stand_in = klass.fleet.folder / "old-lab"
    stand_in.write_text("#!/bin/sh\necho '{\"hyperlab\": \"0.0.9\", \"build\": \"0123456789abcdef\", "
                        "\"hostname\": \"old\", \"bundles\": [], \"images\": {}}'\n")
    stand_in.chmod(0o755)
    hosts = klass.fleet.folder / "hosts-old.yaml"
    text = klass.hosts.read_text().replace(f"lab: {Path(sys.executable).parent / 'lab'}, memory: 1536MiB",
                                           f"lab: {stand_in}, memory: 1536MiB")
    assert text != klass.hosts.read_text()
    hosts.write_text(text)
    roster = tmp_path / "roster.csv"
    roster.write_text("student,instance,host\nKim,kim,hv1\nPark,park,hv3\n")
    result = run_lab(klass.env, "class", "status", LAB, "--roster", str(roster), "--hosts", str(hosts), "--json",
                     check=False)
    rows = by_student(json.loads(result.stdout))
    assert result.returncode == 1
    assert rows["Park"]["state"] == "host down" and "runs hyperlab 0.0.9" in rows["Park"]["detail"]
    assert rows["Kim"]["state"] in ("not deployed", "ready"), rows["Kim"]


def test_facts_the_hosts_file_leaves_out_are_read_from_the_host(klass: Class) -> None:
    """hv1 gives no memory, CPUs or disk: `lab capacity` asks its own `lab doctor --json` (over SSH);
    the others give all three and are not contacted."""
    hosts = klass.fleet.folder / "hosts-facts.yaml"
    hosts.write_text(klass.hosts.read_text().replace(", memory: 2GiB, cpus: 2, disk: 10GiB, reserve: 1GiB}", "}", 1))
    before = {name: host.connections() for name, host in klass.fleet.hosts.items()}
    result = run_lab(klass.env, "capacity", LAB, "--hosts", str(hosts), "--json")
    rows = {row["host"]: row["students"] for row in json.loads(result.stdout)["hosts"]}
    told = json.loads(klass.fleet.hosts["hv1"].run(str(Path(sys.executable).parent / "lab"), "doctor", "--json",
                                                    check=False).stdout)["host"]
    usable = told["memory"] - max(2 << 30, told["memory"] // 10)
    assert rows == {"hv1": min(usable // (448 << 20), (told["disk"] - (4 << 30)) // (832 << 20)), "hv2": 2, "hv3": 1}
    after = {name: host.connections() for name, host in klass.fleet.hosts.items()}
    assert after["hv1"] > before["hv1"] and after["hv2"] == before["hv2"] and after["hv3"] == before["hv3"]
