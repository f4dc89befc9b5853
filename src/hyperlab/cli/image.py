"""`lab image build / list`: golden images (a typer sub-app, mounted by `hyperlab.cli.main`).

Which images exist and what builds them is the catalog (`hyperlab.core.catalog`); here: the
checks of the arguments before anything is touched, and the progress bars."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.markup import escape
from rich.table import Table

from hyperlab.cli.app import ExitCode, err, out
from hyperlab.core.catalog import IMAGES
from hyperlab.core.errors import printable
from hyperlab.core.units import human_size
from hyperlab.images.common import BuildError
from hyperlab.images.registry import builder, phases
from hyperlab.host.facts import host_facts
from hyperlab.images.layers import LayerSet, LayerStore
from hyperlab.images.store import ImageError, ImageStore
from hyperlab.images.test_guest import resolve

if TYPE_CHECKING:
    from hyperlab.images.windows import WindowsOptions

image_app = typer.Typer(
    name="image",
    help="Build and list golden images (store: $HYPERLAB_IMAGES or /var/lib/libvirt/images/hyperlab).",
    no_args_is_help=True,
    add_completion=False,
)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    err.print("[bold red]error:[/] ", end="")
    err.print(message, markup=False)
    raise typer.Exit(int(code))


def os_error(e: OSError, store: ImageStore) -> str:
    what = e.strerror or str(e)
    where = f": {e.filename}" if e.filename else ""
    return f"image store {store.root}: {what}{where} (set HYPERLAB_IMAGES to a writable directory, or run as root)"


def human(n: int | None) -> str:
    return "-" if n is None else human_size(n)


@image_app.command("build")
def build(
    name: str = typer.Argument(..., help=f"image to build: {', '.join(IMAGES)}"),
    force: bool = typer.Option(False, "--force", "-f", help="rebuild even if the image exists"),
    iso: Path | None = typer.Option(None, "--iso", help="Windows: the install ISO (Windows Server evaluation media)"),
    virtio_iso: Path | None = typer.Option(None, "--virtio-iso", help="Windows: the virtio-win ISO (drivers, guest agent)"),
    edition: str = typer.Option("standard", "--edition",
                                help="Windows: standard, standard-core, datacenter, datacenter-core, an image index "
                                     "or an image's name as Setup lists it (NAME or DISPLAYNAME)"),
    locale: str = typer.Option("en-US", "--locale", help="Windows: en-US or ko-KR (keyboard, formats, time zone)"),
    product_key: str | None = typer.Option(None, "--product-key",
                                           help="Windows: a product key, or 'kms' for Microsoft's KMS client key; "
                                                "evaluation media need none"),
    password_file: Path | None = typer.Option(None, "--password-file",
                                              help="Windows: file holding the build's Administrator password "
                                                   "(default: random, never shown)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Windows: only write the answer media the build would use"),
    out_dir: Path | None = typer.Option(None, "--out", help="Windows --dry-run: folder for the media "
                                                            "(default: <store>/<name>.dry-run)"),
    vhdx: Path | None = typer.Option(None, "--vhdx", help="guest-vhdx: the sysprepped guest disk (a .vhdx file)"),
    frozen_after: int | None = typer.Option(None, "--frozen-after", min=1, max=1440, metavar="MINUTES",
                                            help="Windows: stop when the guest's screen has not changed for this "
                                                 "long while its agent is silent (default: 20)"),
) -> None:
    """Build a golden image into the image store (needs root)."""
    if name not in IMAGES:
        fail(f"unknown image {name!r}; known images: {', '.join(IMAGES)}")
    windows_only = {"--iso": iso, "--virtio-iso": virtio_iso, "--password-file": password_file, "--out": out_dir,
                    "--product-key": product_key, "--frozen-after": frozen_after}
    if vhdx is not None and name != "guest-vhdx":
        fail(f"--vhdx only applies to guest-vhdx, not {name}")
    if name == "guest-vhdx" and vhdx is None and not ImageStore().exists(name):
        fail("guest-vhdx is made from your VHDX: lab image build guest-vhdx --vhdx PATH")
    if vhdx is not None:
        from hyperlab.images.guest_vhdx import check_vhdx

        try:
            check_vhdx(vhdx)
        except BuildError as e:
            fail(str(e))
    if not name.startswith("windows-"):
        given = [flag for flag, value in windows_only.items() if value is not None] + (["--dry-run"] if dry_run else [])
        if given:
            fail(f"{', '.join(given)} only apply to Windows images, not {name}")
    else:
        windows_options = _windows_options(name, iso, virtio_iso, edition, locale, product_key, password_file)
        if dry_run:
            _windows_dry_run(name, windows_options, out_dir)
            return
        _windows_media(windows_options)
    store = ImageStore()
    try:
        if store.exists(name) and not force:
            m = store.get(name)
            out.print(
                f"{name} is already built ({human(m.size)}, {m.build_date:%Y-%m-%d %H:%M} UTC) in "
                f"{store.path(name)}; use --force to rebuild",
                highlight=False,
            )
            return
        store.ensure_root()
    except ImageError as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e, store))

    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=out,
    )
    tasks = {p: progress.add_task(p, total=1.0, start=False) for p in phases(name)}
    running: list[str] = []  # the phase under way, whose line shows the newest screenshot

    def on_progress(phase: str, fraction: float) -> None:
        task = tasks.get(phase)
        if task is None:
            task = tasks[phase] = progress.add_task(phase, total=1.0)
        if not progress.tasks[task].started:
            progress.start_task(task)
        progress.update(task, completed=fraction, description=phase)
        running[:] = [phase] if fraction < 1.0 else []
        if fraction >= 1.0:
            progress.stop_task(task)

    def on_screen(path: Path, _changed: bool) -> None:
        if running:
            progress.update(tasks[running[0]], description=f"{running[0]}  screen: {escape(printable(str(path)))}")

    t0 = time.monotonic()
    extra: dict[str, object] = {}
    if name.startswith("windows-"):
        extra = {"options": windows_options, "accel": _windows_accel(store), "on_screen": on_screen}
        if frozen_after is not None:
            extra["frozen_after"] = frozen_after * 60.0
    if name == "guest-vhdx":
        extra = {"vhdx": vhdx}
    try:
        with progress:
            m = builder(name)(store, name, progress=on_progress, force=force, **extra)
    except BuildError as e:
        fail(str(e), code=ExitCode.FAILED)
    except ImageError as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e, store), code=ExitCode.FAILED)
    except KeyboardInterrupt:
        fail(f"interrupted; the build of {name} left nothing in the store", code=ExitCode.INTERRUPTED)
    out.print(
        f"built {name}: {human(m.size)} qcow2 in {time.monotonic() - t0:.0f} s -> {store.path(name)}",
        highlight=False,
    )


# ------------------------------------------------------------------------------- Windows


def _windows_options(name: str, iso: Path | None, virtio_iso: Path | None, edition: str, locale: str,
                     product_key: str | None, password_file: Path | None) -> WindowsOptions:
    """Check what can be checked without touching the store: a mistake changes nothing."""
    from hyperlab.images.windows import WindowsInputError, WindowsOptions, check_paths

    if iso is None:
        fail(f"{name} is built from your Windows Server ISO: lab image build {name} --iso PATH "
             "[--virtio-iso PATH] (evaluation media: microsoft.com/evalcenter)")
    options = WindowsOptions(iso=iso, virtio_iso=virtio_iso, edition=edition, locale=locale,
                             product_key=product_key, password_file=password_file)
    try:
        check_paths(options)
    except WindowsInputError as e:
        fail(str(e))
    if virtio_iso is None:
        err.print(f"warning: no --virtio-iso: Windows Setup will not see the virtio disk of {name}; "
                  "get virtio-win.iso from the virtio-win project", highlight=False, soft_wrap=True)
    return options


def _windows_media(options: WindowsOptions) -> None:
    """Refuse what is not Windows install media before the store or libvirt is touched."""
    from hyperlab.images.windows import WindowsInputError, check_media

    try:
        check_media(options)
    except WindowsInputError as e:
        fail(str(e))


def _windows_dry_run(name: str, options: WindowsOptions, out_dir: Path | None) -> None:
    from hyperlab.images.windows import dry_run

    target = out_dir or ImageStore().root / f"{name}.dry-run"
    try:
        written = dry_run(name, options, target)
    except ImageError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{target}: {e.strerror or e}")
    out.print(f"answer media for {name} written (the ISO's content was not read; edition {options.edition!r} "
              "uses Microsoft's usual image index):", highlight=False, soft_wrap=True)
    for path in written:
        out.print(f"  {path}", highlight=False, soft_wrap=True)


def _windows_accel(store: ImageStore) -> str:
    report = resolve("auto", store)
    if report.accel != "kvm":
        err.print(f"warning: KVM is not usable ({report.why}); installing Windows under software emulation "
                  "takes many hours", highlight=False, soft_wrap=True)
    return report.accel


@image_app.command("list")
def list_images(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show the images of the store: size, backing chain, build date."""
    store = ImageStore()
    try:
        rows = store.images()
    except ImageError as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e, store))
    if as_json:
        data = []
        for r in rows:
            m = r.manifest
            data.append(
                {
                    "name": r.name,
                    "path": str(r.path),
                    "size": r.size,
                    "file_size": r.file_size,
                    "virtual_size": r.virtual_size,
                    "backing_chain": r.backing_chain,
                    "read_only": r.read_only,
                    "os": m.os if m else None,
                    "build_date": m.build_date.isoformat() if m else None,
                    "sha256": m.sha256 if m else None,
                    "kernel": m.kernel if m else None,
                    "initrd": m.initrd if m else None,
                    "cmdline": m.cmdline if m else None,
                    "error": r.error,
                }
            )
        typer.echo(json.dumps({"store": str(store.root), "images": data, "layers": _layers_json(store)}, indent=2))
        return
    if not rows:
        out.print(f"no images in {store.root}; build one with: lab image build debian-12", highlight=False)
        return
    table = Table(title=f"images in {store.root}", title_justify="left")
    for col in ("name", "os", "size", "virtual", "backing chain", "built (UTC)", "status"):
        table.add_column(col)
    for r in rows:
        m = r.manifest
        status = "ok" if r.error is None and r.read_only else (r.error or "writable (not finished?)")
        table.add_row(
            r.name,
            m.os if m else "?",
            human(r.size),
            human(r.virtual_size),
            " -> ".join(r.backing_chain) or "-",
            f"{m.build_date:%Y-%m-%d %H:%M}" if m else "-",
            status,
        )
    out.print(table)
    _layers_table(store)


