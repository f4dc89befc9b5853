"""Build `windows-server-2019/2022/2025` golden images from the user's ISO (seeds 000 and 002).

Phases reported to ``progress`` (each 0.0 at its start, 1.0 at its end):

media
    The ISO is checked (UDF/ISO 9660 read in Python: `sources/install.wim` or `.esd` must be on
    it) and the edition resolved to an image index from the WIM's own list; the answer ISO
    (`autounattend.xml`, `hyperlab\\build.ps1`, `hyperlab\\sysprep.ps1`) and a 64 GiB qcow2 are made.
setup
    A transient-free libvirt domain `hl-build-<name>` boots the ISO under UEFI with the virtio and
    answer ISOs beside it. Windows Setup partitions, loads the virtio drivers (DriverPaths) and
    copies the image, then reboots: the domain has `on_reboot=destroy`, so every guest reboot is
    seen here as a stop and the domain is started again. That is how phases are told apart, and
    why "press any key to boot from CD" is answered only during the first boot (see KEY_WINDOW).
first boot
    specialize and OOBE; the first logon runs `build.ps1` (WinRM, virtio guest tools, agent).
agent
    The guest agent answers.
tools
    `C:\\hyperlab\\build\\tools.done` exists (or `tools.failed` gives the reason).
sysprep
    The host runs `sysprep.ps1` through the agent (`sysprep /generalize /oobe /shutdown /mode:vm`);
    the guest powers off.
manifest
    `qemu-img convert` drops unused clusters into `<name>.qcow2` (0444) and the manifest is written.

Re-running reuses what is done: the work folder `.<name>.build/` keeps the disk and a state file;
an interrupted build resumes at its last finished phase (a sysprepped disk is only published),
unless the ISO, the edition or --force say otherwise.

"Press any key to boot from CD or DVD": Microsoft's UEFI CD loader (efisys.bin) always asks and,
without a key, returns to the firmware, which then boots the next device. Remastering the ISO with
efisys_noprompt.bin would mean rewriting 5 GB of UDF; instead Enter is sent through libvirt
(`virDomainSendKey`) every second during the first KEY_WINDOW seconds of the first boot only. Later
boots get no key, so the prompt times out and the firmware boots the installed disk, as intended.

No TPM: Windows Server (2025 included) does not require one, unlike Windows 11.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import libvirt

from hyperlab.core.catalog import IMAGES
from hyperlab.guest.agent import AgentChannel, AgentCommandError
from hyperlab.guest.base import ChannelError
from hyperlab.core.model import DEFAULT_URI
from hyperlab.host.conn import connect, lookup_domain
from hyperlab.host.screen import FROZEN_AFTER, OnShot, ScreenFrozen, ScreenKeeper
from hyperlab.images.answer_media import write_iso
from hyperlab.images.common import BuildError, Progress, qemu_img_progress, run_logged
from hyperlab.images.isofs import (
    EditionError,
    IsoError,
    WindowsMedia,
    inspect_windows_iso,
    select_image,
)
from hyperlab.images.store import ImageError, ImageManifest, ImageStore, qemu_img
from hyperlab.render.libvirt_xml import BUILD_DESCRIPTION, build_domain_xml
from hyperlab.render.unattend import KMS_CLIENT_KEYS, LOCALES, InstallAnswer, autounattend_xml
from hyperlab.render.winscripts import BUILD_PS1, SYSPREP_PS1

VERSIONS: dict[str, Literal["2019", "2022", "2025"]] = {
    "windows-server-2019": "2019", "windows-server-2022": "2022", "windows-server-2025": "2025",
}
PHASES = ("media", "setup", "first boot", "agent", "tools", "sysprep", "manifest")
KEY_WINDOW = 30.0  # seconds of the first boot during which Enter is sent (the prompt waits ~5 s)
KEY_ENTER = 28  # Linux key code (libvirt VIR_KEYCODE_SET_LINUX)
MAX_BOOTS = 8  # Setup reboots 2-3 times; more means a boot loop
TIMEOUTS = {"setup": 3600.0, "first boot": 3600.0, "agent": 1800.0, "sysprep": 1800.0}
TOOLS_DONE = r"C:\hyperlab\build\tools.done"
TOOLS_FAILED = r"C:\hyperlab\build\tools.failed"
SYSPREP_SCRIPT = r"C:\hyperlab\build\sysprep.ps1"


class WindowsInputError(ImageError):
    """A path or option given to the Windows build is wrong; one line naming it."""


@dataclass(frozen=True)
class WindowsOptions:
    iso: Path
    virtio_iso: Path | None = None
    edition: str = "standard"
    locale: str = "en-US"
    product_key: str | None = None  # a key, or "kms" for Microsoft's KMS client key of the edition
    password_file: Path | None = None


# ------------------------------------------------------------------------------ pure parts


def version_of(name: str) -> Literal["2019", "2022", "2025"]:
    if name not in VERSIONS:
        raise WindowsInputError(f"{name!r} is not a Windows image; known: {', '.join(VERSIONS)}")
    return VERSIONS[name]


def check_paths(options: WindowsOptions) -> None:
    """Path checks only (no content read): what --dry-run needs."""
    for flag, path in (("--iso", options.iso), ("--virtio-iso", options.virtio_iso)):
        if path is None:
            continue
        if not path.exists():
            raise WindowsInputError(f"{flag} {path}: no such file")
        if not path.is_file():
            raise WindowsInputError(f"{flag} {path}: not a file")
        if not os.access(path, os.R_OK):
            raise WindowsInputError(f"{flag} {path}: not readable (run as root, or chmod a+r)")
    if options.locale not in LOCALES:
        raise WindowsInputError(f"--locale {options.locale}: use one of {', '.join(LOCALES)}")


def check_media(options: WindowsOptions) -> tuple[WindowsMedia, int]:
    """Read the ISO's file tree: Windows install media, and the image index of the edition asked for."""
    try:
        media = inspect_windows_iso(options.iso)
        return media, select_image(media.images, options.edition)
    except EditionError as exc:
        raise WindowsInputError(f"--edition: {exc}") from None
    except IsoError as exc:
        raise WindowsInputError(f"--iso {exc}") from None


