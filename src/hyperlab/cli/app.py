"""`lab`: the typer app and what its command groups share. The CLI is the only place that prints
and chooses exit codes; library code raises, the CLI reports.

User mistakes (a bad file, a wrong argument) are one line each on stderr and exit code 2
(`ExitCode.USAGE`); problems of the host or of a deployment are one line and exit code 1.
A command group is a module of this package that adds its commands to `app`; `hyperlab.cli.main`
puts them together.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from enum import IntEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # Typer 0.29 carries its own copy of click, whose exceptions these are; earlier ones use click's
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer
    from click import exceptions as click_errors  # type: ignore[no-redef]
from rich.markup import escape

from hyperlab.core.errors import LabError, UsageError, printable
from hyperlab.core.layers import TEMPLATE_INSTANCE
from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.model import check_id
from hyperlab.core.plan import PlanNode
from hyperlab.guest.base import ChannelError
from hyperlab.guest.reboots import RebootFailed
from hyperlab.guest.runner import NotReady, StartStateFailed
from hyperlab.host.accel import AccelReport, AccelUnavailable
from hyperlab.host.apply import GoldenImageProblem, StaleInstance
from hyperlab.host.checkpoints import CheckpointError
from hyperlab.host.conn import ForeignObject, HostProblem, connect
from hyperlab.host.facts import host_plan
from hyperlab.host.hostnet import HostNetError
from hyperlab.host.instance_lock import InstanceBusy, changing
from hyperlab.host.screen import ScreenFrozen
from hyperlab.images.layers import LayerInUse
from hyperlab.images.store import ImageError, ImageStore
from hyperlab.images.test_guest import resolve
from hyperlab.ops.prepare import PrepareFailed
from hyperlab.ops.secrets import plan_for_up

class OneLineErrors(TyperGroup):
    """Click's own refusals (a value of the wrong type, a missing value, an unknown option or command)
    as one line naming the argument, exit 2, like every other mistake; Typer would draw a box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        call = dict(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                    windows_expand_args=windows_expand_args, **extra)
        if not standalone_mode:
            return super().main(**call)
        try:
            code = super().main(**call)
        except click_errors.NoArgsIsHelpError as exc:
            print(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            where = getattr(exc, "ctx", None)
            hint = f" (see: {where.command_path} --help)" if where is not None else ""
            message = " ".join(exc.format_message().split())  # click wraps long messages over lines
            Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {printable(message)}{hint}",
                                                                         markup=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            Console(stderr=True).print("aborted", markup=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="lab",
    cls=OneLineErrors,
    help="hyperlab: deploy, check and grade virtualization lab exercises.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a check did not pass, a node is not ready, the host is missing something
    USAGE = 2  # the user's mistake (a file, an argument), or a refusal that changed nothing
    TIMEOUT = 124  # `lab exec`: the command ran out of time (as timeout(1) says it)
    INTERRUPTED = 130  # Ctrl+C


LabArg = Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")]
InstanceOpt = Annotated[str, typer.Option("--instance", "-i", help="Instance name: one student's copy of the lab.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AccelOpt = Annotated[str, typer.Option("--accel", help="auto (KVM only where it really works), kvm, or tcg (software emulation).")]


def exit_with(code: ExitCode) -> typer.Exit:
    return typer.Exit(int(code))


def output_file(path: Path, option: str) -> Path:
    """A file the command will write: its folder must exist, and it must not be a folder itself.
    Checked before anything runs, so that a wrong path is one line, not a traceback at the end."""
    if path.is_dir():
        raise UsageError(f"{option} {printable(str(path))}: is a folder; give a file name inside it")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {printable(str(path))}: the folder {printable(str(path.parent))} does not exist; "
                         "create it first")
    return path


def reports_mistakes(func: F) -> F:
    """Turn user mistakes into one line each and exit code 2; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LabError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False)
            raise exit_with(ExitCode.USAGE) from None
        except UsageError as exc:
            err.print(f"error: {printable(str(exc))}", markup=False)
            raise exit_with(ExitCode.USAGE) from None

    return wrapper  # type: ignore[return-value]


def host_errors(func: F) -> F:
    """Problems of the host or of the deployment: one line, exit 1 (not the student's YAML).
    A refusal (a name held by another owner, an instance busy) changed nothing: exit 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ForeignObject, StaleInstance, InstanceBusy) as exc:
            for line in str(exc).splitlines():
                err.print(f"refused: {line}", markup=False)
            raise exit_with(ExitCode.USAGE) from None
        except AccelUnavailable as exc:
            err.print(f"error: {printable(str(exc))}", markup=False)
            raise exit_with(ExitCode.USAGE) from None
        except (HostProblem, GoldenImageProblem, ImageError, HostNetError, NotReady, StartStateFailed, ChannelError,
                RebootFailed, ScreenFrozen, CheckpointError, PrepareFailed, LayerInUse) as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                err.print(f"error: {printable(line)}", markup=False)
            raise exit_with(ExitCode.FAILED) from None

    return wrapper  # type: ignore[return-value]


def check_instance(name: str, *, template: bool = False) -> str:
    """A user's instance name; `template` is `lab prepare`'s own (its template instance)."""
    try:
        check_id(name)
    except ValueError as exc:
        raise UsageError(f"--instance: {exc}") from None
    if name == TEMPLATE_INSTANCE and not template:
        raise UsageError(f"--instance: {TEMPLATE_INSTANCE!r} is the instance `lab prepare` builds its layers from; "
                         "pick another name")
    return name


def deployable(loaded: LoadedLab) -> LoadedLab:
    """Only a lab.yaml, whose id is its folder's name, touches instances: a draft or test file
    (any name) that declares `id: chapter-1` could otherwise own and remove chapter-1's objects."""
    if loaded.source.path.name != "lab.yaml":
        raise UsageError(f"{printable(loaded.source.name)}: only a lab folder's lab.yaml is deployed, checked or graded; "
                         f"put it at labs/{loaded.lab.id}/lab.yaml (validate, plan and diagram take any file)")
    return loaded


class Session:
    """What a command on a deployed lab shares: the lab (loaded once), its plan for this host
    (planned once), the image store and a libvirt connection. `deploying` (`lab up`) makes the
    instance's SSH key before planning, since the plan carries its public half."""

    def __init__(self, lab: str | LoadedLab, instance: str, accel: str = "tcg", *, deploying: bool = False,
                 template: bool = False) -> None:
        self.loaded = deployable(load_lab(lab) if isinstance(lab, str) else lab)
        self.instance = check_instance(instance, template=template)
        self.store = ImageStore()
        self.accel: AccelReport = resolve(accel, self.store)
        if deploying:
            self.plan = plan_for_up(self.loaded, self.instance, self.accel.accel)
        else:
            self.plan = host_plan(self.loaded, self.instance, self.accel.accel)
        self.conn = connect()
        self.started = time.monotonic()

    def node(self, name: str) -> PlanNode:
        """The plan of a node the user named; a name not in the lab is a usage mistake."""
        try:
            return self.plan.node(name)
        except KeyError:
            names = ", ".join(n.name for n in self.plan.nodes)
            raise UsageError(f"unknown node {name!r}; nodes of {self.plan.lab}: {names}") from None

    def progress(self, node: str, phase: str) -> None:
        err.print(f"[dim]{time.monotonic() - self.started:7.1f}s[/] [bold]{node}[/]: {escape(printable(phase))}")

    def changing(self, command: str) -> AbstractContextManager[None]:
        """The instance's lock, held while `command` changes it (refused if another command holds it)."""
        return changing(self.plan, command)
