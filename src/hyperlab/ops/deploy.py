"""`lab up / status / down / reset`: the shell around converge, boot, readiness and start state.

Readiness of a node = its guest agent answers and its first-boot specialization has finished
(`/run/hyperlab/ready` on Linux). Start-state actions run through the agent channel; each leaves
a marker in the guest, so `lab up` again runs nothing twice, and a reset node (a fresh overlay,
hence no markers) gets its start state again.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import libvirt

from hyperlab.host import hostnet
from hyperlab.host.accel import Accel, cpu_vendor
from hyperlab.host.files import write_atomic
from hyperlab.guest.agent import AgentChannel
from hyperlab.guest.base import ChannelError, RunResult
from hyperlab.guest.ssh import forget_node
from hyperlab.images.store import ImageBusy, ImageManifest, ImageMissing, ImageStore
from hyperlab.host.apply import (Change, converge, read_record, record_path, remove_domain, start_domain, teardown,
                                    write_record)
from hyperlab.host.conn import lookup_domain, lookup_pool
from hyperlab.core.load import LoadedLab
from hyperlab.core.model import Lab
from hyperlab.core.plan import HostFacts, Plan, PlanNode, plan
from hyperlab.guest.reboots import run_surviving_reboots
from hyperlab.core.variables import ENV_FILE, Value, env_text, instance_variables, save_overrides
from hyperlab.ops.windows_media import ensure_unattend_media

READY_MARKER = {"linux": "/run/hyperlab/ready", "windows": r"C:\hyperlab\ready"}
STATE_DIR = {"linux": "/var/lib/hyperlab", "windows": r"C:\hyperlab"}
SECRETS_DIR = {"linux": "/etc/hyperlab/secrets", "windows": r"C:\hyperlab\secrets"}
SECRET_NAMES = ("domain-admin", "dsrm")
Progress = Callable[[str, str], None]  # (node, phase)


class NotReady(Exception):
    """A node did not become ready in time; the message says which and what was last seen."""


class StartStateFailed(Exception):
    """A start-state script failed in a guest; the message carries its command and output."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    domain: str
    state: str  # running, shut off, paused, missing, ...
    agent: bool
    ready: bool

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "domain": self.domain, "state": self.state, "agent": self.agent, "ready": self.ready}


def _quiet(_node: str, _phase: str) -> None:
    pass


# -------------------------------------------------------------------------- secrets


