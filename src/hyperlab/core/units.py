"""Sizes: what YAML files write (`4GiB`) and what people read (`4.2 GiB`).

Two formatters on purpose, with different promises: `format_size` is the exact inverse of
`parse_size` (a topology's sizes, its hash and the plan keep the author's own units), while
`human_size` rounds a measured number (free disk, a file) for a message.
"""

from __future__ import annotations

import re
from fractions import Fraction

SIZE_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]iB)\s*$")


def parse_size(value: object) -> int:
    """'4GiB' -> bytes. Only binary units: '4GB' is ambiguous in a course about disks."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a size needs a unit, such as 4GiB or 512MiB (got {value!r})")
    match = _SIZE_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a size; write a number and one of KiB, MiB, GiB, TiB, such as 4GiB")
    number, unit = match.groups()
    if len(number) > 16:
        raise ValueError(f"'{value[:16]}...' has too many digits for a size; write it in a larger unit")
    exact = Fraction(number) * SIZE_UNITS[unit]  # exact: 0.1GiB is not rounded by floats
    if exact <= 0:
        raise ValueError(f"{value!r} is not a positive size")
    if exact.denominator != 1 or exact % 1024:
        raise ValueError(f"{value!r} is not a whole number of KiB; round it, such as {max(1, round(exact / 1024))}KiB")
    return int(exact)


def format_size(size: int) -> str:
    """Bytes -> the largest unit that divides them exactly ('1536MiB'), as a topology would write it."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return f"{size}B"


def human_size(size: int) -> str:
    """A measured size rounded for people: 1.5 GiB, 512 MiB, 300 B."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(size) >= factor:
            value = size / factor
            # one decimal below 100 units, none above, and none when it is exact: 1.5 GiB, 120 GiB, 2 GiB
            return f"{value:.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"
