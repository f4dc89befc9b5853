"""What planning needs to know about this host, read once per command: the CPU vendor, where the
image store and the instances live, and an instance's SSH key. `host_plan` is the plan of an
instance here: the pure `hyperlab.core.plan.plan` with these facts, called once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Accel, HostFacts, Plan, instance_folder, plan
from hyperlab.host.instance_files import public_key

DEFAULT_ROOT = Path("/var/lib/libvirt/images/hyperlab")  # the image store
ENV_ROOT = "HYPERLAB_IMAGES"


def images_root() -> Path:
    """The image store's folder: $HYPERLAB_IMAGES, else the default."""
    return Path(os.environ.get(ENV_ROOT) or DEFAULT_ROOT).absolute()


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> Literal["intel", "amd"]:
    """"intel" or "amd", from /proc/cpuinfo's vendor_id.

    Hygon (an AMD design) counts as amd; every other vendor (Intel, Zhaoxin, VIA) uses Intel's
    VMX, so counts as intel.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "intel"
    match = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    vendor = match.group(1) if match else ""
    return "amd" if vendor in ("AuthenticAMD", "HygonGenuine") else "intel"


def host_facts(accel: Accel = "tcg") -> HostFacts:
    return HostFacts(accel=accel, cpu_vendor=cpu_vendor(), images_dir=images_root())


def host_plan(loaded: LoadedLab, instance: str, accel: Accel = "tcg") -> Plan:
    """The plan of an instance on this host, with its SSH key once `lab up` has made one.

    Names, addresses and paths do not depend on `accel`; only the domain type does.
    """
    facts = host_facts(accel)
    key = public_key(instance_folder(facts, loaded.lab.id, instance))
    return plan(loaded, instance, facts.model_copy(update={"ssh_public_key": key}))
