"""commercetools resources <-> canonical rows, in both directions.

Pull side: `customer_row`, `order_rows`, `inventory_row`, `product_rows` turn one API resource into
canonical rows (plain Python values; `driftwatch.normalize.coerce` gives them canonical dtypes).
Simulator side: `customer_resources`, `order_resources`, `inventory_resources`, `product_resources`
turn canonical frames into the resources the HTTP API serves, so that a round trip gives back the
same records.

What commercetools has no field for is kept in Custom Fields (`custom.fields`), under the names in
`CUSTOM_FIELDS` unless the source's settings rename them (`[sources.commercetools.custom_fields]`).
Conventions:
- customers: customer_id is the Customer `id`; erp_customer_id is `externalId` (the field commercetools
  documents for ERP/CRM ids); postcode and country come from the default shipping address (else the first).
- orders: external_id is the storefront's `orderNumber` (which the ERP order carries too); order_id is
  the ERP's number that the integration stored on the order (custom field `erpOrderNumber`), else the
  orderNumber, else the Order `id` (an order nobody numbered must still be audited);
  channel is the Store key; status is the compound raw value "orderState/shipmentState" (just
  "orderState" while there is no shipmentState). Note the two enums spell cancel differently
  (`Cancelled` vs `Canceled`): raw values are kept as the API says them.
- order_lines: line_no is the line item's position (1-based); qty_shipped sums the deliveries;
  qty_returned sums return items that physically came back; qty_cancelled is a line item custom field.
- returns: one row per ReturnItem; status is "shipmentState/paymentState"; amount is a custom field.
- shipments: the order's `shippingInfo.deliveries`: one row per parcel (shipment_id is the Parcel `id`,
  carrier and tracking_number its `trackingData.carrier` / `trackingId`), and one row for a delivery with
  no parcel (shipment_id is the Delivery `id`: dispatched, with no tracking). shipped_at is the parcel's (or
  delivery's) `createdAt`. Return parcels (`trackingData.isReturn`) are not dispatches and are left out.
- inventory: location is the supply channel's key, "*" for an entry without a supply channel. on_hand is
  `quantityOnStock`, available `availableQuantity`, which commercetools documents as quantityOnStock less
  what carts and orders reserve: that reservation is the entry's `allocated` (`reserved`).
- products: one row per variant of a current product projection; a variant without a SKU cannot be
  audited (the SKU is optional in commercetools) and is skipped.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from driftwatch.connectors._json import text
from driftwatch.entities import ENTITIES

Resource = dict[str, Any]
Row = dict[str, Any]

CUSTOM_FIELDS: dict[str, str] = {
    # customers
    "email_consent": "emailConsent",
    "sms_consent": "smsConsent",
    "consent_updated_at": "consentUpdatedAt",
    "lifetime_value": "lifetimeValue",
    "order_count": "orderCount",
    "last_order_at": "lastOrderAt",
    "merged_into": "mergedInto",
    # orders, line items and return items
    "erp_order_number": "erpOrderNumber",
    "qty_cancelled": "cancelledQuantity",
    "amount": "amount",
}
ATTRIBUTES = {"style": "style", "colour": "colour", "size": "size", "status": "status"}

# Return item shipment states in which the goods are back with the retailer.
RETURNED_STATES = frozenset({"Returned", "BackInStock", "Unusable"})
NO_LOCATION = "*"
_ID_NAMESPACE = uuid.UUID("6f1d2c1e-4b7a-4c1e-9d0e-64726966746e")


class Names:
    """Custom field and attribute names, defaults overridden by the source's settings."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        settings = settings or {}
        self.fields = {**CUSTOM_FIELDS, **settings.get("custom_fields", {})}
        self.attributes = {**ATTRIBUTES, **settings.get("attributes", {})}
        self.locale: str = settings.get("locale", "en")


