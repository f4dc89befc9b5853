"""What `lab doctor` finds: the data its checks share (pure). What a lab asks of a host is `core.needs`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


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
