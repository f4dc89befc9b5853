"""Text as markdown that shows exactly that text, for every generated page."""

from __future__ import annotations

import inspect
import re


def md(text: str, *, code: bool = False) -> str:
    """Course text -> inline markdown that shows exactly that text (C:\\smb stays C:\\smb).

    code=True keeps `backticks` as code spans (the CLI's help text uses them that way).
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return re.sub(r"([\\*_\[\]{}|#!])" if code else r"([\\`*_\[\]{}|#!])", r"\\\1", text)


def doc_text(doc: str | None) -> str:
    """A docstring as markdown: paragraphs kept, lines joined, `code` kept, everything else shown as written."""
    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc or "")):
        text = " ".join(line.strip() for line in para.splitlines())
        parts = re.split(r"(``.+?``|`[^`]+`)", text)
        rendered = "".join(("`" + p.strip("`") + "`") if i % 2 else md(p) for i, p in enumerate(parts))
        if rendered:
            out.append(rendered)
    return "\n\n".join(out)
