"""Mirakl seller API records <-> canonical rows, both directions.

Pull: OF21 offers become `products` and `inventory` (one stock figure per offer, location "*"); OR11 orders
become `orders`, `order_lines` and `shipments`; TL02 transaction lines become `payout_lines`.
Serve (the simulator): canonical rows become the same JSON shapes, so a round trip gives the rows back.

Rows are dicts of text (or None): the shared normaliser turns them into canonical dtypes. Money arrives as
Decimal because the client parses JSON numbers with `parse_float=Decimal`; it leaves here as exact text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from driftwatch.connectors._json import text

Record = Mapping[str, Any]
Row = dict[str, str | None]

ALL_STOCK_LOCATIONS = "*"
MARKETPLACE_CHANNEL = "mirakl"

# The canonical columns Mirakl fills, per entity. OF21 carries no update date, so offers have none.
COLUMNS: dict[str, tuple[str, ...]] = {
    "products": ("sku", "style", "colour", "size", "name", "price", "currency", "status"),
    "inventory": ("sku", "location", "available"),
    "orders": (
        "order_id",
        "external_id",
        "channel",
        "customer_id",
        "status",
        "placed_at",
        "updated_at",
        "total",
        "currency",
    ),
    "order_lines": (
        "order_id",
        "line_no",
        "sku",
        "qty_ordered",
        "qty_shipped",
        "qty_cancelled",
        "qty_returned",
        "unit_price",
    ),
    "shipments": ("shipment_id", "order_id", "carrier", "tracking_number", "shipped_at"),
    "payout_lines": ("line_id", "payout_id", "external_id", "line_type", "amount", "currency", "transaction_date"),
}

# An offer that is inactive only for want of stock is still listed: it is not discontinued.
_STOCK_INACTIVITY = frozenset({"ZERO_QUANTITY", "AVAILABLE_QUANTITY_LESS_THAN_MIN_ORDER_QUANTITY"})

# TL02 transaction types -> canonical payout line types. Tax lines follow the amount they tax.
# A type not listed here (Mirakl adds new ones) is kept raw, so the normaliser quarantines the line by name.
LINE_TYPES: dict[str, str] = {
    "ORDER_AMOUNT": "order_amount",
    "ORDER_AMOUNT_TAX": "order_amount",
    "ORDER_SHIPPING_AMOUNT": "shipping",
    "ORDER_SHIPPING_AMOUNT_TAX": "shipping",
    "COMMISSION_FEE": "commission",
    "COMMISSION_VAT": "commission",
    "REFUND_ORDER_AMOUNT": "refund",
    "REFUND_ORDER_AMOUNT_TAX": "refund",
    "REFUND_ORDER_SHIPPING_AMOUNT": "refund",
    "REFUND_ORDER_SHIPPING_AMOUNT_TAX": "refund",
    "REFUND_COMMISSION_FEE": "refund_commission",
    "REFUND_COMMISSION_VAT": "refund_commission",
    "SUBSCRIPTION_FEE": "fee",
    "SUBSCRIPTION_VAT": "fee",
    "ORDER_FEE_AMOUNT": "fee",
    "SELLER_FEE_ON_ORDER": "fee",
    "SELLER_FEE_ON_ORDER_TAX": "fee",
    "SELLER_PENALTY_FEE": "fee",
    "SELLER_PENALTY_FEE_TAX": "fee",
    "INVOICEABLE_ONE_OFF_DEBIT": "fee",
    "INVOICEABLE_ONE_OFF_DEBIT_TAX": "fee",
    "MANUAL_CREDIT": "adjustment",
    "MANUAL_CREDIT_VAT": "adjustment",
    "MANUAL_INVOICE": "adjustment",
    "MANUAL_INVOICE_VAT": "adjustment",
    "INVOICEABLE_ONE_OFF_CREDIT": "adjustment",
    "INVOICEABLE_ONE_OFF_CREDIT_TAX": "adjustment",
    "RESERVE_FUNDING": "adjustment",
    "RESERVE_SETTLEMENT": "adjustment",
    "PAYMENT": "payment",
}
# The TL02 types whose amount the seller's balance sees the other way round: the payout debits the balance
# by what it pays out, and a canonical `payment` line is the amount paid out.
PAID_OUT = frozenset({"PAYMENT"})
# The simulator's choice of TL02 type for each canonical line type.
TRANSACTION_TYPES: dict[str, str] = {
    "order_amount": "ORDER_AMOUNT",
    "shipping": "ORDER_SHIPPING_AMOUNT",
    "commission": "COMMISSION_FEE",
    "refund": "REFUND_ORDER_AMOUNT",
    "refund_commission": "REFUND_COMMISSION_FEE",
    "fee": "SUBSCRIPTION_FEE",
    "adjustment": "MANUAL_CREDIT",
    "payment": "PAYMENT",
}


# ---------------------------------------------------------------- pull: platform -> canonical


def offer_to_product(offer: Record) -> Row:
    reasons = set(offer.get("inactivity_reasons") or ())
    listed = bool(offer.get("active")) or (bool(reasons) and reasons <= _STOCK_INACTIVITY)
    extra = _additional_fields(offer.get("offer_additional_fields"))
    return {
        "sku": offer["shop_sku"],
        "style": extra.get("style"),
        "colour": extra.get("colour"),
        "size": extra.get("size"),
        "name": offer.get("product_title"),
        "price": text(offer.get("price")),
        "currency": offer.get("currency_iso_code"),
        "status": "active" if listed else "discontinued",
    }


def export_line_to_product(line: Record, at: datetime) -> Row:
    """An OF54 CSV line (custom fields as columns named by code) as `offer_to_product` reads the same offer
    from OF21, but without the product's title, which the export does not carry. The export gives no
    inactivity reasons: an inactive offer within its availability period whose quantity is 0 or below its
    minimum order is inactive for want of stock (still listed), any other inactive offer is discontinued."""
    quantity = int(line.get("quantity") or 0)
    minimum = int(line.get("min-order-quantity") or 0)
    start, end = line.get("available-start-date"), line.get("available-end-date")
    in_period = (not start or parse_timestamp(start) <= at) and (not end or at < parse_timestamp(end))
    listed = line.get("active") == "true" or (in_period and (quantity == 0 or quantity < minimum))
    return {
        "sku": line["shop-sku"],
        "style": line.get("style"),
        "colour": line.get("colour"),
        "size": line.get("size"),
        "name": None,
        "price": line.get("price"),
        "currency": line.get("currency-iso-code"),
        "status": "active" if listed else "discontinued",
    }


def export_line_to_inventory(line: Record) -> Row:
    return {"sku": line["shop-sku"], "location": ALL_STOCK_LOCATIONS, "available": line.get("quantity")}


def offer_to_inventory(offer: Record) -> Row:
    # OF21 publishes one sellable figure per offer; the warehouse split, when present, sums to it.
    return {"sku": offer["shop_sku"], "location": ALL_STOCK_LOCATIONS, "available": text(offer.get("quantity"))}


def order_key(order: Record) -> str:
    """The canonical order_id: the ERP number the integration stored on the order, else Mirakl's own id."""
    return (order.get("references") or {}).get("order_reference_for_seller") or order["order_id"]


