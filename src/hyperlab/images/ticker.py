"""Build the ``ticker`` image: a 1 KiB multiboot kernel that counts seconds on its serial console.

For nested guests that have to be running, and to be seen running, within seconds under software
emulation inside software emulation, where even the ``tiny`` Linux guest needs minutes to boot:
chapter-2-linux's migration and replica steps move these guests between hypervisors.

Files in the store::

    ticker.vmlinuz   the program (``KERNEL``), booted by QEMU's multiboot loader (libvirt ``<kernel>``)
    ticker.qcow2     an empty 16 MiB disk: the program never reads it, but migrations, block copies
                     and replicas need a disk to move

Console (COM1, libvirt ``<serial>`` with a ``<log>``)::

    hyperlab-ticker: start          once, when the program starts
    hyperlab-ticker: up N s         every 5 s, N counted in RAM from 100 Hz timer interrupts

The count survives a live migration (RAM moves with the guest) and restarts at 0 with the guest.
The source is ``ticker.S`` next to this file; ``tests/unit/test_ticker.py`` reassembles it.
"""

from __future__ import annotations

import re
import subprocess

from hyperlab.images.common import BuildError, PhaseRunner, Progress, build_workspace, publish, require_root, require_tools
from hyperlab.images.store import ImageManifest, ImageStore

PHASES = ("kernel", "disk", "manifest")
DISK_SIZE = 16 << 20
START_LINE = "hyperlab-ticker: start"
UP_LINE = re.compile(r"hyperlab-ticker: up (\d+) s")

KERNEL = bytes.fromhex(
    "02b0ad1b00000100fe4f51e40000100000001000000000000000000020001000fa0f011568011000ea2f001000080066"
    "b810008ed88ec08ed08ee08ee8bc00001100b011e620e6a0b020e621b028e6a1b004e621b002e6a1b001e621e6a1b0fe"
    "e621b0ffe6a1b036e643b09be640b02ee640bfb8011000b930000000b84a01100066890766c74702080066c74704008e"
    "c1e8106689470683c708e2e0b83d011000bfb8021000668907c1e810668947060f011d6e011000be7c011000e8410000"
    "00fbf4a1740110003b057801100072f2810578011000f401000031d2b964000000f7f189c3be97011000e81300000089"
    "d8e819000000beac011000e802000000ebc0ac84c07407e820000000ebf4c3b90a00000031ff31d2f7f1524785c075f6"
    "580430e8040000004f75f5c35066bafd03eca82074fb5866baf803eec32eff057401100050b020e62058cf8d74260090"
    "0000000000000000ffff0000009acf00ffff00000092cf001700500110007f01b801100000000000f40100000d0a6879"
    "7065726c61622d7469636b65723a2073746172740d0a0068797065726c61622d7469636b65723a207570200020730d0a"
    "008db4260000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000"
)


def uptimes(console: str) -> list[int]:
    """The counts of the `up N s` lines in a console log, in order."""
    return [int(n) for n in UP_LINE.findall(console)]


def build_ticker(store: ImageStore, name: str = "ticker", progress: Progress | None = None,
                 force: bool = False) -> ImageManifest:
    """Build (or return the existing) ``ticker`` image in ``store``."""
    if store.exists(name) and not force:
        return store.get(name)
    require_root()
    require_tools("qemu-img")
    runner = PhaseRunner(progress)
    with build_workspace(store, name, runner, keep_work=False) as (work, log):
        with runner.phase("kernel"):
            kernel = work / "kernel"
            kernel.write_bytes(KERNEL)
        with runner.phase("disk"):
            disk = work / "disk.qcow2"
            made = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), str(DISK_SIZE)],
                                  capture_output=True, text=True)
            if made.returncode != 0:
                raise BuildError(f"qemu-img create: {made.stderr.strip()[:200]}")
        return publish(store, name, runner, kernel=kernel, initrd=None, disk=disk, builder="ticker", packages=[],
                       cmdline=None, notes={"ready_marker": START_LINE, "console": "COM1, `up N s` every 5 s"})
