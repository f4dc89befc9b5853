"""Checks that run on a class host: each student's checkers on the student's own host, by that host's
hyperlab, and the result document brought back to this machine.

A host's answer is a host's word. It is parsed as the typed run document, must be for the lab,
instance and student asked about, and is signed here, with this machine's key, naming the host it
came from (`class_host`). The key never leaves this machine: what a host could forge is its own
students' results, nothing else (docs/design/class.md, "Trust").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hyperlab.core.inventory import LoadedInventory
from hyperlab.core.load import LoadedLab
from hyperlab.core.roster import Entry
from hyperlab.grading.document import DocumentError, RunDocument
from hyperlab.remote.bundle import Bundle, make_bundle
from hyperlab.remote.classwork import ClassResult, Outcome, Progress, over_hosts
from hyperlab.remote.protocol import Hello
from hyperlab.remote.reach import ClassHost, HostDown, bundle_root

CHECK_TIMEOUT = 3600


def check_on_hosts(loaded: LoadedLab, entries: Sequence[Entry], inventory: LoadedInventory,
                   progress: Progress = lambda _h, _t: None, bundle: Bundle | None = None) -> tuple[ClassResult, list[RunDocument]]:
    """Every entry's checkers on its host; the outcomes and one run document per entry, in order."""
    bundle = bundle or make_bundle(loaded)

    def check(host: ClassHost, entry: Entry) -> Outcome:
        reply = host.in_bundle(bundle, "class", "host", "check", bundle.lab_file, "--instance", entry.instance,
                               "--student", entry.student, timeout=CHECK_TIMEOUT)
        document = host.document(reply)
        try:
            run = RunDocument.from_json(document)
        except DocumentError as exc:
            raise HostDown(f"no result document from there: {exc}") from None
        state = "checked" if run.checked else "could not check"
        return Outcome(entry.student, entry.instance, host.name, True, state, f"{run.score:g}/{run.max}",
                       document=document)

    result = over_hosts(entries, inventory, bundle, Hello.this_machine(), check, verb="checked", progress=progress)
    return result, [document_of(loaded, entry, outcome) for entry, outcome in zip(entries, result.students)]


def document_of(loaded: LoadedLab, entry: Entry, outcome: Outcome) -> RunDocument:
    """The run document of one student as this machine believes it: the host's, when it answered
    one for this lab, instance and student; otherwise every step ERROR with the reason."""
    host = outcome.host or ""
    failed = RunDocument.failed(loaded, entry.instance, entry.uri, entry.student,
                                f"{host + ': ' if host else ''}{outcome.state}: {outcome.detail}")
    if outcome.document is None:
        return replace(failed, class_host=host)
    try:
        run = RunDocument.from_json(outcome.document)
    except DocumentError as exc:
        return replace(failed, class_host=host, error=f"{host}: no result document ({exc})")
    if (run.lab, run.instance) != (loaded.lab.id, entry.instance) or run.student not in (None, entry.student):
        why = f"{host} answered for {run.lab}/{run.instance} ({run.student}), not {loaded.lab.id}/{entry.instance}"
        return replace(RunDocument.failed(loaded, entry.instance, entry.uri, entry.student, why), class_host=host)
    if bundle_root(run.lab_file) is None:
        return replace(failed, class_host=host, error=f"{host}: the result names a lab file outside its bundles")
    return replace(run, student=entry.student, class_host=host, signature=None)


def live_domains_there(inventory: LoadedInventory, document: RunDocument) -> dict[str, str] | None:
    """The UUIDs of the student's domains as deployed now on the document's class host, or None
    when they cannot be looked at (the host is down, the lab's bundle is gone)."""
    if document.class_host not in inventory.inventory.hosts:
        return None
    root = bundle_root(document.lab_file)
    if root is None:
        return None
    host = ClassHost(document.class_host, inventory)
    reply = host.lab("status", f"labs/{document.lab}/lab.yaml", "--instance", document.instance, "--json",
                     timeout=300, cwd=root)
    try:
        nodes = host.document(reply).get("nodes")
    except HostDown:
        return None
    if not isinstance(nodes, list):
        return None
    return {str(n.get("name")): str(n.get("uuid")) for n in nodes if isinstance(n, dict) and n.get("uuid")}
