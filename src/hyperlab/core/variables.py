"""Lab variables for one instance: the lab's defaults, overridden at `lab up --var NAME=VALUE`.

An instructor shortens a lesson's timings for a demo, and CI shortens them to fit its budget
(`replication_interval_seconds`), without a second copy of the lab. The overrides are kept with
the instance, so the start state, the solutions and the checkers all see the same values.
Scripts in the guests read them as `NAME=VALUE` lines in `lab.env` beside the instance secrets.
"""

from __future__ import annotations

import json
from pathlib import Path

from hyperlab.core.errors import UsageError
from hyperlab.host.files import write_atomic

Value = str | int | bool
OVERRIDES_FILE = "variables.json"
ENV_FILE = "lab.env"


def parse_overrides(pairs: list[str], declared: dict[str, Value]) -> dict[str, Value]:
    """`NAME=VALUE` arguments -> values of the declared variables' types; one-line UsageError otherwise."""
    result: dict[str, Value] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--var {pair!r}: write NAME=VALUE, for example --var replication_interval_seconds=60")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise UsageError(f"--var {name}: the lab declares no such variable (its variables: {known})")
        result[name] = coerce(name, text, declared[name])
    return result


def coerce(name: str, text: str, default: Value) -> Value:
    if isinstance(default, bool):
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise UsageError(f"--var {name}={text}: expected true or false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"--var {name}={text}: expected a whole number like {default}") from None
    return text


def save_overrides(folder: Path, overrides: dict[str, Value]) -> None:
    """Keep an instance's overrides; `lab up` without --var keeps the ones of an earlier `lab up`."""
    if overrides:
        write_atomic(folder / OVERRIDES_FILE, json.dumps(overrides, sort_keys=True))


def instance_variables(folder: Path, declared: dict[str, Value]) -> dict[str, Value]:
    try:
        saved = json.loads((folder / OVERRIDES_FILE).read_text())
    except FileNotFoundError:
        saved = {}
    return {**declared, **{k: v for k, v in saved.items() if k in declared}}


def env_text(variables: dict[str, Value]) -> str:
    """`NAME=VALUE` lines a POSIX shell can source (values are plain words: quoted anyway)."""
    def word(value: Value) -> str:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return "'" + text.replace("'", "'\\''") + "'"

    return "".join(f"{name}={word(value)}\n" for name, value in sorted(variables.items()))
