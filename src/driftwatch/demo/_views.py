"""Each source's copy of the truth, in that source's own representation, as canonical-column frames.

Money is carried as integer cents until the writer formats it. Every downstream copy here is exactly
what the ERP truth implies (no drift): a `_drift` step changes a few records afterwards.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from driftwatch.demo._catalogue import COLOUR_NAMES, FABRICS, GARMENTS, SKUS_PER_STYLE, Catalogue
from driftwatch.demo._draw import Draw
from driftwatch.demo._trade import HOUR, Trade, TradeChunk

Frames = dict[tuple[str, str], pl.DataFrame]

CATALOGUE_TARGETS = ("mirakl", "klaviyo", "ometria", "emarsys")
ALL_STOCK = "*"  # a target that publishes one figure for all ERP locations

# Raw status vocabularies, per source, for every canonical state the demo produces.
STATUS_CODES = {
    "bluecherry": {
        "placed": "10",
        "accepted": "20",
        "partially_shipped": "40",
        "shipped": "50",
        "delivered": "60",
        "returned": "80",
        "cancelled": "90",
        "closed": "95",
    },
    "mirakl": {
        "placed": "WAITING_ACCEPTANCE",
        "accepted": "SHIPPING",
        "shipped": "SHIPPED",
        "delivered": "RECEIVED",
        "closed": "CLOSED",
        "cancelled": "CANCELED",
    },
    "ometria": {"placed": "pending", "shipped": "shipped", "delivered": "complete", "cancelled": "cancelled"},
    "commercetools": {
        "placed": "Open/Pending",
        "accepted": "Confirmed/Ready",
        "partially_shipped": "Confirmed/Partial",
        "shipped": "Confirmed/Shipped",
        "delivered": "Confirmed/Delivered",
        "cancelled": "Cancelled/Pending",
        "closed": "Complete/Delivered",
    },
}
# Raw values a source also uses for a state, beyond the one above.
STATUS_SYNONYMS = {"mirakl": {"REFUSED": "cancelled"}}

PRODUCT_COLUMNS = ["sku", "name", "price", "currency", "status", "updated_at"]
ORDER_COLUMNS = [
    "order_id",
    "external_id",
    "channel",
    "customer_id",
    "email",
    "status",
    "placed_at",
    "updated_at",
    "total",
    "currency",
]
LINE_COLUMNS = [
    "order_id",
    "line_no",
    "sku",
    "qty_ordered",
    "qty_shipped",
    "qty_cancelled",
    "qty_returned",
    "unit_price",
]
CONSENT_COLUMNS = ["email_consent", "sms_consent", "consent_updated_at"]
PROFILE_COLUMNS = ["first_name", "last_name", "postcode", "country", "merged_into", "updated_at"]
VALUE_COLUMNS = ["lifetime_value", "order_count", "last_order_at"]


def status_map(source: str) -> dict[str, str]:
    """raw -> canonical, as the demo configuration maps it."""
    mapping = {raw: state for state, raw in STATUS_CODES[source].items()}
    return mapping | STATUS_SYNONYMS.get(source, {})


def _raw_status(source: str) -> pl.Expr:
    return pl.col("state").replace_strict(STATUS_CODES[source], default=None).alias("status")


def _synced(column: str, draw: Draw, idx: pl.Series, captured: np.datetime64) -> pl.Expr:
    """A downstream copy of a timestamp: the integration syncs within minutes, never after capture."""
    return pl.min_horizontal(
        pl.col(column) + _lag(draw, idx, 1, 90), pl.lit(captured).dt.replace_time_zone("UTC")
    ).alias(column)


def _lag(draw: Draw, idx: pl.Series, low_minutes: float, high_minutes: float) -> pl.Series:
    return pl.Series(draw.minutes(idx.to_numpy(), low_minutes, high_minutes).astype("timedelta64[us]"))


# --- catalogue ------------------------------------------------------------------------------------
def catalogue_frames(cat: Catalogue, a: int, b: int) -> Frames:
    """Products of SKU indices [a, b) for every source, pack components and stock of the same SKUs."""
    idx = np.arange(a, b, dtype=np.int64)
    captured = np.datetime64(cat.captured_at.replace(tzinfo=None), "us")
    day = captured.astype("datetime64[D]")
    is_pack = idx >= cat.n_components
    garment = np.where(is_pack, 0, idx)
    draw = Draw(cat.seed, "views.catalogue")
    style_name = pl.concat_str(
        pl.Series(draw.choice(garment // SKUS_PER_STYLE, FABRICS)),
        pl.Series(draw.choice(garment // SKUS_PER_STYLE + 1, GARMENTS)),
        separator=" ",
    )
    colours = cat.colour_codes(garment)
    products = pl.DataFrame(
        {
            "sku_idx": idx,
            "sku": cat.skus(idx),
            "style": pl.select(
                pl.when(pl.Series(is_pack))
                .then(cat.pack_styles(idx - cat.n_components))
                .otherwise(cat.style_codes(garment))
            ).to_series(),
            "colour": np.where(is_pack, "000", colours),
            "size": np.where(is_pack, "OS", cat.size_codes(garment)),
            "name": pl.select(
                pl.when(pl.Series(is_pack))
                .then(pl.lit("Bundle ") + cat.pack_styles(idx - cat.n_components))
                .otherwise(style_name + " " + pl.Series(colours).replace_strict(COLOUR_NAMES))
            ).to_series(),
            "price": cat.prices(idx),
            "currency": "EUR",
            "status": np.where(cat.is_active(idx), "active", "discontinued"),
            # BlueCherry exports dates without a time of day
            "updated_at": pl.Series(day - draw.integers(idx, 2, 400).astype("timedelta64[D]"))
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
        }
    )
    frames: Frames = {("bluecherry", "products"): products}
    packs = idx[is_pack] - cat.n_components
    components = cat.pack_components(packs)
    frames["bluecherry", "pack_components"] = pl.DataFrame(
        {
            "pack_sku": cat.skus(components["pack_idx"].to_numpy() + cat.n_components),
            "component_sku": cat.skus(components["component_idx"].to_numpy()),
            "qty": components["qty"],
        }
    )
    stock = cat.erp_stock(idx[~is_pack])
    frames["bluecherry", "inventory"] = (
        stock.join(products.select("sku_idx", "sku", "style", "colour", "size"), on="sku_idx")
        .with_columns(updated_at=pl.lit(day).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .select(
            "sku",
            "style",
            "colour",
            "size",
            "location",
            "on_hand",
            "allocated",
            "on_order",
            "safety_stock",
            "available",
            "updated_at",
        )
    )
    live = products.filter(pl.col("status") == "active").with_columns(ats=pl.Series(cat.ats(idx[cat.is_active(idx)])))
    for target in CATALOGUE_TARGETS:
        target_draw = Draw(cat.seed, f"views.{target}")
        frames[target, "products"] = live.select(PRODUCT_COLUMNS).with_columns(
            _synced("updated_at", target_draw, live["sku_idx"], captured)
        )
        stock_age = target_draw.minutes(live["sku_idx"].to_numpy(), 20, 6 * HOUR)
        frames[target, "inventory"] = live.select(
            "sku",
            location=pl.lit(ALL_STOCK),
            available="ats",
            updated_at=pl.Series((captured - stock_age).astype("datetime64[us]")).dt.replace_time_zone("UTC"),
        )
    return frames


# --- customers and orders -------------------------------------------------------------------------
def trade_frames(trade: Trade, chunk: TradeChunk) -> Frames:
    captured = trade.captured
    customers, orders = chunk.customers, chunk.orders
    marketing = customers.filter(pl.col("email").is_not_null())
    web = customers.filter(pl.col("channel") == "web")
    frames: Frames = {
        ("bluecherry", "customers"): customers.select("customer_id", "email", *CONSENT_COLUMNS, *PROFILE_COLUMNS),
        ("bluecherry", "orders"): orders.with_columns(_raw_status("bluecherry")).select(ORDER_COLUMNS),
        ("bluecherry", "order_lines"): chunk.lines.select(LINE_COLUMNS),
        ("bluecherry", "shipments"): chunk.shipments,
        ("bluecherry", "returns"): chunk.returns,
    }
    klaviyo_draw = Draw(trade.seed, "views.klaviyo.profile")
    frames["klaviyo", "customers"] = marketing.select(
        customer_id=pl.Series(_ulids(klaviyo_draw, marketing["customer_idx"].to_numpy())),
        erp_customer_id="customer_id",
        email=_as_typed(klaviyo_draw, marketing["customer_idx"]),
        **_same(CONSENT_COLUMNS + PROFILE_COLUMNS + VALUE_COLUMNS),
    )
    frames["ometria", "customers"] = marketing.select(
        "customer_id",
        erp_customer_id="customer_id",
        email="email",
        **_same(CONSENT_COLUMNS + PROFILE_COLUMNS + VALUE_COLUMNS),
    )
    frames["commercetools", "customers"] = web.select(
        customer_id=pl.Series(_uuids(Draw(trade.seed, "views.commercetools.id"), web["customer_idx"].to_numpy())),
        erp_customer_id="customer_id",
        email="email",
        **_same(CONSENT_COLUMNS + PROFILE_COLUMNS),
    )
    frames["emarsys", "customers"] = web.select(
        customer_id=(pl.col("customer_idx") + 100_000_001).cast(pl.String),
        erp_customer_id="customer_id",
        email="email",
        email_consent="email_consent",
        **_same(PROFILE_COLUMNS),
    )
    for source in ("klaviyo", "ometria", "commercetools", "emarsys"):
        profiles = frames[source, "customers"]
        owner = profiles.select("erp_customer_id").join(
            customers.select("customer_id", "customer_idx"), left_on="erp_customer_id", right_on="customer_id"
        )["customer_idx"]
        frames[source, "customers"] = profiles.with_columns(
            _synced("updated_at", Draw(trade.seed, f"views.{source}.updated"), owner, captured)
        )
    frames.update(_order_copies(trade, chunk))
    frames["klaviyo", "events"] = _events(trade, chunk)
    return frames


def _as_typed(draw: Draw, idx: pl.Series) -> pl.Expr:
    """Emails as some customers typed them (capitals, a stray space): the same address once normalised."""
    typed = draw.uniform(idx.to_numpy() + (1 << 41))
    return (
        pl.when(pl.Series(typed < 0.1))
        .then(pl.col("email").str.to_titlecase())
        .when(pl.Series(typed < 0.15))
        .then(pl.col("email") + " ")
        .otherwise(pl.col("email"))
    )


def _same(columns: list[str]) -> dict[str, str]:
    return {column: column for column in columns}


def _order_copies(trade: Trade, chunk: TradeChunk) -> Frames:
    orders, lines = chunk.orders, chunk.lines
    copies = {
        "ometria": orders.filter(pl.col("channel") != "mirakl"),
        "commercetools": orders.filter(pl.col("channel") == "web"),
        "emarsys": orders.filter(pl.col("channel") == "web"),
        "mirakl": orders.filter(pl.col("channel") == "mirakl"),
    }
    frames: Frames = {}
    for source, subset in copies.items():
        copy = subset.with_columns(
            _synced("updated_at", Draw(trade.seed, f"views.{source}.order"), subset["order_idx"], trade.captured)
        )
        source_lines = lines.join(copy.select("order_id"), on="order_id", how="semi")
        if source == "emarsys":  # sales data lines: no order status
            copy = copy.select([c for c in ORDER_COLUMNS if c not in ("customer_id", "status")])
        elif source == "mirakl":  # marketplace buyers are anonymous
            refused = pl.Series(Draw(trade.seed, "views.mirakl.refused").uniform(copy["order_idx"].to_numpy()) < 0.3)
            copy = copy.with_columns(
                pl.when((pl.col("state") == "cancelled") & refused)
                .then(pl.lit("REFUSED"))
                .otherwise(_raw_status(source))
                .alias("status")
            ).select([c for c in ORDER_COLUMNS if c not in ("customer_id", "email")])
        elif source == "commercetools":
            copy = copy.with_columns(_raw_status(source)).select([c for c in ORDER_COLUMNS if c != "customer_id"])
        else:
            copy = copy.with_columns(_raw_status(source)).select(ORDER_COLUMNS)
        frames[source, "orders"] = copy
        frames[source, "order_lines"] = source_lines.select(LINE_COLUMNS)
    frames["mirakl", "shipments"] = chunk.shipments.join(copies["mirakl"], on="order_id", how="semi")
    return frames


def _events(trade: Trade, chunk: TradeChunk) -> pl.DataFrame:
    """Klaviyo metrics for every non-marketplace order: placed, fulfilled, cancelled, refunded."""
    orders = chunk.orders.filter(pl.col("channel") != "mirakl")
    draw = Draw(trade.seed, "views.klaviyo.events")
    fulfilled_lag = _lag(draw, orders["order_idx"], 5, 6 * HOUR)
    cancel_lag = _lag(Draw(trade.seed, "views.klaviyo.cancel"), orders["order_idx"], 1, 30)
    base = orders.select("order_id", "email", "placed_at", "shipped_at", "updated_at", "state", value="total")
    placed = base.select("order_id", "email", "value", metric=pl.lit("order_placed"), occurred_at="placed_at")
    fulfilled = base.select(
        "order_id",
        "email",
        "value",
        metric=pl.lit("order_fulfilled"),
        occurred_at=pl.col("shipped_at") + fulfilled_lag,
    ).filter(pl.col("occurred_at").is_not_null())
    cancelled = base.select(
        "order_id",
        "email",
        "value",
        metric=pl.lit("order_cancelled"),
        occurred_at=pl.when(pl.col("state") == "cancelled").then(pl.col("updated_at") + cancel_lag),
    ).filter(pl.col("occurred_at").is_not_null())
    returns = chunk.returns.filter(pl.col("status") == "refunded").join(
        orders.select("order_id", "order_idx", "email"), on="order_id"
    )
    refund_lag = _lag(Draw(trade.seed, "views.klaviyo.refund"), returns["order_idx"], 5, 6 * HOUR)
    refunded = returns.select(
        "order_id",
        "email",
        value="amount",
        metric=pl.lit("order_refunded"),
        occurred_at=pl.col("processed_at") + refund_lag,
    )
    events = pl.concat([placed, fulfilled, cancelled, refunded], how="diagonal")
    suffix = pl.col("metric").str.strip_prefix("order_")
    return events.select(
        event_id=pl.when(pl.col("metric") == "order_refunded")
        .then(pl.concat_str(pl.lit("EV-"), pl.col("order_id"), pl.lit("-refunded")))
        .otherwise(pl.concat_str(pl.lit("EV-"), pl.col("order_id"), pl.lit("-"), suffix)),
        metric="metric",
        order_id="order_id",
        email="email",
        occurred_at="occurred_at",
        value="value",
    ).sort("order_id", "occurred_at")


def _random_text(draw: Draw, idx: np.ndarray, alphabet: str, length: int) -> np.ndarray:
    """Fixed-length random strings over a power-of-two alphabet, from two 64-bit draws per record."""
    width = len(alphabet).bit_length() - 1
    per_word = 64 // width
    letters = np.asarray(list(alphabet))
    words = (draw.bits(idx), draw.bits(idx + (1 << 40)))
    chars = [
        letters[(words[k // per_word] >> np.uint64(width * (k % per_word))) & np.uint64(len(alphabet) - 1)]
        for k in range(length)
    ]
    return np.ascontiguousarray(np.stack(chars, axis=1)).view(f"<U{length}").ravel()


def _ulids(draw: Draw, idx: np.ndarray) -> np.ndarray:
    """Klaviyo-style profile ids: 26 Crockford base-32 characters starting 01H."""
    return np.char.add("01H", _random_text(draw, idx, "0123456789ABCDEFGHJKMNPQRSTVWXYZ", 23))


def _uuids(draw: Draw, idx: np.ndarray) -> pl.Series:
    """commercetools-style customer ids (version-4 UUID layout)."""
    hex_ = pl.Series(_random_text(draw, idx, "0123456789abcdef", 32))
    return pl.select(
        pl.concat_str(
            hex_.str.slice(0, 8),
            hex_.str.slice(8, 4),
            pl.lit("4") + hex_.str.slice(13, 3),
            hex_.str.slice(16, 4),
            hex_.str.slice(20, 12),
            separator="-",
        )
    ).to_series()
