"""The result of one checker run over one instance: what `lab check --json` prints, what the evidence
file signs and what the gradebook reads. Typed on both sides of the checker process (`to_json` /
`from_json`); the JSON keys are the evidence file's format, unchanged.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from hyperlab.core.load import LoadedLab
from hyperlab.grading.outcome import Status, StepResult, fold


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class DocumentError(Exception):
    """A file that does not hold a run's result; the message says what is missing."""


@dataclass(frozen=True)
class RunDocument:
    lab: str
    instance: str
    score: float
    max: int
    steps: list[StepResult]
    student: str | None = None
    lab_file: str = ""
    uri: str = ""
    error: str | None = None  # the run could not check at all (not deployed, libvirt unreachable, a crash)
    domains: dict[str, str] = field(default_factory=dict)  # node -> libvirt domain UUID, when checked
    started: str = ""
    finished: str = ""
    host: str = ""  # the machine whose hyperlab ran the checkers (its host name)
    class_host: str = ""  # that machine as the class's hosts file names it; empty: the grader's own
    tool: str = "hyperlab"
    signature: dict[str, str] | None = None

    # ------------------------------------------------------------------ making one

    @staticmethod
    def of(loaded: LoadedLab, steps: list[StepResult], *, instance: str, uri: str, student: str | None,
           error: str | None = None, domains: dict[str, str] | None = None, started: str | None = None) -> RunDocument:
        if error is not None:
            steps = [replace(s, status=Status.ERROR, score=0.0, observed=error) for s in steps]
        return RunDocument(lab=loaded.lab.id, lab_file=str(loaded.source.path.resolve()), instance=instance,
                           student=student, uri=uri, score=round(sum(s.score for s in steps), 2),
                           max=sum(s.points for s in steps), steps=steps, error=error, domains=domains or {},
                           started=started or now_utc(), finished=now_utc(), host=socket.gethostname())

    @staticmethod
    def failed(loaded: LoadedLab, instance: str, uri: str, student: str | None, why: str) -> RunDocument:
        """A run that checked nothing: every step ERROR with the reason."""
        return RunDocument.of(loaded, fold(loaded.lab, []), instance=instance, uri=uri, student=student, error=why)

    # ---------------------------------------------------------------- reading one

    @property
    def passed(self) -> bool:
        return self.error is None and all(s.status is Status.PASS for s in self.steps)

    def counts(self) -> dict[Status, int]:
        return {status: sum(s.status is status for s in self.steps) for status in Status}

    @property
    def checked(self) -> bool:
        """An ERROR step means the lab could not be looked at: its total is not a grade."""
        return not any(s.status is Status.ERROR for s in self.steps)

    def first_error(self) -> str:
        if self.error:
            return self.error
        for step in self.steps:
            if step.status is Status.ERROR:
                return f"{step.id}: {step.observed.splitlines()[0] if step.observed else 'error'}"
        return ""

    # -------------------------------------------------------------- across processes

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "lab": self.lab, "lab_file": self.lab_file, "instance": self.instance, "student": self.student,
            "uri": self.uri, "score": self.score, "max": self.max, "steps": [s.to_json() for s in self.steps],
            "error": self.error, "domains": self.domains, "started": self.started, "finished": self.finished,
            "host": self.host, "tool": self.tool,
        }
        if self.class_host:  # only then: evidence of a single host keeps its format
            data["class_host"] = self.class_host
        if self.signature is not None:
            data["signature"] = self.signature
        return data

    @staticmethod
    def from_json(data: Any) -> RunDocument:
        if not isinstance(data, dict) or "lab" not in data or "steps" not in data:
            raise DocumentError("not a run's result (no lab and steps)")
        try:
            signature = data.get("signature")
            return RunDocument(
                lab=str(data["lab"]), instance=str(data["instance"]), score=float(data["score"]), max=int(data["max"]),
                steps=[StepResult.from_json(s) for s in data["steps"]],
                student=None if data.get("student") is None else str(data["student"]),
                lab_file=str(data.get("lab_file") or ""), uri=str(data.get("uri") or ""),
                error=None if data.get("error") is None else str(data["error"]),
                domains={str(k): str(v) for k, v in (data.get("domains") or {}).items()},
                started=str(data.get("started") or ""), finished=str(data.get("finished") or ""),
                host=str(data.get("host") or ""), tool=str(data.get("tool") or "hyperlab"),
                class_host=str(data.get("class_host") or ""),
                signature={str(k): str(v) for k, v in signature.items()} if isinstance(signature, dict) else None)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise DocumentError(f"a run's result with a malformed field: {type(exc).__name__}: {exc}") from None
