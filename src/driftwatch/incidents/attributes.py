"""What the records behind a run's findings share: one row per record of a target's scope, with the values
a cause could be named by.

A finding's key is the ERP's identity of a record (see DESIGN.md, "Findings"), so each kind of record gets a
*lens*: the snapshots the run read (never the findings' messages), turned into one row per key with its
attributes (location, style, channel, status, carrier, ...). Every attribute is a list of values, since a
SKU published as one figure is stocked in several locations. The same rows are the *population*: every
record the target should hold, drifting or not, so the grouping can tell a value that concentrates the
drift (one location out of three) from one that every record shares (the only location).

Besides the columns, one attribute compares times across systems: `stalled`, a record the ERP changed after
the moment the target last changed anything at all, when that moment lies well before the target's
snapshot (the target's job stopped).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from driftwatch.config import Config, Feed
from driftwatch.entities import ENTITIES
from driftwatch.store import SnapshotInfo, Store

ALL_LOCATIONS = "*"  # a target publishing one stock figure per SKU (engine.views.ALL_LOCATIONS)
# A target whose records all stopped changing this long before its snapshot has stalled; less than that
# is ordinary sync lag, which `latency` measures rather than calls a cause.
STALL_QUIET = timedelta(hours=6)
ORDER_ENTITIES = ("orders", "order_lines", "shipments", "returns", "events")
TIME_FORMAT = "%Y-%m-%d %H:%M"
# The columns the lenses below read of each entity's snapshots, besides its key.
_READ = {
    "inventory": ("sku", "location", "on_hand", "available", "updated_at"),
    "products": ("sku", "status", "updated_at", "style", "division"),
    "orders": ("order_id", "external_id", "channel", "status", "currency", "updated_at"),
    "shipments": ("order_id", "carrier"),
    "customers": ("customer_id", "country", "updated_at"),
    "payout_lines": ("line_id", "line_type", "payout_id", "currency"),
}


@dataclass(frozen=True)
class Population:
    """Every record of one target's scope for one kind of record: `key` plus one list column per attribute."""

    records: pl.DataFrame
    attributes: tuple[str, ...]
    stalled_since: datetime | None = None  # when the target last changed anything, if it has stalled
    target_locations: tuple[str, ...] | None = None  # the locations the target keeps stock for, if per location


