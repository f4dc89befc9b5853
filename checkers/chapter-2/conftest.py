"""chapter-2's checkers import their helpers (ch2_facts, ch2_judge, ch2_ps) by name: put this folder
on sys.path so that works in every pytest import mode (`lab check` and CI use importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