def order_to_order(order: Record, channel: str = MARKETPLACE_CHANNEL) -> Row:
    return {
        "order_id": order_key(order),
        "external_id": order["order_id"],
        # The retailer's sales channel is the marketplace; Mirakl's `channel` is the operator's sub-channel.
        "channel": channel,
        # No email: Mirakl hides the customer's address; `customer_notification_email` is a relay.
        "customer_id": (order.get("customer") or {}).get("customer_id"),
        "status": order.get("order_state"),  # raw, new values included: the audit maps them
        "placed_at": order.get("created_date"),
        "updated_at": order.get("last_updated_date"),
        "total": text(order.get("total_price")),
        "currency": order.get("currency_iso_code"),
    }


def order_to_lines(order: Record) -> list[Row]:
    return [_order_line(order_key(order), line) for line in order.get("order_lines") or ()]


def _order_line(order_id: str, line: Record) -> Row:
    ordered = int(line.get("quantity") or 0)
    cancelled = sum(int(c.get("quantity") or 0) for c in line.get("cancelations") or ())
    returned = sum(int(r.get("quantity") or 0) for r in line.get("refunds") or ())
    # A Mirakl line ships whole: its shipped date is set once what was not cancelled has left.
    shipped = ordered - cancelled if line.get("shipped_date") else 0
    return {
        "order_id": order_id,
        "line_no": text(line.get("order_line_index")),
        "sku": line.get("offer_sku"),
        "qty_ordered": str(ordered),
        "qty_shipped": str(shipped),
        "qty_cancelled": str(cancelled),
        "qty_returned": str(returned),
        "unit_price": text(line.get("price_unit")),
    }


