"""Incidents and breached sync objectives as lines of a digest (pure frame functions).

Each becomes one row shaped like a finding, with a fingerprint of its own (`incident:<id>`, `slo:<feed>`),
so that routes select them, destinations remember them and their changes are judged exactly as findings'
are (`alerts.changes`): an incident alerts when it is new to a destination, came back or got worse (more
findings, more money at risk, a higher severity: its size is its "actual" and zero its "expected", so a
wider gap is more records); a breached objective alerts when the breach begins, and its end is listed as
cleared. The findings of an open incident are told through the incident's line, not one line each.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from driftwatch.latency import format_duration

INCIDENT = "incident:"
OBJECTIVE = "slo:"
LATENCY_CHECK = "sync_latency"  # the check id breached objectives are routed by
LATENCY_OWNER = "integration"  # the team that owns a sync's speed
# An incident's statuses in the findings' words: worse is judged per destination, as a finding's is.
_STATUSES = {"worsened": "ongoing"}


def is_group(column: str = "fingerprint") -> pl.Expr:
    return pl.col(column).str.starts_with(INCIDENT) | pl.col(column).str.starts_with(OBJECTIVE)


def incident_rows(incidents: pl.DataFrame, run_started: datetime) -> pl.DataFrame:
    """One finding-shaped row per incident of the run (see the module)."""
    rows = []
    for row in incidents.iter_rows(named=True):
        money = sorted(row["money"] or [], key=lambda m: -abs(m["amount"]))
        rows.append(
            {
                "fingerprint": INCIDENT + row["incident_id"],
                "check_id": row["check_id"],
                "severity": row["severity"],
                "source": row["source"],
                "target": row["target"],
                "entity": row["entity"],
                "key": f"{row['attribute']} {row['value']}",
                "field": "incident",
                "expected": "0",
                "actual": str(row["records"]),
                "impact": money[0]["amount"] if money else None,
                "currency": (money[0]["currency"] or None) if money else None,
                "message": row["cause"],
                "repair_action": None,
                "status": _STATUSES.get(row["status"], row["status"]),
                "acknowledged": bool(row["acknowledged"]),
                "ack_outgrown": False,
                "muted": False,
                # Opened in this run: since the run began, as a finding's spell is (`opened_at` is data time).
                "since": run_started if row["status"] in ("new", "regressed") else row["opened_at"],
                "since_status": "regressed" if row["status"] == "regressed" else "new",
                "incident_id": row["incident_id"],
                "owner": row["owner"],
                "money": money,
                "records": row["records"],
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def objective_rows(latency: pl.DataFrame, previous: pl.DataFrame, run_started: datetime) -> pl.DataFrame:
    """One finding-shaped row per breached objective of the run; `previous` holds the previous measurement
    of each feed (source, target, entity, breached), to tell a breach that begins from one that goes on."""
    breached = latency.filter(pl.col("breached"))
    if breached.height == 0:
        return pl.DataFrame()
    before = {
        (r["source"], r["target"], r["entity"]) for r in previous.filter(pl.col("breached")).iter_rows(named=True)
    }
    rows = []
    for row in breached.iter_rows(named=True):
        feed = (row["source"], row["target"], row["entity"])
        ongoing = feed in before
        rows.append(
            {
                "fingerprint": OBJECTIVE + "/".join(feed),
                "check_id": LATENCY_CHECK,
                "severity": "high",
                "source": row["source"],
                "target": row["target"],
                "entity": row["entity"],
                "key": f"{row['entity']} sync",
                "field": "objective",
                "expected": "met",
                "actual": "breached",
                "impact": None,
                "currency": None,
                "message": _breach(row),
                "repair_action": None,
                "status": "ongoing" if ongoing else "new",
                "acknowledged": False,
                "ack_outgrown": False,
                "muted": False,
                "since": None if ongoing else run_started,
                "since_status": None if ongoing else "new",
            }
        )
    return pl.DataFrame(rows)


def _breach(row: dict) -> str:
    """ "klaviyo inventory sync from bluecherry is too slow: …", with the figure over its objective."""
    sync = f"{row['target']} {row['entity']} sync from {row['source']} is too slow"
    timed = f"{row['measured']} change{'s' if row['measured'] != 1 else ''} timed since the last run"
    if not row["measured"]:
        timed = "no change arrived since the last run"
    over = []
    for name in ("p95", "p50"):
        objective, value = row[f"{name}_objective_seconds"], row[f"{name}_seconds"]
        if objective and value and value > objective:
            over.append(f"{name} {format_duration(value)}, over its {format_duration(objective)} objective")
    limit = row["p95_objective_seconds"] or row["p50_objective_seconds"]
    oldest = row["oldest_pending_seconds"]
    if limit and oldest and oldest > limit:
        waiting = f"{row['pending']} change{'s' if row['pending'] != 1 else ''} still waiting"
        over.append(f"{waiting}, the oldest for {format_duration(oldest)}, over its {format_duration(limit)} objective")
    return f"{sync}: {'; '.join(over)} ({timed})"


def members_of(members: pl.DataFrame, rows: pl.DataFrame) -> list[str]:
    """The findings told through the incident lines among `rows` (members: incident_id, fingerprint)."""
    if members.height == 0 or rows.height == 0:
        return []
    ids = [fp.removeprefix(INCIDENT) for fp in rows["fingerprint"].to_list() if fp.startswith(INCIDENT)]
    return members.filter(pl.col("incident_id").is_in(ids))["fingerprint"].to_list()