def stable_id(*parts: object) -> str:
    """A deterministic UUID for a resource that the canonical data gives no id for."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(map(str, parts))))


# ---------------------------------------------------------------- money and time


def money_value(money: Mapping[str, Any] | None) -> Decimal | None:
    """The exact amount of a commercetools Money (cent or high precision)."""
    if not money:
        return None
    scale = Decimal(10) ** int(money.get("fractionDigits", 2))
    if money.get("type") == "highPrecision":
        return Decimal(int(money["preciseAmount"])) / scale
    return Decimal(int(money["centAmount"])) / scale


def to_money(amount: Decimal | None, currency: str | None) -> Resource | None:
    """A Money object; amounts with sub-cent digits need the high-precision form to stay exact."""
    if amount is None or currency is None:
        return None
    cents = amount * 100
    if cents == cents.to_integral_value():
        return {"type": "centPrecision", "currencyCode": currency, "centAmount": int(cents), "fractionDigits": 2}
    precise = amount.scaleb(4)
    return {
        "type": "highPrecision",
        "currencyCode": currency,
        "centAmount": int(cents.to_integral_value()),
        "preciseAmount": int(precise),
        "fractionDigits": 4,
    }


def to_timestamp(value: datetime | None) -> str | None:
    """commercetools' ISO 8601 form: UTC, milliseconds, 'Z' (microseconds kept when present)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


def _money_text(money: Mapping[str, Any] | None) -> str | None:
    value = money_value(money)
    return None if value is None else str(value)


