"""Lab variables per instance: `lab up --var` parsing, what is kept, and what scripts read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hyperlab.core.errors import UsageError
from hyperlab.core.variables import env_text, parse_overrides
from hyperlab.host.instance_files import instance_variables, save_overrides

DECLARED: dict[str, str | int | bool] = {"replication_interval_seconds": 300, "nested_image": "tiny", "demo": False}


def test_values_take_the_declared_type() -> None:
    assert parse_overrides(["replication_interval_seconds=60", "demo=yes", "nested_image=ticker"], DECLARED) == {
        "replication_interval_seconds": 60, "demo": True, "nested_image": "ticker"}


@pytest.mark.parametrize(("pair", "message"), [
    ("interval=60", "--var interval: the lab declares no such variable (its variables: demo, nested_image, replication_interval_seconds)"),
    ("demo=perhaps", "--var demo=perhaps: expected true or false"),
    ("=3", "--var '=3': write NAME=VALUE"),
])
def test_mistakes_are_one_line(pair: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_overrides([pair], DECLARED)
    assert str(caught.value).startswith(message)


def test_overrides_are_kept_with_the_instance_and_a_later_up_without_var_keeps_them(tmp_path: Path) -> None:
    assert instance_variables(tmp_path, DECLARED) == DECLARED
    save_overrides(tmp_path, {"replication_interval_seconds": 60})
    save_overrides(tmp_path, {})
    assert instance_variables(tmp_path, DECLARED)["replication_interval_seconds"] == 60
    # a variable the lab no longer declares is not resurrected
    assert instance_variables(tmp_path, {"demo": True}) == {"demo": True}


def test_lab_env_is_what_a_shell_reads(tmp_path: Path) -> None:
    env = tmp_path / "lab.env"
    env.write_text(env_text({"replication_interval_seconds": 60, "demo": True, "odd": "it's $HOME"}))
    shown = subprocess.run(["sh", "-c", f'. {env}; printf "%s|%s|%s" "$replication_interval_seconds" "$demo" "$odd"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "60|true|it's $HOME"
