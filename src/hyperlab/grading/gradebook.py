"""The gradebook of a class run, from the students' result documents: CSV, JUnit XML, HTML (pure).

A step that could not be checked (ERROR) is written as ERROR, never as 0: an LMS import then
stops at it, and the instructor looks instead of failing a student for a broken host.
"""

from __future__ import annotations

import csv
import html
import io
import xml.etree.ElementTree as ET
from typing import Any

from hyperlab.core.model import Lab


def _number(value: float) -> str:
    return f"{value:g}"


def step_cell(step: dict[str, Any]) -> str:
    return "ERROR" if step["status"] == "ERROR" else _number(step["score"])


def total_cell(document: dict[str, Any]) -> str:
    return "ERROR" if any(s["status"] == "ERROR" for s in document["steps"]) else _number(document["score"])


def first_error(document: dict[str, Any]) -> str:
    if document.get("error"):
        return str(document["error"])
    for step in document["steps"]:
        if step["status"] == "ERROR":
            return f"{step['id']}: {(step['observed'] or '').splitlines()[0] if step['observed'] else 'error'}"
    return ""


def grades_csv(lab: Lab, documents: list[dict[str, Any]]) -> str:
    """One row per student, one column per step, then total and max (importable into an LMS)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "instance", *[s.id for s in lab.steps], "total", "max", "notes"])
    maximum = sum(s.points for s in lab.steps)
    for doc in documents:
        cells = {s["id"]: step_cell(s) for s in doc["steps"]}
        writer.writerow([doc.get("student") or doc["instance"], doc["instance"],
                         *[cells.get(s.id, "") for s in lab.steps], total_cell(doc), maximum, first_error(doc)])
    return buffer.getvalue()


def junit_xml(lab: Lab, documents: list[dict[str, Any]]) -> str:
    """One testsuite per student, one testcase per step: failure = FAIL, error = ERROR, skipped = BLOCKED."""
    suites = ET.Element("testsuites", name=f"hyperlab {lab.id}")
    for doc in documents:
        student = doc.get("student") or doc["instance"]
        steps = doc["steps"]
        suite = ET.SubElement(suites, "testsuite", name=student, tests=str(len(steps)),
                              failures=str(sum(s["status"] == "FAIL" for s in steps)),
                              errors=str(sum(s["status"] == "ERROR" for s in steps)),
                              skipped=str(sum(s["status"] == "BLOCKED" for s in steps)),
                              timestamp=str(doc.get("started", "")))
        props = ET.SubElement(suite, "properties")
        for name, value in (("lab", lab.id), ("instance", doc["instance"]), ("score", _number(doc["score"])),
                            ("max", str(doc["max"]))):
            ET.SubElement(props, "property", name=name, value=value)
        for step in steps:
            duration = sum(c.get("duration", 0.0) for c in step.get("checks", []))
            case = ET.SubElement(suite, "testcase", classname=f"{lab.id}.{student}", name=f"{step['id']}: {step['title']['en']}",
                                 time=f"{duration:.3f}")
            observed = step["observed"] or ""
            if step["status"] == "FAIL":
                ET.SubElement(case, "failure", message=observed.splitlines()[0] if observed else "failed").text = _detail(step)
            elif step["status"] == "ERROR":
                ET.SubElement(case, "error", message=observed.splitlines()[0] if observed else "error").text = observed
            elif step["status"] == "BLOCKED":
                ET.SubElement(case, "skipped", message=f"BLOCKED: {observed}")
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="score",
                          value=f"{_number(step['score'])}/{step['points']}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _detail(step: dict[str, Any]) -> str:
    hint = step.get("hint") or {}
    return (step["observed"] or "") + (f"\nhint: {hint.get('en')}" if hint.get("en") else "")


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:2rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.PASS{background:#e3f6e3}td.FAIL{background:#fde2e1}td.BLOCKED{background:#eee;color:#666}
td.ERROR{background:#fff2cc;font-weight:bold}pre{white-space:pre-wrap;margin:0;font-size:.85em}
"""


def report_html(lab: Lab, documents: list[dict[str, Any]], generated: str) -> str:
    """A static page: the class at a glance, then each student's failures with what was observed."""
    esc = html.escape
    head = "".join(f"<th title='{esc(s.title.en)}'>{esc(s.id)}<br><small>{s.points}</small></th>" for s in lab.steps)
    rows = []
    for doc in documents:
        by_id = {s["id"]: s for s in doc["steps"]}
        cells = "".join(
            f"<td class='{esc(by_id[s.id]['status'])}'>{esc(step_cell(by_id[s.id]))}</td>" if s.id in by_id else "<td></td>"
            for s in lab.steps)
        rows.append(f"<tr><td><a href='#{esc(doc['instance'])}'>{esc(doc.get('student') or doc['instance'])}</a></td>"
                    f"{cells}<td>{esc(total_cell(doc))}</td><td>{doc['max']}</td></tr>")
    details = []
    for doc in documents:
        items = []
        for step in doc["steps"]:
            if step["status"] == "PASS":
                continue
            hint = (step.get("hint") or {}).get("en") or ""
            items.append(f"<tr><td>{esc(step['id'])}</td><td class='{esc(step['status'])}'>{esc(step['status'])}</td>"
                         f"<td><pre>{esc(step['observed'] or '')}</pre></td><td>{esc(hint)}</td></tr>")
        body = ("<table><tr><th>step</th><th>status</th><th>observed</th><th>hint</th></tr>" + "".join(items) + "</table>"
                if items else "<p>Every step passes.</p>")
        details.append(f"<h2 id='{esc(doc['instance'])}'>{esc(doc.get('student') or doc['instance'])} "
                       f"<small>({esc(doc['instance'])}, {esc(total_cell(doc))} / {doc['max']})</small></h2>{body}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(lab.id)} grades</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(lab.title.en)} <small>({esc(lab.id)})</small></h1>"
            f"<p>Generated {esc(generated)}. ERROR means the lab could not be checked (not the student's fault).</p>"
            f"<table><tr><th>student</th>{head}<th>total</th><th>max</th></tr>{''.join(rows)}</table>"
            f"{''.join(details)}</body></html>\n")
