"""What the benchmarks time with: a progress clock and a stopwatch."""

from __future__ import annotations

import time


class Clock:
    """Records (seconds since start, node, phase) from the deploy progress callback."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[tuple[float, str, str]] = []

    def __call__(self, node: str, phase: str) -> None:
        self.events.append((time.monotonic() - self.start, node, phase))

    def first(self, phase_prefix: str) -> float:
        return min(t for t, _, p in self.events if p.startswith(phase_prefix))

    def last(self, phase_prefix: str) -> float:
        return max(t for t, _, p in self.events if p.startswith(phase_prefix))


def timed(func) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    func()
    return time.monotonic() - start
