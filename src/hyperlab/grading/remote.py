"""Checks that run on a class host: each student's checkers on the student's own host, by that host's
hyperlab, and the result document brought back to this machine.

A host's answer is a host's word. It is parsed as the typed run document, must be for the lab,
instance and student asked about, and is signed here, with this machine's key, naming the host it
came from (`class_host`). The key never leaves this machine: what a host could forge is its own
students' results, nothing else (docs/design/class.md, "Trust").
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace

from hyperlab.core.inventory import LoadedInventory
from hyperlab.core.load import LoadedLab
from hyperlab.core.roster import Entry
from hyperlab.grading.document import DocumentError, RunDocument
from hyperlab.remote.bundle import BUNDLES, Bundle, make_bundle
from hyperlab.remote.classwork import ClassResult, Outcome, Progress, over_hosts
from hyperlab.remote.protocol import Hello
from hyperlab.remote.reach import ClassHost, HostDown, bundle_of

CHECK_TIMEOUT = 3600
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_on_hosts(loaded: LoadedLab, entries: Sequence[Entry], inventory: LoadedInventory,
                   progress: Progress = lambda _h, _t: None, bundle: Bundle | None = None) -> tuple[ClassResult, list[RunDocument]]:
    """Every entry's checkers on its host; the outcomes and one run document per entry, in order."""
    bundle = bundle or make_bundle(loaded)

    def check(host: ClassHost, entry: Entry) -> Outcome:
        # the student's name stays here: the host needs none, and this machine writes it into the result
        reply = host.in_bundle(bundle, "class", "host", "check", bundle.lab_file, "--instance", entry.instance,
                               timeout=CHECK_TIMEOUT)
        # believed or not by document_of, for every student in one place
        return Outcome(entry.student, entry.instance, host.name, True, "answered", document=host.document(reply))

    result = over_hosts(entries, inventory, bundle, Hello.this_machine(), check, verb="checked", progress=progress)
    return result, [document_of(loaded, entry, outcome, bundle.hash) for entry, outcome in zip(entries, result.students)]


def document_of(loaded: LoadedLab, entry: Entry, outcome: Outcome, bundle_hash: str) -> RunDocument:
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
    why = _misfit(loaded, entry, run, bundle_hash)
    if why is not None:
        return replace(RunDocument.failed(loaded, entry.instance, entry.uri, entry.student, f"{host}: {why}"),
                       class_host=host)
    return replace(run, student=entry.student, class_host=host, signature=None)


def _misfit(loaded: LoadedLab, entry: Entry, run: RunDocument, bundle_hash: str) -> str | None:
    """Why a host's document is not a result of this lab for this student (None: it is one)."""
    if (run.lab, run.instance) != (loaded.lab.id, entry.instance):
        return f"answered for {run.lab}/{run.instance}, not {loaded.lab.id}/{entry.instance}"
    if bundle_of(run.lab_file) != bundle_hash:
        return "the result names another lab file than the bundle sent"
    points = {step.id: step.points for step in loaded.lab.steps}
    if [s.id for s in run.steps] != [s.id for s in loaded.lab.steps] or any(
            s.points != points[s.id] or not 0 <= s.score <= s.points for s in run.steps):
        return "the result's steps are not the lab's steps with their points"
    if run.max != sum(points.values()) or not math.isclose(run.score, sum(s.score for s in run.steps), abs_tol=0.01):
        return "the result's score is not the sum of its steps"
    return None


def live_domains_there(inventory: LoadedInventory, document: RunDocument) -> dict[str, str] | None:
    """The UUIDs of the student's domains as deployed now on the document's class host, or None
    when they cannot be looked at (the host is down, the lab's bundle is gone)."""
    bundle = bundle_of(document.lab_file)
    if document.class_host not in inventory.inventory.hosts or bundle is None:
        return None
    host = ClassHost(document.class_host, inventory)
    reply = host.lab("status", f"labs/{document.lab}/lab.yaml", "--instance", document.instance, "--json",
                     timeout=300, cwd=str(BUNDLES / bundle))
    try:
        nodes = host.document(reply).get("nodes")
    except HostDown:
        return None
    if not isinstance(nodes, list):
        return None
    live = {str(n.get("name")): str(n.get("uuid")) for n in nodes
            if isinstance(n, dict) and isinstance(n.get("uuid"), str) and UUID_RE.fullmatch(n["uuid"])}
    return live or None  # no domain there (the class is down): nothing to compare with, as on one host
