"""LDAP (ldap3): anonymous rootDSE read and an authenticated search.

``tls``: "none" (plain 389), "starttls" (389 + StartTLS) or "ldaps" (636). Certificates are not
verified: lab DCs use self-signed ones, and the probe asks "is the directory there and does it
answer", not "is it trustworthy".

``authentication``: "simple" (a DN, UPN ``user@realm`` or ``DOMAIN\\user``; a Samba AD DC and a
hardened Windows DC refuse it without TLS: REJECTED strongerAuthRequired) or "ntlm" (Microsoft's
Sicily NTLM bind, which Windows DCs accept on plain 389; Samba does not implement it).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import ssl
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
    import ldap3
    from ldap3.core import exceptions as ldap_exc
except ImportError:  # pragma: no cover - exercised only without the dependency
    ldap3 = None  # type: ignore[assignment]

INSTALL_HINT = "the LDAP probe needs ldap3: pip install 'ldap3>=2.9'"

ROOTDSE_ATTRIBUTES = (
    "defaultNamingContext",
    "rootDomainNamingContext",
    "configurationNamingContext",
    "schemaNamingContext",
    "namingContexts",
    "dnsHostName",
    "serverName",
    "ldapServiceName",
    "supportedLDAPVersion",
    "supportedSASLMechanisms",
    "supportedControl",
    "supportedCapabilities",
    "domainFunctionality",
    "forestFunctionality",
    "domainControllerFunctionality",
    "isGlobalCatalogReady",
    "isSynchronized",
    "currentTime",
    "vendorName",
    "vendorVersion",
)

# AD puts a "data NNN" sub-code into invalidCredentials messages.
AD_BIND_CODES = {
    "525": "user not found",
    "52e": "wrong user name or password",
    "530": "not permitted to log on at this time",
    "531": "not permitted to log on from this workstation",
    "532": "password expired",
    "533": "account disabled",
    "701": "account expired",
    "773": "user must reset password",
    "775": "account locked out",
}

SCOPES = {"base": "BASE", "level": "LEVEL", "one": "LEVEL", "subtree": "SUBTREE"}


def nt_hash(password: str) -> str:
    """NT hash (MD4 of UTF-16LE) as hex; OpenSSL 3 has no MD4, so fall back to pure Python."""
    data = password.encode("utf-16-le")
    try:
        return hashlib.new("md4", data).hexdigest()
    except ValueError:
        pass
    from smb.utils.md4 import MD4  # pure Python, from pysmb (a dependency of the SMB probe)

    md = MD4()
    md.update(data)
    return md.digest().hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _whole(seconds: float) -> int:
    # ldap3 packs receive_timeout into SO_RCVTIMEO as an integer
    return max(1, math.ceil(seconds))


def _one(values: Any) -> Any:
    if isinstance(values, list):
        return values[0] if len(values) == 1 else values
    return values


class _Stop(Exception):
    """Carries an Answer out of nested helpers."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[1])
        self.answer = answer


def _ldap_error(exc: Exception, where: str, deadline: Deadline, during: str) -> Answer:
    text = str(exc) or exc.__class__.__name__
    if "timed out" in text.lower() or isinstance(exc, ldap_exc.LDAPResponseTimeoutError):
        return (
            Outcome.TIMEOUT,
            f"TCP connected to {where}, but no LDAP answer to the {during} within "
            f"{deadline.timeout:g}s",
            None,
        )
    if isinstance(exc, ldap_exc.LDAPSessionTerminatedByServerError):
        return (
            Outcome.RESET,
            f"{where} closed the connection during the {during} (not LDAP, or it refuses this "
            "kind of request)",
            None,
        )
    if isinstance(exc, ldap_exc.LDAPStartTLSError) or "ssl" in text.lower():
        return Outcome.WRONG_PROTOCOL, f"TLS failed with {where} during the {during}: {text}", None
    return (
        Outcome.WRONG_PROTOCOL,
        f"{where} did not answer in LDAP during the {during}: {exc.__class__.__name__}: {text}",
        None,
    )


