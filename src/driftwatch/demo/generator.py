"""Demo retailer generator: a seeded fashion retailer as a file-drop snapshot, with drift and an answer key.

    python -m driftwatch.demo.generator --out DIR [--seed N] [--scale N] [--no-drift] [--format csv|parquet]

The retailer
------------
A European fashion brand whose system of record is CGS BlueCherry (ERP). At scale 1 it sells 280
garments (28 styles x 2 colourways x 5 sizes, alpha XS..XL or numeric 08..16) and 20 marketplace bundles
(packs of 2-3 garments), stocked in three warehouses ("001", "002", "003"); it has 600 customers and
about 1,450 orders (3,400 lines). Everything grows linearly with `scale`: scale 3,334 is the benchmark
size (1M SKUs, 2.8M stock rows, 2M customers, 5.0M orders, 12.0M lines; 88M rows in all, about 3 min
and 1.4 GiB peak as parquet). Values are pure functions of (seed, record index) (see `_draw`), so the
output is identical for a seed and is written chunk by chunk with bounded memory.

Customers buy on one channel: `web` (55 %, through the commercetools storefront), `store` (25 %) or
`mirakl` (20 %, marketplace buyers, who reach the retailer without an email). GB customers pay in GBP,
all others in EUR; catalogue prices are EUR. Snapshots are captured at `captured_at` (default
2026-11-02T06:00Z), written to every `_manifest.json`.

Topology (what each source holds)
---------------------------------
- bluecherry: products and inventory as BlueCherry report exports (headers `Style`, `Color #`, `Size`,
  ..., `Total QOH`, `Total Open`, `Total Ship To WIP`, `Safety Stock`, `Avail QOH`, `Last Modified` in
  MM/DD/YYYY; sku = "{Style}-{Color #}-{Size}", packs "P0001-000-OS"); pack_components, customers,
  orders, order_lines, shipments, returns (RA = return authorisation / credit memo) and
  journal_entries in canonical columns. Raw status codes in `_status_map.json`.
- mirakl: products (offers), inventory (location "*"), orders of channel mirakl and their lines
  (external_id "MRK-000123-A"; order_id is the ERP number stored on the order, or the Mirakl id when
  the ERP never got the order, as the mirakl connector does), shipments (tracking), payout_lines;
  `_commission_rates.json` holds the agreed 15 % on the order amount.
- klaviyo: customers with an email (profile id "01H...", erp_customer_id; some emails as typed, with
  capitals or a trailing space), products, inventory ("*"), events order_placed / order_fulfilled /
  order_cancelled / order_refunded for non-marketplace orders.
- ometria: customers (its customer_id is the ERP id), orders and order_lines of web and store,
  products, inventory ("*").
- emarsys: products, inventory ("*"), the web customers (contact id, erp_customer_id) and web orders
  and lines as sales data (no status column).
- commercetools: web customers (UUID ids), web orders ("W00000001", status "orderState/shipmentState")
  and their lines. The ERP holds the same web orders.
A source lacks a column (e.g. emarsys order status, lifetime value outside klaviyo/ometria) when the
platform does not hold it; the file then has no such column at all.

The clean retailer (drift=False)
--------------------------------
Every copy equals what the ERP implies: available-to-sell = sum over locations of
max(0, on_hand - allocated - safety_stock) (a few locations are negative and must clamp), packs the
minimum over components of floor(ATS / qty); ERP `Avail QOH` = on_hand - allocated - safety_stock;
lifetime value = non-cancelled order totals minus refunded returns, with order count and last order
date over the same orders; statuses map to the same canonical state on every source; downstream
timestamps trail the ERP by minutes and never pass capture; downstream stock is under 6 h old;
fulfilled events trail the shipment by 5 min - 6 h; Mirakl orders awaiting acceptance are under 5 h
old and already in the ERP. Returns refund one unit (a partial refund) and show as `qty_returned`
downstream and as a klaviyo order_refunded event. Payouts: one document per 10-day cycle and currency
(EUR and GBP), issued only for closed cycles, with order_amount, shipping, commission, refund,
refund_commission, a subscription fee and a payment line equal to the sum of the others; the last EUR
document carries a manual credit, and a stand-alone credit note document ("...-CN") is reversed in
full by "...-CN-R". Every commission, refund commission, fee and adjustment has a journal entry.

Injected drift (drift=True), one answer-key row per finding it should cause
-----------------------------------------------------------------------------
`DIR/answer_key.csv`: check_id, target, key, field, note. Keys follow DESIGN.md: SKU for stock and
catalogue checks ("SKU/location" for ats_inflation, where the ERP keeps stock per location), ERP
order number for order checks (the Mirakl order id where the ERP has no order), ERP customer id for
customer checks, payout line id for payout checks, the raw code for unmapped_codes.
- stock_parity: ometria 2 under ATS; mirakl 4 over (oversell); klaviyo 6 where ATS is 0; an emarsys
  pack 3 over its components.
- ats_inflation: two ERP rows whose Avail QOH adds open WIP (Total Ship To WIP).
- negative_stock: two ERP locations with -2 on hand, where nothing was free to sell anyway.
- stock_staleness: three klaviyo stock rows last updated 30, 41 and 75 h before capture.
- catalogue_parity: an active SKU (with no stock) missing on emarsys; SKUs the ERP lacks on mirakl and
  ometria; discontinued SKUs live on klaviyo and mirakl (stock equal to ATS); prices off on ometria
  and mirakl.
- order_presence: web/store orders missing on ometria; an accepted ERP order missing on mirakl; an
  accepted mirakl order missing in the ERP.
- acceptance_sla (+ order_presence): two mirakl orders awaiting acceptance for 62 and 66 h (72 h
  deadline) that the ERP never got.
- order_status_drift: shipped on ometria / mirakl before ERP dispatch; cancelled in the ERP but open on
  ometria / mirakl; two ERP partial shipments (status 40) that mirakl shows CLOSED.
- order_value_drift: totals off on ometria and mirakl; an emarsys sales line with one unit too many.
- unmapped_codes: status "85" in the ERP, "WAITING_REFUND" (a deprecated Mirakl state) on mirakl,
  "on_hold" on ometria.
- fulfilment_events (+ order_status_drift on klaviyo, whose derived order stays placed): two shipped
  orders without an order_fulfilled event. fulfilment_events only: one event 30 h late, one 4 h
  before the ERP shipment.
- tracking_sync: two ERP shipments without tracking on mirakl; one with the wrong carrier.
- consent_parity: opted out in the ERP but subscribed on klaviyo and on ometria; opted in in the ERP
  but out on emarsys.
- customer_master_parity: email (ometria), last name (klaviyo), postcode (emarsys), a merged ERP
  customer still separate on klaviyo, two klaviyo profiles for one ERP customer.
- ltv_after_refunds: klaviyo and ometria lifetime values that ignore refunds; an ometria order count
  one too high.
- returns_sync: refunded ERP returns with qty_returned 0 on ometria (web, store) and mirakl.
- payout_matching: order lines for a Mirakl order id nobody knows; an order amount 5.00 over the ERP;
  two commissions at 12 % (journal matches the line); two refunds with no ERP return; two fees without
  a journal entry.
- snapshot_health is not injected: one snapshot cannot be "much smaller than the last one". Test it
  with two generations into separate directories, e.g. scale 2 loaded first and scale 1 second, or a
  copy of the directory with one entity file truncated or deleted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from driftwatch.demo._catalogue import Catalogue
from driftwatch.demo._drift import Injector
from driftwatch.demo._payouts import Payouts, commission_rates
from driftwatch.demo._trade import Trade
from driftwatch.demo._views import STATUS_CODES, catalogue_frames, status_map, trade_frames
from driftwatch.demo._writer import FILE_FORMATS, TIMESTAMP_FORMAT, SnapshotWriter, write_json
from driftwatch.errors import UserError

DEFAULT_CAPTURED_AT = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
GARMENTS_PER_SCALE = 280
PACKS_PER_SCALE = 20
CUSTOMERS_PER_SCALE = 600
SKU_CHUNK = 200_000
CUSTOMER_CHUNK = 100_000
ANSWER_KEY = "answer_key.csv"
SOURCES_WRITTEN = ("bluecherry", "commercetools", "mirakl", "klaviyo", "ometria", "emarsys")


@dataclass
class GeneratedRetailer:
    out_dir: Path
    answer_key: Path | None  # None when generated without drift
    row_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    scale: int = 1,
    drift: bool = True,
    captured_at: datetime | None = None,
    file_format: str = "csv",
) -> GeneratedRetailer:
    """Write the demo retailer's snapshot directory (and, with drift, its answer key) into `out_dir`."""
    if scale < 1:
        raise UserError(f"scale must be a positive integer, got {scale}")
    if file_format not in FILE_FORMATS:
        raise UserError(f"file format must be one of {', '.join(FILE_FORMATS)}, got {file_format!r}")
    captured = _as_utc(captured_at or DEFAULT_CAPTURED_AT)
    out_dir = Path(out_dir)
    catalogue = Catalogue(seed, GARMENTS_PER_SCALE * scale, PACKS_PER_SCALE * scale, captured)
    trade = Trade(seed, CUSTOMERS_PER_SCALE * scale, catalogue, captured)
    injector = Injector(catalogue) if drift else None
    writer = SnapshotWriter(out_dir, file_format)
    try:
        _write_catalogue(writer, catalogue, injector)
        _write_trade(writer, trade, injector)
    finally:
        writer.close()
    _write_metadata(out_dir, captured)
    answer_key = out_dir / ANSWER_KEY
    if injector is not None:
        injector.answer_key().write_csv(answer_key)
    else:
        answer_key.unlink(missing_ok=True)  # a stale key would describe drift that is not there
    return GeneratedRetailer(out_dir, answer_key if drift else None, writer.row_counts)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _write_catalogue(writer: SnapshotWriter, catalogue: Catalogue, injector: Injector | None) -> None:
    # Chunks are cut from the end, so the first (the one drift goes into) always holds packs and garments.
    for number, stop in enumerate(range(catalogue.n_skus, 0, -SKU_CHUNK)):
        frames = catalogue_frames(catalogue, max(0, stop - SKU_CHUNK), stop)
        if injector is not None and number == 0:
            frames = injector.catalogue(frames)
        writer.write(frames)


