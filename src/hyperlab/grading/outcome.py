"""What a checker run found: one result per check, folded into one result per step (pure).

A step is checked by one or more checks (pytest functions marked ``@pytest.mark.step(id)``).
Each check ends in one of four states, kept apart all the way to the gradebook:

- PASS     the state the step asks for is there;
- FAIL     it is not; the message says what was observed against what was expected;
- BLOCKED  not checked, because a step it requires did not pass;
- ERROR    the check could not look (node unreachable, agent down, credentials, a checker bug):
           never the student's fault without saying so.

A step's points are split among its checks by their weights (partial credit). The states stay a
closed set (`Status`) from the checker to the gradebook, across the checker process too
(`to_json` / `from_json`, as pytest's TestReport does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hyperlab.core.model import Lab


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    BLOCKED = "BLOCKED"
    ERROR = "ERROR"


@dataclass
class CheckResult:
    """One check of one step, with the evidence it gathered (commands and probes, with their output)."""

    nodeid: str
    name: str
    step: str
    weight: float
    status: Status
    message: str = ""
    duration: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"nodeid": self.nodeid, "name": self.name, "step": self.step, "weight": self.weight,
                "status": str(self.status), "message": self.message, "duration": round(self.duration, 3),
                "evidence": self.evidence}

    @staticmethod
    def from_json(data: dict[str, Any]) -> CheckResult:
        return CheckResult(str(data["nodeid"]), str(data["name"]), str(data["step"]), float(data["weight"]),
                           Status(data["status"]), str(data.get("message", "")), float(data.get("duration", 0.0)),
                           list(data.get("evidence", [])))


@dataclass
class StepResult:
    id: str
    title: dict[str, str]
    points: int
    score: float
    status: Status
    observed: str
    hint: dict[str, str] | None
    checks: list[CheckResult]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": str(self.status), "points": self.points,
                "score": self.score, "observed": self.observed, "hint": self.hint,
                "checks": [c.to_json() for c in self.checks]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> StepResult:
        hint = data.get("hint")
        return StepResult(str(data["id"]), _text(data["title"]), int(data["points"]), float(data["score"]),
                          Status(data["status"]), str(data.get("observed") or ""), _text(hint) if hint else None,
                          [CheckResult.from_json(c) for c in data.get("checks", [])])

    def title_in(self, language: str) -> str:
        return self.title.get(language) or self.title["en"]

    def hint_in(self, language: str) -> str:
        return (self.hint or {}).get(language) or (self.hint or {}).get("en") or ""


def _text(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping of languages to text, not {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


NO_CHECKER = "no checker covers this step (a gap in the lab's checkers, not the student's work)"


def step_status(checks: list[CheckResult]) -> Status | None:
    """ERROR wins over BLOCKED wins over FAIL: each says more about why there is no PASS. None: not checked."""
    if not checks:
        return None
    states = {c.status for c in checks}
    for status in (Status.ERROR, Status.BLOCKED, Status.FAIL):
        if status in states:
            return status
    return Status.PASS


def fold(lab: Lab, checks: list[CheckResult], only: set[str] | None = None) -> list[StepResult]:
    """One StepResult per step of the lab (or of `only`), in the lab's order."""
    results = []
    for step in lab.steps:
        if only is not None and step.id not in only:
            continue
        mine = [c for c in checks if c.step == step.id]
        status = step_status(mine)
        title = {"ko": step.title.ko, "en": step.title.en}
        hint = {"ko": step.hint.ko, "en": step.hint.en} if step.hint else None
        if status is None:
            results.append(StepResult(step.id, title, step.points, 0.0, Status.ERROR, NO_CHECKER, hint, []))
            continue
        total = sum(c.weight for c in mine)
        passed = sum(c.weight for c in mine if c.status is Status.PASS)
        score = round(step.points * passed / total, 2) if total > 0 else 0.0
        observed = _observed([c for c in mine if c.status is not Status.PASS and c.message])
        results.append(StepResult(step.id, title, step.points, score, status, observed, hint, mine))
    return results


def _observed(failing: list[CheckResult]) -> str:
    """Each failing check's message, named by its check when the messages differ."""
    messages = list(dict.fromkeys(c.message for c in failing))
    if len(messages) <= 1:
        return messages[0] if messages else ""
    return "\n".join(f"{c.name}: {c.message}" for c in failing)
