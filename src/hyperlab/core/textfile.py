"""Reading a user's text file (a lab, a topology, a hosts file, a roster): every way it can fail is
one `file:line:column` problem, a byte that is not UTF-8 included, at the line a person sees it on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hyperlab.core.errors import LabError, Problem


@dataclass(frozen=True)
class Kind:
    """How the messages name the file: `too_big` takes its size in bytes."""

    too_big: str  # with {size_mib:.1f}, {size_kib} and {limit_mib} to fill in
    not_found: str
    folder: str
    unreadable: str  # followed by the system's reason
    save_as: str


def read_utf8(path: Path, where: str, limit: int, kind: Kind) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise LabError([Problem(where, 1, 1, kind.too_big.format(size_mib=size / (1 << 20), size_kib=size >> 10,
                                                                     limit_mib=limit >> 20))])
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabError([Problem(where, 1, 1, kind.not_found)]) from None
    except IsADirectoryError:
        raise LabError([Problem(where, 1, 1, kind.folder)]) from None
    except OSError as exc:
        raise LabError([Problem(where, 1, 1, f"{kind.unreadable}{exc.strerror or exc}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1  # in bytes: the line is not text
        raise LabError([Problem(where, line, column, f"byte {raw[exc.start]:#04x} is not UTF-8; {kind.save_as}")]) from None
