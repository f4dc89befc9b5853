"""Telnet: read the server's IAC option negotiation (RFC 854/855), refuse every option (the
minimal valid answer: WONT to DO, DONT to WILL), and report the options seen and the banner /
login prompt."""

from __future__ import annotations

import re
import socket

from .base import (
    DEFAULT_TIMEOUT,
    Answer,
    Deadline,
    Outcome,
    ProbeResult,
    check_port,
    connect,
    hostport,
    preview,
    run_probe,
)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
VERBS = {DO: "DO", DONT: "DONT", WILL: "WILL", WONT: "WONT"}
OPTIONS = {
    0: "BINARY",
    1: "ECHO",
    3: "SUPPRESS-GO-AHEAD",
    5: "STATUS",
    6: "TIMING-MARK",
    24: "TERMINAL-TYPE",
    31: "NAWS",
    32: "TERMINAL-SPEED",
    33: "REMOTE-FLOW-CONTROL",
    34: "LINEMODE",
    35: "X-DISPLAY-LOCATION",
    36: "OLD-ENVIRON",
    37: "AUTHENTICATION",
    38: "ENCRYPT",
    39: "NEW-ENVIRON",
}

PROMPT = re.compile(r"(login|user ?name|password)\s*:\s*$", re.IGNORECASE)


def option_name(code: int) -> str:
    return OPTIONS.get(code, str(code))


class Negotiator:
    """Feed it bytes; it splits IAC commands from text and queues the refusals to send."""

    def __init__(self) -> None:
        self.seen: list[dict[str, object]] = []
        self.text = bytearray()
        self.replies = bytearray()
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        buf = self._pending + data
        self._pending = bytearray()
        i = 0
        while i < len(buf):
            b = buf[i]
            if b != IAC:
                self.text.append(b)
                i += 1
                continue
            if i + 1 >= len(buf):
                self._pending = buf[i:]
                return
            cmd = buf[i + 1]
            if cmd == IAC:  # escaped 0xff data byte
                self.text.append(IAC)
                i += 2
            elif cmd in VERBS:
                if i + 2 >= len(buf):
                    self._pending = buf[i:]
                    return
                opt = buf[i + 2]
                self.seen.append({"verb": VERBS[cmd], "option": option_name(opt), "code": opt})
                if cmd == DO:
                    self.replies += bytes([IAC, WONT, opt])
                elif cmd == WILL:
                    self.replies += bytes([IAC, DONT, opt])
                i += 3
            elif cmd == SB:
                end = buf.find(bytes([IAC, SE]), i + 2)
                if end < 0:
                    self._pending = buf[i:]
                    return
                opt = buf[i + 2] if i + 2 < end else -1
                self.seen.append({"verb": "SB", "option": option_name(opt), "code": opt})
                i = end + 2
            else:  # NOP, GA, AYT ...: two-byte commands
                i += 2

    def take_replies(self) -> bytes:
        out, self.replies = bytes(self.replies), bytearray()
        return out

    def screen(self) -> str:
        return self.text.decode("utf-8", "replace").replace("\r", "").replace("\x00", "")


def exchange(sock: socket.socket, neg: Negotiator, deadline: Deadline) -> str:
    """One read from the server: fed to the negotiator, its refusals sent back.
    Returns "data", "timeout" (nothing before the deadline) or "closed" (EOF or reset)."""
    sock.settimeout(deadline.left())
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return "timeout"
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    if not data:
        return "closed"
    neg.feed(data)
    replies = neg.take_replies()
    if replies:
        sock.sendall(replies)
    return "data"


