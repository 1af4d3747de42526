"""Seeded stock and order snapshots (ERP and one downstream target) with a manifest of injected differences.

    .venv/bin/python bench/generate.py --rows 1M               # bench/data/1M
    .venv/bin/python bench/generate.py --rows 10M --out /data/bench

Every size has `rows` base records per side and per entity: ERP (`bluecherry`) inventory and orders beside
the target's (`ometria`) copy, written in chunks as parquet, plus `_manifest.json` (captured_at) per source,
so the directory is also a driftwatch file drop. A small share of the records carries one injected
difference each; `manifest.parquet` lists them (entity, key, kind, report) and `manifest.json` sums them up.
`report` says whether a correct comparison must flag the key:

- real differences (report): values changed above tolerance, rows missing on either side, duplicate keys,
  a compared value null on one side only;
- no difference (must not be flagged): values changed within tolerance, statuses that name the same stage in
  the target's own vocabulary, and representation only: " 0000001234 " for 0000001234 (keys are text with
  leading zeros), "19.9" / " 19.90 " / "1,234.50" for 19.90 / 1234.50, " C1@EXAMPLE.COM" for c1@example.com,
  the same instant written in another timezone, a null in a column the comparison does not read.

The comparison the manifest answers (bench/compare.py runs it three ways):
- stock, key (sku, location): target `available` against ERP max(0, on_hand - allocated - safety_stock),
  flagged when they differ by more than STOCK_TOLERANCE units or one of them is null;
- orders, key order_id: canonical status (ERP statuses are canonical names; the target's map through
  ORDER_STATUS_MAP, and SAME_STATUS groups count as equal) and total within MONEY_TOLERANCE; an order on
  one side only is flagged, except a target-only order that is cancelled.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

SOURCE, TARGET = "bluecherry", "ometria"
CAPTURED_AT = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
STOCK_TOLERANCE = 2  # units
MONEY_TOLERANCE = "0.01"  # in the order's currency
LOCATIONS = ("DC01", "DC02", "STORE001", "STORE002")
ERP_STATUSES = ("placed", "accepted", "shipped", "delivered", "cancelled")
ORDER_STATUS_MAP = {"pending": "placed", "shipped": "shipped", "complete": "delivered", "cancelled": "cancelled"}
SAME_STATUS = (("placed", "accepted"), ("shipped", "delivered", "returned", "refunded"))
# The target's own word for each ERP status when nothing drifted.
_TARGET_STATUS = {"placed": "pending", "accepted": "pending", "shipped": "shipped", "delivered": "complete",
                  "cancelled": "cancelled"}  # fmt: skip

# kind -> whether a correct comparison flags the key. Each kind touches RATE of the records.
STOCK_KINDS = {
    "value_above_tolerance": True,
    "value_within_tolerance": False,
    "missing_in_target": True,
    "missing_in_source": True,
    "duplicate_in_target": True,
    "duplicate_in_source": True,
    "null_in_target": True,
    "null_not_compared": False,
    "key_whitespace": False,
}
ORDER_KINDS = {
    "status_changed": True,
    "status_equivalent": False,
    "total_above_tolerance": True,
    "total_within_tolerance": False,
    "missing_in_target": True,
    "missing_in_source": True,
    "duplicate_in_target": True,
    "duplicate_in_source": True,
    "null_in_target": True,
    "money_representation": False,
    "email_representation": False,
    "timestamp_other_zone": False,
    "key_whitespace": False,
}
RATE = 0.002
CHUNK_ROWS = 1_000_000  # a multiple of len(LOCATIONS): every SKU's locations fall in one chunk
SIZES = {"1M": 1_000_000, "10M": 10_000_000, "50M": 50_000_000}


def parse_rows(text: str) -> int:
    """'1M', '10M', '250k' or a plain number."""
    text = text.strip().upper()
    if text in SIZES:
        return SIZES[text]
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def size_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


@dataclass(frozen=True)
class Chunk:
    """One chunk's rows for each side, and its manifest rows."""

    source: pl.DataFrame
    target: pl.DataFrame
    manifest: pl.DataFrame
    products: pl.DataFrame | None = None  # the ERP's catalogue (prices of the stock at risk), with stock


def assign_kinds(rng: np.random.Generator, n: int, kinds: dict[str, bool]) -> np.ndarray:
    """Per record: the index of its injected kind in `kinds`, or -1 for an untouched record."""
    names = list(kinds)
    probabilities = [RATE] * len(names) + [1 - RATE * len(names)]
    return rng.choice(np.arange(-1, len(names)), size=n, p=[probabilities[-1], *probabilities[:-1]])


