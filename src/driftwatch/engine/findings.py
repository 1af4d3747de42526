"""Findings: their shape, their text form, and their lifecycle across runs.

A finding's identity is its fingerprint, a hash of (check_id, target, key, field). Each run stores the
findings it saw plus a `resolved` row for every fingerprint that was open before and is gone now, so one
run's findings tell the whole story of what changed. The lifecycle is kept per fingerprint in
`finding_states`, and only checks that actually ran can resolve their findings: auditing one check never
closes another check's drift.

Two sightings of one finding compare as `worse` (higher severity, more money at risk, a wider numeric gap
between the two sides), `changed` (the target's value moved otherwise: another status, a gap that
changed sign) or neither. An acknowledgement keeps the values it was given for: it covers the finding
while it is no worse and unchanged, and stops covering it (the finding alerts and fails the run again)
once it is. A mute hides the finding whatever it does, until its date.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from driftwatch.engine.notes import NOTE_SCHEMA, store_notes
from driftwatch.entities import MONEY
from driftwatch.errors import UserError
from driftwatch.severity import SEVERITIES, SEVERITY_RANK, severity_rank  # noqa: F401 (read from here too)
from driftwatch.store import Migration, Store

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
GAP = pl.Decimal(38, 6)
ACK_COLUMNS = ("acknowledged", "ack_outgrown", "muted")

MIGRATIONS = (
    Migration(
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
    ),
    Migration(
        110,
        "acknowledgements keep the values they cover",
        """
    ALTER TABLE finding_acks ADD COLUMN severity VARCHAR;
    ALTER TABLE finding_acks ADD COLUMN impact DECIMAL(18,4);
    ALTER TABLE finding_acks ADD COLUMN expected VARCHAR;
    ALTER TABLE finding_acks ADD COLUMN actual VARCHAR;
    -- Earlier acknowledgements cover what the finding looked like in the last run before them.
    UPDATE finding_acks a
    SET severity = seen.severity, impact = seen.impact, expected = seen.expected, actual = seen.actual
    FROM (
        SELECT k.fingerprint, k.created_at, arg_max(f.severity, r.started_at) AS severity,
               arg_max(f.impact, r.started_at) AS impact, arg_max(f.expected, r.started_at) AS expected,
               arg_max(f.actual, r.started_at) AS actual
        FROM finding_acks k
        JOIN findings f ON f.fingerprint = k.fingerprint
        JOIN audit_runs r ON r.run_id = f.run_id AND r.started_at <= k.created_at
        GROUP BY k.fingerprint, k.created_at
    ) seen
    WHERE seen.fingerprint = a.fingerprint AND seen.created_at = a.created_at;
        """,
    ),
)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    findings: pl.DataFrame
    trusted: bool
    counts: dict[str, int]  # open findings per severity, acknowledged and muted ones excluded
    notes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=NOTE_SCHEMA))  # engine.notes


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
    notes: pl.DataFrame | None = None,
) -> str:
    """Store a run's findings with their lifecycle status, and its notes; returns the run id."""
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
        if notes is not None:
            store_notes(cur, run_id, notes)
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
    """A run's findings (default: the latest run), with whether each is acknowledged today (an
    acknowledgement that still covers it), has outgrown its acknowledgement (worse or changed since), or
    is muted."""
    if status is not None and status not in STATUSES:
        raise UserError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    run_id = run_id or latest_run_id(store)
    if run_id is None:
        schema = {c: FINDING_SCHEMA.get(c, pl.String()) for c in STORED_COLUMNS}
        return pl.DataFrame(schema={**schema, **dict.fromkeys(ACK_COLUMNS, pl.Boolean())})
    if not store.query("SELECT 1 FROM audit_runs WHERE run_id = ?", [run_id]).fetchall():
        raise UserError(f"no audit run {run_id!r} in {store.path}")
    where = "AND f.status = ?" if status else ""
    params = [date.today(), run_id] + ([status] if status else [])
    found = store.frame(
        f"""
        SELECT f.*, a.kind AS kind_ack, a.severity AS severity_ack, a.impact AS impact_ack,
               a.expected AS expected_ack, a.actual AS actual_ack
        FROM findings f
        LEFT JOIN (
            SELECT fingerprint, arg_max(kind, created_at) AS kind, arg_max(severity, created_at) AS severity,
                   arg_max(impact, created_at) AS impact, arg_max(expected, created_at) AS expected,
                   arg_max(actual, created_at) AS actual
            FROM finding_acks WHERE until IS NULL OR until >= ? GROUP BY fingerprint
        ) a USING (fingerprint)
        WHERE f.run_id = ? {where}
        ORDER BY array_position(['critical','high','medium','low'], f.severity), f.check_id, f.target, f.key,
                 f.field
        """,
        params,
    )
    acked = (pl.col("kind_ack") == "ack").fill_null(False)
    found = with_gap(with_gap(found), "_ack").with_columns(
        (acked & change_since("_ack").is_null()).alias("acknowledged"),
        (acked & change_since("_ack").is_not_null()).alias("ack_outgrown"),
        (pl.col("kind_ack") == "mute").fill_null(False).alias("muted"),
    )
    return found.select(*STORED_COLUMNS, *ACK_COLUMNS)


