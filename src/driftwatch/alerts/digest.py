"""The words of an alert: one digest per destination and run.

Plain text, so it reads the same in Slack, Teams, email and a webhook payload. A digest is a list a support
person can work through: grouped by check, one line per record (the order, customer or SKU on one target)
naming every check it fails in the check's own words, the previous value where it changed, the money at
risk in its currency, since when it has been open; then what cleared since the last digest, by key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import polars as pl

from driftwatch.alerts.changes import REASONS
from driftwatch.engine.findings import SEVERITY_RANK
from driftwatch.money import format_money
from driftwatch.report.mask import mask_email_text
from driftwatch.report.summary import RunInfo

MAX_RECORDS = 20  # a list someone works through; the rest are counted, and all are in the report
LINES_PER_CHECK = 10
CLEARED_LINES = 20
_REASON_COUNTS = {
    "new": "new",
    "regressed": "back again",
    "worsened": "worse",
    "changed": "changed",
    "unquieted": "no longer acknowledged",
    "unalerted": "not alerted before",
}


@dataclass(frozen=True)
class Message:
    kind: str  # drift | resolved
    title: str
    body: str
    findings: int  # findings the message names
    urgent: bool = False


@dataclass
class _Record:
    """One record on one target, with its findings in this digest, most urgent first."""

    key: str
    target: str
    parts: list[dict] = field(default_factory=list)

    @property
    def lead(self) -> dict:
        return self.parts[0]

    @property
    def reason(self) -> dict:
        alerting = [p for p in self.parts if p.get("reason")]
        return min(alerting, key=lambda p: REASONS.index(p["reason"]))

    @property
    def money(self) -> tuple[Decimal, str | None] | None:
        """The largest amount at risk among its findings (one order's value is not at risk twice)."""
        priced = [(abs(p["impact"]), p["currency"]) for p in self.parts if p["impact"] is not None]
        return max(priced, key=lambda m: m[0]) if priced else None

    def rank(self) -> tuple:
        money = self.money
        return (-SEVERITY_RANK.get(self.lead["severity"], 0), -(money[0] if money else 0), self.key)


def digest(
    route: str,
    run: RunInfo,
    alerting: pl.DataFrame,
    context: pl.DataFrame,
    cleared: pl.DataFrame,
    *,
    open_findings: int,
    report: str,
    mask: bool,
    groups: pl.DataFrame | None = None,
) -> Message | None:
    """The message for one destination, or None when there is nothing to tell.

    `alerting`: the findings that alert, with `reason` and the values last seen (`*_was`); `context`: every
    open, unquiet finding of the route, so a record's line names all it fails; `cleared`: what the
    destination saw open that has cleared; `open_findings`: what stays open on the route; `groups`: the
    incidents and breached sync objectives that alert (`alerts.groups`), one line each, first.
    """
    groups = groups if groups is not None and groups.height else None
    if alerting.height == 0 and cleared.height == 0 and groups is None:
        return None
    records = _records(alerting, context)
    lines = _group_lines(groups, run, report, mask) if groups is not None else []
    # Blocks, separated by a blank line: whatever a digest adds later (incidents) is one more block.
    blocks = [
        [
            f"driftwatch run {run.run_id} ({run.started_at:%Y-%m-%d %H:%M} UTC), route {route}",
            _headline(records, cleared, open_findings, len(lines)),
        ],
        _untrusted_note(run),
        *([[f"Incidents ({len(lines)})", *lines]] if lines else []),
        *_record_blocks(records, run, mask),
        _cleared_block(cleared, mask),
        [f"Report: {report}"],
    ]
    body = "\n\n".join("\n".join(block) for block in blocks if block)
    named = sum(len(r.parts) for r in records) + cleared.height + len(lines)
    if records or lines:
        count = _needing(len(lines), len(records))
        also = f", {cleared.height} cleared" if cleared.height else ""
        severities = [r.lead["severity"] for r in records] + ([] if groups is None else groups["severity"].to_list())
        urgent = any(SEVERITY_RANK.get(s, 0) >= SEVERITY_RANK["high"] for s in severities)
        return Message("drift", f"driftwatch: {count} attention{also} ({route})", body, named, urgent)
    if open_findings == 0:
        return Message("resolved", f"driftwatch: all clear ({route})", body, named)
    title = f"driftwatch: {cleared.height} cleared, {open_findings} still open ({route})"
    return Message("resolved", title, body, named)


def _untrusted_note(run: RunInfo) -> list[str]:
    if run.trusted:
        return []
    return [
        "The snapshot health check failed: this run's other findings are held back until the snapshots are "
        "fixed and audited again."
    ]


def _record_blocks(records: list[_Record], run: RunInfo, mask: bool) -> list[list[str]]:
    """One block per check for the most urgent records, and a count of the rest."""
    shown, rest = records[:MAX_RECORDS], records[MAX_RECORDS:]
    blocks = []
    for check, group in _by_check(shown):
        block = [f"{check} ({len(group)})", *(_line(record, run, mask) for record in group[:LINES_PER_CHECK])]
        if len(group) > LINES_PER_CHECK:
            block.append(f"- … and {len(group) - LINES_PER_CHECK} more in the report")
        blocks.append(block)
    if rest:
        counts = ", ".join(f"{check} {len(group)}" for check, group in _by_check(rest))
        blocks.append([f"… and {len(rest)} more records in the report ({counts})."])
    return blocks


def _cleared_block(cleared: pl.DataFrame, mask: bool) -> list[str]:
    if cleared.height == 0:
        return []
    return [f"Cleared since the last digest ({cleared.height}):", *_cleared_lines(cleared, mask)]


def _records(alerting: pl.DataFrame, context: pl.DataFrame) -> list[_Record]:
    """One record per (target, key) with something alerting, holding every open finding of it (`context`
    holds the alerting findings too; those come with their reason)."""
    reasons = {row["fingerprint"]: row for row in alerting.iter_rows(named=True)}
    records = {(row["target"], row["key"]): _Record(row["key"], row["target"]) for row in reasons.values()}
    for row in context.iter_rows(named=True):
        record = records.get((row["target"], row["key"]))
        if record is not None:
            record.parts.append(reasons.get(row["fingerprint"], row))
    for record in records.values():
        record.parts.sort(key=_part_rank)
    return sorted(records.values(), key=_Record.rank)


def _part_rank(part: dict) -> tuple:
    alerting = 0 if part.get("reason") else 1
    impact = abs(part["impact"]) if part["impact"] is not None else Decimal(0)
    return (alerting, -SEVERITY_RANK.get(part["severity"], 0), -impact, part["check_id"], part["field"] or "")


def _by_check(records: list[_Record]) -> list[tuple[str, list[_Record]]]:
    """Records under the check of their most urgent finding; checks in the order of their first record."""
    groups: dict[str, list[_Record]] = defaultdict(list)
    for record in records:
        groups[record.lead["check_id"]].append(record)
    return list(groups.items())


def _needing(incidents: int, records: int) -> str:
    """ "2 incidents and 3 records need", "1 record needs"."""
    named = [f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in ((incidents, "incident"), (records, "record")) if n]
    return " and ".join(named) + (" needs" if incidents + records == 1 else " need")


def _group_lines(groups: pl.DataFrame, run: RunInfo, report: str, mask: bool) -> list[str]:
    """One line per incident or breached objective, most severe first: what, how big, since when, where."""
    ordered = groups.with_columns(
        pl.col("severity").replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8).alias("_rank")
    ).sort(["_rank", "impact", "fingerprint"], descending=[True, True, False], nulls_last=True)
    lines = []
    for row in ordered.iter_rows(named=True):
        text = f"- [{row['severity']}] {row['check_id']} on {row['target']}: {row['message']}"
        if not row.get("incident_id"):
            text = f"- [{row['severity']}] {row['message']}"  # a sync objective's line names its sync
        if row.get("incident_id"):
            size = f"{row['actual']} record{'s' if row['actual'] != '1' else ''}"
            if row["reason"] == "worsened" and row.get("actual_was") and row["actual_was"] != row["actual"]:
                size += f", was {row['actual_was']}"
            money = ", ".join(format_money(m["amount"], m["currency"] or None) for m in row.get("money") or [])
            text += f". {size}" + (f", {money} at risk" if money else "")
            text += f". Owner {row['owner']}" if row.get("owner") else ""
            text += f". {_label(row, run)}. Findings: {_anchor(report, 'incident-' + row['incident_id'])}"
        else:
            text += f". {_label(row, run)}. Trend: {_anchor(report, 'latency')}"
        lines.append(mask_email_text(text) if mask else text)
    return lines


