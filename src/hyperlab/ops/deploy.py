"""`lab up / status / down / reset`: converge libvirt, boot in waves, wait for readiness, provision.

`up`: converge libvirt to the plan (`hyperlab.host.apply`) with the instance's host side
(`hyperlab.host.hostnet`), write the Windows nodes' unattend media, boot wave by wave (domain
controllers first), then provision (`hyperlab.ops.provision`), and keep each new node's state as
its `start` checkpoint. `reset` restores that checkpoint (seconds); with `clean`, or for a node
that has none, it drops the overlay and does the same as `up` for it alone (seed 000: delete the
overlay, recreate it). `lab up` again changes nothing that is in place and runs nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt

from hyperlab.core.fanout import fan_out
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan
from hyperlab.core.variables import Value
from hyperlab.guest.agent import AgentChannel
from hyperlab.guest.base import ChannelError
from hyperlab.guest.runner import Progress, is_ready, quiet, wait_ready
from hyperlab.guest.ssh import forget_node
from hyperlab.host import hostnet
from hyperlab.host.apply import Change, converge, deployed, drop_node, start_domain, teardown
from hyperlab.host.conn import lookup_domain
from hyperlab.host.instance_files import read_prepared, save_overrides, write_prepared
from hyperlab.core.checkpoints import START, plan_reset
from hyperlab.host.checkpoints import has
from hyperlab.host.screen import ScreenKeeper, keeping
from hyperlab.ops.checkpoints import fresh_nodes, restore_start, take_start
from hyperlab.images.layers import LayerSet
from hyperlab.ops.prepare import on_layers, run_personalize
from hyperlab.ops.provision import Screens, provision
from hyperlab.ops.secrets import instance_secrets
from hyperlab.ops.windows_media import ensure_unattend_media

STATES = {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
          libvirt.VIR_DOMAIN_PAUSED: "paused", libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
          libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}


@dataclass(frozen=True)
class NodeStatus:
    name: str
    domain: str
    state: str  # running, shut off, paused, missing, ...
    agent: bool
    ready: bool
    uuid: str | None = None  # libvirt's, while the domain exists (`lab grade --verify` compares it)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "domain": self.domain, "state": self.state, "agent": self.agent, "ready": self.ready,
                "uuid": self.uuid}


def up(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, *, timeout: float = 900,
       progress: Progress = quiet, variables: dict[str, Value] | None = None,
       layers: LayerSet | None = None, checkpoint: bool = True) -> list[Change]:
    """Deploy; `variables` (already checked against the lab's) override its defaults for this instance.

    With `layers` (a new instance, `ops.prepare.choose`), the overlays are made on the prepared
    layers: the start state's markers are in them, and the lab's `personalize:` actions run instead.
    An instance started from layers stays so (recorded in its folder): a rerun after a failure
    still personalizes it. `checkpoint=False` (`lab prepare`'s template) keeps no `start`."""
    prepared = read_prepared(plan.pool_path)
    if layers is not None and prepared is None:
        write_prepared(plan.pool_path, layers.record.inputs_hash)
        prepared = layers.record.inputs_hash
    if layers is not None:
        plan = on_layers(plan, layers)
    changes = converge(conn, plan, progress, host_side=hostnet.ensure_host_side)
    ensure_unattend_media(loaded, plan, instance_secrets(plan), progress)
    save_overrides(plan.pool_path, variables or {})
    screens = screen_keepers(conn, plan, [n.name for n in plan.nodes], progress)
    with keeping(list(screens.values())):
        for wave in plan.waves():
            boot(conn, plan, wave, timeout, progress, screens)
        provision(conn, loaded, plan, None, progress, screens)
        if prepared is not None:
            run_personalize(conn, loaded, plan, progress)
    fresh = fresh_nodes(plan, changes)
    if fresh and checkpoint:  # their state is the start state now: kept, so that `lab reset` takes seconds
        take_start(conn, plan, fresh, progress)
    return changes


def screen_keepers(conn: libvirt.virConnect, plan: Plan, names: list[str], progress: Progress) -> dict[str, ScreenKeeper]:
    """A screenshot keeper for each Windows node among `names` (`<instance folder>/<node>.screen-NNNN.png`).

    Flat in the instance folder, not in a folder of their own: the folder is the instance's
    storage pool, whose volumes `lab down` deletes one by one (libvirt cannot delete a full folder).
    A changed screen is one progress line naming the PNG.
    """
    keepers = {}
    for name in names:
        node = plan.node(name)
        domain = lookup_domain(conn, node.domain)
        if node.os != "windows" or domain is None:
            continue

        def shown(path: object, changed: bool, name: str = name) -> None:
            if changed:
                progress(name, f"screen: {path}")

        keepers[name] = ScreenKeeper(domain, name, plan.pool_path, f"{name}.screen", on_shot=shown)
    return keepers


def boot(conn: libvirt.virConnect, plan: Plan, names: list[str], timeout: float, progress: Progress = quiet,
         screens: Screens | None = None) -> None:
    """Start the nodes that are not running, then wait for all of them to be ready, in parallel."""
    for name in names:
        if start_domain(conn, plan.node(name).domain):
            progress(name, "booting")
    seconds = fan_out(lambda name: wait_ready(conn, plan.node(name), timeout, progress, (screens or {}).get(name)), names)
    for name, took in zip(names, seconds):
        progress(name, f"ready after {took:.1f}s")


def down(conn: libvirt.virConnect, plan: Plan, progress: Progress = quiet) -> list[Change]:
    return teardown(conn, plan, progress, host_side=hostnet.remove_host_side)


def reset(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, names: list[str], *, timeout: float = 900,
          progress: Progress = quiet, clean: bool = False) -> None:
    """`names` back to their start state: from their `start` checkpoint (seconds, no boot), or, for
    nodes without one and with `clean`, new overlays from the golden image, boot and start state."""
    if not deployed(conn, plan):
        raise ChannelError(f"{plan.lab} instance {plan.instance} is not deployed; run `lab up {plan.lab}` first")
    how = plan_reset(names, {n for n in names if has(conn, plan, n, START)}, clean)
    if how.restore:
        restore_start(conn, plan, list(how.restore), progress)
    if how.clean:
        reset_clean(conn, loaded, plan, list(how.clean), timeout=timeout, progress=progress)


def reset_clean(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, names: list[str], *, timeout: float = 900,
                progress: Progress = quiet) -> None:
    """New overlays from the golden image for `names`, their specialization and start state, a new `start`."""
    for name in names:
        drop_node(conn, plan, name)
        forget_node(plan, name)  # a fresh overlay makes fresh SSH host keys
        progress(name, "overlay removed")
    converge(conn, plan, progress, host_side=hostnet.ensure_host_side)
    ensure_unattend_media(loaded, plan, instance_secrets(plan), progress)
    screens = screen_keepers(conn, plan, names, progress)
    with keeping(list(screens.values())):
        boot(conn, plan, names, timeout, progress, screens)
        provision(conn, loaded, plan, set(names), progress, screens)
    take_start(conn, plan, names, progress)


def status(conn: libvirt.virConnect, plan: Plan) -> list[NodeStatus]:
    result = []
    for node in plan.nodes:
        domain = lookup_domain(conn, node.domain)
        if domain is None:
            result.append(NodeStatus(node.name, node.domain, "missing", False, False))
            continue
        state = STATES.get(domain.state()[0], "unknown")
        channel = AgentChannel(domain, node.name, node.os)
        agent = state == "running" and channel.ping(timeout=2)
        ready = agent and is_ready(channel)
        result.append(NodeStatus(node.name, node.domain, state, agent, ready, domain.UUIDString()))
    return result