def telnet_negotiate(
    host: str,
    port: int = 23,
    *,
    require_prompt: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """Connect, take part in the option negotiation, and read until a login prompt.

    OK: the server negotiated telnet options (observed: options, replies, banner, prompt);
    with ``require_prompt`` a login/password prompt must also have appeared.
    WRONG_PROTOCOL: the server sent data without any IAC negotiation (observed: banner).
    TIMEOUT: nothing (or no prompt, with ``require_prompt``) within the timeout.
    """
    check_port(port)
    where = hostport(host, port)

    def body(deadline: Deadline) -> Answer:
        neg = Negotiator()
        closed = False
        with connect(host, port, deadline) as sock:
            while not deadline.expired:
                got = exchange(sock, neg, deadline)
                if got != "data":
                    closed = got == "closed"
                    break
                if neg.seen and PROMPT.search(neg.screen()):
                    break
                if not neg.seen and len(neg.text) >= 16:  # text first: not a telnet server
                    break
        screen = neg.screen()
        lines = [line for line in screen.split("\n") if line.strip()]
        prompt = lines[-1].strip() if lines and PROMPT.search(screen) else None
        observed = {
            "options": neg.seen,
            "banner": screen.strip(),
            "prompt": prompt,
        }
        if not neg.seen:
            if neg.text:
                return (
                    Outcome.WRONG_PROTOCOL,
                    f"not telnet: {where} sent text without any IAC negotiation: "
                    f"{preview(bytes(neg.text))}",
                    observed,
                )
            if closed:
                return (
                    Outcome.RESET,
                    f"{where} closed the connection without sending anything",
                    observed,
                )
            return (
                Outcome.TIMEOUT,
                f"TCP connected to {where}, but it sent nothing within {deadline.timeout:g}s "
                "(a telnet server negotiates options at once)",
                observed,
            )
        unique = list(dict.fromkeys(f"{o['verb']} {o['option']}" for o in neg.seen))
        options = ", ".join(unique[:6]) + (
            f" and {len(unique) - 6} more" if len(unique) > 6 else ""
        )
        if prompt:
            return Outcome.OK, f"telnet server negotiated {options}; prompt {prompt!r}", observed
        if require_prompt:
            why = "closed the connection" if closed else f"none within {deadline.timeout:g}s"
            return (
                Outcome.TIMEOUT,
                f"telnet server negotiated {options}, but showed no login prompt ({why})",
                observed,
            )
        return Outcome.OK, f"telnet server negotiated {options} (no login prompt seen)", observed

    return run_probe("telnet", where, body, timeout, netns)


# A command both shells turn into a line the typed text cannot contain: sh expands $((6*7)) and
# leaves %OS% alone; Windows cmd expands %OS% and leaves $((6*7)) alone.
LOGIN_COMMAND = b"echo hl-%OS%-$((6*7))\r\n"
LOGGED_IN = re.compile(r"hl-(%OS%-42|Windows_NT-)")
USER_PROMPT = re.compile(r"(login|user ?name)\s*:\s*$", re.IGNORECASE)
PASSWORD_PROMPT = re.compile(r"password\s*:\s*$", re.IGNORECASE)
REFUSED_LOGIN = re.compile(r"(login incorrect|access denied|logon failure|not a member of|authentication failed)[^\n]*",
                           re.IGNORECASE)


def telnet_login(
    host: str,
    port: int = 23,
    user: str = "",
    password: str = "",
    *,
    timeout: float = 20.0,
    netns: str | None = None,
) -> ProbeResult:
    """Log in as `user` and run one command: proof that this account may use Telnet (on Windows,
    that it is a member of TelnetClients), not only that a Telnet server answers.

    OK: the command's output came back from a shell (observed: the output line).
    AUTH_FAILED: the server refused the login (observed: its message, e.g. Windows' "Access Denied:
    Specified user is not a member of TelnetClients group", or Linux's "Login incorrect").
    TIMEOUT / RESET / WRONG_PROTOCOL: as telnet_negotiate, or no prompt where one was due.
    """
    check_port(port)
    where = hostport(host, port)

    def body(deadline: Deadline) -> Answer:
        neg = Negotiator()
        observed: dict[str, object] = {"user": user}
        with connect(host, port, deadline) as sock:
            mark = 0

            def until(pattern: re.Pattern[str], *stops: re.Pattern[str]) -> tuple[str, re.Pattern[str] | None]:
                """Read until `pattern` or a stop pattern shows in the text since `mark`."""
                while not deadline.expired:
                    text = neg.screen()[mark:]
                    for p in (pattern, *stops):
                        if p.search(text):
                            return text, p
                    got = exchange(sock, neg, deadline)
                    if got == "closed":
                        return neg.screen()[mark:], None
                    if got == "timeout":
                        break
                return neg.screen()[mark:], None

            text, hit = until(USER_PROMPT)
            if hit is None:
                observed["banner"] = text.strip()
                if not neg.seen:
                    return Outcome.WRONG_PROTOCOL if text else Outcome.TIMEOUT, \
                        f"{where} showed no telnet login prompt", observed
                return Outcome.TIMEOUT, f"telnet server at {where} showed no login prompt", observed
            mark = len(neg.screen())
            sock.sendall(user.encode() + b"\r\n")
            text, hit = until(PASSWORD_PROMPT, REFUSED_LOGIN)
            if hit is not PASSWORD_PROMPT:
                observed["after_user"] = text.strip()
                return Outcome.TIMEOUT, f"telnet server at {where} asked no password after the user name", observed
            mark = len(neg.screen())
            sock.sendall(password.encode() + b"\r\n")
            # the shell's prompt, a refusal, or the login prompt again; then the command
            text, hit = until(re.compile(r"[$#>]\s*$"), REFUSED_LOGIN, USER_PROMPT)
            if hit is REFUSED_LOGIN or hit is USER_PROMPT:
                found = REFUSED_LOGIN.search(text)
                message = found.group(0).strip() if found else "the login prompt came back"
                observed["refusal"] = message
                return Outcome.AUTH_FAILED, f"telnet at {where} refused {user!r}: {message}", observed
            mark = len(neg.screen())
            sock.sendall(LOGIN_COMMAND)
            text, hit = until(LOGGED_IN, REFUSED_LOGIN)
            found = LOGGED_IN.search(text)
            if found:
                observed["output"] = found.group(0)
                return Outcome.OK, f"logged in to telnet at {where} as {user!r}; a shell answered {found.group(0)!r}", observed
            observed["after_password"] = text.strip()[-300:]
            refused = REFUSED_LOGIN.search(text)
            if refused:
                return Outcome.AUTH_FAILED, f"telnet at {where} refused {user!r}: {refused.group(0).strip()}", observed
            return Outcome.TIMEOUT, f"telnet at {where}: no shell answered after {user!r} logged in", observed

    return run_probe("telnet", where, body, timeout, netns)