def order_to_shipment(order: Record, carrier_codes_by_label: Mapping[str, str]) -> Row | None:
    """The order's shipment (the carrier and tracking the seller gave), or None before there is any.

    An unregistered carrier comes back as a name only (`shipping_company`); SH21 turns a known name into its
    code, and an unknown one stays as given so the audit can report it as unmapped.
    """
    company = order.get("shipping_company")
    carrier = order.get("shipping_carrier_code") or carrier_codes_by_label.get(company or "", company)
    tracking = order.get("shipping_tracking")
    if not (carrier or tracking):
        return None
    shipped = [line["shipped_date"] for line in order.get("order_lines") or () if line.get("shipped_date")]
    return {
        "shipment_id": order["order_id"],
        "order_id": order_key(order),
        "carrier": carrier,
        "tracking_number": tracking,
        "shipped_at": max(shipped, key=parse_timestamp) if shipped else None,
    }


def transaction_to_payout_line(transaction: Record, document_numbers: Mapping[str, str]) -> Row:
    """A TL02 line, signed as the seller's balance sees it; a PAYMENT line is the amount paid out.

    `document_numbers` maps an accounting document id to its number (from IV01), for lines that carry only
    the id.
    """
    raw_type = transaction.get("type") or ""
    line_type = LINE_TYPES.get(raw_type, raw_type)
    amount = transaction.get("amount")
    if raw_type in PAID_OUT and amount is not None:
        amount = -Decimal(amount)
    document_id = transaction.get("accounting_document_id")
    entities = transaction.get("entities") or {}
    return {
        "line_id": transaction["id"],
        "payout_id": transaction.get("accounting_document_number") or document_numbers.get(document_id or ""),
        "external_id": (entities.get("order") or {}).get("id"),
        "line_type": line_type,
        "amount": text(amount),
        "currency": transaction.get("currency_iso_code"),
        "transaction_date": transaction.get("date_created"),
    }


def invoice_number(invoice: Record) -> str:
    """An accounting document's number once issued, else its draft id."""
    number = invoice.get("invoice_id")
    return str(number) if number is not None else invoice["id"]


def carriers_by_label(carriers: Iterable[Record]) -> dict[str, str]:
    return {c["label"]: c["code"] for c in carriers if c.get("label") and c.get("code")}


def _additional_fields(fields: Iterable[Record] | None) -> dict[str, str]:
    return {f["code"]: str(f["value"]) for f in fields or () if f.get("value") is not None}


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------- serve: canonical -> platform


