"""`lab prepare` and the prepared path of `lab up` (docs/design/prepared.md).

`prepare`: a template instance comes up cold (boot, first boot, guest images, start state), each
node is sealed (what makes a machine itself, and the template's secrets, are removed), shut down
cleanly, and its volumes become the lab's layer set in the image store. `lab up` of a new instance
whose inputs hash the same then creates its overlays on those layers: every marker of the start
state is already in the guest, so only the boot and the lab's `personalize:` actions run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from hyperlab import __version__
from hyperlab.core.errors import UsageError
from hyperlab.core.fanout import fan_out
from hyperlab.core.layers import LayerInputs, differences, make_inputs, secrets_used
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan
from hyperlab.core.variables import Value, with_overrides
from hyperlab.guest.agent import agent_channel
from hyperlab.guest.runner import Progress, must, quiet, run_once
from hyperlab.host.apply import deployed
from hyperlab.host.conn import lookup_domain
from hyperlab.host.instance_files import instance_variables
from hyperlab.images.layers import LayerSet, LayerStore
from hyperlab.images.store import ImageStore
from hyperlab.ops.guest_images import guest_images
from hyperlab.ops.secrets import script_values

SHUTDOWN_TIMEOUT = 300  # seconds for a clean shutdown of the template's nodes
# What makes one Linux machine itself, and the template's secrets: each instance's first boot makes
# its own machine id (systemd's first boot), SSH host keys (hyperlab-ssh-hostkeys.service) and
# random seed; the secrets folder is written again from the instance's secrets.json by every script.
SEAL = ("rm -rf /etc/hyperlab/secrets /var/lib/systemd/random-seed /etc/ssh/ssh_host_* && "
        ": > /etc/machine-id && rm -f /var/lib/dbus/machine-id && sync")


class PrepareFailed(Exception):
    """The template could not be sealed or shut down; the message says which node and why."""


def scripts_of(loaded: LoadedLab) -> dict[str, bytes]:
    """Every script the start state and the first boots run, by path, with its content."""
    topo = loaded.topology
    found = {}
    for node in topo.topology.nodes.values():
        for script in node.first_boot:
            found[f"{topo.source.path.parent.name}/{script}"] = (topo.source.path.parent / script).read_bytes()
    for action in loaded.lab.start:
        found[action.run] = (loaded.folder / action.run).read_bytes()
    return found


def images_of(loaded: LoadedLab, plan: Plan) -> set[str]:
    """Every golden image an instance is made from: its nodes' disks and its nested guests' images.
    `lab up` and `lab prepare` have them all in the store before they choose a path (the layers'
    inputs name each one's checksum)."""
    images = {v.image for n in plan.nodes for v in n.volumes if v.image}
    return images | {image for names in guest_images(loaded.lab, plan).values() for image in names}


def inputs_for(loaded: LoadedLab, plan: Plan, store: ImageStore, variables: dict[str, Value]) -> LayerInputs:
    return make_inputs(__version__, plan.topology_hash, {name: store.get(name).sha256 for name in images_of(loaded, plan)},
                       scripts_of(loaded), dict(variables))


def refusal(loaded: LoadedLab, plan: Plan) -> str | None:
    """Why this lab cannot be prepared, in one line; None when it can."""
    for node in plan.nodes:
        if node.os == "windows":
            return (f"{node.name} is a Windows node: its identity (SID, computer account) and its answer file's "
                    "passwords are made per instance, and no sealing of Windows is proven here; it comes up cold")
        if node.firmware == "uefi":
            return f"{node.name} boots with UEFI: its firmware variables are not part of the layers; it comes up cold"
    used = secrets_used(scripts_of(loaded))
    if used and not loaded.lab.personalize:
        where = "; ".join(f"{path} uses {', '.join(names)}" for path, names in used.items())
        return (f"{where}: what the start state made from an instance's password would be shared by every "
                "instance; add `personalize:` actions to lab.yaml that give each instance its own")
    return None


def fresh_instance(plan: Plan) -> bool:
    return not any(v.path.exists() for n in plan.nodes for v in n.volumes)


def on_layers(plan: Plan, layers: LayerSet) -> Plan:
    """The same plan, each volume backed by its layer instead of its golden image."""
    nodes = []
    for node in plan.nodes:
        volumes = [v.model_copy(update={"backing": layers.path(v.name)}) for v in node.volumes]
        nodes.append(node.model_copy(update={"volumes": volumes}))
    return plan.model_copy(update={"nodes": nodes})


def choose(loaded: LoadedLab, plan: Plan, store: ImageStore, layer_store: LayerStore,
           overrides: dict[str, Value]) -> tuple[LayerSet | None, str]:
    """The layer set a new instance starts from, or None and why not (one line for the user)."""
    if not fresh_instance(plan):
        return None, "the instance's overlays exist already: they are kept"
    why = refusal(loaded, plan)
    if why is not None:
        return None, f"{loaded.lab.id} cannot be prepared ({why})"
    variables = {**instance_variables(plan.pool_path, loaded.lab.variables), **overrides}
    wanted = inputs_for(loaded, plan, store, variables)
    found = layer_store.find(loaded.lab.id, wanted.digest())
    if found is not None:
        return found, f"starting from the prepared layers {found.folder}"
    known = layer_store.sets(loaded.lab.id)
    if not known:
        return None, f"no prepared layers of {loaded.lab.id}: a cold start (`lab prepare {loaded.lab.id}` makes them)"
    changed = "; ".join(differences(known[0].record.inputs, wanted))
    return None, (f"the prepared layers of {loaded.lab.id} are stale ({changed}): a cold start "
                  f"(`lab prepare {loaded.lab.id}` or `lab up --prepare` rebuilds them)")


def run_personalize(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, progress: Progress = quiet) -> None:
    """The lab's `personalize:` actions, in order, the nodes of one action at once, once per overlay."""
    values = script_values(loaded, plan)
    for index, action in enumerate(loaded.lab.personalize):
        def one(name: str, index: int = index, run: str = action.run) -> None:
            progress(name, f"personalize: {run}")
            run_once(agent_channel(conn, plan.node(name)), f"personalize-{index}", loaded.folder / run, values,
                     lambda what: progress(name, what))

        fan_out(one, list(action.nodes))


def seal(conn: libvirt.virConnect, plan: Plan, progress: Progress = quiet) -> None:
    def one(name: str) -> None:
        must(agent_channel(conn, plan.node(name)).run(["/bin/sh", "-c", SEAL], timeout=120))
        progress(name, "sealed")

    fan_out(one, [n.name for n in plan.nodes])


def shut_down(conn: libvirt.virConnect, plan: Plan, progress: Progress = quiet,
              timeout: float = SHUTDOWN_TIMEOUT) -> None:
    """A clean shutdown of every node (the agent, else ACPI): a layer must be a closed filesystem.
    Wave by wave, the last to boot first: a hypervisor with DC1's share mounted cannot unmount it
    once DC1 is gone."""
    deadline = time.monotonic() + timeout
    for wave in reversed(plan.waves()):
        domains = {name: lookup_domain(conn, plan.node(name).domain) for name in wave}
        active = {name: d for name, d in domains.items() if d is not None and d.isActive()}

        def one(name: str) -> None:
            active[name].shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT | libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            progress(name, "shutting down")

        fan_out(one, list(active))
        while any(d.isActive() for d in active.values()):
            if time.monotonic() > deadline:
                running = [name for name, d in active.items() if d.isActive()]
                raise PrepareFailed(f"{', '.join(running)} did not shut down within {timeout:.0f}s; "
                                    "a layer is only kept from a cleanly stopped guest")
            time.sleep(1)


def prepare(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, store: ImageStore, layer_store: LayerStore,
            overrides: dict[str, Value], bring_up: Callable[[Plan], object], take_down: Callable[[Plan], object],
            progress: Progress = quiet) -> LayerSet:
    """Build the lab's layer set from the template instance `plan` (unless an up-to-date one exists).

    `bring_up(plan)` deploys the template cold without a checkpoint and `take_down(plan)` removes
    it (both `ops.deploy`'s, passed in so that this module stays below it)."""
    why = refusal(loaded, plan)
    if why is not None:
        raise UsageError(f"cannot prepare {loaded.lab.id}: {why}")
    wanted = inputs_for(loaded, plan, store, with_overrides(loaded.lab.variables, dict(overrides)))
    found = layer_store.find(loaded.lab.id, wanted.digest())
    if found is not None:
        progress(loaded.lab.id, f"the prepared layers are up to date: {found.folder}")
        return found
    if deployed(conn, plan) or not fresh_instance(plan):
        progress(loaded.lab.id, "removing a template left by an earlier `lab prepare`")
        take_down(plan)
    try:
        bring_up(plan)
        seal(conn, plan, progress)
        shut_down(conn, plan, progress)
        volumes: list[tuple[str, Path, str | None]] = [
            (node.name, v.path, v.backing.name if v.backing else None) for node in plan.nodes for v in node.volumes]
        made = layer_store.save(loaded.lab.id, wanted, volumes)
    finally:
        take_down(plan)
    for old in layer_store.prune(loaded.lab.id, keep=made.record.inputs_hash):
        progress(loaded.lab.id, f"removed unused layers {old}")
    total = sum(v.bytes for v in made.record.volumes)
    progress(loaded.lab.id, f"prepared: {len(made.record.volumes)} layer(s), {total / 2**20:.0f} MiB, in {made.folder}")
    return made
