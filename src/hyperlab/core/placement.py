"""Which host runs which student's instance, and how many students a class of hosts holds (pure).

Each student's whole instance goes to one host: its networks are the host's own, so an instance
is never split. A host takes a student only while the instance's memory (guests and QEMU) fits
in what the host keeps free after its `reserve`, and its disk (overlays with their checkpoints)
fits beside the lab's images. Among the hosts that fit, the one that keeps the largest share of its
memory free after placing (80 %) and the fewest virtual CPUs per CPU (20 %) wins, as Ludus scores its nodes: the class
spreads, so students' guests share CPUs with as few others as possible. Ties go to the host
listed first.

Stable: students who already have a host (the roster's `host` column, written by an earlier plan)
keep it and are counted first; only the others are placed, in roster order. Adding students never
moves a placed one. The same inputs give the same placement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hyperlab.core.needs import DISK_BASE, Needs, build_space, instance_disk, memory_needed
from hyperlab.core.units import human_size

MEMORY_WEIGHT, CPU_WEIGHT = 0.8, 0.2


@dataclass(frozen=True)
class HostOffer:
    """What a host gives the class: its memory (of which `reserve` stays with the host), CPU
    threads, and free disk for the image store and the instances."""

    name: str
    memory: int
    cpus: int
    disk: int
    reserve: int
    labels: tuple[str, ...] = ()
    unknown: str | None = None  # why the host could not say what it offers: it takes nobody


@dataclass(frozen=True)
class Demand:
    """What one student's instance takes on a host, and what the lab takes once per host."""

    memory: int  # the guests' memory and QEMU's own, under emulation (the larger)
    vcpus: int
    disk: int  # the instance's overlays and their checkpoints
    base_disk: int  # once per host: the lab's golden images and the instances' headroom

    @staticmethod
    def of(needs: Needs) -> Demand:
        return Demand(memory=memory_needed(needs, "tcg"), vcpus=needs.vcpus, disk=instance_disk(needs),
                      base_disk=DISK_BASE + sum(build_space(image) for image in needs.images))


@dataclass(frozen=True)
class Placement:
    student: str
    host: str | None
    reason: str | None = None  # why the student has no host
    kept: bool = False  # the host came from an earlier plan

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"student": self.student, "host": self.host}
        if self.host is None:
            data["reason"] = self.reason
        else:
            data["kept"] = self.kept
        return data


@dataclass
class _Load:
    offer: HostOffer
    memory: int = 0
    vcpus: int = 0
    disk: int = 0
    students: int = 0

    def memory_left(self) -> int:
        return self.offer.memory - self.offer.reserve - self.memory

    def disk_left(self, demand: Demand) -> int:
        return self.offer.disk - demand.base_disk - self.disk

    def fits(self, demand: Demand) -> bool:
        return (self.offer.unknown is None and self.memory_left() >= demand.memory
                and self.disk_left(demand) >= demand.disk)

    def score(self, demand: Demand) -> float:
        usable = max(1, self.offer.memory - self.offer.reserve)
        memory = (self.memory_left() - demand.memory) / usable
        cpus = 1 - (self.vcpus + demand.vcpus) / max(1, self.offer.cpus)
        return MEMORY_WEIGHT * memory + CPU_WEIGHT * cpus

    def take(self, demand: Demand) -> None:
        self.memory += demand.memory
        self.vcpus += demand.vcpus
        self.disk += demand.disk
        self.students += 1


