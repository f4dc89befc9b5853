"""What a class host answers is a host's word: read like any other input. Tested with the answers
played back through the real classes, no host needed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hyperlab.core.inventory import load_inventory
from hyperlab.core.load import load_lab
from hyperlab.core.placement import Demand, HostOffer, place
from hyperlab.core.roster import Entry
from hyperlab.grading.document import RunDocument
from hyperlab.grading.outcome import Status, fold
from hyperlab.grading.remote import document_of
from hyperlab.ops.doctor import bytes_below, host_offer
from hyperlab.core.plan import HostFacts
from hyperlab.images.store import ImageStore
from hyperlab.remote.bundle import BUNDLES, make_bundle
from hyperlab.remote.classwork import Outcome, over_hosts
from hyperlab.remote.protocol import Hello
from hyperlab.remote.reach import ClassHost, HostDown
from hyperlab.remote.ssh import Reply

ROOT = Path(__file__).resolve().parents[2]
SOLO = load_lab(ROOT / "tests/data/labs/solo/lab.yaml", ROOT)
BUNDLE = make_bundle(SOLO)
KIM = Entry("Kim", "kim", line=2, host="hv1")


def answer(**changes: object) -> dict:
    """A host's honest document for Kim, with `changes` made to it."""
    steps = fold(SOLO.lab, [])
    document = RunDocument.of(SOLO, [replace(s, status=Status.FAIL) for s in steps], instance="kim", uri="", student=None)
    data = {**document.to_json(), "lab_file": f"{BUNDLES}/{BUNDLE.hash}/labs/solo/lab.yaml", "score": 0.0}
    data["steps"] = [{**s, "score": 0.0} for s in data["steps"]]
    data.update(changes)
    return data


def believed(data: dict) -> RunDocument:
    return document_of(SOLO, KIM, Outcome("Kim", "kim", "hv1", True, "checked", document=data), BUNDLE.hash)


def test_an_honest_answer_is_kept_with_this_machines_student_and_host() -> None:
    document = believed(answer(student="someone else"))
    assert (document.error, document.student, document.class_host, document.max) == (None, "Kim", "hv1", 9)


@pytest.mark.parametrize("changes, why", [
    ({"instance": "lee"}, "answered for solo/lee, not solo/kim"),
    ({"lab": "chapter-1"}, "answered for chapter-1/kim"),
    ({"lab_file": "/etc/labs/solo/lab.yaml"}, "names another lab file than the bundle sent"),
    ({"lab_file": f"{BUNDLES}/{'0' * 64}/labs/solo/lab.yaml"}, "names another lab file than the bundle sent"),
    ({"score": 9.0}, "score is not the sum of its steps"),
    ({"max": 100}, "score is not the sum of its steps"),
    ({"score": float("inf")}, "score is not the sum of its steps"),
    ({"score": 10**400}, "no result document"),  # a number too large for a float
    ({"steps": []}, "steps are not the lab's steps"),
])
def test_an_answer_that_does_not_fit_is_an_error_not_a_grade(changes: dict, why: str) -> None:
    document = believed(json.loads(json.dumps(answer(**changes))))
    assert document.error is not None and why in document.error, document.error
    assert {s.status for s in document.steps} == {Status.ERROR} and document.class_host == "hv1"


def test_a_step_scored_above_its_points_is_not_believed() -> None:
    data = answer()
    data["steps"][1] = {**data["steps"][1], "score": 60.0, "status": "PASS"}
    data["score"] = 60.0
    assert "steps are not the lab's steps with their points" in (believed(data).error or "")


# --------------------------------------------------------------------------- words that reach a terminal


def test_what_a_host_says_reaches_the_terminal_as_one_plain_line() -> None:
    outcome = Outcome("Kim", "kim", "hv1", False, "fail\x1b[2J", "error: \x1b]0;pwned\x07\nsecond line")
    assert "\x1b" not in outcome.detail + outcome.state and "\n" not in outcome.detail
    assert "\x1b" not in str(HostDown("unreachable: \x1b[31mred\x1b[0m\r\n"))
    reply = Reply(1, b"", "Traceback\n  ...\nValueError: \x1b[2Jcleared\n", 0.1)
    assert reply.why() == "ValueError: \\x1b[2Jcleared"


