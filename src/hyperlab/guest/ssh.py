"""SSH (paramiko) to Linux nodes reachable from the instance's host side.

The same interface as the agent channel (``hyperlab.guest.base.Channel``), over the network:

- **Where the socket lives.** Guests are reachable from the host only inside the instance's network
  namespace (``plan.host_side.netns``, which holds e.g. 192.168.1.2). The TCP socket is created on a
  short-lived thread that entered that namespace (``hyperlab.probes.run_in_netns``) and handed to
  paramiko's ``Transport``; a socket keeps the namespace it was created in, so everything after
  (handshake, commands, SFTP) needs no namespace switch. The caller's thread never changes namespace.
- **One connection.** It is opened on the first call and reused by every ``run``, ``write_file`` and
  ``read_file`` (each is a channel of that one connection); it is reopened only if it died.
- **Credentials.** The instance's key (``plan.pool_path/id_ed25519``, made by ``hyperlab.ops.secrets.ensure_key``;
  its public half is put into the guests' /root/.ssh/authorized_keys at first boot).
- **Host keys.** Guests make their host keys at first boot, so nothing can be known in advance: the
  first key a node shows is accepted and pinned in ``known_hosts`` (``hyperlab.guest.known_hosts``: OpenSSH's file format; one file
  per instance, ``plan.pool_path/known_hosts``, so two instances with the same addresses never mix).
  Later connections must show the same key, else ``ChannelError`` says the key changed. ``lab reset``
  gives a node a fresh overlay, hence a new host key: the reset must call :func:`forget_node`
  (``forget_host_key`` for the node's address; the next connection pins the new key). `lab down`
  removes the instance folder, and the file with it. With
  ``known_hosts=None`` nothing is pinned (any key is accepted; for tests and throwaway use).
- **Failures** to connect or authenticate raise ``ChannelError`` with one plain sentence, never a
  paramiko traceback: "cannot reach SVR1 over SSH at 192.168.1.110 (in namespace hl-...): connection
  refused".

Commands: a string is handed to the remote user's login shell as is (like ``ssh host 'cmd'``); a list
is quoted with ``shlex.join`` first, so every element arrives as one argument. Stdin data is written,
then EOF. On timeout the session channel is closed, the command's process group is killed (SIGKILL,
from a second session: sshd refuses the SSH "signal" request for root sessions), and the result says
``timed_out``; the connection stays usable. To know that group, a Linux command line is preceded by
``printf 'hyperlab-ssh-pid:%s\n' "$$"`` on a line of its own (sshd makes the remote shell a session
leader, so its PID is the group's), and the channel takes that line off stdout. Each output stream
is kept up to ``MAX_OUTPUT`` bytes; beyond that the rest is read and dropped and the result says
``truncated``.
"""

from __future__ import annotations

import errno
import logging
import select
import shlex
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

import paramiko

from hyperlab.core.plan import Plan
from hyperlab.guest.base import OS, ChannelError, RunResult, host_side_address
from hyperlab.guest.known_hosts import forget_host_key, known_host_name, pin_or_match, pinned_key
from hyperlab.host.instance_files import key_path, known_hosts_path
from hyperlab.probes.netns import NetnsError, run_in_netns

MAX_OUTPUT = 64 << 20  # per stream; RunResult.truncated beyond this
WINDOW = 8 << 20  # SSH receive window per session: large outputs arrive without stalls
SFTP_CHUNK = 1 << 20
PID_TAG = "hyperlab-ssh-pid:"
# paramiko logs every failed handshake as an ERROR with a traceback; failures reach the caller as one
# ChannelError sentence instead. To debug, attach a handler to this logger.
LOG_CHANNEL = "hyperlab.guest.ssh.paramiko"
logging.getLogger(LOG_CHANNEL).addHandler(logging.NullHandler())
logging.getLogger(LOG_CHANNEL).propagate = False


