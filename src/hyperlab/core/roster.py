"""The class roster: which instance (on which host, over which channel) is whose.

    student,instance,uri,channel,host
    kim,kim,,,hv1
    lee,lee,qemu+ssh://root@lab-02/system,ssh,

`student` and `instance` are required; an empty `uri` means this host (qemu:///system); an empty
`channel` means each node's own. `host` names a host of the class's hosts file (`lab class plan`
fills it in): the student's instance runs there and every command reaches it through that host's
own hyperlab. In a roster with a `host` column, an empty cell is a student not placed yet. Lines
starting with # are comments; `lab class plan` keeps them when it writes the host column back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hyperlab.core.errors import LabError, Problem, display_path, is_control, printable
from hyperlab.core.model import CHANNELS, DEFAULT_URI, check_id, check_uri
from hyperlab.core.textfile import Kind, read_utf8

COLUMNS = ("student", "instance", "uri", "channel", "host")


@dataclass(frozen=True)
class Entry:
    student: str
    instance: str
    uri: str = DEFAULT_URI
    channel: str | None = None
    line: int = 0
    host: str | None = None  # a host of the class's hosts file; None: this machine, or not placed yet

    @property
    def slug(self) -> str:
        """A file name for this student's outputs."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.student) or "student"


MAX_ROSTER_BYTES = 1 << 20  # 30 students take 2 KiB
MAX_CELL = 200  # a name or a URI, never a paragraph
MAX_LINE = 1000


ROSTER_FILE = Kind(too_big="the roster is {size_kib} KiB; a roster is at most {limit_mib} MiB (is it the right file?)",
                   not_found="roster not found", folder="is a folder, not a roster file",
                   unreadable="cannot read the roster: ", save_as="save the roster as CSV UTF-8")


def _text(path: Path, where: str) -> str:
    """The roster's text; a BOM (spreadsheets save one) stays: load_roster keeps it for writing back."""
    text = read_utf8(path, where, MAX_ROSTER_BYTES, ROSTER_FILE)
    for number, line in enumerate(text.split("\n"), 1):
        bad = next((i for i, c in enumerate(line) if is_control(c) and c not in "\t\r"), None)
        if bad is not None:
            raise LabError([Problem(where, number, bad + 1, f"a control character ({printable(line[bad])}) in the roster; "
                                                            "remove it")])
    return text


def _cells(raw: str, where: str, number: int) -> list[str]:
    """One line's cells. A cell may not span lines: a quote left open would make one record two."""
    if len(raw) > MAX_LINE:
        raise LabError([Problem(where, number, 1, f"the line has {len(raw)} characters; a roster line has at most {MAX_LINE}")])
    try:
        cells = next(csv.reader([raw], strict=True))
    except csv.Error as exc:
        raise LabError([Problem(where, number, 1, f"not a CSV line ({exc}); a quoted cell must end on its line")]) from None
    for i, cell in enumerate(cells):
        if len(cell) > MAX_CELL:
            raise LabError([Problem(where, number, 1, f"cell {i + 1} has {len(cell)} characters; a roster cell has at most "
                                                      f"{MAX_CELL}")])
    return [c.strip() for c in cells]


@dataclass(frozen=True)
class Roster:
    entries: list[Entry]
    columns: tuple[str, ...]  # the header's, lower case, in its order
    text: str  # as read (without a byte-order mark)
    bom: bool  # the file began with one (spreadsheets): written back with it

    @property
    def has_hosts(self) -> bool:
        """A class roster: every student runs on a host of the hosts file (an empty cell: not placed yet)."""
        return "host" in self.columns


def read_roster(path: Path) -> list[Entry]:
    return load_roster(path).entries


