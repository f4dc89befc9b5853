"""WinRM liveness: an unauthenticated POST to /wsman must be answered 401 with
``WWW-Authenticate: Negotiate`` (and/or Kerberos, NTLM), as Windows' WinRM listener does."""

from __future__ import annotations

import http.client
import ssl

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

WINRM_SCHEMES = ("Negotiate", "Kerberos", "NTLM")


def _schemes(values: list[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        # "Negotiate, Kerberos" and "Negotiate abc==" both occur; keep the scheme tokens
        for part in value.split(","):
            token = part.strip().split(" ", 1)[0]
            if token and "=" not in token and token not in found:
                found.append(token)
    return found


def winrm_alive(
    host: str,
    port: int | None = None,
    *,
    https: bool = False,
    path: str = "/wsman",
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """POST an empty SOAP request to ``path`` on 5985 (5986 with ``https``).

    OK: 401 offering Negotiate, Kerberos or NTLM (observed: status, schemes, server).
    REJECTED: 401 offering only other schemes (e.g. Basic). WRONG_PROTOCOL: another HTTP status
    (an HTTP server, not WinRM) or not HTTP at all.
    """
    port = port or (5986 if https else 5985)
    check_port(port)
    where = hostport(host, port)
    url = f"{'https' if https else 'http'}://{where}{path}"

    def body(deadline: Deadline) -> Answer:
        connect(host, port, deadline).close()  # exact refused / timeout / unreachable
        if https:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=deadline.left(), context=ctx
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=deadline.left())
        try:
            conn.request(
                "POST",
                path,
                body=b"",
                headers={
                    "Content-Type": "application/soap+xml;charset=UTF-8",
                    "User-Agent": "hyperlab-probe",
                },
            )
            response = conn.getresponse()
            response.read(4096)
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                return (
                    Outcome.TIMEOUT,
                    f"TCP connected to {where}, but no HTTP answer within {deadline.timeout:g}s",
                    None,
                )
            if isinstance(exc, ssl.SSLError):
                return Outcome.WRONG_PROTOCOL, f"TLS handshake with {where} failed: {exc}", None
            raise
        except http.client.RemoteDisconnected:
            return Outcome.RESET, f"{where} closed the connection without an HTTP answer", None
        except http.client.HTTPException as exc:
            return (
                Outcome.WRONG_PROTOCOL,
                f"not HTTP: {where} answered {exc.__class__.__name__}: {str(exc)[:80]!r}",
                None,
            )
        finally:
            conn.close()
        schemes = _schemes(response.headers.get_all("WWW-Authenticate") or [])
        observed = {
            "url": url,
            "status": response.status,
            "reason": response.reason,
            "schemes": schemes,
            "server": response.headers.get("Server"),
        }
        offered = ", ".join(schemes) or "none"
        if response.status == 401:
            usable = [s for s in schemes if s in WINRM_SCHEMES]
            if usable:
                return (
                    Outcome.OK,
                    f"WinRM answers at {url}: 401 offering {offered}",
                    observed,
                )
            return (
                Outcome.REJECTED,
                f"{url} answered 401 but offers {offered}, not Negotiate/Kerberos/NTLM",
                observed,
            )
        return (
            Outcome.WRONG_PROTOCOL,
            f"{url} answered {response.status} {response.reason}: an HTTP server, but not WinRM "
            "(expected 401 with WWW-Authenticate: Negotiate)",
            observed,
        )

    return run_probe("winrm", where, body, timeout, netns)