def product_to_offer(offer_id: int, product: Record, inventory: Record | None) -> dict[str, Any]:
    quantity = int(inventory["available"]) if inventory and inventory.get("available") is not None else 0
    discontinued = product.get("status") == "discontinued"
    reasons = ["NOT_IN_AVAILABILITY_PERIOD"] if discontinued else ["ZERO_QUANTITY"] if quantity == 0 else []
    return {
        "offer_id": offer_id,
        "shop_sku": product["sku"],
        "product_sku": product["sku"],
        "product_title": product.get("name"),
        "price": product.get("price"),
        "total_price": product.get("price"),
        "currency_iso_code": product.get("currency"),
        "quantity": quantity,
        "active": not reasons,
        "inactivity_reasons": reasons,
        "state_code": "11",
        "offer_additional_fields": [
            {"code": code, "type": "STRING", "value": product[code]}
            for code in ("style", "colour", "size")
            if product.get(code) is not None
        ],
    }


def order_to_record(order: Record, lines: Iterable[Record], shipment: Record | None) -> dict[str, Any]:
    """An OR11 order; a canonical order_id other than the Mirakl id is the ERP number stored on it."""
    mirakl_id = order.get("external_id") or order["order_id"]
    shipped_at = iso((shipment or {}).get("shipped_at") or order.get("updated_at"))
    erp_number = order["order_id"] if order["order_id"] != mirakl_id else None
    return {
        "order_id": mirakl_id,
        "commercial_id": mirakl_id.rsplit("-", 1)[0],
        "references": {"order_reference_for_seller": erp_number} if erp_number else {},
        "channel": {"code": "DEFAULT", "label": "Default channel"},
        "customer": {"customer_id": order.get("customer_id"), "firstname": "", "lastname": ""},
        "customer_notification_email": f"{order.get('customer_id')}@relay.marketplace.example",
        "order_state": order.get("status"),
        "created_date": iso(order.get("placed_at")),
        "last_updated_date": iso(order.get("updated_at")),
        "total_price": order.get("total"),
        "currency_iso_code": order.get("currency"),
        "shipping_carrier_code": shipment.get("carrier") if shipment else None,
        "shipping_tracking": shipment.get("tracking_number") if shipment else None,
        "order_lines": [_line_record(mirakl_id, line, shipped_at) for line in lines],
    }


def _line_record(mirakl_id: str, line: Record, shipped_at: str | None) -> dict[str, Any]:
    # A line with anything shipped is shipped whole in Mirakl's model, on the shipment's date.
    index = int(line["line_no"])
    cancelled = int(line.get("qty_cancelled") or 0)
    returned = int(line.get("qty_returned") or 0)
    shipped = int(line.get("qty_shipped") or 0) > 0
    return {
        "order_line_id": f"{mirakl_id}-{index}",
        "order_line_index": index,
        "offer_sku": line.get("sku"),
        "quantity": int(line.get("qty_ordered") or 0),
        "price_unit": line.get("unit_price"),
        "shipped_date": shipped_at if shipped else None,
        "cancelations": [{"id": f"{mirakl_id}-{index}-C", "quantity": cancelled}] if cancelled else [],
        "refunds": [{"id": f"{mirakl_id}-{index}-R", "quantity": returned}] if returned else [],
    }


def payout_line_to_transaction(line: Record) -> dict[str, Any]:
    line_type = line.get("line_type")
    amount = line.get("amount")
    if line_type == "payment" and amount is not None:
        amount = -Decimal(amount)
    when = iso(line.get("transaction_date"))
    return {
        "id": line["line_id"],
        "type": TRANSACTION_TYPES.get(line_type or "", line_type),
        "amount": amount,
        "currency_iso_code": line.get("currency"),
        "date_created": when,
        "last_updated": when,
        "accounting_document_number": line.get("payout_id"),
        "accounting_document_id": line.get("payout_id"),
        "entities": {"order": {"id": line["external_id"]}} if line.get("external_id") else {},
    }


def iso(value: datetime | str | None) -> str | None:
    """A timestamp as Mirakl writes it (ISO 8601, UTC, `Z`); text is passed through."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value
