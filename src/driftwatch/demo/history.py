"""Two earlier nights for the demo retailer, and the causes its last night carries, so that `make demo` shows
incidents, sync latency and drift age as a real store does after a few nights.

The generated retailer is the last night. Before it is pulled, two causes are written into its platform
files (and into its answer key):
- Mirakl stops receiving the outlet's stock (location 003): every SKU stocked there publishes less (packs
  and their components aside, whose figures are not a plain sum);
- Klaviyo's stock job stopped a little under a day before the capture: the SKUs the ERP sold during the
  last day still show yesterday's figures there.
The earlier nights are built from the last night as pulled (so every snapshot has the shape the connectors
give): every record, its times after the earlier night's capture moved back by a day or two (so recent
orders, events and profiles tell the story they tell on the last night, and older ones the same values),
except stock, which is the stock the ERP held before the last
two days' sales, each target showing what the ERP held then; each target's own `updated_at` says when it
took each change (Ometria an hour after it, Emarsys three). They are stored as snapshots captured 48 and 24
hours earlier and audited in turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from driftwatch.store import IncomingSnapshot, Store

DROPPED = ("mirakl", "003")  # the target and the ERP location it stops receiving
STALLED = "klaviyo"
STALL_BEFORE = timedelta(hours=23)  # how long before the capture Klaviyo last changed anything
TAKES = {"ometria": timedelta(hours=1), "emarsys": timedelta(hours=3), "klaviyo": timedelta(hours=1)}
STOCK_TARGETS = ("mirakl", "klaviyo", "ometria", "emarsys")
ERP = "bluecherry"
SOLD_PER_DAY = 0.12  # share of eligible SKUs the ERP sells from on each of the two days
_CSV = {"infer_schema": False}


@dataclass
class Plan:
    """What the earlier nights differ by: stock the ERP sold on each day (sku -> units, from location 001)
    and the outlet stock Mirakl stopped receiving."""

    captured_at: datetime
    sold: list[dict[str, int]] = field(default_factory=lambda: [{}, {}])  # [last day, the day before]
    dropped: dict[str, int] = field(default_factory=dict)  # sku -> ATS at location 003


def inject_causes(snapshots: Path, captured_at: datetime, seed: int = 7) -> Plan:
    """Write the last night's causes into the platform files and the answer key; return what changed."""
    rng = random.Random(seed)
    plan = Plan(captured_at)
    inventory = pl.read_csv(snapshots / ERP / "inventory.csv", **_CSV)
    stock = inventory.with_columns(
        (pl.col("Style") + "-" + pl.col("Color #") + "-" + pl.col("Size")).alias("sku"),
        (
            pl.col("Total QOH").cast(pl.Int64)
            - pl.col("Total Open").cast(pl.Int64)
            - pl.col("Safety Stock").cast(pl.Int64)
        )
        .clip(lower_bound=0)
        .alias("ats"),
    )
    eligible = _eligible(snapshots, stock)
    skus = sorted(eligible)
    rng.shuffle(skus)
    count = int(len(skus) * SOLD_PER_DAY)
    main = dict(stock.filter(pl.col("Location") == "001").select("sku", "ats").iter_rows())
    for day, chosen in enumerate((skus[:count], skus[count : 2 * count])):
        plan.sold[day] = {sku: rng.randint(1, 4) for sku in chosen if main.get(sku, 0) > 0}
    outlet = dict(stock.filter(pl.col("Location") == DROPPED[1]).select("sku", "ats").iter_rows())
    listed = set(pl.read_csv(snapshots / DROPPED[0] / "inventory.csv", **_CSV)["sku"])
    packs = _in_packs(snapshots)
    plan.dropped = {sku: n for sku, n in sorted(outlet.items()) if n > 0 and sku in listed and sku not in packs}
    _write_erp_dates(snapshots, inventory, plan)
    _write_targets(snapshots, plan)
    _extend_answer_key(snapshots, plan)
    return plan


def _in_packs(snapshots: Path) -> set[str]:
    packs = pl.read_csv(snapshots / ERP / "pack_components.csv", **_CSV)
    return set(packs["pack_sku"]) | set(packs["component_sku"])


def _eligible(snapshots: Path, stock: pl.DataFrame) -> set[str]:
    """SKUs no injected drift touches, outside any pack, that every target publishes at the ERP's figure."""
    key = pl.read_csv(snapshots / "answer_key.csv", **_CSV)
    touched = {k.split("/")[0] for k in key["key"].to_list()} | _in_packs(snapshots)
    truth = dict(stock.group_by("sku").agg(pl.col("ats").sum()).iter_rows())
    agreed = set(truth)
    for target in STOCK_TARGETS:
        published = pl.read_csv(snapshots / target / "inventory.csv", **_CSV)
        agreed &= {sku for sku, n in published.select("sku", "available").iter_rows() if truth.get(sku) == int(n)}
    return agreed - touched


def _write_erp_dates(snapshots: Path, inventory: pl.DataFrame, plan: Plan) -> None:
    """BlueCherry's Last Modified (a date): the day each row last changed; a week earlier for the rest."""
    day = plan.captured_at
    sku = pl.col("Style") + "-" + pl.col("Color #") + "-" + pl.col("Size")
    main = pl.col("Location") == "001"
    modified = (
        pl.when(main & sku.is_in(list(plan.sold[0])))
        .then(pl.lit(f"{day:%m/%d/%Y}"))
        .when(main & sku.is_in(list(plan.sold[1])))
        .then(pl.lit(f"{day - timedelta(days=1):%m/%d/%Y}"))
        .otherwise(pl.lit(f"{day - timedelta(days=7):%m/%d/%Y}"))
    )
    inventory.with_columns(modified.alias("Last Modified")).write_csv(snapshots / ERP / "inventory.csv")


