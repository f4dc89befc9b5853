"""The class roster: which instance (on which libvirt host, over which channel) is whose.

    student,instance,uri,channel
    kim,kim,,
    lee,lee,qemu+ssh://root@lab-02/system,ssh

`student` and `instance` are required; an empty `uri` means this host (qemu:///system); an empty
`channel` means each node's own. Lines starting with # are comments.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hyperlab.core.errors import LabError, Problem, display_path
from hyperlab.guest.base import CHANNELS
from hyperlab.host.conn import DEFAULT_URI
from hyperlab.core.model import check_id

COLUMNS = ("student", "instance", "uri", "channel")


@dataclass(frozen=True)
class Entry:
    student: str
    instance: str
    uri: str = DEFAULT_URI
    channel: str | None = None
    line: int = 0

    @property
    def slug(self) -> str:
        """A file name for this student's outputs."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.student) or "student"


def read_roster(path: Path) -> list[Entry]:
    where = display_path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets save a BOM
    except FileNotFoundError:
        raise LabError([Problem(where, 1, 1, "roster not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError([Problem(where, 1, 1, f"cannot read the roster: {exc}")]) from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise LabError([Problem(where, 1, 1, "empty roster; the first line names the columns: student,instance,uri,channel")])
    header_line, header_text = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_text]))]
    problems = []
    for column in ("student", "instance"):
        if column not in header:
            problems.append(Problem(where, header_line, 1, f"the header has no {column!r} column; columns: {', '.join(COLUMNS)}"))
    for column in header:
        if column not in COLUMNS:
            problems.append(Problem(where, header_line, 1, f"unknown column {column!r}; columns: {', '.join(COLUMNS)}"))
    if problems:
        raise LabError(problems)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for number, raw in lines[1:]:
        cells = [c.strip() for c in next(csv.reader([raw]))]
        if len(cells) > len(header):
            problems.append(Problem(where, number, 1, f"{len(cells)} cells, but the header names {len(header)} columns"))
            continue
        row = dict(zip(header, cells + [""] * (len(header) - len(cells))))
        if not row["student"]:
            problems.append(Problem(where, number, 1, "no student name"))
            continue
        try:
            instance = check_id(row["instance"] or row["student"].lower())
        except ValueError as exc:
            problems.append(Problem(where, number, 1, f"instance of {row['student']}: {exc}"))
            continue
        channel = row.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            problems.append(Problem(where, number, 1, f"channel {channel!r}: use one of {', '.join(CHANNELS)} or leave it empty"))
            continue
        key = f"{row.get('uri') or DEFAULT_URI} {instance}"
        if key in seen:
            problems.append(Problem(where, number, 1, f"instance {instance} is already graded for line {seen[key]}"))
            continue
        seen[key] = number
        entries.append(Entry(row["student"], instance, row.get("uri") or DEFAULT_URI, channel, number))
    if problems:
        raise LabError(problems)
    if not entries:
        raise LabError([Problem(where, header_line, 1, "the roster names no students")])
    return entries
