"""qemu-guest-agent through libvirt: needs no guest network and no credentials a student can change.

Commands run with `guest-exec` and are polled with `guest-exec-status`; files move with
`guest-file-*` in chunks. The agent keeps at most 16 MiB of a command's output: beyond that the
result says `truncated`, and large data should go through files.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import libvirt
import libvirt_qemu

from hyperlab.guest.base import OS, ChannelError, RunResult, Shell, display

CHUNK = 1 << 20  # guest-file-read/-write payloads; well below the agent's 48 MiB message limit
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
        argv = self.shell.wrap(command)
        arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if input is not None:
            arguments["input-data"] = base64.b64encode(input).decode()
        start = time.monotonic()
        pid = self.command("guest-exec", arguments)["pid"]
        delay = 0.05
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() - start > timeout:
                self._kill(pid)
                return RunResult(display(command), -1, "", "", time.monotonic() - start, timed_out=True)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return RunResult(
            command=display(command),
            exit_code=status.get("exitcode", -status.get("signal", 1)),
            stdout=_decode(status.get("out-data")),
            stderr=_decode(status.get("err-data")),
            duration=time.monotonic() - start,
            truncated=bool(status.get("out-truncated") or status.get("err-truncated")),
        )

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
            for offset in range(0, max(len(data), 1), CHUNK):
                chunk = data[offset : offset + CHUNK]
                self.command("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(chunk).decode()})
        finally:
            self.command("guest-file-close", {"handle": handle})

    def read_file(self, path: str) -> bytes:
        handle = self.command("guest-file-open", {"path": path, "mode": "rb"})
        parts = []
        try:
            while True:
                reply = self.command("guest-file-read", {"handle": handle, "count": CHUNK})
                parts.append(base64.b64decode(reply.get("buf-b64", "")))
                if reply.get("eof") or not reply.get("count"):
                    break
        finally:
            self.command("guest-file-close", {"handle": handle})
        return b"".join(parts)

    def close(self) -> None:
        """Nothing to close: every call goes through libvirt's connection."""


def _decode(data: str | None) -> str:
    return base64.b64decode(data).decode("utf-8", errors="replace") if data else ""