def _kind_col(kind_index: np.ndarray, kinds: dict[str, bool]) -> pl.Series:
    names = pl.Series("kind", [None, *kinds], dtype=pl.String)
    return names.gather(kind_index + 1)


def _manifest(frame: pl.DataFrame, entity: str, key: pl.Expr, kinds: dict[str, bool]) -> pl.DataFrame:
    return frame.filter(pl.col("kind").is_not_null()).select(
        pl.lit(entity).alias("entity"),
        key.alias("key"),
        pl.col("kind"),
        pl.col("kind").replace_strict(kinds, return_dtype=pl.Boolean).alias("report"),
    )


def _write_sides(frame: pl.DataFrame, source_cols: list[str], target_cols: list[str]) -> tuple[pl.DataFrame, ...]:
    """Rows missing on a side are left out of it; duplicated rows are written twice."""
    kind = pl.col("kind").fill_null("")
    source = frame.filter(kind != "missing_in_source")
    source = pl.concat([source, source.filter(kind == "duplicate_in_source")]).select(source_cols)
    target = frame.filter(kind != "missing_in_target")
    target = pl.concat([target, target.filter(kind == "duplicate_in_target")]).select(target_cols)
    return source, target


def stock_chunk(seed: int, start: int, n: int) -> Chunk:
    rng = np.random.default_rng([seed, 1, start])
    kind_index = assign_kinds(rng, n, STOCK_KINDS)
    on_hand = rng.integers(0, 200, n)
    allocated = (rng.random(n) * (on_hand + 1)).astype(np.int64)
    safety = rng.integers(0, 6, n)
    # A record one side lacks (or holds no quantity for) is a difference only where there is stock: 0 against
    # no record is 0 either way. Those kinds get stock, so each of them is a real difference.
    absent = [list(STOCK_KINDS).index(k) for k in ("missing_in_target", "missing_in_source", "null_in_target")]
    on_hand = np.where(np.isin(kind_index, absent), np.maximum(on_hand, allocated + safety + 1), on_hand)
    ats = np.maximum(0, on_hand - allocated - safety)
    # A change of `step` units, downwards only where that stays at or above zero.
    above = rng.integers(STOCK_TOLERANCE + 1, STOCK_TOLERANCE + 21, n)
    within = rng.integers(1, STOCK_TOLERANCE + 1, n)
    down = rng.random(n) < 0.5
    frame = pl.DataFrame(
        {
            "i": np.arange(start, start + n),
            "location": np.array(LOCATIONS)[np.arange(start, start + n) % len(LOCATIONS)],
            "on_hand": on_hand,
            "allocated": allocated,
            "safety_stock": safety,
            "on_order": rng.integers(0, 100, n),
            "ats": ats,
            "above": above,
            "within": within,
            "down": down,
        }
    ).with_columns(
        _kind_col(kind_index, STOCK_KINDS),
        (pl.col("i") // len(LOCATIONS)).cast(pl.String).str.zfill(10).alias("sku"),
    )
    kind = pl.col("kind")

    def moved(step: str) -> pl.Expr:
        lower = pl.col("down") & (pl.col("ats") >= pl.col(step))
        return pl.when(lower).then(pl.col("ats") - pl.col(step)).otherwise(pl.col("ats") + pl.col(step))

    frame = frame.with_columns(
        pl.when(kind == "key_whitespace").then(pl.format(" {} ", "sku")).otherwise("sku").alias("target_sku"),
        pl.when(kind == "value_above_tolerance")
        .then(moved("above"))
        .when(kind == "value_within_tolerance")
        .then(moved("within"))
        .when(kind == "null_in_target")
        .then(None)
        .otherwise("ats")
        .alias("available"),
        pl.when(kind == "null_not_compared").then(None).otherwise("on_order").alias("on_order"),
        pl.lit(CAPTURED_AT).alias("updated_at"),
    )
    source, target = _write_sides(
        frame,
        ["sku", "location", "on_hand", "allocated", "safety_stock", "on_order", "updated_at"],
        [pl.col("target_sku").alias("sku"), "location", "available", "updated_at"],
    )
    manifest = _manifest(frame, "stock", pl.format("{}/{}", "sku", "location"), STOCK_KINDS)
    products = frame.filter(pl.col("location") == LOCATIONS[0]).select(
        "sku",
        pl.format("{}.99", pl.col("i") % 200 + 5).cast(pl.Decimal(18, 2)).alias("price"),
        pl.lit("GBP").alias("currency"),
        pl.lit("active").alias("status"),
    )
    return Chunk(source, target, manifest, products)


def order_chunk(seed: int, start: int, n: int) -> Chunk:
    rng = np.random.default_rng([seed, 2, start])
    kind_index = assign_kinds(rng, n, ORDER_KINDS)
    status_index = rng.choice(len(ERP_STATUSES), size=n, p=[0.15, 0.15, 0.3, 0.3, 0.1])
    cents = rng.integers(500, 50_000, n)
    placed_us = int(CAPTURED_AT.timestamp() * 1e6) - rng.integers(2 * 86_400, 60 * 86_400, n) * 1_000_000
    frame = pl.DataFrame(
        {
            "i": np.arange(start, start + n),
            "status": np.array(ERP_STATUSES)[status_index],
            "cents": cents,
            "shift": rng.integers(2, 2_001, n) * np.where(rng.random(n) < 0.5, -1, 1),
            "variant": rng.integers(0, 3, n),
            "placed_us": placed_us,
        }
    ).with_columns(_kind_col(kind_index, ORDER_KINDS))
    kind = pl.col("kind")
    frame = frame.with_columns(
        # "1,234.50" needs a thousand or more, and "1234.5" a total whose last digit is a zero.
        pl.when(kind == "money_representation")
        .then(pl.col("cents") + 100_000 - pl.col("cents") % 10)
        .otherwise("cents")
        .alias("cents"),
        # status_equivalent: the ERP has dispatched, the target names the same stage its own way.
        pl.when(kind == "status_equivalent")
        .then(pl.when(pl.col("i") % 2 == 0).then(pl.lit("shipped")).otherwise(pl.lit("delivered")))
        .otherwise("status")
        .alias("status"),
    )
    money = pl.format("{}.{}", pl.col("cents") // 100, (pl.col("cents") % 100).cast(pl.String).str.zfill(2))
    shifted = pl.col("cents") + pl.col("shift")
    shifted_money = pl.format("{}.{}", shifted // 100, (shifted % 100).cast(pl.String).str.zfill(2))
    one_cent = pl.col("cents") + pl.when(pl.col("i") % 2 == 0).then(1).otherwise(-1)
    one_cent_money = pl.format("{}.{}", one_cent // 100, (one_cent % 100).cast(pl.String).str.zfill(2))
    grouped = pl.format(
        "{},{}.{}",
        pl.col("cents") // 100_000,
        (pl.col("cents") // 100 % 1000).cast(pl.String).str.zfill(3),
        (pl.col("cents") % 100).cast(pl.String).str.zfill(2),
    )
    placed_at = pl.from_epoch("placed_us", time_unit="us").dt.replace_time_zone("UTC")
    frame = frame.with_columns(
        pl.col("i").cast(pl.String).str.zfill(10).alias("order_id"),
        pl.lit("web").alias("channel"),
        pl.format("C{}", (pl.col("i") % 1_000_003).cast(pl.String).str.zfill(7)).alias("customer_id"),
        pl.format("c{}@example.com", (pl.col("i") % 1_000_003).cast(pl.String).str.zfill(7)).alias("email"),
        money.alias("total_text"),
        placed_at.alias("placed_at"),
        pl.lit("GBP").alias("currency"),
    )
    changed_status = (
        pl.when(pl.col("status").is_in(["placed", "accepted"]))
        .then(pl.lit("shipped"))
        .when(pl.col("status").is_in(["shipped", "delivered"]))
        .then(pl.lit("cancelled"))
        .otherwise(pl.lit("pending"))
    )
    equivalent = pl.when(pl.col("status") == "shipped").then(pl.lit("complete")).otherwise(pl.lit("shipped"))
    baseline = pl.col("status").replace_strict(_TARGET_STATUS, return_dtype=pl.String)
    # A target-only order counts as lost only while it is live, so the injected ones never are cancelled.
    live = pl.when(pl.col("status") == "cancelled").then(pl.lit("pending")).otherwise(baseline)
    variants = (
        pl.when(pl.col("variant") == 0)
        .then(grouped)
        .when(pl.col("variant") == 1)
        .then(pl.col("total_text").str.strip_chars_end("0").str.strip_chars_end("."))
        .otherwise(pl.format(" {} ", "total_text"))
    )
    frame = frame.with_columns(
        pl.when(kind == "key_whitespace")
        .then(pl.format(" {} ", "order_id"))
        .otherwise("order_id")
        .alias("target_order_id"),
        pl.when(kind == "status_changed")
        .then(changed_status)
        .when(kind == "status_equivalent")
        .then(equivalent)
        .when(kind == "missing_in_source")
        .then(live)
        .otherwise(baseline)
        .alias("target_status"),
        pl.when(kind == "total_above_tolerance")
        .then(shifted_money)
        .when(kind == "total_within_tolerance")
        .then(one_cent_money)
        .when(kind == "null_in_target")
        .then(None)
        .when(kind == "money_representation")
        .then(variants)
        .otherwise("total_text")
        .alias("target_total"),
        pl.when(kind == "email_representation")
        .then(pl.format("  {}", pl.col("email").str.to_uppercase()))
        .otherwise("email")
        .alias("target_email"),
        pl.when(kind == "timestamp_other_zone")
        .then(
            pl.when(pl.col("i") % 2 == 0)
            .then(placed_at.dt.convert_time_zone("Asia/Kolkata").dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))
            .otherwise(placed_at.dt.convert_time_zone("America/Los_Angeles").dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))
        )
        .otherwise(placed_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .alias("target_placed_at"),
    )
    source, target = _write_sides(
        frame,
        ["order_id", "channel", "customer_id", "email", "status", "placed_at",
         pl.col("total_text").cast(pl.Decimal(18, 2)).alias("total"), "currency"],
        [pl.col("target_order_id").alias("order_id"), "channel", pl.col("target_email").alias("email"),
         pl.col("target_status").alias("status"), pl.col("target_placed_at").alias("placed_at"),
         pl.col("target_total").alias("total"), "currency"],
    )  # fmt: skip
    return Chunk(source, target, _manifest(frame, "orders", pl.col("order_id"), ORDER_KINDS))


def chunks(rows: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    for start in range(0, rows, chunk_rows):
        yield start, min(chunk_rows, rows - start)


class _Writers:
    """One parquet file per path, written a row group at a time."""

    def __init__(self) -> None:
        self.open: dict[Path, pq.ParquetWriter] = {}

    def write(self, path: Path, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if path not in self.open:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.open[path] = pq.ParquetWriter(path, table.schema)
        self.open[path].write_table(table)

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()


def generate(out: Path, rows: int, seed: int = 8, chunk_rows: int = CHUNK_ROWS) -> dict:
    """Write the snapshot directory for `rows` records per side and entity; returns the manifest summary."""
    writers = _Writers()
    try:
        for start, n in chunks(rows, chunk_rows):
            for entity, make in (("inventory", stock_chunk), ("orders", order_chunk)):
                chunk = make(seed, start, n)
                writers.write(out / SOURCE / f"{entity}.parquet", chunk.source)
                writers.write(out / TARGET / f"{entity}.parquet", chunk.target)
                writers.write(out / "manifest.parquet", chunk.manifest)
                if chunk.products is not None:
                    writers.write(out / SOURCE / "products.parquet", chunk.products)
    finally:
        writers.close()
    for source in (SOURCE, TARGET):
        (out / source / "_manifest.json").write_text(json.dumps({"captured_at": CAPTURED_AT.isoformat()}))
    summary = summarize(out, rows, seed, chunk_rows)
    (out / "manifest.json").write_text(json.dumps(summary, indent=2))
    return summary


def summarize(out: Path, rows: int, seed: int, chunk_rows: int) -> dict:
    counts = pl.scan_parquet(out / "manifest.parquet").group_by("entity", "kind", "report").len().collect()
    side_rows = {
        f"{source}/{entity}": pq.ParquetFile(out / source / f"{entity}.parquet").metadata.num_rows
        for source in (SOURCE, TARGET)
        for entity in ("inventory", "orders")
    }
    return {
        "rows_per_side": rows,
        "seed": seed,
        "chunk_rows": chunk_rows,
        "rate_per_kind": RATE,
        "captured_at": CAPTURED_AT.isoformat(),
        "stock_tolerance": STOCK_TOLERANCE,
        "money_tolerance": MONEY_TOLERANCE,
        "file_rows": side_rows,
        "injected": sorted(counts.to_dicts(), key=lambda r: (r["entity"], r["kind"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1M", help="records per side and entity: 1M, 10M, 50M or a number")
    parser.add_argument("--out", type=Path, default=Path("bench/data"), help="parent directory of the size's folder")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    args = parser.parse_args()
    rows = parse_rows(args.rows)
    if args.chunk_rows % len(LOCATIONS):
        parser.error(f"--chunk-rows must be a multiple of {len(LOCATIONS)}")
    out = args.out / size_label(rows)
    if (out / "manifest.json").exists():
        print(f"{out} exists; remove it to generate again")
        return
    summary = generate(out, rows, args.seed, args.chunk_rows)
    print(json.dumps({"out": str(out), **summary["file_rows"]}, indent=2))


if __name__ == "__main__":
    main()
