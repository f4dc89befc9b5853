"""A guest's screen as the watchdog sees it: decoded, kept as PNG, and compared with the last one.

libvirt hands a screenshot over in the hypervisor's format (QEMU: PPM; newer ones PNG). It is
kept as PNG, which any browser opens, and compared in tiles of TILE x TILE pixels: a screen has
changed when more than STILL_TILES tiles differ. A blinking text cursor (one 9x16 character cell,
which can straddle 2 x 2 tiles) or a ticking clock's last digit is not a change; a progress bar,
a spinner, a new line of text or a new page is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageChops, UnidentifiedImageError

TILE = 16
STILL_TILES = 4
MAX_PIXELS = 8192 * 8192  # a screenshot larger than any display is not believed


class BadScreenshot(Exception):
    """The bytes are not an image Pillow can read (or absurdly large)."""


@dataclass(frozen=True)
class Screen:
    png: bytes
    image: Image.Image

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def decode(data: bytes) -> Screen:
    """A screenshot in any format Pillow reads, as RGB and as PNG bytes."""
    try:
        with Image.open(io.BytesIO(data)) as raw:
            if raw.width * raw.height > MAX_PIXELS:
                raise BadScreenshot(f"a screenshot of {raw.width}x{raw.height} pixels")
            image = raw.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise BadScreenshot(f"not an image: {exc}") from None
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return Screen(out.getvalue(), image)


def changed_tiles(a: Image.Image, b: Image.Image) -> int:
    """How many TILE x TILE tiles differ in at least one pixel; all of them when the sizes differ."""
    if a.size != b.size:
        return -(-b.width // TILE) * -(-b.height // TILE)
    # 1.0 where a pixel differs; a tile's mean (as a float: no rounding to 0) is non-zero exactly then
    red, green, blue = ImageChops.difference(a, b).split()
    most = ImageChops.lighter(ImageChops.lighter(red, green), blue)  # not convert("L"): it rounds 1 to 0
    tiles = most.point(lambda v: 255 if v else 0).convert("F").reduce(TILE)
    # a changed tile's mean is at least 255/256: scaled up it is >= 1 in L, an unchanged one is 0
    unchanged = tiles.point(lambda v: v * 1000).convert("L").histogram()[0]
    return tiles.width * tiles.height - unchanged


def differs(a: Image.Image, b: Image.Image) -> bool:
    return changed_tiles(a, b) > STILL_TILES
