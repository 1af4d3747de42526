"""Klaviyo JSON:API resources <-> canonical rows, in both directions.

Pull: profiles give `customers`, catalog variants give `products` and `inventory` (one published figure,
location "*"), order metric events give `events`. The simulator uses the reverse functions to serve
canonical frames as Klaviyo resources, so a round trip must give back exactly the same records.

Pulled values are text (or None): `driftwatch.normalize.coerce` types them. A value Klaviyo documents
nowhere (a new consent state, say) is kept raw, so the normaliser reports it instead of it vanishing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftwatch.connectors._json import text

Row = dict[str, str | None]
Resource = dict[str, Any]

# Klaviyo's own integrations name the order lifecycle metrics this way.
METRICS = {
    "Placed Order": "order_placed",
    "Fulfilled Order": "order_fulfilled",
    "Cancelled Order": "order_cancelled",
    "Refunded Order": "order_refunded",
}
CONSENT_STATES = {"SUBSCRIBED": True, "UNSUBSCRIBED": False, "NEVER_SUBSCRIBED": False}
# What an integration writes onto a profile as custom properties (canonical column -> property name): the
# ERP's figures, and the ERP customer a merged profile now belongs to.
PROFILE_PROPERTIES = {
    "lifetime_value": "lifetime_value",
    "order_count": "order_count",
    "last_order_at": "last_order_at",
    "merged_into": "merged_into",
}
ORDER_ID_PROPERTY = "OrderId"
VALUE_PROPERTY = "$value"  # where an event's monetary value appears on the read side
VARIANT_PREFIX = "$custom:::$default:::"
VARIANT_METADATA = ("style", "colour", "size", "currency")  # product fields kept in `custom_metadata`
# A variant has one `updated`, which the frequent stock syncs move; the integration stamps when the product
# itself last changed in `custom_metadata`.
PRODUCT_UPDATED = "product_updated_at"

COLUMNS = {
    "customers": (
        "customer_id", "erp_customer_id", "email", "email_consent", "sms_consent", "consent_updated_at",
        "first_name", "last_name", "postcode", "country", "lifetime_value", "order_count", "last_order_at",
        "merged_into", "updated_at",
    ),
    "products": ("sku", "style", "colour", "size", "name", "price", "currency", "status", "updated_at"),
    "inventory": ("sku", "location", "available", "updated_at"),
    "events": ("event_id", "metric", "order_id", "email", "occurred_at", "value"),
}  # fmt: skip
# One staged row per variant feeds both products and inventory.
VARIANT_COLUMNS = (*COLUMNS["products"], "available", "stock_updated_at")


# --- pull: Klaviyo resource -> canonical row ------------------------------------------------------------


def profile_to_customer(profile: Resource, properties: Mapping[str, str] = PROFILE_PROPERTIES) -> Row:
    attributes = profile.get("attributes") or {}
    location = attributes.get("location") or {}
    custom = attributes.get("properties") or {}
    subscriptions = attributes.get("subscriptions") or {}
    email_marketing = _path(subscriptions, "email", "marketing")
    return {
        "customer_id": text(profile["id"]),
        "erp_customer_id": text(attributes.get("external_id")),
        "email": text(attributes.get("email")),
        "email_consent": consent(email_marketing.get("consent")),
        "sms_consent": consent(_path(subscriptions, "sms", "marketing").get("consent")),
        "consent_updated_at": text(email_marketing.get("consent_timestamp")),
        "first_name": text(attributes.get("first_name")),
        "last_name": text(attributes.get("last_name")),
        "postcode": text(location.get("zip")),
        "country": text(location.get("country")),
        **{column: text(custom.get(name)) for column, name in properties.items()},
        "updated_at": text(attributes.get("updated")),
    }


def variant_to_row(variant: Resource) -> Row:
    """A variant as one staged row: the product's columns and the published stock figure."""
    attributes = variant.get("attributes") or {}
    metadata = attributes.get("custom_metadata") or {}
    published = attributes.get("published")
    return {
        "sku": text(attributes.get("sku") or attributes.get("external_id")),
        **{column: text(metadata.get(column)) for column in VARIANT_METADATA},
        "name": text(attributes.get("title")),
        "price": text(attributes.get("price")),
        "status": None if published is None else ("active" if published else "discontinued"),
        "updated_at": text(metadata.get(PRODUCT_UPDATED) or attributes.get("updated")),
        "available": text(attributes.get("inventory_quantity")),
        "stock_updated_at": text(attributes.get("updated")),
    }


