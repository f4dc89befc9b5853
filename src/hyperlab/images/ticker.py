"""Build the ``ticker`` image: a 1 KiB multiboot kernel that counts seconds on its serial console.

For nested guests that have to be running, and to be seen running, within seconds under software
emulation inside software emulation, where even the ``tiny`` Linux guest needs minutes to boot:
chapter-2-linux's migration and replica steps move these guests between hypervisors.

Files in the store::

    ticker.vmlinuz   the program (``KERNEL``), booted by QEMU's multiboot loader (libvirt ``<kernel>``)
    ticker.qcow2     an empty 16 MiB disk: the program never reads it, but migrations, block copies
                     and replicas need a disk to move

Console (COM1, libvirt ``<serial>`` with a ``<log>``; the same lines on the VGA text screen)::

    hyperlab-ticker: start          once, when the program starts
    hyperlab-ticker: up N s         every 5 s, N counted in RAM from 20 Hz timer interrupts

The count survives a live migration (RAM moves with the guest) and restarts at 0 with the guest.
The source is ``ticker.S`` next to this file; ``tests/unit/test_ticker.py`` reassembles it with
``assemble`` (binutils), and so does ``bench/ticker.py`` at other timer rates.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from hyperlab.images.common import BuildError, PhaseRunner, Progress, build_workspace, publish, require_root, require_tools
from hyperlab.images.store import ImageManifest, ImageStore

PHASES = ("kernel", "disk", "manifest")
DISK_SIZE = 16 << 20
START_LINE = "hyperlab-ticker: start"
UP_LINE = re.compile(r"hyperlab-ticker: up (\d+) s")

KERNEL = bytes.fromhex(
    "02b0ad1b00000100fe4f51e40000100000001000000000000000000020001000fafc0f0115d8011000ea300010000800"
    "66b810008ed88ec08ed08ee08ee8bc00001100b011e620e6a0b020e621b028e6a1b004e621b002e6a1b001e621e6a1b0"
    "fee621b0ffe6a1b036e643b00be640b0e9e640bf30021000b930000000b8bc01100066890766c74702080066c7470400"
    "8ec1e8106689470683c708e2e0b8af011000bf30031000668907c1e810668947060f011dde011000bef4011000e83e00"
    "0000fbf4a1e40110003b05e801100072f28305e80110006431d2b914000000f7f189c3be0f021000e81300000089d8e8"
    "19000000be24021000e802000000ebc3ac84c07407e820000000ebf4c3b90a00000031ff31d2f7f1524785c075f65804"
    "30e8040000004f75f5c3e8110000005066bafd03eca82074fb5866baf803eec3505351573c0d750cc705f00110000000"
    "0000eb563c0a752ca1ec0110004083f819720231c0a3ec01100069f8a000000081c700800b00b95000000066b8200766"
    "f3abeb268b0df001100083f950731b8b1dec0110006bdb5001cbb4076689045d00800b00ff05f00110005f595b58c32e"
    "ff05e401100050b020e62058cf8d76000000000000000000ffff0000009acf00ffff00000092cf001700c00110007f01"
    "30021000000000006400000000000000000000000d0a68797065726c61622d7469636b65723a2073746172740d0a0068"
    "797065726c61622d7469636b65723a207570200020730d0a008db4260000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
)

KERNEL_SHA256 = hashlib.sha256(KERNEL).hexdigest()
SOURCE = Path(__file__).with_name("ticker.S")


def assemble(source: str, work: Path) -> bytes:
    """The flat binary of a ticker source (``KERNEL`` is ``SOURCE`` assembled), built in ``work``."""
    (work / "ticker.S").write_text(source)
    subprocess.run(["as", "--32", "-o", str(work / "ticker.o"), str(work / "ticker.S")], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "--oformat", "binary", "-Ttext", "0", "-e", "0", "-o",
                    str(work / "ticker.bin"), str(work / "ticker.o")], check=True)
    return (work / "ticker.bin").read_bytes()


def uptimes(console: str) -> list[int]:
    """The counts of the `up N s` lines in a console log, in order."""
    return [int(n) for n in UP_LINE.findall(console)]


def build_ticker(store: ImageStore, name: str = "ticker", progress: Progress | None = None,
                 force: bool = False) -> ImageManifest:
    """Build (or return the existing) ``ticker`` image in ``store``.

    A store's ticker made from another KERNEL (an older hyperlab's) is rebuilt: it takes no time,
    and labs copy the ticker into their hypervisors anew at every `lab up`, so nothing depends on it.
    """
    existing = store.get(name) if store.exists(name) and not force else None
    if existing is not None and existing.notes.get("kernel_sha256") == KERNEL_SHA256:
        return existing
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
                       cmdline=None, notes={"ready_marker": START_LINE, "console": "COM1, `up N s` every 5 s",
                              "kernel_sha256": KERNEL_SHA256})
