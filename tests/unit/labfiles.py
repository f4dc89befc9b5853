"""Write a one-off topology and lab into a folder laid out like a checkout, and load it."""

from __future__ import annotations

from pathlib import Path

from hyperlab.core.load import LoadedLab, load_lab

ONE_STEP = "steps: [{id: s, title: {ko: 가, en: a}, points: 1}]\n"


def write_lab(root: Path, lab_id: str, topology: str) -> LoadedLab:
    """`topology` is the YAML of a topology named like the lab; the lab has one step."""
    (root / "topologies").mkdir(exist_ok=True)
    (root / "labs" / lab_id).mkdir(parents=True)
    (root / "topologies" / f"{lab_id}.yaml").write_text(f"name: {lab_id}\n{topology}")
    (root / "labs" / lab_id / "lab.yaml").write_text(
        f"id: {lab_id}\ntitle: {{ko: 가, en: a}}\ntopology: {lab_id}\n{ONE_STEP}")
    return load_lab(lab_id, root)
