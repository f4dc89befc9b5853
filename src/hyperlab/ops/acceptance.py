"""`lab acceptance LAB --iso PATH`: one run on a real KVM host, kept in one archive a maintainer reads.

No Windows boots on the machines hyperlab is developed on, so what only Windows can prove is
proven on the hosts of the people who have it. This run does, in order, exactly what a user
would type, each a `lab` command of its own whose output is kept whole:

    doctor        lab doctor LAB --json                      (kept; the run goes on either way)
    image ...     lab image build NAME ...                   each image the user's media make
    up            lab up LAB --instance acceptance
    check-before  lab check LAB --instance acceptance --json (expected: nothing passes yet)
    solve         lab solve LAB --instance acceptance        every step's reference solution
    check-after   lab check LAB --instance acceptance --json (expected: every step with a solution passes)
    down          lab down LAB --instance acceptance         (not with --keep)

A command that fails stops the commands that need it (no `up` after a failed build), but the
archive is always written: a failed run is the one most worth reading. It holds the commands'
logs, `summary.json` (each command, its exit code and time, the verdict), `versions.json` (hyperlab,
Python, kernel, libvirt, QEMU, the CPU and its virtualization flags), the checkers' JSON, the image
builds' logs and screenshots, the nodes' screenshots and QEMU logs. It holds no secret: not the
instance's passwords or keys, not the build's password, and the credentials libvirt passes to
Linux guests are cut out of the QEMU logs.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hyperlab import __version__
from hyperlab.core.catalog import IMAGES
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import HostFacts, instance_folder
from hyperlab.host.facts import images_root
from hyperlab.core.needs import lab_needs

INSTANCE = "acceptance"
QEMU_LOGS = Path("/var/log/libvirt/qemu")
MAX_COPY = 64 << 20  # a log larger than this is kept only in its last 64 MiB
CREDENTIAL = re.compile(r"(io\.systemd\.credential(?:\.binary)?:[^=\s,]+=)[^\s,']*")
VIRT_FLAGS = ("vmx", "svm", "ept", "npt", "vpid", "hypervisor", "x2apic", "avic", "apicv")

Echo = Callable[[str], None]


@dataclass(frozen=True)
class AcceptanceOptions:
    lab: str  # as the user gave it (an id or a lab.yaml path): passed on to each `lab` command
    iso: Path | None = None
    virtio_iso: Path | None = None
    vhdx: Path | None = None
    edition: str = "standard"
    frozen_after: int | None = None  # minutes, for the image builds
    keep: bool = False
    out: Path = Path(".")


@dataclass(frozen=True)
class Command:
    """One `lab` command of the run. `json_out` keeps its standard output as a file of its own."""

    name: str
    args: tuple[str, ...]
    needs: tuple[str, ...] = ()  # commands that must have succeeded for this one to run
    json_out: str | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "hyperlab", *self.args]

    def shown(self) -> str:
        return shlex.join(["lab", *self.args])


@dataclass
class Record:
    name: str
    command: str
    exit_code: int | None = None  # None: not run
    seconds: float = 0.0
    log: str = ""
    note: str = ""


@dataclass
class Summary:
    lab: str
    instance: str
    started: str
    finished: str = ""
    verdict: str = "not finished"
    steps_passed: int | None = None
    steps_total: int | None = None  # the steps with a reference solution
    manual_steps: list[str] = field(default_factory=list)  # kept in check-after.json, not judged
    records: list[Record] = field(default_factory=list)


# ------------------------------------------------------------------------------ the plan


def image_commands(loaded: LoadedLab, options: AcceptanceOptions) -> list[Command]:
    """`lab image build` for each image the user's media make (the others `lab up` builds itself)."""
    commands = []
    for name in lab_needs(loaded).images:
        spec = IMAGES[name]
        if spec.builder.startswith("windows:"):
            args = ["image", "build", name, "--iso", str(options.iso), "--edition", options.edition]
            if options.virtio_iso is not None:
                args += ["--virtio-iso", str(options.virtio_iso)]
            if options.frozen_after is not None:
                args += ["--frozen-after", str(options.frozen_after)]
            commands.append(Command(f"image-{name}", tuple(args)))
        elif name == "guest-vhdx" and options.vhdx is not None:
            commands.append(Command(f"image-{name}", ("image", "build", name, "--vhdx", str(options.vhdx))))
    return commands


