"""One way to run a function over several items at once (nodes of a boot wave, students of a roster)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """`fn` over `items` in threads (one per item unless `workers` caps them); results in the items' order.

    Every call runs to its end before this returns; then the first failure, in the items' order,
    is raised, so a failing node never leaves its siblings running behind the caller's back.
    """
    todo = list(items)
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=workers or len(todo)) as pool:
        futures = [pool.submit(fn, item) for item in todo]
    return [future.result() for future in futures]