def _open(host: str, port: int, tls: str, deadline: Deadline, **conn_kwargs: Any) -> Any:
    if ldap3 is None:
        raise _Stop((Outcome.ERROR, INSTALL_HINT, None))
    if tls not in ("none", "starttls", "ldaps"):
        raise ValueError(f"tls must be 'none', 'starttls' or 'ldaps', got {tls!r}")
    where = hostport(host, port)
    # Our own TCP connect first: it tells refused / timed out / unreachable apart exactly.
    connect(host, port, deadline).close()
    server = ldap3.Server(
        host,
        port=port,
        use_ssl=tls == "ldaps",
        tls=ldap3.Tls(validate=ssl.CERT_NONE),
        get_info=ldap3.NONE,
        connect_timeout=_whole(deadline.left()),
    )
    conn = ldap3.Connection(
        server,
        receive_timeout=_whole(deadline.left()),
        raise_exceptions=False,
        auto_referrals=False,
        read_only=True,
        **conn_kwargs,
    )
    try:
        conn.open()
        if tls == "starttls" and not conn.start_tls():
            result = conn.result or {}
            raise _Stop(
                (
                    Outcome.REJECTED,
                    f"{where} refused StartTLS: {result.get('description')} "
                    f"{result.get('message', '')}".strip(),
                    {"result": _jsonable(result)},
                )
            )
    except _Stop:
        conn.unbind()
        raise
    except ldap_exc.LDAPException as exc:
        conn.unbind()
        raise _Stop(
            _ldap_error(exc, where, deadline, "TLS handshake" if tls != "none" else "connect")
        ) from exc
    return conn


def _search(conn: Any, base: str, flt: str, scope: str, attributes: Any, size_limit: int) -> Any:
    conn.search(base, flt, search_scope=scope, attributes=attributes, size_limit=size_limit)
    return [r for r in (conn.response or []) if r.get("type") == "searchResEntry"]


def _read_rootdse(conn: Any, where: str, deadline: Deadline) -> dict[str, Any]:
    try:
        entries = _search(conn, "", "(objectClass=*)", "BASE", list(ROOTDSE_ATTRIBUTES), 1)
    except ldap_exc.LDAPException as exc:
        raise _Stop(_ldap_error(exc, where, deadline, "rootDSE search")) from exc
    result = conn.result or {}
    if not entries:
        raise _Stop(
            (
                Outcome.REJECTED,
                f"{where} answered the rootDSE search without an entry: "
                f"{result.get('description')} {result.get('message', '')}".strip(),
                {"result": _jsonable(result)},
            )
        )
    raw = entries[0].get("raw_attributes") or {}
    return {k: _jsonable(_one(v)) for k, v in raw.items() if v}