class RunSnapshots:
    """The snapshots a run read, loaded on demand. With a plan (the populations the run will build) each
    snapshot's frame, and every frame derived from it, is forgotten once the last population reading it is
    built: a large audit never holds every snapshot of the run at once. Without one, frames are kept."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        rows = store.frame(
            "SELECT s.snapshot_id, s.source, s.entity FROM snapshots s "
            "WHERE list_contains((SELECT snapshot_ids FROM audit_runs WHERE run_id = ?), s.snapshot_id)",
            [run_id],
        )
        self._ids = {(source, entity): sid for sid, source, entity in rows.iter_rows()}
        self._frames: dict[tuple[str, str], pl.DataFrame | None] = {}
        self._derived: dict[tuple, tuple[pl.DataFrame, tuple[tuple[str, str], ...]]] = {}
        self._shared: dict[tuple, tuple[Any, int]] = {}
        self._planned: set[tuple] = set()
        self._readers: Counter[tuple[str, str]] = Counter()  # populations still to build, per snapshot read

    def plan(self, keys: Iterable[tuple]) -> None:
        """The populations (population_key) this run will build, each once, in any order."""
        self._planned = set(keys)
        self._readers = Counter(snapshot for key in self._planned for snapshot in population_reads(key))

    def info(self, source: str, entity: str) -> SnapshotInfo | None:
        sid = self._ids.get((source, entity))
        return None if sid is None else self.store.snapshot(sid)

    def frame(self, source: str, entity: str) -> pl.DataFrame | None:
        """The snapshot's key and the columns a lens reads of it (a wide snapshot's other columns are not
        read: a frame is kept until its last reader)."""
        if (source, entity) not in self._frames:
            info = self.info(source, entity)
            columns = (*ENTITIES[entity].key, *_READ.get(entity, ()))
            self._frames[(source, entity)] = None if info is None else self.store.rows(info, columns)
        return self._frames[(source, entity)]

    def derived(
        self, key: tuple, compute: Callable[[], pl.DataFrame], reads: tuple[tuple[str, str], ...]
    ) -> pl.DataFrame:
        """A frame several targets' lenses share (the ERP's orders in the same channels, the carriers of each
        order), computed once from the snapshots it `reads` and forgotten with them."""
        if key not in self._derived:
            self._derived[key] = (compute(), reads)
        return self._derived[key][0]

    def shared(self, key: tuple, compute: Callable[[], Any], uses: int) -> Any:
        """A result `uses` groups take in turn (one target's population, read by each check drifting on it):
        computed for the first, forgotten after the last, so populations do not pile up in memory."""
        value, taken = self._shared.pop(key, None) or (self._built(key, compute()), 0)
        if taken + 1 < uses:
            self._shared[key] = (value, taken + 1)
        return value

    def _built(self, key: tuple, value: Any) -> Any:
        """A planned population is built: forget the snapshots no population still to build reads."""
        if key in self._planned:
            self._planned.discard(key)
            for snapshot in population_reads(key):
                self._readers[snapshot] -= 1
                if self._readers[snapshot] <= 0:
                    self._forget(snapshot)
        return value

    def _forget(self, snapshot: tuple[str, str]) -> None:
        self._frames.pop(snapshot, None)
        for key in [k for k, (_, reads) in self._derived.items() if snapshot in reads]:
            del self._derived[key]


def population_key(source: str, target: str, entity: str, keys: pl.Series) -> tuple:
    """What a population depends on: the lens, the source and the target, and for stock whether the findings
    are per location. Every check drifting on a target reads the same one."""
    lens = "orders" if entity in ORDER_ENTITIES else entity
    return (lens, source, target, lens == "inventory" and _per_location(keys))


def population_reads(key: tuple) -> tuple[tuple[str, str], ...]:
    """The snapshots (source, entity) the population of `key` (population_key) reads."""
    lens, source, target, _ = key
    from_source, from_target = _LENS_READS.get(lens, ((), ()))
    return (*((source, entity) for entity in from_source), *((target, entity) for entity in from_target))


def population(
    snaps: RunSnapshots, cfg: Config, source: str, target: str, entity: str, keys: pl.Series
) -> Population | None:
    """The records of `target`'s scope behind findings of `entity` (keys as the findings give them)."""
    lens = _LENSES.get("orders" if entity in ORDER_ENTITIES else entity)
    if lens is None:
        return None
    feed = next((f for f in cfg.feeds if f.source == source and f.target == target), None)
    return lens(snaps, cfg, _Scope(source, target, feed), keys)


@dataclass(frozen=True)
class _Scope:
    source: str
    target: str
    feed: Feed | None  # None: the source audited against itself (ats_inflation, unmapped_codes)


def _stock(snaps: RunSnapshots, cfg: Config, scope: _Scope, keys: pl.Series) -> Population | None:
    inventory = snaps.frame(scope.source, "inventory")
    if inventory is None:
        return None
    if scope.feed is not None and scope.feed.locations is not None:
        inventory = inventory.filter(pl.col("location").is_in(scope.feed.locations))
    stocked = _stock_level(inventory) > 0
    if _per_location(keys):
        rows = inventory.select(
            (pl.col("sku") + "/" + pl.col("location")).alias("key"),
            "sku",
            pl.concat_list("location").alias("location"),
            *_changed_at(inventory),
        )
    else:
        latest = [pl.col("updated_at").max()] if "updated_at" in inventory.columns else []
        rows = inventory.group_by("sku").agg(pl.col("location").filter(stocked).unique().sort(), *latest)
        rows = rows.with_columns(pl.col("sku").alias("key"))
    rows = _with_product_attributes(rows, snaps.frame(scope.source, "products"))
    target_rows = snaps.frame(scope.target, "inventory") if scope.target != scope.source else None
    since = _stalled_since(snaps, scope.target, "inventory", target_rows)
    target_locations = None
    if target_rows is not None and "location" in target_rows.columns:
        listed = sorted(set(target_rows["location"].drop_nulls().to_list()) - {ALL_LOCATIONS})
        target_locations = tuple(listed) if listed else None
    return _finish(rows, ("location", "style", "division", "sku_prefix"), since, target_locations)


def _per_location(keys: pl.Series) -> bool:
    """Findings keyed sku/location (a target keeping stock per location), not per SKU."""
    return bool(keys.str.contains("/", literal=True).any())


def _stock_level(inventory: pl.DataFrame) -> pl.Expr:
    for column in ("on_hand", "available"):
        if column in inventory.columns:
            return pl.col(column).fill_null(0)
    return pl.lit(1)


def _products(snaps: RunSnapshots, cfg: Config, scope: _Scope, keys: pl.Series) -> Population | None:
    products = snaps.frame(scope.source, "products")
    if products is None:
        return None
    rows = products.select("sku", pl.col("sku").alias("key"), *_present(products, "status", "updated_at"))
    rows = _with_product_attributes(_listed(rows, "status"), products)
    target_rows = snaps.frame(scope.target, "products") if scope.target != scope.source else None
    since = _stalled_since(snaps, scope.target, "products", target_rows)
    return _finish(rows, ("style", "division", "status", "sku_prefix"), since)


def _with_product_attributes(rows: pl.DataFrame, products: pl.DataFrame | None) -> pl.DataFrame:
    """Style (and division, where the ERP has one) from the product record; without a style, the SKU's
    first segment stands for it (00112-010-XL -> 00112)."""
    wanted = [c for c in ("style", "division") if products is not None and c in products.columns]
    if wanted:
        extra = products.select("sku", *[pl.concat_list(pl.col(c)).alias(c) for c in wanted]).unique("sku")
        rows = rows.drop(wanted, strict=False).join(extra, on="sku", how="left")
    if "style" not in rows.columns:
        prefix = pl.col("sku").str.extract(r"^([^-_/. ]+)[-_/. ]", 1)
        rows = rows.with_columns(pl.concat_list(prefix).alias("sku_prefix"))
    return rows


def _orders(snaps: RunSnapshots, cfg: Config, scope: _Scope, keys: pl.Series) -> Population | None:
    orders = snaps.frame(scope.source, "orders")
    if orders is None:
        return None
    in_scope = _channel_scope(cfg, scope) if "channel" in orders.columns else pl.lit(True)
    # Targets fed the same channels (every storefront) share the ERP's side: computed once for them.
    key = ("orders", scope.source, in_scope.meta.serialize())
    reads = ((scope.source, "orders"), (scope.source, "shipments"))
    rows = snaps.derived(key, lambda: _erp_orders(snaps, scope.source, in_scope), reads)
    attributes = ["channel", "status", "carrier", "currency"]
    target_orders = snaps.frame(scope.target, "orders") if scope.target != scope.source else None
    if target_orders is not None and "status" in target_orders.columns:
        # The target's own word for the order: an integration that cannot map a status leaves it stuck.
        theirs = target_orders.select(
            pl.coalesce([c for c in ("external_id", "order_id") if c in target_orders.columns]).alias("ref"),
            pl.col("order_id").alias("target_key"),
            pl.concat_list("status").alias("target_status"),
        )
        by_erp = rows.join(theirs.drop("target_key"), left_on="key", right_on="ref", how="left")
        known = rows["key"].implode()
        only_target = theirs.filter(~pl.col("ref").is_in(known) & ~pl.col("target_key").is_in(known))
        rows = pl.concat(
            [by_erp, only_target.select(pl.col("target_key").alias("key"), "target_status")], how="diagonal_relaxed"
        )
        attributes.insert(2, "target_status")
    since = _stalled_since(snaps, scope.target, "orders", target_orders)
    return _finish(rows, tuple(attributes), since)


def _erp_orders(snaps: RunSnapshots, source: str, in_scope: pl.Expr) -> pl.DataFrame:
    """The ERP's orders in a target's channels, with their channel, status, currency and carriers."""
    orders = snaps.frame(source, "orders").filter(in_scope)
    rows = _listed(
        orders.select(
            pl.col("order_id").alias("key"), *_present(orders, "channel", "status", "currency", "updated_at")
        ),
        "channel",
        "status",
        "currency",
    )
    shipments = snaps.frame(source, "shipments")
    if shipments is not None and {"carrier", "order_id"} <= set(shipments.columns):
        carriers = snaps.derived(
            ("carriers", source),
            lambda: shipments.group_by("order_id").agg(pl.col("carrier").drop_nulls().unique().sort()),
            ((source, "shipments"),),
        )
        rows = rows.join(carriers.rename({"order_id": "key"}), on="key", how="left")
    return rows


def _channel_scope(cfg: Config, scope: _Scope) -> pl.Expr:
    """The ERP orders a target receives: a marketplace its own channels; any other target the rest."""
    if scope.feed is None:
        return pl.lit(True)
    if scope.feed.channels is not None:
        return pl.col("channel").is_in(scope.feed.channels)
    if cfg.is_marketplace(scope.target):
        return pl.col("channel") == scope.target
    return ~pl.col("channel").is_in(cfg.marketplace_channels()).fill_null(False)


def _customers(snaps: RunSnapshots, cfg: Config, scope: _Scope, keys: pl.Series) -> Population | None:
    customers = snaps.frame(scope.source, "customers")
    if customers is None:
        return None
    rows = _listed(
        customers.select(pl.col("customer_id").alias("key"), *_present(customers, "country", "updated_at")), "country"
    )
    target_rows = snaps.frame(scope.target, "customers") if scope.target != scope.source else None
    return _finish(rows, ("country",), _stalled_since(snaps, scope.target, "customers", target_rows))


def _payout_lines(snaps: RunSnapshots, cfg: Config, scope: _Scope, keys: pl.Series) -> Population | None:
    lines = snaps.frame(scope.target, "payout_lines")
    if lines is None:
        return None
    rows = _listed(
        lines.select(pl.col("line_id").alias("key"), *_present(lines, "line_type", "payout_id", "currency")),
        "line_type",
        "payout_id",
        "currency",
    )
    return _finish(rows, ("line_type", "payout_id", "currency"), None)


_LENSES: dict[str, Callable[[RunSnapshots, Config, _Scope, pl.Series], Population | None]] = {
    "inventory": _stock,
    "products": _products,
    "orders": _orders,
    "customers": _customers,
    "payout_lines": _payout_lines,
}
# What each lens reads: entities of the source's snapshots, and of the target's (tests hold the lenses to it).
_LENS_READS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "inventory": (("inventory", "products"), ("inventory",)),
    "products": (("products",), ("products",)),
    "orders": (("orders", "shipments"), ("orders",)),
    "customers": (("customers",), ("customers",)),
    "payout_lines": ((), ("payout_lines",)),
}


