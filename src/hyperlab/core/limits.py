"""The limits a lab or topology must keep, in one place (docs/guide/authors.*.md lists them).

Each is what the planner can address or QEMU can run, with room to spare for any real course:
disks are vdb..vdq and NICs sit at PCI slots 3..10 of bus 0, which leaves the other slots of its 32
to the disks and controllers.
"""

from __future__ import annotations

MAX_DISKS = 16  # besides the system disk
MAX_NICS = 8
NIC_FIRST_SLOT = 3  # NICs pinned at PCI slots 3, 4, ... so guests name them ens3, ens4, ...
MIN_MEMORY, MAX_MEMORY = 16 << 20, 1 << 40
MIN_DISK, MAX_DISK = 1 << 20, 64 << 40
MAX_FILE_BYTES = 1 << 20  # a lab or topology file; the largest lab here is 16 KiB