def instance_secrets(plan: Plan) -> dict[str, str]:
    """Per-instance passwords, made once and kept (0600) beside the instance's volumes."""
    path = plan.pool_path / "secrets.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        pass
    # Upper, lower and digits: acceptable to AD's complexity rules and to Samba.
    values = {name: "Hl-" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y") + "9a" for name in SECRET_NAMES}
    write_atomic(path, json.dumps(values), mode=0o600)
    return values


def script_values(loaded: LoadedLab, plan: Plan) -> dict[str, str]:
    """Files the start, first-boot and solution scripts find in the secrets folder: the instance's
    passwords, and `lab.env` with the lab's variables as this instance has them."""
    variables = instance_variables(plan.pool_path, loaded.lab.variables)
    return {**instance_secrets(plan), ENV_FILE: env_text(variables)}


def instance_key(plan: Plan, *, create: bool) -> str | None:
    """The instance's SSH key pair (for the ssh channel); the public half goes into the guests.

    Only `lab up` creates it: the other commands must not leave an instance folder behind.
    """
    key = plan.pool_path / "id_ed25519"
    if not key.exists():
        if not create:
            return None
        write_record(plan)  # the folder is the instance's from its first file on, so `lab down` removes it
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hyperlab-{plan.lab}-{plan.instance}",
                        "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


def host_plan(loaded: LoadedLab, instance: str, accel: Accel = "tcg", *, deploying: bool = False) -> Plan:
    """The plan of an instance on this host: its image store, CPU vendor and SSH key.

    Names, addresses and paths do not depend on `accel`; only the domain type does.
    """
    base = HostFacts(accel=accel, cpu_vendor=cpu_vendor(), images_dir=ImageStore().root)
    key = instance_key(plan(loaded, instance, base), create=deploying)
    return plan(loaded, instance, base.model_copy(update={"ssh_public_key": key}))


def ensure_images(store: ImageStore, names: set[str], progress: Progress = _quiet) -> None:
    """Build the golden images a lab needs that the store lacks; Windows images need the user's ISO."""
    from hyperlab.images.debian import build_debian
    from hyperlab.images.ticker import build_ticker
    from hyperlab.images.tiny import build_tiny

    builders: dict[str, Callable[..., ImageManifest]] = {"debian-12": build_debian, "tiny": build_tiny, "ticker": build_ticker}
    for name in sorted(names):
        if name not in builders:
            if not store.exists(name):
                raise ImageMissing(name, store.root)
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
                builders[name](store, name, progress=report)
                break
            except ImageBusy:
                progress(f"image {name}", "being built by another process: waiting for it")
                store.wait_unlocked(name)


# ------------------------------------------------------------------------ readiness


def channel_for(conn: libvirt.virConnect, node: PlanNode) -> AgentChannel:
    domain = lookup_domain(conn, node.domain)
    if domain is None:
        raise ChannelError(f"{node.name} is not deployed (no domain {node.domain}); run `lab up`")
    return AgentChannel(domain, node.name, node.os)


def guest_path_exists(channel: AgentChannel, path: str) -> bool:
    if channel.os == "windows":
        result = channel.run(f"Test-Path '{path}'", timeout=20)
        return result.ok and result.stdout.strip() == "True"
    return channel.run(["/bin/test", "-e", path], timeout=20).ok


def is_ready(channel: AgentChannel) -> bool:
    return channel.ping() and guest_path_exists(channel, READY_MARKER[channel.os])


def wait_ready(conn: libvirt.virConnect, node: PlanNode, timeout: float, progress: Progress = _quiet) -> float:
    start = time.monotonic()
    channel = channel_for(conn, node)
    agent_seen = False
    while time.monotonic() - start < timeout:
        if not channel.domain.isActive():
            raise NotReady(f"{node.name} stopped while booting; see `lab console` or the log in /var/log/libvirt/qemu/{node.domain}.log")
        if channel.ping():
            if not agent_seen:
                agent_seen = True
                progress(node.name, "agent answers")
            if guest_path_exists(channel, READY_MARKER[channel.os]):
                return time.monotonic() - start
        time.sleep(1)
    seen = "its agent answers but specialization has not finished" if agent_seen else "its guest agent never answered"
    raise NotReady(f"{node.name} was not ready after {timeout:.0f}s: {seen}; look at `lab console {node.name}`")


# ---------------------------------------------------------------------- start state


def run_once(channel: AgentChannel, key: str, script: Path, values: dict[str, str],
             report: Callable[[str], None] = lambda _what: None) -> RunResult | None:
    """Run a script in the guest unless the marker named `key` says it already ran there.

    The marker lives in the guest, so a reset node (a fresh overlay) runs it again.
    """
    os_name = channel.os
    state = STATE_DIR[os_name]
    sep = "\\" if os_name == "windows" else "/"
    marker = f"{state}{sep}{key}.done"
    if guest_path_exists(channel, marker):
        return None
    prepare = (f"New-Item -ItemType Directory -Force '{state}','{SECRETS_DIR[os_name]}' | Out-Null" if os_name == "windows"
               else f"mkdir -p {state} {SECRETS_DIR[os_name]} && chmod 700 {SECRETS_DIR[os_name]}")
    _must(channel.run(prepare))
    for name, value in values.items():
        channel.write_file(f"{SECRETS_DIR[os_name]}{sep}{name}", value.encode())
    suffix = script.suffix or (".ps1" if os_name == "windows" else ".sh")
    target = f"{state}{sep}{key}{suffix}"
    channel.write_file(target, script.read_bytes())
    command = (["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", target]
               if os_name == "windows" else ["/bin/sh", target])
    # Windows scripts may reboot the guest (Hyper-V role, DC promotion): run them until they finish without one.
    result = (run_surviving_reboots(channel, command, report, timeout=1800) if os_name == "windows"
              else channel.run(command, timeout=1800))
    if not result.ok:
        raise StartStateFailed(f"{script.name} failed on {channel.node}:\n{result.summary()}")
    channel.write_file(marker, b"")
    return result


def run_start_action(channel: AgentChannel, loaded: LoadedLab, index: int, values: dict[str, str],
                     report: Callable[[str], None] = lambda _what: None) -> RunResult | None:
    return run_once(channel, f"start-{index}", loaded.folder / loaded.lab.start[index].run, values, report)


def run_first_boot(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None = None,
                   progress: Progress = _quiet) -> None:
    """Each node's own first-boot scripts (topology `first_boot:`), before the lab's start state."""
    topo = loaded.topology
    values = script_values(loaded, plan)
    for name, node in topo.topology.nodes.items():
        if only is not None and name not in only:
            continue
        for i, script in enumerate(node.first_boot):
            progress(name, f"first boot: {script}")
            run_once(channel_for(conn, plan.node(name)), f"first-boot-{i}", topo.source.path.parent / script, values)


# ------------------------------------------------------------- nested guests' images

GUEST_IMAGE_DIR = "/var/lib/libvirt/images"  # where libvirt in a nested host keeps its images
GUEST_IMAGE_OWNER = "libvirt-qemu"  # the user QEMU runs as in a Debian host


def guest_images(lab: Lab, plan: Plan) -> dict[str, list[str]]:
    """Linux host node -> the images its lab guests (`guests:`) use, sorted. Nodes without guests are absent.

    Guests of a Windows host (Hyper-V) use disks the student makes there, not images of the store.
    """
    wanted: dict[str, set[str]] = {}
    for guest in lab.guests.values():
        if guest.image is not None and plan.node(guest.host).os == "linux":
            wanted.setdefault(guest.host, set()).add(guest.image)
    return {host: sorted(images) for host, images in sorted(wanted.items())}


def guest_image_files(store: ImageStore, manifest: ImageManifest) -> dict[str, Path | bytes]:
    """What one image puts into a nested host: file name there -> the store file to copy, or the content.

    The disk; for a direct-kernel-boot image its kernel and initrd, and `<image>.cmdline` with the
    command line the kernel needs (the tiny guest prints its console lines, readiness included, on ttyS0).
    """
    files: dict[str, Path | bytes] = {f"{manifest.name}.qcow2": store.path(manifest.name)}
    for side in (manifest.kernel, manifest.initrd):
        if side:
            files[side] = store.file(side)
    if manifest.cmdline:
        files[f"{manifest.name}.cmdline"] = f"{manifest.cmdline}\n".encode()
    return files


def guest_image_marker(manifest: ImageManifest) -> str:
    """Marker of one delivery, in the host's state folder; tied to the golden disk's content."""
    return f"{STATE_DIR['linux']}/guest-image-{manifest.name}-{manifest.sha256[:12]}.done"


def deliver_guest_images(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None = None,
                         progress: Progress = _quiet, store: ImageStore | None = None) -> None:
    """Copy the images of the lab's guests into their host nodes at GUEST_IMAGE_DIR, once per overlay.

    Readable by everyone (0644); the disk owned by QEMU's user, as libvirt would leave it.
    """
    store = store or ImageStore()
    wanted = {host: images for host, images in guest_images(loaded.lab, plan).items() if only is None or host in only}
    ensure_images(store, {image for images in wanted.values() for image in images}, progress)

    def one(host: str) -> None:
        channel = channel_for(conn, plan.node(host))
        for image in wanted[host]:
            manifest = store.get(image)
            marker = guest_image_marker(manifest)
            if guest_path_exists(channel, marker):
                continue
            progress(host, f"guest image {image}: copying into {GUEST_IMAGE_DIR}")
            _must(channel.run(["mkdir", "-p", STATE_DIR["linux"], GUEST_IMAGE_DIR]))
            files = guest_image_files(store, manifest)
            for name, source in files.items():
                data = source if isinstance(source, bytes) else source.read_bytes()
                channel.write_file(f"{GUEST_IMAGE_DIR}/.{name}.partial", data)
            # partial files first, then a rename each: an interrupted copy leaves no half-written image
            script = (f'cd {GUEST_IMAGE_DIR} && for f; do chmod 0644 ".$f.partial"; done && '
                      f'if id {GUEST_IMAGE_OWNER} >/dev/null 2>&1; then chown {GUEST_IMAGE_OWNER}: .{image}.qcow2.partial; fi && '
                      'for f; do mv -f ".$f.partial" "$f"; done')
            _must(channel.run(["/bin/sh", "-c", script, "deliver", *files], timeout=120))
            channel.write_file(marker, b"")

    with ThreadPoolExecutor(max_workers=max(len(wanted), 1)) as pool:
        for future in [pool.submit(one, host) for host in wanted]:
            future.result()


def _must(result: RunResult) -> None:
    if not result.ok:
        raise StartStateFailed(result.summary())


def run_start_state(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None = None,
                    progress: Progress = _quiet) -> None:
    """Start actions in their order; the nodes of one action in parallel."""
    values = script_values(loaded, plan)
    for index, action in enumerate(loaded.lab.start):
        nodes = [n for n in action.nodes if only is None or n in only]

        def one(name: str, index: int = index) -> None:
            progress(name, f"start state: {loaded.lab.start[index].run}")
            report = lambda what, name=name: progress(name, what)
            if run_start_action(channel_for(conn, plan.node(name)), loaded, index, values, report) is None:
                progress(name, f"start state: {loaded.lab.start[index].run} already done")

        with ThreadPoolExecutor(max_workers=max(len(nodes), 1)) as pool:
            for future in [pool.submit(one, name) for name in nodes]:
                future.result()


# -------------------------------------------------------------------------- commands


def up(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, *, timeout: float = 900,
       progress: Progress = _quiet, variables: dict[str, Value] | None = None) -> list[Change]:
    """Deploy; `variables` (already checked against the lab's) override its defaults for this instance."""
    changes = converge(conn, plan, progress, host_side=hostnet.ensure_host_side)
    ensure_unattend_media(loaded, plan, instance_secrets(plan), progress)
    save_overrides(plan.pool_path, variables or {})
    for wave in plan.waves():
        _boot(conn, plan, wave, timeout, progress)
    _provision(conn, loaded, plan, None, progress)
    return changes


def _boot(conn: libvirt.virConnect, plan: Plan, names: list[str], timeout: float, progress: Progress) -> None:
    """Start the nodes that are not running, then wait for all of them to be ready, in parallel."""
    for name in names:
        if start_domain(conn, plan.node(name).domain):
            progress(name, "booting")
    with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
        futures = {name: pool.submit(wait_ready, conn, plan.node(name), timeout, progress) for name in names}
        for name, future in futures.items():
            progress(name, f"ready after {future.result():.1f}s")


def _provision(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None,
               progress: Progress) -> None:
    """Each node's first-boot scripts, its guests' images, then the lab's start state; all once per overlay."""
    run_first_boot(conn, loaded, plan, only=only, progress=progress)
    deliver_guest_images(conn, loaded, plan, only=only, progress=progress)
    run_start_state(conn, loaded, plan, only=only, progress=progress)


def down(conn: libvirt.virConnect, plan: Plan, progress: Progress = _quiet) -> list[Change]:
    return teardown(conn, plan, progress, host_side=hostnet.remove_host_side)


def reset(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, names: list[str], *, timeout: float = 900,
          progress: Progress = _quiet) -> None:
    """New overlays from the golden image (seed 000: delete the overlay, recreate it), then start state."""
    pool = lookup_pool(conn, plan.pool)
    if pool is None or read_record(record_path(plan)) is None:
        raise ChannelError(f"{plan.lab} instance {plan.instance} is not deployed; run `lab up {plan.lab}` first")
    for name in names:
        node = plan.node(name)
        domain = lookup_domain(conn, node.domain)
        if domain is not None:
            remove_domain(domain)  # defined again by converge, with the same XML
        pool.refresh(0)
        existing = set(pool.listVolumes())
        for volume in node.volumes:
            if volume.name in existing:
                pool.storageVolLookupByName(volume.name).delete(0)
        forget_node(plan, name)  # a fresh overlay makes fresh SSH host keys
        progress(name, "overlay removed")
    converge(conn, plan, progress, host_side=hostnet.ensure_host_side)
    ensure_unattend_media(loaded, plan, instance_secrets(plan), progress)
    _boot(conn, plan, names, timeout, progress)
    _provision(conn, loaded, plan, set(names), progress)


def status(conn: libvirt.virConnect, plan: Plan) -> list[NodeStatus]:
    states = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
              libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
              libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}
    result = []
    for node in plan.nodes:
        domain = lookup_domain(conn, node.domain)
        if domain is None:
            result.append(NodeStatus(node.name, node.domain, "missing", False, False))
            continue
        state = states.get(domain.state()[0], "unknown")
        channel = AgentChannel(domain, node.name, node.os)
        agent = state == "running" and channel.ping(timeout=2)
        ready = agent and is_ready(channel)
        result.append(NodeStatus(node.name, node.domain, state, agent, ready))
    return result
