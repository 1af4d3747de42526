"""Emarsys contacts, catalogue rows and sales-data lines <-> canonical rows.

Contacts are objects keyed by field id ("1" first name, "2" last name, "3" email, "13" ZIP code, "14"
country, "31" opt-in: "1" in, "2" out). Custom fields have ids that differ per account, so every field id is
configurable (`field_ids` in the source's settings); the defaults below name the custom ones this project's
integration creates.

The product catalogue is the CSV Emarsys imports whole: the standard `item`, `title`, `link`, `available`,
`price` columns and custom `c_` columns for what the standard ones lack (the variant's style, colour and
size, the stock figure and its time).

Sales data is one CSV line per order line: `order`, `timestamp`, `item`, `quantity`, `price` (the line
total), `customer` and custom `s_` columns (channel, currency). Returns and cancellations are lines with a
negative quantity and price; `s_reason` says which. Emarsys keeps no order record, so orders and order
lines are derived from these lines: the order total is what was bought, the status follows from what was
taken back (`placed`, `partially_cancelled`, `cancelled`, `returned`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl

from driftwatch.entities import ENTITIES

DEFAULT_FIELD_IDS: dict[str, str] = {
    "first_name": "1",
    "last_name": "2",
    "email": "3",
    "postcode": "13",
    "country": "14",
    "email_consent": "31",
    "erp_customer_id": "10001",
    "sms_consent": "10002",
    "consent_updated_at": "10003",
    "lifetime_value": "10004",
    "order_count": "10005",
    "last_order_at": "10006",
    "updated_at": "10007",
}
OPT_IN = {"1": "true", "2": "false"}
OPT_IN_VALUES = {"true": 1, "false": 2}

CATALOGUE_COLUMNS = (
    "item", "title", "link", "available", "price", "c_style", "c_colour", "c_size", "c_currency",
    "c_updated_at", "c_stock", "c_stock_updated_at",
)  # fmt: skip
SALES_COLUMNS = ("order", "timestamp", "item", "quantity", "price", "customer", "s_channel", "s_currency", "s_reason")
CANCELLED, RETURNED = "cancelled", "returned"


def frame(entity_name: str, rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Rows of text values with exactly the entity's columns; the shared normaliser types them."""
    columns = list(ENTITIES[entity_name].columns)
    return pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], schema=dict.fromkeys(columns, pl.String))


def text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def field_ids(settings: Mapping[str, Any]) -> dict[str, str]:
    return {**DEFAULT_FIELD_IDS, **{k: str(v) for k, v in (settings.get("field_ids") or {}).items()}}


# ---- contacts ------------------------------------------------------------------------------------