def event_to_row(event: Resource, metric_names: Mapping[str, str], emails: Mapping[str, str]) -> Row:
    """`metric_names`: metric id -> canonical metric; `emails`: profile id -> email (from `included`)."""
    attributes = event.get("attributes") or {}
    properties = attributes.get("event_properties") or {}
    relationships = event.get("relationships") or {}
    metric_id = _path(relationships, "metric", "data").get("id")
    profile_id = _path(relationships, "profile", "data").get("id")
    return {
        "event_id": text(event["id"]),
        "metric": metric_names.get(metric_id, text(metric_id)),
        "order_id": text(properties.get(ORDER_ID_PROPERTY)),
        "email": text(emails.get(profile_id)),
        "occurred_at": text(attributes.get("datetime")),
        "value": text(properties.get(VALUE_PROPERTY)),
    }


def consent(state: Any) -> str | None:
    """A Klaviyo consent state as canonical text; an undocumented state stays as it is."""
    if state is None:
        return None
    known = CONSENT_STATES.get(str(state).upper().replace(" ", "_"))
    return str(state) if known is None else text(known)


# A drop of profiles carries subscription states (SUBSCRIBED, UNSUBSCRIBED, NEVER_SUBSCRIBED) as the API does.
DROP_DECODERS = {"customers": {"email_consent": consent, "sms_consent": consent}}


def _path(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        data = data.get(key) or {}
    return data


# --- simulate: canonical row -> Klaviyo resource ---------------------------------------------------------


def customer_to_profile(row: Mapping[str, Any], properties: Mapping[str, str] = PROFILE_PROPERTIES) -> Resource:
    return {
        "type": "profile",
        "id": row["customer_id"],
        "attributes": {
            "email": row.get("email"),
            "external_id": row.get("erp_customer_id"),
            "first_name": row.get("first_name"),
            "last_name": row.get("last_name"),
            "location": {"zip": row.get("postcode"), "country": row.get("country")},
            "properties": {name: row[column] for column, name in properties.items() if row.get(column) is not None},
            "updated": row.get("updated_at"),
            "subscriptions": {
                "email": {
                    "marketing": {
                        "can_receive_email_marketing": bool(row.get("email_consent")),
                        "consent": consent_state(row.get("email_consent")),
                        "consent_timestamp": row.get("consent_updated_at"),
                    }
                },
                "sms": {"marketing": {"consent": consent_state(row.get("sms_consent"))}},
            },
        },
    }


def product_to_variant(product: Mapping[str, Any], stock: Mapping[str, Any] | None) -> Resource:
    """A canonical product and its published stock figure (an inventory row at "*") as a catalog variant."""
    sku = product["sku"]
    status = product.get("status")
    stock = stock or {}
    metadata = {c: product[c] for c in VARIANT_METADATA if product.get(c) is not None}
    if product.get("updated_at") is not None:
        metadata[PRODUCT_UPDATED] = product["updated_at"]
    return {
        "type": "catalog-variant",
        "id": f"{VARIANT_PREFIX}{sku}",
        "attributes": {
            "external_id": sku,
            "sku": sku,
            "title": product.get("name"),
            "description": product.get("name"),
            "price": product.get("price"),
            "inventory_policy": 1,
            "inventory_quantity": stock.get("available"),
            "url": f"https://shop.example/p/{sku}",
            "custom_metadata": metadata,
            "published": None if status is None else status == "active",
            "updated": stock.get("updated_at") or product.get("updated_at"),
        },
    }


def event_to_resource(row: Mapping[str, Any], metric_id: str, profile_id: str) -> Resource:
    occurred = row.get("occurred_at")
    properties = {ORDER_ID_PROPERTY: row.get("order_id"), "$event_id": row.get("order_id")}
    if row.get("value") is not None:
        properties[VALUE_PROPERTY] = row["value"]
    return {
        "type": "event",
        "id": row["event_id"],
        "attributes": {
            "timestamp": None if occurred is None else int(occurred.timestamp()),
            "datetime": occurred,
            "event_properties": properties,
            "uuid": row["event_id"],
        },
        "relationships": {
            "profile": {"data": {"type": "profile", "id": profile_id}},
            "metric": {"data": {"type": "metric", "id": metric_id}},
        },
    }


def consent_state(opted_in: bool | None) -> str:
    if opted_in is None:
        return "NEVER_SUBSCRIBED"
    return "SUBSCRIBED" if opted_in else "UNSUBSCRIBED"
