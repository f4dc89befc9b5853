"""WinRM (WS-Management over HTTP, NTLM): PowerShell on Windows nodes for graders without libvirt access.

The socket work runs inside the instance's network namespace, where the lab's addresses are.
Each command gets its own remote shell; a string is a PowerShell script (sent with
-EncodedCommand, so no quoting survives the trip wrong), a list an argv.

Not run against Windows on these machines (none can boot here): the transport, authentication
failures and unreachable listeners are tested against real HTTP servers only.
"""

from __future__ import annotations

import base64
import time
from contextlib import nullcontext
from typing import Any

from hyperlab.core.plan import Plan, PlanNode
from hyperlab.guest.base import OS, ChannelError, RunResult, display, host_side_address
from hyperlab.probes import in_netns

WRITE_CHUNK = 48 << 10  # bytes per PowerShell call: base64 grows it to 64 KiB, well under WinRM's envelope limit
READ_CHUNK = 1 << 20


def encoded(script: str) -> str:
    """PowerShell's -EncodedCommand form: base64 of UTF-16LE."""
    return base64.b64encode(script.encode("utf-16-le")).decode()


def _protocol_errors() -> tuple[type[BaseException], ...]:
    import requests
    from winrm import exceptions

    return (exceptions.WinRMError, exceptions.WinRMTransportError, requests.exceptions.RequestException)


class WinRMChannel:
    name = "winrm"

    def __init__(self, address: str, *, netns: str | None, username: str, password: str, node: str,
                 os_name: OS = "windows", port: int = 5985, connect_timeout: float = 10) -> None:
        self.address = address
        self.netns = netns
        self.username = username
        self.password = password
        self.node = node
        self.os = os_name
        self.port = port
        self.connect_timeout = connect_timeout

    def _protocol(self, timeout: float) -> Any:
        try:
            from winrm.protocol import Protocol
        except ImportError:
            raise ChannelError("the winrm channel needs pywinrm: pip install pywinrm") from None
        operation = max(int(min(timeout, 60)), 5)
        return Protocol(f"http://{self.address}:{self.port}/wsman", transport="ntlm", username=self.username,
                        password=self.password, read_timeout_sec=operation + 10, operation_timeout_sec=operation,
                        message_encryption="auto")

    def run(self, command: str | list[str], *, input: bytes | None = None, timeout: float = 120) -> RunResult:
        if input is not None:
            raise ChannelError("the winrm channel does not send standard input; write a file first")
        from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError

        if isinstance(command, str):
            program, args = "powershell.exe", ["-NoProfile", "-NonInteractive", "-EncodedCommand", encoded(command)]
        else:
            program, args = command[0], command[1:]
        started = time.monotonic()
        try:
            with in_netns(self.netns) if self.netns else nullcontext():
                protocol = self._protocol(timeout)
                shell = protocol.open_shell()
                try:
                    command_id = protocol.run_command(shell, program, args)
                    stdout, stderr, code, done = b"", b"", -1, False
                    while not done:
                        if time.monotonic() - started > timeout:
                            return RunResult(display(command), -1, stdout.decode(errors="replace"),
                                             stderr.decode(errors="replace"), time.monotonic() - started, timed_out=True)
                        try:
                            out, err, code, done = protocol._raw_get_command_output(shell, command_id)
                        except WinRMOperationTimeoutError:
                            continue  # the command is still running: ask again
                        stdout, stderr = stdout + out, stderr + err
                    protocol.cleanup_command(shell, command_id)
                finally:
                    protocol.close_shell(shell)
        except (InvalidCredentialsError, PermissionError) as exc:
            # PermissionError: requests_ntlm's word for a 401 that never got to an NTLM challenge
            raise ChannelError(f"cannot reach {self.node} over WinRM: {self.address}:{self.port} refused the "
                               f"credentials of {self.username} ({str(exc)[:200]})") from None
        except _protocol_errors() as exc:
            raise ChannelError(f"cannot reach {self.node} over WinRM at {self.address}:{self.port}: "
                               f"{type(exc).__name__}: {str(exc)[:300]}") from None
        return RunResult(display(command), code, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                         time.monotonic() - started)

    def write_file(self, path: str, data: bytes) -> None:
        quoted = path.replace("'", "''")
        self._must(self.run(f"[IO.File]::WriteAllBytes('{quoted}', [byte[]]@())", timeout=60))
        for start in range(0, len(data), WRITE_CHUNK):
            chunk = base64.b64encode(data[start:start + WRITE_CHUNK]).decode()
            script = (f"$b = [Convert]::FromBase64String('{chunk}'); $f = [IO.File]::Open('{quoted}', 'Append');"
                      " $f.Write($b, 0, $b.Length); $f.Close()")
            self._must(self.run(script, timeout=60))

    def read_file(self, path: str) -> bytes:
        quoted = path.replace("'", "''")
        size = int(self._must(self.run(f"(Get-Item -LiteralPath '{quoted}').Length", timeout=60)).stdout.strip() or 0)
        parts = []
        for start in range(0, size, READ_CHUNK):
            script = (f"$f = [IO.File]::OpenRead('{quoted}'); $f.Seek({start}, 'Begin') | Out-Null;"
                      f" $b = New-Object byte[] {min(READ_CHUNK, size - start)}; $n = $f.Read($b, 0, $b.Length); $f.Close();"
                      " [Convert]::ToBase64String($b, 0, $n)")
            parts.append(base64.b64decode(self._must(self.run(script, timeout=120)).stdout.strip()))
        return b"".join(parts)

    def _must(self, result: RunResult) -> RunResult:
        if not result.ok:
            raise OSError(f"{self.node}: {result.summary()}")
        return result

    def close(self) -> None:
        pass


def winrm_channel_for(plan: Plan, node: PlanNode, password: str) -> WinRMChannel:
    """WinRM as the lab's Administrator (the unattend medium sets its password to the instance's
    domain-admin secret), at the node's address reachable from the instance's namespace."""
    return WinRMChannel(str(host_side_address(plan, node.name)), netns=plan.host_side.netns, username="Administrator",
                        password=password, node=node.name, os_name=node.os)
