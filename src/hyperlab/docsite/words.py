"""The words of the generated pages, kept in data files beside this module (`words/*.yaml`), one
mapping per page kind, so that a translator edits YAML, not code."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

WORDS_DIR = Path(__file__).with_name("words")
LANGS = ("ko", "en")


@functools.cache
def words(page: str) -> dict[str, Any]:
    """The data of `words/<page>.yaml`: read once, never changed (callers must not mutate it)."""
    data = yaml.safe_load((WORDS_DIR / f"{page}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{WORDS_DIR / page}.yaml is not a mapping")
    return data
