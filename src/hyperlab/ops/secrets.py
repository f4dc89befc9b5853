"""An instance's secrets and SSH key, made once by `lab up` and kept (0600) in its folder.

The passwords (domain-admin, dsrm) reach the guests as files of the start-state, first-boot and
solution scripts, beside `lab.env` (the lab's variables as this instance has them). The SSH key's
public half goes into the Linux guests at first boot (systemd credentials, in the plan), so it is
made before the plan of `lab up`: `plan_for_up` makes it, then plans once.
"""

from __future__ import annotations

import secrets
import subprocess

from hyperlab.core.load import LoadedLab
from hyperlab.core.layers import SECRET_NAMES
from hyperlab.core.plan import Accel, Plan, instance_folder, topology_hash
from hyperlab.core.variables import ENV_FILE, env_text
from hyperlab.host.conn import Owner
from hyperlab.host.facts import host_facts, host_plan
from hyperlab.host.instance_files import (MissingSecrets, instance_variables, key_path, read_record, read_secrets,
                                          write_record, write_secrets)



def instance_secrets(plan: Plan) -> dict[str, str]:
    """The instance's passwords, made the first time they are asked for."""
    try:
        return read_secrets(plan.pool_path)
    except MissingSecrets:
        pass
    # Upper, lower and digits: acceptable to AD's complexity rules and to Samba.
    values = {name: "Hl-" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y") + "9a" for name in SECRET_NAMES}
    write_secrets(plan.pool_path, values)
    return values


def script_values(loaded: LoadedLab, plan: Plan) -> dict[str, str]:
    """Files the start, first-boot and solution scripts find in the secrets folder: the instance's
    passwords, and `lab.env` with the lab's variables as this instance has them."""
    variables = instance_variables(plan.pool_path, loaded.lab.variables)
    return {**instance_secrets(plan), ENV_FILE: env_text(variables)}


def ensure_key(loaded: LoadedLab, instance: str, accel: Accel = "tcg") -> None:
    """Make the instance's SSH key pair unless it exists. Only `lab up` does: the other commands
    must not leave an instance folder behind. The owner record comes first, so that `lab down`
    recognises the folder as this instance's from its first file on."""
    folder = instance_folder(host_facts(accel), loaded.lab.id, instance)
    key = key_path(folder)
    if key.exists():
        return
    if read_record(folder) is None:
        topology = loaded.topology.topology
        write_record(folder, Owner(loaded.lab.id, instance, topology_hash(topology)), topology.name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hyperlab-{loaded.lab.id}-{instance}",
                    "-f", str(key)], check=True)


def plan_for_up(loaded: LoadedLab, instance: str, accel: Accel) -> Plan:
    """`lab up`'s plan: the key first (the plan carries its public half), then one pure plan."""
    ensure_key(loaded, instance, accel)
    return host_plan(loaded, instance, accel)
