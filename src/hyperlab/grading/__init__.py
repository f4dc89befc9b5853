"""Checkers and grading: what checker authors import.

    import pytest
    from hyperlab.grading import eventually

    @pytest.mark.step("nat")
    def test_inner_hosts_reach_public(node, lab):
        result = node("INNER1").sh(f"ping -c1 -W2 {lab.ip('DC1')}")
        assert result.ok, result.summary()

The fixtures (`lab`, `node`, `host`, `probe`) and the `step` marker come from the pytest plugin
`hyperlab.grading.plugin`, which the checkout's root conftest.py loads.
"""

from hyperlab.grading.eventually import eventually
from hyperlab.grading.outcome import Status
from hyperlab.grading.unreachable import CheckError

__all__ = ["CheckError", "Status", "eventually"]