def product_key(version: str, edition: str, given: str | None) -> str | None:
    if given is None:
        return None
    if given.lower() != "kms":
        return given
    family = "datacenter" if edition.startswith("datacenter") else "standard"
    return KMS_CLIENT_KEYS[(version, family)]


def answer_files(version: Literal["2019", "2022", "2025"], index: int, password: str, options: WindowsOptions) -> dict[str, bytes]:
    answer = InstallAnswer(version=version, image_index=index, admin_password=password, locale=LOCALES[options.locale],
                           product_key=product_key(version, options.edition, options.product_key))
    return {
        "autounattend.xml": autounattend_xml(answer).encode(),
        "hyperlab/build.ps1": BUILD_PS1.replace("\n", "\r\n").encode(),
        "hyperlab/sysprep.ps1": SYSPREP_PS1.replace("\n", "\r\n").encode(),
    }


def read_password(options: WindowsOptions, work: Path) -> str:
    """The build's Administrator password: from --password-file, else random and kept 0600 in the work folder.

    Only the build uses it (each node gets its own from its unattend medium); it is never printed.
    """
    if options.password_file is not None:
        try:
            value = options.password_file.read_text().strip()
        except OSError as exc:
            raise WindowsInputError(f"--password-file {options.password_file}: {exc.strerror}") from None
        if not value:
            raise WindowsInputError(f"--password-file {options.password_file} is empty")
        return value
    path = work / "password"
    if path.is_file():
        return path.read_text().strip()
    value = "Hl-" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y") + "7b"
    work.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


# ------------------------------------------------------------------------- the state machine


@dataclass
class Tick:
    """What the host sees of the build guest at one moment."""

    now: float
    running: bool
    agent: bool = False
    tools: Literal["done", "failed"] | None = None
    tools_error: str = ""


@dataclass
class BuildWatch:
    """Turns what the host sees into what to do next. Pure: a fake clock tests it.

    Actions: "start" (the guest stopped: it rebooted), "keys" (answer the CD prompt),
    "sysprep" (run it through the agent), "done". Phase changes go to `on_phase(old, new)`.
    """

    phase: str = "setup"
    boots: int = 1
    phase_since: float = 0.0
    boot_since: float = 0.0
    on_phase: Callable[[str, str], None] = field(default=lambda old, new: None, repr=False)

    def _enter(self, phase: str, now: float) -> None:
        old, self.phase, self.phase_since = self.phase, phase, now
        self.on_phase(old, phase)

    def step(self, tick: Tick) -> list[str]:
        if self.phase != "done" and self.phase in TIMEOUTS and tick.now - self.phase_since > TIMEOUTS[self.phase]:
            raise BuildError(f"phase {self.phase!r} did not finish within {TIMEOUTS[self.phase] / 60:.0f} min")
        if self.phase == "sysprep":
            if not tick.running:
                self._enter("done", tick.now)
                return ["done"]
            return []
        if not tick.running:
            if self.boots >= MAX_BOOTS:
                raise BuildError(f"the guest rebooted {self.boots} times in phase {self.phase!r} (a boot loop?)")
            self.boots += 1
            self.boot_since = tick.now
            if self.phase == "setup":
                self._enter("first boot", tick.now)
            return ["start"]
        if self.phase == "setup":
            return ["keys"] if self.boots == 1 and tick.now - self.boot_since < KEY_WINDOW else []
        if self.phase == "first boot" and tick.agent:
            self._enter("agent", tick.now)
        if self.phase == "agent" and tick.agent:
            if tick.tools == "failed":
                raise BuildError(f"installing the guest tools failed in the guest: {tick.tools_error or 'no reason given'}")
            if tick.tools == "done":
                self._enter("tools", tick.now)
                self._enter("sysprep", tick.now)
                return ["sysprep"]
        return []


