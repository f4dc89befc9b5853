"""`lab class up | status | down`: every student's instance on the student's host, by that host's
own hyperlab (over SSH), and what a class host answers when this machine asks.

The host side (images, prepared layers, secrets, probes) stays on each host: this machine sends
the lab once (by content hash), the golden images a host lacks (copied from this machine's store
when it has them, else built there once), then runs `lab up`, `lab status` or `lab down` there for
each student. Each of those is idempotent on its host, so a rerun converges.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence

from hyperlab.core.catalog import IMAGES
from hyperlab.core.inventory import LoadedInventory
from hyperlab.core.load import LoadedLab
from hyperlab.core.needs import lab_needs
from hyperlab.core.roster import Entry
from hyperlab.images import transfer
from hyperlab.images.store import ImageError, ImageStore
from hyperlab.remote.bundle import Bundle, present
from hyperlab.remote.classwork import ClassResult, Outcome, Progress, Work, over_hosts
from hyperlab.remote.protocol import Hello
from hyperlab.remote.reach import ClassHost, HostDown

UP_MARGIN = 3600  # one student's `lab up` may take its nodes' --timeout each, and its start state besides
BUILD_TIMEOUT = 2 * 3600
COPY_TIMEOUT = 3600
QUICK_TIMEOUT = 600  # status, down


def hello_here(store: ImageStore) -> Hello:
    """This host's hello: its hyperlab, the lab bundles and golden images it holds."""
    images = {}
    for name in store.names():
        try:
            images[name] = store.get(name).sha256
        except ImageError:  # a damaged manifest is an image this host does not have
            continue
    return Hello.here(present(), images, socket.gethostname())


# ------------------------------------------------------------------------------ images per host


def images_for(loaded: LoadedLab, store: ImageStore) -> Callable[[ClassHost, Hello, Callable[[str], None]], None]:
    """The preparation of a host for `lab class up`: every golden image the lab needs, there once."""
    needed = lab_needs(loaded).images
    copies = threading.Semaphore(2)  # image streams from this machine's disk at once: one slow host holds up no more

    def prepare(host: ClassHost, hello: Hello, say: Callable[[str], None]) -> None:
        for name in needed:
            if name in hello.images:
                here = transfer.sendable(store, name)
                if here is not None and here.sha256 != hello.images[name]:
                    say(f"image {name} there is another build than this machine's ({hello.images[name][:12]}, here "
                        f"{here.sha256[:12]}); its own is used")
                continue
            manifest = transfer.sendable(store, name)
            if manifest is not None:
                with copies:
                    say(f"copying image {name} ({manifest.size >> 20} MiB) from this machine")
                    _copy(host, store, name, manifest.sha256)
                say(f"image {name} copied")
            elif name in IMAGES and IMAGES[name].automatic:
                say(f"building image {name} there (once; this machine has no copy)")
                reply = host.lab("image", "build", name, timeout=BUILD_TIMEOUT)
                if reply.exit_code != 0:
                    raise HostDown(f"image {name} could not be built there: {reply.why()}")
            else:
                hint = IMAGES[name].build_hint if name in IMAGES else f"lab image build {name}"
                raise HostDown(f"lacks image {name}: build it here ({hint}) and class up copies it, or build it there")

    return prepare


def _copy(host: ClassHost, store: ImageStore, name: str, sha256: str) -> None:
    read, write = os.pipe()

    def produce() -> None:
        try:
            with os.fdopen(write, "wb") as out:
                transfer.send(store, name, out)
        except OSError:  # the host hung up (a broken pipe): its reply says why
            pass

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with os.fdopen(read, "rb") as stream:
        reply = host.lab("class", "host", "receive-image", name, sha256, timeout=COPY_TIMEOUT, stdin=stream)
    producer.join()
    if reply.exit_code != 0:
        raise HostDown(f"image {name} did not arrive: {reply.why()}")


# ------------------------------------------------------------------------------ per student


def _lab_args(bundle: Bundle, command: str, entry: Entry, *extra: str) -> list[str]:
    return [command, bundle.lab_file, "--instance", entry.instance, *extra]


def _failed(host: ClassHost, entry: Entry, state: str, reply_why: str) -> Outcome:
    return Outcome(entry.student, entry.instance, host.name, False, state, reply_why)


def _each(bundle: Bundle, command: str, *extra: str, done: str, timeout: float) -> Work:
    """`lab COMMAND LAB --instance I EXTRA` on each student's host; `done` when it exits 0."""
    def work(host: ClassHost, entry: Entry) -> Outcome:
        reply = host.in_bundle(bundle, *_lab_args(bundle, command, entry, *extra), timeout=timeout)
        if reply.exit_code == 0:
            return Outcome(entry.student, entry.instance, host.name, True, done)
        return _failed(host, entry, "failed" if reply.reached else "host down", reply.why())

    return work


def class_up(loaded: LoadedLab, entries: Sequence[Entry], inventory: LoadedInventory, bundle: Bundle, store: ImageStore,
             *, accel: str = "auto", variables: Sequence[str] = (), timeout: float = 900,
             progress: Progress = lambda _h, _t: None) -> ClassResult:
    extra = ["--accel", accel, "--timeout", f"{timeout:g}", *(arg for var in variables for arg in ("--var", var))]
    up = _each(bundle, "up", *extra, done="up", timeout=UP_MARGIN + timeout * (len(lab_needs(loaded).nodes) + 1))
    return over_hosts(entries, inventory, bundle, Hello.this_machine(), up, verb="up", progress=progress,
                      prepare=images_for(loaded, store))


def class_status(entries: Sequence[Entry], inventory: LoadedInventory, bundle: Bundle,
                 progress: Progress = lambda _h, _t: None) -> ClassResult:
    def status(host: ClassHost, entry: Entry) -> Outcome:
        reply = host.in_bundle(bundle, *_lab_args(bundle, "status", entry, "--json"), timeout=QUICK_TIMEOUT)
        document = host.document(reply)
        nodes = document.get("nodes")
        if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
            return _failed(host, entry, "failed", "lab status there gave no nodes")
        waiting = [f"{n.get('name')} {n.get('state')}" for n in nodes if not n.get("ready")]
        if all(n.get("state") == "missing" for n in nodes):
            return Outcome(entry.student, entry.instance, host.name, False, "not deployed", "lab class up deploys it",
                           document=document)
        if waiting:
            return Outcome(entry.student, entry.instance, host.name, False, "not ready", ", ".join(map(str, waiting)),
                           document=document)
        return Outcome(entry.student, entry.instance, host.name, True, "ready", f"{len(nodes)} node(s)", document=document)

    return over_hosts(entries, inventory, bundle, Hello.this_machine(), status, verb="looked at", progress=progress)


def class_down(entries: Sequence[Entry], inventory: LoadedInventory, bundle: Bundle,
               progress: Progress = lambda _h, _t: None) -> ClassResult:
    down = _each(bundle, "down", done="down", timeout=QUICK_TIMEOUT)
    return over_hosts(entries, inventory, bundle, Hello.this_machine(), down, verb="down", progress=progress)
