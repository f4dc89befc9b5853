"""A class host as this machine sees it: its `lab` command over SSH, its hello, the lab's bundle
put there once, and its facts (`lab doctor --json`).

Before any work a host must answer, run the same hyperlab as this machine (version and code
fingerprint) and hold the lab's bundle; `ready` says so or says why not, in one line, and the
work of the other hosts goes on without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hyperlab.core.errors import printable
from hyperlab.core.inventory import LoadedInventory
from hyperlab.remote.bundle import Bundle, BundleError, check_hash, pack
from hyperlab.remote.protocol import Hello, ProtocolError
from hyperlab.remote.ssh import Reply, Ssh

HELLO_TIMEOUT = 60
SEND_TIMEOUT = 300
FACTS_TIMEOUT = 300  # `lab doctor` may boot its KVM test guest once (15 s) on a host that never ran it
MAX_DOCUMENT_BYTES = 16 << 20


class HostDown(Exception):
    """A host that cannot be worked on: unreachable, another hyperlab, a lab that did not arrive.
    Its message quotes what the host said, so it is made one printable line."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(" ".join(message.split()))[:500])


@dataclass(frozen=True)
class HostFacts:
    memory: int
    cpus: int
    disk: int


class ClassHost:
    def __init__(self, name: str, inventory: LoadedInventory) -> None:
        spec = inventory.host(name)
        self.name = name
        self.spec = spec
        self.ssh = Ssh(inventory.target(name), inventory.ssh_config)
        self.command = spec.lab or "lab"

    def __repr__(self) -> str:
        return f"ClassHost({self.name!r}, {self.ssh.target})"

    def lab(self, *args: str, timeout: float, stdin: bytes | IO[bytes] | None = None, cwd: str | None = None) -> Reply:
        """`lab ARGS` on the host."""
        return self.ssh.run([self.command, *args], timeout=timeout, stdin=stdin, cwd=cwd)

    def in_bundle(self, bundle: Bundle, *args: str, timeout: float) -> Reply:
        """`lab ARGS` on the host, run from the bundle's folder (where its lab finds its topology and checkers)."""
        return self.lab(*args, timeout=timeout, cwd=bundle.folder())

    def hello(self) -> Hello:
        reply = self.lab("class", "host", "hello", timeout=HELLO_TIMEOUT)
        if not reply.reached:
            raise HostDown(f"unreachable: {reply.why()}")
        if reply.exit_code != 0:
            raise HostDown(f"`{self.command} class host hello` failed there: {reply.why()} (is hyperlab installed there? "
                           "set the host's lab: to its path)")
        try:
            return Hello.from_bytes(reply.stdout)
        except ProtocolError as exc:
            raise HostDown(str(exc)) from None

    def ready(self, ours: Hello, bundle: Bundle, progress: Callable[[str], None]) -> Hello:
        """The host's hello once it runs our hyperlab and holds the bundle (sent when missing)."""
        theirs = self.hello()
        if not theirs.same_code(ours):
            raise HostDown(f"runs hyperlab {theirs.version} (code {theirs.build}), this machine {ours.version} "
                           f"(code {ours.build}); install the same hyperlab there")
        if bundle.hash not in theirs.bundles:
            data = pack(bundle)
            reply = self.lab("class", "host", "receive-lab", bundle.hash, timeout=SEND_TIMEOUT, stdin=data)
            if reply.exit_code != 0:
                raise HostDown(f"the lab did not arrive: {reply.why()}")
            progress(f"lab {bundle.lab} sent ({len(data) >> 10} KiB, bundle {bundle.hash[:12]})")
        return theirs

    def facts(self) -> HostFacts:
        """Memory, CPUs and free disk as the host's own `lab doctor --json` reads them."""
        reply = self.lab("doctor", "--json", timeout=FACTS_TIMEOUT)
        if not reply.reached:
            raise HostDown(f"unreachable: {reply.why()}")
        try:
            data = json.loads(reply.stdout[:MAX_DOCUMENT_BYTES])
            host = data["host"]
            facts = HostFacts(int(host["memory"]), int(host["cpus"]), int(host["disk"]))
        except (ValueError, KeyError, TypeError, RecursionError, OverflowError):
            raise HostDown(f"`lab doctor --json` there gave no host facts: {reply.why()}") from None
        if min(facts.memory, facts.cpus, facts.disk) <= 0:
            raise HostDown("`lab doctor --json` there gave facts that are not positive numbers")
        return facts

    def document(self, reply: Reply) -> dict[str, Any]:
        """A JSON object a `lab` command printed there; HostDown when there is none."""
        if not reply.reached:
            raise HostDown(f"unreachable: {reply.why()}")
        try:
            data = json.loads(reply.stdout[:MAX_DOCUMENT_BYTES])
        except (ValueError, RecursionError):
            raise HostDown(f"no answer from hyperlab there: {reply.why()}") from None
        if not isinstance(data, dict):
            raise HostDown("hyperlab there answered something that is not a JSON object")
        return data


def bundle_of(lab_file: str) -> str | None:
    """The bundle hash of a lab file a host reported (`.../<hash>/labs/<id>/lab.yaml`), or None. The
    folder above is the host's own (a symlinked /var/lib/hyperlab resolves elsewhere), the hash is ours."""
    parts = Path(lab_file).parts
    if len(parts) < 4 or parts[-3] != "labs" or parts[-1] != "lab.yaml":
        return None
    try:
        return check_hash(parts[-4])
    except BundleError:
        return None