class SSHChannel:
    name = "ssh"

    def __init__(
        self,
        host: str,
        *,
        netns: str | None,
        key_path: Path,
        user: str = "root",
        port: int = 22,
        node: str,
        os_name: OS = "linux",
        connect_timeout: float = 10,
        known_hosts: Path | None = None,
    ) -> None:
        self.host = host
        self.netns = netns
        self.key_path = Path(key_path)
        self.user = user
        self.port = port
        self.node = node
        self.os = os_name
        self.connect_timeout = connect_timeout
        self.known_hosts = Path(known_hosts) if known_hosts is not None else None
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SSHChannel({self.node} at {self._where()})"

    # ---------------------------------------------------------------- connection

    def _where(self) -> str:
        where = self.host if self.port == 22 else f"{self.host} port {self.port}"
        return f"{where} (in namespace {self.netns})" if self.netns else where

    def _cannot(self, why: str) -> ChannelError:
        return ChannelError(f"cannot reach {self.node} over SSH at {self._where()}: {why}")

    def _connected(self) -> paramiko.Transport:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return self._transport
            self._drop()
            self._transport = self._connect()
            return self._transport

    def _socket(self) -> socket.socket:
        def connect() -> socket.socket:
            return socket.create_connection((self.host, self.port), timeout=self.connect_timeout)

        try:
            if self.netns:
                sock = run_in_netns(self.netns, connect, join_timeout=self.connect_timeout + 5)
            else:
                sock = connect()
        except NetnsError as exc:
            raise self._cannot(str(exc)) from None
        except ConnectionRefusedError:
            raise self._cannot("connection refused (nothing listens on port "
                               f"{self.port}: sshd not running, or not started yet)") from None
        except TimeoutError:
            raise self._cannot(f"timed out after {self.connect_timeout:g}s (no answer: "
                               "the node is down, still booting, or a firewall drops the traffic)") from None
        except OSError as exc:
            reason = {
                errno.EHOSTUNREACH: "no route to host (the address does not answer ARP)",
                errno.ENETUNREACH: "network unreachable (no route to that address from here)",
                errno.ECONNRESET: "connection reset",
            }.get(exc.errno or 0, exc.strerror or str(exc))
            raise self._cannot(reason) from None
        sock.settimeout(None)  # paramiko's own timeouts govern from here on
        return sock

    def _connect(self) -> paramiko.Transport:
        try:
            pkey = paramiko.PKey.from_path(self.key_path)
        except FileNotFoundError:
            raise self._cannot(f"its SSH key {self.key_path} does not exist (`lab up` makes it)") from None
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise self._cannot(f"cannot load the SSH key {self.key_path}: {exc}") from None
        sock = self._socket()
        transport = paramiko.Transport(sock)
        transport.set_log_channel(LOG_CHANNEL)  # paramiko logs failures as errors: kept quiet, see below
        ok = False
        try:
            transport.banner_timeout = self.connect_timeout
            transport.handshake_timeout = self.connect_timeout
            transport.auth_timeout = self.connect_timeout
            pinned = self._pinned()
            if pinned:
                # Ask for the pinned key's type first, so the comparison below compares like with like.
                keytype = {"ssh-rsa": "rsa-sha2-512"}.get(pinned[0], pinned[0])
                options = transport.get_security_options()
                if keytype in options.key_types:
                    options.key_types = [keytype] + [k for k in options.key_types if k != keytype]
            try:
                transport.start_client(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise self._cannot(f"the SSH handshake failed ({_plain(exc)}): is it an SSH server?") from None
            if not (transport.is_active() and transport.initial_kex_done):  # start_client returns on timeout
                raise self._cannot(f"the SSH handshake failed (no answer within {self.connect_timeout:g}s): "
                                   "is it an SSH server?")
            self._check_host_key(transport.get_remote_server_key())
            try:
                transport.auth_publickey(self.user, pkey)
            except paramiko.AuthenticationException:
                raise self._cannot(f"authentication failed (the server refused the key {self.key_path} "
                                   f"for {self.user}: is its public half in authorized_keys?)") from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise self._cannot(f"authentication failed ({_plain(exc)})") from None
            ok = True
            return transport
        finally:
            if not ok:
                transport.close()
                sock.close()

    def _pinned(self) -> tuple[str, paramiko.PKey] | None:
        return None if self.known_hosts is None else pinned_key(self.known_hosts, self.host, self.port)

    def _check_host_key(self, key: paramiko.PKey) -> None:
        if self.known_hosts is None or pin_or_match(self.known_hosts, self.host, self.port, key):
            return
        name = known_host_name(self.host, self.port)
        raise self._cannot(
            f"its host key changed since it was pinned in {self.known_hosts} (now {key.get_name()} "
            f"{key.fingerprint}). If the node was rebuilt (`lab reset`), the pinned key is stale: delete the "
            f"line for {name} from that file; otherwise something else answers at that address"
        )

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self._connected()
        with self._lock:
            sftp = self._sftp
            channel = sftp.get_channel() if sftp is not None else None
            if sftp is None or channel is None or channel.closed:
                try:
                    sftp = paramiko.SFTPClient.from_transport(transport, window_size=WINDOW)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise ChannelError(f"{self.node}: cannot start SFTP over SSH at {self._where()}: "
                                       f"{_plain(exc)}") from None
                if sftp is None:
                    raise ChannelError(f"{self.node}: the SSH server at {self._where()} refused SFTP")
                self._sftp = sftp
            return sftp

    def _drop(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001, S110 - closing a session that may be dead already
                pass
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands

    def remote_command(self, command: str | list[str]) -> str:
        """The command line sent to the server: a string as is, a list quoted for the remote shell."""
        if isinstance(command, str):
            return command
        if self.os == "windows":
            return subprocess.list2cmdline(command)
        return shlex.join(command)

    def run(self, command: str | list[str], *, input: bytes | None = None, timeout: float = 120) -> RunResult:
        line = self.remote_command(command)
        start = time.monotonic()
        deadline = start + timeout
        transport = self._connected()
        try:
            chan = transport.open_session(window_size=WINDOW, timeout=max(timeout, 1))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise ChannelError(f"{self.node}: lost the SSH connection at {self._where()}: {_plain(exc)}") from None
        out, err = _Sink(), _Sink()
        # Linux: the remote shell first prints its PID (the session's process group, as sshd made it a
        # session leader) on a line of its own, which is taken off stdout here: on timeout that group is killed.
        header = self.os == "linux"
        head = b""
        pgid: int | None = None
        pending = memoryview(input or b"")
        try:
            chan.exec_command(f"printf '{PID_TAG}%s\\n' \"$$\"\n{line}" if header else line)
            if not pending:
                chan.shutdown_write()
            while True:
                busy = False
                while chan.recv_ready():
                    data = chan.recv(1 << 20)
                    if header:
                        head += data
                        pgid, data, header = _take_header(head)
                    if not header:
                        out.add(data)
                    busy = True
                while chan.recv_stderr_ready():
                    err.add(chan.recv_stderr(1 << 20))
                    busy = True
                if pending and chan.send_ready():
                    sent = chan.send(bytes(pending[: 1 << 20]))
                    pending = pending[sent:]
                    if not pending:
                        chan.shutdown_write()
                    busy = True
                if chan.exit_status_ready() and (chan.eof_received or chan.closed) \
                        and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                now = time.monotonic()
                if now >= deadline:
                    chan.close()
                    self._kill(transport, pgid)
                    return RunResult(line, -1, out.text(), err.text(), time.monotonic() - start, timed_out=True,
                                     truncated=out.truncated or err.truncated)
                if not busy:
                    wait = min(deadline - now, 0.02 if pending else 0.5)
                    if chan.eof_received or chan.closed:
                        chan.status_event.wait(wait)
                    else:
                        select.select([chan], [], [], wait)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()  # also closes the pipe select() used
            self.close()
            raise ChannelError(f"{self.node}: lost the SSH connection at {self._where()} while running "
                               f"`{line}`: {_plain(exc)}") from None
        if header:  # the shell ended before printing a whole header line: keep what it printed
            out.add(head)
        exit_code = chan.recv_exit_status()  # -1 when the process died of a signal
        chan.close()
        return RunResult(line, exit_code, out.text(), err.text(), time.monotonic() - start,
                         truncated=out.truncated or err.truncated)

    def _kill(self, transport: paramiko.Transport, pgid: int | None) -> None:
        """SIGKILL a timed-out command's process group, from a second session on the same connection.

        (sshd refuses the SSH "signal" request for root sessions, and closing the session alone leaves a
        command that does not write running.) Best effort: the caller reports the timeout either way.
        """
        if pgid is None or pgid <= 1:
            return
        try:
            chan = transport.open_session(timeout=5)
            chan.exec_command(f"kill -KILL -- -{pgid} {pgid} 2>/dev/null")
            chan.shutdown_write()
            chan.status_event.wait(5)
            chan.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass

    # --------------------------------------------------------------------- files

    def write_file(self, path: str, data: bytes) -> None:
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "wb") as handle:
                handle.set_pipelined(True)
                view = memoryview(data)
                for offset in range(0, len(view), SFTP_CHUNK):
                    handle.write(view[offset : offset + SFTP_CHUNK])
        except OSError as exc:
            raise _file_error(exc, self.node, "write", path) from None
        except (paramiko.SSHException, EOFError) as exc:
            self.close()
            raise ChannelError(f"{self.node}: lost the SSH connection at {self._where()} writing {path}: "
                               f"{_plain(exc)}") from None

    def read_file(self, path: str) -> bytes:
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as handle:
                attrs = handle.stat()
                if attrs.st_size and stat.S_ISREG(attrs.st_mode or 0):
                    handle.prefetch(attrs.st_size)  # pipelined reads: one round trip, not one per 32 KiB
                return handle.read()
        except OSError as exc:
            raise _file_error(exc, self.node, "read", path) from None
        except (paramiko.SSHException, EOFError) as exc:
            self.close()
            raise ChannelError(f"{self.node}: lost the SSH connection at {self._where()} reading {path}: "
                               f"{_plain(exc)}") from None


class _Sink:
    """One output stream, kept up to MAX_OUTPUT bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = MAX_OUTPUT - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.parts.append(data)
            self.size += len(data)

    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", errors="replace")


def _take_header(head: bytes) -> tuple[int | None, bytes, bool]:
    """(pid, the stdout bytes after the header line, still waiting for the header?)"""
    newline = head.find(b"\n")
    if newline < 0:
        if len(head) < 64:
            return None, b"", True
        return None, head, False  # not our header (cannot happen with a POSIX shell): keep everything
    first = head[:newline]
    if first.startswith(PID_TAG.encode()) and first[len(PID_TAG):].isdigit():
        return int(first[len(PID_TAG):]), head[newline + 1 :], False
    return None, head, False


def _plain(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _file_error(exc: OSError, node: str, verb: str, path: str) -> OSError:
    """The guest's answer about a file (missing, no permission) as the matching OSError, with the node."""
    why = exc.strerror or _plain(exc)
    if exc.errno:
        return OSError(exc.errno, f"{node}: cannot {verb} {path}: {why}")
    return OSError(f"{node}: cannot {verb} {path}: {why}")


# ---------------------------------------------------------------------- factory


def forget_node(plan: Plan, node_name: str) -> bool:
    """For `lab reset`: forget the node's pinned host key (its new overlay makes a new one at first boot).

    A no-op (False) for nodes the SSH channel cannot reach anyway.
    """
    try:
        address = host_side_address(plan, node_name)
    except ChannelError:
        return False
    return forget_host_key(known_hosts_path(plan.pool_path), str(address))


def ssh_channel_for(plan: Plan, node_name: str, *, connect_timeout: float = 10) -> SSHChannel:
    address = host_side_address(plan, node_name)
    node = next(n for n in plan.nodes if n.name == node_name)
    return SSHChannel(
        str(address),
        netns=plan.host_side.netns,
        key_path=key_path(plan.pool_path),
        node=node_name,
        os_name=node.os,
        connect_timeout=connect_timeout,
        known_hosts=known_hosts_path(plan.pool_path),
    )
