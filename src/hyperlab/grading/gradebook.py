"""The gradebook of a class run, from the students' result documents: CSV, JUnit XML, HTML (pure).

A step that could not be checked (ERROR) is written as ERROR, never as 0: an LMS import then
stops at it, and the instructor looks instead of failing a student for a broken host.
"""

from __future__ import annotations

import csv
import html
import io
import xml.etree.ElementTree as ET

from hyperlab.core.model import Lab
from hyperlab.grading.document import RunDocument
from hyperlab.grading.outcome import Status, StepResult


def _number(value: float) -> str:
    return f"{value:g}"


def step_cell(step: StepResult) -> str:
    return "ERROR" if step.status is Status.ERROR else _number(step.score)


def total_cell(document: RunDocument) -> str:
    return _number(document.score) if document.checked else "ERROR"


def _name(document: RunDocument) -> str:
    return document.student or document.instance


def _anchor(document: RunDocument) -> str:
    return f"{document.class_host}-{document.instance}" if document.class_host else document.instance


def _on_hosts(documents: list[RunDocument]) -> bool:
    """A class spread over hosts: the gradebook names each student's host."""
    return any(doc.class_host for doc in documents)


def grades_csv(lab: Lab, documents: list[RunDocument]) -> str:
    """One row per student, one column per step, then total and max (importable into an LMS). A class
    over several hosts has a `host` column after the instance."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    hosts = _on_hosts(documents)
    writer.writerow(["student", "instance", *(["host"] if hosts else []), *[s.id for s in lab.steps], "total", "max",
                     "notes"])
    maximum = sum(s.points for s in lab.steps)
    for doc in documents:
        cells = {s.id: step_cell(s) for s in doc.steps}
        writer.writerow([_name(doc), doc.instance, *([doc.class_host] if hosts else []),
                         *[cells.get(s.id, "") for s in lab.steps], total_cell(doc), maximum, doc.first_error()])
    return buffer.getvalue()


def junit_xml(lab: Lab, documents: list[RunDocument]) -> str:
    """One testsuite per student, one testcase per step: failure = FAIL, error = ERROR, skipped = BLOCKED."""
    suites = ET.Element("testsuites", name=f"hyperlab {lab.id}")
    for doc in documents:
        student = _name(doc)
        counts = doc.counts()
        suite = ET.SubElement(suites, "testsuite", name=student, tests=str(len(doc.steps)),
                              failures=str(counts[Status.FAIL]), errors=str(counts[Status.ERROR]),
                              skipped=str(counts[Status.BLOCKED]), timestamp=doc.started)
        props = ET.SubElement(suite, "properties")
        for name, value in (("lab", lab.id), ("instance", doc.instance), ("score", _number(doc.score)),
                            ("max", str(doc.max)), *([("host", doc.class_host)] if doc.class_host else [])):
            ET.SubElement(props, "property", name=name, value=value)
        for step in doc.steps:
            duration = sum(c.duration for c in step.checks)
            case = ET.SubElement(suite, "testcase", classname=f"{lab.id}.{student}", name=f"{step.id}: {step.title_in('en')}",
                                 time=f"{duration:.3f}")
            first = step.observed.splitlines()[0] if step.observed else ""
            if step.status is Status.FAIL:
                ET.SubElement(case, "failure", message=first or "failed").text = _detail(step)
            elif step.status is Status.ERROR:
                ET.SubElement(case, "error", message=first or "error").text = step.observed
            elif step.status is Status.BLOCKED:
                ET.SubElement(case, "skipped", message=f"BLOCKED: {step.observed}")
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="score",
                          value=f"{_number(step.score)}/{step.points}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _detail(step: StepResult) -> str:
    hint = step.hint_in("en")
    return step.observed + (f"\nhint: {hint}" if hint else "")


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:2rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.PASS{background:#e3f6e3}td.FAIL{background:#fde2e1}td.BLOCKED{background:#eee;color:#666}
td.ERROR{background:#fff2cc;font-weight:bold}pre{white-space:pre-wrap;margin:0;font-size:.85em}
"""


def report_html(lab: Lab, documents: list[RunDocument], generated: str) -> str:
    """A static page: the class at a glance, then each student's failures with what was observed."""
    esc = html.escape
    head = "".join(f"<th title='{esc(s.title.en)}'>{esc(s.id)}<br><small>{s.points}</small></th>" for s in lab.steps)
    rows = []
    for doc in documents:
        by_id = {s.id: s for s in doc.steps}
        cells = "".join(
            f"<td class='{by_id[s.id].status}'>{esc(step_cell(by_id[s.id]))}</td>" if s.id in by_id else "<td></td>"
            for s in lab.steps)
        host = f"<td>{esc(doc.class_host)}</td>" if _on_hosts(documents) else ""
        rows.append(f"<tr><td><a href='#{esc(_anchor(doc))}'>{esc(_name(doc))}</a></td>{host}"
                    f"{cells}<td>{esc(total_cell(doc))}</td><td>{doc.max}</td></tr>")
    details = []
    for doc in documents:
        items = []
        for step in doc.steps:
            if step.status is Status.PASS:
                continue
            items.append(f"<tr><td>{esc(step.id)}</td><td class='{step.status}'>{step.status}</td>"
                         f"<td><pre>{esc(step.observed)}</pre></td><td>{esc(step.hint_in('en'))}</td></tr>")
        body = ("<table><tr><th>step</th><th>status</th><th>observed</th><th>hint</th></tr>" + "".join(items) + "</table>"
                if items else "<p>Every step passes.</p>")
        where = f"{doc.instance} on {doc.class_host}" if doc.class_host else doc.instance
        details.append(f"<h2 id='{esc(_anchor(doc))}'>{esc(_name(doc))} "
                       f"<small>({esc(where)}, {esc(total_cell(doc))} / {doc.max})</small></h2>{body}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(lab.id)} grades</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(lab.title.en)} <small>({esc(lab.id)})</small></h1>"
            f"<p>Generated {esc(generated)}. ERROR means the lab could not be checked (not the student's fault).</p>"
            f"<table><tr><th>student</th>{'<th>host</th>' if _on_hosts(documents) else ''}{head}<th>total</th>"
            f"<th>max</th></tr>{''.join(rows)}</table>"
            f"{''.join(details)}</body></html>\n")