def _anchor(report: str, fragment: str) -> str:
    """A link into the report where it is published; else the section's name beside the file."""
    if "://" in report.split(" ", 1)[0]:
        return f"{report}#{fragment}"
    return f"#{fragment} in the report"


def _headline(records: list[_Record], cleared: pl.DataFrame, still_open: int, incidents: int = 0) -> str:
    parts = []
    if incidents:
        parts.append(f"{incidents} incident{' needs' if incidents == 1 else 's need'} attention.")
    if records:
        counts = defaultdict(int)
        for record in records:
            counts[record.reason["reason"]] += 1
        summary = ", ".join(f"{counts[r]} {_REASON_COUNTS[r]}" for r in REASONS if counts[r])
        noun = "1 record needs" if len(records) == 1 else f"{len(records)} records need"
        money = _totals(record.money for record in records)
        parts.append(f"{noun} attention ({summary})" + (f", {money} at risk." if money else "."))
    if cleared.height:
        parts.append(f"{cleared.height} cleared since the last digest.")
    parts.append(f"{still_open} open on this route." if still_open else "Nothing is open on this route.")
    return " ".join(parts)


def _totals(amounts: Iterable[tuple[Decimal, str | None] | None]) -> str:
    sums: dict[str | None, Decimal] = defaultdict(Decimal)
    for amount in amounts:
        if amount is not None:
            sums[amount[1]] += amount[0]
    return ", ".join(format_money(total, currency) for currency, total in sorted(sums.items(), key=str))


