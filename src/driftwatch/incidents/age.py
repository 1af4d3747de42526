"""How drift ages: how long each open finding has been open, and how much drift is fixed within a day, a
week, later, or not yet, from every spell of every finding up to a run.

A *spell* runs from the run in which a finding was new (or came back) to the run that saw it resolved. Ages
are measured in data time: a run is as of its newest snapshot's capture (its start when it read none), so
a history loaded and audited after the fact ages as it happened. Runs fall minutes apart from night to
night, so "within a day" allows an hour over 24 h, and "within a week" an hour over seven days.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from driftwatch.store import Store

DAY = timedelta(days=1, hours=1)
WEEK = timedelta(days=7, hours=1)
BUCKETS = (
    ("fixed_day", "fixed within a day"),
    ("fixed_week", "fixed within a week"),
    ("fixed_later", "fixed later"),
    ("open_day", "open under a day"),
    ("open_week", "open under a week"),
    ("open_longer", "open over a week"),
)


# A CTE: each run and the instant it describes (its newest snapshot's capture, else its start).
RUN_TIMES = """
    run_times AS (
        SELECT r.run_id, coalesce(max(s.captured_at), r.started_at) AS as_of
        FROM audit_runs r LEFT JOIN snapshots s ON list_contains(r.snapshot_ids, s.snapshot_id)
        GROUP BY r.run_id, r.started_at)"""


def run_time(store: Store, run_id: str):
    """The instant a run describes (see RUN_TIMES)."""
    rows = store.query(f"WITH {RUN_TIMES} SELECT as_of FROM run_times WHERE run_id = ?", [run_id]).fetchall()
    return rows[0][0] if rows else None


def open_since(store: Store, run_id: str) -> pl.DataFrame:
    """For each finding open in the run: `since`, the data time of the run its current spell began in."""
    return store.frame(
        f"""
        WITH {RUN_TIMES}
        SELECT f.fingerprint, max(t.as_of) AS since
        FROM findings f JOIN run_times t USING (run_id)
        WHERE f.status IN ('new', 'regressed') AND t.as_of <= (SELECT as_of FROM run_times WHERE run_id = ?)
          AND f.fingerprint IN (SELECT fingerprint FROM findings WHERE run_id = ? AND status <> 'resolved')
        GROUP BY f.fingerprint
        """,
        [run_id, run_id],
    )


def spells(store: Store, run_id: str) -> pl.DataFrame:
    """Every spell of every finding up to the run: fingerprint, check_id, target, opened_at, closed_at (null:
    still open at the run), age_seconds (closed or the run's start, minus opened)."""
    return store.frame(
        f"""
        WITH {RUN_TIMES},
        now AS (SELECT as_of AS started_at FROM run_times WHERE run_id = ?),
        marks AS (
            SELECT f.fingerprint, f.check_id, f.target, f.status, t.as_of AS started_at
            FROM findings f JOIN run_times t USING (run_id)
            WHERE f.status IN ('new', 'regressed', 'resolved') AND t.as_of <= (SELECT started_at FROM now)),
        ordered AS (
            SELECT *, lead(started_at) OVER w AS next_at, lead(status) OVER w AS next_status
            FROM marks WINDOW w AS (PARTITION BY fingerprint ORDER BY started_at))
        SELECT fingerprint, check_id, target, started_at AS opened_at,
               CASE WHEN next_status = 'resolved' THEN next_at END AS closed_at,
               epoch(coalesce(CASE WHEN next_status = 'resolved' THEN next_at END, (SELECT started_at FROM now)))
                 - epoch(started_at) AS age_seconds
        FROM ordered WHERE status IN ('new', 'regressed')
        ORDER BY opened_at, fingerprint
        """,
        [run_id],
    )


def aging(spells: pl.DataFrame) -> pl.DataFrame:
    """Spells per check and bucket (BUCKETS), with a row per check and one for all checks (`check_id` null)."""
    closed = pl.col("closed_at").is_not_null()
    age, day, week = pl.col("age_seconds"), DAY.total_seconds(), WEEK.total_seconds()
    bucket = (
        pl.when(closed & (age <= day))
        .then(pl.lit("fixed_day"))
        .when(closed & (age <= week))
        .then(pl.lit("fixed_week"))
        .when(closed)
        .then(pl.lit("fixed_later"))
        .when(age <= day)
        .then(pl.lit("open_day"))
        .when(age <= week)
        .then(pl.lit("open_week"))
        .otherwise(pl.lit("open_longer"))
    )
    labelled = spells.with_columns(bucket.alias("bucket"))
    per_check = labelled.group_by("check_id", "bucket").len()
    overall = labelled.group_by("bucket").len().with_columns(pl.lit(None, pl.String).alias("check_id"))
    counts = pl.concat([per_check, overall.select(per_check.columns)])
    wide = counts.pivot(on="bucket", index="check_id", values="len").fill_null(0)
    for name, _ in BUCKETS:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(0, pl.UInt32).alias(name))
    return wide.select("check_id", *(name for name, _ in BUCKETS)).sort("check_id", nulls_last=False)