def place(hosts: Sequence[HostOffer], demand: Demand, students: Sequence[tuple[str, str | None]]) -> list[Placement]:
    """A placement for each (student, host an earlier plan gave them or None), in the same order."""
    loads = {h.name: _Load(h) for h in hosts}
    result: dict[int, Placement] = {}
    for i, (student, previous) in enumerate(students):
        if previous is None:
            continue
        load = loads.get(previous)
        if load is None:
            result[i] = Placement(student, None, f"placed on {previous} before, which the hosts file no longer lists; "
                                                 f"list {previous} again, or empty the student's host cell to place them anew")
        elif load.offer.unknown is not None:
            result[i] = Placement(student, None, f"placed on {previous} before, which cannot say what it offers now "
                                                 f"({load.offer.unknown}); it keeps its host in the roster")
        elif not load.fits(demand):
            result[i] = Placement(student, None, f"placed on {previous} before, which has no room for them now "
                                                 f"({_shortfall(load, demand)}); give {previous} more, or empty the "
                                                 "student's host cell to place them anew")
        else:
            load.take(demand)
            result[i] = Placement(student, previous, kept=True)
    order = {h.name: n for n, h in enumerate(hosts)}
    for i, (student, previous) in enumerate(students):
        if previous is not None:
            continue
        fitting = [load for load in loads.values() if load.fits(demand)]
        if not fitting:
            result[i] = Placement(student, None, _refusal(list(loads.values()), demand))
            continue
        best = max(fitting, key=lambda load: (load.score(demand), -order[load.offer.name]))
        best.take(demand)
        result[i] = Placement(student, best.offer.name)
    return [result[i] for i in range(len(students))]


def _shortfall(load: _Load, demand: Demand) -> str:
    memory, disk = load.memory_left(), load.disk_left(demand)
    if memory < demand.memory:
        return f"{human_size(max(0, memory))} of memory left, {human_size(demand.memory - memory)} short"
    return f"{human_size(max(0, disk))} of disk left, {human_size(demand.disk - disk)} short"


def _refusal(loads: list[_Load], demand: Demand) -> str:
    need = f"a student needs {human_size(demand.memory)} of memory and {human_size(demand.disk)} of disk"
    if not loads:
        return f"no hosts to place on; {need}"
    by_memory = max(loads, key=lambda load: load.memory_left())
    if by_memory.memory_left() < demand.memory:
        return (f"does not fit: {need}; the most memory any host has left is {human_size(max(0, by_memory.memory_left()))} "
                f"({by_memory.offer.name}), {human_size(demand.memory - by_memory.memory_left())} short; add a host "
                "(lab capacity says how many)")
    roomy = [load for load in loads if load.memory_left() >= demand.memory]
    by_disk = max(roomy, key=lambda load: load.disk_left(demand))
    return (f"does not fit: {need}; the hosts with the memory have at most {human_size(max(0, by_disk.disk_left(demand)))} "
            f"of disk left ({by_disk.offer.name}), {human_size(demand.disk - by_disk.disk_left(demand))} short; free "
            "disk or add a host")


# ------------------------------------------------------------------------------------ capacity


@dataclass(frozen=True)
class HostCapacity:
    host: str
    students: int
    limit: Literal["memory", "disk"]  # what runs out first

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "students": self.students, "limit": self.limit}


@dataclass(frozen=True)
class Capacity:
    hosts: list[HostCapacity]
    students: int | None = None  # the class size asked about
    like: str | None = None  # the host whose size more hosts would have
    more_hosts: int | None = None  # hosts like `like` still needed for `students` (None: they would hold none)

    @property
    def total(self) -> int:
        return sum(h.students for h in self.hosts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hosts": [h.to_json() for h in self.hosts], "total": self.total}
        if self.students is not None:
            data.update(students=self.students, like=self.like, more_hosts=self.more_hosts)
        return data


def host_capacity(offer: HostOffer, demand: Demand) -> HostCapacity:
    by_memory = max(0, offer.memory - offer.reserve) // max(1, demand.memory)
    by_disk = max(0, offer.disk - demand.base_disk) // max(1, demand.disk)
    return HostCapacity(offer.name, min(by_memory, by_disk), "memory" if by_memory <= by_disk else "disk")


def capacity(hosts: Sequence[HostOffer], demand: Demand, students: int | None = None,
             like: str | None = None) -> Capacity:
    """How many students each host holds and all together; for `students`, how many more hosts the
    size of `like` (default: the host that holds the most) the class still needs."""
    rows = [host_capacity(h, demand) for h in hosts]
    if students is None:
        return Capacity(rows)
    model = next((r for r in rows if r.host == like), None) if like else max(rows, key=lambda r: r.students, default=None)
    missing = max(0, students - sum(r.students for r in rows))
    if model is None or (missing and model.students == 0):
        return Capacity(rows, students, model.host if model else like, None)
    more = -(-missing // model.students) if missing else 0
    return Capacity(rows, students, model.host, more)
