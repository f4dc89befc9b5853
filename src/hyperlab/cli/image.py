"""``lab image``: build and list golden images (mounted by the main CLI as a typer sub-app)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from hyperlab.images.common import BuildError
from hyperlab.images.store import ImageError, ImageManifest, ImageStore

if TYPE_CHECKING:
    from hyperlab.images.windows import WindowsOptions

image_app = typer.Typer(
    name="image",
    help="Build and list golden images (store: $HYPERLAB_IMAGES or /var/lib/libvirt/images/hyperlab).",
    no_args_is_help=True,
    add_completion=False,
)

out = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class Builder:
    phases: tuple[str, ...]
    load: Callable[[], Callable[..., ImageManifest]]
    about: str


def _debian() -> Callable[..., ImageManifest]:
    from hyperlab.images.debian import build_debian

    return build_debian


def _tiny() -> Callable[..., ImageManifest]:
    from hyperlab.images.tiny import build_tiny

    return build_tiny


def _guest_vhdx() -> Callable[..., ImageManifest]:
    from hyperlab.images.guest_vhdx import build_guest_vhdx

    return build_guest_vhdx


def _ticker() -> Callable[..., ImageManifest]:
    from hyperlab.images.ticker import build_ticker

    return build_ticker


def _windows() -> Callable[..., ImageManifest]:
    from hyperlab.images.windows import build_windows

    return build_windows


WINDOWS_PHASES = ("media", "setup", "first boot", "agent", "tools", "sysprep", "manifest")

BUILDERS: dict[str, Builder] = {
    "debian-12": Builder(
        ("bootstrap", "configure", "kernel", "disk", "convert", "manifest"),
        _debian,
        "Debian 12 with systemd, SSH, guest agent and the Linux labs' packages",
    ),
    "tiny": Builder(
        ("fetch", "initramfs", "disk", "convert", "manifest"),
        _tiny,
        "kernel + busybox initramfs + small data disk, for nested guests",
    ),
    "guest-vhdx": Builder(
        ("volume", "copy", "partition", "convert", "manifest"),
        _guest_vhdx,
        "NTFS data disk holding your VHDX (--vhdx PATH), shared by overlays with chapter-2's Hyper-V hosts",
    ),
    "ticker": Builder(
        ("kernel", "disk", "manifest"),
        _ticker,
        "1 KiB program counting seconds on its console, for nested guests that migrate under emulation",
    ),
    **{
        f"windows-server-{year}": Builder(WINDOWS_PHASES, _windows,
                                          f"Windows Server {year} from your ISO (--iso): virtio drivers, guest agent, "
                                          "WinRM, sysprep")
        for year in ("2019", "2022", "2025")
    },
}


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def os_error(e: OSError, store: ImageStore) -> str:
    what = e.strerror or str(e)
    where = f": {e.filename}" if e.filename else ""
    return f"image store {store.root}: {what}{where} (set HYPERLAB_IMAGES to a writable directory, or run as root)"


def human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@image_app.command("build")
def build(
    name: str = typer.Argument(..., help=f"image to build: {', '.join(BUILDERS)}"),
    force: bool = typer.Option(False, "--force", "-f", help="rebuild even if the image exists"),
    iso: Path | None = typer.Option(None, "--iso", help="Windows: the install ISO (Windows Server evaluation media)"),
    virtio_iso: Path | None = typer.Option(None, "--virtio-iso", help="Windows: the virtio-win ISO (drivers, guest agent)"),
    edition: str = typer.Option("standard", "--edition",
                                help="Windows: standard, standard-core, datacenter, datacenter-core, an image index "
                                     "or an image's exact name"),
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
) -> None:
    """Build a golden image into the image store (needs root)."""
    builder = BUILDERS.get(name)
    if builder is None:
        fail(f"unknown image {name!r}; known images: {', '.join(BUILDERS)}")
    windows_only = {"--iso": iso, "--virtio-iso": virtio_iso, "--password-file": password_file, "--out": out_dir,
                    "--product-key": product_key}
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
    tasks = {p: progress.add_task(p, total=1.0, start=False) for p in builder.phases}

    def on_progress(phase: str, fraction: float) -> None:
        task = tasks.get(phase)
        if task is None:
            task = tasks[phase] = progress.add_task(phase, total=1.0)
        if not progress.tasks[task].started:
            progress.start_task(task)
        progress.update(task, completed=fraction)
        if fraction >= 1.0:
            progress.stop_task(task)

    t0 = time.monotonic()
    extra: dict[str, object] = {}
    if name.startswith("windows-"):
        extra = {"options": windows_options, "accel": _windows_accel(store)}
    if name == "guest-vhdx":
        extra = {"vhdx": vhdx}
    try:
        with progress:
            m = builder.load()(store, name, progress=on_progress, force=force, **extra)
    except BuildError as e:
        fail(str(e), code=1)
    except ImageError as e:
        fail(str(e))
    except OSError as e:
        fail(os_error(e, store), code=1)
    except KeyboardInterrupt:
        fail(f"interrupted; the build of {name} left nothing in the store", code=130)
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
    from hyperlab.host.accel import resolve_accel

    report = resolve_accel("auto", store)
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
        typer.echo(json.dumps({"store": str(store.root), "images": data}, indent=2))
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


if __name__ == "__main__":  # pragma: no cover
    image_app()
