"""Outside-in network probes: each asks one service one question and returns a ProbeResult.

    from hyperlab import probes
    r = probes.tcp_connect("127.0.0.1", 3389, timeout=2, netns="hl-alice-pub")
    assert r, r.verdict          # or r.assert_ok()

Every probe takes ``timeout`` (seconds, one budget for the whole probe) and ``netns`` (run the
socket work inside that network namespace) and never raises for what the network does.
"""

from .base import DEFAULT_TIMEOUT, MEANING, Outcome, ProbeResult
from .dns import dc_locator, dns_a, dns_query, dns_srv
from .ldap import ldap_rootdse, ldap_search
from .netns import NetnsError, in_netns, run_in_netns
from .rdp import rdp_negotiate
from .smb import smb_shares
from .tcp import tcp_connect
from .telnet import telnet_login, telnet_negotiate
from .winrm import winrm_alive

__all__ = [
    "DEFAULT_TIMEOUT",
    "MEANING",
    "NetnsError",
    "Outcome",
    "ProbeResult",
    "dc_locator",
    "dns_a",
    "dns_query",
    "dns_srv",
    "in_netns",
    "ldap_rootdse",
    "ldap_search",
    "rdp_negotiate",
    "run_in_netns",
    "smb_shares",
    "tcp_connect",
    "telnet_login",
    "telnet_negotiate",
    "winrm_alive",
]
