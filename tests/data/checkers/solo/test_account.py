"""Step account: the kosa user."""

import pytest


@pytest.mark.step("account")
def test_kosa_logs_in_with_bash(host):
    """kosa exists and logs in with bash"""
    user = host("S1").user("kosa")
    assert user.exists, "S1 has no user kosa (`id kosa` fails)"
    assert user.shell == "/bin/bash", f"kosa's login shell is {user.shell}, expected /bin/bash"
