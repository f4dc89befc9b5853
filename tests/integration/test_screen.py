"""The screenshot watchdog on real guests under libvirt: a screen that changes is kept and never
called frozen, a frozen one fails in bounded time naming its PNG, a guest without a display is
never called frozen.

The guest is the ticker (src/hyperlab/images/ticker.S), which writes a line on its VGA text
screen every 5 s; pausing it (virDomainSuspend) freezes that screen for good, as a hung install
would. Intervals are seconds here instead of minutes; the logic is the one `lab image build`
and `lab up` use.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from PIL import Image

from hyperlab.host.screen import ScreenFrozen, ScreenKeeper
from hyperlab.images.ticker import KERNEL

pytestmark = [pytest.mark.vm, pytest.mark.libvirtd]

INTERVAL = 1.0
FROZEN_AFTER = 8.0  # longer than the ticker's 5 s between lines


@pytest.fixture()
def folder() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hyperlab-screen-", dir="/var/tmp"))
    os.chmod(d, 0o755)  # QEMU (its own user) reads the kernel from here
    (d / "ticker").write_bytes(KERNEL)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ticker_domain(conn: Any, folder: Path, *, video: bool) -> Any:
    name = f"hl-screentest-{os.getpid()}-{'vga' if video else 'none'}"
    devices = "<video><model type='vga'/></video>" if video else ""
    xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type><kernel>{folder / 'ticker'}</kernel></os>
      <devices>{devices}<memballoon model='none'/></devices></domain>"""
    return conn.createXML(xml, 0)  # transient: gone when destroyed


def stop(domain: Any) -> None:
    try:
        domain.destroy()
    except libvirt.libvirtError:
        pass


def test_a_changing_screen_is_kept_and_a_frozen_one_fails_in_bounded_time(conn: Any, folder: Path) -> None:
    domain = ticker_domain(conn, folder, video=True)
    changes: list[Path] = []
    keeper = ScreenKeeper(domain, "ticker", folder, "ticker.screen", interval=INTERVAL, frozen_after=FROZEN_AFTER,
                          keep=3, on_shot=lambda path, changed: changes.append(path) if changed else None)
    try:
        with keeper:
            start = time.monotonic()
            while time.monotonic() - start < 16:  # three of the ticker's lines, and then some
                keeper.check(alive=False)  # never frozen: it changes every 5 s
                time.sleep(0.25)
            assert len(changes) >= 3, f"the ticker's screen changed only {len(changes)} times: {keeper.failure}"

            domain.suspend()  # the vCPU stops: the screen stands still from now on
            frozen_at = time.monotonic()
            with pytest.raises(ScreenFrozen) as raised:
                while time.monotonic() - frozen_at < FROZEN_AFTER + 30:
                    keeper.check(alive=False)
                    time.sleep(0.25)
            waited = time.monotonic() - frozen_at
    finally:
        stop(domain)
    assert waited <= FROZEN_AFTER + 3 * INTERVAL + 5, f"a frozen screen took {waited:.0f} s to be reported"
    newest = keeper.latest
    assert newest is not None and str(newest) in str(raised.value)
    assert "the screen has not changed for" in str(raised.value)
    with Image.open(io.BytesIO(newest.read_bytes())) as png:
        assert png.format == "PNG" and png.size == (720, 400)
    kept = sorted(folder.glob("ticker.screen-*.png"))
    assert len(kept) <= 3 and newest in kept


def test_a_guest_without_a_display_is_never_called_frozen(conn: Any, folder: Path) -> None:
    domain = ticker_domain(conn, folder, video=False)
    keeper = ScreenKeeper(domain, "ticker", folder, "ticker.screen", interval=0.5, frozen_after=1.0)
    try:
        with keeper:
            start = time.monotonic()
            while time.monotonic() - start < 5:
                keeper.check(alive=False)
                time.sleep(0.25)
    finally:
        stop(domain)
    assert keeper.latest is None and not list(folder.glob("*.png"))
    assert keeper.failure, "libvirt's reason for having no screenshot is kept"