def ldap_rootdse(
    host: str,
    port: int | None = None,
    *,
    tls: str = "none",
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """Anonymous read of the rootDSE.

    OK: observed holds the rootDSE attributes (defaultNamingContext, dnsHostName,
    supportedLDAPVersion ...); on an AD DC defaultNamingContext must be present.
    """
    port = port or (636 if tls == "ldaps" else 389)
    check_port(port)
    where = hostport(host, port)

    def body(deadline: Deadline) -> Answer:
        try:
            conn = _open(host, port, tls, deadline)
            try:
                attrs = _read_rootdse(conn, where, deadline)
            finally:
                conn.unbind()
        except _Stop as stop:
            return stop.answer
        summary = ", ".join(
            f"{k}={attrs[k]}" for k in ("defaultNamingContext", "dnsHostName") if k in attrs
        )
        return Outcome.OK, f"rootDSE read anonymously: {summary or 'no AD attributes'}", attrs

    return run_probe("ldap", f"{where} rootDSE", body, timeout, netns)


def _bind(conn: Any, where: str, deadline: Deadline, authentication: str) -> None:
    try:
        ok = conn.bind()
    except ldap_exc.LDAPException as exc:
        answer = _ldap_error(exc, where, deadline, f"{authentication} bind")
        if authentication == "ntlm" and answer[0] is Outcome.RESET:
            answer = (
                Outcome.REJECTED,
                f"{where} closed the connection during the NTLM (Sicily) bind: it does not "
                "accept NTLM binds (Samba AD does not; use a simple bind over TLS)",
                None,
            )
        raise _Stop(answer) from exc
    if ok:
        return
    result = conn.result or {}
    code, desc, msg = result.get("result"), result.get("description"), result.get("message", "")
    observed = {"result": _jsonable(result)}
    if code == 49:
        sub = next((why for c, why in AD_BIND_CODES.items() if f"data {c}" in msg), None)
        raise _Stop(
            (
                Outcome.AUTH_FAILED,
                f"{where} refused the credentials: invalidCredentials"
                + (f" ({sub})" if sub else "")
                + (f": {msg.strip()}" if msg.strip() else ""),
                observed,
            )
        )
    if code in (8, 13):
        raise _Stop(
            (
                Outcome.REJECTED,
                f"{where} refused a {authentication} bind without transport security: {desc} "
                f"({msg.strip()}); use tls='ldaps' or 'starttls'",
                observed,
            )
        )
    raise _Stop((Outcome.REJECTED, f"{where} refused the bind: {desc} {msg}".strip(), observed))


def ldap_search(
    host: str,
    user: str,
    password: str,
    *,
    search_filter: str = "(objectClass=*)",
    base: str | None = None,
    attributes: list[str] | tuple[str, ...] = ("distinguishedName",),
    scope: str = "subtree",
    min_entries: int = 0,
    size_limit: int = 1000,
    port: int | None = None,
    tls: str = "none",
    authentication: str = "simple",
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """Bind as ``user`` and search; ``base`` defaults to the rootDSE's defaultNamingContext.

    OK: bound and searched (observed: base, count, entries [{dn, attributes}]).
    AUTH_FAILED: invalidCredentials (AD's sub-code said in words). REJECTED: the server refused
    the bind for another reason (e.g. strongerAuthRequired) or the search.
    NO_ANSWER: fewer than ``min_entries`` entries matched.
    """
    port = port or (636 if tls == "ldaps" else 389)
    check_port(port)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {sorted(SCOPES)}, got {scope!r}")
    if authentication not in ("simple", "ntlm"):
        raise ValueError(f"authentication must be 'simple' or 'ntlm', got {authentication!r}")
    if authentication == "ntlm" and "\\" not in user:
        raise ValueError(f"an NTLM bind needs user as 'DOMAIN\\\\name', got {user!r}")
    where = hostport(host, port)

    def body(deadline: Deadline) -> Answer:
        if ldap3 is None:
            return Outcome.ERROR, INSTALL_HINT, None
        if authentication == "ntlm":
            creds = {
                "user": user,
                "password": "aad3b435b51404eeaad3b435b51404ee:" + nt_hash(password),
                "authentication": ldap3.NTLM,
            }
        else:
            creds = {"user": user, "password": password, "authentication": ldap3.SIMPLE}
        try:
            conn = _open(host, port, tls, deadline, **creds)
            try:
                _bind(conn, where, deadline, authentication)
                search_base = base
                if search_base is None:
                    search_base = _read_rootdse(conn, where, deadline).get("defaultNamingContext")
                    if not search_base:
                        return (
                            Outcome.NO_ANSWER,
                            f"{where} has no defaultNamingContext; pass base=",
                            None,
                        )
                try:
                    entries = _search(
                        conn,
                        search_base,
                        search_filter,
                        SCOPES[scope],
                        list(attributes),
                        size_limit,
                    )
                except ldap_exc.LDAPException as exc:
                    raise _Stop(_ldap_error(exc, where, deadline, "search")) from exc
                result = conn.result or {}
            finally:
                conn.unbind()
        except _Stop as stop:
            return stop.answer
        if result.get("result") not in (0, 4):  # success, sizeLimitExceeded
            return (
                Outcome.REJECTED,
                f"search {search_filter} under {search_base} failed: {result.get('description')} "
                f"{result.get('message', '')}".strip(),
                {"base": search_base, "result": _jsonable(result)},
            )
        found = [
            {"dn": e["dn"], "attributes": _jsonable(dict(e.get("attributes") or {}))}
            for e in entries
        ]
        observed = {
            "base": search_base,
            "filter": search_filter,
            "count": len(found),
            "truncated": result.get("result") == 4,
            "entries": found,
        }
        names = ", ".join(e["dn"] for e in found[:5]) + (" ..." if len(found) > 5 else "")
        if len(found) < min_entries:
            return (
                Outcome.NO_ANSWER,
                f"search {search_filter} under {search_base} as {user} found {len(found)} "
                f"entries, expected at least {min_entries}" + (f": {names}" if names else ""),
                observed,
            )
        return (
            Outcome.OK,
            f"bound as {user}; {search_filter} under {search_base}: {len(found)} entries"
            + (f": {names}" if names else ""),
            observed,
        )

    return run_probe("ldap", f"{where} search", body, timeout, netns)