# --------------------------------------------------------------------------- a host's odd answers


def inventory(tmp_path: Path, text: str = "") -> object:
    path = tmp_path / "hosts.yaml"
    path.write_text(text or "hosts:\n  hv1: {ssh: root@192.0.2.1}\n  hv2: {ssh: root@192.0.2.2}\n")
    return load_inventory(path)


@pytest.mark.parametrize("stdout", [
    b'{"host": {"memory": Infinity, "cpus": 2, "disk": 1}}',
    b'{"host": {"memory": "lots", "cpus": 2, "disk": 1}}',
    b'{"host": {"memory": -1, "cpus": 2, "disk": 1}}',
    b'{"findings": []}',
    b"[" * 50_000,
    b"ok",
])
def test_facts_a_host_cannot_back_are_a_host_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdout: bytes) -> None:
    monkeypatch.setattr(ClassHost, "lab", lambda self, *args, **kw: Reply(0, stdout, "", 0.1))
    with pytest.raises(HostDown):
        ClassHost("hv1", inventory(tmp_path)).facts()  # type: ignore[arg-type]


def test_one_hosts_odd_answer_fails_its_students_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = Hello.this_machine()

    def ready(self: ClassHost, *_args: object) -> Hello:
        if self.name == "hv2":  # its hello held a number no integer can hold
            raise OverflowError("cannot convert float infinity to integer")
        return ours

    monkeypatch.setattr(ClassHost, "ready", ready)

    def work(host: ClassHost, entry: Entry) -> Outcome:
        if entry.student == "Lee":
            raise ValueError("the host said something odd")
        return Outcome(entry.student, entry.instance, host.name, True, "up")

    entries = [KIM, Entry("Lee", "lee", line=3, host="hv1"), Entry("Park", "park", line=4, host="hv2")]
    result = over_hosts(entries, inventory(tmp_path), BUNDLE, ours, work, verb="up")  # type: ignore[arg-type]
    assert [(o.student, o.ok, o.state) for o in result.students] == [
        ("Kim", True, "up"), ("Lee", False, "failed"), ("Park", False, "host down")]
    assert result.students[1].detail == "ValueError: the host said something odd"
    assert "OverflowError" in result.students[2].detail and not result.ok


# --------------------------------------------------------------------------- what a host offers


def test_a_host_that_cannot_say_what_it_offers_keeps_its_students_and_takes_no_new_one() -> None:
    demand = Demand(1 << 30, 1, 1 << 30, 1 << 30)
    hosts = [HostOffer("hv1", 0, 1, 0, 0, unknown="unreachable: ssh: No route to host"), HostOffer("hv2", 8 << 30, 4, 64 << 30, 1 << 30)]
    placed = place(hosts, demand, [("kim", "hv1"), ("lee", None)])
    assert placed[0].host is None and "cannot say what it offers now (unreachable" in (placed[0].reason or "")
    assert placed[1].host == "hv2"


def test_the_disk_a_host_offers_counts_what_hyperlab_already_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hyperlab.ops.doctor.free_bytes", lambda _path: 10 << 30)  # what is free, held still
    store, instances = tmp_path / "store", tmp_path / "instances"
    (instances / "solo.kim").mkdir(parents=True)
    store.mkdir()
    (store / "debian-12.qcow2").write_bytes(b"x" * (1 << 20))
    (instances / "solo.kim" / "S1.qcow2").write_bytes(b"y" * (2 << 20))
    held = bytes_below(store) + bytes_below(instances)
    assert held >= 3 << 20
    offer = host_offer(ImageStore(store), HostFacts(images_dir=store, instances_dir=instances))
    assert offer["disk"] == (10 << 30) + held  # the images and a student's overlay are the class's, not used up
