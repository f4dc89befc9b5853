"""Pinned SSH host keys, in OpenSSH's known_hosts format: one file per instance.

Guests make their host keys at first boot, so nothing can be known in advance: the first key a
node shows is accepted and pinned; later connections must show the same key. Read-modify-write
under a lock that covers the threads of this process and other processes (flock).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import paramiko

_LOCK = threading.Lock()  # threads of this process; fcntl.flock covers other processes


def known_host_name(host: str, port: int = 22) -> str:
    """The name a host's entry carries in known_hosts (OpenSSH's convention)."""
    return host if port == 22 else f"[{host}]:{port}"


def forget_host_key(known_hosts: Path, host: str, port: int = 22) -> bool:
    """Drop ``host``'s pinned keys (after ``lab reset`` made the node new). True if any were there."""
    with _locked(known_hosts):
        keys = _load(known_hosts)
        name = known_host_name(host, port)
        if name not in keys:
            return False
        del keys[name]
        _save(keys, known_hosts)
        return True


def pinned_key(path: Path, host: str, port: int = 22) -> tuple[str, paramiko.PKey] | None:
    """The key type and key pinned for ``host``, or None before the first contact."""
    entry = _load(path).lookup(known_host_name(host, port))
    if not entry:
        return None
    keytype = entry.keys()[0]
    return keytype, entry[keytype]


def pin_or_match(path: Path, host: str, port: int, key: paramiko.PKey) -> bool:
    """Pin ``key`` at first contact (True); later, True only if it is the pinned key."""
    name = known_host_name(host, port)
    with _locked(path):
        keys = _load(path)
        entry = keys.lookup(name)
        if entry is None:  # first contact: accept what the node made at first boot, and pin it
            keys.add(name, key.get_name(), key)
            _save(keys, path)
            return True
        return bool(entry.get(key.get_name()) == key)


class _locked:
    """Hold known_hosts' lock (threads and processes) for a read-modify-write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        _LOCK.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            _LOCK.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            os.close(self.fd)
        finally:
            _LOCK.release()


def _load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except FileNotFoundError:
        pass
    return keys


def _save(keys: paramiko.HostKeys, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    keys.save(str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
