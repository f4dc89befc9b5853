"""Problems a user can cause, each tied to a place in a file.

Library code raises `LabError` with every problem it found; only the CLI prints and exits.
"""

from __future__ import annotations

import unicodedata

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.line}:{self.column}: {printable(self.message)}"


def is_control(c: str) -> bool:
    """What may not reach a terminal raw: C0/C1 controls, line and paragraph separators, and the
    bidirectional overrides that reorder what a reader sees. (A no-break or ideographic space is text.)"""
    return unicodedata.category(c) in ("Cc", "Zl", "Zp") or "\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069"


def printable(text: str) -> str:
    """Control characters escaped (a newline as \\n, ESC as \\x1b): a file name or a key from the
    user reaches the terminal as one line that cannot move the cursor or recolour it."""
    return "".join(repr(c)[1:-1] if is_control(c) else c for c in text)


class LabError(Exception):
    """One or more user mistakes; `str()` gives one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(Exception):
    """A mistake that is not in a file (an argument, a missing lab): one line with the fix."""


def display_path(path: Path) -> str:
    """Paths relative to the working directory when below it: shorter, and what the user typed."""
    # the folder is resolved, not the file: a link is shown where it is, not where it leads
    try:
        return str(path.parent.resolve().relative_to(Path.cwd().resolve()) / path.name)
    except (ValueError, OSError):
        return str(path)
