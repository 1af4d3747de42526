"""Injected drift: a few records per check of the catalogue, each with a row in the answer key.

Every fault is applied to the first chunk of generated frames, on records chosen so that the fault
triggers only the checks listed for it. Records are drawn from disjoint pools (SKUs, orders, customers,
payout lines), so two faults never touch the same record.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from driftwatch.demo._catalogue import Catalogue
from driftwatch.demo._draw import Draw
from driftwatch.demo._payouts import COMMISSION_RATE_PERCENT
from driftwatch.demo._trade import TradeChunk
from driftwatch.demo._views import Frames

ANSWER_COLUMNS = ["check_id", "target", "key", "field", "note"]
UNMAPPED = {"bluecherry": "85", "mirakl": "WAITING_REFUND", "ometria": "on_hold"}
EXTRA_SKUS = ("00099-999-M", "00098-999-L")  # style numbers below the range the ERP uses


def _set(frames: Frames, key: tuple[str, str], where: pl.Expr, **values: object) -> None:
    frame = frames[key]
    frames[key] = frame.with_columns(
        pl.when(where)
        .then(value if isinstance(value, pl.Expr) else pl.lit(value, dtype=frame.schema[column]))
        .otherwise(pl.col(column))
        .alias(column)
        for column, value in values.items()
    )


def _drop(frames: Frames, key: tuple[str, str], where: pl.Expr) -> None:
    frames[key] = frames[key].filter(~where)


def _append(frames: Frames, key: tuple[str, str], rows: pl.DataFrame) -> None:
    frame = frames[key]
    frames[key] = pl.concat([frame, rows.select(frame.columns).cast(frame.schema)])


class Injector:
    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self.captured = catalogue.captured_at
        self._rows: list[dict[str, str]] = []
        self._used: dict[str, set[str]] = {}

    def answer_key(self) -> pl.DataFrame:
        return pl.DataFrame(self._rows, schema=dict.fromkeys(ANSWER_COLUMNS, pl.String))

    def _answer(self, check_id: str, target: str, key: str, field: str, note: str) -> None:
        self._rows.append(dict(zip(ANSWER_COLUMNS, (check_id, target, key, field, note), strict=True)))

    def _pick(self, pool: str, candidates: pl.DataFrame, key: str, n: int) -> list[dict]:
        """n candidate rows, spread by the seed, whose key no other fault has used."""
        used = self._used.setdefault(pool, set())
        free = candidates.filter(~pl.col(key).is_in(list(used)))
        order = np.argsort(Draw(self._catalogue.seed, f"drift.{pool}.{len(used)}").bits(np.arange(len(free))))
        chosen = free[order[:n]] if len(free) else free
        if len(chosen) < n:
            raise RuntimeError(f"not enough records to inject drift into {pool}: {len(chosen)} of {n}")
        used.update(chosen[key].to_list())
        return chosen.to_dicts()

    # --- catalogue and stock ----------------------------------------------------------------------
    def catalogue(self, frames: Frames) -> Frames:
        frames = dict(frames)
        live = frames["mirakl", "inventory"].select("sku", ats="available")  # clean copies hold ATS
        garments = live.filter(~pl.col("sku").str.starts_with("P"))
        self._stock_parity(frames, live, garments)
        self._ats_inflation(frames)
        self._negative_stock(frames)
        self._stock_staleness(frames, garments)
        self._catalogue_parity(frames, garments)
        return frames

    def _stock_parity(self, frames: Frames, live: pl.DataFrame, garments: pl.DataFrame) -> None:
        faults = (
            ("ometria", garments.filter(pl.col("ats") >= 3), -2, "publishes 2 fewer than ERP available-to-sell"),
            ("mirakl", garments.filter(pl.col("ats") >= 1), 4, "offers 4 more than ERP available-to-sell (oversell)"),
            ("klaviyo", garments.filter(pl.col("ats") == 0), 6, "shows 6 in stock while ERP available-to-sell is 0"),
            (
                "emarsys",
                live.filter(pl.col("sku").str.starts_with("P")),
                3,
                "shows a pack 3 above the minimum its components allow",
            ),
        )
        for target, candidates, delta, note in faults:
            for row in self._pick("sku", candidates, "sku", 1):
                _set(frames, (target, "inventory"), pl.col("sku") == row["sku"], available=row["ats"] + delta)
                self._answer("stock_parity", target, row["sku"], "available", f"{target} {note} (ERP ATS {row['ats']})")

    def _ats_inflation(self, frames: Frames) -> None:
        stock = frames["bluecherry", "inventory"].filter(pl.col("on_order") > 0)
        candidates = stock.with_columns(cell=pl.concat_str("sku", "location", separator="/"))
        for row in self._pick("sku", candidates.unique("sku", keep="first", maintain_order=True), "sku", 2):
            where = (pl.col("sku") == row["sku"]) & (pl.col("location") == row["location"])
            _set(frames, ("bluecherry", "inventory"), where, available=pl.col("available") + pl.col("on_order"))
            self._answer(
                "ats_inflation",
                "bluecherry",
                row["cell"],
                "available",
                f"ERP Avail QOH at location {row['location']} counts {row['on_order']} units of open WIP",
            )

    def _negative_stock(self, frames: Frames) -> None:
        """ERP locations where more was picked than received: on hand below zero, at locations whose free
        stock was nothing already, so available-to-sell (0 there either way) and every target stay as they
        were. The ERP's Avail QOH follows its formula (nothing for ats_inflation)."""
        free = pl.col("on_hand") - pl.col("allocated") - pl.col("safety_stock")
        cells = frames["bluecherry", "inventory"].filter((free <= 0) & (pl.col("on_order") == 0))
        cells = cells.with_columns(cell=pl.concat_str("sku", "location", separator="/"))
        for row in self._pick("sku", cells.unique("sku", keep="first", maintain_order=True), "sku", 2):
            where = (pl.col("sku") == row["sku"]) & (pl.col("location") == row["location"])
            _set(frames, ("bluecherry", "inventory"), where, on_hand=-2, available=free - pl.col("on_hand") - 2)
            self._answer(
                "negative_stock",
                "bluecherry",
                row["cell"],
                "on_hand",
                f"ERP holds -2 on hand at location {row['location']} (picked before its receipt was booked)",
            )

    def _stock_staleness(self, frames: Frames, garments: pl.DataFrame) -> None:
        for hours, row in zip((30, 41, 75), self._pick("sku", garments, "sku", 3), strict=True):
            stale = self.captured - timedelta(hours=hours)
            _set(frames, ("klaviyo", "inventory"), pl.col("sku") == row["sku"], updated_at=stale)
            self._answer(
                "stock_staleness",
                "klaviyo",
                row["sku"],
                "updated_at",
                f"klaviyo stock for this SKU was last updated {hours} h before capture (allowed 24 h)",
            )

    def _catalogue_parity(self, frames: Frames, garments: pl.DataFrame) -> None:
        for row in self._pick("sku", garments.filter(pl.col("ats") == 0), "sku", 1):
            for entity in ("products", "inventory"):
                _drop(frames, ("emarsys", entity), pl.col("sku") == row["sku"])
            self._answer(
                "catalogue_parity",
                "emarsys",
                row["sku"],
                "",
                "active ERP SKU missing from the emarsys catalogue (it has no stock, so no stock finding)",
            )
        for target, sku in zip(("mirakl", "ometria"), EXTRA_SKUS, strict=True):
            offer = frames[target, "products"].head(1).with_columns(sku=pl.lit(sku), name=pl.lit("Sample Tee"))
            _append(frames, (target, "products"), offer)
            _append(
                frames,
                (target, "inventory"),
                frames[target, "inventory"].head(1).with_columns(sku=pl.lit(sku), available=pl.lit(0)),
            )
            self._answer("catalogue_parity", target, sku, "", f"{target} lists a SKU the ERP does not have")
        products = frames["bluecherry", "products"]
        retired = products.filter(pl.col("status") == "discontinued").with_columns(
            ats=pl.Series(
                self._catalogue.ats(products.filter(pl.col("status") == "discontinued")["sku_idx"].to_numpy())
            )
        )
        for target, row in zip(("klaviyo", "mirakl"), self._pick("sku", retired, "sku", 2), strict=True):
            live = (
                frames[target, "products"]
                .head(1)
                .with_columns(
                    sku=pl.lit(row["sku"]),
                    name=pl.lit(row["name"]),
                    price=pl.lit(row["price"]),
                )
            )
            _append(frames, (target, "products"), live)
            _append(
                frames,
                (target, "inventory"),
                frames[target, "inventory"].head(1).with_columns(sku=pl.lit(row["sku"]), available=pl.lit(row["ats"])),
            )
            self._answer(
                "catalogue_parity",
                target,
                row["sku"],
                "status",
                f"discontinued in the ERP but live on {target} (stock matches ATS {row['ats']})",
            )
        prices = frames["ometria", "products"].join(garments, on="sku", how="semi")
        for target, delta in (("ometria", 500), ("mirakl", -1000)):
            row = self._pick("sku", prices, "sku", 1)[0]
            _set(frames, (target, "products"), pl.col("sku") == row["sku"], price=row["price"] + delta)
            self._answer(
                "catalogue_parity",
                target,
                row["sku"],
                "price",
                f"{target} price differs from the ERP by {delta / 100:+.2f} EUR",
            )

    # --- orders, customers, payouts ---------------------------------------------------------------
    def trade(self, frames: Frames, chunk: TradeChunk) -> Frames:
        frames = dict(frames)
        orders = chunk.orders.join(
            chunk.returns.select("order_id", return_status="status"), on="order_id", how="left"
        ).with_columns(
            lines=pl.col("order_id").replace_strict(
                chunk.lines.group_by("order_id").len().pipe(lambda f: dict(zip(f["order_id"], f["len"], strict=True))),
                default=0,
            )
        )
        paid = frames["mirakl", "payout_lines"].filter(pl.col("line_type") == "order_amount")
        self._order_faults(frames, orders, paid)
        self._event_faults(frames, orders)
        self._tracking_faults(frames, orders, paid)
        self._customer_faults(frames, chunk)
        self._return_faults(frames, orders, paid)
        self._payout_faults(frames, orders, paid)
        return frames

    def _orders(self, orders: pl.DataFrame, n: int, *conditions: pl.Expr) -> list[dict]:
        return self._pick("order", orders.filter(*conditions), "order_id", n)

    def _order_faults(self, frames: Frames, orders: pl.DataFrame, paid: pl.DataFrame) -> None:
        marketing = pl.col("channel") != "mirakl"
        marketplace = pl.col("channel") == "mirakl"
        unpaid = ~pl.col("external_id").is_in(paid["external_id"].implode()) | pl.col("external_id").is_null()
        no_return = pl.col("return_status").is_null()
        plain = no_return & unpaid

        for row in self._orders(orders, 2, marketing, pl.col("state") == "shipped", plain):
            self._drop_order(frames, "ometria", row)
            self._answer("order_presence", "ometria", row["order_id"], "", "ERP order never reached ometria")
        for row in self._orders(orders, 1, marketplace, pl.col("state") == "accepted"):
            self._drop_order(frames, "mirakl", row)
            self._answer("order_presence", "mirakl", row["order_id"], "", "accepted ERP order missing on mirakl")
        for row in self._orders(orders, 1, marketplace, pl.col("state") == "accepted"):
            self._drop_from_erp(frames, row)
            self._answer(
                "order_presence", "mirakl", row["external_id"], "", "accepted mirakl order never imported into the ERP"
            )
        for hours, row in zip((62, 66), self._orders(orders, 2, marketplace, pl.col("state") == "placed"), strict=True):
            self._drop_from_erp(frames, row)
            waiting_since = self.captured - timedelta(hours=hours)
            _set(
                frames,
                ("mirakl", "orders"),
                pl.col("external_id") == row["external_id"],
                placed_at=waiting_since,
                updated_at=waiting_since,
            )
            # older than the allowed sync lag, so also an order the ERP should already have
            note = f"mirakl order awaiting acceptance for {hours} h (deadline 72 h) and absent from the ERP"
            self._answer("acceptance_sla", "mirakl", row["external_id"], "", note)
            self._answer("order_presence", "mirakl", row["external_id"], "", note)

        status_faults = (
            ("ometria", "placed", marketing, "shipped", "ometria says shipped before the ERP dispatched"),
            ("mirakl", "accepted", marketplace, "SHIPPED", "mirakl says shipped before the ERP dispatched"),
            ("ometria", "cancelled", marketing, "pending", "cancelled in the ERP but still open on ometria"),
            ("mirakl", "cancelled", marketplace, "SHIPPING", "cancelled in the ERP but still open on mirakl"),
        )
        for target, state, channel, raw, note in status_faults:
            for row in self._orders(orders, 1, channel, pl.col("state") == state, unpaid):
                _set(frames, (target, "orders"), pl.col("order_id") == row["order_id"], status=raw)
                self._answer("order_status_drift", target, row["order_id"], "status", note)
        partial = self._orders(orders, 2, marketplace, pl.col("state") == "shipped", pl.col("lines") >= 2, no_return)
        for row in partial:
            last_line = (pl.col("order_id") == row["order_id"]) & (pl.col("line_no") == row["lines"])
            _set(frames, ("bluecherry", "order_lines"), last_line, qty_shipped=0)
            _set(frames, ("mirakl", "order_lines"), last_line, qty_shipped=0)
            _set(frames, ("bluecherry", "orders"), pl.col("order_id") == row["order_id"], status="40")
            _set(frames, ("mirakl", "orders"), pl.col("order_id") == row["order_id"], status="CLOSED")
            self._answer(
                "order_status_drift",
                "mirakl",
                row["order_id"],
                "status",
                "partially shipped in the ERP (last line open) but CLOSED on mirakl",
            )

        value_faults = (("ometria", marketing, 1000), ("mirakl", marketplace, -500))
        for target, channel, delta in value_faults:
            for row in self._orders(orders, 1, channel, pl.col("state") == "shipped", no_return):
                _set(frames, (target, "orders"), pl.col("order_id") == row["order_id"], total=pl.col("total") + delta)
                self._answer(
                    "order_value_drift",
                    target,
                    row["order_id"],
                    "total",
                    f"{target} order total differs by {delta / 100:+.2f}",
                )
        for row in self._orders(orders, 1, pl.col("channel") == "web", pl.col("state") == "shipped", plain):
            first_line = (pl.col("order_id") == row["order_id"]) & (pl.col("line_no") == 1)
            _set(frames, ("emarsys", "order_lines"), first_line, qty_ordered=pl.col("qty_ordered") + 1)
            self._answer(
                "order_value_drift",
                "emarsys",
                row["order_id"],
                "qty_ordered",
                "emarsys sales line 1 has one unit more than ordered",
            )

        unmapped = (
            ("bluecherry", pl.col("channel") == "store", "shipped"),
            ("mirakl", marketplace, "shipped"),
            ("ometria", marketing, "placed"),
        )
        for source, channel, state in unmapped:
            row = self._orders(orders, 1, channel, pl.col("state") == state)[0]
            _set(frames, (source, "orders"), pl.col("order_id") == row["order_id"], status=UNMAPPED[source])
            self._answer(
                "unmapped_codes",
                source,
                UNMAPPED[source],
                "status",
                f"{source} order {row['order_id']} carries a status code with no mapping",
            )

    def _drop_order(self, frames: Frames, source: str, row: dict) -> None:
        for entity in ("orders", "order_lines"):
            _drop(frames, (source, entity), pl.col("order_id") == row["order_id"])

    def _drop_from_erp(self, frames: Frames, row: dict) -> None:
        """A marketplace order the ERP never imported: without an ERP number it goes by its own id."""
        self._drop_order(frames, "bluecherry", row)
        for entity in ("orders", "order_lines"):
            _set(frames, ("mirakl", entity), pl.col("order_id") == row["order_id"], order_id=row["external_id"])

    def _event_faults(self, frames: Frames, orders: pl.DataFrame) -> None:
        settled = pl.col("shipped_at") <= self.captured - timedelta(days=3)
        candidates = orders.filter(
            pl.col("channel") != "mirakl",
            pl.col("state") == "shipped",
            settled,
            pl.col("shipped_at") - pl.col("placed_at") >= timedelta(hours=8),
        )
        fulfilled = pl.col("metric") == "order_fulfilled"
        for row in self._orders(candidates, 2):
            _drop(frames, ("klaviyo", "events"), fulfilled & (pl.col("order_id") == row["order_id"]))
            note = "ERP shipment without an order_fulfilled event on klaviyo"
            self._answer("fulfilment_events", "klaviyo", row["order_id"], "", note)
            self._answer(
                "order_status_drift",
                "klaviyo",
                row["order_id"],
                "status",
                note + ", so the order it derives stays placed",
            )
        for hours, row in zip((30, -4), self._orders(candidates, 2), strict=True):
            _set(
                frames,
                ("klaviyo", "events"),
                fulfilled & (pl.col("order_id") == row["order_id"]),
                occurred_at=row["shipped_at"] + timedelta(hours=hours),
            )
            when = f"{hours} h after" if hours > 0 else f"{-hours} h before"
            self._answer(
                "fulfilment_events",
                "klaviyo",
                row["order_id"],
                "occurred_at",
                f"order_fulfilled event sent {when} the ERP shipment",
            )

    def _tracking_faults(self, frames: Frames, orders: pl.DataFrame, paid: pl.DataFrame) -> None:
        shipped = (pl.col("channel") == "mirakl", pl.col("state") == "shipped")
        for row in self._orders(orders, 2, *shipped):
            _drop(frames, ("mirakl", "shipments"), pl.col("order_id") == row["order_id"])
            self._answer(
                "tracking_sync", "mirakl", row["order_id"], "tracking_number", "ERP shipment has no tracking on mirakl"
            )
        shipments = frames["bluecherry", "shipments"]
        for row in self._orders(orders, 1, *shipped):
            carrier = shipments.filter(pl.col("order_id") == row["order_id"])["carrier"][0]
            wrong = "UPS" if carrier != "UPS" else "DHL"
            _set(frames, ("mirakl", "shipments"), pl.col("order_id") == row["order_id"], carrier=wrong)
            self._answer(
                "tracking_sync",
                "mirakl",
                row["order_id"],
                "carrier",
                f"mirakl has carrier {wrong}, the ERP shipped with {carrier}",
            )

    def _customer_faults(self, frames: Frames, chunk: TradeChunk) -> None:
        people = chunk.customers.filter(pl.col("email").is_not_null(), pl.col("merged_into").is_null())
        web = people.filter(pl.col("channel") == "web")

        def pick(pool: pl.DataFrame, n: int = 1) -> list[dict]:
            return self._pick("customer", pool, "customer_id", n)

        def edit(target: str, row: dict, **values: object) -> None:
            _set(frames, (target, "customers"), pl.col("erp_customer_id") == row["customer_id"], **values)

        for target in ("klaviyo", "ometria"):
            row = pick(people.filter(~pl.col("email_consent")))[0]
            edit(target, row, email_consent=True)
            self._answer(
                "consent_parity",
                target,
                row["customer_id"],
                "email_consent",
                f"opted out in the ERP but subscribed on {target} (compliance risk)",
            )
        row = pick(web.filter(pl.col("email_consent")))[0]
        edit("emarsys", row, email_consent=False)
        self._answer(
            "consent_parity",
            "emarsys",
            row["customer_id"],
            "email_consent",
            "opted in in the ERP and commercetools, opted out on emarsys",
        )

        row = pick(people)[0]
        edit("ometria", row, email=pl.lit("old.") + pl.col("email"))
        self._answer("customer_master_parity", "ometria", row["customer_id"], "email", "ometria keeps an old email")
        row = pick(people)[0]
        edit("klaviyo", row, last_name=pl.col("last_name") + "-Hart")
        self._answer(
            "customer_master_parity", "klaviyo", row["customer_id"], "last_name", "klaviyo keeps a different last name"
        )
        row = pick(web)[0]
        edit("emarsys", row, postcode=pl.lit("00000"))
        self._answer(
            "customer_master_parity", "emarsys", row["customer_id"], "postcode", "emarsys keeps a different postcode"
        )
        merged = chunk.customers.filter(pl.col("merged_into").is_not_null())
        for row in self._pick("customer", merged, "customer_id", 1):
            edit("klaviyo", row, merged_into=pl.lit(None, pl.String))
            self._answer(
                "customer_master_parity",
                "klaviyo",
                row["customer_id"],
                "merged_into",
                f"merged into {row['merged_into']} in the ERP, still a separate profile on klaviyo",
            )
        for row in pick(people):
            profiles = frames["klaviyo", "customers"]
            twin = profiles.filter(pl.col("erp_customer_id") == row["customer_id"]).with_columns(
                customer_id=pl.lit("01J") + pl.col("customer_id").str.slice(3)  # every original starts 01H
            )
            _append(frames, ("klaviyo", "customers"), twin)
            self._answer(
                "customer_master_parity",
                "klaviyo",
                row["customer_id"],
                "",
                "two klaviyo profiles carry the same ERP customer id",
            )

        refunded = (
            chunk.returns.filter(pl.col("status") == "refunded")
            .join(chunk.orders.filter(pl.col("state") != "cancelled").select("order_id", "customer_id"), on="order_id")
            .group_by("customer_id")
            .agg(refunded=pl.col("amount").sum())
        )
        with_refunds = people.join(refunded, on="customer_id")
        for target in ("klaviyo", "ometria"):
            row = pick(with_refunds)[0]
            edit(target, row, lifetime_value=pl.col("lifetime_value") + row["refunded"])
            self._answer(
                "ltv_after_refunds",
                target,
                row["customer_id"],
                "lifetime_value",
                f"{target} lifetime value ignores {row['refunded'] / 100:.2f} of refunds",
            )
        row = pick(people.filter(pl.col("order_count") > 0))[0]
        edit("ometria", row, order_count=pl.col("order_count") + 1)
        self._answer(
            "ltv_after_refunds",
            "ometria",
            row["customer_id"],
            "order_count",
            "ometria counts one order more than the ERP's non-cancelled orders",
        )

    def _return_faults(self, frames: Frames, orders: pl.DataFrame, paid: pl.DataFrame) -> None:
        returned = pl.col("return_status") == "refunded"
        for target, channel in (("ometria", "web"), ("ometria", "store"), ("mirakl", "mirakl")):
            row = self._orders(orders, 1, returned, pl.col("channel") == channel)[0]
            _set(
                frames,
                (target, "order_lines"),
                (pl.col("order_id") == row["order_id"]) & (pl.col("line_no") == 1),
                qty_returned=0,
            )
            self._answer(
                "returns_sync",
                target,
                row["order_id"],
                "qty_returned",
                f"refunded ERP return not reflected on {target}",
            )

    def _payout_faults(self, frames: Frames, orders: pl.DataFrame, paid: pl.DataFrame) -> None:
        lines = ("mirakl", "payout_lines")
        settled = orders.join(paid.select("external_id", "payout_id"), on="external_id")
        for row in self._orders(settled, 2, pl.col("return_status").is_null()):
            ghost = row["external_id"].removesuffix("-A") + "-B"  # a second shop order id no system knows
            line = paid.filter(pl.col("external_id") == row["external_id"]).with_columns(
                line_id=pl.lit(f"TL-{ghost}-OA"), external_id=pl.lit(ghost)
            )
            _append(frames, lines, line)
            self._answer(
                "payout_matching",
                "mirakl",
                f"TL-{ghost}-OA",
                "external_id",
                f"payout line for marketplace order {ghost} that the ERP does not know",
            )
        row = self._orders(settled, 1, pl.col("return_status").is_null())[0]
        line_id = f"TL-{row['external_id']}-OA"
        _set(frames, lines, pl.col("line_id") == line_id, amount=pl.col("amount") + 500)
        self._answer("payout_matching", "mirakl", line_id, "amount", "order amount paid 5.00 above the ERP order")
        for row in self._orders(settled, 2, pl.col("return_status").is_null()):
            line_id = f"TL-{row['external_id']}-CO"
            off_rate = -((row["merchandise"] * (COMMISSION_RATE_PERCENT - 3) + 50) // 100)
            _set(frames, lines, pl.col("line_id") == line_id, amount=off_rate)
            _set(frames, ("bluecherry", "journal_entries"), pl.col("entry_id") == "JE" + line_id[2:], amount=off_rate)
            self._answer(
                "payout_matching",
                "mirakl",
                line_id,
                "amount",
                f"commission charged at {COMMISSION_RATE_PERCENT - 3}%, agreed {COMMISSION_RATE_PERCENT}%",
            )
        for row in self._orders(settled, 2, pl.col("return_status").is_null()):
            order_line = frames["bluecherry", "order_lines"].filter(
                (pl.col("order_id") == row["order_id"]) & (pl.col("line_no") == 1)
            )
            refund = paid.filter(pl.col("external_id") == row["external_id"]).with_columns(
                line_id=pl.lit(f"TL-{row['external_id']}-RF"),
                line_type=pl.lit("refund"),
                amount=-order_line["unit_price"][0],
            )
            _append(frames, lines, refund)
            self._answer(
                "payout_matching",
                "mirakl",
                f"TL-{row['external_id']}-RF",
                "",
                "marketplace refunded a unit that the ERP has no return or credit memo for",
            )

    def closing(self, frames: Frames) -> Frames:
        frames = dict(frames)
        fees = frames["mirakl", "payout_lines"].filter(pl.col("line_type") == "fee")
        for row in self._pick("payout", fees, "line_id", 2):
            _drop(frames, ("bluecherry", "journal_entries"), pl.col("entry_id") == "JE" + row["line_id"][2:])
            self._answer(
                "payout_matching",
                "mirakl",
                row["line_id"],
                "",
                f"subscription fee of {row['payout_id']} has no ERP journal entry",
            )
        return frames
