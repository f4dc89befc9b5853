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

from hyperlab.core.errors import LabError, Problem, display_path, is_control, printable
from hyperlab.core.model import CHANNELS, DEFAULT_URI, check_id, check_uri

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


MAX_ROSTER_BYTES = 1 << 20  # 30 students take 2 KiB
MAX_CELL = 200  # a name or a URI, never a paragraph
MAX_LINE = 1000


def _text(path: Path, where: str) -> str:
    """The roster's text; a byte that is not UTF-8 is reported at the line a person sees it on."""
    try:
        if path.stat().st_size > MAX_ROSTER_BYTES:
            raise LabError([Problem(where, 1, 1, f"the roster is {path.stat().st_size >> 10} KiB; a roster is at most "
                                                 f"{MAX_ROSTER_BYTES >> 20} MiB (is it the right file?)")])
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabError([Problem(where, 1, 1, "roster not found")]) from None
    except IsADirectoryError:
        raise LabError([Problem(where, 1, 1, "is a folder, not a roster file")]) from None
    except OSError as exc:
        raise LabError([Problem(where, 1, 1, f"cannot read the roster: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets save a BOM
    except UnicodeDecodeError as exc:
        at_line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LabError([Problem(where, at_line, column, f"byte {raw[exc.start]:#04x} is not UTF-8; save the roster as "
                                                     "CSV UTF-8")]) from None
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


def read_roster(path: Path) -> list[Entry]:
    where = display_path(path)
    text = _text(path, where)
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
        key = f"{uri} {instance}"
        if key in seen:
            problems.append(Problem(where, number, 1, f"instance {instance} is already graded for line {seen[key]}"))
            continue
        seen[key] = number
        entry = Entry(row["student"], instance, uri, channel, number)
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
    return entries
