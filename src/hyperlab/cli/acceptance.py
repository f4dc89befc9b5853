"""`lab acceptance LAB --iso PATH [--vhdx PATH]`: the run a user with a KVM host sends to the maintainers.

Every argument is checked first (the ISO is Windows install media with the edition asked for,
the VHDX is a VHDX, the output folder can be made): a mistake is one line, exit 2, and nothing
has been built, started or written. The run itself is `hyperlab.ops.acceptance`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hyperlab.cli.app import ExitCode, LabArg, app, deployable, err, exit_with, out, reports_mistakes
from hyperlab.core.catalog import IMAGES
from hyperlab.core.errors import UsageError, printable
from hyperlab.core.load import load_lab
from hyperlab.core.paths import output_folder
from hyperlab.host.facts import host_facts, host_plan
from hyperlab.images.common import BuildError
from hyperlab.images.store import ImageError, ImageStore
from hyperlab.ops.acceptance import INSTANCE, AcceptanceOptions, run_acceptance
from hyperlab.core.needs import lab_needs


@app.command("acceptance")
@reports_mistakes
def acceptance(
    lab: LabArg,
    iso: Annotated[Path | None, typer.Option("--iso", help="The Windows Server install ISO the lab's images are built from.")] = None,
    virtio_iso: Annotated[Path | None, typer.Option("--virtio-iso", help="The virtio-win ISO (drivers, guest agent).")] = None,
    vhdx: Annotated[Path | None, typer.Option("--vhdx", help="The sysprepped guest disk for guest-vhdx (unless already built).")] = None,
    edition: Annotated[str, typer.Option("--edition", help="The edition to install, as for `lab image build`.")] = "standard",
    frozen_after: Annotated[int | None, typer.Option("--frozen-after", min=1, max=1440, metavar="MINUTES",
                                                     help="Stop an image build whose screen stood still this long.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help=f"Leave instance {INSTANCE!r} up afterwards.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the archive (and its unpacked copy).")] = Path("."),
) -> None:
    """Build the lab's images from your media, bring the lab up, check, run every reference solution,
    check again, and write one archive (logs, screenshots, checkers' JSON, lab doctor, versions)
    for the maintainers. Exit 0 only when every step with a reference solution passes at the end.
    Hours on a KVM host."""
    loaded = deployable(load_lab(lab))
    images = lab_needs(loaded).images
    windows = [name for name in images if IMAGES[name].builder.startswith("windows:")]
    store = ImageStore()
    _check_media(loaded.lab.id, windows, iso, virtio_iso, edition, store)
    if "guest-vhdx" in images:
        _check_vhdx(loaded.lab.id, vhdx, store)
    elif vhdx is not None:
        raise UsageError(f"--vhdx: {loaded.lab.id} has no guest-vhdx image")
    output_folder(out_dir, "--out")
    options = AcceptanceOptions(lab=lab, iso=iso, virtio_iso=virtio_iso, vhdx=vhdx, edition=edition,
                                frozen_after=frozen_after, keep=keep, out=out_dir)
    domains = [node.domain for node in host_plan(loaded, INSTANCE).nodes]
    try:
        summary, archive = run_acceptance(loaded, options, host_facts(), domains,
                                          lambda line: err.print(escape(printable(line)), highlight=False))
    except OSError as exc:
        err.print(f"error: writing the acceptance run under {printable(str(out_dir))}: {exc.strerror or exc}",
                  markup=False)
        raise exit_with(ExitCode.FAILED) from None
    out.print(f"{summary.verdict}; send this file to the maintainers: {printable(str(archive))}", markup=False)
    if summary.verdict != "passed":
        raise exit_with(ExitCode.FAILED)


def _check_media(lab: str, windows: list[str], iso: Path | None, virtio_iso: Path | None, edition: str, store: ImageStore) -> None:
    from hyperlab.images.windows import WindowsInputError, WindowsOptions, check_media, check_paths

    if not windows:
        given = [flag for flag, value in (("--iso", iso), ("--virtio-iso", virtio_iso)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: this lab has no Windows image to build")
        return
    if iso is None:
        missing = [name for name in windows if not _built(store, name)]
        if missing:
            raise UsageError(f"{', '.join(missing)} must be built from your Windows Server ISO: "
                             f"lab acceptance {lab} --iso PATH [--virtio-iso PATH]")
        return
    options = WindowsOptions(iso=iso, virtio_iso=virtio_iso, edition=edition)
    try:
        check_paths(options)
        check_media(options)
    except WindowsInputError as exc:
        raise UsageError(str(exc)) from None


def _check_vhdx(lab: str, vhdx: Path | None, store: ImageStore) -> None:
    from hyperlab.images.guest_vhdx import check_vhdx

    if vhdx is None:
        if not _built(store, "guest-vhdx"):
            raise UsageError(f"guest-vhdx is made from your guest's VHDX: lab acceptance {lab} --vhdx PATH")
        return
    try:
        check_vhdx(vhdx)
    except BuildError as exc:
        raise UsageError(str(exc)) from None


def _built(store: ImageStore, name: str) -> bool:
    try:
        return store.exists(name)
    except (ImageError, OSError):
        return False
