"""`lab doctor`'s checks of nested virtualization: can this host's KVM nest, and which Hyper-V
enlightenments its CPU takes. Reads /sys/module and /proc/cpuinfo; the decisions are pure."""

from __future__ import annotations

import re
from pathlib import Path

from hyperlab.host.facts import cpu_vendor
from hyperlab.core.needs import Needs
from hyperlab.ops.doctor_model import Finding


def check_nested(needs: Needs, accel: str, sys_module: Path = Path("/sys/module")) -> Finding:
    names = ", ".join(needs.nested)
    if accel != "kvm" and needs.nested_windows:
        # QEMU's emulator has no VT-x/AMD-V: Hyper-V refuses to start its hypervisor there.
        return Finding(False, "nested virtualization", f"{', '.join(needs.nested_windows)} run Hyper-V, which needs "
                       "hardware virtualization; software emulation cannot provide it",
                       "use a host where KVM works (lab doctor --recheck shows why it does not here)")
    if accel != "kvm":
        return Finding(True, "nested virtualization", f"{names}: not needed under software emulation "
                       "(their guests are emulated too)", level="info")
    module = "kvm_amd" if cpu_vendor() == "amd" else "kvm_intel"
    fix = (f'echo "options {module} nested=1" > /etc/modprobe.d/kvm.conf && modprobe -r {module} && modprobe {module}'
           " (with no guest running)")
    path = sys_module / module / "parameters" / "nested"
    try:
        value = path.read_text().strip()
    except OSError:
        return Finding(False, "nested virtualization", f"{names} host guests but {module} is not loaded ({path} missing)",
                       fix)
    if value in ("Y", "y", "1"):
        return Finding(True, "nested virtualization", f"{module} nested={value}: {names} can host guests")
    return Finding(False, "nested virtualization", f"{module} nested={value}: {names} cannot host guests under KVM", fix)


# Hyper-V on KVM with the enlightened VMCS fails ("eVMCS version range error") on these, as
# reported by working setups: CPUs without APICv and some low-end parts
_NO_EVMCS_MODELS = re.compile(r"\b(Atom|Celeron|Pentium)\b")


def check_evmcs(needs: Needs, vendor: str, sys_module: Path = Path("/sys/module"),
                cpuinfo: Path = Path("/proc/cpuinfo")) -> Finding:
    """Which Hyper-V hosts get the enlightened VMCS, and whether this CPU is one it fails on."""
    on = [name for name, value in needs.evmcs.items() if (value if value is not None else vendor == "intel")]
    if vendor == "amd":
        asked = " (their `evmcs: true` is left out: AMD CPUs have no enlightened VMCS)" if on else ""
        return Finding(True, "Hyper-V enlightenments", f"{', '.join(needs.evmcs)}: no evmcs on AMD{asked}", level="info")
    if not on:
        return Finding(True, "Hyper-V enlightenments", f"{', '.join(needs.evmcs)}: evmcs off (the topology says so)",
                       level="info")
    try:
        apicv = (sys_module / "kvm_intel" / "parameters" / "enable_apicv").read_text().strip()
    except OSError:
        apicv = "?"
    try:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        model = ""
    if apicv in ("N", "n", "0") or _NO_EVMCS_MODELS.search(model):
        why = "without APICv" if apicv in ("N", "n", "0") else f"a {_NO_EVMCS_MODELS.search(model).group(1)}"  # type: ignore[union-attr]
        return Finding(False, "Hyper-V enlightenments", f"{', '.join(on)} get the enlightened VMCS, which Hyper-V fails "
                       f"with on this CPU ({model or 'unknown model'}, {why}): 'eVMCS version range error'",
                       f"set `evmcs: false` on {', '.join(on)} in the topology", level="warn")
    return Finding(True, "Hyper-V enlightenments", f"{', '.join(on)}: evmcs on ({model or 'Intel'}, APICv {apicv})")
