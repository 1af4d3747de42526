"""Emarsys contacts, catalogue rows and sales-data lines <-> canonical rows.

A frame pulled from Emarsys has only the columns Emarsys holds: a missing column means "not kept there",
never "empty there", so no check compares what Emarsys cannot know.

Contacts are objects keyed by field id ("1" first name, "2" last name, "3" email, "13" ZIP code, "14"
country, "31" opt-in: "1" in, "2" out). Custom fields have ids that differ per account: `field_ids` in the
source's settings maps canonical customer columns to them (and adds columns, e.g. `sms_consent`); the
defaults below are the custom fields this project's integration creates.

The product catalogue is the CSV Emarsys imports whole: the standard `item`, `title`, `available`,
`price` columns, and custom `c_` columns for what the standard ones lack (currency, the variant's
style, colour and size, the stock figure, and their times).

Sales data is one CSV line per order line: `order`, `timestamp`, `item`, `quantity`, `price` (the line
total), `customer` or `email`, and the custom columns this integration adds: `i_line` (the line number),
`f_shipping` (shipping and other order-level charges, repeated on each line of the order), `s_external_id`
(the storefront's order number), `s_channel`, `s_currency`. A return or cancellation is a line with a
negative quantity and price; `s_reason` says which. Emarsys keeps no order record, so orders and their
lines are derived: lines by `i_line` (by item when a file lacks it), the order total is what was bought
plus the order's charges, and what was taken back fills `qty_cancelled` / `qty_returned`. Emarsys never
de-duplicates: an order uploaded twice counts twice, here as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from driftwatch.connectors._json import text
from driftwatch.entities import MONEY

DEFAULT_FIELD_IDS: dict[str, str] = {
    "first_name": "1",
    "last_name": "2",
    "email": "3",
    "postcode": "13",
    "country": "14",
    "email_consent": "31",
    "erp_customer_id": "10001",
    "merged_into": "10002",
    "updated_at": "10003",
}
OPT_IN = {"1": "true", "2": "false"}
OPT_IN_VALUES = {"true": "1", "false": "2"}

# catalogue column -> canonical products column (the status comes from `available`)
CATALOGUE_PRODUCT = {
    "item": "sku",
    "title": "name",
    "price": "price",
    "c_currency": "currency",
    "c_style": "style",
    "c_colour": "colour",
    "c_size": "size",
    "c_updated_at": "updated_at",
}
CATALOGUE_STOCK = {"c_stock": "available", "c_stock_updated_at": "updated_at"}
# sales-data column -> canonical orders column, for the columns every line of an order repeats
SALES_ORDER = {
    "s_external_id": "external_id",
    "s_channel": "channel",
    "customer": "customer_id",
    "email": "email",
    "s_currency": "currency",
}
SALES_REQUIRED = ("order", "timestamp", "item", "quantity", "price")
CANCELLED, RETURNED = "cancelled", "returned"


def opt_in(value: str | None) -> str | None:
    """Field 31 as canonical text: 1 is opted in, 2 opted out; an undocumented value stays as it is."""
    return None if value is None else OPT_IN.get(value, value)


# A drop of a contacts export carries field 31 as getdata does.
DROP_DECODERS = {"customers": {"email_consent": opt_in}}


def field_ids(settings: Mapping[str, Any]) -> dict[str, str]:
    return {**DEFAULT_FIELD_IDS, **{k: str(v) for k, v in (settings.get("field_ids") or {}).items()}}


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text: typed frames (Decimal, datetime) and text frames alike."""
    return frame.with_columns(
        pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z")
        if frame.schema[c].is_temporal()
        else pl.col(c).cast(pl.String)
        for c in frame.columns
    )


# ---- contacts ------------------------------------------------------------------------------------


def contacts_frame(contacts: list[Mapping[str, Any]], fields: Mapping[str, str]) -> pl.DataFrame:
    """getdata results as canonical customers: `customer_id` is the Emarsys contact id."""
    rows = []
    for contact in contacts:
        row = {column: text(contact.get(field_id)) for column, field_id in fields.items()}
        row["email_consent"] = opt_in(row.get("email_consent"))  # an unknown value stays raw, to be reported
        rows.append({"customer_id": text(contact["id"]), **row})
    return pl.DataFrame(rows, schema=dict.fromkeys(["customer_id", *fields], pl.String))