def _present(frame: pl.DataFrame, *columns: str) -> list[str]:
    return [c for c in columns if c in frame.columns]


def _listed(rows: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return rows.with_columns(pl.concat_list(pl.col(c)).alias(c) for c in columns if c in rows.columns)


def _changed_at(frame: pl.DataFrame) -> list[str]:
    return ["updated_at"] if "updated_at" in frame.columns else []


def _stalled_since(snaps: RunSnapshots, target: str, entity: str, target_rows: pl.DataFrame | None) -> datetime | None:
    """When the target last changed any record of `entity`, if that is over STALL_QUIET before its snapshot:
    its own latest `updated_at`, or else the capture from which its snapshots stopped changing at all."""
    info = snaps.info(target, entity)
    if info is None or target_rows is None or target_rows.height == 0:
        return None
    last_change = None
    if "updated_at" in target_rows.columns:
        last_change = target_rows["updated_at"].max()
    if last_change is None:
        last_change = _unchanged_since(snaps.store, info)
    if last_change is None or info.captured_at - last_change < STALL_QUIET:
        return None
    return last_change


def _unchanged_since(store: Store, info: SnapshotInfo) -> datetime | None:
    """The capture of the earliest snapshot in the latest run of identical ones (None: it just changed)."""
    history = store.frame(
        "SELECT captured_at, content_hash FROM snapshots WHERE source = ? AND entity = ? AND captured_at <= ? "
        "ORDER BY captured_at DESC",
        [info.source, info.entity, info.captured_at],
    )
    same = history.with_columns((pl.col("content_hash") != info.content_hash).cum_sum().alias("changes"))
    streak = same.filter(pl.col("changes") == 0)
    if streak.height < 2:
        return None
    return streak["captured_at"].min()


def _finish(
    rows: pl.DataFrame,
    attributes: tuple[str, ...],
    since: datetime | None,
    target_locations: tuple[str, ...] | None = None,
) -> Population:
    present = [a for a in attributes if a in rows.columns]
    if since is not None and "updated_at" in rows.columns:
        stalled = pl.when(pl.col("updated_at") > since).then(pl.concat_list(pl.lit(since.strftime(TIME_FORMAT))))
        rows = rows.with_columns(stalled.alias("stalled"))
        present.append("stalled")
    # A list may hold a null (a record without a channel): the grouping drops nulls as it explodes the lists,
    # which costs far less than dropping them from every list here (0.48 of this step's 0.53 s of CPU for 355k
    # orders with four attributes).
    records = rows.select(pl.col("key").cast(pl.String), *[pl.col(a).cast(pl.List(pl.String)) for a in present]).unique(
        "key", keep="first", maintain_order=True
    )
    return Population(records, tuple(present), since if "stalled" in present else None, target_locations)
