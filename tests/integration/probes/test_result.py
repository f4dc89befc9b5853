"""The result type, without any peer."""

from __future__ import annotations

import json

import pytest

from hyperlab import probes
from hyperlab.probes import Outcome, ProbeResult


def make(outcome: Outcome = Outcome.REFUSED) -> ProbeResult:
    return ProbeResult(
        kind="tcp",
        target="127.0.0.1:3389",
        outcome=outcome,
        detail="connection refused by 127.0.0.1:3389: nothing listens there (no port mapping)",
        observed={"x": 1},
        elapsed=0.0123,
        netns="hl-alice-pub",
    )


def test_verdict_reads_as_one_line() -> None:
    r = make()
    assert r.verdict == (
        "tcp 127.0.0.1:3389 (netns hl-alice-pub): REFUSED after 0.01s: connection refused by "
        "127.0.0.1:3389: nothing listens there (no port mapping)"
    )
    assert str(r) == r.verdict and r.verdict in repr(r)


def test_truthiness_is_ok_and_assert_ok_raises_with_the_verdict() -> None:
    assert not make() and not make().ok
    assert make(Outcome.OK) and make(Outcome.OK).assert_ok().ok
    with pytest.raises(AssertionError, match=r"REFUSED after .*no port mapping"):
        make().assert_ok()


def test_frozen_and_json_ready() -> None:
    r = make()
    with pytest.raises(AttributeError):
        r.outcome = Outcome.OK  # type: ignore[misc]
    d = json.loads(json.dumps(r.as_dict()))
    assert d["outcome"] == "refused" and d["ok"] is False and d["verdict"] == r.verdict


def test_every_outcome_has_a_meaning() -> None:
    assert set(probes.MEANING) == set(Outcome)


@pytest.mark.parametrize(
    "call",
    [
        lambda: probes.tcp_connect("127.0.0.1", 0),
        lambda: probes.tcp_connect("127.0.0.1", 70000),
        lambda: probes.tcp_connect("127.0.0.1", 80, timeout=0),
        lambda: probes.ldap_search("h", "user", "pw", authentication="ntlm"),
        lambda: probes.ldap_search("h", "user", "pw", scope="everything"),
    ],
    ids=["port0", "port70000", "timeout0", "ntlm-user-format", "bad-scope"],
)
def test_bad_arguments_raise(call) -> None:  # programming errors raise; network ones never do
    with pytest.raises(ValueError):
        call()


def test_nt_hash_without_openssl_md4() -> None:
    from hyperlab.probes.ldap import nt_hash

    assert nt_hash("password") == "8846f7eaee8fb117ad06bdd830b7586c"
