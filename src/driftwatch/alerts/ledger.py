"""What each route has been told, kept in the store so alerts never repeat and never go missing.

`alert_state` holds, per route, the open findings the route already knows about (with the severity, impact
and difference it last saw); a finding alerts when it is not there yet, came back, or got worse.
`alert_deliveries` records every delivery, sent or failed, per destination, so re-running `alert` for a run
sends only what has not gone out yet. `alert_routes` keeps the latest run each route's state reflects, so
alerting an older run again cannot wind that state back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from driftwatch.report.summary import RunInfo
from driftwatch.store import Store, register_migration

DIFF = pl.Decimal(38, 6)

register_migration(
    200,
    "alert deliveries and per-route alert state",
    """
    CREATE TABLE alert_deliveries (
      run_id VARCHAR NOT NULL,
      route VARCHAR NOT NULL,
      destination VARCHAR NOT NULL,  -- the destination's label, never its URL
      kind VARCHAR NOT NULL,         -- drift | resolved
      status VARCHAR NOT NULL,       -- sent | failed
      attempts INTEGER NOT NULL,
      findings INTEGER NOT NULL,     -- findings the message named
      title VARCHAR NOT NULL,
      error VARCHAR,
      attempted_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE alert_state (
      route VARCHAR NOT NULL,
      fingerprint VARCHAR NOT NULL,
      severity VARCHAR NOT NULL,
      impact DECIMAL(18,4),
      diff DECIMAL(38,6),
      run_id VARCHAR NOT NULL,
      PRIMARY KEY (route, fingerprint)
    );
    """,
)

register_migration(
    201,
    "latest run alerted per route",
    """
    CREATE TABLE alert_routes (
      route VARCHAR PRIMARY KEY,
      run_id VARCHAR NOT NULL,
      started_at TIMESTAMPTZ NOT NULL
    );
    """,
)

STATE_SCHEMA = {"fingerprint": pl.String, "severity": pl.String, "impact": pl.Decimal(18, 4), "diff": DIFF}


@dataclass(frozen=True)
class Delivery:
    run_id: str
    route: str
    destination: str
    kind: str
    status: str
    attempts: int
    findings: int
    title: str
    error: str | None = None


def with_diff(findings: pl.DataFrame) -> pl.DataFrame:
    """Add `diff`: |actual - expected| where both sides are numbers (stock counts, amounts), else null."""
    expected = pl.col("expected").cast(DIFF, strict=False)
    actual = pl.col("actual").cast(DIFF, strict=False)
    return findings.with_columns((actual - expected).abs().cast(DIFF).alias("diff"))


def known(store: Store, route: str) -> pl.DataFrame:
    """The open findings this route has already been told about (STATE_SCHEMA)."""
    frame = store.frame(
        "SELECT fingerprint, severity, impact, diff FROM alert_state WHERE route = ? ORDER BY fingerprint",
        [route],
    )
    return frame.cast(STATE_SCHEMA) if frame.height else pl.DataFrame(schema=STATE_SCHEMA)


def remember(store: Store, route: str, run: RunInfo, open_findings: pl.DataFrame, *, replace: bool = True) -> None:
    """Record the open findings the route now knows, as they are in this run: all it knows (`replace`), or
    in addition to what it knew."""
    state = with_diff(open_findings).select(
        "fingerprint", "severity", "impact", "diff", pl.lit(run.run_id).alias("run_id")
    )
    with store.transaction() as cur:
        cur.execute("INSERT OR REPLACE INTO alert_routes VALUES (?, ?, ?)", [route, run.run_id, run.started_at])
        if replace:
            cur.execute("DELETE FROM alert_state WHERE route = ?", [route])
        cur.register("route_state", state)
        try:
            cur.execute(
                "INSERT OR REPLACE INTO alert_state "
                "SELECT ?, fingerprint, severity, impact, diff, run_id FROM route_state",
                [route],
            )
        finally:
            cur.unregister("route_state")


def latest_run(store: Store, route: str) -> tuple[str, datetime] | None:
    """The run (id, started_at) whose findings the route's state reflects, if any."""
    rows = store.query("SELECT run_id, started_at FROM alert_routes WHERE route = ?", [route]).fetchall()
    return rows[0] if rows else None


def record(store: Store, delivery: Delivery) -> None:
    store.query(
        "INSERT INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            delivery.run_id,
            delivery.route,
            delivery.destination,
            delivery.kind,
            delivery.status,
            delivery.attempts,
            delivery.findings,
            delivery.title,
            delivery.error,
            datetime.now(UTC),
        ],
    )


def already_sent(store: Store, run_id: str, route: str) -> set[tuple[str, str]]:
    """(kind, destination) pairs this route already delivered for the run."""
    rows = store.query(
        "SELECT DISTINCT kind, destination FROM alert_deliveries WHERE run_id = ? AND route = ? AND status = 'sent'",
        [run_id, route],
    ).fetchall()
    return {(kind, destination) for kind, destination in rows}


def deliveries(store: Store, run_id: str | None = None) -> pl.DataFrame:
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return store.frame(
        "SELECT run_id, route, destination, kind, status, attempts, findings, title, error, attempted_at "
        f"FROM alert_deliveries {where} ORDER BY attempted_at, route, destination",
        params,
    )
