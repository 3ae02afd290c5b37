"""Policy test suites: ``*_test.yaml`` files of requests and the decisions they must get.

Used by ``zerotrust test`` and ``zerotrust validate``, and usable from a project's own
pytest (``run_tests``). A suite that is itself malformed raises :class:`PolicyError`
with the position of every problem, like a policy.
"""

from zerotrust.testing._coverage import Coverage, FileCoverage, ItemCoverage, coverage_of
from zerotrust.testing._formats import to_json, to_junit
from zerotrust.testing._run import (
    CaseResult,
    StaticBehavior,
    SuiteCheck,
    SuiteReport,
    check_suites,
    run_suite_file,
    run_tests,
    suite_files,
)

__all__ = [
    "CaseResult",
    "Coverage",
    "FileCoverage",
    "ItemCoverage",
    "StaticBehavior",
    "SuiteCheck",
    "SuiteReport",
    "check_suites",
    "coverage_of",
    "run_suite_file",
    "run_tests",
    "suite_files",
    "to_json",
    "to_junit",
]
