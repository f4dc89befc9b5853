"""The agent channel's Windows path at the protocol level: a fake guest agent stands in for
qemu-guest-agent (no Windows here), so this proves what hyperlab sends and how it reads the
answers, not what PowerShell does with the wrapper (that is listed as not run against Windows).

What it must hold: output never comes back in an agent reply (libvirt marks an agent broken
for good past about 7-10 MiB of reply); it is spooled to files in the guest, read back in
chunks and removed; the user's script reaches PowerShell unquoted and whole.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from hyperlab.guest import agent
from hyperlab.guest.agent import READ_CHUNK, AgentChannel


class FakeWindowsAgent:
    """guest-exec / guest-exec-status / guest-file-* over a dict of files; "runs" PowerShell by
    writing the outputs the test asks for into the spool files the wrapper names."""

    def __init__(self, stdout: bytes, stderr: bytes, code: int) -> None:
        self.files: dict[str, bytes] = {}
        self.handles: dict[int, list[Any]] = {}
        self.execs: list[dict[str, Any]] = []
        self.replies: list[int] = []
        self.result = (stdout, stderr, code)
        self.scripts: list[str] = []

    def __call__(self, _domain: object, payload: str, _timeout: int, _flags: int) -> str:
        request = json.loads(payload)
        args = request.get("arguments", {})
        reply = getattr(self, request["execute"].replace("-", "_"))(args)
        text = json.dumps({"return": reply})
        self.replies.append(len(text))
        return text

    def guest_exec(self, args: dict[str, Any]) -> dict[str, int]:
        self.execs.append(args)
        assert args.get("capture-output") is not True, "output must never travel in the agent's reply"
        if args["path"] == "cmd.exe":  # del /f /q PATH
            self.files.pop(args["arg"][-1], None)
            return {"pid": 2}
        assert args["path"] == "powershell.exe" and args["arg"][-2] == "-EncodedCommand"
        wrapper = base64.b64decode(args["arg"][-1]).decode("utf-16-le")
        self.scripts.append(wrapper)
        out = re.search(r"\$hlOut = '([^']+)'", wrapper).group(1)  # type: ignore[union-attr]
        err = re.search(r"\$hlErr = '([^']+)'", wrapper).group(1)  # type: ignore[union-attr]
        self.files[out], self.files[err] = self.result[0], self.result[1]
        return {"pid": 1}

    def guest_exec_status(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"exited": True, "exitcode": self.result[2]}

    def guest_file_open(self, args: dict[str, Any]) -> int:
        if args["path"] not in self.files:
            raise AssertionError(f"no file {args['path']}")
        handle = len(self.handles) + 10
        self.handles[handle] = [args["path"], 0]
        return handle

    def guest_file_read(self, args: dict[str, Any]) -> dict[str, Any]:
        path, at = self.handles[args["handle"]]
        chunk = self.files[path][at: at + min(args["count"], READ_CHUNK)]
        self.handles[args["handle"]][1] = at + len(chunk)
        return {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(), "eof": at + len(chunk) >= len(self.files[path])}

    def guest_file_close(self, args: dict[str, Any]) -> None:
        self.handles.pop(args["handle"])


def channel(monkeypatch: pytest.MonkeyPatch, fake: FakeWindowsAgent) -> AgentChannel:
    monkeypatch.setattr(agent.libvirt_qemu, "qemuAgentCommand", fake)
    return AgentChannel(object(), "DC1", "windows")  # type: ignore[arg-type]


def test_output_is_spooled_to_files_read_in_chunks_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    big = ("0123456789abcdef" * (1 << 20)).encode()  # 16 MiB: more than one agent reply may carry
    fake = FakeWindowsAgent(big, "Get-VM : not found\n".encode(), 3)
    result = channel(monkeypatch, fake).run("Get-VM | ConvertTo-Json")
    assert (result.exit_code, result.stdout.encode() == big, result.stderr) == (3, True, "Get-VM : not found\n")
    assert not result.truncated and fake.files == {}, "both spool files are removed"
    assert max(fake.replies) < 2 * READ_CHUNK, "no reply carries more than a chunk"


def test_the_script_reaches_powershell_whole_whatever_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    script = "$x = 'it''s'; Write-Output \"a `\"quoted`\" $x\" # 100% & | < > ^\n'next line' | Out-Host"
    fake = FakeWindowsAgent("é\n".encode(), b"", 0)
    result = channel(monkeypatch, fake).run(script)
    assert result.stdout == "é\n" and result.exit_code == 0
    [wrapper] = fake.scripts
    assert "$input | & {\n" + script + "\n$global:hlLast = $?\n} *>&1" in wrapper
    assert "C:\\Windows\\Temp\\hyperlab-exec-" in wrapper and wrapper.rstrip().endswith("exit $hlCode")


def test_an_argv_is_run_with_each_argument_quoted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWindowsAgent(b"ok\n", b"", 0)
    channel(monkeypatch, fake).run(["C:\\Program Files\\x.exe", "it's", "$env:PATH"])
    assert ("& (Get-Command -CommandType Application -Name 'C:\\Program Files\\x.exe' -ErrorAction Stop | Select-Object -First 1)"
            " 'it''s' '$env:PATH'") in fake.scripts[0]