# ------------------------------------------------------------------------------- the shell


@dataclass(frozen=True)
class BuildState:
    """Kept in the work folder so that a re-run resumes instead of installing again."""

    iso: str
    iso_size: int
    iso_mtime: float
    edition: str
    index: int
    phase: str = "media"

    @classmethod
    def load(cls, path: Path) -> BuildState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    def same_input(self, other: BuildState) -> bool:
        return (self.iso, self.iso_size, self.iso_mtime, self.edition, self.index) == (
            other.iso, other.iso_size, other.iso_mtime, other.edition, other.index)


def dry_run(name: str, options: WindowsOptions, out: Path) -> list[Path]:
    """Write the answer media the build would use, without reading the ISO's content.

    The edition then maps to Microsoft's usual image index (DEFAULT_INDEX); a real build reads the
    WIM's own list instead. The password is a fresh random one kept 0600 beside the media.
    """
    version = version_of(name)
    check_paths(options)
    try:
        index = select_image((), options.edition)
    except EditionError as exc:
        raise WindowsInputError(f"--edition: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    files = answer_files(version, index, read_password(options, out), options)
    iso = out / f"{name}.answer.iso"
    write_iso(files, iso, "HLANSWER")
    xml = out / "autounattend.xml"
    xml.write_bytes(files["autounattend.xml"])
    os.chmod(xml, 0o600)
    return [iso, xml]


def build_windows(store: ImageStore, name: str, options: WindowsOptions, *, progress: Progress | None = None,
                  force: bool = False, uri: str = DEFAULT_URI, accel: Literal["kvm", "tcg"] = "kvm",
                  sleep: Callable[[float], None] = time.sleep, on_screen: OnShot | None = None,
                  frozen_after: float = FROZEN_AFTER) -> ImageManifest:
    """Build (or resume building) `name`; screenshots go beside the build log (`<name>.screen-NNNN.png`,
    each one to `on_screen`), and a screen frozen for `frozen_after` s while the agent is silent fails."""
    report = progress or (lambda _phase, _fraction: None)
    version = version_of(name)
    check_paths(options)
    if shutil.which("qemu-img") is None:
        raise BuildError("qemu-img not found; install it with: apt-get install qemu-utils")
    with store.lock(name):
        work = store.root / f".{name}.build"
        state_path = work / "state.json"
        report("media", 0.0)
        media, index = check_media(options)
        stat = options.iso.stat()
        wanted = BuildState(str(options.iso.resolve()), stat.st_size, stat.st_mtime, options.edition, index)
        previous = BuildState.load(state_path)
        if force or previous is None or not previous.same_input(wanted):
            shutil.rmtree(work, ignore_errors=True)
            previous = None
        work.mkdir(mode=0o755, parents=True, exist_ok=True)
        state = previous or wanted
        disk, answer_iso, log = work / "disk.qcow2", work / "answer.iso", store.root / f"{name}.build.log"
        write_iso(answer_files(version, index, read_password(options, work), options), answer_iso, "HLANSWER")
        if not disk.exists():
            qemu_img("create", "-q", "-f", "qcow2", str(disk), str(IMAGES[name].virtual_size))
        report("media", 1.0)

        conn = connect(uri)
        domain_name = f"hl-build-{name}"
        try:
            if state.phase != "sysprepped":
                def keeper(domain: Any) -> ScreenKeeper:
                    return ScreenKeeper(domain, domain_name, store.root, f"{name}.screen", on_shot=on_screen,
                                        frozen_after=frozen_after)

                _install(conn, domain_name, work, options, answer_iso, disk, accel, state, state_path, report, sleep,
                         keeper)
                state = BuildState(**{**asdict(state), "phase": "sysprepped"})
                state.save(state_path)
        finally:
            conn.close()

        report("manifest", 0.0)
        store.manifest_path(name).unlink(missing_ok=True)
        staged = work / "golden.qcow2"
        run_logged(["qemu-img", "convert", "-p", "-O", "qcow2", str(disk), str(staged)], log,
                   on_line=qemu_img_progress(lambda f: report("manifest", f * 0.9)), what="qemu-img convert")
        store.install_file(staged, f"{name}.qcow2")
        manifest = store.finish(name, os_name="windows", builder="windows", notes={
            "version": version, "edition": options.edition, "image_index": index, "iso": options.iso.name,
            "virtio_iso": options.virtio_iso.name if options.virtio_iso else None, "locale": options.locale,
            "install_image": media.install_image,
        })
        shutil.rmtree(work, ignore_errors=True)
        report("manifest", 1.0)
        return manifest


def _install(conn: Any, domain_name: str, work: Path, options: WindowsOptions, answer_iso: Path, disk: Path,
             accel: Literal["kvm", "tcg"], state: BuildState, state_path: Path, report: Progress,
             sleep: Callable[[float], None], keeper: Callable[[Any], ScreenKeeper]) -> None:
    """Define (or find) the build domain and drive it with BuildWatch until sysprep powered it off,
    its screen kept and watched by `keeper(domain)` all along."""
    xml = build_domain_xml(domain_name, disk, options.iso, options.virtio_iso, answer_iso, accel)
    domain = lookup_domain(conn, domain_name)
    if domain is not None and BUILD_DESCRIPTION not in domain.XMLDesc(0):
        raise WindowsInputError(f"a domain named {domain_name} exists and is not a hyperlab build; remove or rename it")
    if domain is None:
        domain = conn.defineXML(xml)
    elif state.phase == "sysprep" and not domain.isActive():
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)  # sysprep had powered it off: the disk is ready
        return
    resume = state.phase in ("first boot", "agent", "tools", "sysprep")
    watch = BuildWatch(phase="first boot" if resume else "setup", boots=2 if resume else 1)
    clock = time.monotonic
    watch.phase_since = watch.boot_since = clock()

    def on_phase(old: str, new: str) -> None:
        report(old, 1.0)
        if new != "done":
            report(new, 0.0)
            BuildState(**{**asdict(state), "phase": new}).save(state_path)

    watch.on_phase = on_phase
    report(watch.phase, 0.0)
    if not domain.isActive():
        domain.create()
    channel = AgentChannel(domain, domain_name, "windows")
    screen = keeper(domain)
    with screen:
        _drive(domain, domain_name, channel, watch, screen, clock, sleep)


