"""Findings: their shape, their text form, and their lifecycle across runs.

A finding's identity is its fingerprint, a hash of (check_id, target, key, field). Each run stores the
findings it saw plus a `resolved` row for every fingerprint that was open before and is gone now, so one
run's findings tell the whole story of what changed. The lifecycle is kept per fingerprint in
`finding_states`, and only checks that actually ran can resolve their findings: auditing one check never
closes another check's drift.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from driftwatch.entities import MONEY
from driftwatch.errors import UserError
from driftwatch.store import Store, register_migration

SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("new", "ongoing", "regressed", "resolved")
OPEN_STATUSES = ("new", "ongoing", "regressed")

# What a check produces (before run metadata): all text, except the money at risk.
FINDING_SCHEMA: dict[str, pl.DataType] = {
    "check_id": pl.String(),
    "severity": pl.String(),
    "source": pl.String(),
    "target": pl.String(),
    "entity": pl.String(),
    "key": pl.String(),
    "field": pl.String(),
    "expected": pl.String(),
    "actual": pl.String(),
    "impact": MONEY,
    "currency": pl.String(),
    "message": pl.String(),
    "repair_action": pl.String(),
}
FINDING_COLUMNS = tuple(FINDING_SCHEMA)
STORED_COLUMNS = ("run_id", *FINDING_COLUMNS, "fingerprint", "status")

register_migration(
    100,
    "audit findings",
    """
    CREATE TABLE audit_runs (
      run_id VARCHAR PRIMARY KEY,
      started_at TIMESTAMPTZ NOT NULL,
      finished_at TIMESTAMPTZ,
      checks VARCHAR[] NOT NULL,
      snapshot_ids VARCHAR[] NOT NULL,
      trusted BOOLEAN NOT NULL
    );
    CREATE TABLE findings (
      run_id VARCHAR NOT NULL,
      check_id VARCHAR NOT NULL,
      severity VARCHAR NOT NULL,
      source VARCHAR,
      target VARCHAR,
      entity VARCHAR,
      key VARCHAR NOT NULL,
      field VARCHAR NOT NULL,
      expected VARCHAR,
      actual VARCHAR,
      impact DECIMAL(18,4),
      currency VARCHAR,
      message VARCHAR,
      repair_action VARCHAR,
      fingerprint VARCHAR NOT NULL,
      status VARCHAR NOT NULL
    );
    CREATE TABLE finding_states (
      fingerprint VARCHAR PRIMARY KEY,
      check_id VARCHAR NOT NULL,
      status VARCHAR NOT NULL,
      first_seen_run VARCHAR NOT NULL,
      last_run VARCHAR NOT NULL
    );
    CREATE TABLE finding_acks (
      fingerprint VARCHAR NOT NULL,
      kind VARCHAR NOT NULL,
      until DATE,
      created_at TIMESTAMPTZ NOT NULL,
      note VARCHAR
    );
    """,
)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    findings: pl.DataFrame
    trusted: bool
    counts: dict[str, int]  # open findings per severity, acknowledged and muted ones excluded


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """One text form per value, so that 19.9 and 19.90, or one instant in two timezones, print the same."""
    if dtype.is_decimal() or dtype.is_float():
        # Money keeps two decimals and drops the rest of the scale's trailing zeros: 19.90, 0.125.
        text = expr.cast(MONEY).cast(pl.String)
        return text.str.replace(r"^(-?\d+)$", "$1.0000").str.replace(r"(\.\d\d\d*?)0+$", "$1")
    if isinstance(dtype, pl.Datetime):
        return expr.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if dtype == pl.Boolean:
        return pl.when(expr).then(pl.lit("true")).when(~expr).then(pl.lit("false"))
    return expr.cast(pl.String)


def fingerprint_sql(prefix: str = "") -> str:
    cols = [f"coalesce({prefix}{c}, '')" for c in ("check_id", "target", "key", "field")]
    return f"substr(md5(concat_ws('|', {', '.join(cols)})), 1, 16)"


def record_run(
    store: Store,
    found: pl.DataFrame,
    *,
    checks: list[str],
    snapshot_ids: list[str],
    trusted: bool,
    started_at: datetime,
) -> str:
    """Store a run's findings with their lifecycle status; returns the run id."""
    run_id = f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    with store.transaction() as cur:
        cur.register("found", found.select(FINDING_COLUMNS))
        try:
            cur.execute(
                f"""
                INSERT INTO findings
                SELECT ? AS run_id, f.*, {fingerprint_sql("f.")} AS fingerprint, 'new' AS status
                FROM found f
                """,
                [run_id],
            )
        finally:
            cur.unregister("found")
        _apply_lifecycle(cur, run_id, checks)
        cur.execute(
            "INSERT INTO audit_runs VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, started_at, datetime.now(UTC), checks, snapshot_ids, trusted],
        )
    return run_id


