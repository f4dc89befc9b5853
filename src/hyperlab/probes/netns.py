"""Run probe code inside a network namespace (``ip netns`` name or a path to an ns file).

hyperlab reaches each instance's "public" network through a per-instance netns. The network
namespace of a Linux *thread* can be switched with setns(2); sockets keep the namespace they were
created in. So the simplest correct way is: a short-lived thread enters the namespace, runs the
probe (any library: ldap3, pysmb, dnspython all create their sockets in that thread) and ends.
The caller's thread never changes namespace. Needs CAP_SYS_ADMIN (root).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

T = TypeVar("T")


class NetnsError(Exception):
    """The namespace cannot be entered (missing, or no permission). Its text says which."""


def netns_path(name: str) -> str:
    """``ip netns`` name -> /run/netns/<name>; a path (contains '/') is used as is."""
    if "/" in name:
        return name
    if not name or name in (".", ".."):
        raise NetnsError(f"invalid network namespace name {name!r}")
    return os.path.join(NETNS_RUN_DIR, name)


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _open_ns(name: str) -> int:
    path = netns_path(name)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(
            f"network namespace {name!r} does not exist ({path} is missing; see `ip netns list`)"
        ) from None
    except PermissionError:
        raise NetnsError(f"no permission to open network namespace {path} (run as root)") from None


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Switch the *calling thread* into network namespace ``name`` for the block, then back.

    Sockets created in the block belong to ``name``. Prefer :func:`run_in_netns`, which never
    touches the caller's thread.
    """
    target = _open_ns(name)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(target)
        raise
    try:
        try:
            _setns(target)
        except PermissionError as exc:
            raise NetnsError(
                f"cannot enter network namespace {name!r}: {exc.strerror} (needs root)"
            ) from None
        except OSError as exc:
            raise NetnsError(f"cannot enter network namespace {name!r}: {exc.strerror}") from None
        try:
            yield
        finally:
            _setns(own)  # if this failed the thread would be stranded: let it raise loudly
    finally:
        os.close(target)
        os.close(own)


def run_in_netns(
    name: str,
    fn: Callable[..., T],
    *args: Any,
    join_timeout: float | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)`` on a fresh thread inside network namespace ``name``.

    Returns what ``fn`` returns and re-raises what it raises. ``join_timeout`` bounds the wait
    (a TimeoutError is raised if ``fn`` is still running then; the thread is left as a daemon).
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            with in_netns(name):
                box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=runner, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join(join_timeout)
    if thread.is_alive():
        raise TimeoutError(
            f"code in network namespace {name!r} still running after {join_timeout}s"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]
