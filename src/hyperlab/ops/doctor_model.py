"""What `lab doctor` finds and what a lab asks of the host: the data its checks share (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hyperlab.core.catalog import IMAGES
from hyperlab.core.load import LoadedLab

Level = Literal["ok", "info", "warn", "fail"]
LABELS: dict[str, str] = {"ok": "ok", "info": "info", "warn": "warn", "fail": "FAIL"}


@dataclass(frozen=True)
class Finding:
    """One check's outcome. `ok` is False for problems; `level` refines it: ok/info, or warn/fail.

    Only `fail` makes `lab doctor` exit 1: a warning (software emulation) still lets labs run.
    """

    ok: bool
    what: str
    detail: str
    fix: str | None = None
    level: Level = field(default=None)  # type: ignore[arg-type]  # filled from `ok` when not given

    def __post_init__(self) -> None:
        level = self.level or ("ok" if self.ok else "fail")
        if (level in ("ok", "info")) != self.ok:
            raise ValueError(f"level {level!r} contradicts ok={self.ok}")
        object.__setattr__(self, "level", level)

    @property
    def label(self) -> str:
        return LABELS[self.level]

    @property
    def failed(self) -> bool:
        return self.level == "fail"

    def line(self) -> str:
        """`FAIL image tiny: not in the store ...; fix: lab image build tiny` (one line)."""
        text = f"{self.label} {self.what}: {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix else text

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.label}


def any_failed(findings: list[Finding]) -> bool:
    return any(f.failed for f in findings)


# ------------------------------------------------------------------------------ lab needs


@dataclass(frozen=True)
class Needs:
    """What a lab asks of the host, read from its topology (pure)."""

    nodes: tuple[str, ...]
    memory: int  # sum of the nodes' memory (nested guests live inside it)
    images: tuple[str, ...]  # catalog images: every node's, and nested guests' when hyperlab builds them
    nested: tuple[str, ...]
    uefi: tuple[str, ...]
    secure_boot: tuple[str, ...]
    tpm: tuple[str, ...]
    nested_windows: tuple[str, ...] = ()  # Hyper-V hosts: they need real VT-x/AMD-V, which emulation lacks
    evmcs: dict[str, bool | None] = field(default_factory=dict)  # Hyper-V hosts: their `evmcs:` (None: the default)


def lab_needs(loaded: LoadedLab) -> Needs:
    nodes = loaded.topology.topology.nodes
    images = {n.image for n in nodes.values()} | {d.image for n in nodes.values() for d in n.disks if d.image}
    images |= {g.image for g in loaded.lab.guests.values() if g.image in IMAGES}
    return Needs(
        nodes=tuple(nodes),
        memory=sum(n.memory for n in nodes.values()),
        images=tuple(sorted(images)),
        nested=tuple(name for name, n in nodes.items() if n.nested),
        uefi=tuple(name for name, n in nodes.items() if n.firmware == "uefi"),
        secure_boot=tuple(name for name, n in nodes.items() if n.secure_boot),
        tpm=tuple(name for name, n in nodes.items() if n.tpm),
        nested_windows=tuple(name for name, n in nodes.items()
                             if n.nested and n.image in IMAGES and IMAGES[n.image].os == "windows"),
        evmcs={name: n.evmcs for name, n in nodes.items() if n.nested and n.image in IMAGES and IMAGES[n.image].os == "windows"},
    )
