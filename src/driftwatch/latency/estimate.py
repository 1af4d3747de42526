"""How long the ERP's changes take to appear on a target, from the two sides' snapshot histories (pure).

The estimator, per record:
1. A *change* is a value that differs between two consecutive ERP snapshots. It happened at the record's
   own `updated_at` when the ERP gives one inside that interval, else at the interval's midpoint.
2. It is measured only if the target was following the record: its last snapshot before the change shows a
   value the ERP held before (the previous one, or an older one still on its way). A record whose target
   value the ERP never held (another unit, a mapping gap) says nothing about how fast the sync runs; drift
   checks report it.
3. It *appears* in the first later target snapshot showing the new value: at the target record's own
   `updated_at` when it falls after the previous target snapshot (and not before the change), else at the
   midpoint between that snapshot and the one before it (never before the change itself).
4. A change the ERP overwrote before the target showed it cannot be timed and is dropped; one the target
   has not shown by its latest snapshot is *pending*, and its age so far is a lower bound of its lag.

Resolution: without `updated_at` on a side, a time is known to within half the interval between that side's
snapshots, so the lag is known to within half the ERP's interval plus half the target's (snapshot hourly,
and a lag is right to about an hour, never better than that).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

SIDE_SCHEMA = {
    "captured_at": pl.Datetime("us", "UTC"),
    "key": pl.String,
    "value": pl.String,
    "changed_at": pl.Datetime("us", "UTC"),  # the record's own updated_at, when the side has one
}
EVENT_SCHEMA = {
    "key": pl.String,
    "changed_at": pl.Datetime("us", "UTC"),
    "appeared_at": pl.Datetime("us", "UTC"),  # null: pending
    "lag_seconds": pl.Float64,  # appeared - changed; for a pending change, its age at the latest snapshot
    "pending": pl.Boolean,
}


def changes(erp: pl.DataFrame) -> pl.DataFrame:
    """Every value change between consecutive ERP snapshots: key, value, previous, changed_at, next_change."""
    captures = erp.select("captured_at").unique().sort("captured_at")
    captures = captures.with_columns(pl.col("captured_at").shift(1).alias("previous_capture"))
    rows = erp.join(captures, on="captured_at").sort("key", "captured_at")
    rows = rows.with_columns(
        pl.col("value").shift(1).over("key").alias("previous"),
        pl.col("captured_at").shift(1).over("key").alias("seen_before"),
    )
    # Only consecutive sightings: a record absent from a snapshot in between is not a timed change.
    changed = rows.filter(
        pl.col("seen_before").is_not_null()
        & (pl.col("seen_before") == pl.col("previous_capture"))
        & pl.col("value").ne_missing(pl.col("previous"))
    )
    midpoint = pl.col("previous_capture") + (pl.col("captured_at") - pl.col("previous_capture")) / 2
    own = pl.col("changed_at")
    inside = (own > pl.col("previous_capture")) & (own <= pl.col("captured_at"))
    changed = changed.with_columns(pl.when(inside).then(own).otherwise(midpoint).alias("changed_at"))
    changed = changed.sort("key", "changed_at").with_columns(
        pl.col("changed_at").shift(-1).over("key").alias("next_change")
    )
    return changed.select("key", "value", "previous", "changed_at", "next_change")


def events(erp: pl.DataFrame, target: pl.DataFrame) -> pl.DataFrame:
    """Each timed change of the ERP: when it happened, when it appeared on the target (null: pending) and the
    lag, following the module's estimator."""
    if erp.height == 0 or target.height == 0:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    erp, target = erp.cast(SIDE_SCHEMA), target.cast(SIDE_SCHEMA)
    found = changes(erp)
    captures = target.select("captured_at").unique().sort("captured_at")
    captures = captures.with_columns(pl.col("captured_at").shift(1).alias("previous_capture"))
    target = target.join(captures, on="captured_at").sort("key", "captured_at")
    # Following: the target's last snapshot at or before the change shows a value the ERP held before it.
    before = found.sort("changed_at").join_asof(
        target.select("key", pl.col("captured_at").alias("seen_at"), pl.col("value").alias("target_before")),
        left_on="changed_at",
        right_on="seen_at",
        by="key",
        strategy="backward",
        check_sortedness=False,
    )
    held = erp.select("key", pl.col("value").alias("target_before"), pl.col("captured_at").alias("held_at"))
    in_sync = (
        before.join(held, on=["key", "target_before"], how="inner")
        .filter(pl.col("held_at") <= pl.col("changed_at"))
        .select(found.columns)
        .unique(["key", "changed_at"], maintain_order=True)
    )
    # The first later target snapshot that shows the new value.
    shown = in_sync.join(
        target.select(
            "key",
            "value",
            pl.col("captured_at").alias("shown_at"),
            "previous_capture",
            pl.col("changed_at").alias("target_changed_at"),
        ),
        on=["key", "value"],
        how="inner",
    ).filter(pl.col("shown_at") > pl.col("changed_at"))
    first = shown.sort("shown_at").group_by("key", "changed_at", maintain_order=True).first()
    low = pl.max_horizontal("changed_at", "previous_capture")
    own = pl.col("target_changed_at")
    # The target's own time counts from the change itself on (a sync that is instant shows it at that very
    # time), and after the snapshot that did not show it yet.
    after = (own >= pl.col("changed_at")) & (own > pl.col("previous_capture")).fill_null(True)
    appeared = pl.when(after & (own <= pl.col("shown_at"))).then(own).otherwise(low + (pl.col("shown_at") - low) / 2)
    first = first.with_columns(appeared.alias("appeared_at")).select("key", "changed_at", "appeared_at")
    timed = in_sync.join(first, on=["key", "changed_at"], how="left")
    # Overwritten by the ERP before the target showed it: not timeable.
    overwritten = pl.col("next_change").is_not_null() & (
        pl.col("appeared_at").is_null() | (pl.col("next_change") < pl.col("appeared_at"))
    )
    timed = timed.filter(~overwritten)
    latest = target["captured_at"].max()
    pending = pl.col("appeared_at").is_null()
    end = pl.when(pending).then(pl.lit(latest)).otherwise(pl.col("appeared_at"))
    lag = ((end - pl.col("changed_at")).dt.total_microseconds() / 1e6).clip(lower_bound=0)
    return (
        timed.filter(pl.col("changed_at") <= pl.lit(latest))
        .with_columns(pending.alias("pending"), lag.alias("lag_seconds"))
        .select(list(EVENT_SCHEMA))
        .sort("changed_at", "key")
    )


def resolution_seconds(erp: pl.DataFrame, target: pl.DataFrame) -> float | None:
    """How precisely a lag is known: half the median interval between snapshots, for each side that gives no
    times of its own, added up."""
    total = 0.0
    for side in (erp, target):
        if side.height == 0:
            continue
        if side["changed_at"].is_not_null().any():
            continue
        times = side.select("captured_at").unique().sort("captured_at")["captured_at"]
        gaps = times.diff().drop_nulls()
        if gaps.len():
            total += gaps.dt.total_seconds().median() / 2
    return total


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile: a value that was observed, never an interpolation between two."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def window(frame: pl.DataFrame, start: datetime | None, end: datetime) -> pl.DataFrame:
    """Events that appeared (or, pending, are still waiting) in (start, end]."""
    appeared = pl.col("appeared_at")
    after = pl.lit(True) if start is None else appeared > start
    return frame.filter((appeared.is_null()) | (after & (appeared <= end)))
