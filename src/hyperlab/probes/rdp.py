"""RDP: X.224 Connection Request with an RDP Negotiation Request, and the Connection Confirm.

Wire format per MS-RDPBCGR 2.2.1.1 (request) and 2.2.1.2 (confirm):
TPKT (T.123: version 3, reserved, 16-bit big-endian length) + X.224 TPDU (length indicator,
code 0xE0 CR / 0xD0 CC, dst-ref, src-ref, class 0) + optional routing cookie + 8-byte
RDP_NEG_REQ / RDP_NEG_RSP / RDP_NEG_FAILURE (type, flags, length=8, 32-bit little-endian value).
"""

from __future__ import annotations

import struct

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
    recv_exact,
    run_probe,
)

PROTOCOL_RDP = 0x00  # standard RDP security
PROTOCOL_SSL = 0x01  # TLS
PROTOCOL_HYBRID = 0x02  # CredSSP (NLA)
PROTOCOL_RDSTLS = 0x04
PROTOCOL_HYBRID_EX = 0x08  # CredSSP with Early User Authorization Result PDU
PROTOCOL_RDSAAD = 0x10

PROTOCOL_NAMES = {
    PROTOCOL_RDP: "PROTOCOL_RDP",
    PROTOCOL_SSL: "PROTOCOL_SSL",
    PROTOCOL_HYBRID: "PROTOCOL_HYBRID",
    PROTOCOL_RDSTLS: "PROTOCOL_RDSTLS",
    PROTOCOL_HYBRID_EX: "PROTOCOL_HYBRID_EX",
    PROTOCOL_RDSAAD: "PROTOCOL_RDSAAD",
}

# What mstsc asks for: TLS, CredSSP, CredSSP-EX.
DEFAULT_PROTOCOLS = PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX

TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03

FAILURE_CODES = {
    0x01: "SSL_REQUIRED_BY_SERVER",
    0x02: "SSL_NOT_ALLOWED_BY_SERVER",
    0x03: "SSL_CERT_NOT_ON_SERVER",
    0x04: "INCONSISTENT_FLAGS",
    0x05: "HYBRID_REQUIRED_BY_SERVER",
    0x06: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}

RSP_FLAGS = {
    0x01: "EXTENDED_CLIENT_DATA_SUPPORTED",
    0x02: "DYNVC_GFX_PROTOCOL_SUPPORTED",
    0x04: "NEGRSP_FLAG_RESERVED",
    0x08: "RESTRICTED_ADMIN_MODE_SUPPORTED",
    0x10: "REDIRECTED_AUTHENTICATION_MODE_SUPPORTED",
}

X224_CR = 0xE0
X224_CC = 0xD0


def protocol_names(mask: int) -> list[str]:
    if mask == PROTOCOL_RDP:
        return [PROTOCOL_NAMES[PROTOCOL_RDP]]
    return [name for bit, name in PROTOCOL_NAMES.items() if bit and mask & bit] or [hex(mask)]


def connection_request(requested: int = DEFAULT_PROTOCOLS, cookie: str | None = None) -> bytes:
    """TPKT + X.224 Connection Request + optional mstshash cookie + RDP_NEG_REQ."""
    cookie_bytes = f"Cookie: mstshash={cookie}\r\n".encode("ascii") if cookie else b""
    neg_req = struct.pack("<BBHI", TYPE_RDP_NEG_REQ, 0, 8, requested)
    # length indicator counts the TPDU header after itself: code, dst-ref(2), src-ref(2), class
    body = cookie_bytes + neg_req
    tpdu = bytes([6 + len(body), X224_CR, 0, 0, 0, 0, 0]) + body
    return struct.pack(">BBH", 3, 0, 4 + len(tpdu)) + tpdu


def parse_connection_confirm(data: bytes) -> Answer:
    """Parse a whole TPKT packet answering a Connection Request."""
    if len(data) < 11 or data[0] != 3:
        return (
            Outcome.WRONG_PROTOCOL,
            f"not RDP: expected a TPKT header (03 00 ...), got {preview(data)}",
            {"first_bytes": data[:48].hex(" ")},
        )
    li, code = data[4], data[5] & 0xF0
    if code != X224_CC:
        return (
            Outcome.WRONG_PROTOCOL,
            f"not an X.224 Connection Confirm (TPDU code {data[5]:#04x}, expected 0xd0)",
            {"first_bytes": data[:48].hex(" ")},
        )
    neg = data[11 : 5 + li] if len(data) >= 5 + li else data[11:]
    if len(neg) < 8:
        return (
            Outcome.OK,
            "RDP server answered the X.224 Connection Request without negotiation data "
            "(standard RDP security only, an old server)",
            {
                "selected_protocol": "PROTOCOL_RDP",
                "selected_protocol_code": 0,
                "negotiation": False,
            },
        )
    ntype, flags, _length, value = struct.unpack("<BBHI", neg[:8])
    if ntype == TYPE_RDP_NEG_RSP:
        names = protocol_names(value)
        return (
            Outcome.OK,
            f"RDP server selected {'|'.join(names)}",
            {
                "negotiation": True,
                "selected_protocol": "|".join(names),
                "selected_protocol_code": value,
                "flags": [name for bit, name in RSP_FLAGS.items() if flags & bit],
            },
        )
    if ntype == TYPE_RDP_NEG_FAILURE:
        name = FAILURE_CODES.get(value, f"unknown failure code {value:#x}")
        return (
            Outcome.REJECTED,
            f"RDP server refused the requested security protocols: {name}",
            {"negotiation": True, "failure": name, "failure_code": value},
        )
    return (
        Outcome.WRONG_PROTOCOL,
        f"X.224 Connection Confirm with an unknown negotiation type {ntype:#04x}",
        {"first_bytes": data[:48].hex(" ")},
    )


def rdp_negotiate(
    host: str,
    port: int = 3389,
    *,
    requested: int = DEFAULT_PROTOCOLS,
    cookie: str | None = "hyperlab",
    timeout: float = DEFAULT_TIMEOUT,
    netns: str | None = None,
) -> ProbeResult:
    """Send an X.224 Connection Request and read the Connection Confirm.

    OK: an RDP server confirmed (observed: selected_protocol, flags). REJECTED: an RDP server
    answered RDP_NEG_FAILURE (observed: failure, e.g. SSL_REQUIRED_BY_SERVER).
    WRONG_PROTOCOL: something else answered. TIMEOUT: connected but no answer, or no connect.
    """
    check_port(port)
    where = hostport(host, port)

    def body(deadline: Deadline) -> Answer:
        with connect(host, port, deadline) as sock:
            sock.sendall(connection_request(requested, cookie))
            try:
                head = recv_exact(sock, 4, deadline)
            except (TimeoutError, OSError) as exc:
                if isinstance(exc, TimeoutError):
                    return (
                        Outcome.TIMEOUT,
                        f"TCP connected to {where}, but no X.224 Connection Confirm within "
                        f"{deadline.timeout:g}s (not RDP, or a mute backend)",
                        None,
                    )
                raise
            if not head:
                return (
                    Outcome.RESET,
                    f"TCP connected to {where}, but it closed the connection without answering "
                    "the X.224 Connection Request",
                    None,
                )
            if len(head) < 4 or head[0] != 3:
                try:
                    sock.settimeout(0.2)
                    head += sock.recv(64)
                except OSError:
                    pass
                return parse_connection_confirm(head)
            length = struct.unpack(">H", head[2:4])[0]
            rest = recv_exact(sock, max(length - 4, 0), deadline)
            return parse_connection_confirm(head + rest)

    return run_probe("rdp", where, body, timeout, netns)
