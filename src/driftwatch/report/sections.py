"""The report's sections beyond the findings: incidents (its top section), sync latency per integration and
how drift ages. `FollowUp` carries what the store holds for a run; each function turns one part of it into
what its template draws, so a section is one function and one template include."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from driftwatch.incidents.age import BUCKETS
from driftwatch.latency import format_duration
from driftwatch.money import format_money
from driftwatch.report.svg import line_chart

INCIDENT_FINDINGS = 200  # findings listed under one incident in the page; all are in the table below


@dataclass(frozen=True)
class FollowUp:
    """What follows from a run's findings: its incidents and their members, sync latency (this run's and the
    trend before it) and drift spells by age bucket (`incidents.age.aging`)."""

    incidents: pl.DataFrame = field(default_factory=pl.DataFrame)
    members: pl.DataFrame = field(default_factory=pl.DataFrame)
    latency: pl.DataFrame = field(default_factory=pl.DataFrame)
    latency_trend: pl.DataFrame = field(default_factory=pl.DataFrame)
    aging: pl.DataFrame = field(default_factory=pl.DataFrame)
    as_of: datetime | None = None  # the instant the run describes (ages are counted to it), else its start


def age(since: datetime | None, now: datetime) -> str:
    """How long something has been open at `now`, in words ("this run" when it opened in it)."""
    if since is None:
        return "–"
    seconds = (now - since).total_seconds()
    return "this run" if seconds < 60 else format_duration(seconds)


def incidents(follow: FollowUp, findings: pl.DataFrame, now: datetime) -> list[dict]:
    """Each incident with its cause, owner, size, money, age and its findings."""
    if follow.incidents.height == 0:
        return []
    members = follow.members.join(findings, on="fingerprint", how="inner") if follow.members.height else None
    out = []
    for row in follow.incidents.iter_rows(named=True):
        mine = members.filter(pl.col("incident_id") == row["incident_id"]) if members is not None else None
        out.append(
            {
                **row,
                "money_text": [format_money(m["amount"], m["currency"] or None) for m in row["money"] or []],
                "open_for": age(row["opened_at"], now) if row["status"] != "resolved" else "–",
                "first_seen": f"{row['first_seen_at']:%Y-%m-%d %H:%M}" if row["first_seen_at"] else "–",
                "findings": [] if mine is None else mine.head(INCIDENT_FINDINGS).to_dicts(),
                "more": 0 if mine is None else max(0, mine.height - INCIDENT_FINDINGS),
            }
        )
    return out


def latency(follow: FollowUp) -> list[dict]:
    """One entry per measured integration: this run's figures in words and a p50/p95 chart over runs."""
    if follow.latency.height == 0:
        return []
    out = []
    for row in follow.latency.iter_rows(named=True):
        key = (row["source"], row["target"], row["entity"])
        trend = follow.latency_trend.filter(
            (pl.col("source") == key[0]) & (pl.col("target") == key[1]) & (pl.col("entity") == key[2])
        ).sort("started_at")
        objective_set = row["p50_objective_seconds"] or row["p95_objective_seconds"]
        if not objective_set and not row["pending"] and not trend["measured"].sum():
            continue  # nothing has changed there yet: no number to show
        hours = {
            "p50": [_hours(v) for v in trend["p50_seconds"]],
            "p95": [_hours(v) for v in trend["p95_seconds"]],
        }
        objective = _hours(row["p95_objective_seconds"])
        out.append(
            {
                **row,
                "p50": format_duration(row["p50_seconds"]),
                "p95": format_duration(row["p95_seconds"]),
                "oldest_pending": format_duration(row["oldest_pending_seconds"]),
                "resolution": _resolution(row["resolution_seconds"]),
                "objective": _objective_text(row),
                "chart": line_chart(hours, objective=objective),
                # Each run as of the target snapshot it measured up to (data time, as drift age counts): a
                # history audited after the fact is not a pile of runs minutes apart.
                "runs": [f"{t:%Y-%m-%d %H:%M}" for t in trend["window_end"]],
            }
        )
    return out


def _resolution(seconds: float | None) -> str:
    return "exact" if not seconds else f"± {format_duration(seconds)}"


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _objective_text(row: dict) -> str:
    parts = []
    if row["p50_objective_seconds"]:
        parts.append(f"p50 under {format_duration(row['p50_objective_seconds'])}")
    if row["p95_objective_seconds"]:
        parts.append(f"p95 under {format_duration(row['p95_objective_seconds'])}")
    return ", ".join(parts) or "none set"


def aging(follow: FollowUp) -> dict:
    """Spells by bucket overall (with widths for a 100 % bar) and per check."""
    if follow.aging.height == 0:
        return {"total": 0, "buckets": [], "checks": []}
    names = [name for name, _ in BUCKETS]
    overall = follow.aging.filter(pl.col("check_id").is_null()).to_dicts()[0]
    total = sum(overall[n] for n in names)
    buckets = [
        {"name": name, "label": label, "count": overall[name], "share": overall[name] / total if total else 0}
        for name, label in BUCKETS
    ]
    checks = [
        {"check_id": row["check_id"], "counts": [row[n] for n in names], "total": sum(row[n] for n in names)}
        for row in follow.aging.filter(pl.col("check_id").is_not_null()).iter_rows(named=True)
    ]
    return {"total": total, "buckets": buckets, "checks": checks, "labels": [label for _, label in BUCKETS]}
