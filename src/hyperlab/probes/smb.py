"""SMB share listing with credentials (pysmb: pure Python, SMB2 with signing and NTLMv2, which
a Samba AD DC and Windows Server require; its own MD4, so it works on OpenSSL 3)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .base import (
    DEFAULT_TIMEOUT,
    Answer,
    Deadline,
    Outcome,
    ProbeResult,
    check_port,
    connect,
    hostport,
    run_probe,
)

try:
    from smb.base import NotConnectedError, NotReadyError, SMBTimeout
    from smb.smb_structs import OperationFailure, ProtocolError
    from smb.SMBConnection import SMBConnection
except ImportError:  # pragma: no cover - exercised only without the dependency
    SMBConnection = None  # type: ignore[assignment,misc]

INSTALL_HINT = "the SMB probe needs pysmb: pip install 'pysmb>=1.2.9'"
SHARE_TYPES = {0: "disk", 1: "printer", 2: "device", 3: "ipc"}


def smb_shares(
    host: str,
    user: str,
    password: str,
    *,
    domain: str = "",
    expect: str | Iterable[str] | None = None,
    port: int = 445,
    client_name: str = "HYPERLAB-PROBE",
    server_name: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """Log on to ``host`` (direct TCP 445) as ``domain\\user`` and list its shares.

    OK: observed["shares"] = [{name, type, comment, special}]; if ``expect`` names shares,
    they must all be listed (else NO_ANSWER naming the missing ones; names compare
    case-insensitively). AUTH_FAILED: the logon was refused.
    """
    check_port(port)
    wanted = [expect] if isinstance(expect, str) else list(expect or [])
    where = hostport(host, port)
    account = f"{domain}\\{user}" if domain else user

    def body(deadline: Deadline) -> Answer:
        if SMBConnection is None:
            return Outcome.ERROR, INSTALL_HINT, None
        connect(host, port, deadline).close()  # exact refused / timeout / unreachable
        conn = SMBConnection(
            user,
            password,
            client_name,
            server_name or host,
            domain=domain,
            use_ntlm_v2=True,
            is_direct_tcp=True,
        )
        try:
            try:
                logged_on = conn.connect(host, port, timeout=deadline.left())
            except (SMBTimeout, TimeoutError):
                return (
                    Outcome.TIMEOUT,
                    f"TCP connected to {where}, but no SMB negotiation/logon answer within "
                    f"{deadline.timeout:g}s (not SMB, or a mute backend)",
                    None,
                )
            except (ProtocolError, NotReadyError, NotConnectedError) as exc:
                return (
                    Outcome.WRONG_PROTOCOL,
                    f"{where} did not speak SMB: {exc.__class__.__name__}: {exc}",
                    None,
                )
            if not logged_on:
                return (
                    Outcome.AUTH_FAILED,
                    f"{where} refused the logon of {account} (wrong user, password or domain)",
                    {"user": account},
                )
            try:
                devices = conn.listShares(timeout=deadline.left())
            except (SMBTimeout, TimeoutError):
                return (
                    Outcome.TIMEOUT,
                    f"logged on to {where} as {account}, but the share list did not come within "
                    f"{deadline.timeout:g}s",
                    None,
                )
            except OperationFailure as exc:
                return (
                    Outcome.REJECTED,
                    f"logged on to {where} as {account}, but listing shares failed: {exc}",
                    None,
                )
        finally:
            conn.close()
        shares: list[dict[str, Any]] = [
            {
                "name": d.name,
                "type": SHARE_TYPES.get(d.type, str(d.type)),
                "comment": d.comments,
                "special": d.isSpecial,
            }
            for d in devices
        ]
        names = [s["name"] for s in shares]
        observed = {"user": account, "shares": shares, "names": names}
        listed = ", ".join(names) or "(none)"
        missing = [w for w in wanted if w.lower() not in {n.lower() for n in names}]
        if missing:
            return (
                Outcome.NO_ANSWER,
                f"{where} lists {listed}; missing {', '.join(missing)}",
                observed,
            )
        return Outcome.OK, f"{where} shares as {account}: {listed}", observed

    # pysmb logs every failed logon at ERROR level; the result already says it.
    logging.getLogger("SMB.SMBConnection").setLevel(logging.CRITICAL)
    return run_probe("smb", where, body, timeout, netns)