def commands(loaded: LoadedLab, options: AcceptanceOptions) -> list[Command]:
    lab, on = options.lab, ("--instance", INSTANCE)
    images = image_commands(loaded, options)
    built = tuple(c.name for c in images)
    run = [
        Command("doctor", ("doctor", lab, "--json"), json_out="doctor.json"),
        *images,
        Command("up", ("up", lab, *on), needs=built),
        Command("check-before", ("check", lab, *on, "--json"), needs=("up",), json_out="check-before.json"),
        Command("solve", ("solve", lab, *on), needs=("up",)),
        Command("check-after", ("check", lab, *on, "--json"), needs=("up",), json_out="check-after.json"),
    ]
    if not options.keep:
        run.append(Command("down", ("down", lab, *on), needs=("up",)))
    return run


def manual_steps(loaded: LoadedLab) -> list[str]:
    """Steps without a reference solution (chapter-2: those inside the 2003 guests): done by hand,
    so an acceptance run cannot expect them to pass; their results are kept, not judged."""
    return [s.id for s in loaded.lab.steps if not s.solution]


def verdict(records: list[Record], after: dict[str, object] | None,
            manual: frozenset[str] = frozenset()) -> tuple[str, int | None, int | None]:
    """"passed" when every step with a reference solution passed after the solutions; else what
    stopped or failed first. Returns (verdict, steps passed, steps judged)."""
    by_name = {r.name: r for r in records}
    for r in records:
        if r.name in ("doctor", "check-before", "check-after", "down"):
            continue
        if r.exit_code is None:
            return f"not run: {r.name} ({r.note})", None, None
        if r.exit_code != 0:
            return f"failed: {r.name} (exit {r.exit_code})", None, None
    steps = after.get("steps") if isinstance(after, dict) else None
    if not isinstance(steps, list) or "check-after" not in by_name or not all(isinstance(s, dict) for s in steps):
        return "failed: check-after gave no result", None, None
    judged = [s for s in steps if s.get("id") not in manual]
    passed = sum(1 for s in judged if s.get("status") == "PASS")
    if judged and passed == len(judged):
        return "passed", passed, len(judged)
    return f"failed: {passed} of {len(judged)} steps pass after the solutions", passed, len(judged)


# ------------------------------------------------------------------------------ the shell


def run_command(command: Command, folder: Path, number: int, echo: Echo) -> Record:
    """Run one `lab` command; its output goes to NN-name.log (and to `echo`), its JSON to its file."""
    log_name = f"{number:02d}-{command.name}.log"
    record = Record(command.name, command.shown(), log=log_name)
    echo(f"$ {command.shown()}")
    start = time.monotonic()
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    with (folder / log_name).open("w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ {command.shown()}\n")
        json_file = (folder / command.json_out).open("wb") if command.json_out else None
        try:
            proc = subprocess.Popen(command.argv(), stdout=json_file or subprocess.PIPE,
                                    stderr=subprocess.PIPE if json_file else subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, text=True, errors="replace")
            stream = proc.stderr if json_file else proc.stdout
            assert stream is not None
            for line in stream:
                log.write(line)
                log.flush()
                echo(f"  {line.rstrip()}")
            record.exit_code = proc.wait()
        finally:
            if json_file is not None:
                json_file.close()
        record.seconds = round(time.monotonic() - start, 1)
        log.write(f"# exit {record.exit_code} after {record.seconds} s\n")
    echo(f"  -> exit {record.exit_code} after {record.seconds:.0f} s")
    return record


def versions() -> dict[str, object]:
    """What the maintainer needs to know about this host to read the rest."""
    found: dict[str, object] = {"hyperlab": __version__, "python": platform.python_version(),
                                "kernel": platform.release(), "machine": platform.machine()}
    try:
        import libvirt

        conn = libvirt.open("qemu:///system")
        try:
            found["libvirt"] = _dotted(conn.getLibVersion())
            found["qemu"] = _dotted(conn.getVersion())
        finally:
            conn.close()
    except Exception as exc:  # libvirtError, ImportError: the host's state is what is recorded
        found["libvirt"] = f"not reachable: {str(exc).strip()[:200]}"
    found["os"] = _os_release()
    found["cpu"] = _cpu()
    found["kvm_device"] = os.path.exists("/dev/kvm")
    return found