def contact_to_row(contact: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    row = {column: text(contact.get(field_id)) for column, field_id in fields.items()}
    row["customer_id"] = text(contact["id"])
    consent = row.get("email_consent")
    row["email_consent"] = OPT_IN.get(consent, consent) if consent is not None else None
    return row


def contact_from_row(row: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """A canonical customer as Emarsys stores it: every value a string, opt-in as "1"/"2"."""
    contact = {"id": text(row["customer_id"])}
    for column, field_id in fields.items():
        value = text(row.get(column))
        if column == "email_consent" and value is not None:
            value = str(OPT_IN_VALUES[value.lower()])
        contact[field_id] = value
    return contact


# ---- catalogue -----------------------------------------------------------------------------------


def catalogue_to_rows(catalogue: pl.DataFrame, currency: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The catalogue CSV (every column read as text) as canonical products and inventory."""
    rows = catalogue.to_dicts()
    products = frame(
        "products",
        (
            {
                "sku": r.get("item"),
                "style": r.get("c_style"),
                "colour": r.get("c_colour"),
                "size": r.get("c_size"),
                "name": r.get("title"),
                "price": r.get("price"),
                "currency": r.get("c_currency") or currency,
                "status": "active" if (r.get("available") or "").lower() == "true" else "discontinued",
                "updated_at": r.get("c_updated_at"),
            }
            for r in rows
        ),
    )
    inventory = frame(
        "inventory",
        (
            {
                "sku": r.get("item"),
                "location": "*",
                "available": r.get("c_stock"),
                "updated_at": r.get("c_stock_updated_at"),
            }
            for r in rows
            if r.get("c_stock") not in (None, "")
        ),
    )
    return products, inventory


def catalogue_from_frames(products: pl.DataFrame | None, inventory: pl.DataFrame | None, link: str) -> pl.DataFrame:
    stock = {} if inventory is None else {text(r["sku"]): r for r in inventory.to_dicts()}
    rows = []
    for r in [] if products is None else products.to_dicts():
        sku = text(r["sku"])
        level = stock.get(sku, {})
        rows.append(
            {
                "item": sku,
                "title": text(r.get("name")),
                "link": f"{link}/{sku}",
                "available": "false" if text(r.get("status")) == "discontinued" else "true",
                "price": text(r.get("price")),
                "c_style": text(r.get("style")),
                "c_colour": text(r.get("colour")),
                "c_size": text(r.get("size")),
                "c_currency": text(r.get("currency")),
                "c_updated_at": text(r.get("updated_at")),
                "c_stock": text(level.get("available")),
                "c_stock_updated_at": text(level.get("updated_at")),
            }
        )
    return pl.DataFrame(rows, schema=dict.fromkeys(CATALOGUE_COLUMNS, pl.String))


# ---- sales data ----------------------------------------------------------------------------------


def sales_to_rows(lines: pl.DataFrame, currency: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sales-data lines (text columns, in upload order) as canonical orders and order lines."""
    orders: dict[str, dict[str, Any]] = {}
    order_lines: dict[str, dict[str, dict[str, Any]]] = {}
    for line in lines.to_dicts():
        order_id = line["order"]
        quantity = Decimal(line["quantity"])
        price = Decimal(line["price"])
        order = orders.setdefault(order_id, _new_order(line, currency))
        items = order_lines.setdefault(order_id, {})
        if quantity >= 0:
            order["total"] += price
            order["placed_at"] = min(order["placed_at"], line["timestamp"])
            items[line["item"]] = _new_line(order_id, len(items) + 1, line, quantity, price)
        else:
            taken_back = "qty_cancelled" if line.get("s_reason") == CANCELLED else "qty_returned"
            items.setdefault(line["item"], _new_line(order_id, len(items) + 1, line, Decimal(0), Decimal(0)))
            items[line["item"]][taken_back] -= quantity
    for order_id, order in orders.items():
        order["status"] = _status(order_lines[order_id].values())
    return (
        frame("orders", ({**o, "total": str(o["total"])} for o in orders.values())),
        frame("order_lines", (_line_text(line) for items in order_lines.values() for line in items.values())),
    )


def _new_order(line: Mapping[str, Any], currency: str | None) -> dict[str, Any]:
    return {
        "order_id": line["order"],
        "channel": line.get("s_channel"),
        "customer_id": line.get("customer"),
        "email": line.get("email"),
        "placed_at": line["timestamp"],
        "total": Decimal(0),
        "currency": line.get("s_currency") or currency,
    }


def _new_line(
    order_id: str, line_no: int, line: Mapping[str, Any], quantity: Decimal, price: Decimal
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "line_no": line_no,
        "sku": line["item"],
        "qty_ordered": quantity,
        "qty_cancelled": Decimal(0),
        "qty_returned": Decimal(0),
        "unit_price": price / quantity if quantity else None,
    }


def _status(lines: Iterable[dict[str, Any]]) -> str:
    lines = list(lines)
    ordered = sum(line["qty_ordered"] for line in lines)
    cancelled = sum(line["qty_cancelled"] for line in lines)
    if any(line["qty_returned"] for line in lines):
        return RETURNED
    if cancelled and cancelled >= ordered:
        return CANCELLED
    return "partially_cancelled" if cancelled else "placed"


def _line_text(line: dict[str, Any]) -> dict[str, Any]:
    return {k: None if v is None else format(v, "f") if isinstance(v, Decimal) else str(v) for k, v in line.items()}


def sales_from_frames(orders: pl.DataFrame | None, lines: pl.DataFrame | None) -> pl.DataFrame:
    """Canonical orders and lines as the sales-data lines an integration uploads: purchases, then returns."""
    heads = {} if orders is None else {text(o["order_id"]): o for o in orders.to_dicts()}
    sold, taken_back = [], []
    for line in (
        [] if lines is None else sorted(lines.to_dicts(), key=lambda r: (str(r["order_id"]), int(r["line_no"])))
    ):
        order = heads.get(text(line["order_id"]), {})
        unit_price = Decimal(str(line["unit_price"]))
        common = {
            "order": text(line["order_id"]),
            "item": text(line["sku"]),
            "customer": text(order.get("customer_id")),
            "s_channel": text(order.get("channel")),
            "s_currency": text(order.get("currency")),
        }
        placed, updated = text(order.get("placed_at")), text(order.get("updated_at")) or text(order.get("placed_at"))
        quantity = int(line.get("qty_ordered") or 0)
        sold.append({**common, "timestamp": placed, "quantity": str(quantity), "price": str(unit_price * quantity)})
        for reason, column in ((CANCELLED, "qty_cancelled"), (RETURNED, "qty_returned")):
            if qty := int(line.get(column) or 0):
                taken_back.append(
                    {
                        **common,
                        "timestamp": updated,
                        "quantity": str(-qty),
                        "price": str(-unit_price * qty),
                        "s_reason": reason,
                    }
                )
    return pl.DataFrame(sold + taken_back, schema=dict.fromkeys(SALES_COLUMNS, pl.String))
