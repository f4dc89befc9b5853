"""What `lab up` and `lab reset` run in the guests once they are ready, all once per overlay:
each node's own first-boot scripts (topology `first_boot:`), the images of the lab's nested guests,
then the lab's start state (`start:` in lab.yaml), action by action, the nodes of one action at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import libvirt

from hyperlab.core.fanout import fan_out
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan
from hyperlab.guest.agent import agent_channel
from hyperlab.guest.base import RunResult
from hyperlab.guest.runner import Progress, quiet, run_once
from hyperlab.host.screen import ScreenKeeper
from hyperlab.ops.guest_images import deliver_guest_images
from hyperlab.ops.secrets import script_values


Screens = Mapping[str, ScreenKeeper]  # node name -> its keeper (Windows nodes)


def run_first_boot(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None = None,
                   progress: Progress = quiet, screens: Screens | None = None) -> None:
    """Each node's own first-boot scripts, before the lab's start state."""
    topo = loaded.topology
    values = script_values(loaded, plan)
    for name, node in topo.topology.nodes.items():
        if only is not None and name not in only:
            continue
        for i, script in enumerate(node.first_boot):
            progress(name, f"first boot: {script}")
            run_once(agent_channel(conn, plan.node(name)), f"first-boot-{i}", topo.source.path.parent / script, values,
                     screen=(screens or {}).get(name))


def run_start_action(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, index: int, name: str,
                     values: dict[str, str], progress: Progress = quiet,
                     screen: ScreenKeeper | None = None) -> RunResult | None:
    """Start action `index` on node `name`; None when its marker says it already ran there."""
    report = lambda what: progress(name, what)  # noqa: E731
    return run_once(agent_channel(conn, plan.node(name)), f"start-{index}", loaded.folder / loaded.lab.start[index].run,
                    values, report, screen)


def run_start_state(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None = None,
                    progress: Progress = quiet, screens: Screens | None = None) -> None:
    """Start actions in their order; the nodes of one action in parallel."""
    values = script_values(loaded, plan)
    for index, action in enumerate(loaded.lab.start):
        def one(name: str, index: int = index) -> None:
            run = loaded.lab.start[index].run
            progress(name, f"start state: {run}")
            if run_start_action(conn, loaded, plan, index, name, values, progress, (screens or {}).get(name)) is None:
                progress(name, f"start state: {run} already done")

        fan_out(one, [n for n in action.nodes if only is None or n in only])


def provision(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None,
              progress: Progress = quiet, screens: Screens | None = None) -> None:
    """First boot, the nested guests' images, then the start state; all once per overlay."""
    run_first_boot(conn, loaded, plan, only=only, progress=progress, screens=screens)
    deliver_guest_images(conn, loaded, plan, only=only, progress=progress)
    run_start_state(conn, loaded, plan, only=only, progress=progress, screens=screens)
