"""The screenshot watchdog's pure parts and its wiring, with controlled stand-ins for the guest.

What a real guest's screen does (a ticker that writes to VGA, a paused guest) is proven in
tests/integration/test_screen.py; here a fake clock and fake screens play each case exactly.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import libvirt
import pytest
from PIL import Image, ImageDraw

from hyperlab.guest.reboots import HANG_TIMEOUT, MAX_RESETS, RebootFailed, RebootWatch, wait_back
from hyperlab.host.screen import ScreenFrozen, ScreenKeeper
from hyperlab.images import windows
from hyperlab.images.common import BuildError
from hyperlab.render.screenshot import STILL_TILES, BadScreenshot, changed_tiles, decode, differs


def ppm(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PPM")
    return out.getvalue()


def text_screen(lines: int, cursor: bool = False) -> Image.Image:
    """A 720x400 text-mode screen with `lines` lines of text and, optionally, a block cursor."""
    image = Image.new("RGB", (720, 400))
    draw = ImageDraw.Draw(image)
    for row in range(lines):
        draw.text((0, row * 16), f"hyperlab-ticker: up {5 * row} s", fill=(170, 170, 170))
    if cursor:
        draw.rectangle((9 * 30 + 5, 16 * 20 + 7, 9 * 31 + 4, 16 * 21 + 6), fill=(170, 170, 170))  # straddles 4 tiles
    return image


# ------------------------------------------------------------------------------ the pixels


def test_decode_turns_ppm_into_png() -> None:
    screen = decode(ppm(text_screen(3)))
    assert screen.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert screen.size == (720, 400)
    assert Image.open(io.BytesIO(screen.png)).tobytes() == text_screen(3).tobytes()


@pytest.mark.parametrize("data", [b"", b"P6\n", b"not an image at all", b"P6\n99999 99999\n255\n"])
def test_decode_refuses_what_is_no_image(data: bytes) -> None:
    with pytest.raises(BadScreenshot):
        decode(data)


def test_a_blinking_cursor_is_no_change_and_a_new_line_is() -> None:
    still, blink = text_screen(3), text_screen(3, cursor=True)
    assert 0 < changed_tiles(still, blink) <= STILL_TILES
    assert not differs(still, blink)
    assert differs(still, text_screen(4))
    assert not differs(still, text_screen(3))


def test_one_changed_pixel_counts_its_tile_and_a_new_size_counts_all() -> None:
    a = Image.new("RGB", (725, 401))
    b = a.copy()
    b.putpixel((724, 400), (0, 0, 1))  # the faintest change, in the partial corner tile
    assert changed_tiles(a, b) == 1
    assert changed_tiles(a, Image.new("RGB", (1024, 768))) == 64 * 48


# ------------------------------------------------------------------------------ the keeper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDomain:
    def __init__(self) -> None:
        self.active = True

    def isActive(self) -> bool:
        return self.active


def keeper_with(tmp_path: Path, screens: list[Any], **kwargs: Any) -> tuple[ScreenKeeper, Clock]:
    """A keeper whose screenshots are `screens` in turn (an Image, or an exception to raise)."""
    clock = Clock()
    feed = iter(screens)

    def grab(_domain: Any) -> bytes:
        item = next(feed)
        if isinstance(item, Exception):
            raise item
        return ppm(item)

    keeper = ScreenKeeper(FakeDomain(), "DC1", tmp_path, "DC1.screen", clock=clock, grab=grab,
                          frozen_after=600, **kwargs)
    return keeper, clock


def test_a_still_silent_screen_is_frozen_after_the_set_time_naming_the_newest_png(tmp_path: Path) -> None:
    keeper, clock = keeper_with(tmp_path, [text_screen(2)] * 20)
    for _ in range(11):  # the first one at 0 min, the last at 10 min: not yet more than 600 s
        keeper.shoot()
        keeper.check(alive=False)
        clock.now += 60
    clock.now += 50
    keeper.check(alive=False)  # 11 min 50 s since the last change, but no screenshot has shown it yet
    clock.now -= 50
    keeper.shoot()
    assert keeper.latest == tmp_path / "DC1.screen-0012.png"
    with pytest.raises(ScreenFrozen, match=r"DC1: the screen has not changed for 11 min .*/DC1.screen-0012.png"):
        keeper.check(alive=False)


def test_a_changing_screen_is_never_frozen(tmp_path: Path) -> None:
    keeper, clock = keeper_with(tmp_path, [text_screen(n % 20) for n in range(40)])
    for _ in range(40):
        keeper.shoot()
        keeper.check(alive=False)
        clock.now += 60


def test_an_answering_agent_keeps_a_still_screen_from_being_frozen(tmp_path: Path) -> None:
    keeper, clock = keeper_with(tmp_path, [text_screen(2)] * 40)
    for _ in range(30):
        keeper.shoot()
        keeper.check(alive=True)  # a DC promotion behind a logon screen
        clock.now += 60
    keeper.check(alive=False)  # the agent just went away: the count starts now
    clock.now += 601
    keeper.shoot()
    with pytest.raises(ScreenFrozen):
        keeper.check(alive=False)


def test_a_guest_that_is_off_or_has_no_screen_is_not_frozen(tmp_path: Path) -> None:
    no_video = libvirt.libvirtError("unsupported configuration: no screens to take screenshot from")
    keeper, clock = keeper_with(tmp_path, [no_video] * 30)
    for _ in range(30):
        assert keeper.shoot() is None
        keeper.check(alive=False)
        clock.now += 60
    assert keeper.failure is not None and "no screens" in keeper.failure
    assert keeper.latest is None and not list(tmp_path.glob("*.png"))

    off, clock = keeper_with(tmp_path, [text_screen(2)] + [AssertionError("an off guest is not shot")] * 3)
    off.shoot()
    off.domain.active = False  # between the reboots of a build
    for _ in range(3):
        clock.now += 400
        assert off.shoot() is None
        off.check(alive=False)


def test_only_the_newest_are_kept_and_numbers_go_on_from_an_earlier_run(tmp_path: Path) -> None:
    (tmp_path / "DC1.screen-0041.png").write_bytes(b"from an earlier run")
    (tmp_path / "SVR1.screen-0099.png").write_bytes(b"another node's")
    keeper, clock = keeper_with(tmp_path, [text_screen(n) for n in range(8)], keep=3)
    shown: list[tuple[str, bool]] = []
    keeper.on_shot = lambda path, changed: shown.append((path.name, changed))
    for _ in range(8):
        keeper.shoot()
        clock.now += 60
    names = sorted(p.name for p in tmp_path.glob("DC1.screen-*.png"))
    assert names == ["DC1.screen-0047.png", "DC1.screen-0048.png", "DC1.screen-0049.png"]
    assert (tmp_path / "SVR1.screen-0099.png").exists()
    assert shown[0] == ("DC1.screen-0042.png", True)


def test_the_thread_takes_screenshots_until_the_block_ends(tmp_path: Path) -> None:
    keeper = ScreenKeeper(FakeDomain(), "DC1", tmp_path / "screens", "DC1.screen", interval=0.01,
                          grab=lambda _d: ppm(text_screen(1)))
    with keeper:
        while keeper.latest is None or int(keeper.latest.stem.rsplit("-", 1)[1]) < 3:
            pass
    taken = keeper.latest
    assert taken is not None and taken.exists()
    assert keeper._thread is not None and not keeper._thread.is_alive()


def test_a_prefix_must_be_a_plain_name(tmp_path: Path) -> None:
    for bad in ("../x", "a/b", "", "-x", "x\n"):
        with pytest.raises(ValueError):
            ScreenKeeper(FakeDomain(), "x", tmp_path, bad)


# ----------------------------------------------------------------------------- the wiring


class SilentChannel:
    """A Windows node rebooting whose agent never comes back."""

    node = "HV1"

    def __init__(self, domain: FakeDomain) -> None:
        self.domain = domain

    def ping(self) -> bool:
        return False


def test_a_reboot_on_a_frozen_screen_fails_before_the_hang_timeouts_hard_resets(tmp_path: Path) -> None:
    keeper, clock = keeper_with(tmp_path, [text_screen(2)] * 100)
    keeper.frozen_after = HANG_TIMEOUT / 2
    channel = SilentChannel(keeper.domain)
    keeper.domain.reset = lambda _flags: pytest.fail("reset before the frozen screen was reported")

    def sleep(seconds: float) -> None:
        clock.now += seconds
        if clock.now % 60 < seconds:
            keeper.shoot()

    keeper.shoot()
    with pytest.raises(ScreenFrozen, match="HV1|DC1"):
        wait_back(channel, RebootWatch("HV1", clock(), "down"), lambda _m: None, clock, sleep, keeper)


def test_a_guest_that_never_comes_back_is_reported_with_its_newest_screenshot(tmp_path: Path) -> None:
    keeper, clock = keeper_with(tmp_path, [text_screen(n % 3) for n in range(100)])  # changes: never frozen
    channel = SilentChannel(keeper.domain)
    resets: list[int] = []
    keeper.domain.reset = resets.append

    def sleep(seconds: float) -> None:
        clock.now += seconds
        if clock.now % 60 < seconds:
            keeper.shoot()

    keeper.shoot()
    with pytest.raises(RebootFailed, match=r"did not come back from its reboot .* the newest screenshot is .*DC1.screen-"):
        wait_back(channel, RebootWatch("HV1", clock(), "down"), lambda _m: None, clock, sleep, keeper)
    assert len(resets) == MAX_RESETS


class BuildDomain(FakeDomain):
    def create(self) -> None:
        self.active = True


def test_the_image_build_stops_on_a_frozen_setup_screen_naming_it(tmp_path: Path) -> None:
    keeper, clock = keeper_with(tmp_path, [text_screen(2)] * 100)
    domain = BuildDomain()
    keeper.domain = domain
    domain.sendKey = lambda *_args: None

    def sleep(seconds: float) -> None:
        clock.now += seconds
        if clock.now % 60 < seconds:
            keeper.shoot()

    watch = windows.BuildWatch(phase="setup")
    watch.phase_since = watch.boot_since = clock()
    keeper.shoot()
    with pytest.raises(BuildError) as raised:
        windows._drive(domain, "hl-build-windows-server-2022", SilentChannel(domain), watch, keeper, clock, sleep)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "the screen has not changed for 10 min" in message
    assert str(keeper.latest) in message and keeper.latest is not None and keeper.latest.exists()
    assert message.endswith("the next run resumes from here")
    assert clock.now - 1000.0 < windows.TIMEOUTS["setup"], "the frozen screen must end it before the phase's timeout"


class AnyDomainConn:
    """lookupByName finds every domain (libvirt's answer for a lab that is defined)."""

    def lookupByName(self, _name: str) -> FakeDomain:
        return FakeDomain()


@pytest.mark.parametrize("lab,watched", [("chapter-2", {"DC1", "SVR1", "SVR2"}), ("chapter-2-linux", set())])
def test_lab_up_watches_the_screen_of_every_windows_node_and_no_other(lab: str, watched: set[str], tmp_path: Path) -> None:
    from hyperlab.core.load import load_lab
    from hyperlab.core.plan import HostFacts, plan
    from hyperlab.ops.deploy import screen_keepers

    root = Path(__file__).resolve().parents[2]
    p = plan(load_lab(str(root / "labs" / lab)), "t1", HostFacts(accel="kvm", instances_dir=tmp_path))
    said: list[tuple[str, str]] = []
    keepers = screen_keepers(AnyDomainConn(), p, [n.name for n in p.nodes], lambda node, what: said.append((node, what)))  # type: ignore[arg-type]
    assert set(keepers) == watched == {n.name for n in p.nodes if n.os == "windows"}
    for name, keeper in keepers.items():
        assert keeper.folder == p.pool_path and keeper.prefix == f"{name}.screen"
        keeper.on_shot(p.pool_path / f"{name}.screen-0001.png", False)
        keeper.on_shot(p.pool_path / f"{name}.screen-0002.png", True)
    assert said == [(name, f"screen: {p.pool_path / f'{name}.screen-0002.png'}") for name in keepers]