def _line(record: _Record, run: RunInfo, mask: bool) -> str:
    lead = record.lead
    text = f"- [{lead['severity']}] {record.key} on {record.target}: "
    text += "; ".join(
        (f"{part['check_id']}: " if i else "") + _what(part) + _change(part) for i, part in enumerate(record.parts)
    )
    money = record.money
    if money is not None:
        text += f". {format_money(money[0], money[1])} at risk"
    text += f". {_label(record.reason, run)}."
    return mask_email_text(text) if mask else text


def _what(part: dict) -> str:
    """The check's own sentence; without one, both sides in words."""
    if part["message"]:
        return part["message"].rstrip(".")
    sides = f"{part['target']} has {_value(part['actual'])}, the ERP has {_value(part['expected'])}"
    return f"{part['field']}: {sides}" if part["field"] else sides


def _change(part: dict) -> str:
    """What it was when last alerted, where that differs: "(available: 6, was 4)"."""
    if part.get("reason") not in ("worsened", "changed", "unquieted") or not part.get("was_values_known"):
        return ""
    if part["actual"] != part["actual_was"]:
        name = f"{part['field']}: " if part["field"] else ""
        return f" ({name}{_value(part['actual'])}, was {_value(part['actual_was'])})"
    if SEVERITY_RANK.get(part["severity"], 0) > SEVERITY_RANK.get(part["severity_was"], 0):
        return f" (now {part['severity']}, was {part['severity_was']})"
    if part["impact"] is not None and abs(part["impact"]) > abs(part["impact_was"] or 0):
        was = format_money(abs(part["impact_was"] or 0), part["currency_was"] or part["currency"])
        return f" ({format_money(abs(part['impact']), part['currency'])} at risk, was {was})"
    return ""


def _label(part: dict, run: RunInfo) -> str:
    since: datetime | None = part.get("since")
    earlier = since is not None and since < run.started_at
    day = f"{since:%Y-%m-%d}" if since is not None else None
    reason = part["reason"]
    if reason == "new":
        return f"New since {day}" if earlier else "New"
    if reason == "regressed":
        return f"Back again since {day}" if earlier else "Back again"
    open_since = f", open since {day}" if day else ""
    if reason == "worsened":
        outgrown = part.get("was_quiet") == "ack" or part["ack_outgrown"]
        acknowledged = " than when acknowledged" if outgrown else ""
        return f"Worse{acknowledged}{open_since}"
    if reason == "changed":
        return f"Changed{open_since}"
    if reason == "unquieted":
        was = "muted" if part.get("was_quiet") == "mute" else "acknowledged"
        return f"No longer {was}{open_since}"
    return f"Open since {day}, not alerted before" if day else "Open, not alerted before"


def _cleared_lines(cleared: pl.DataFrame, mask: bool) -> list[str]:
    by_record: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in cleared.sort("target", "key", "check_id", "field", nulls_last=True).iter_rows(named=True):
        what = row["check_id"] or "a finding"
        by_record[(row["key"] or row["fingerprint"], row["target"] or "?")].append(
            f"{what} ({row['field']})" if row["field"] else what
        )
    lines = [f"- {key} on {target}: {', '.join(checks)}" for (key, target), checks in by_record.items()]
    if len(lines) > CLEARED_LINES:
        lines = [*lines[:CLEARED_LINES], f"- … and {len(lines) - CLEARED_LINES} more"]
    return [mask_email_text(line) for line in lines] if mask else lines


_WORDS = {None: "nothing", "": "nothing", "absent": "no record", "present": "a record"}


def _value(value: str | None) -> str:
    return _WORDS.get(value, value)
