"""A class over several hosts, the pure part: hosts.yaml, placement with admission control, capacity,
and the roster's host column written back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlab.core.errors import LabError
from hyperlab.core.inventory import SshTarget, default_reserve, load_inventory, parse_ssh
from hyperlab.core.load import load_lab
from hyperlab.core.needs import GiB, MiB, lab_needs
from hyperlab.core.placement import Demand, HostOffer, capacity, place
from hyperlab.core.roster import load_roster, with_hosts
from tests.unit.clihelp import run_lab

ROOT = Path(__file__).resolve().parents[2]
DEMAND = Demand(memory=448 * MiB, vcpus=1, disk=832 * MiB, base_disk=4 * GiB)


def host(name: str, memory: int = 2 * GiB, cpus: int = 2, disk: int = 10 * GiB, reserve: int = 1 * GiB) -> HostOffer:
    return HostOffer(name, memory, cpus, disk, reserve)


def students(n: int, placed: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    return [(f"s{i:03d}", (placed or {}).get(f"s{i:03d}")) for i in range(n)]


# ------------------------------------------------------------------------------------ demand


def test_a_students_demand_is_the_labs_guests_and_qemu_and_overlays_with_checkpoints() -> None:
    solo = Demand.of(lab_needs(load_lab(ROOT / "tests/data/labs/solo/lab.yaml", ROOT)))
    assert solo.memory == 320 * MiB + 128 * MiB  # the guest and QEMU under emulation
    assert solo.disk == 512 * MiB + 320 * MiB  # first writes and the start checkpoint's memory
    assert solo.base_disk == 2 * GiB + 2 * GiB  # headroom and building debian-12, once per host
    linux = Demand.of(lab_needs(load_lab("chapter-2-linux", ROOT)))
    assert linux.vcpus == 6 and linux.memory == (768 + 2 * 1024 + 3 * 512) * MiB + 6 * 128 * MiB


# ------------------------------------------------------------------------------------ placement


def test_the_class_spreads_and_the_student_who_fits_nowhere_is_refused_with_the_shortfall() -> None:
    hosts = [host("hv1"), host("hv2"), host("hv3", memory=1536 * MiB)]
    placed = place(hosts, DEMAND, students(6))
    assert [p.host for p in placed] == ["hv1", "hv2", "hv3", "hv1", "hv2", None]
    reason = placed[5].reason or ""
    assert reason.startswith("does not fit: a student needs 448 MiB of memory and 832 MiB of disk")
    assert "128 MiB (hv1), 320 MiB short" in reason and "\n" not in reason


def test_never_over_memory_after_the_reserve_nor_over_disk_beside_the_images() -> None:
    by_disk = place([host("hv1", memory=64 * GiB, disk=4 * GiB + 2 * 832 * MiB)], DEMAND, students(3))
    assert [p.host for p in by_disk] == ["hv1", "hv1", None]
    assert "disk" in (by_disk[2].reason or "")
    assert place([host("hv1", memory=1 * GiB, reserve=1 * GiB - 1)], DEMAND, students(1))[0].host is None


def test_adding_students_never_moves_a_placed_one() -> None:
    hosts = [host("hv1", memory=8 * GiB), host("hv2", memory=4 * GiB, cpus=8), host("hv3", memory=6 * GiB)]
    first = place(hosts, DEMAND, students(10))
    given_back = {p.student: p.host for p in first if p.host}
    later = place(hosts, DEMAND, students(14, given_back))
    assert [p.host for p in later[:10]] == [p.host for p in first]
    assert all(p.kept for p in later[:10] if p.host) and not any(p.kept for p in later[10:])


def test_a_host_that_left_the_file_or_shrank_is_said_and_nobody_moves_silently() -> None:
    placed = place([host("hv1", memory=1536 * MiB)], DEMAND,
                   [("a", "hv1"), ("b", "hv1"), ("c", "hv9"), ("d", None)])
    assert [p.host for p in placed] == ["hv1", None, None, None]
    assert "has no room for them now" in (placed[1].reason or "")
    assert "which the hosts file no longer lists" in (placed[2].reason or "")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 64), st.integers(1, 32), st.integers(1, 200), st.integers(0, 8)),
                min_size=1, max_size=8),
       st.integers(64, 4096), st.integers(1, 8), st.integers(0, 60), st.integers(0, 20))
def test_any_class_any_hosts(specs: list[tuple[int, int, int, int]], memory_mib: int, vcpus: int, n: int, more: int) -> None:
    hosts = [HostOffer(f"h{i}", m * GiB, c, d * GiB, min(r * GiB, m * GiB - 1)) for i, (m, c, d, r) in enumerate(specs)]
    demand = Demand(memory_mib * MiB, vcpus, 512 * MiB, 2 * GiB)
    first = place(hosts, demand, students(n))
    assert first == place(hosts, demand, students(n))  # deterministic
    for offer in hosts:  # never over a host's memory after its reserve, nor its disk
        count = sum(p.host == offer.name for p in first)
        assert count * demand.memory <= offer.memory - offer.reserve
        assert count == 0 or demand.base_disk + count * demand.disk <= offer.disk
    rows = capacity(hosts, demand).hosts
    assert sum(p.host is not None for p in first) == min(n, sum(r.students for r in rows))  # refused only when full
    kept = {p.student: p.host for p in first if p.host}
    later = place(hosts, demand, students(n + more, kept))
    assert [p.host for p in later[:n]] == [p.host for p in first]  # stable
    shrunk = [HostOffer(h.name, h.memory // 2, h.cpus, h.disk, min(h.reserve, h.memory // 2 - 1)) for h in hosts[1:]]
    again = place(shrunk, demand, students(n, kept))  # a host gone, the others smaller: nobody moves, nothing overflows
    assert all(p.host in (None, kept.get(p.student)) for p in again)
    for offer in shrunk:
        assert sum(p.host == offer.name for p in again) * demand.memory <= offer.memory - offer.reserve


# ------------------------------------------------------------------------------------ capacity


def test_capacity_per_host_in_all_and_how_many_more_hosts_a_class_needs() -> None:
    hosts = [host("hv1"), host("hv2"), host("hv3", memory=1536 * MiB)]
    result = capacity(hosts, DEMAND, students=30)
    assert result.to_json() == {"hosts": [{"host": "hv1", "students": 2, "limit": "memory"},
                                          {"host": "hv2", "students": 2, "limit": "memory"},
                                          {"host": "hv3", "students": 1, "limit": "memory"}],
                                "total": 5, "students": 30, "like": "hv1", "more_hosts": 13}
    assert capacity(hosts, DEMAND, students=5).more_hosts == 0
    assert capacity(hosts, DEMAND, students=6, like="hv3").more_hosts == 1
    assert capacity([host("tiny", memory=1536 * MiB, disk=1 * GiB)], DEMAND, students=2).more_hosts is None
    assert capacity([host("hv1", memory=64 * GiB, disk=6 * GiB)], DEMAND).hosts[0].limit == "disk"


def test_a_thousand_students_on_a_hundred_hosts_is_placed_in_one_pass() -> None:
    hosts = [host(f"hv{i:03d}", memory=(32 + i % 5 * 16) * GiB, cpus=8 + i % 3 * 8, disk=1024 * GiB) for i in range(100)]
    demand = Demand.of(lab_needs(load_lab("chapter-2-linux", ROOT)))
    placed = place(hosts, demand, students(1000))
    assert capacity(hosts, demand).total >= 1000
    assert sum(p.host is not None for p in placed) == 1000  # (bench/class_hosts.py times it)


# ------------------------------------------------------------------------------------ hosts.yaml


def test_the_issues_hosts_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text("hosts:\n  hv1: {ssh: root@10.0.0.11, memory: 64GiB, cpus: 16, disk: 1TiB}\n"
                    "  hv2: {ssh: 'admin@[fd00::2]:2222', labels: [ssd], jobs: 4, lab: /opt/hyperlab/bin/lab}\n")
    loaded = load_inventory(path)
    assert loaded.names == ["hv1", "hv2"]
    assert loaded.host("hv1").memory == 64 * GiB and loaded.host("hv1").jobs == 2
    assert loaded.target("hv2") == SshTarget("fd00::2", "admin", 2222)
    assert str(loaded.target("hv2")) == "admin@[fd00::2]:2222"
    assert default_reserve(64 * GiB) == 64 * GiB // 10 and default_reserve(8 * GiB) == 2 * GiB


@pytest.mark.parametrize("value", ["-oProxyCommand=sh", "root@-x", "root@host;id", "root@ho st", "root@h:0",
                                   "root@h:99999", "r$@h", "root@", "@h", "root@h..x", "root@[::1", ""])
def test_an_ssh_target_is_a_full_match_or_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_ssh(value)


def test_hosts_file_mistakes_are_one_line_each_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text("hosts:\n  hv1: {ssh: root@h1, cpus: 0}\n  hv2: {ssh: root@h1}\n")
    with pytest.raises(LabError) as caught:
        load_inventory(path)
    lines = str(caught.value).splitlines()
    assert [line.split(": ", 1)[0].rsplit(":", 2)[1:] for line in lines] == [["2", "29"]]  # schema first, then rules
    assert "hosts.hv1.cpus" in lines[0]


# ------------------------------------------------------------------------------------ roster


def test_the_placement_is_written_back_into_the_roster_keeping_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes("\ufeff# 2026 spring, class A\r\nstudent,instance,channel\r\n\"Kim, Minsu\",kim,agent\r\n"
                     "\r\nLee,lee,\r\n# left early\r\n".encode())
    roster = load_roster(path)
    assert not roster.has_hosts and roster.bom
    path.write_text(with_hosts(roster, {"Kim, Minsu": "hv1"}), encoding="utf-8", newline="")
    assert path.read_bytes().decode() == ("\ufeff# 2026 spring, class A\r\nstudent,instance,channel,host\r\n"
                                          "\"Kim, Minsu\",kim,agent,hv1\r\n\r\nLee,lee,\r\n# left early\r\n")
    again = load_roster(path)
    assert again.has_hosts and [e.host for e in again.entries] == ["hv1", None]
    path.write_text(with_hosts(again, {"Lee": "hv2"}), encoding="utf-8", newline="")
    assert [e.host for e in load_roster(path).entries] == ["hv1", "hv2"]


@pytest.mark.parametrize("row, message", [
    ("Kim,kim,,,HV1", "host of Kim: 'HV1' is not a valid id"),
    ("Kim,kim,qemu+ssh://root@x/system,,hv1", "Kim runs on host hv1, which reaches the instance through its own libvirt"),
])
def test_a_host_cell_is_a_host_name_and_excludes_a_uri(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(f"student,instance,uri,channel,host\n{row}\n")
    with pytest.raises(LabError, match=message):
        load_roster(path)


def test_the_same_instance_name_may_live_on_two_hosts(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("student,instance,host\nKim,lab,hv1\nLee,lab,hv2\nPark,lab,hv1\n")
    with pytest.raises(LabError, match="line 2"):
        load_roster(path)
    path.write_text("student,instance,host\nKim,lab,hv1\nLee,lab,hv2\n")
    assert [e.host for e in load_roster(path).entries] == ["hv1", "hv2"]


# ------------------------------------------------------------------------------------ the CLI refuses first


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("hosts:\n  hv1: {ssh: root@192.0.2.1, memory: 4GiB, cpus: 2, disk: 40GiB, reserve: 1GiB}\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("student,instance\nKim,kim\n")
    stray = tmp_path / "stray.csv"
    stray.write_text("student,instance,host\nKim,kim,hv1\nLee,lee,hv9\n")
    return {"hosts": hosts, "plain": plain, "stray": stray}


SOLO_LAB = str(ROOT / "tests/data/labs/solo/lab.yaml")


@pytest.mark.parametrize("args, line", [
    (["class", "up", SOLO_LAB, "--roster", "{stray}", "--hosts", "{hosts}"],
     ":3:1: Lee: host hv9 is not in "),
    (["class", "up", SOLO_LAB, "--roster", "{plain}", "--hosts", "{hosts}", "--accel", "fast"],
     "error: --accel must be auto, kvm or tcg, not 'fast'"),
    (["class", "up", SOLO_LAB, "--roster", "{plain}", "--hosts", "{hosts}", "--var", "nope=1"],
     "nope"),
    (["grade", SOLO_LAB, "--roster", "{plain}", "--hosts", "{hosts}", "--out", "{out}"],
     "has no host column, so the hosts file places nobody"),
    (["grade", SOLO_LAB, "--roster", "{stray}", "--hosts", "{hosts}", "--out", "{out}"],
     ":3:1: Lee: host hv9 is not in "),
    (["capacity", SOLO_LAB, "--hosts", "{hosts}", "--like", "hv7"], "error: --like hv7: not a host of"),
    (["capacity", SOLO_LAB, "--hosts", "{hosts}", "--students", "0"], "error: --students must be 1 to 100000, not 0"),
])
def test_a_class_command_refuses_a_mistake_in_one_line_before_any_host_is_contacted(
        files: dict[str, Path], tmp_path: Path, args: list[str], line: str) -> None:
    result = run_lab(*[a.format(**files, out=tmp_path / "grades") for a in args])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and line in result.stderr, result.stderr
    assert not (tmp_path / "grades").exists()  # nothing made (and 192.0.2.1, a documentation address, never asked)
