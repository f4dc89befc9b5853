"""`eventually`: wait for state that converges (a service starting, replication, DNS), then judge it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(fn: Callable[[], T], until: Callable[[T], object] = bool, *, timeout: float = 60,
               every: float = 2, what: str | None = None) -> T:
    """Call `fn` every `every` seconds until `until(value)` is true; return that value.

    A failed assertion inside `fn` counts as "not yet". On timeout the check fails with the last
    value seen (or the last assertion message). Errors of the channel (the node cannot be reached)
    are not waited out: they end the check as ERROR at once.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            value = fn()
            if until(value):
                return value
            last = f"last value seen: {value!r}"
        except AssertionError as exc:
            last = f"last failure: {str(exc).strip() or type(exc).__name__}"
        if time.monotonic() + every > deadline:
            label = what or getattr(fn, "__name__", "condition")
            raise AssertionError(f"{label} not reached after {timeout:g}s ({attempts} tries); {last}")
        time.sleep(every)