def _apply_lifecycle(cur, run_id: str, checks: list[str]) -> None:
    # Status of each new row, from what the fingerprint was before this run.
    cur.execute(
        """
        UPDATE findings f SET status = CASE WHEN s.status = 'resolved' THEN 'regressed' ELSE 'ongoing' END
        FROM finding_states s WHERE f.run_id = ? AND f.fingerprint = s.fingerprint
        """,
        [run_id],
    )
    # Open before, absent now, and its check ran: resolved. The row repeats the last thing we saw.
    cur.execute(
        f"""
        INSERT INTO findings
        SELECT ?, {", ".join(FINDING_COLUMNS)}, fingerprint, 'resolved'
        FROM findings f
        WHERE (f.fingerprint, f.run_id) IN (
            SELECT s.fingerprint, s.last_run FROM finding_states s
            WHERE s.status <> 'resolved' AND list_contains(?, s.check_id)
              AND s.fingerprint NOT IN (SELECT fingerprint FROM findings WHERE run_id = ?))
        """,
        [run_id, checks, run_id],
    )
    cur.execute(
        """
        INSERT INTO finding_states
        SELECT fingerprint, check_id, status, run_id, run_id FROM findings WHERE run_id = ?
        ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, last_run = excluded.last_run
        """,
        [run_id],
    )


def findings(store: Store, run_id: str | None = None, status: str | None = None) -> pl.DataFrame:
    """A run's findings (default: the latest run), with whether each is acknowledged or muted today."""
    if status is not None and status not in STATUSES:
        raise UserError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    run_id = run_id or latest_run_id(store)
    if run_id is None:
        schema = {c: FINDING_SCHEMA.get(c, pl.String()) for c in STORED_COLUMNS}
        return pl.DataFrame(schema={**schema, "acknowledged": pl.Boolean(), "muted": pl.Boolean()})
    if not store.query("SELECT 1 FROM audit_runs WHERE run_id = ?", [run_id]).fetchall():
        raise UserError(f"no audit run {run_id!r} in {store.path}")
    where = "AND f.status = ?" if status else ""
    params = [date.today(), run_id] + ([status] if status else [])
    return store.frame(
        f"""
        SELECT f.*, a.kind = 'ack' IS TRUE AS acknowledged, a.kind = 'mute' IS TRUE AS muted
        FROM findings f
        LEFT JOIN (
            SELECT fingerprint, arg_max(kind, created_at) AS kind FROM finding_acks
            WHERE until IS NULL OR until >= ? GROUP BY fingerprint
        ) a USING (fingerprint)
        WHERE f.run_id = ? {where}
        ORDER BY array_position(['critical','high','medium','low'], f.severity), f.check_id, f.target, f.key,
                 f.field
        """,
        params,
    )


def latest_run_id(store: Store) -> str | None:
    rows = store.query("SELECT run_id FROM audit_runs ORDER BY started_at DESC, run_id DESC LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def run_info(store: Store, run_id: str) -> dict | None:
    rows = store.frame("SELECT * FROM audit_runs WHERE run_id = ?", [run_id]).to_dicts()
    return rows[0] if rows else None


def acknowledge(
    store: Store, fingerprint: str, *, until: date | None = None, mute: bool = False, note: str | None = None
) -> None:
    """Acknowledge a finding (still listed, no longer alerted or failing the run) or mute it (hidden too)."""
    known = store.query("SELECT 1 FROM finding_states WHERE fingerprint = ?", [fingerprint]).fetchall()
    if not known:
        raise UserError(f"no finding with fingerprint {fingerprint!r} in {store.path}")
    store.query(
        "INSERT INTO finding_acks VALUES (?, ?, ?, ?, ?)",
        [fingerprint, "mute" if mute else "ack", until, datetime.now(UTC), note],
    )


def open_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Open findings per severity, leaving out what someone acknowledged or muted."""
    live = frame.filter(pl.col("status").is_in(OPEN_STATUSES) & ~pl.col("acknowledged") & ~pl.col("muted"))
    counted = dict(live.group_by("severity").len().iter_rows())
    return {severity: counted.get(severity, 0) for severity in SEVERITIES}
