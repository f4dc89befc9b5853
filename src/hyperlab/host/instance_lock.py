"""One command at a time changes an instance: `lab up`, `down`, `reset` and `solve` hold its lock.

Two of them at once on one instance (two terminals, or a `lab down` typed while `lab up` still
runs) would define and remove the same libvirt objects under each other and fail half-way with
libvirt's errors. The second one is refused before it touches anything, and told who holds the
instance. The lock is flock(2) on a file beside the instances' folders: the kernel releases it
when its holder exits, however it exits, so a killed command never leaves the instance locked.
The files stay after `lab down` (a line each): deleting one while another process opens it would
let two commands lock two different files.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hyperlab.core.plan import Plan


class InstanceBusy(Exception):
    """Another command is changing the instance. Its text names it and says what to do."""


def lock_path(plan: Plan) -> Path:
    # beside the pool folder, not in it: `lab down` removes that folder while it holds the lock
    return plan.pool_path.parent / ".locks" / f"{plan.lab}.{plan.instance}.lock"


@contextmanager
def changing(plan: Plan, command: str) -> Iterator[None]:
    """Hold the instance's lock for the block; InstanceBusy at once if another process holds it."""
    path = lock_path(plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another lab command"
            flag = "" if plan.instance == "default" else f" --instance {plan.instance}"
            raise InstanceBusy(f"{holder} is changing {plan.lab} instance {plan.instance} right now; wait for it to "
                               f"end (`lab status {plan.lab}{flag}` shows the nodes) and try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`lab {command}` (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
