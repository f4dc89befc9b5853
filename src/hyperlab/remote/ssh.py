"""One command on another host through the OpenSSH client: the instructor's own keys, agent,
known_hosts and config apply, as they do for everything else they run on their hosts.

Never interactive (`BatchMode`): a host whose key is unknown or changed, or that wants a password,
fails at once with ssh's own words instead of waiting for a prompt no one sees. A host that stops
answering is noticed within `ServerAliveInterval * ServerAliveCountMax` seconds. The remote command
is built with `shlex.join` and carried in base64 to the host's POSIX `sh`, so every argument arrives
as itself whatever the login shell.
"""

from __future__ import annotations

import base64
import os
import shlex
import signal
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hyperlab.core.errors import printable
from hyperlab.core.inventory import SshTarget

CONNECT_TIMEOUT = 10
ALIVE_INTERVAL, ALIVE_COUNT = 5, 3
SSH_FAILED = 255  # ssh's own exit code when it, not the remote command, failed


def remote_line(command: list[str]) -> str:
    """The one line the host's login shell runs. `shlex.join` quotes for a POSIX shell, but the login
    shell may be fish or csh, whose quoting differs: the command travels as base64 (letters, digits,
    + / =) inside single quotes, which every shell keeps as they are, and POSIX sh runs it."""
    encoded = base64.b64encode(shlex.join(command).encode()).decode()
    return f"exec sh -c 'eval \"$(printf %s {encoded} | base64 -d)\"'"


class SshMissing(Exception):
    """No OpenSSH client on this machine."""


@dataclass(frozen=True)
class Reply:
    """What a remote command gave back. `reached` is False when ssh itself failed (no route, refused,
    authentication, the connection lost): then `stderr` holds ssh's reason."""

    exit_code: int | None  # None: timed out
    stdout: bytes
    stderr: str
    seconds: float

    @property
    def reached(self) -> bool:
        return self.exit_code not in (None, SSH_FAILED)

    def why(self) -> str:
        """One line: the reason a command failed, for a table cell."""
        if self.exit_code is None:
            return f"no answer within {self.seconds:.0f} s"
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {self.exit_code}"
        return printable(("ssh: " if self.exit_code == SSH_FAILED else "") + last)[:500]  # the host's words


class Ssh:
    """How this machine reaches one host."""

    def __init__(self, target: SshTarget, config: Path | None = None) -> None:
        self.target = target
        self.config = config

    def argv(self, command: list[str]) -> list[str]:
        client = shutil.which("ssh")
        if client is None:
            raise SshMissing("no ssh client on this machine; install it with: apt-get install openssh-client")
        argv = [client]
        if self.config is not None:
            argv += ["-F", str(self.config)]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                 "-o", f"ServerAliveInterval={ALIVE_INTERVAL}", "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
                 "-o", "LogLevel=ERROR"]
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        if self.target.user:
            argv += ["-l", self.target.user]
        return [*argv, "--", self.target.host, remote_line(command)]

    def run(self, command: list[str], *, timeout: float, stdin: bytes | IO[bytes] | None = None,
            cwd: str | None = None) -> Reply:
        """`command` on the host (in `cwd` there, when given); its stdin is `stdin` (bytes or a file).

        At most MAX_STDOUT bytes of its output are kept (the rest is read and dropped): what a host
        sends is not believed, nor allowed to fill this machine's memory."""
        if cwd is not None:
            command = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd, *command]
        started = time.monotonic()
        proc = subprocess.Popen(self.argv(command), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        out, err = _Keep(proc.stdout, MAX_STDOUT), _Keep(proc.stderr, MAX_STDERR)
        feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True) if stdin is not None else None
        if feeder is not None:
            feeder.start()
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # ssh and whatever it started here (a ProxyCommand); the command on the host runs on
            # until its own end, and a rerun of the class command finds the instance busy or done
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        for reader in (out, err):  # a helper that kept the pipes open must not hold this machine
            reader.join(timeout=DRAIN_SECONDS)
        return Reply(code, out.data(), err.data().decode("utf-8", "replace"), time.monotonic() - started)


MAX_STDOUT = 32 << 20  # a run's result document is ~100 KiB; a host's images travel the other way
MAX_STDERR = 1 << 20
DRAIN_SECONDS = 10  # after ssh ended, for the last of its output


class _Keep(threading.Thread):
    """Reads a pipe to its end, keeping its first `limit` bytes."""

    def __init__(self, pipe: IO[bytes] | None, limit: int) -> None:
        super().__init__(daemon=True)
        self.pipe, self.limit, self.size = pipe, limit, 0
        self.chunks: list[bytes] = []
        self.start()

    def run(self) -> None:
        if self.pipe is None:
            return
        while chunk := self.pipe.read(1 << 16):
            if self.size < self.limit:
                self.chunks.append(chunk[: self.limit - self.size])
                self.size += len(self.chunks[-1])
        self.pipe.close()

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _feed(pipe: IO[bytes] | None, source: bytes | IO[bytes]) -> None:
    """Write `source` into the command's stdin, then close it; a host that hung up ends the feed."""
    if pipe is None:
        return
    try:
        if isinstance(source, bytes):
            pipe.write(source)
        else:
            while chunk := source.read(1 << 20):
                pipe.write(chunk)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass
