"""Sync latency per integration and run: read the snapshot history, time the ERP's changes on each target,
and keep p50, p95 and what is still pending per run beside the findings.

Measured per feed and entity (TRACKED): stock (the ERP's available-to-sell as the target should publish it,
`engine.views.available_to_sell`), consent (`email_consent`, timed by `consent_updated_at`), prices, and
order status (each side's raw status in canonical words, the stages either platform cannot tell apart taken
as one, as order_status_drift compares them; a target keeping events, not orders, gives the status its
events imply, timed by the event).
Each run looks at the snapshots up to its own (at most HISTORY_DAYS back, at most MAX_SNAPSHOTS a side) and
keeps the lags of the changes that appeared since the previous run's target snapshot, with the changes still
waiting at its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from driftwatch.config import Config, Feed
from driftwatch.engine.findings import run_info
from driftwatch.engine.views import ALL_LOCATIONS, available_to_sell, orders_from_events
from driftwatch.entities import MONEY
from driftwatch.errors import UserError
from driftwatch.latency.estimate import SIDE_SCHEMA, events, percentile, resolution_seconds
from driftwatch.latency.slo import Objective, slo_settings
from driftwatch.statuses import map_statuses, stage_classes
from driftwatch.store import Migration, SnapshotInfo, Store

HISTORY_DAYS = 14
MAX_SNAPSHOTS = 60

# Registered by `driftwatch.application`.
MIGRATIONS = (
    Migration(
        510,
        "sync latency per run",
        """
    CREATE TABLE sync_latency (
      run_id VARCHAR NOT NULL,
      source VARCHAR NOT NULL,
      target VARCHAR NOT NULL,
      entity VARCHAR NOT NULL,
      window_start TIMESTAMPTZ,         -- the previous run's target snapshot (null: the whole history)
      window_end TIMESTAMPTZ NOT NULL,  -- this run's target snapshot
      measured INTEGER NOT NULL,        -- changes that appeared in the window
      p50_seconds DOUBLE,
      p95_seconds DOUBLE,
      max_seconds DOUBLE,
      pending INTEGER NOT NULL,         -- changes not shown on the target by window_end
      oldest_pending_seconds DOUBLE,
      resolution_seconds DOUBLE,        -- how precisely a lag is known (half the snapshot intervals)
      p50_objective_seconds DOUBLE,
      p95_objective_seconds DOUBLE,
      breached BOOLEAN NOT NULL,
      PRIMARY KEY (run_id, source, target, entity)
    );
    """,
    ),
)


@dataclass(frozen=True)
class _Reading:
    """What reading one feed's snapshots needs: the feed, the config (status vocabularies) and whether stock is
    kept per location on the target."""

    feed: Feed
    cfg: Config
    by_location: bool = False


@dataclass(frozen=True)
class _Sides:
    """How one entity is read on each side: key and value (both text), and the record's own change time.
    `erp_entity` is the entity read on the system of record, `target_entities` those that may carry it on the
    target (the first the run read counts); a feed carrying any of them is measured."""

    erp: Callable[[Store, SnapshotInfo, _Reading], pl.DataFrame]
    target: Callable[[Store, SnapshotInfo, _Reading], pl.DataFrame]
    erp_entity: str
    target_entities: tuple[str, ...]


def _stock_erp(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    feed, by_location = reading.feed, reading.by_location
    inventory = store.rows(info)
    packs = _companion(store, info, "pack_components")
    ats = available_to_sell(inventory.lazy(), packs, locations=feed.locations, by_location=by_location).collect()
    keys = ["sku", "location"] if by_location else ["sku"]
    if "updated_at" in inventory.columns:
        inventory = inventory.filter(pl.col("location").is_in(feed.locations)) if feed.locations else inventory
        times = inventory.group_by(keys).agg(pl.col("updated_at").max().alias("changed_at"))
        ats = ats.join(times, on=keys, how="left")
    return _side(ats, _key(by_location), pl.col("available").cast(pl.Int64).cast(pl.String), "changed_at")


def _stock_target(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    rows = store.rows(info)
    return _side(rows, _key(reading.by_location), pl.col("available").cast(pl.String), "updated_at")


def _key(by_location: bool) -> pl.Expr:
    return pl.col("sku") + "/" + pl.col("location") if by_location else pl.col("sku")


def _consent_erp(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    return _side(store.rows(info), pl.col("customer_id"), _bool_text("email_consent"), "consent_updated_at")


def _consent_target(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    rows = store.rows(info)
    key = pl.coalesce("erp_customer_id", "customer_id") if "erp_customer_id" in rows.columns else pl.col("customer_id")
    return _side(rows, key, _bool_text("email_consent"), "consent_updated_at")


def _price_erp(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    return _side(store.rows(info), pl.col("sku"), pl.col("price").cast(MONEY).cast(pl.String), "updated_at")


def _price_target(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    return _side(store.rows(info), pl.col("sku"), pl.col("price").cast(MONEY).cast(pl.String), "updated_at")


def _status_erp(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    return _order_stages(store.rows(info), info.source, reading)


def _status_target(store: Store, info: SnapshotInfo, reading: _Reading) -> pl.DataFrame:
    rows = store.rows(info)
    if info.entity == "events":
        if not {"order_id", "metric", "occurred_at"} <= set(rows.columns):
            return _no_side()
        absent = [pl.lit(None, dtype).alias(c) for c, dtype in _EVENT_EXTRAS.items() if c not in rows.columns]
        rows = orders_from_events(rows.lazy().with_columns(absent)).collect()
    return _order_stages(rows, info.source, reading)


_EVENT_EXTRAS = {"value": MONEY, "email": pl.String}  # what orders_from_events reads where events have it


def _order_stages(rows: pl.DataFrame, source: str, reading: _Reading) -> pl.DataFrame:
    """Orders as (order_ref, stage): the canonical status, with the stages either side's platform cannot tell
    apart as one value (engine.compare compares order statuses the same way), so a change only one side can
    express is no change at all. An unmapped status is left out (unmapped_codes reports it). A marketplace's
    orders are matched on the marketplace's own id, which the ERP order carries (`external_id`)."""
    ref = "external_id" if reading.cfg.is_marketplace(reading.feed.target) else "order_id"
    if "status" not in rows.columns or ref not in rows.columns:
        return _no_side()
    try:
        mapping = reading.cfg.status_map(source)
        stages = stage_classes(
            [*reading.cfg.same_stages(reading.feed.source), *reading.cfg.same_stages(reading.feed.target)]
        )
    except UserError:  # a source whose platform is unknown: its statuses cannot be read
        return _no_side()
    canonical = map_statuses("status", mapping, rows)
    stage = canonical.replace(stages) if stages else canonical
    rows = rows.with_columns(stage.alias("stage")).filter(pl.col("stage").is_not_null())
    return _side(rows, pl.col(ref), pl.col("stage"), "updated_at")


def _bool_text(column: str) -> pl.Expr:
    return pl.when(pl.col(column)).then(pl.lit("true")).when(~pl.col(column)).then(pl.lit("false"))


def _side(rows: pl.DataFrame, key: pl.Expr, value: pl.Expr, changed: str) -> pl.DataFrame:
    if value.meta.root_names()[0] not in rows.columns:
        return _no_side()
    known = changed in rows.columns and not _dates_only(rows[changed])
    changed_at = pl.col(changed) if known else pl.lit(None, SIDE_SCHEMA["changed_at"])
    return rows.select(key.alias("key"), value.alias("value"), changed_at.alias("changed_at")).drop_nulls("key")


def _no_side() -> pl.DataFrame:
    """A side with nothing to time (the snapshot lacks what the entity is read from)."""
    return pl.DataFrame(schema={k: v for k, v in SIDE_SCHEMA.items() if k != "captured_at"})


def _dates_only(times: pl.Series) -> bool:
    """A change time given as a date (BlueCherry's Last Modified) says nothing finer than the snapshots do."""
    times = times.drop_nulls()
    return times.len() == 0 or bool((times.dt.truncate("1d") == times).all())


def _companion(store: Store, info: SnapshotInfo, entity: str) -> pl.LazyFrame | None:
    rows = store.frame(
        "SELECT snapshot_id FROM snapshots WHERE source = ? AND entity = ? AND captured_at <= ? "
        "ORDER BY captured_at DESC LIMIT 1",
        [info.source, entity, info.captured_at],
    )
    return store.rows(store.snapshot(rows["snapshot_id"][0])).lazy() if rows.height else None


TRACKED: dict[str, _Sides] = {
    "inventory": _Sides(_stock_erp, _stock_target, "inventory", ("inventory",)),
    "customers": _Sides(_consent_erp, _consent_target, "customers", ("customers",)),
    "products": _Sides(_price_erp, _price_target, "products", ("products",)),
    "orders": _Sides(_status_erp, _status_target, "orders", ("orders", "events")),
}


def measured_entities(fed: Iterable[str]) -> list[str]:
    """The tracked entities a feed carrying `fed` is measured for (`orders` also when it carries events)."""
    fed = set(fed)
    return sorted(name for name, sides in TRACKED.items() if fed & {name, *sides.target_entities})


def record_latency(store: Store, cfg: Config, run_id: str) -> pl.DataFrame:
    """Measure every feed's tracked entities as of the run, store the figures and return them."""
    objectives = slo_settings(cfg) if "slo" in cfg.raw else {}
    info = run_info(store, run_id)
    if info is None:
        return pl.DataFrame()
    used = _run_snapshots(store, run_id)
    rows = []
    for feed in cfg.feeds:
        for entity in measured_entities(feed.entities):
            sides = TRACKED[entity]
            erp_now = used.get((feed.source, sides.erp_entity))
            target_now = next((used[(feed.target, e)] for e in sides.target_entities if (feed.target, e) in used), None)
            if erp_now is None or target_now is None:
                continue
            since = _previous_end(store, run_id, feed, entity)
            figures = measure(store, cfg, feed, entity, erp_now, target_now, since)
            if figures is not None:
                rows.append({"run_id": run_id, **figures, **_judged(figures, objectives.get((feed.target, entity)))})
    frame = pl.DataFrame(rows, schema=_SCHEMA) if rows else pl.DataFrame(schema=_SCHEMA)
    with store.transaction() as cur:
        cur.execute("DELETE FROM sync_latency WHERE run_id = ?", [run_id])
        cur.register("measured_latency", frame)
        try:
            cur.execute(f"INSERT INTO sync_latency ({', '.join(_SCHEMA)}) SELECT * FROM measured_latency")
        finally:
            cur.unregister("measured_latency")
    return frame


def measure(
    store: Store,
    cfg: Config,
    feed: Feed,
    entity: str,
    erp_now: SnapshotInfo,
    target_now: SnapshotInfo,
    since: datetime | None,
) -> dict | None:
    """One feed's figures for one entity: changes that appeared on the target in (since, its snapshot]."""
    sides = TRACKED[entity]
    start = target_now.captured_at - timedelta(days=HISTORY_DAYS)
    target_snaps = _history(store, target_now, start)
    if len(target_snaps) < 2:
        return None  # one snapshot shows no change arriving
    reading = _Reading(feed, cfg, by_location=entity == "inventory" and _keeps_locations(store, target_now))
    erp = _stack([(s, sides.erp(store, s, reading)) for s in _history(store, erp_now, start)])
    target = _stack([(s, sides.target(store, s, reading)) for s in target_snaps])
    timed = events(erp, target)
    if since is not None:
        timed = timed.filter(pl.col("pending") | (pl.col("appeared_at") > since))
    lags = timed.filter(~pl.col("pending"))["lag_seconds"].to_list()
    waiting = timed.filter(pl.col("pending"))["lag_seconds"]
    return {
        "source": feed.source,
        "target": feed.target,
        "entity": entity,
        "window_start": since,
        "window_end": target_now.captured_at,
        "measured": len(lags),
        "p50_seconds": percentile(lags, 50),
        "p95_seconds": percentile(lags, 95),
        "max_seconds": max(lags) if lags else None,
        "pending": waiting.len(),
        "oldest_pending_seconds": waiting.max() if waiting.len() else None,
        "resolution_seconds": resolution_seconds(erp, target),
    }


def _judged(figures: dict, objective: Objective | None) -> dict:
    if objective is None:
        return {"p50_objective_seconds": None, "p95_objective_seconds": None, "breached": False}
    over = [
        (figures["p50_seconds"] or 0) > (objective.p50_seconds or float("inf")),
        (figures["p95_seconds"] or 0) > (objective.p95_seconds or float("inf")),
        (figures["oldest_pending_seconds"] or 0) > (objective.p95_seconds or objective.p50_seconds or float("inf")),
    ]
    return {
        "p50_objective_seconds": objective.p50_seconds,
        "p95_objective_seconds": objective.p95_seconds,
        "breached": any(over),
    }