def load_roster(path: Path) -> Roster:
    where = display_path(path)
    text = _text(path, where)
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise LabError([Problem(where, 1, 1, "empty roster; the first line names the columns: student,instance,uri,channel")])
    header_line, header_text = lines[0]
    header = [h.lower() for h in _cells(header_text, where, header_line)]
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        sep = next(s for s in ";\t|" if s in header[0])
        raise LabError([Problem(where, header_line, 1, f"the columns are separated by {sep!r}; save the roster as CSV "
                                                       "(comma-separated): student,instance,uri,channel")])
    problems = []
    for column in ("student", "instance"):
        if column not in header:
            problems.append(Problem(where, header_line, 1, f"the header has no {column!r} column; columns: {', '.join(COLUMNS)}"))
    for column in header:
        if column not in COLUMNS:
            problems.append(Problem(where, header_line, 1, f"unknown column {column!r}; columns: {', '.join(COLUMNS)}"))
    for column in sorted({c for c in header if header.count(c) > 1}):
        problems.append(Problem(where, header_line, 1, f"the column {column!r} is named twice; keep one"))
    if problems:
        raise LabError(problems)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    files: dict[str, int] = {}  # lower case: a file system may ignore case
    for number, raw in lines[1:]:
        try:
            cells = _cells(raw, where, number)
        except LabError as exc:
            problems += exc.problems
            continue
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
        try:
            uri = check_uri(row.get("uri") or DEFAULT_URI)
        except ValueError as exc:
            problems.append(Problem(where, number, 1, f"uri of {row['student']}: {exc}"))
            continue
        host = row.get("host") or None
        if host is not None:
            try:
                check_id(host)
            except ValueError as exc:
                problems.append(Problem(where, number, 1, f"host of {row['student']}: {exc}"))
                continue
            if uri != DEFAULT_URI:
                problems.append(Problem(where, number, 1, f"{row['student']} runs on host {host}, which reaches the "
                                                          "instance through its own libvirt; leave the uri empty"))
                continue
        key = f"host {host} {instance}" if host else f"{uri} {instance}"
        if key in seen:
            problems.append(Problem(where, number, 1, f"instance {instance} is already graded for line {seen[key]}"))
            continue
        seen[key] = number
        entry = Entry(row["student"], instance, uri, channel, number, host)
        if entry.slug.lower() in files:  # evidence/<slug>.json: one student's file would replace another's
            problems.append(Problem(where, number, 1, f"{row['student']!r} and the student of line {files[entry.slug.lower()]} "
                                                      f"get the same file name ({entry.slug}.json); make their names differ"))
            continue
        files[entry.slug.lower()] = number
        entries.append(entry)
    if problems:
        raise LabError(problems)
    if not entries:
        raise LabError([Problem(where, header_line, 1, "the roster names no students")])
    return Roster(entries, tuple(header), text, bom)


def with_hosts(roster: Roster, hosts: Mapping[str, str]) -> str:
    """The roster's text with a `host` column (added when missing) holding `hosts` (student -> host).
    Every other line (comments, blank lines) and every other cell is kept; rows are written as CSV."""
    newline = "\r\n" if "\r\n" in roster.text else "\n"
    lines = roster.text.splitlines()
    columns = list(roster.columns) if roster.has_hosts else [*roster.columns, "host"]
    at = columns.index("host")
    by_line = {entry.line: entry for entry in roster.entries}
    header_done = False
    for i, raw in enumerate(lines):
        number = i + 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([raw]))]
        if not header_done:
            header_done = True
            if not roster.has_hosts:
                lines[i] = _row([*cells, "host"])
            continue
        entry = by_line.get(number)
        if entry is None or entry.student not in hosts:
            continue
        cells += [""] * (len(columns) - len(cells))
        cells[at] = hosts[entry.student]
        lines[i] = _row(cells)
    return ("\ufeff" if roster.bom else "") + newline.join(lines) + newline


def _row(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def hosts_problems(roster: Roster, where: str, known: list[str], hosts_file: str) -> list[Problem]:
    """Rows of a class's roster naming a host the class's hosts file does not list, or a uri (a class
    reaches its students through their hosts): each a problem at its line."""
    problems = [Problem(where, e.line, 1, f"{e.student}: host {e.host} is not in {hosts_file} (hosts: {', '.join(known)})")
                for e in roster.entries if e.host is not None and e.host not in known]
    problems += [Problem(where, e.line, 1, f"{e.student} has a uri; the students of a class are reached through their "
                                           "hosts: empty the uri cell")
                 for e in roster.entries if e.uri != DEFAULT_URI]
    return problems
