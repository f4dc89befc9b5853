"""qemu-guest-agent through libvirt: needs no guest network and no credentials a student can change.

Commands run with `guest-exec` and are polled with `guest-exec-status`; files move with
`guest-file-*` in chunks. libvirt refuses an agent reply larger than 10 MiB and then treats that
domain's agent as broken until it reconnects, so output never travels in one reply: a command's
stdout and stderr go to files in the guest that are read back in 1 MiB chunks. On Linux `sh`
redirects them; on Windows the command runs inside a PowerShell wrapper (passed encoded, so no
quoting can break it) that redirects its output streams to UTF-8 files. The agent's own capture,
which broke the agent for good beyond about 7 MiB, is never used.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import libvirt
import libvirt_qemu

from hyperlab.core.plan import PlanNode
from hyperlab.guest.base import OS, ChannelError, RunResult, Shell, display
from hyperlab.host.conn import lookup_domain

READ_CHUNK = 1 << 20  # guest-file-read replies: 1.4 MiB of JSON, far below libvirt's 10 MiB reply cap
# Requests to the guest are another matter: a 64 KiB guest-file-write took 0.03 s under TCG, a 256 KiB
# one never got an answer and left the agent unresponsive. So writes go in 64 KiB pieces.
WRITE_CHUNK = 64 << 10
MAX_OUTPUT = 256 << 20  # per stream; beyond this the result says truncated
AGENT_ERRORS = {
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE: "its guest agent does not answer (still booting, or qemu-guest-agent stopped)",
    libvirt.VIR_ERR_OPERATION_INVALID: "it is not running",
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED: "its guest agent refused the command",
}


class AgentCommandError(Exception):
    """The agent answered, but the command failed in the guest (e.g. a file that does not exist)."""


class AgentChannel:
    name = "agent"

    def __init__(self, domain: libvirt.virDomain, node: str, os_name: OS) -> None:
        self.domain = domain
        self.node = node
        self.os = os_name
        self.shell = Shell.for_os(os_name)

    # ------------------------------------------------------------------ protocol

    def command(self, execute: str, arguments: dict[str, Any] | None = None, timeout: int = 10) -> Any:
        payload: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            payload["arguments"] = arguments
        try:
            reply = libvirt_qemu.qemuAgentCommand(self.domain, json.dumps(payload), timeout, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_INTERNAL_ERROR and "agent command" in exc.get_error_message():
                raise AgentCommandError(f"{self.node}: {execute} failed: {exc.get_error_message()}") from None
            why = AGENT_ERRORS.get(exc.get_error_code(), exc.get_error_message())
            raise ChannelError(f"cannot reach {self.node} through the guest agent: {why}") from None
        if reply is None:
            raise ChannelError(f"cannot reach {self.node} through the guest agent: empty reply to {execute}")
        return json.loads(reply).get("return")

    def ping(self, timeout: int = 2) -> bool:
        try:
            self.command("guest-ping", timeout=timeout)
            return True
        except ChannelError:
            return False

    # ------------------------------------------------------------------ commands

    def run(self, command: str | list[str], *, input: bytes | None = None, timeout: float = 120) -> RunResult:
        token = secrets.token_hex(8)
        if self.os == "windows":
            spool = f"C:\\Windows\\Temp\\hyperlab-exec-{token}"
            argv = windows_spooled(command, spool)
        else:
            # `exec` keeps the agent's pid the command's own, so a timeout kills the command itself.
            spool = f"/run/hyperlab-exec-{token}"
            argv = ["/bin/sh", "-c", f'exec "$@" >{spool}.out 2>{spool}.err', "hyperlab-exec", *self.shell.wrap(command)]
        arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": False}
        if input is not None:
            arguments["input-data"] = base64.b64encode(input).decode()
        start = time.monotonic()
        pid = self.command("guest-exec", arguments)["pid"]
        delay = 0.05
        timed_out = False
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() - start > timeout:
                self._kill(pid)
                timed_out = True
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        (stdout, cut_out), (stderr, cut_err) = self._take(f"{spool}.out"), self._take(f"{spool}.err")
        truncated = cut_out or cut_err
        return RunResult(
            command=display(command),
            exit_code=-1 if timed_out else status.get("exitcode", -status.get("signal", 1)),
            stdout=stdout,
            stderr=stderr,
            duration=time.monotonic() - start,
            timed_out=timed_out,
            truncated=truncated,
        )

    def _take(self, path: str) -> tuple[str, bool]:
        """Read a spooled output file (at most MAX_OUTPUT bytes) and remove it."""
        try:
            data = self.read_file(path, limit=MAX_OUTPUT + 1)
        except AgentCommandError:
            return "", False  # the shell could not even create it: nothing was printed
        if self.os == "windows":
            self.command("guest-exec", {"path": "cmd.exe", "arg": ["/d", "/c", "del", "/f", "/q", path]})
        else:
            self.command("guest-exec", {"path": "/bin/rm", "arg": ["-f", path]})
        encoding = "utf-8-sig" if self.os == "windows" else "utf-8"  # a BOM there is the writer's, not the output's
        return data[:MAX_OUTPUT].decode(encoding, errors="replace"), len(data) > MAX_OUTPUT

    def _kill(self, pid: int) -> None:
        argv = ["taskkill", "/F", "/T", "/PID", str(pid)] if self.os == "windows" else ["/bin/kill", "-9", str(pid)]
        try:
            self.command("guest-exec", {"path": argv[0], "arg": argv[1:]})
        except ChannelError:
            pass  # the guest is gone or hung: the caller already reports the timeout

    # --------------------------------------------------------------------- files

    def write_file(self, path: str, data: bytes) -> None:
        handle = self.command("guest-file-open", {"path": path, "mode": "wb"})
        try:
            for offset in range(0, max(len(data), 1), WRITE_CHUNK):
                chunk = data[offset : offset + WRITE_CHUNK]
                self.command("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(chunk).decode()})
        finally:
            self.command("guest-file-close", {"handle": handle})

    def read_file(self, path: str, limit: int | None = None) -> bytes:
        handle = self.command("guest-file-open", {"path": path, "mode": "rb"})
        parts = []
        size = 0
        try:
            while limit is None or size < limit:
                reply = self.command("guest-file-read", {"handle": handle, "count": READ_CHUNK})
                parts.append(base64.b64decode(reply.get("buf-b64", "")))
                size += len(parts[-1])
                if reply.get("eof") or not reply.get("count"):
                    break
        finally:
            self.command("guest-file-close", {"handle": handle})
        return b"".join(parts)

    def close(self) -> None:
        """Nothing to close: every call goes through libvirt's connection."""


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def windows_spooled(command: str | list[str], spool: str) -> list[str]:
    """PowerShell that runs `command` with its output in `spool`.out and `spool`.err (UTF-8), and
    exits as `powershell -Command` would: `exit N` gives N, else 0 or 1 from the last statement.

    A script runs as written; an argv runs its program (an application, never an alias or a
    cmdlet of the same name). Every stream is taken (`*>&1`): error records go to .err, all the
    rest through one `Out-String -Stream` (tables stay tables) to .out, each file written by one
    writer that a `finally` closes, also after `exit`. Passed as -EncodedCommand (UTF-16LE, base64):
    the script travels through no quoting at all.
    """
    if isinstance(command, str):
        script = command
    else:
        script = (f"& (Get-Command -CommandType Application -Name {_ps_quote(command[0])} -ErrorAction Stop | "
                  "Select-Object -First 1) " + " ".join(_ps_quote(a) for a in command[1:]))
    wrapper = "\n".join([
        "$ProgressPreference = 'SilentlyContinue'",
        f"$hlOut = {_ps_quote(spool + '.out')}; $hlErr = {_ps_quote(spool + '.err')}",
        "$hlUtf8 = New-Object System.Text.UTF8Encoding $false",
        "$hlOutW = New-Object System.IO.StreamWriter($hlOut, $false, $hlUtf8)",
        "$hlErrW = New-Object System.IO.StreamWriter($hlErr, $false, $hlUtf8)",
        "$global:hlLast = $true",
        "$hlCode = 1",
        "try {",
        "    $input | & {",
        script,
        "$global:hlLast = $?",
        "} *>&1 | ForEach-Object {",
        "        if ($_ -is [System.Management.Automation.ErrorRecord]) { $hlErrW.WriteLine([string]$_) } else { $_ }",
        "    } | Out-String -Stream | ForEach-Object { $hlOutW.WriteLine($_) }",
        "    $hlCode = if ($global:hlLast) { 0 } else { 1 }",
        "} catch {",
        "    $hlErrW.WriteLine([string]$_)",
        "} finally {",
        "    $hlOutW.Close(); $hlErrW.Close()",
        "}",
        "exit $hlCode",
    ])
    encoded = base64.b64encode(wrapper.encode("utf-16-le")).decode()
    return ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded]


def agent_channel(conn: libvirt.virConnect, node: PlanNode) -> AgentChannel:
    """The agent channel of a deployed node; ChannelError when its domain does not exist."""
    domain = lookup_domain(conn, node.domain)
    if domain is None:
        raise ChannelError(f"{node.name} is not deployed (no domain {node.domain}); run `lab up`")
    return AgentChannel(domain, node.name, node.os)