def _run_snapshots(store: Store, run_id: str) -> dict[tuple[str, str], SnapshotInfo]:
    rows = store.frame(
        "SELECT snapshot_id FROM snapshots "
        "WHERE list_contains((SELECT snapshot_ids FROM audit_runs WHERE run_id = ?), snapshot_id)",
        [run_id],
    )
    infos = [store.snapshot(sid) for sid in rows["snapshot_id"]]
    return {(i.source, i.entity): i for i in infos}


def _previous_end(store: Store, run_id: str, feed: Feed, entity: str) -> datetime | None:
    """The target snapshot the previous measurement of this feed ended at."""
    rows = store.frame(
        "SELECT l.window_end FROM sync_latency l JOIN audit_runs r USING (run_id) "
        "WHERE l.source = ? AND l.target = ? AND l.entity = ? AND l.run_id <> ? "
        "AND r.started_at < (SELECT started_at FROM audit_runs WHERE run_id = ?) "
        "ORDER BY r.started_at DESC LIMIT 1",
        [feed.source, feed.target, entity, run_id, run_id],
    )
    return rows["window_end"][0] if rows.height else None


def _history(store: Store, latest: SnapshotInfo, start: datetime) -> list[SnapshotInfo]:
    rows = store.frame(
        "SELECT snapshot_id FROM snapshots WHERE source = ? AND entity = ? AND captured_at <= ? AND captured_at >= ? "
        "ORDER BY captured_at DESC, loaded_at DESC LIMIT ?",
        [latest.source, latest.entity, latest.captured_at, start, MAX_SNAPSHOTS],
    )
    return [store.snapshot(sid) for sid in reversed(rows["snapshot_id"].to_list())]


def _keeps_locations(store: Store, info: SnapshotInfo) -> bool:
    if "location" not in info.columns:
        return False
    rows, params = store.snapshot_sql(info, ["location"])
    found = store.frame(
        f"SELECT 1 FROM ({rows}) WHERE location IS NOT NULL AND location <> ? LIMIT 1", [*params, ALL_LOCATIONS]
    )
    return found.height > 0


def _stack(sides: list[tuple[SnapshotInfo, pl.DataFrame]]) -> pl.DataFrame:
    frames = [frame.with_columns(pl.lit(info.captured_at).alias("captured_at")) for info, frame in sides]
    if not frames:
        return pl.DataFrame(schema=SIDE_SCHEMA)
    return pl.concat([f.select(list(SIDE_SCHEMA)).cast(SIDE_SCHEMA) for f in frames])


def run_latency(store: Store, run_id: str) -> pl.DataFrame:
    """The figures stored for a run, by target and entity."""
    return store.frame("SELECT * FROM sync_latency WHERE run_id = ? ORDER BY target, entity, source", [run_id])


def previous_latency(store: Store, run_id: str) -> pl.DataFrame:
    """Each feed's measurement in the run before `run_id` that measured it."""
    return store.frame(
        """
        SELECT l.source, l.target, l.entity, arg_max(l.breached, r.started_at) AS breached
        FROM sync_latency l JOIN audit_runs r USING (run_id)
        WHERE r.started_at < (SELECT started_at FROM audit_runs WHERE run_id = ?)
        GROUP BY l.source, l.target, l.entity
        """,
        [run_id],
    ).select("source", "target", "entity", "breached")


def latency_history(store: Store, run_id: str, last: int = 14) -> pl.DataFrame:
    """p50 and p95 per run for each (source, target, entity), over the `last` runs up to `run_id`."""
    return store.frame(
        """
        WITH runs AS (
            SELECT run_id, started_at FROM audit_runs
            WHERE started_at <= (SELECT started_at FROM audit_runs WHERE run_id = ?)
            ORDER BY started_at DESC LIMIT ?)
        SELECT l.*, r.started_at FROM sync_latency l JOIN runs r USING (run_id)
        ORDER BY l.target, l.entity, l.source, r.started_at
        """,
        [run_id, last],
    )


_SCHEMA = {
    "run_id": pl.String,
    "source": pl.String,
    "target": pl.String,
    "entity": pl.String,
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
    "measured": pl.Int32,
    "p50_seconds": pl.Float64,
    "p95_seconds": pl.Float64,
    "max_seconds": pl.Float64,
    "pending": pl.Int32,
    "oldest_pending_seconds": pl.Float64,
    "resolution_seconds": pl.Float64,
    "p50_objective_seconds": pl.Float64,
    "p95_objective_seconds": pl.Float64,
    "breached": pl.Boolean,
}
