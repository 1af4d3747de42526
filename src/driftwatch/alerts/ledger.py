"""What each destination has been told, kept in the store so alerts never repeat and never go missing.

Every destination of a route (one Slack webhook, one mailbox) keeps its own state, so a delivery that
failed to one of them is made up to that one alone. `alert_known` holds, per destination, every finding it
knows about as it last saw it (open or cleared, acknowledged or muted, its severity, money at risk, the
gap between the two sides and the target's value); `alert_destinations` names the run that state reflects,
so alerting a run twice sends nothing twice and alerting an older run cannot wind the state back.
`alert_deliveries` records every delivery, sent or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from driftwatch.engine.findings import GAP
from driftwatch.entities import MONEY
from driftwatch.redaction import redact
from driftwatch.report.summary import RunInfo
from driftwatch.store import Migration, Store

MIGRATIONS = (
    Migration(
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
    ),
    Migration(
        201,
        "latest run alerted per route",
        """
    CREATE TABLE alert_routes (
      route VARCHAR PRIMARY KEY,
      run_id VARCHAR NOT NULL,
      started_at TIMESTAMPTZ NOT NULL
    );
        """,
    ),
    # The route-wide state of earlier versions carries over as the state of every destination of the route
    # (destination ''), until each destination has one of its own; it knew no values, so nothing counts as
    # changed against it, only as worse.
    Migration(
        202,
        "alert state per destination",
        """
    CREATE TABLE alert_known (
      route VARCHAR NOT NULL,
      destination VARCHAR NOT NULL,
      fingerprint VARCHAR NOT NULL,
      check_id VARCHAR,
      target VARCHAR,
      key VARCHAR,
      field VARCHAR,
      is_open BOOLEAN NOT NULL,      -- false: the destination knows it cleared
      quiet VARCHAR,                 -- ack | mute when last seen
      severity VARCHAR,
      impact DECIMAL(18,4),
      currency VARCHAR,
      gap DECIMAL(38,6),
      actual VARCHAR,
      values_known BOOLEAN NOT NULL,
      run_id VARCHAR NOT NULL,
      PRIMARY KEY (route, destination, fingerprint)
    );
    CREATE TABLE alert_destinations (
      route VARCHAR NOT NULL,
      destination VARCHAR NOT NULL,
      run_id VARCHAR NOT NULL,
      started_at TIMESTAMPTZ NOT NULL,
      PRIMARY KEY (route, destination)
    );
    INSERT INTO alert_known
    SELECT s.route, '', s.fingerprint, f.check_id, f.target, f.key, f.field, TRUE, NULL, s.severity, s.impact,
           f.currency, s.diff, NULL, FALSE, s.run_id
    FROM alert_state s
    LEFT JOIN findings f ON f.fingerprint = s.fingerprint AND f.run_id = s.run_id;
    INSERT INTO alert_destinations SELECT route, '', run_id, started_at FROM alert_routes;
    DROP TABLE alert_state;
    DROP TABLE alert_routes;
        """,
    ),
)

LEGACY = ""  # the destination name of a route's state from before destinations kept their own

KNOWN_SCHEMA = {
    "fingerprint": pl.String,
    "check_id": pl.String,
    "target": pl.String,
    "key": pl.String,
    "field": pl.String,
    "is_open": pl.Boolean,
    "quiet": pl.String,
    "severity": pl.String,
    "impact": MONEY,
    "currency": pl.String,
    "gap": GAP,
    "actual": pl.String,
    "values_known": pl.Boolean,
}


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


@dataclass(frozen=True)
class Seen:
    """The run a destination's state reflects."""

    run_id: str
    started_at: datetime
    destination: str  # the destination itself, or LEGACY when it still relies on its route's old state


def seen(store: Store, route: str, destination: str) -> Seen | None:
    """The run whose findings the destination knows, if it has been alerted at all."""
    rows = store.query(
        "SELECT destination, run_id, started_at FROM alert_destinations "
        "WHERE route = ? AND destination IN (?, ?) ORDER BY destination = ? DESC",
        [route, destination, LEGACY, destination],
    ).fetchall()
    return Seen(rows[0][1], rows[0][2], rows[0][0]) if rows else None


def first_attempt(store: Store, route: str, destination: str) -> datetime | None:
    """When the run of the destination's first delivery attempt started: a destination whose deliveries
    have all failed should have heard of everything since."""
    rows = store.query(
        "SELECT min(r.started_at) FROM alert_deliveries d JOIN audit_runs r USING (run_id) "
        "WHERE d.route = ? AND d.destination = ?",
        [route, destination],
    ).fetchall()
    return rows[0][0]


def known(store: Store, route: str, last: Seen | None) -> pl.DataFrame:
    """Every finding the destination knows about, as it last saw it (KNOWN_SCHEMA)."""
    if last is None:
        return pl.DataFrame(schema=KNOWN_SCHEMA)
    frame = store.frame(
        f"SELECT {', '.join(KNOWN_SCHEMA)} FROM alert_known WHERE route = ? AND destination = ? ORDER BY fingerprint",
        [route, last.destination],
    )
    return frame.cast(KNOWN_SCHEMA) if frame.height else pl.DataFrame(schema=KNOWN_SCHEMA)


def remember(store: Store, route: str, destination: str, run: RunInfo, state: pl.DataFrame) -> None:
    """Make `state` (KNOWN_SCHEMA) all the destination knows, as of `run`."""
    rows = state.select(list(KNOWN_SCHEMA)).cast(KNOWN_SCHEMA)
    with store.transaction() as cur:
        cur.execute(
            "INSERT OR REPLACE INTO alert_destinations VALUES (?, ?, ?, ?)",
            [route, destination, run.run_id, run.started_at],
        )
        cur.execute("DELETE FROM alert_known WHERE route = ? AND destination = ?", [route, destination])
        cur.register("destination_state", rows)
        try:
            cur.execute(
                f"INSERT INTO alert_known SELECT ?, ?, {', '.join(KNOWN_SCHEMA)}, ? FROM destination_state",
                [route, destination, run.run_id],
            )
        finally:
            cur.unregister("destination_state")


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
            redact(delivery.title),
            None if delivery.error is None else redact(delivery.error),
            datetime.now(UTC),
        ],
    )


def deliveries(store: Store, run_id: str | None = None) -> pl.DataFrame:
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    return store.frame(
        "SELECT run_id, route, destination, kind, status, attempts, findings, title, error, attempted_at "
        f"FROM alert_deliveries {where} ORDER BY attempted_at, route, destination",
        params,
    )
