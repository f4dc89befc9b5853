"""One piece of work for every student of a class, each on the student's own host.

Hosts work in parallel, each on at most its `jobs` students at once. Every host is made ready
first (it answers, runs this hyperlab, holds the lab); a host that is not, or that fails midway,
is reported with its students, and the other hosts finish theirs. Progress is one line per host
each time one of its students is done. Nothing here knows what the work is: `lab class up`,
`status` and `down` (ops/) and the class's checks (grading/) hand it in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hyperlab.core.errors import printable
from hyperlab.core.fanout import fan_out
from hyperlab.core.inventory import LoadedInventory
from hyperlab.core.roster import Entry
from hyperlab.remote.bundle import Bundle
from hyperlab.remote.protocol import Hello
from hyperlab.remote.reach import ClassHost, HostDown

Progress = Callable[[str, str], None]  # (host, what happened)
MAX_HOSTS_AT_ONCE = 32  # each host's work holds a few pipes per student: a class of 100 hosts stays under the fd limit


@dataclass(frozen=True)
class Outcome:
    """One student's result of one piece of class work."""

    student: str
    instance: str
    host: str | None
    ok: bool
    state: str  # a word for the table: up, ready, down, failed, host down, not placed ...
    detail: str = ""
    seconds: float = 0.0
    document: dict[str, Any] | None = field(default=None, compare=False)  # what the host answered, when JSON

    def __post_init__(self) -> None:
        # state and detail quote what a host said: they reach a terminal and a table as one plain line
        object.__setattr__(self, "state", printable(self.state)[:40])
        object.__setattr__(self, "detail", printable(" ".join(self.detail.split()))[:500])

    def to_json(self) -> dict[str, Any]:
        return {"student": self.student, "instance": self.instance, "host": self.host, "ok": self.ok,
                "state": self.state, "detail": self.detail, "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class HostOutcome:
    host: str
    ok: bool
    detail: str
    students: int

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "detail": self.detail, "students": self.students}


@dataclass(frozen=True)
class ClassResult:
    students: list[Outcome]
    hosts: list[HostOutcome]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.students) and all(h.ok for h in self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "hosts": [h.to_json() for h in self.hosts], "students": [s.to_json() for s in self.students]}


Work = Callable[[ClassHost, Entry], Outcome]
Prepare = Callable[[ClassHost, Hello, Callable[[str], None]], None]


def unplaced(entry: Entry, inventory: LoadedInventory) -> Outcome | None:
    """Why a student cannot be worked on (no host, or a host the file does not list), or None."""
    if entry.host is None:
        return Outcome(entry.student, entry.instance, None, False, "not placed",
                       "no host in the roster; lab class plan places the class")
    if entry.host not in inventory.inventory.hosts:
        return Outcome(entry.student, entry.instance, entry.host, False, "unknown host",
                       f"{entry.host} is not in the hosts file")
    return None


def over_hosts(entries: Sequence[Entry], inventory: LoadedInventory, bundle: Bundle, ours: Hello, work: Work, *,
               verb: str, progress: Progress = lambda _host, _text: None, prepare: Prepare | None = None) -> ClassResult:
    """`work` for every entry on its host; results in the entries' order."""
    results: dict[int, Outcome] = {}
    by_host: dict[str, list[tuple[int, Entry]]] = {}
    for i, entry in enumerate(entries):
        refusal = unplaced(entry, inventory)
        if refusal is not None:
            results[i] = refusal
        else:
            by_host.setdefault(entry.host or "", []).append((i, entry))

    def one_host(name: str) -> HostOutcome:
        host = ClassHost(name, inventory)
        todo = by_host[name]
        say = lambda text: progress(name, text)  # noqa: E731
        try:
            hello = host.ready(ours, bundle, say)
            if prepare is not None:
                prepare(host, hello, say)
        except Exception as exc:  # noqa: BLE001 - HostDown, or a host's odd answer: this host only
            why = str(exc) if isinstance(exc, HostDown) else _said(exc)
            for i, entry in todo:
                results[i] = Outcome(entry.student, entry.instance, name, False, "host down", why)
            say(f"not ready: {why}")
            return HostOutcome(name, False, why, len(todo))
        lock, done = threading.Lock(), []

        def one(item: tuple[int, Entry]) -> None:
            i, entry = item
            started = time.monotonic()
            try:
                outcome = work(host, entry)
            except HostDown as exc:
                outcome = Outcome(entry.student, entry.instance, name, False, "host down", str(exc))
            except Exception as exc:  # noqa: BLE001 - a host's odd answer fails its student, never the class
                outcome = Outcome(entry.student, entry.instance, name, False, "failed", _said(exc))
            outcome = replace(outcome, seconds=time.monotonic() - started)
            results[i] = outcome
            with lock:
                done.append(outcome)
                failed = [o.student for o in done if not o.ok]
                say(f"{len(done)}/{len(todo)} {verb}" + (f", failed: {', '.join(failed)}" if failed else "")
                    + f" ({entry.student}: {outcome.state})")

        fan_out(one, todo, workers=min(host.spec.jobs, len(todo)))
        failed = sum(not results[i].ok for i, _ in todo)
        return HostOutcome(name, True, f"{len(todo) - failed} of {len(todo)} {verb}", len(todo))

    hosts = fan_out(one_host, list(by_host), workers=MAX_HOSTS_AT_ONCE) if by_host else []
    return ClassResult([results[i] for i in range(len(entries))], hosts)


def _said(exc: Exception) -> str:
    """An unexpected failure as one printable line that names its kind."""
    return printable(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
