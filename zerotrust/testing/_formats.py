"""The machine forms of a report: one JSON object, or JUnit XML for CI systems."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from zerotrust.testing._coverage import Coverage
from zerotrust.testing._run import CaseResult, SuiteReport

__all__ = ["to_json", "to_junit"]


def _case_dict(result: CaseResult) -> dict[str, Any]:
    return {
        "file": result.file,
        "line": result.line,
        "suite": result.suite,
        "name": result.name,
        "passed": result.passed,
        "expected": dict(result.expected),
        "got": result.got(),
        "failures": list(result.failures),
        "explanation": list(result.explanation()),
    }


def to_json(report: SuiteReport, coverage: Coverage | None = None) -> str:
    """The report as one JSON object: the counts and every case (and the coverage,
    under ``coverage``, when given)."""
    body: dict[str, Any] = {
        "passed": report.passed,
        "failed": report.failed,
        "cases": [_case_dict(r) for r in report.results],
    }
    if coverage is not None:
        body["coverage"] = coverage.to_dict()
    return json.dumps(body, indent=2, default=str)


# Characters XML 1.0 cannot carry, even escaped: a case name or a request value holding
# one would make the whole report unreadable to the CI system.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_junit(report: SuiteReport) -> str:
    """The report as JUnit XML, the format CI systems read: one ``testsuite`` per suite
    file, one ``testcase`` per case (``classname`` the file), a ``failure`` for each
    failing case with its explanation."""
    root = ET.Element(
        "testsuites",
        name="zerotrust",
        tests=str(len(report.results)),
        failures=str(report.failed),
        errors="0",
    )
    by_file: dict[str, list[CaseResult]] = {}
    for result in report.results:
        by_file.setdefault(result.file, []).append(result)
    for file, results in by_file.items():
        failed = sum(1 for r in results if not r.passed)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml(file),
            tests=str(len(results)),
            failures=str(failed),
            errors="0",
            skipped="0",
        )
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                name=_xml(result.name),
                classname=_xml(file),
                file=_xml(file),
                line=str(result.line),
            )
            if not result.passed:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=_xml("; ".join(result.failures)),
                    type="PolicyTestFailure",
                )
                failure.text = _xml("\n".join(result.explanation()))
    ET.indent(root)
    # ASCII with character references: the same document on any terminal or pipe encoding.
    document: bytes = ET.tostring(root, encoding="us-ascii", xml_declaration=True)
    return document.decode("ascii") + "\n"