def _drive(domain: Any, domain_name: str, channel: AgentChannel, watch: BuildWatch, screen: ScreenKeeper,
           clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    try:
        while True:
            running = bool(domain.isActive())
            tick = Tick(clock(), running)
            if running and watch.phase in ("first boot", "agent"):
                tick.agent = channel.ping()
                if tick.agent and watch.phase == "agent":
                    tick.tools, tick.tools_error = _tools_state(channel)
            try:
                screen.check(tick.agent or watch.phase == "sysprep")  # sysprep's screen may stand still
                actions = watch.step(tick)
            except (BuildError, ScreenFrozen) as exc:
                seen = f"the newest screenshot is {screen.latest}" if screen.latest and isinstance(exc, BuildError) else ""
                raise BuildError("; ".join(part for part in (
                    str(exc), seen, f"watch the guest's screen: virsh vncdisplay {domain_name}",
                    "the next run resumes from here") if part)) from None
            for action in actions:
                if action == "start":
                    domain.create()
                elif action == "keys":
                    try:
                        domain.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 0, [KEY_ENTER], 1, 0)
                    except libvirt.libvirtError:
                        pass  # the guest was between states; the next second tries again
                elif action == "sysprep":
                    channel.run(["powershell.exe", "-NoProfile", "-ExecutionPolicy", "Bypass", "-File", SYSPREP_SCRIPT],
                                timeout=120)
                elif action == "done":
                    domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                    return
            sleep(1.0)
    except ChannelError as exc:
        raise BuildError(f"{exc}; the next run resumes from here") from None


def _tools_state(channel: Any) -> tuple[Literal["done", "failed"] | None, str]:
    for path, verdict in ((TOOLS_DONE, "done"), (TOOLS_FAILED, "failed")):
        try:
            data = channel.read_file(path, limit=4096)
        except AgentCommandError:
            continue
        return verdict, data.decode("utf-8", "replace").strip()[:300]  # type: ignore[return-value]
    return None, ""
