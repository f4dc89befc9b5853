"""DNS (dnspython): ask one given server directly (no resolver, no search list, no cache).

NXDOMAIN (the name does not exist), NO_ANSWER (the name exists, no record of that type),
TIMEOUT (the server is silent), REFUSED (nothing listens on the port), REJECTED (SERVFAIL,
REFUSED rcode ...) are told apart.
"""

from __future__ import annotations

import socket
from typing import Any

from .base import (
    DEFAULT_TIMEOUT,
    Answer,
    Deadline,
    Outcome,
    ProbeResult,
    check_port,
    hostport,
    run_probe,
)

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
except ImportError:  # pragma: no cover - exercised only without the dependency
    dns = None  # type: ignore[assignment]

INSTALL_HINT = "the DNS probe needs dnspython: pip install 'dnspython>=2.4'"


def _record(rdata: Any) -> Any:
    rdtype = rdata.rdtype
    if rdtype == dns.rdatatype.SRV:
        return {
            "priority": rdata.priority,
            "weight": rdata.weight,
            "port": rdata.port,
            "target": rdata.target.to_text(omit_final_dot=True),
        }
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rdata.address
    if rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR):
        return rdata.target.to_text(omit_final_dot=True)
    return rdata.to_text()


def dns_query(
    server: str,
    name: str,
    rdtype: str = "A",
    *,
    port: int = 53,
    tcp: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """Send one query for ``name``/``rdtype`` to ``server`` (UDP, TCP if truncated or asked).

    OK: observed["records"] holds the answers of that type (SRV as dicts with priority, weight,
    port, target; A/AAAA as addresses), plus "cnames" and "additional" (glue addresses).
    """
    check_port(port)
    where = hostport(server, port)
    target = f"{name} {rdtype.upper()} @{where}"

    def body(deadline: Deadline) -> Answer:
        if dns is None:
            return Outcome.ERROR, INSTALL_HINT, None
        qtype = dns.rdatatype.from_text(rdtype)
        query = dns.message.make_query(name, qtype)
        via = "tcp" if tcp else "udp"
        try:
            if tcp:
                response = dns.query.tcp(query, server, timeout=deadline.left(), port=port)
            else:
                # a connected UDP socket: ICMP port-unreachable then surfaces as ECONNREFUSED
                family = socket.AF_INET6 if ":" in server else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    sock.connect((server, port))
                    response = dns.query.udp(
                        query, server, timeout=deadline.left(), port=port, sock=sock
                    )
                if response.flags & dns.flags.TC:
                    via = "tcp"
                    response = dns.query.tcp(query, server, timeout=deadline.left(), port=port)
        except dns.exception.Timeout:
            return (
                Outcome.TIMEOUT,
                f"no DNS answer from {where} ({via}) within {deadline.timeout:g}s: the server is "
                "silent or the packets are dropped",
                None,
            )
        except ConnectionRefusedError:
            return (
                Outcome.REFUSED,
                f"nothing listens for DNS on {where} ({via}): refused / port unreachable",
                None,
            )
        except (dns.exception.FormError, dns.message.ShortHeader, dns.message.TrailingJunk) as exc:
            return Outcome.WRONG_PROTOCOL, f"{where} answered, but not in DNS: {exc}", None
        except EOFError:
            return Outcome.RESET, f"{where} closed the TCP connection without a DNS answer", None
        rcode = response.rcode()
        rcode_text = dns.rcode.to_text(rcode)
        records: list[Any] = []
        cnames: list[str] = []
        for rrset in response.answer:
            for rdata in rrset:
                if rrset.rdtype == qtype:
                    records.append(_record(rdata))
                elif rrset.rdtype == dns.rdatatype.CNAME:
                    cnames.append(_record(rdata))
        additional: dict[str, list[str]] = {}
        for rrset in response.additional:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                key = rrset.name.to_text(omit_final_dot=True)
                additional.setdefault(key, []).extend(r.address for r in rrset)
        observed = {
            "server": where,
            "name": name,
            "rdtype": rdtype.upper(),
            "rcode": rcode_text,
            "authoritative": bool(response.flags & dns.flags.AA),
            "transport": via,
            "records": records,
            "cnames": cnames,
            "additional": additional,
        }
        if rcode == dns.rcode.NXDOMAIN:
            return Outcome.NXDOMAIN, f"{name} does not exist (NXDOMAIN from {where})", observed
        if rcode != dns.rcode.NOERROR:
            return (
                Outcome.REJECTED,
                f"{where} answered {rcode_text} for {name} {rdtype.upper()}",
                observed,
            )
        if not records:
            return (
                Outcome.NO_ANSWER,
                f"{name} exists but has no {rdtype.upper()} record (NOERROR, empty answer from "
                f"{where})",
                observed,
            )
        shown = ", ".join(
            f"{r['target']}:{r['port']}" if isinstance(r, dict) else str(r) for r in records[:5]
        )
        return Outcome.OK, f"{name} {rdtype.upper()} -> {shown}", observed

    return run_probe("dns", target, body, timeout, netns)


def dns_srv(server: str, name: str, **kwargs: Any) -> ProbeResult:
    """SRV lookup, e.g. ``dns_srv(dc_ip, "_ldap._tcp.dc._msdcs.kosa.vm")``."""
    return dns_query(server, name, "SRV", **kwargs)


def dns_a(server: str, name: str, **kwargs: Any) -> ProbeResult:
    """A lookup of ``name`` at ``server``."""
    return dns_query(server, name, "A", **kwargs)


def dc_locator(server: str, domain: str, **kwargs: Any) -> ProbeResult:
    """The SRV record a domain join looks for: ``_ldap._tcp.dc._msdcs.<domain>``."""
    return dns_srv(server, f"_ldap._tcp.dc._msdcs.{domain}", **kwargs)
