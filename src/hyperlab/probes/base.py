"""One result type for every outside-in probe, and the plumbing they share.

A probe asks one question of a network service ("does RDP answer on this port?") and always
returns a :class:`ProbeResult`; network conditions (refused, silent, reset, wrong protocol, bad
credentials, NXDOMAIN ...) are outcomes, never exceptions. Only programming errors (a bad
argument) raise.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_TIMEOUT = 3.0


class Outcome(StrEnum):
    """What happened, in categories a checker can branch on."""

    OK = "ok"
    REFUSED = "refused"  # TCP RST / ICMP port unreachable: nothing listens, no port mapping
    TIMEOUT = "timeout"  # no answer in time: silently dropped, or a mapping whose backend is mute
    UNREACHABLE = "unreachable"  # no route / host unreachable / rejected by a filter
    RESET = "reset"  # the peer accepted, then closed or reset before answering
    WRONG_PROTOCOL = "wrong-protocol"  # something answered, but not the protocol asked for
    REJECTED = "rejected"  # the right service, but it said no (negotiation failure, SERVFAIL ...)
    AUTH_FAILED = "auth-failed"  # the right service, and it refused the credentials
    NXDOMAIN = "nxdomain"  # DNS: the name does not exist
    NO_ANSWER = "no-answer"  # answered, but without what was asked for (no records/entries/share)
    ERROR = "error"  # a local problem: bad netns, no permission, unresolvable host name ...


# What each outcome means, for a reader of a failure message.
MEANING: dict[Outcome, str] = {
    Outcome.OK: "ok",
    Outcome.REFUSED: "connection refused: nothing listens there (no port mapping)",
    Outcome.TIMEOUT: "no answer in time: a mapping or filter exists, the backend does not answer",
    Outcome.UNREACHABLE: "unreachable: no route to the host, or a filter rejects it",
    Outcome.RESET: "the peer closed the connection without answering",
    Outcome.WRONG_PROTOCOL: "something answers there, but not the expected protocol",
    Outcome.REJECTED: "the service answered, but refused the request",
    Outcome.AUTH_FAILED: "the service refused the credentials",
    Outcome.NXDOMAIN: "the name does not exist",
    Outcome.NO_ANSWER: "the service answered without what was asked for",
    Outcome.ERROR: "the probe could not run",
}


@dataclass(frozen=True, repr=False)
class ProbeResult:
    """The answer of one probe.

    ``kind`` is the probe family ("tcp", "rdp", ...), ``target`` what was probed
    ("127.0.0.1:3389", "_ldap._tcp.dc._msdcs.kosa.vm SRV @127.0.0.10"), ``detail`` one line
    saying what happened, ``observed`` the facts seen (protocol fields, records, shares ...).
    """

    kind: str
    target: str
    outcome: Outcome
    detail: str
    observed: Mapping[str, Any] | None = None
    elapsed: float = 0.0
    netns: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def verdict(self) -> str:
        """One line for a checker's failure message."""
        where = f" (netns {self.netns})" if self.netns else ""
        return (
            f"{self.kind} {self.target}{where}: {self.outcome.name} after "
            f"{self.elapsed:.2f}s: {self.detail}"
        )

    def __bool__(self) -> bool:  # `assert probe(...)` means "assert it is OK"
        return self.ok

    def __str__(self) -> str:
        return self.verdict

    def __repr__(self) -> str:
        return f"ProbeResult({self.verdict!r})"

    def assert_ok(self) -> ProbeResult:
        """Raise AssertionError carrying the verdict unless OK; return self for chaining."""
        __tracebackhide__ = True
        if not self.ok:
            raise AssertionError(self.verdict)
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for evidence files."""
        return {
            "kind": self.kind,
            "target": self.target,
            "ok": self.ok,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "observed": dict(self.observed) if self.observed is not None else None,
            "elapsed": round(self.elapsed, 4),
            "netns": self.netns,
            "verdict": self.verdict,
        }


# What a probe body returns: (outcome, detail, observed).
Answer = tuple[Outcome, str, dict[str, Any] | None]


class Deadline:
    """One time budget for a whole probe; each blocking step gets what is left of it."""

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        self._end = time.monotonic() + timeout

    def left(self, floor: float = 0.05) -> float:
        return max(self._end - time.monotonic(), floor)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, got {port!r}")


def classify_oserror(exc: BaseException, where: str, timeout: float) -> Answer:
    """Map a socket-level exception to an outcome; ``where`` is e.g. '127.0.0.1:3389'."""
    if isinstance(exc, socket.gaierror):
        return Outcome.ERROR, f"cannot resolve the host name in {where}: {exc.strerror}", None
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return (
            Outcome.TIMEOUT,
            f"no answer from {where} within {timeout:g}s: a mapping or filter exists but the "
            "backend does not answer (packets silently dropped)",
            None,
        )
    if isinstance(exc, ConnectionRefusedError):
        return (
            Outcome.REFUSED,
            f"connection refused by {where}: nothing listens there (no port mapping)",
            None,
        )
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return Outcome.RESET, f"{where} reset the connection ({exc.__class__.__name__})", None
    if isinstance(exc, OSError) and exc.errno in (
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    ):
        return Outcome.UNREACHABLE, f"{where} is unreachable: {exc.strerror}", None
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return (
            Outcome.UNREACHABLE,
            f"{where} is blocked by a local filter ({exc.strerror})",
            None,
        )
    return Outcome.ERROR, f"{where}: {exc.__class__.__name__}: {exc}", None


def connect(host: str, port: int, deadline: Deadline) -> socket.socket:
    """TCP connect within the deadline; raises OSError (see classify_oserror)."""
    sock = socket.create_connection((host, port), timeout=deadline.left())
    sock.settimeout(deadline.left())
    return sock


def recv_exact(sock: socket.socket, n: int, deadline: Deadline) -> bytes:
    """Read exactly n bytes, or fewer if the peer closes (the caller checks the length)."""
    buf = b""
    while len(buf) < n:
        sock.settimeout(deadline.left())
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def preview(data: bytes, limit: int = 48) -> str:
    """Show the first bytes a peer sent: text if it is text, hex otherwise."""
    head = data[:limit]
    try:
        text = head.decode("ascii")
        if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
            return repr(text) + ("..." if len(data) > limit else "")
    except UnicodeDecodeError:
        pass
    return head.hex(" ") + (" ..." if len(data) > limit else "")


def run_probe(
    kind: str,
    target: str,
    body: Callable[[Deadline], Answer],
    timeout: float,
    netns: str | None,
) -> ProbeResult:
    """Run a probe body (inside ``netns`` if given) and wrap what it says in a ProbeResult.

    Whatever the body raises is turned into an ERROR result: a probe never raises for what the
    network or a peer does.
    """
    from .netns import NetnsError, run_in_netns  # local import: netns imports nothing from here

    deadline = Deadline(timeout)
    start = time.monotonic()
    try:
        if netns:
            outcome, detail, observed = run_in_netns(
                netns, body, deadline, join_timeout=timeout + 10
            )
        else:
            outcome, detail, observed = body(deadline)
    except NetnsError as exc:
        outcome, detail, observed = Outcome.ERROR, str(exc), None
    except OSError as exc:
        outcome, detail, observed = classify_oserror(exc, target, timeout)
    except Exception as exc:  # a library's surprise: report it, never raise
        outcome, detail, observed = Outcome.ERROR, f"{exc.__class__.__name__}: {exc}", None
    return ProbeResult(
        kind=kind,
        target=target,
        outcome=outcome,
        detail=detail,
        observed=observed,
        elapsed=time.monotonic() - start,
        netns=netns,
    )