def open_since(store: Store, run_id: str) -> pl.DataFrame:
    """For each finding open in the run: when its current spell began (`since`, the start of the last run
    up to this one in which it was new or came back) and how (`since_status`: new or regressed)."""
    return store.frame(
        """
        SELECT f.fingerprint, max(r.started_at) AS since, arg_max(f.status, r.started_at) AS since_status
        FROM findings f JOIN audit_runs r USING (run_id)
        WHERE f.status IN ('new', 'regressed')
          AND r.started_at <= (SELECT started_at FROM audit_runs WHERE run_id = ?)
          AND f.fingerprint IN (SELECT fingerprint FROM findings WHERE run_id = ? AND status <> 'resolved')
        GROUP BY f.fingerprint
        """,
        [run_id, run_id],
    )


def with_gap(frame: pl.DataFrame, suffix: str = "") -> pl.DataFrame:
    """Add `gap{suffix}`: actual - expected where both sides are numbers (stock counts, amounts), else null."""
    expected = pl.col(f"expected{suffix}").cast(GAP, strict=False)
    actual = pl.col(f"actual{suffix}").cast(GAP, strict=False)
    return frame.with_columns((actual - expected).cast(GAP).alias(f"gap{suffix}"))


def change_since(suffix: str) -> pl.Expr:
    """`worse`, `changed` or null (the same, or better) for each finding against an earlier sighting of it,
    whose severity, impact, gap and actual columns carry `suffix`.

    Worse: a higher severity, more money at risk, or a wider gap between two numbers. Changed: the target's
    value moved in another way: a gap that changed sign (oversold became hidden stock), or a value that is
    not a number (a status, a date) that is no longer what it was. A gap that narrowed is better, however
    both sides moved, and the ERP's side moving alone is the same drift.
    """

    def before(column: str) -> pl.Expr:
        return pl.col(f"{column}{suffix}")

    impact, gap = pl.col("impact").fill_null(0).abs(), pl.col("gap")
    worse = (
        (severity_rank() > severity_rank(f"severity{suffix}"))
        | (impact > before("impact").fill_null(0).abs())
        | (gap.abs() > before("gap").abs()).fill_null(False)
    )
    both_numbers = gap.is_not_null() & before("gap").is_not_null()
    changed = (
        pl.when(both_numbers)
        .then(_sign(gap) != _sign(before("gap")))
        .otherwise(pl.col("actual").ne_missing(before("actual")))
    )
    return pl.when(worse).then(pl.lit("worse")).when(changed).then(pl.lit("changed"))


def _sign(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr > 0).then(1).when(expr < 0).then(-1).otherwise(0)


def latest_run_id(store: Store) -> str | None:
    rows = store.query("SELECT run_id FROM audit_runs ORDER BY started_at DESC, run_id DESC LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def run_info(store: Store, run_id: str) -> dict | None:
    rows = store.frame("SELECT * FROM audit_runs WHERE run_id = ?", [run_id]).to_dicts()
    return rows[0] if rows else None


def acknowledge(
    store: Store, fingerprint: str, *, until: date | None = None, mute: bool = False, note: str | None = None
) -> None:
    """Acknowledge a finding as it was last seen (still listed, no longer alerted or failing the run while
    it gets no worse and does not change), or mute it (hidden too, whatever it does)."""
    seen = store.query(
        """
        SELECT f.severity, f.impact, f.expected, f.actual
        FROM finding_states s JOIN findings f ON f.fingerprint = s.fingerprint AND f.run_id = s.last_run
        WHERE s.fingerprint = ?
        """,
        [fingerprint],
    ).fetchall()
    if not seen:
        raise UserError(f"no finding with fingerprint {fingerprint!r} in {store.path}")
    store.query(
        "INSERT INTO finding_acks (fingerprint, kind, until, created_at, note, severity, impact, expected, actual) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [fingerprint, "mute" if mute else "ack", until, datetime.now(UTC), note, *seen[0]],
    )


def open_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Open findings per severity, leaving out what someone acknowledged or muted."""
    live = frame.filter(pl.col("status").is_in(OPEN_STATUSES) & ~pl.col("acknowledged") & ~pl.col("muted"))
    counted = dict(live.group_by("severity").len().iter_rows())
    return {severity: counted.get(severity, 0) for severity in SEVERITIES}
