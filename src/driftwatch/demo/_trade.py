"""The ERP's customers and their orders, lines, shipments and returns: the truth every copy derives from.

Customer `i` owns a contiguous run of orders, so a slice of customers brings every order, line, shipment
and return needed to compute its lifetime value without looking anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from driftwatch.demo._catalogue import Catalogue
from driftwatch.demo._draw import Draw

HOUR = 60.0
DAY = 24 * HOUR
# weighted: a country appears once per 5 % of customers
COUNTRIES = ("GB",) * 7 + ("FR",) * 3 + ("DE",) * 4 + ("IE",) + ("NL",) * 2 + ("ES",) * 3
FIRST_NAMES = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Finn",
    "Grace",
    "Hugo",
    "Isla",
    "Jonas",
    "Kofi",
    "Lena",
    "Maya",
    "Noah",
    "Olga",
    "Pia",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Vito",
    "Wren",
    "Yara",
)
LAST_NAMES = (
    "Adams",
    "Bauer",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ivanova",
    "Jansen",
    "Kelly",
    "Lopez",
    "Martin",
    "Novak",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Vogel",
    "Walsh",
    "Young",
    "Zimmer",
)
CARRIERS = ("DPD", "DHL", "UPS", "ROYAL_MAIL")
SHIPPING_CENTS = 495
FREE_SHIPPING_FROM_CENTS = 5000
GBP_PER_EUR_PERCENT = 86
MAX_LINES = 4
# Canonical lifecycle states an order is generated in, with their cumulative shares per channel.
STATE_SHARES = {
    "web": (("placed", 0.06), ("cancelled", 0.14), ("shipped", 1.0)),
    "store": (("placed", 0.06), ("cancelled", 0.14), ("shipped", 1.0)),
    "mirakl": (
        ("placed", 0.04),
        ("accepted", 0.09),
        ("cancelled", 0.16),
        ("shipped", 0.55),
        ("delivered", 0.80),
        ("closed", 1.0),
    ),
}
SHIPPED_STATES = ("shipped", "delivered", "closed")


def _ts(frame_col: np.ndarray) -> pl.Series:
    return pl.Series(frame_col.astype("datetime64[us]")).dt.replace_time_zone("UTC")


@dataclass(frozen=True)
class TradeChunk:
    customers: pl.DataFrame
    orders: pl.DataFrame
    lines: pl.DataFrame
    shipments: pl.DataFrame
    returns: pl.DataFrame


class Trade:
    def __init__(self, seed: int, n_customers: int, catalogue: Catalogue, captured_at: datetime) -> None:
        self.seed = seed
        self.n_customers = n_customers
        self.catalogue = catalogue
        self.captured = np.datetime64(captured_at.replace(tzinfo=None), "us")
        every = np.arange(n_customers, dtype=np.int64)
        counts = np.where(self._merged(every), 0, self._draw("order_count").integers(every, 0, 5))
        self.order_offsets = np.concatenate([[0], np.cumsum(counts)])

    @property
    def n_orders(self) -> int:
        return int(self.order_offsets[-1])

    def _draw(self, stream: str) -> Draw:
        return Draw(self.seed, f"trade.{stream}")

    def _channels(self, idx: np.ndarray) -> np.ndarray:
        u = self._draw("channel").uniform(idx)
        return np.where(u < 0.2, "mirakl", np.where(u < 0.45, "store", "web"))

    def _merged(self, idx: np.ndarray) -> np.ndarray:
        """A few marketing customers were merged into the previous account (which was not merged itself)."""

        def candidate(i: np.ndarray) -> np.ndarray:
            return (self._draw("merged").uniform(i) < 0.015) & (self._channels(i) != "mirakl")

        prev = np.maximum(idx - 1, 0)
        return (idx > 0) & candidate(idx) & ~candidate(prev) & (self._channels(prev) != "mirakl")

    def ago(self, draw: str, idx: np.ndarray, low_minutes: float, high_minutes: float) -> np.ndarray:
        return self.captured - self._draw(draw).minutes(idx, low_minutes, high_minutes)

    # --- customers --------------------------------------------------------------------------------
    def _customers(self, a: int, b: int) -> pl.DataFrame:
        idx = np.arange(a, b, dtype=np.int64)
        channel = self._channels(idx)
        country = self._draw("country").choice(idx, COUNTRIES)
        first = self._draw("first").choice(idx, FIRST_NAMES)
        last = self._draw("last").choice(idx, LAST_NAMES)
        marketing = channel != "mirakl"  # marketplace buyers reach us without an email
        digits = self._draw("postcode").integers(idx, 10000, 99999).astype(str)
        letters = np.asarray(list("ABDEFGHJLNPQRSTUWXYZ"))
        gb_postcode = pl.concat_str(
            *(pl.Series(self._draw(f"pc{i}").choice(idx, letters)) for i in range(2)),
            pl.Series(digits).str.slice(0, 1),
            pl.lit(" "),
            pl.Series(digits).str.slice(1, 1),
            *(pl.Series(self._draw(f"pc{i}").choice(idx, letters)) for i in range(2, 4)),
        )
        merged = self._merged(idx)
        ids = _customer_ids(idx)
        frame = pl.DataFrame(
            {
                "customer_idx": idx,
                "customer_id": ids,
                "channel": channel,
                "country": country,
                "currency": np.where(country == "GB", "GBP", "EUR"),
                "first_name": first,
                "last_name": last,
                "postcode": np.where(country == "GB", pl.select(gb_postcode).to_series().to_numpy(), digits),
                "email_consent": marketing & (self._draw("email_consent").uniform(idx) < 0.6),
                "sms_consent": marketing & (self._draw("sms_consent").uniform(idx) < 0.3),
                "consent_updated_at": _ts(self.ago("consent_at", idx, 5 * DAY, 700 * DAY)),
                "merged_into": pl.select(
                    pl.when(pl.Series(merged)).then(pl.Series(_customer_ids(idx - 1)))
                ).to_series(),
                "updated_at": _ts(self.ago("customer_at", idx, 1 * HOUR, 4 * DAY)),
            }
        )
        email = pl.concat_str(
            pl.col("first_name"),
            pl.lit("."),
            pl.col("last_name"),
            pl.lit("."),
            pl.col("customer_id").str.slice(1),
            pl.lit("@example.com"),
        ).str.to_lowercase()
        return frame.with_columns(
            email=pl.when(pl.col("channel") != "mirakl").then(email),
            # A merged account's consent was last changed no later than the merge
            updated_at=pl.max_horizontal("updated_at", "consent_updated_at"),
        )

    # --- orders -----------------------------------------------------------------------------------
    def chunk(self, a: int, b: int) -> TradeChunk:
        customers = self._customers(a, b)
        first, stop = self.order_offsets[a], self.order_offsets[b]
        idx = np.arange(first, stop, dtype=np.int64)
        owner = np.repeat(np.arange(a, b), np.diff(self.order_offsets[a : b + 1]))
        owners = customers[owner - a] if len(owner) else customers.clear()
        channel = owners["channel"].to_numpy()
        state = self._states(idx, channel)
        placed, shipped, updated = self._times(idx, state, channel)
        orders = pl.DataFrame(
            {
                "order_idx": idx,
                "order_id": _codes("SO", idx, 8),
                "channel": channel,
                "customer_idx": owner,
                "customer_id": owners["customer_id"],
                "email": owners["email"],
                "currency": owners["currency"],
                "state": state,
                "placed_at": _ts(placed),
                "updated_at": _ts(updated),
                "shipped_at": _ts(shipped),
            }
        ).with_columns(
            external_id=pl.when(pl.col("channel") == "mirakl")
            .then(pl.format("MRK-{}-A", pl.col("order_idx").add(1).cast(pl.String).str.zfill(6)))
            .when(pl.col("channel") == "web")
            .then(pl.format("W{}", pl.col("order_idx").add(1).cast(pl.String).str.zfill(8)))
        )
        lines = self._lines(orders)
        returns = self._returns(orders, lines)
        lines = (
            lines.join(
                returns.filter(pl.col("status") == "refunded").select(
                    "order_id", line_no=pl.lit(1, pl.Int64), returned="qty"
                ),
                on=["order_id", "line_no"],
                how="left",
            )
            .with_columns(qty_returned=pl.col("returned").fill_null(0))
            .drop("returned")
        )
        merchandise = lines.group_by("order_id").agg(merchandise=(pl.col("qty_ordered") * pl.col("unit_price")).sum())
        orders = (
            orders.join(merchandise, on="order_id", how="left")
            .with_columns(
                shipping=pl.when(pl.col("merchandise") < FREE_SHIPPING_FROM_CENTS)
                .then(pl.lit(SHIPPING_CENTS, pl.Int64))
                .otherwise(pl.lit(0, pl.Int64))
            )
            .with_columns(total=pl.col("merchandise") + pl.col("shipping"))
        )
        shipments = self._shipments(orders)
        customers = _with_lifetime_value(customers, orders, returns)
        return TradeChunk(customers, orders, lines, shipments, returns)

    def _states(self, idx: np.ndarray, channel: np.ndarray) -> np.ndarray:
        u = self._draw("state").uniform(idx)
        state = np.full(len(idx), "shipped", dtype=object)
        for name, shares in STATE_SHARES.items():
            chosen = np.full(len(idx), None, dtype=object)
            for value, upto in reversed(shares):
                chosen = np.where(u < upto, value, chosen)
            state = np.where(channel == name, chosen, state)
        return state.astype(str)

    def _times(self, idx: np.ndarray, state: np.ndarray, channel: np.ndarray) -> tuple[np.ndarray, ...]:
        """placed_at, shipped_at (NaT unless shipped), updated_at; every one before capture."""
        waiting = np.where(channel == "mirakl", 5 * HOUR, 20 * HOUR)
        placed_age = {
            "placed": (20.0, waiting),
            "accepted": (6 * HOUR, 40 * HOUR),
            "cancelled": (2 * DAY, 360 * DAY),
            "shipped": (2 * DAY, 360 * DAY),
            "delivered": (8 * DAY, 360 * DAY),
            "closed": (40 * DAY, 360 * DAY),
        }
        u = self._draw("placed_at").uniform(idx)
        age = np.zeros(len(idx))
        for name, (low, high) in placed_age.items():
            age = np.where(state == name, low + u * (high - low), age)
        placed = self.captured - age.astype(np.int64).astype("timedelta64[m]")
        is_shipped = np.isin(state, SHIPPED_STATES)
        shipped = np.where(
            is_shipped, placed + self._draw("ship_lag").minutes(idx, 4 * HOUR, 36 * HOUR), np.datetime64("NaT")
        )
        after = {
            "accepted": (placed, 10, 4 * HOUR),
            "cancelled": (placed, 30, DAY),
            "delivered": (shipped, 2 * DAY, 5 * DAY),
            "closed": (shipped, 20 * DAY, 30 * DAY),
        }
        updated = np.where(is_shipped, shipped, placed)
        for name, (start, low, high) in after.items():
            updated = np.where(state == name, start + self._draw(f"updated.{name}").minutes(idx, low, high), updated)
        return placed, shipped, updated

    def _lines(self, orders: pl.DataFrame) -> pl.DataFrame:
        idx = orders["order_idx"].to_numpy()
        n_lines = 1 + (self._draw("n_lines").uniform(idx) * 3.8).astype(np.int64)
        pos = np.repeat(np.arange(len(idx)), n_lines)
        line_no = np.arange(len(pos)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
        cell = idx[pos] * MAX_LINES + line_no
        sku_idx = self._draw("line_sku").integers(cell, 0, self.catalogue.n_skus - 1)
        qty = np.where(self._draw("line_qty").uniform(cell) < 0.8, 1, self._draw("line_qty2").integers(cell, 2, 3))
        eur = self.catalogue.prices(sku_idx)
        gbp = eur * GBP_PER_EUR_PERCENT // 1000 * 10
        state = orders["state"].to_numpy()[pos]
        return pl.DataFrame(
            {
                "order_id": orders["order_id"].to_numpy()[pos],
                "line_no": line_no,
                "sku": self.catalogue.skus(sku_idx),
                "qty_ordered": qty,
                "qty_shipped": np.where(np.isin(state, SHIPPED_STATES), qty, 0),
                "qty_cancelled": np.where(state == "cancelled", qty, 0),
                "unit_price": np.where(orders["currency"].to_numpy()[pos] == "GBP", gbp, eur),
            }
        )

    def _returns(self, orders: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
        """One unit of the first line comes back on some shipped orders: a partial refund of the order."""
        idx = orders["order_idx"].to_numpy()
        returned = np.isin(orders["state"].to_numpy(), SHIPPED_STATES) & (self._draw("return").uniform(idx) < 0.12)
        processed = orders["shipped_at"].to_numpy() + self._draw("return_lag").minutes(idx, 3 * DAY, 20 * DAY)
        refunded = (processed <= self.captured - np.timedelta64(6, "h")) & (self._draw("refunded").uniform(idx) < 0.85)
        frame = pl.DataFrame(
            {
                "return_id": _codes("RA", idx, 8),
                "order_id": orders["order_id"],
                "status": np.where(refunded, "refunded", "authorised"),
                "processed_at": _ts(np.where(refunded, processed, np.datetime64("NaT"))),
            }
        ).filter(pl.Series(returned))
        first_lines = lines.filter(pl.col("line_no") == 1).select("order_id", "sku", "unit_price")
        return frame.join(first_lines, on="order_id").select(
            "return_id",
            "order_id",
            "sku",
            pl.lit(1, pl.Int64).alias("qty"),
            pl.col("unit_price").alias("amount"),
            "status",
            "processed_at",
        )

    def _shipments(self, orders: pl.DataFrame) -> pl.DataFrame:
        shipped = orders.filter(pl.col("shipped_at").is_not_null())
        idx = shipped["order_idx"].to_numpy()
        carrier = np.where(
            shipped["currency"].to_numpy() == "GBP",
            self._draw("carrier").choice(idx, CARRIERS),
            self._draw("carrier").choice(idx, CARRIERS[:3]),
        )
        tracking = self._draw("tracking").integers(idx, 10**11, 10**12 - 1).astype(str)
        return pl.DataFrame(
            {
                "shipment_id": _codes("SH", idx, 8),
                "order_id": shipped["order_id"],
                "carrier": carrier,
                "tracking_number": np.char.add(np.char.add(carrier.astype(str), "-"), tracking),
                "shipped_at": shipped["shipped_at"],
            }
        )


def _codes(prefix: str, idx: np.ndarray, width: int) -> pl.Series:
    return prefix + pl.Series(np.asarray(idx, dtype=np.int64) + 1).cast(pl.String).str.zfill(width)


def _customer_ids(idx: np.ndarray) -> np.ndarray:
    return _codes("C", idx, 7).to_numpy()


def _with_lifetime_value(customers: pl.DataFrame, orders: pl.DataFrame, returns: pl.DataFrame) -> pl.DataFrame:
    """Net lifetime value as DESIGN.md pins it: non-cancelled order totals less refunded returns."""
    kept = orders.filter(pl.col("state") != "cancelled")
    per_customer = kept.group_by("customer_id").agg(
        gross=pl.col("total").sum(), order_count=pl.len(), last_order_at=pl.col("placed_at").max()
    )
    refunds = (
        returns.filter(pl.col("status") == "refunded")
        .join(kept.select("order_id", "customer_id"), on="order_id")
        .group_by("customer_id")
        .agg(refunded=pl.col("amount").sum())
    )
    return (
        customers.join(per_customer, on="customer_id", how="left")
        .join(refunds, on="customer_id", how="left")
        .with_columns(
            lifetime_value=pl.col("gross").fill_null(0) - pl.col("refunded").fill_null(0),
            order_count=pl.col("order_count").fill_null(0).cast(pl.Int64),
        )
        .drop("gross", "refunded")
    )