def contacts_from_frame(customers: pl.DataFrame | None, fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """Canonical customers as Emarsys stores them: every value a string, opt-in as "1"/"2"."""
    if customers is None:
        return []
    contacts = []
    for row in _as_text(customers).to_dicts():
        contact = {"id": row["customer_id"]}
        for column, field_id in fields.items():
            value = text(row.get(column))
            if column == "email_consent" and value is not None:
                value = OPT_IN_VALUES[value.lower()]
            contact[field_id] = value
        contacts.append(contact)
    return contacts


# ---- catalogue -----------------------------------------------------------------------------------


def catalogue_to_frames(catalogue: pl.DataFrame, currency: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The catalogue CSV (every column read as text) as canonical products and inventory."""
    columns = catalogue.columns
    products = catalogue.select(
        *[pl.col(src).alias(dst) for src, dst in CATALOGUE_PRODUCT.items() if src in columns],
        *([_status()] if "available" in columns else []),
    )
    if "currency" not in products.columns and currency:
        products = products.with_columns(currency=pl.lit(currency))
    inventory = pl.DataFrame(schema=dict.fromkeys(["sku", "location", "available"], pl.String))
    if "c_stock" in columns:
        inventory = catalogue.filter(pl.col("c_stock").is_not_null()).select(
            pl.col("item").alias("sku"),
            pl.lit("*").alias("location"),
            *[pl.col(src).alias(dst) for src, dst in CATALOGUE_STOCK.items() if src in columns],
        )
    return products, inventory


def _status() -> pl.Expr:
    available = pl.col("available").str.to_lowercase().is_in(["true", "1", "yes", "y"])
    return pl.when(available).then(pl.lit("active")).otherwise(pl.lit("discontinued")).alias("status")


def catalogue_from_frames(products: pl.DataFrame | None, inventory: pl.DataFrame | None, link: str) -> pl.DataFrame:
    """Canonical products (and their one stock figure) as the catalogue file an integration publishes."""
    if products is None:
        return pl.DataFrame(schema=dict.fromkeys(["item", "title", "link", "available", "price"], pl.String))
    products = _as_text(products)
    catalogue = products.select(
        *[pl.col(dst).alias(src) for src, dst in CATALOGUE_PRODUCT.items() if dst in products.columns],
        (pl.lit(f"{link}/") + pl.col("sku")).alias("link"),
        (pl.col("status") != "discontinued").cast(pl.String).str.to_lowercase().alias("available"),
    )
    if inventory is not None:
        stock = _as_text(inventory).filter(pl.col("location") == "*")
        catalogue = catalogue.join(
            stock.select(
                pl.col("sku").alias("item"),
                *[pl.col(dst).alias(src) for src, dst in CATALOGUE_STOCK.items() if dst in stock.columns],
            ),
            on="item",
            how="left",
        )
    return catalogue


# ---- sales data ----------------------------------------------------------------------------------


def sales_to_frames(lines: pl.DataFrame, currency: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sales-data lines (text columns, in upload order) as canonical orders and order lines."""
    lines = lines.with_columns(
        pl.col("quantity").cast(MONEY).cast(pl.Int64),
        pl.col("price").cast(MONEY),
        *[pl.col(c).cast(MONEY) for c in ("f_shipping",) if c in lines.columns],
    )
    # A line is known by its number where the upload carries one, else by its item.
    line_key = ["order", "i_line" if "i_line" in lines.columns else "item"]
    bought, taken_back = lines.filter(pl.col("quantity") >= 0), lines.filter(pl.col("quantity") < 0)
    order_lines = (
        bought.group_by(line_key, maintain_order=True)
        .agg(
            *([] if "item" in line_key else [pl.col("item").first()]),
            pl.col("quantity").sum().alias("qty_ordered"),
            pl.col("price").sum().alias("paid"),
        )
        .join(_taken_back(taken_back, line_key), on=line_key, how="left", maintain_order="left")
        .select(
            pl.col("order").alias("order_id"),
            (pl.col("i_line") if "i_line" in line_key else pl.int_range(pl.len()).over("order") + 1).alias("line_no"),
            pl.col("item").alias("sku"),
            "qty_ordered",
            pl.col("qty_cancelled").fill_null(0),
            pl.col("qty_returned").fill_null(0),
            pl.when(pl.col("qty_ordered") > 0).then(pl.col("paid") / pl.col("qty_ordered")).alias("unit_price"),
        )
    )
    order_columns = [c for c in SALES_ORDER if c in lines.columns]
    shipping = pl.col("f_shipping").drop_nulls().first() if "f_shipping" in lines.columns else pl.lit(0, MONEY)
    orders = bought.group_by("order", maintain_order=True).agg(
        *[pl.col(c).drop_nulls().first().alias(SALES_ORDER[c]) for c in order_columns],
        pl.col("timestamp").min().alias("placed_at"),
        (pl.col("price").sum() + shipping.fill_null(0)).alias("total"),
    )
    if "currency" not in orders.columns and currency:
        orders = orders.with_columns(currency=pl.lit(currency))
    return _as_text(orders.rename({"order": "order_id"})), _as_text(order_lines)


def _taken_back(lines: pl.DataFrame, line_key: list[str]) -> pl.DataFrame:
    """Cancelled and returned quantities per line, from the negative lines."""
    cancelled = pl.col("s_reason") == CANCELLED if "s_reason" in lines.columns else pl.lit(False)
    quantity = -pl.col("quantity")
    return lines.group_by(line_key).agg(
        quantity.filter(cancelled).sum().alias("qty_cancelled"),
        quantity.filter(~cancelled).sum().alias("qty_returned"),
    )


def sales_from_frames(orders: pl.DataFrame | None, lines: pl.DataFrame | None) -> pl.DataFrame:
    """Canonical orders and lines as the sales-data lines an integration uploads: purchases, then what
    was taken back. Shipping and other order-level charges ride on every line of the order."""
    if orders is None or lines is None:
        return pl.DataFrame(schema=dict.fromkeys(SALES_REQUIRED, pl.String))
    orders, lines = _as_text(orders), _as_text(lines)
    orders = orders.with_columns(pl.lit(None, pl.String).alias(c) for c in ("updated_at",) if c not in orders.columns)
    lines = lines.with_columns(
        pl.lit("0").alias(c) for c in ("qty_cancelled", "qty_returned") if c not in lines.columns
    ).with_columns(
        pl.col("line_no").cast(pl.Int64),
        pl.col("unit_price").cast(MONEY),
        *[pl.col(c).cast(pl.Int64).fill_null(0) for c in ("qty_ordered", "qty_cancelled", "qty_returned")],
    )
    items_total = lines.group_by("order_id").agg((pl.col("unit_price") * pl.col("qty_ordered")).sum().alias("_items"))
    heads = orders.join(items_total, on="order_id", how="left").select(
        "order_id",
        "placed_at",
        pl.coalesce("updated_at", "placed_at").alias("_taken_back_at"),
        (pl.col("total").cast(MONEY) - pl.col("_items").fill_null(0)).alias("f_shipping"),
        *[pl.col(dst).alias(src) for src, dst in SALES_ORDER.items() if dst in orders.columns],
    )
    # Sales data names the contact by `customer` or by `email`, never both.
    contact = "customer" if "customer" in heads.columns and heads["customer"].is_not_null().any() else "email"
    heads = heads.drop(*[c for c in ("customer", "email") if c != contact], strict=False)
    joined = lines.join(heads, on="order_id", how="left").sort("order_id", "line_no")
    common = [c for c in heads.columns if c not in ("order_id", "placed_at", "_taken_back_at", "f_shipping")]

    def sales_lines(quantity: str, timestamp: str, reason: str | None) -> pl.DataFrame:
        sign = -1 if reason else 1
        return joined.filter(pl.col(quantity) != 0 if reason else pl.lit(True)).select(
            pl.col("order_id").alias("order"),
            pl.col(timestamp).alias("timestamp"),
            pl.col("sku").alias("item"),
            (sign * pl.col(quantity)).cast(pl.String).alias("quantity"),
            (pl.col("unit_price") * pl.col(quantity) * sign).cast(pl.String).alias("price"),
            pl.col("line_no").cast(pl.String).alias("i_line"),
            pl.col("f_shipping").cast(pl.String),
            *common,
            pl.lit(reason, dtype=pl.String).alias("s_reason"),
        )

    return pl.concat(
        [
            sales_lines("qty_ordered", "placed_at", None),
            sales_lines("qty_cancelled", "_taken_back_at", CANCELLED),
            sales_lines("qty_returned", "_taken_back_at", RETURNED),
        ]
    )
