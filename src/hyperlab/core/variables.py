"""Lab variables for one instance: the lab's defaults, overridden at `lab up --var NAME=VALUE`.

An instructor shortens a lesson's timings for a demo, and CI shortens them to fit its budget
(`replication_interval_seconds`), without a second copy of the lab. The overrides are kept with
the instance, so the start state, the solutions and the checkers all see the same values.
Scripts in the guests read them as `NAME=VALUE` lines in `lab.env` beside the instance secrets.
Pure: the instance folder that keeps the overrides is `hyperlab.host.instance_files`.
"""

from __future__ import annotations

from hyperlab.core.errors import UsageError

Value = str | int | bool
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


def with_overrides(declared: dict[str, Value], saved: dict[str, object]) -> dict[str, Value]:
    """The declared variables with an instance's saved overrides applied (unknown names ignored)."""
    return {**declared, **{k: v for k, v in saved.items() if k in declared and isinstance(v, (str, int, bool))}}


def env_text(variables: dict[str, Value]) -> str:
    """`NAME=VALUE` lines a POSIX shell can source (values are plain words: quoted anyway)."""
    def word(value: Value) -> str:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return "'" + text.replace("'", "'\\''") + "'"

    return "".join(f"{name}={word(value)}\n" for name, value in sorted(variables.items()))
