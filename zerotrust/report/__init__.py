"""``zerotrust report``: a decision log in, one self-contained HTML page out.

For security analysts: subjects ranked by how far their behaviour stands out (volume
against their peer group as the decision point logged it, denials, step-ups, new
devices and countries), and for the highest a chart of their days against the group,
the rules that fired and the decisions behind them. The log is read as a stream
(``load``), scored (``rank``), drawn (``charts``, the only module that needs
matplotlib: the ``report`` extra) and written (``render``, which escapes everything the
log says).
"""

from __future__ import annotations

from zerotrust.report.build import Detail, Report, build_report, write_report
from zerotrust.report.load import DayFigures, DecisionRow, LogFigures, SubjectFigures
from zerotrust.report.options import ReportOptions
from zerotrust.report.rank import Population, Ranked

__all__ = [
    "DayFigures",
    "DecisionRow",
    "Detail",
    "LogFigures",
    "Population",
    "Ranked",
    "Report",
    "ReportOptions",
    "SubjectFigures",
    "build_report",
    "write_report",
]
