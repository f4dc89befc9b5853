"""TCP connect: open, refused ("no port mapping"), timed out ("mapping exists, backend mute"),
unreachable."""

from __future__ import annotations

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


def tcp_connect(
    host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT, netns: str | None = None
) -> ProbeResult:
    """Try one TCP connection to ``host:port`` and close it at once.

    OK: the handshake completed (observed: local and peer addresses).
    REFUSED: RST came back: nothing listens there, or no port mapping exists.
    TIMEOUT: no answer at all: a filter drops the SYN, or a mapping exists whose backend is down.
    UNREACHABLE: no route / ICMP unreachable / rejected by a filter.
    """
    check_port(port)
    where = hostport(host, port)

    def body(deadline: Deadline) -> Answer:
        sock = connect(host, port, deadline)
        with sock:
            local, peer = sock.getsockname(), sock.getpeername()
        return (
            Outcome.OK,
            f"connected to {where}: something listens there",
            {"local": hostport(*local[:2]), "peer": hostport(*peer[:2])},
        )

    return run_probe("tcp", where, body, timeout, netns)
