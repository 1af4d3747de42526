"""Ometria records <-> canonical rows.

Record shapes follow Ometria's push schema (`@type`, `id`, contact `marketing_optin`, order `status` +
`is_valid` + `lineitems[]`, product `is_active`). Fields the push schema does not name but a read of the
account returns (a contact's lifetime figures, a record's `timestamp_updated`, a product's stock level) use
the names below; a product's stock lives in `properties`, Ometria's free-form object. An order's
storefront number (`external_id`) is its `web_id`.

Both directions live here: `*_to_rows` for pulls, `*_from_frame` for the simulator, so a round trip through
the simulator gives back the canonical rows it started from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import polars as pl

from driftwatch.connectors._json import text
from driftwatch.entities import ENTITIES

# Ometria keeps a cancelled order's revenue unless `is_valid` is false: such an order is not the
# canonical "cancelled", so it keeps a raw status of its own that the status mapping can flag.
CANCELLED = "cancelled"
CANCELLED_BUT_VALID = "cancelled:is_valid"

OPTIN = {"EXPLICITLY_OPTEDIN": "true", "EXPLICITLY_OPTEDOUT": "false", "NOT_SPECIFIED": None}
OPTIN_VALUES = {"true": "EXPLICITLY_OPTEDIN", "false": "EXPLICITLY_OPTEDOUT"}

# The canonical columns Ometria holds: a column it lacks is left out of the frame, so no check compares
# what Ometria cannot know (it keeps no shipped or cancelled quantity per line, no product variant codes).
HELD = {
    "customers": tuple(ENTITIES["customers"].columns),
    "orders": tuple(ENTITIES["orders"].columns),
    "order_lines": ("order_id", "line_no", "sku", "qty_ordered", "qty_returned", "unit_price"),
    "products": ("sku", "name", "price", "currency", "status", "updated_at"),
    "inventory": ("sku", "location", "available", "updated_at"),
}


def frame(entity_name: str, rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Rows of text values with the columns Ometria holds; the shared normaliser types them."""
    columns = HELD[entity_name]
    return pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], schema=dict.fromkeys(columns, pl.String))


# ---- pull: records -> canonical rows -------------------------------------------------------------


def marketing_optin(value: str | None) -> str | None:
    """A contact's `marketing_optin` as canonical text (NOT_SPECIFIED is no answer); an undocumented value
    stays as it is."""
    return OPTIN.get(value or "NOT_SPECIFIED", value)


# A drop of a contacts export carries marketing_optin as the API does.
DROP_DECODERS = {"customers": {"email_consent": marketing_optin}}


def contact_to_row(record: dict[str, Any]) -> dict[str, Any]:
    sms = (record.get("channels") or {}).get("sms") or {}
    return {
        "customer_id": text(record["id"]),
        "erp_customer_id": text(record.get("customer_id")),
        "email": text(record.get("email")),
        "email_consent": marketing_optin(record.get("marketing_optin")),
        "sms_consent": text(sms.get("allow_marketing")),
        "consent_updated_at": text(record.get("timestamp_subscribed") or record.get("timestamp_unsubscribed")),
        "first_name": text(record.get("firstname")),
        "last_name": text(record.get("lastname")),
        "postcode": text(record.get("postcode")),
        "country": text(record.get("country_id")),
        "lifetime_value": text(record.get("lifetime_value")),
        "order_count": text(record.get("number_of_orders")),
        "last_order_at": text(record.get("timestamp_last_order")),
        "merged_into": text(record.get("merged_into")),
        "updated_at": text(record.get("timestamp_updated")),
    }


def order_status(record: dict[str, Any]) -> str | None:
    status = record.get("status")
    if status == CANCELLED and record.get("is_valid") is not False:
        return CANCELLED_BUT_VALID
    return text(status)


