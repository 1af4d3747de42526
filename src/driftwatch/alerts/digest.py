"""The words of an alert: one digest per route and run, or one all-clear when a route's drift is gone.

Plain text, so it reads the same in Slack, Teams, email and a webhook payload. Each line names the record
id someone can act on (order number, customer id, SKU) and both sides' values.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from driftwatch.money import format_money
from driftwatch.report.mask import mask_email_text
from driftwatch.report.summary import RunInfo

LINES_PER_GROUP = 10
REASONS = ("new", "regressed", "worsened", "unalerted")
_REASON_TEXT = {
    "new": "new",
    "regressed": "back again",
    "worsened": "worse than last run",
    "unalerted": "open, not alerted before",
}


@dataclass(frozen=True)
class Message:
    kind: str  # drift | resolved
    title: str
    body: str
    findings: int
    urgent: bool = False


def drift_digest(route: str, run: RunInfo, alerting: pl.DataFrame, link: str, *, mask: bool) -> Message:
    """`alerting`: the route's findings that need attention, most urgent first, with a `reason` column."""
    reasons = dict(alerting.group_by("reason").len().iter_rows())
    summary = ", ".join(f"{reasons[r]} {_REASON_TEXT[r]}" for r in REASONS if r in reasons)
    count = alerting.height
    counted = "1 finding needs" if count == 1 else f"{count} findings need"
    lines = [
        f"driftwatch run {run.run_id} ({run.started_at:%Y-%m-%d %H:%M} UTC): {counted} attention on route "
        f"{route} ({summary})."
    ]
    if not run.trusted:
        lines += [
            "",
            "The snapshot health check failed: this run's other findings are held back until the snapshots are "
            "fixed and audited again.",
        ]
    for (check, target), group in alerting.group_by("check_id", "target", maintain_order=True):
        lines += ["", f"{check} · {target} ({group.height})"]
        lines += [_line(row, mask) for row in group.head(LINES_PER_GROUP).iter_rows(named=True)]
        if group.height > LINES_PER_GROUP:
            lines.append(f"- … and {group.height - LINES_PER_GROUP} more in the report")
    lines += ["", f"Report: {link}"]
    urgent = alerting.filter(pl.col("severity").is_in(["critical", "high"])).height > 0
    title = f"driftwatch: {counted} attention ({route})"
    return Message("drift", title, "\n".join(lines), count, urgent)


def resolved_notice(route: str, run: RunInfo, cleared: int, link: str) -> Message:
    noun = "finding" if cleared == 1 else "findings"
    body = (
        f"driftwatch run {run.run_id} ({run.started_at:%Y-%m-%d %H:%M} UTC): all clear on route {route}. "
        f"The {cleared} open {noun} this route was alerted about are resolved.\n\nReport: {link}"
    )
    return Message("resolved", f"driftwatch: all clear ({route})", body, cleared)


def _line(row: dict, mask: bool) -> str:
    text = f"- [{row['severity']}] {row['key']}"
    if row["field"]:
        text += f" {row['field']}"
    text += f": expected {_value(row['expected'])}, {row['target']} has {_value(row['actual'])}"
    if row["impact"] is not None:
        text += f", {format_money(row['impact'], row['currency'])} at risk"
    text += f" ({_REASON_TEXT[row['reason']]})"
    return mask_email_text(text) if mask else text


def _value(value: str | None) -> str:
    return "nothing" if value is None else value