def _layer_sets(store: ImageStore) -> list[tuple[LayerSet, list[str]]]:
    layers = LayerStore(store, host_facts().instances_dir)
    return [(s, layers.users(s.folder)) for s in layers.sets()]


def _layers_json(store: ImageStore) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for layer_set, users in _layer_sets(store):
        r = layer_set.record
        volumes = [{"node": v.node, "name": v.name, "path": str(layer_set.path(v.name)), "bytes": v.bytes,
                    "backing_chain": [layer.filename for layer in store.qemu_info(layer_set.path(v.name))[1:]]}
                   for v in r.volumes]
        found.append({"lab": r.lab, "inputs_hash": r.inputs_hash, "folder": str(layer_set.folder),
                      "created": r.created.isoformat(), "inputs": r.inputs.model_dump(), "users": users,
                      "volumes": volumes})
    return found


def _layers_table(store: ImageStore) -> None:
    """The prepared labs' layer sets (`lab prepare`), one row per layer."""
    sets = _layer_sets(store)
    if not sets:
        return
    table = Table(title=f"prepared layers in {store.root / 'layers'}", title_justify="left")
    for col in ("lab", "inputs", "layer", "size", "backing chain", "prepared (UTC)", "used by"):
        table.add_column(col, overflow="fold")
    for layer_set, users in sets:
        r = layer_set.record
        for v in r.volumes:
            chain = [Path(layer.filename).name for layer in store.qemu_info(layer_set.path(v.name))[1:]]
            table.add_row(r.lab, r.inputs_hash, v.name, human(v.bytes), " -> ".join(chain) or "-",
                          f"{r.created:%Y-%m-%d %H:%M}", ", ".join(users) or "-")
    out.print(table)


