"""Helpers shared by the image builders: phases, progress, tools, host apt sources."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hyperlab.images.store import ImageError, ImageManifest, ImageStore, utc_now

Progress = Callable[[str, float], None]
"""``progress(phase, fraction)``: fraction of *that phase* done, 0.0 at its start, 1.0 at its end."""

DEBIAN_SUITE = "bookworm"
APT_DIR = Path("/etc/apt")


class BuildError(ImageError):
    """A build step failed. The message is one line and names the log to read."""


class PrerequisiteError(ImageError):
    """The host cannot build images yet (not root, tools or apt sources missing): user-fixable."""


def _noop(phase: str, fraction: float) -> None:
    pass


class PhaseRunner:
    """Calls ``progress`` at the start and end of each phase and records their durations."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress or _noop
        self.timings: dict[str, float] = {}
        self.current: str | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Callable[[float], None]]:
        self.current = name
        t0 = time.monotonic()
        self.progress(name, 0.0)

        def update(fraction: float) -> None:
            self.progress(name, max(0.0, min(1.0, fraction)))

        yield update
        self.timings[name] = round(time.monotonic() - t0, 2)
        self.progress(name, 1.0)
        self.current = None


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise PrerequisiteError(
            f"missing host tools: {', '.join(missing)}; run scripts/setup-host.sh "
            "(it installs scripts/packages/host.txt)"
        )


def require_root() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("building images needs root (mmdebstrap --mode=root, chroot): run as root")


def run_logged(
    argv: Sequence[str],
    log: Path,
    *,
    on_line: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    what: str | None = None,
) -> None:
    """Run ``argv``, appending its output to ``log``; on failure raise BuildError naming the log.

    ``on_line`` sees every line of output (stdout and stderr merged) as it arrives; carriage
    returns also end a line so ``qemu-img convert -p`` progress is seen live.
    """
    what = what or Path(argv[0]).name
    with open(log, "ab") as lf:
        lf.write(f"\n$ {' '.join(argv)}\n".encode())
        lf.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        assert proc.stdout is not None
        buf = b""
        tail: list[str] = []
        while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
            lf.write(chunk)
            buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for raw in parts:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                tail = (tail + [line])[-5:]
                if on_line:
                    on_line(line)
        rc = proc.wait()
    if rc != 0:
        last = next((t for t in reversed(tail) if t.startswith("E:")), tail[-1] if tail else "")
        raise BuildError(f"{what} failed (exit {rc}): {last[:200]} -- full log: {log}")


def host_apt_sources(suite: str = DEBIAN_SUITE, apt_dir: Path = APT_DIR) -> list[Path]:
    """The host's own apt source files that carry ``suite`` (deb822 ``.sources`` preferred).

    They are given to mmdebstrap as mirror arguments, so images are built from whatever mirror
    (or proxy, or snapshot) the host is configured for: never a hard-coded URL.
    """
    found: list[Path] = []
    d = apt_dir / "sources.list.d"
    candidates = sorted(d.glob("*.sources")) if d.is_dir() else []
    candidates += sorted(d.glob("*.list")) if d.is_dir() else []
    if (apt_dir / "sources.list").is_file():
        candidates.append(apt_dir / "sources.list")
    for p in candidates:
        try:
            text = p.read_text()
        except OSError:
            continue
        if p.suffix == ".sources":
            ok = _deb822_has_suite(text, suite)
        else:
            ok = any(
                re.match(rf"^\s*deb\s+(\[[^]]*\]\s+)?\S+\s+{re.escape(suite)}(\s|$)", line)
                for line in text.splitlines()
            )
        if ok:
            found.append(p)
    if not found:
        raise PrerequisiteError(
            f"no apt source for Debian {suite!r} in {apt_dir}/sources.list(.d); "
            f"images are built from the host's own apt sources: configure one (e.g. {apt_dir}/sources.list.d/debian.sources)"
        )
    return found


def _deb822_has_suite(text: str, suite: str) -> bool:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                fields[key] = val.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            return True
    return False


def mmdebstrap_progress(update: Callable[[float], None]) -> Callable[[str], None]:
    """Map mmdebstrap's ``I:`` lines to a fraction of the bootstrap phase."""
    steps = [
        ("running apt-get update", 0.05),
        ("downloading packages", 0.15),
        ("extracting archives", 0.35),
        ("installing essential packages", 0.45),
        ("installing remaining packages", 0.6),
        ("running --customize-hook", 0.9),
        ("cleaning package lists", 0.95),
        ("success in", 1.0),
    ]

    def on_line(line: str) -> None:
        for needle, frac in steps:
            if needle in line:
                update(frac)
                return

    return on_line


def qemu_img_progress(update: Callable[[float], None]) -> Callable[[str], None]:
    rx = re.compile(r"\(\s*([0-9.]+)/100%\)")

    def on_line(line: str) -> None:
        m = rx.search(line)
        if m:
            update(float(m.group(1)) / 100)

    return on_line


def work_dir(store: ImageStore, name: str) -> Path:
    """Scratch directory for a build, inside the store (same filesystem, not /tmp)."""
    return store.root / f".{name}.build"


def clean_dir(path: Path) -> None:
    """Remove a scratch tree; refuses if something is still mounted below it."""
    if not path.exists():
        return
    real = str(path.resolve())
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1].replace("\\040", " ")
            if mnt == real or mnt.startswith(real + "/"):
                raise BuildError(f"{mnt} is still mounted inside the build directory; unmount it and retry")
    shutil.rmtree(path)


@contextmanager
def build_workspace(store: ImageStore, name: str, runner: PhaseRunner, *, keep_work: bool) -> Iterator[tuple[Path, Path]]:
    """Lock the image, give the build a clean work folder (0755: apt's _apt user must reach it)
    and a fresh build log; on failure note the phase in the log; remove the work folder after."""
    with store.lock(name):
        store.ensure_root()
        work = work_dir(store, name)
        clean_dir(work)
        work.mkdir(mode=0o755)
        log = store.root / f"{name}.build.log"
        log.write_text(f"hyperlab build of {name} started {utc_now().isoformat()}\n")
        try:
            yield work, log
        except BaseException:
            with open(log, "a") as lf:
                lf.write(f"build failed in phase {runner.current}\n")
            raise
        finally:
            if not keep_work:
                try:
                    clean_dir(work)
                except BuildError:
                    pass


def publish(store: ImageStore, name: str, runner: PhaseRunner, *, kernel: Path, initrd: Path | None, disk: Path,
            builder: str, packages: list[str], cmdline: str | None, notes: dict[str, Any]) -> ImageManifest:
    """Move the staged kernel, initrd (when there is one) and disk into the store and write the manifest last."""
    with runner.phase("manifest"):
        # the old manifest goes first: a half-replaced image then reads as missing
        store.manifest_path(name).unlink(missing_ok=True)
        store.install_file(kernel, f"{name}.vmlinuz")
        if initrd is not None:
            store.install_file(initrd, f"{name}.initrd")
        store.install_file(disk, f"{name}.qcow2")
        manifest = store.finish(name, os_name="linux", builder=builder, packages=packages, kernel=f"{name}.vmlinuz",
                                initrd=f"{name}.initrd" if initrd is not None else None, cmdline=cmdline, notes=notes)
    manifest.notes["phase_seconds"] = dict(runner.timings)
    store.write_manifest(manifest)
    return manifest
