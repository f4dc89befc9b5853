"""Where the benchmarks put their results: one marked block each in docs/performance.md."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def record(name: str, lines: list[str], heading: str = "") -> str:
    """Replace the block between `<!-- NAME:BEGIN -->` and `<!-- NAME:END -->` with `lines` (the
    first time, append it, under `heading` if given); returns the block as written."""
    begin, end = f"<!-- {name}:BEGIN -->", f"<!-- {name}:END -->"
    block = "\n".join([begin, *lines, end])
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if begin in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + (f"{heading}\n\n" if heading else "") + block + "\n"
    DOC.write_text(text)
    return block