def _write_trade(writer: SnapshotWriter, trade: Trade, injector: Injector | None) -> None:
    payouts = Payouts(trade.catalogue.captured_at)
    for start in range(0, trade.n_customers, CUSTOMER_CHUNK):
        chunk = trade.chunk(start, min(start + CUSTOMER_CHUNK, trade.n_customers))
        frames = trade_frames(trade, chunk) | payouts.chunk_frames(chunk)
        if injector is not None and start == 0:
            frames = injector.trade(frames, chunk)
        payouts.record(frames["mirakl", "payout_lines"])
        writer.write(frames)
    closing = payouts.closing_frames()
    if injector is not None:
        closing = injector.closing(closing)
    lines = closing["mirakl", "payout_lines"]
    closing["mirakl", "payout_lines"] = pl.concat([lines, payouts.payments(lines)])
    writer.write(closing)


def _write_metadata(out_dir: Path, captured: datetime) -> None:
    for source in SOURCES_WRITTEN:
        write_json(out_dir / source / "_manifest.json", {"captured_at": captured.strftime(TIMESTAMP_FORMAT)})
    for source in STATUS_CODES:
        write_json(out_dir / source / "_status_map.json", status_map(source))
    write_json(out_dir / "mirakl" / "_commission_rates.json", commission_rates())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m driftwatch.demo.generator", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="snapshot directory to write")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=int, default=1, help="row counts grow linearly with scale")
    parser.add_argument("--no-drift", action="store_true", help="a perfectly consistent retailer, no answer key")
    parser.add_argument("--format", choices=FILE_FORMATS, default="csv", dest="file_format")
    parser.add_argument("--captured-at", type=datetime.fromisoformat, default=None, help="ISO-8601, UTC")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = generate(
        args.out,
        seed=args.seed,
        scale=args.scale,
        drift=not args.no_drift,
        captured_at=args.captured_at,
        file_format=args.file_format,
    )
    elapsed = time.perf_counter() - started
    for (source, entity), rows in sorted(result.row_counts.items()):
        print(f"{source:>14} {entity:<16} {rows:>12,}")
    print(f"{result.total_rows:,} rows in {elapsed:.1f} s -> {result.out_dir}")


if __name__ == "__main__":
    main()
