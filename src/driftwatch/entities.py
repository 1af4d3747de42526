"""Canonical entities: the shape every source is turned into before it is stored.

Each entity is declared once as a pandera model. The column *kinds* below drive the coercions that every
later part relies on: exact Decimal money, UTC timestamps, trimmed lower-case emails, and codes kept as
text with their leading zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandera.polars as pa
import polars as pl

# A platform with one stock figure per SKU keeps no location: its stock is the whole target's, at "*".
WHOLE_STOCK = "*"

# Money is exact. Scale 4 keeps sub-cent commission maths exact; 19.9 and 19.90 are the same value.
MONEY = pl.Decimal(18, 4)
TIMESTAMP = pl.Datetime("us", "UTC")

Kind = Literal["code", "text", "email", "money", "int", "timestamp", "bool"]

DTYPES: dict[str, pl.DataType] = {
    "code": pl.String(),
    "text": pl.String(),
    "email": pl.String(),
    "money": MONEY,
    "int": pl.Int64(),
    "timestamp": TIMESTAMP,
    "bool": pl.Boolean(),
}


@dataclass(frozen=True)
class Entity:
    name: str
    key: tuple[str, ...]
    columns: dict[str, Kind]
    required: tuple[str, ...] = ()  # non-key columns that may not be null
    # Key columns that may be blank or absent, and what they then mean (inventory's location: "*").
    key_defaults: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {col: DTYPES[kind] for col, kind in self.columns.items()}


def _entity(entity_name: str, key: tuple[str, ...], required: tuple[str, ...] = (), /, **columns: Kind) -> Entity:
    defaults = {"location": WHOLE_STOCK} if "location" in key else {}
    return Entity(entity_name, key, columns, required, defaults)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        _entity(
            "products",
            ("sku",),
            sku="code",
            style="code",
            colour="code",
            size="code",
            name="text",
            price="money",
            currency="code",
            status="code",
            updated_at="timestamp",
        ),
        _entity(
            "pack_components",
            ("pack_sku", "component_sku"),
            ("qty",),
            pack_sku="code",
            component_sku="code",
            qty="int",
        ),
        _entity(
            "inventory",
            ("sku", "location"),
            sku="code",
            location="code",
            on_hand="int",
            allocated="int",
            on_order="int",
            safety_stock="int",
            available="int",
            updated_at="timestamp",
        ),
        _entity(
            "customers",
            ("customer_id",),
            customer_id="code",
            erp_customer_id="code",
            email="email",
            email_consent="bool",
            sms_consent="bool",
            consent_updated_at="timestamp",
            first_name="text",
            last_name="text",
            postcode="text",
            country="code",
            lifetime_value="money",
            order_count="int",
            last_order_at="timestamp",
            merged_into="code",
            updated_at="timestamp",
        ),
        _entity(
            "orders",
            ("order_id",),
            order_id="code",
            external_id="code",
            channel="code",
            customer_id="code",
            email="email",
            status="code",
            placed_at="timestamp",
            updated_at="timestamp",
            total="money",
            currency="code",
        ),
        _entity(
            "order_lines",
            ("order_id", "line_no"),
            order_id="code",
            line_no="int",
            sku="code",
            qty_ordered="int",
            qty_shipped="int",
            qty_cancelled="int",
            qty_returned="int",
            unit_price="money",
        ),
        _entity(
            "shipments",
            ("shipment_id",),
            shipment_id="code",
            order_id="code",
            carrier="code",
            tracking_number="code",
            shipped_at="timestamp",
        ),
        _entity(
            "returns",
            ("return_id",),
            return_id="code",
            order_id="code",
            sku="code",
            qty="int",
            amount="money",
            status="code",
            processed_at="timestamp",
        ),
        _entity(
            "events",
            ("event_id",),
            ("metric",),
            event_id="code",
            metric="code",
            order_id="code",
            email="email",
            occurred_at="timestamp",
            value="money",
        ),
        _entity(
            "payout_lines",
            ("line_id",),
            ("line_type", "amount"),
            line_id="code",
            payout_id="code",
            external_id="code",
            line_type="code",
            amount="money",
            currency="code",
            transaction_date="timestamp",
        ),
        _entity(
            "journal_entries",
            ("entry_id",),
            ("account", "amount"),
            entry_id="code",
            order_id="code",
            payout_id="code",
            account="code",
            amount="money",
            currency="code",
            posted_at="timestamp",
        ),
    )
}

PRODUCT_STATUSES = ("active", "discontinued")
RETURN_STATES = ("authorised", "received", "refunded", "cancelled")
EVENT_METRICS = ("order_placed", "order_fulfilled", "order_cancelled", "order_refunded")
PAYOUT_LINE_TYPES = (
    "order_amount",
    "shipping",
    "commission",
    "refund",
    "refund_commission",
    "fee",
    "adjustment",
    "payment",
)
CANONICAL_STATUSES = (
    "placed",
    "accepted",
    "partially_shipped",
    "shipped",
    "delivered",
    "cancelled",
    "partially_cancelled",
    "returned",
    "refunded",
    "closed",
)

# Value rules beyond type and nullability; a row that breaks one is quarantined with the rule's name.
# Statuses (of orders, returns and products) are not among them: they are stored as the source says them
# and mapped per source by the audit, which reports a value no mapping names.
_VALUE_RULES: dict[tuple[str, str], pa.Check] = {
    ("events", "metric"): pa.Check.isin(EVENT_METRICS),
    ("payout_lines", "line_type"): pa.Check.isin(PAYOUT_LINE_TYPES),
    ("pack_components", "qty"): pa.Check.gt(0),
    ("order_lines", "qty_ordered"): pa.Check.ge(0),
    ("customers", "email"): pa.Check.str_matches(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    ("orders", "email"): pa.Check.str_matches(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
}


def model(entity: Entity, present: list[str] | None = None, *, unique: bool = True) -> pa.DataFrameSchema:
    """The pandera schema for an entity, restricted to the columns a snapshot actually has; `unique=False`
    leaves out the uniqueness of the key, for validating a large snapshot slice by slice."""
    present = list(entity.columns) if present is None else present
    columns = {}
    for col in present:
        kind = entity.columns[col]
        checks = [rule] if (rule := _VALUE_RULES.get((entity.name, col))) is not None else []
        nullable = col not in entity.key and col not in entity.required
        columns[col] = pa.Column(DTYPES[kind], checks=checks, nullable=nullable)
    return pa.DataFrameSchema(columns, unique=list(entity.key) if unique else None, name=entity.name, strict=True)


def entity(name: str) -> Entity:
    from driftwatch.errors import UserError

    try:
        return ENTITIES[name]
    except KeyError:
        raise UserError(f"unknown entity {name!r}: expected one of {', '.join(ENTITIES)}") from None