def _write_targets(snapshots: Path, plan: Plan) -> None:
    taken = plan.captured_at - timedelta(hours=12)  # the ERP's change, known to the day: its midpoint
    stall = plan.captured_at - STALL_BEFORE
    for target in STOCK_TARGETS:
        path = snapshots / target / "inventory.csv"
        frame = pl.read_csv(path, **_CSV)
        available, updated = pl.col("available").cast(pl.Int64), pl.col("updated_at")
        if target == DROPPED[0]:
            lost = pl.col("sku").replace_strict(plan.dropped, default=0, return_dtype=pl.Int64)
            available = available - lost
        if target == STALLED:
            kept = pl.col("sku").replace_strict(plan.sold[0], default=0, return_dtype=pl.Int64)
            available = available + kept
            updated = pl.min_horizontal(updated, pl.lit(_iso(stall)))
        elif target in TAKES:
            changed = pl.col("sku").is_in(list(plan.sold[0]))
            updated = pl.when(changed).then(pl.lit(_iso(taken + TAKES[target]))).otherwise(updated)
        frame.with_columns(available.cast(pl.String).alias("available"), updated.alias("updated_at")).write_csv(path)


def _extend_answer_key(snapshots: Path, plan: Plan) -> None:
    path = snapshots / "answer_key.csv"
    key = pl.read_csv(path, **_CSV)
    added = [
        *(("stock_parity", DROPPED[0], sku, "available", f"location {DROPPED[1]} no longer reaches {DROPPED[0]}")
          for sku in sorted(plan.dropped)),
        *(("stock_parity", STALLED, sku, "available", f"{STALLED}'s stock job stopped before this sale")
          for sku in sorted(plan.sold[0])),
    ]  # fmt: skip
    rows = pl.DataFrame(added, schema=key.columns, orient="row")
    known = key.select("check_id", "target", "key")
    pl.concat([key, rows.join(known, on=["check_id", "target", "key"], how="anti")]).write_csv(path)


def earlier_nights(pulled: Store, plan: Plan) -> list[list[IncomingSnapshot]]:
    """The two nights before the last, oldest first, as snapshots of every source pulled for the last one."""
    latest = pulled.latest_snapshots()
    nights = []
    for back in (2, 1):
        shift = timedelta(days=back)
        snaps = []
        for source, entity in latest.select("source", "entity").iter_rows():
            info = pulled.latest_snapshot(source, entity)
            captured = info.captured_at.astimezone(UTC)  # polars compares only time zones of one name
            frame = pulled.rows(info)
            if entity == "inventory":
                frame = _stock_then(frame, source, plan, back)
            else:
                later = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
                then = pl.lit(captured - shift)
                frame = frame.with_columns(
                    pl.when(pl.col(name) > then).then(pl.col(name) - shift).otherwise(pl.col(name)).alias(name)
                    for name in later
                )
            snaps.append(IncomingSnapshot(source, entity, captured - shift, frame, origin="demo history"))
        nights.append(snaps)
    return nights


def _stock_then(frame: pl.DataFrame, source: str, plan: Plan, back: int) -> pl.DataFrame:
    """Stock `back` nights before the last: add back what the ERP sold since; a target shows it as it was."""
    since = {}
    for day in range(back):
        for sku, units in plan.sold[day].items():
            since[sku] = since.get(sku, 0) + units
    at = plan.captured_at.astimezone(UTC) - timedelta(days=back)
    if source == ERP:
        main = pl.col("location") == "001"
        added = pl.when(main).then(pl.col("sku").replace_strict(since, default=0, return_dtype=pl.Int64)).otherwise(0)
        cols = [(pl.col(c) + added).alias(c) for c in ("on_hand", "available") if c in frame.columns]
        return frame.with_columns(cols)
    added = pl.col("sku").replace_strict(since, default=0, return_dtype=pl.Int64)
    if source == STALLED:
        # It still took the changes until it stopped: back then it showed what the ERP held.
        added = added - pl.col("sku").replace_strict(plan.sold[0], default=0, return_dtype=pl.Int64)
    if source == DROPPED[0]:
        added = added + pl.col("sku").replace_strict(plan.dropped, default=0, return_dtype=pl.Int64)
    frame = frame.with_columns((pl.col("available") + added).alias("available"))
    if "updated_at" in frame.columns:
        frame = frame.with_columns(_updated_then(plan, source, back, at))
    return frame


def _updated_then(plan: Plan, source: str, back: int, at: datetime) -> pl.Expr:
    """When a target last changed each figure, `back` nights before the last: the day-before's sales taken
    TAKES later, the rest no later than that night."""
    earlier = pl.min_horizontal("updated_at", pl.lit(at - timedelta(hours=13)))
    if back != 1 or source not in TAKES:
        return earlier.alias("updated_at")
    taken = at - timedelta(hours=12) + TAKES[source]
    return pl.when(pl.col("sku").is_in(list(plan.sold[1]))).then(pl.lit(taken)).otherwise(earlier).alias("updated_at")


def _iso(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%SZ}"