def _custom(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return (resource.get("custom") or {}).get("fields") or {}


def _custom_block(fields: Mapping[str, Any], type_key: str) -> Resource | None:
    present = {name: value for name, value in fields.items() if value is not None}
    if not present:
        return None
    return {"type": {"typeId": "type", "key": type_key}, "fields": present}


def _localized(value: Mapping[str, str] | None, locale: str) -> str | None:
    if not value:
        return None
    return value.get(locale) or next(iter(value.values()))


def _compound(first: str | None, second: str | None) -> str | None:
    if first is None:
        return None
    return f"{first}/{second}" if second else first


def _split(status: str | None) -> tuple[str | None, str | None]:
    if status is None:
        return None, None
    first, _, second = status.partition("/")
    return first, second or None


# ---------------------------------------------------------------- pull: resource -> rows


def customer_row(customer: Mapping[str, Any], names: Names) -> Row:
    custom = _custom(customer)
    address = _customer_address(customer)
    field = names.fields
    return {
        "customer_id": customer["id"],
        "erp_customer_id": customer.get("externalId"),
        "email": customer.get("email"),
        "email_consent": custom.get(field["email_consent"]),
        "sms_consent": custom.get(field["sms_consent"]),
        "consent_updated_at": custom.get(field["consent_updated_at"]),
        "first_name": customer.get("firstName"),
        "last_name": customer.get("lastName"),
        "postcode": address.get("postalCode"),
        "country": address.get("country"),
        "lifetime_value": _money_text(custom.get(field["lifetime_value"])),
        "order_count": custom.get(field["order_count"]),
        "last_order_at": custom.get(field["last_order_at"]),
        "merged_into": custom.get(field["merged_into"]),
        "updated_at": customer.get("lastModifiedAt"),
    }


def _customer_address(customer: Mapping[str, Any]) -> Mapping[str, Any]:
    addresses = customer.get("addresses") or []
    default_id = customer.get("defaultShippingAddressId")
    chosen = [a for a in addresses if a.get("id") == default_id] or addresses
    return chosen[0] if chosen else {}


def order_rows(order: Mapping[str, Any], names: Names) -> tuple[Row, list[Row], list[Row]]:
    """The order, its lines and its return items."""
    order_id = _order_id(order, names)
    total = order.get("totalPrice") or {}
    head = {
        "order_id": order_id,
        "external_id": order.get("orderNumber"),
        "channel": (order.get("store") or {}).get("key"),
        "customer_id": order.get("customerId"),
        "email": order.get("customerEmail"),
        "status": _compound(order.get("orderState"), order.get("shipmentState")),
        "placed_at": order.get("createdAt"),
        "updated_at": order.get("lastModifiedAt"),
        "total": _money_text(total),
        "currency": total.get("currencyCode"),
    }
    items = order.get("lineItems") or []
    shipped = _delivered_quantities(order)
    returned = _returned_quantities(order)
    lines = [
        {
            "order_id": order_id,
            "line_no": position,
            "sku": (item.get("variant") or {}).get("sku"),
            "qty_ordered": item.get("quantity"),
            "qty_shipped": shipped.get(item["id"], 0),
            "qty_cancelled": _custom(item).get(names.fields["qty_cancelled"]),
            "qty_returned": returned.get(item["id"], 0),
            "unit_price": _money_text((item.get("price") or {}).get("value")),
        }
        for position, item in enumerate(items, start=1)
    ]
    skus = {item["id"]: (item.get("variant") or {}).get("sku") for item in items}
    returns = [
        {
            "return_id": ret["id"],
            "order_id": order_id,
            "sku": skus.get(ret.get("lineItemId")),
            "qty": ret.get("quantity"),
            "amount": _money_text(_custom(ret).get(names.fields["amount"])),
            "status": _compound(ret.get("shipmentState"), ret.get("paymentState")),
            "processed_at": info.get("returnDate") or ret.get("createdAt"),
        }
        for info in order.get("returnInfo") or []
        for ret in info.get("items") or []
    ]
    return head, lines, returns


def order_shipments(order: Mapping[str, Any], names: Names) -> list[Row]:
    """The order's dispatches: a row per parcel, or per delivery that has none."""
    order_id = _order_id(order, names)
    rows = []
    for delivery in (order.get("shippingInfo") or {}).get("deliveries") or []:
        parcels = delivery.get("parcels") or []
        for parcel in parcels:
            tracking = parcel.get("trackingData") or {}
            if tracking.get("isReturn"):
                continue
            rows.append(
                _shipment(parcel["id"], order_id, tracking, parcel.get("createdAt") or delivery.get("createdAt"))
            )
        if not parcels:
            rows.append(_shipment(delivery["id"], order_id, {}, delivery.get("createdAt")))
    return rows


def _shipment(shipment_id: str, order_id: str, tracking: Mapping[str, Any], created_at: str | None) -> Row:
    return {
        "shipment_id": shipment_id,
        "order_id": order_id,
        "carrier": tracking.get("carrier"),
        "tracking_number": tracking.get("trackingId"),
        "shipped_at": created_at,
    }


def _order_id(order: Mapping[str, Any], names: Names) -> str:
    return _custom(order).get(names.fields["erp_order_number"]) or order.get("orderNumber") or order["id"]


def _delivered_quantities(order: Mapping[str, Any]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for delivery in (order.get("shippingInfo") or {}).get("deliveries") or []:
        for item in delivery.get("items") or []:
            totals[item["id"]] += int(item["quantity"])
    return totals


def _returned_quantities(order: Mapping[str, Any]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for info in order.get("returnInfo") or []:
        for ret in info.get("items") or []:
            if ret.get("lineItemId") and ret.get("shipmentState") in RETURNED_STATES:
                totals[ret["lineItemId"]] += int(ret["quantity"])
    return totals


def inventory_row(entry: Mapping[str, Any]) -> Row:
    channel = entry.get("supplyChannel")
    return {
        "sku": entry.get("sku"),
        "location": _channel_key(channel) if channel else NO_LOCATION,
        "on_hand": entry.get("quantityOnStock"),
        "allocated": reserved(entry.get("quantityOnStock"), entry.get("availableQuantity")),
        "available": entry.get("availableQuantity"),
        "updated_at": entry.get("lastModifiedAt"),
    }


def reserved(on_stock: Any, available: Any) -> int | None:
    """What carts and orders hold of an inventory entry: quantityOnStock less availableQuantity (never
    below 0); None where either is unknown."""
    try:
        return max(0, int(on_stock) - int(available))
    except (TypeError, ValueError):
        return None


def drop_inventory(frame: pl.DataFrame) -> pl.DataFrame:
    """A drop of inventory entries (on_hand = quantityOnStock, available = availableQuantity) without an
    `allocated` column holds its reservations all the same: read as a pull reads them."""
    if "allocated" in frame.columns or not {"on_hand", "available"} <= set(frame.columns):
        return frame
    on_stock, available = (
        pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False) for c in ("on_hand", "available")
    )
    held = pl.when(on_stock > available).then(on_stock - available).otherwise(0)
    return frame.with_columns(
        pl.when(on_stock.is_not_null() & available.is_not_null()).then(held).cast(pl.String).alias("allocated")
    )


def _channel_key(channel: Mapping[str, Any]) -> str:
    # Only an expanded reference carries the key; the id is the next best identity.
    return (channel.get("obj") or {}).get("key") or channel["id"]


def product_rows(projection: Mapping[str, Any], names: Names, currency: str | None = None) -> list[Row]:
    """One row per variant that has a SKU."""
    variants = [projection.get("masterVariant") or {}, *(projection.get("variants") or [])]
    name = _localized(projection.get("name"), names.locale)
    return [
        _variant_row(variant, name, projection.get("lastModifiedAt"), names, currency)
        for variant in variants
        if variant.get("sku")
    ]


def _variant_row(
    variant: Mapping[str, Any], name: str | None, updated_at: str | None, names: Names, currency: str | None
) -> Row:
    attributes = {a["name"]: a.get("value") for a in variant.get("attributes") or []}
    attr = names.attributes
    price = _pick_price(variant.get("prices") or [], currency)
    return {
        "sku": variant["sku"],
        "style": _attribute_text(attributes.get(attr["style"]), names.locale),
        "colour": _attribute_text(attributes.get(attr["colour"]), names.locale),
        "size": _attribute_text(attributes.get(attr["size"]), names.locale),
        "name": name,
        "price": _money_text(price),
        "currency": price.get("currencyCode") if price else None,
        # A current projection is published, so sellable unless the catalogue marks it otherwise.
        "status": _attribute_text(attributes.get(attr["status"]), names.locale) or "active",
        "updated_at": updated_at,
    }


def _pick_price(prices: list[Mapping[str, Any]], currency: str | None) -> Mapping[str, Any] | None:
    values = [p["value"] for p in prices if p.get("value")]
    if currency:
        values = [v for v in values if v.get("currencyCode") == currency]
    return values[0] if values else None


def _attribute_text(value: Any, locale: str) -> str | None:
    """Enum attributes come as {key, label}, localized text as {locale: text}, plain text as a string."""
    if isinstance(value, Mapping):
        return value["key"] if "key" in value else _localized(value, locale)
    return None if value is None else str(value)


# ---------------------------------------------------------------- simulator: frames -> resources


def _records(frame: pl.DataFrame | None) -> list[Row]:
    return [] if frame is None else frame.to_dicts()


def customer_resources(customers: pl.DataFrame, names: Names, currency: str = "EUR") -> list[Resource]:
    field = names.fields
    resources = []
    for row in _records(customers):
        address_id = stable_id("address", row["customer_id"])
        has_address = row["postcode"] is not None or row["country"] is not None
        custom = {
            field["email_consent"]: row["email_consent"],
            field["sms_consent"]: row["sms_consent"],
            field["consent_updated_at"]: to_timestamp(row["consent_updated_at"]),
            field["lifetime_value"]: to_money(row["lifetime_value"], currency),
            field["order_count"]: row["order_count"],
            field["last_order_at"]: to_timestamp(row["last_order_at"]),
            field["merged_into"]: row["merged_into"],
        }
        resources.append(
            _drop_none(
                {
                    "id": row["customer_id"],
                    "version": 1,
                    "externalId": row["erp_customer_id"],
                    "email": row["email"],
                    "firstName": row["first_name"],
                    "lastName": row["last_name"],
                    "addresses": (
                        [_drop_none({"id": address_id, "postalCode": row["postcode"], "country": row["country"]})]
                        if has_address
                        else []
                    ),
                    "defaultShippingAddressId": address_id if has_address else None,
                    "isEmailVerified": True,
                    "authenticationMode": "Password",
                    "custom": _custom_block(custom, "customer-fields"),
                    "createdAt": to_timestamp(row["updated_at"]),
                    "lastModifiedAt": to_timestamp(row["updated_at"]),
                }
            )
        )
    return resources


def order_resources(
    orders: pl.DataFrame,
    lines: pl.DataFrame | None,
    returns: pl.DataFrame | None,
    names: Names,
    shipments: pl.DataFrame | None = None,
) -> list[Resource]:
    lines_by_order = _group(_records(lines), "order_id")
    returns_by_order = _group(_records(returns), "order_id")
    shipments_by_order = _group(_records(shipments), "order_id")
    resources = []
    for row in _records(orders):
        order_lines = sorted(lines_by_order.get(row["order_id"], []), key=lambda line: line["line_no"])
        dispatches = sorted(
            shipments_by_order.get(row["order_id"], []),
            key=lambda s: (s["shipped_at"] is None, s["shipped_at"] or 0, s["shipment_id"]),
        )
        resources.append(
            _order_resource(row, order_lines, returns_by_order.get(row["order_id"], []), names, dispatches)
        )
    return resources


def _order_resource(row: Row, lines: list[Row], returns: list[Row], names: Names, shipments: list[Row]) -> Resource:
    order_key = stable_id("order", row["order_id"])
    erp_number = None if row["order_id"] == row["external_id"] else row["order_id"]
    currency = row["currency"]
    items = [_line_item(order_key, line, currency, names) for line in lines]
    order_state, shipment_state = _split(row["status"])
    return _drop_none(
        {
            "id": order_key,
            "version": 1,
            "orderNumber": row["external_id"],
            "customerId": row["customer_id"],
            "customerEmail": row["email"],
            "store": {"typeId": "store", "key": row["channel"]} if row["channel"] else None,
            "orderState": order_state,
            "shipmentState": shipment_state,
            "totalPrice": to_money(row["total"], currency),
            "custom": _custom_block({names.fields["erp_order_number"]: erp_number}, "order-fields"),
            "lineItems": items,
            "customLineItems": [],
            "shippingInfo": _shipping_info(order_key, items, lines, shipments, row["updated_at"] or row["placed_at"]),
            "returnInfo": _return_info(order_key, items, lines, returns, currency, names),
            "createdAt": to_timestamp(row["placed_at"]),
            "lastModifiedAt": to_timestamp(row["updated_at"] or row["placed_at"]),
        }
    )


def _line_item(order_key: str, line: Row, currency: str | None, names: Names) -> Resource:
    return _drop_none(
        {
            "id": stable_id("line", order_key, line["line_no"]),
            "productId": stable_id("product", line["sku"]),
            "name": {names.locale: line["sku"] or ""},
            "variant": _drop_none({"id": 1, "sku": line["sku"]}),
            "quantity": line["qty_ordered"],
            "price": {
                "id": stable_id("price", order_key, line["line_no"]),
                "value": to_money(line["unit_price"], currency),
            },
            "custom": _custom_block({names.fields["qty_cancelled"]: line["qty_cancelled"]}, "line-item-fields"),
            "state": [],
        }
    )


def _shipping_info(
    order_key: str, items: list[Resource], lines: list[Row], shipments: list[Row], updated_at: datetime | None
) -> Resource | None:
    """One delivery per shipment (a parcel with its tracking data, or no parcel where the shipment has no
    tracking), the shipped quantities in the first; without shipments, one delivery of those quantities."""
    shipped = [
        {"id": item["id"], "quantity": line["qty_shipped"]}
        for item, line in zip(items, lines, strict=True)
        if line["qty_shipped"]
    ]
    if not shipped and not shipments:
        return None
    if not shipments:
        delivery = {"id": stable_id("delivery", order_key), "createdAt": to_timestamp(updated_at), "items": shipped}
        return {"shippingMethodName": "Standard", "deliveries": [_drop_none({**delivery, "parcels": []})]}
    deliveries = []
    for position, shipment in enumerate(shipments):
        created_at = to_timestamp(shipment["shipped_at"])
        tracking = _drop_none({"trackingId": shipment["tracking_number"], "carrier": shipment["carrier"]})
        parcels = (
            [_drop_none({"id": shipment["shipment_id"], "createdAt": created_at, "items": [],
                         "trackingData": {**tracking, "isReturn": False}})]
            if tracking
            else []
        )  # fmt: skip
        delivery_id = stable_id("delivery", order_key, shipment["shipment_id"]) if parcels else shipment["shipment_id"]
        deliveries.append(
            _drop_none(
                {
                    "id": delivery_id,
                    "createdAt": created_at,
                    "items": shipped if position == 0 else [],
                    "parcels": parcels,
                }
            )
        )
    return {"shippingMethodName": "Standard", "deliveries": deliveries}


def _return_info(
    order_key: str, items: list[Resource], lines: list[Row], returns: list[Row], currency: str | None, names: Names
) -> list[Resource] | None:
    """The order's returns; without return rows, the lines' returned quantities as returned items."""
    item_by_sku = {line["sku"]: item["id"] for item, line in zip(items, lines, strict=True)}
    if returns:
        by_date = _group(returns, "processed_at")
        return [
            _drop_none(
                {
                    "returnDate": to_timestamp(date),
                    "items": [_return_item(ret, item_by_sku.get(ret["sku"]), currency, names) for ret in rets],
                }
            )
            for date, rets in by_date.items()
        ]
    synthetic = [
        {
            "type": "LineItemReturnItem",
            "id": stable_id("return", item["id"]),
            "lineItemId": item["id"],
            "quantity": line["qty_returned"],
            "shipmentState": "Returned",
            "paymentState": "Initial",
        }
        for item, line in zip(items, lines, strict=True)
        if line["qty_returned"]
    ]
    return [{"items": synthetic}] if synthetic else None


def _return_item(ret: Row, line_item_id: str | None, currency: str | None, names: Names) -> Resource:
    shipment_state, payment_state = _split(ret["status"])
    return _drop_none(
        {
            "type": "LineItemReturnItem",
            "id": ret["return_id"],
            "lineItemId": line_item_id,
            "quantity": ret["qty"],
            "shipmentState": shipment_state,
            "paymentState": payment_state,
            "custom": _custom_block({names.fields["amount"]: to_money(ret["amount"], currency)}, "return-item-fields"),
        }
    )


def inventory_resources(inventory: pl.DataFrame) -> list[Resource]:
    resources = []
    for row in _records(inventory):
        location = row["location"]
        on_stock = row["on_hand"] if row["on_hand"] is not None else row["available"]
        resources.append(
            _drop_none(
                {
                    "id": stable_id("inventory", row["sku"], location),
                    "version": 1,
                    "sku": row["sku"],
                    "supplyChannel": (
                        None if location == NO_LOCATION else {"typeId": "channel", "id": channel_id(location)}
                    ),
                    "quantityOnStock": on_stock,
                    "availableQuantity": row["available"] if row["available"] is not None else on_stock,
                    "createdAt": to_timestamp(row["updated_at"]),
                    "lastModifiedAt": to_timestamp(row["updated_at"]),
                }
            )
        )
    return resources


def channel_id(key: str) -> str:
    return stable_id("channel", key)


def product_resources(products: pl.DataFrame, names: Names) -> list[Resource]:
    """Variants grouped into products by style (a SKU without a style is a product of its own)."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in _records(products):
        groups[row["style"] or row["sku"]].append(row)
    return [_product(key, rows, names) for key, rows in groups.items()]


def _product(key: str, rows: list[Row], names: Names) -> Resource:
    variants = [_variant(position, row, names) for position, row in enumerate(rows, start=1)]
    stamps = [row["updated_at"] for row in rows if row["updated_at"] is not None]
    modified = to_timestamp(max(stamps)) if stamps else None
    return _drop_none(
        {
            "id": stable_id("product", key),
            "version": 1,
            "key": key,
            "name": {names.locale: rows[0]["name"]} if rows[0]["name"] is not None else None,
            "slug": {names.locale: key.lower()},
            "productType": {"typeId": "product-type", "id": stable_id("product-type", "apparel")},
            "masterVariant": variants[0],
            "variants": variants[1:],
            "published": True,
            "createdAt": modified,
            "lastModifiedAt": modified,
        }
    )


def _variant(position: int, row: Row, names: Names) -> Resource:
    attr = names.attributes
    attributes = [
        {"name": attr[col], "value": row[col]} for col in ("style", "colour", "size", "status") if row[col] is not None
    ]
    price = to_money(row["price"], row["currency"])
    return _drop_none(
        {
            "id": position,
            "sku": row["sku"],
            "prices": [{"id": stable_id("price", row["sku"]), "value": price}] if price else [],
            "attributes": attributes,
        }
    )


def _group(rows: Iterable[Row], column: str) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[column]].append(row)
    return groups


def _drop_none(resource: Resource) -> Resource:
    return {name: value for name, value in resource.items() if value is not None}


# Inventory is the one entity whose canonical columns commercetools only partly holds (no safety stock, no
# open work orders; its reservations are `allocated`).
PULLED_COLUMNS = {"inventory": ("sku", "location", "on_hand", "allocated", "available", "updated_at")}


def frame(entity_name: str, rows: list[Row]) -> pl.DataFrame:
    """Rows of one entity as text columns; `driftwatch.normalize.coerce` types them like any file drop."""
    columns = PULLED_COLUMNS.get(entity_name, tuple(ENTITIES[entity_name].columns))
    data = {col: [text(row.get(col)) for row in rows] for col in columns}
    return pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String))