def _dotted(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def _cpu() -> dict[str, object]:
    model, vendor, flags = "unknown", "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key == "vendor_id":
                vendor = value.strip()
            elif key == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": model, "vendor": vendor, "count": os.cpu_count(),
            "virtualization_flags": sorted(f for f in VIRT_FLAGS if f in flags)}


def redacted(text: str) -> str:
    return CREDENTIAL.sub(r"\1<redacted>", text)


def _copy_text(source: Path, target: Path) -> None:
    with source.open("rb") as f:
        size = source.stat().st_size
        if size > MAX_COPY:
            f.seek(size - MAX_COPY)
        data = f.read(MAX_COPY).decode("utf-8", "replace")
    target.write_text(redacted(data), encoding="utf-8")


def collect_images(loaded: LoadedLab, folder: Path) -> None:
    """The image builds' logs, screenshots and manifests (never the work folder: it holds the password)."""
    root, target = images_root(), folder / "images"
    target.mkdir(exist_ok=True)
    for name in lab_needs(loaded).images:
        for path in (root / f"{name}.build.log", root / f"{name}.json", QEMU_LOGS / f"hl-build-{name}.log"):
            if path.is_file():
                _copy_text(path, target / path.name)
        for png in sorted(root.glob(f"{name}.screen-*.png")):
            (target / png.name).write_bytes(png.read_bytes())


def collect_instance(loaded: LoadedLab, facts: HostFacts, domains: list[str], folder: Path) -> None:
    """The nodes' screenshots and QEMU logs (the instance folder's secrets, keys and disks stay)."""
    source, target = instance_folder(facts, loaded.lab.id, INSTANCE), folder / "nodes"
    target.mkdir(exist_ok=True)
    for png in sorted(source.glob("*.screen-*.png")):
        (target / png.name).write_bytes(png.read_bytes())
    for domain in domains:
        log = QEMU_LOGS / f"{domain}.log"
        if log.is_file():
            _copy_text(log, target / log.name)


def write_archive(folder: Path, out: Path) -> Path:
    archive = out / f"{folder.name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


README = """hyperlab acceptance run of {lab}

summary.json      each command, its exit code and time, and the verdict
versions.json     hyperlab, Python, kernel, libvirt, QEMU, CPU and its virtualization flags
NN-*.log          each command's whole output, in the order they ran
doctor.json       `lab doctor {lab} --json`
check-*.json      the checkers' results before and after the reference solutions
images/           the image builds' logs, manifests and newest screenshots
nodes/            the nodes' newest screenshots and QEMU logs (credentials cut out)

No passwords, keys or disks are in this archive.
"""


def run_acceptance(loaded: LoadedLab, options: AcceptanceOptions, facts: HostFacts, domains: list[str],
                   echo: Echo) -> tuple[Summary, Path]:
    """Run every command in order (skipping those whose needs failed), then write the archive."""
    stamp = datetime.now(UTC)
    folder = options.out / f"hyperlab-acceptance-{loaded.lab.id}-{stamp:%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True)
    summary = Summary(loaded.lab.id, INSTANCE, stamp.isoformat(timespec="seconds"), manual_steps=manual_steps(loaded))
    (folder / "README.txt").write_text(README.format(lab=loaded.lab.id))
    (folder / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
    ok: set[str] = set()
    plan = commands(loaded, options)
    for number, command in enumerate(plan, 1):
        missing = [n for n in command.needs if n not in ok]
        if missing:
            summary.records.append(Record(command.name, command.shown(), note=f"needs {', '.join(missing)}"))
            continue
        if command.name == "down":
            collect_instance(loaded, facts, domains, folder)  # before `down` deletes the instance folder
        record = run_command(command, folder, number, echo)
        summary.records.append(record)
        if record.exit_code == 0 or command.name in ("check-before", "check-after", "doctor"):
            ok.add(command.name)  # a checker's FAIL is a result, not a broken command
    if options.keep or "up" not in ok:
        collect_instance(loaded, facts, domains, folder)
    collect_images(loaded, folder)
    after = _read_json(folder / "check-after.json")
    summary.verdict, summary.steps_passed, summary.steps_total = verdict(summary.records, after,
                                                                         frozenset(summary.manual_steps))
    summary.finished = datetime.now(UTC).isoformat(timespec="seconds")
    (folder / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary, write_archive(folder, options.out)


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
