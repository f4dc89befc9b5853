"""The builders behind the catalog (`hyperlab.core.catalog.IMAGES`), imported when a build runs,
and `ensure_images`: what `lab up` builds by itself before it deploys."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hyperlab.core.catalog import IMAGES
from hyperlab.images.store import ImageBusy, ImageManifest, ImageMissing, ImagesMissing, ImageStore

Progress = Callable[[str, str], None]  # (what, phase)


def _module(name: str) -> Any:
    module, _, _ = IMAGES[name].builder.partition(":")
    return importlib.import_module(f"hyperlab.images.{module}")


def builder(name: str) -> Callable[..., ImageManifest]:
    """The function that builds image `name` (KeyError for a name the catalog does not know)."""
    _, _, function = IMAGES[name].builder.partition(":")
    built: Callable[..., ImageManifest] = getattr(_module(name), function)
    return built


def phases(name: str) -> tuple[str, ...]:
    """The phases a build of `name` reports, in order (the builder module's PHASES)."""
    return tuple(_module(name).PHASES)


def _quiet(_what: str, _phase: str) -> None:
    pass


def ensure_images(store: ImageStore, names: set[str], progress: Progress = _quiet) -> None:
    """Build the golden images a lab needs that the store lacks; the others need the user's input,
    and every one of those that is missing is named before anything is built."""
    missing = [ImageMissing(name, store.root) for name in sorted(names)
               if (name not in IMAGES or not IMAGES[name].automatic) and not store.exists(name)]
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise ImagesMissing(missing)
    for name in sorted(names):
        if name not in IMAGES or not IMAGES[name].automatic:
            continue

        def report(phase: str, fraction: float, name: str = name) -> None:
            if fraction in (0.0, 1.0):
                progress(f"image {name}", f"{phase} {'started' if fraction == 0.0 else 'done'}")

        # the builder returns the store's image when it is there and current, and builds it otherwise;
        # two `lab up`s at once on a fresh host: the second waits for the first one's build and uses it
        while True:
            try:
                if not store.exists(name):
                    progress(f"image {name}", "building (a few minutes, once)")
                builder(name)(store, name, progress=report)
                break
            except ImageBusy:
                progress(f"image {name}", "being built by another process: waiting for it")
                store.wait_unlocked(name)
