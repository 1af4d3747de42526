"""One self-contained HTML file per run: trust headline, incidents, per-check summary and trends, sync latency,
drift age, top findings, and the full findings table (filtered and sorted in the page, no network needed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import polars as pl

from driftwatch.engine.findings import SEVERITIES
from driftwatch.engine.runner import HEALTH_CHECK
from driftwatch.files import write_text
from driftwatch.money import format_money
from driftwatch.report import sections, summary
from driftwatch.report.mask import mask_emails
from driftwatch.report.sections import FollowUp
from driftwatch.report.summary import History, RunInfo
from driftwatch.report.svg import sparkline, stacked_bars

TREND_RUNS = 14
TOP_PER_CHECK = 5


@dataclass(frozen=True)
class ReportOptions:
    mask_emails: bool = True
    max_table_rows: int = 5000


def render_report(
    run: RunInfo,
    findings: pl.DataFrame,
    history: History | None = None,
    options: ReportOptions | None = None,
    notes: list[str] | None = None,
    follow_up: FollowUp | None = None,
) -> str:
    """The report for one run as an HTML string. Every value is escaped by the template engine. `notes`
    say what the run could not check (engine.notes).

    `findings` may carry `since` (`incidents.age.open_since`): each then says how long it has been open.
    """
    options = options or ReportOptions()
    follow_up = follow_up or FollowUp()
    if options.mask_emails:
        findings = mask_emails(findings)
    now = follow_up.as_of or run.started_at
    findings = _with_age(findings, now)
    window = (history or History.empty()).window(run, findings, TREND_RUNS)
    ordered = summary.by_attention(findings)
    open_rows = summary.open_findings(ordered)
    context = {
        "run": run,
        "health": _records(open_rows.filter(pl.col("check_id") == HEALTH_CHECK)),
        "statuses": summary.status_counts(findings),
        "severities": summary.severity_counts(findings),
        "severity_names": SEVERITIES,
        "money": [format_money(amount, currency) for currency, amount in summary.money_at_risk(findings).items()],
        "checks": _check_rows(findings, window),
        "trend": _overall_trend(window),
        "top": _top_per_check(open_rows),
        "table": _records(ordered.head(options.max_table_rows)),
        "total": findings.height,
        "masked": options.mask_emails,
        "notes": notes or [],
        "incidents": sections.incidents(follow_up, findings, now),
        "latency": sections.latency(follow_up),
        "aging": sections.aging(follow_up),
    }
    return _environment().get_template("report.html.j2").render(context)


def write_report(
    path: Path,
    run: RunInfo,
    findings: pl.DataFrame,
    history: History | None = None,
    options: ReportOptions | None = None,
    notes: list[str] | None = None,
    follow_up: FollowUp | None = None,
) -> Path:
    return write_text(path, render_report(run, findings, history, options, notes, follow_up))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("driftwatch.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = format_money
    return env


def _with_age(findings: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """`open_for`: how long each open finding has been open at `now`, in words (from `since`)."""
    if "since" not in findings.columns:
        return findings.with_columns(pl.lit(None, pl.String).alias("open_for"))
    ages = [
        sections.age(since, now) if since is not None and status != "resolved" else None
        for since, status in findings.select("since", "status").iter_rows()
    ]
    return findings.with_columns(pl.Series("open_for", ages, dtype=pl.String))


def _records(frame: pl.DataFrame) -> list[dict]:
    return frame.with_columns(summary.severity_rank().alias("rank")).to_dicts()


def _check_rows(findings: pl.DataFrame, window: History) -> list[dict]:
    """One row per (check, target): open counts by severity, lifecycle counts, money at risk, trend."""
    trends = {(check, target): values for check, target, values in window.series(["check_id", "target"]).iter_rows()}
    rows = []
    for (check, target), group in findings.group_by("check_id", "target"):
        trend = trends.get((check, target), [0] * window.runs.height)
        rows.append(
            {
                "check_id": check,
                "target": target,
                "severities": summary.severity_counts(group),
                "statuses": summary.status_counts(group),
                "money": [format_money(a, c) for c, a in summary.money_at_risk(group).items()],
                "trend": trend,
                "spark": sparkline(trend),
            }
        )
    return sorted(rows, key=lambda r: ([-r["severities"][s] for s in SEVERITIES], r["check_id"], r["target"]))


def _overall_trend(window: History) -> dict:
    per_severity = {row[0]: row[1] for row in window.series(["severity"]).iter_rows()}
    counts = {s: per_severity[s] for s in SEVERITIES if s in per_severity}
    labels = [f"{started:%Y-%m-%d %H:%M}" for started in window.runs["started_at"]]
    return {
        "bars": stacked_bars(labels, counts),
        "labels": labels,
        "totals": [sum(values) for values in zip(*counts.values(), strict=True)] if counts else [0] * len(labels),
    }


def _top_per_check(open_rows: pl.DataFrame) -> list[dict]:
    """The most urgent open findings of each check, checks with critical drift first."""
    top = open_rows.group_by("check_id", maintain_order=True).head(TOP_PER_CHECK)
    counts = dict(open_rows.group_by("check_id").len().iter_rows())
    return [
        {"check_id": check, "open": counts[check], "rows": _records(group)}
        for (check,), group in top.group_by("check_id", maintain_order=True)
    ]
