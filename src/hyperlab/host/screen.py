"""Screenshots of a guest's console while hyperlab waits on it, and a frozen screen caught early.

A Windows install that stops (a product-key page, "no disk found", automatic repair after the
Hyper-V role, a reboot that hangs in the firmware) used to be a silent wait of up to an hour.
While a Windows golden image builds and while Windows nodes boot and run their start state,
`ScreenKeeper` takes the console's screenshot (libvirt virDomainScreenshot) every `interval`
seconds in a thread of its own, keeps the newest `keep` as PNG (`<folder>/<prefix>-NNNN.png`,
numbering on from an earlier run's) and remembers when the screen last changed
(`hyperlab.render.screenshot.differs`: a blinking cursor is no change).

The waiting loops call `check(alive)` as they poll. It raises ScreenFrozen, naming the newest
PNG, once a screenshot taken `frozen_after` seconds or more after the last change still shows no
change, while the guest gave no other sign of life: the screenshots are the evidence, so a check
that happens to run just before the next screenshot never calls a screen frozen too early. Its agent answering is such a sign: a DC promotion runs for minutes behind an unchanging
logon screen, so `check(alive=True)` starts the count again. A guest that is off (between the
reboots of a build) is not frozen either; the loops that restart it judge that.

Any guest with a display (a <video> device) has screenshots; without one the keeper records why
(`failure`) and never calls a screen frozen.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt

from hyperlab.host.files import write_atomic
from hyperlab.render.screenshot import BadScreenshot, Screen, decode, differs

INTERVAL = 60.0  # seconds between screenshots
FROZEN_AFTER = 20 * 60.0  # a still screen and a silent guest for this long: it hangs
KEEP = 5  # newest screenshots kept per guest
MAX_BYTES = 64 << 20  # a screenshot larger than this is not read (4096 x 4096 RGB is 48 MiB)
PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")

OnShot = Callable[[Path, bool], None]  # (the PNG written, whether the screen changed)


class ScreenFrozen(Exception):
    """The guest's screen stood still, and the guest was silent, for longer than allowed."""


def screenshot(domain: Any) -> bytes:
    """The console's current screen, in the format the hypervisor chose (QEMU: PPM)."""
    stream = domain.connect().newStream(0)
    try:
        domain.screenshot(stream, 0, 0)
        chunks, size = [], 0
        while True:
            chunk = stream.recv(256 << 10)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BYTES:
                raise BadScreenshot(f"a screenshot over {MAX_BYTES >> 20} MiB")
            chunks.append(chunk)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise
    return b"".join(chunks)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class ScreenKeeper:
    """Screenshots of one domain every `interval` s (a thread, while used as a context manager)."""

    def __init__(self, domain: Any, label: str, folder: Path, prefix: str, *, interval: float = INTERVAL,
                 frozen_after: float = FROZEN_AFTER, keep: int = KEEP, on_shot: OnShot | None = None,
                 clock: Callable[[], float] = time.monotonic, grab: Callable[[Any], bytes] = screenshot) -> None:
        if not PREFIX.fullmatch(prefix):
            raise ValueError(f"screenshot prefix {prefix!r}")  # our own names only; never user text
        self.domain, self.label, self.folder, self.prefix = domain, label, folder, prefix
        self.interval, self.frozen_after, self.keep = interval, frozen_after, max(1, keep)
        self.on_shot = on_shot or (lambda _path, _changed: None)
        self.clock, self.grab = clock, grab
        self.latest: Path | None = None
        self.failure: str | None = None  # why the last screenshot could not be taken
        self._lock = threading.Lock()
        self._reference: Screen | None = None
        self._changed_at = self._shot_at = clock()
        self._number = self._last_number()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------------- taking screenshots

    def _last_number(self) -> int:
        found = [int(m.group(1)) for p in self.folder.glob(f"{self.prefix}-*.png")
                 if (m := re.fullmatch(re.escape(self.prefix) + r"-(\d{4,9})\.png", p.name))]
        return max(found, default=0)

    def _path(self, number: int) -> Path:
        return self.folder / f"{self.prefix}-{number:04d}.png"

    def shoot(self) -> Path | None:
        """Take one screenshot now; None when the guest is off or has no screen to take."""
        try:
            if not self.domain.isActive():
                self._still_alive()
                return None
            screen = decode(self.grab(self.domain))
        except (libvirt.libvirtError, BadScreenshot) as exc:
            self.failure = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            self._still_alive()  # no evidence of a frozen screen is not evidence of one
            return None
        now = self.clock()
        with self._lock:
            changed = self._reference is None or differs(self._reference.image, screen.image)
            if changed:
                self._reference, self._changed_at = screen, now
            self._shot_at = now
            self._number += 1
            path = self._path(self._number)
            write_atomic(path, screen.png)
            self._path(self._number - self.keep).unlink(missing_ok=True)
            self.latest, self.failure = path, None
        self.on_shot(path, changed)
        return path

    def _still_alive(self) -> None:
        with self._lock:
            self._changed_at = self.clock()

    # ------------------------------------------------------------------------- judging

    def check(self, alive: bool) -> None:
        """Called by the waiting loops; ScreenFrozen when the screen and the guest were still too long."""
        if alive:
            self._still_alive()
            return
        with self._lock:
            if self._reference is None:
                return
            still = self._shot_at - self._changed_at  # what the screenshots show, not how long we waited
            latest = self.latest
        if still > self.frozen_after:
            raise ScreenFrozen(f"{self.label}: the screen has not changed for {_duration(still)} and the guest "
                               f"does not answer; the newest screenshot is {latest}")

    # ------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.shoot()
            except OSError as exc:  # the folder went away or filled up: keep waiting, say why
                self.failure = f"writing a screenshot: {exc.strerror or exc}"
            self._stop.wait(self.interval)

    def __enter__(self) -> ScreenKeeper:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"screen-{self.prefix}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def check(keeper: ScreenKeeper | None, alive: bool) -> None:
    """`keeper.check(alive)` where there is a keeper (Linux nodes and tests have none)."""
    if keeper is not None:
        keeper.check(alive)


@contextlib.contextmanager
def keeping(keepers: list[ScreenKeeper]) -> Iterator[None]:
    """All keepers' threads run inside the block."""
    with contextlib.ExitStack() as stack:
        for keeper in keepers:
            stack.enter_context(keeper)
        yield
