"""What the chapter-1 checkers share: a view of the hypervisor HV1 and of the guests libvirt runs there.

Everything is read from the real state of HV1 through its guest agent: /proc, lsmod, systemctl,
virsh, qemu-img, stat and the logs libvirt writes. Nothing here changes HV1.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest

from hyperlab.grading.target import CheckError

VIRSH = "virsh -c qemu:///system"


class Hypervisor:
    """HV1 as the checks see it (the checkers reach their constants and helpers through the `hv` fixture)."""

    IMAGES = "/var/lib/libvirt/images"
    GOLDEN = f"{IMAGES}/golden/tiny.qcow2"
    DELIVERED = f"{IMAGES}/tiny.qcow2"  # the framework's copy of the tiny image (deploy.deliver_guest_images)
    READY = "hyperlab-tiny: ready boot="  # what the tiny guest prints on its serial console once booted
    BOOT_TIMEOUT = 420  # seconds: the tiny guest boots in minutes under emulation inside emulation

    def __init__(self, lab: Any, node: Any) -> None:
        self.lab = lab
        self.node = node

    def sh(self, command: str, timeout: float = 120) -> Any:
        return self.node.sh(command, timeout=timeout)

    def out(self, command: str) -> str:
        """stdout of a command that must work whatever the student did (else the check cannot look)."""
        result = self.sh(command)
        if not result.ok:
            raise CheckError(f"HV1 could not run {command!r}:\n{result.summary()}")
        return result.stdout

    # ------------------------------------------------------------------ files

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {shlex.quote(path)}").ok

    def stat(self, path: str) -> dict[str, Any] | None:
        """mode, owner, inode, birth and change time (epoch seconds) of a file; None when it does not exist."""
        result = self.sh(f"stat -c '%a %U %i %W %Z %F' {shlex.quote(path)}")
        if not result.ok:
            return None
        mode, owner, inode, birth, change, kind = result.stdout.strip().split(" ", 5)
        return {"mode": int(mode, 8), "owner": owner, "inode": int(inode), "birth": int(birth), "change": int(change),
                "kind": kind}

    def chain(self, path: str) -> list[dict[str, Any]] | str:
        """`qemu-img info --backing-chain` as a list of layers (the image first), or qemu-img's complaint."""
        result = self.sh(f"qemu-img info -U --backing-chain --output=json {shlex.quote(path)}")
        if not result.ok:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return lines[-1] if lines else f"qemu-img exit code {result.exit_code}"
        info = json.loads(result.stdout)
        return info if isinstance(info, list) else [info]

    # ---------------------------------------------------------------- libvirt

    def libvirtd_active(self) -> bool:
        return self.sh("systemctl is-active libvirtd").stdout.strip() == "active"

    def domain_xml(self, name: str) -> ET.Element | None:
        """The guest's live definition, or None when libvirt does not know it (or is not running)."""
        if not self.libvirtd_active():
            return None
        result = self.sh(f"{VIRSH} dumpxml {shlex.quote(name)}")
        return ET.fromstring(result.stdout) if result.ok else None

    def domain_state(self, name: str) -> str:
        result = self.sh(f"{VIRSH} domstate {shlex.quote(name)}")
        return result.stdout.strip() if result.ok else "not defined"

    def expected_accel(self) -> str:
        """The domain type HV1's guests can use: kvm only when HV1 itself runs under KVM (nested KVM)."""
        from hyperlab.host.conn import lookup_domain

        domain = lookup_domain(self.lab.conn(), self.lab.plan.node("HV1").domain)
        if domain is None:
            raise CheckError("HV1 is not deployed")
        return "kvm" if ET.fromstring(domain.XMLDesc(0)).get("type") == "kvm" else "qemu"

    def console_logs(self, xml: ET.Element) -> list[str]:
        """Files the guest's serial console is written to: <log file=...> of a serial/console, or a file serial."""
        paths = []
        for device in [*xml.findall("devices/serial"), *xml.findall("devices/console")]:
            log = device.find("log")
            if log is not None and log.get("file"):
                paths.append(log.get("file", ""))
            source = device.find("source")
            if device.get("type") == "file" and source is not None and source.get("path"):
                paths.append(source.get("path", ""))
        return list(dict.fromkeys(paths))

    def console_text(self, xml: ET.Element) -> str:
        return "".join(self.sh(f"tail -c 65536 {shlex.quote(p)}").stdout for p in self.console_logs(xml))

    def starts(self, name: str) -> list[float]:
        """When libvirt started the guest, oldest first (epoch seconds), from its log in /var/log/libvirt/qemu."""
        text = self.sh(f"grep -a ': starting up' /var/log/libvirt/qemu/{shlex.quote(name)}.log").stdout
        times = []
        for line in text.splitlines():
            stamp = line.split(": starting up", 1)[0].strip()
            try:
                times.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z").timestamp())
            except ValueError:
                continue
        return times

    @classmethod
    def overlay(cls, vm: str) -> str:
        return f"{cls.IMAGES}/active/{vm}.qcow2"

    @staticmethod
    def backing_of(layers: list[dict[str, Any]]) -> str | None:
        """The normalized path of an image's backing file (a relative name is relative to the image's folder)."""
        top = layers[0]
        name = top.get("backing-filename")
        if not name:
            return None
        if not posixpath.isabs(name):
            name = posixpath.join(posixpath.dirname(top["filename"]), name)
        return posixpath.normpath(name)

    @staticmethod
    def when(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.fixture
def hv(lab: Any, node: Any) -> Hypervisor:
    """HV1, the lab's hypervisor."""
    return Hypervisor(lab, node("HV1"))
