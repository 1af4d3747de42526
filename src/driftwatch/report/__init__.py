"""The per-run HTML report and the findings exports."""

from driftwatch.report.export import export_findings
from driftwatch.report.html import ReportOptions, render_report, write_report
from driftwatch.report.summary import History, RunInfo

__all__ = ["History", "ReportOptions", "RunInfo", "export_findings", "render_report", "write_report"]
