"""What one destination has to hear about a run, against what it already knows (pure frame functions).

A finding open in the run alerts the destination when, against what the destination last saw:
- it came back (it cleared, or was resolved and regressed since the destination last heard): `regressed`;
- the destination never saw it and it began since the destination last heard: `new`
  (one that began earlier, say while deliveries failed, is `new` with the date it began);
- the destination never saw it, and it is older than that (a route or destination added later): `unalerted`;
- it is worse, or its target's value changed (`engine.findings.change_since`): `worsened`, `changed`;
- it was acknowledged or muted when last seen and no longer is: `unquieted`.
Findings acknowledged (and still covered) or muted stay quiet, but the destination's state follows them,
so it can tell later what changed. A finding the destination saw open that is no longer open anywhere in
a run whose check ran has cleared; the next digest lists it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from driftwatch.alerts.ledger import KNOWN_SCHEMA
from driftwatch.engine.findings import OPEN_STATUSES, change_since, with_gap

# In the order a line names them when a record has several.
REASONS = ("regressed", "new", "worsened", "changed", "unquieted", "unalerted")
_PREVIOUS = ("severity", "impact", "currency", "actual")


def sightings(findings: pl.DataFrame, run_started: datetime) -> pl.DataFrame:
    """The run's findings with what the state keeps of each (`gap`, `quiet`, `is_open`) and when its current
    spell began (`since`, `since_status`: from the store when the frame has them, else from its status)."""
    frame = with_gap(findings).with_columns(
        pl.col("status").is_in(OPEN_STATUSES).alias("is_open"),
        pl.when(pl.col("muted")).then(pl.lit("mute")).when(pl.col("acknowledged")).then(pl.lit("ack")).alias("quiet"),
        pl.lit(True).alias("values_known"),
    )
    fresh = pl.col("status").is_in(["new", "regressed"])
    if "since" not in frame.columns:
        frame = frame.with_columns(pl.when(fresh).then(pl.lit(run_started)).alias("since"))
    if "since_status" not in frame.columns:
        frame = frame.with_columns(pl.when(fresh).then(pl.col("status")).alias("since_status"))
    if "ack_outgrown" not in frame.columns:
        frame = frame.with_columns(pl.lit(False).alias("ack_outgrown"))
    return frame.with_columns(_utc(pl.col("since")))


def attention(open_rows: pl.DataFrame, known: pl.DataFrame, *, horizon: datetime) -> pl.DataFrame:
    """The open, unquiet findings that alert, with `reason`, `was_quiet` and the values last seen (`*_was`).

    `open_rows` are sightings; what began after `horizon` is new to the destination (see `new_after`).
    """
    previous = known.select(
        "fingerprint",
        pl.col("is_open").alias("was_open"),
        pl.col("quiet").alias("was_quiet"),
        pl.col("values_known").alias("was_values_known"),
        *[pl.col(c).alias(f"{c}_was") for c in (*_PREVIOUS, "gap")],
    )
    joined = open_rows.filter(pl.col("quiet").is_null()).join(previous, on="fingerprint", how="left")
    began_since = (pl.col("since") > _utc(pl.lit(horizon))).fill_null(False)
    unseen = pl.col("was_open").is_null()
    change = change_since("_was")
    reason = (
        pl.when((began_since & (pl.col("since_status") == "regressed")) | pl.col("was_open").eq_missing(False))
        .then(pl.lit("regressed"))
        .when(unseen & began_since)
        .then(pl.lit("new"))
        .when(unseen)
        .then(pl.lit("unalerted"))
        .when(change == "worse")
        .then(pl.lit("worsened"))
        .when((change == "changed") & pl.col("was_values_known"))
        .then(pl.lit("changed"))
        .when(pl.col("was_quiet").is_not_null())
        .then(pl.lit("unquieted"))
    )
    return joined.with_columns(reason.alias("reason")).filter(pl.col("reason").is_not_null())


def new_after(last_heard: datetime | None, first_attempt: datetime | None, run_started: datetime) -> datetime:
    """The instant after which a finding is new to a destination: the start of the run it last heard of;
    for one that never heard anything, just before the run it first should have (its first delivery
    attempt, else this run), so that a route added today does not call old drift new."""
    if last_heard is not None:
        return last_heard
    return min(first_attempt or run_started, run_started) - timedelta(microseconds=1)


def cleared(known: pl.DataFrame, findings: pl.DataFrame, checks: tuple[str, ...] | None) -> pl.DataFrame:
    """What the destination saw open (and not muted) that is open nowhere in this run, where its check ran."""
    still_open = findings.filter(pl.col("status").is_in(OPEN_STATUSES))["fingerprint"].to_list()
    ran = pl.lit(True) if checks is None else pl.col("check_id").is_in(list(checks)) | pl.col("check_id").is_null()
    return known.filter(
        pl.col("is_open") & pl.col("quiet").ne_missing(pl.lit("mute")) & ~pl.col("fingerprint").is_in(still_open) & ran
    )


def next_state(known: pl.DataFrame, seen_now: pl.DataFrame, gone: pl.DataFrame) -> pl.DataFrame:
    """What the destination knows once told: every finding it saw now as it is now, what cleared as cleared,
    and everything else as it was (findings outside this run's reach, and earlier clearings, which tell a
    finding that comes back later)."""
    now = seen_now.select(list(KNOWN_SCHEMA)).cast(KNOWN_SCHEMA)
    earlier = known.filter(~pl.col("fingerprint").is_in(now["fingerprint"].to_list())).with_columns(
        (pl.col("is_open") & ~pl.col("fingerprint").is_in(gone["fingerprint"].to_list())).alias("is_open")
    )
    return pl.concat([earlier, now]).sort("fingerprint")


def _utc(instant: pl.Expr) -> pl.Expr:
    # The store and the caller may name UTC differently ("UTC", "Etc/UTC"); polars compares only equal names.
    return instant.dt.convert_time_zone("UTC")