def order_to_rows(record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    customer = record.get("customer") or {}
    order_id = text(record["id"])
    order = {
        "order_id": order_id,
        "external_id": text(record.get("web_id")),
        "channel": text(record.get("channel")),
        "customer_id": text(customer.get("id")),
        "email": text(customer.get("email")),
        "status": order_status(record),
        "placed_at": text(record.get("timestamp")),
        "updated_at": text(record.get("timestamp_updated")),
        "total": text(record.get("grand_total")),
        "currency": text(record.get("currency")),
    }
    lines = [
        {
            "order_id": order_id,
            "line_no": str(line_no),
            "sku": text(item.get("sku")),
            "qty_ordered": text(item.get("quantity")),
            "qty_returned": text(item.get("quantity_refunded")),
            "unit_price": text(item.get("unit_price")),
        }
        for line_no, item in enumerate(record.get("lineitems") or [], start=1)
    ]
    return order, lines


def product_to_rows(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    props = record.get("properties") or {}
    sku = text(record.get("sku") or record["id"])
    product = {
        "sku": sku,
        "name": text(record.get("title")),
        "price": text(record.get("price")),
        "currency": text(record.get("currency")),
        "status": "active" if record.get("is_active", True) else "discontinued",
        "updated_at": text(record.get("timestamp_updated")),
    }
    inventory = {
        "sku": sku,
        "location": "*",
        "available": text(props.get("stock_level")),
        "updated_at": text(props.get("stock_updated_at")),
    }
    return product, inventory


# ---- simulator: canonical frames -> records ------------------------------------------------------


def _rows(frame: pl.DataFrame | None) -> list[dict[str, Any]]:
    return [] if frame is None else frame.to_dicts()


def _number(value: Any) -> Decimal | int | None:
    if value is None or value == "":
        return None
    number = Decimal(str(value))
    return int(number) if number == number.to_integral_value() and "." not in str(value) else number


def _bool(value: Any) -> bool | None:
    return None if value is None else str(value).strip().lower() in ("true", "1", "t", "yes")


def _drop_none(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None and v != {}}


def contacts_from_frame(customers: pl.DataFrame | None) -> Iterator[dict[str, Any]]:
    for row in _rows(customers):
        consent = text(row.get("email_consent"))
        consent = None if consent is None else consent.lower()
        sms = _bool(row.get("sms_consent"))
        yield _drop_none(
            {
                "@type": "contact",
                "id": text(row["customer_id"]),
                "customer_id": text(row.get("erp_customer_id")),
                "email": text(row.get("email")),
                "marketing_optin": OPTIN_VALUES.get(consent or "", "NOT_SPECIFIED"),
                ("timestamp_subscribed" if consent == "true" else "timestamp_unsubscribed"): text(
                    row.get("consent_updated_at")
                ),
                "channels": {} if sms is None else {"sms": {"allow_marketing": sms}},
                "firstname": text(row.get("first_name")),
                "lastname": text(row.get("last_name")),
                "postcode": text(row.get("postcode")),
                "country_id": text(row.get("country")),
                "lifetime_value": _number(row.get("lifetime_value")),
                "number_of_orders": _number(row.get("order_count")),
                "timestamp_last_order": text(row.get("last_order_at")),
                "merged_into": text(row.get("merged_into")),
                "timestamp_updated": text(row.get("updated_at")),
            }
        )


def orders_from_frames(orders: pl.DataFrame | None, lines: pl.DataFrame | None) -> Iterator[dict[str, Any]]:
    lines_by_order: dict[str, list[dict[str, Any]]] = {}
    for line in sorted(_rows(lines), key=lambda r: int(r["line_no"])):
        lines_by_order.setdefault(text(line["order_id"]) or "", []).append(line)
    for row in _rows(orders):
        order_id = text(row["order_id"])
        status = text(row.get("status"))
        yield _drop_none(
            {
                "@type": "order",
                "id": order_id,
                "web_id": text(row.get("external_id")),
                "timestamp": text(row.get("placed_at")),
                "timestamp_updated": text(row.get("updated_at")),
                "grand_total": _number(row.get("total")),
                "currency": text(row.get("currency")),
                "status": CANCELLED if status == CANCELLED_BUT_VALID else status,
                "is_valid": status != CANCELLED,
                "channel": text(row.get("channel")),
                "customer": _drop_none({"id": text(row.get("customer_id")), "email": text(row.get("email"))}),
                "lineitems": [_lineitem(line) for line in lines_by_order.get(order_id or "", [])],
            }
        )


def _lineitem(line: dict[str, Any]) -> dict[str, Any]:
    return _drop_none(
        {
            "sku": text(line.get("sku")),
            "quantity": _number(line.get("qty_ordered")),
            "quantity_refunded": _number(line.get("qty_returned")),
            "unit_price": _number(line.get("unit_price")),
        }
    )


def products_from_frames(products: pl.DataFrame | None, inventory: pl.DataFrame | None) -> Iterator[dict[str, Any]]:
    stock = {text(r["sku"]): r for r in _rows(inventory) if text(r.get("location")) in ("*", None)}
    for row in _rows(products):
        sku = text(row["sku"])
        level = stock.get(sku, {})
        yield _drop_none(
            {
                "@type": "product",
                "id": sku,
                "sku": sku,
                "title": text(row.get("name")),
                "price": _number(row.get("price")),
                "currency": text(row.get("currency")),
                "is_active": text(row.get("status")) != "discontinued",
                "is_variant": True,
                "timestamp_updated": text(row.get("updated_at")),
                "properties": _drop_none(
                    {
                        "stock_level": _number(level.get("available")),
                        "stock_updated_at": text(level.get("updated_at")),
                    }
                ),
            }
        )
