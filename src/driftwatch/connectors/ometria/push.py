"""Repairs pushed to Ometria: `/v2/push` records, at most 100 a call and one record type a call.

A pushed record is merged into what Ometria holds (only the fields sent change), so an action sends its
record's `id` and the fields it repairs. Ometria answers 202 once it has *received* the records; it
validates them afterwards, and a record it then rejects shows up only in `/v2/push/_errors`. So a push
waits `errors_after` seconds (setting, default 5) after its last call and reads the errors: the actions
whose records failed get Ometria's own words. Pushes and the errors read share the push rate (8 a second).

- Contacts are found by the ERP id they store (`customer_id`), else by the ERP customer's email; every
  contact of the customer is written (one subscribed duplicate would still mail someone who opted out). A
  customer Ometria lacks becomes a contact whose id is the ERP id. Ometria computes lifetime value, order
  count and last order date from orders, and takes SMS consent only through its `optin:sms` collections:
  those actions fail with the reason, nothing is sent for them.
- Orders are keyed by the ERP order number. A cancellation is `status: "cancelled"` with `is_valid: false`
  (without it Ometria keeps counting the revenue); any other status restores `is_valid: true`. A pushed
  `lineitems` replaces the order's line items, and an action carries one ERP line, so line repairs fail
  with that reason rather than drop the order's other lines.
- Products are keyed by SKU: a missing product, its price, its active flag, its stock level.

`read` pulls the records' current state through the connector, as the audit saw them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from driftwatch.connectors._push import profiles_of
from driftwatch.connectors.ometria import PLATFORM
from driftwatch.connectors.ometria.client import BASE_URL, OmetriaClient
from driftwatch.connectors.ometria.connector import Connector
from driftwatch.connectors.ometria.mapping import OPTIN_VALUES
from driftwatch.push import Action, PushOutcome

PUSH_BATCH = 100  # records a call, as documented
ERRORS_AFTER = 5.0
PRESENT, ABSENT = "present", "absent"

CONTACT_ACTIONS = frozenset({"upsert_contact", "update_consent"})
ORDER_ACTIONS = frozenset({"upsert_order", "update_order_status"})
PRODUCT_ACTIONS = frozenset({"create_offer", "update_price", "set_offer_status", "set_stock"})
ENTITY_OF = {**dict.fromkeys(CONTACT_ACTIONS, "customers"), **dict.fromkeys(ORDER_ACTIONS, "orders")}

CONTACT_FIELDS = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "postcode": "postcode",
    "country": "country_id",
}
COMPUTED_BY_OMETRIA = ("lifetime_value", "order_count", "last_order_at")
# canonical -> Ometria's order status; statuses Ometria cannot express (partial shipment, returns) are refused
ORDER_STATUS = {
    "placed": "pending",
    "accepted": "pending",
    "shipped": "shipped",
    "delivered": "complete",
    "closed": "complete",
    "cancelled": "cancelled",
}
CANONICAL_STATUS = PLATFORM.vocabulary.orders

Record = dict[str, Any]
RecordKey = tuple[str, str]  # (@type, id)


class Pusher:
    target = "ometria"
    batch_size = PUSH_BATCH
    actions = CONTACT_ACTIONS | ORDER_ACTIONS | PRODUCT_ACTIONS
    settings_keys = frozenset({"errors_after"})

    def __init__(
        self, settings: Mapping[str, Any], *, source: str | None = None, env: Mapping[str, str] = os.environ, **_: Any
    ):
        self._connector = Connector(dict(settings), source=source, env=env)  # settings and API key, checked once
        self.target = self._connector.source
        self._errors_after = float(settings.get("errors_after", ERRORS_AFTER))
        # Read once per apply: a contact this pusher creates is keyed by the ERP id, which is where a later
        # batch would look for it anyway, and a contact found by email keeps its id.
        self._contacts: pl.DataFrame | None = None
        c = self._connector
        # One client for every batch, so that one limiter keeps all of them under the push rate.
        self.client = OmetriaClient(
            c.setting("base_url", BASE_URL), c.credential("api_key_env"), c.settings, c.http_settings
        )

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        contacts = self._contacts_held() if any(a.action in CONTACT_ACTIONS for a in batch) else None
        outcomes: dict[str, PushOutcome] = {}
        records: dict[RecordKey, Record] = {}
        sent_for: dict[str, list[RecordKey]] = {}
        for action in batch:
            built = self._records_of(action, contacts)
            if isinstance(built, PushOutcome):
                outcomes[action.action_id] = built
                continue
            sent_for[action.action_id] = []
            for record in built:
                key = (record["@type"], str(record["id"]))
                records.setdefault(key, {}).update(record)
                sent_for[action.action_id].append(key)
        refused = self._send(list(records.values()))
        for action_id, keys in sent_for.items():
            problems = sorted({refused[k] for k in keys if k in refused})
            outcomes[action_id] = PushOutcome(not problems, "; ".join(problems) or "accepted")
        return outcomes

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        held = self._held(batch)
        return {a.action_id: _current(a, held) for a in batch}

    # --- records ------------------------------------------------------------------------------------------

    def _records_of(self, action: Action, contacts: pl.DataFrame | None) -> list[Record] | PushOutcome:
        if action.action in CONTACT_ACTIONS:
            fields = _contact_fields(action)
            if isinstance(fields, PushOutcome):
                return fields
            ids = _contact_ids(action, contacts) or [action.key]  # a new contact's id is the ERP id
            return [{"@type": "contact", "id": i, "customer_id": action.key, **fields} for i in ids]
        fields = _order_fields(action) if action.action in ORDER_ACTIONS else _product_fields(action)
        if isinstance(fields, PushOutcome):
            return fields
        kind = "order" if action.action in ORDER_ACTIONS else "product"
        return [{"@type": kind, "id": _record_id(action), **fields}]

    def _send(self, records: list[Record]) -> dict[RecordKey, str]:
        """Push the records, one type and at most 100 a call; (type, id) -> Ometria's words for each it refused."""
        if not records:
            return {}
        sent: dict[str, list[RecordKey]] = {}  # request_id -> the records of that call
        http = self.client.http
        for kind in sorted({r["@type"] for r in records}):
            of_kind = [r for r in records if r["@type"] == kind]
            for start in range(0, len(of_kind), PUSH_BATCH):
                chunk = of_kind[start : start + PUSH_BATCH]
                answer = http.request_json("POST", "/v2/push", json=_json(chunk), bucket="push")
                sent[answer["request_id"]] = [(kind, str(r["id"])) for r in chunk]
        time.sleep(self._errors_after)  # Ometria validates after answering: its verdicts come later
        errors = http.request_json("GET", "/v2/push/_errors", bucket="push") or []
        refused: dict[RecordKey, str] = {}
        for error in errors:
            words = f"{error.get('error_message')} at {error.get('error_path')}"
            for key in _culprits(error, sent.get(error.get("request_id"), [])):
                refused.setdefault(key, words)
        return refused

    def _held(self, batch: list[Action]) -> dict[str, pl.DataFrame]:
        """What Ometria holds now of every record type the batch touches, as the connector pulls it."""
        return self._connector.pull(sorted({_entity(a) for a in batch})).frames

    def _contacts_held(self) -> pl.DataFrame:
        if self._contacts is None:
            self._contacts = self._connector.pull(["customers"]).frames["customers"]
        return self._contacts


def _culprits(error: Record, keys: list[RecordKey]) -> list[RecordKey]:
    """The records of a call an error is about: the one it names, or any of them when it names none."""
    if error.get("id") is None:
        return keys
    named = (error.get("@type"), str(error["id"]))
    return [named] if named in keys else []


# --- what one action sends ------------------------------------------------------------------------------


def _contact_fields(action: Action) -> Record | PushOutcome:
    if action.field == "" and action.after == PRESENT:
        truth = action.truth
        fields = {dst: truth.get(src) for src, dst in CONTACT_FIELDS.items()}
        fields["marketing_optin"] = _optin(truth.get("email_consent"))
        return {k: v for k, v in fields.items() if v is not None}
    if action.field == "email_consent":
        return {"marketing_optin": _optin(action.after)}
    if action.field in CONTACT_FIELDS:
        return {CONTACT_FIELDS[action.field]: action.after}
    if action.field == "sms_consent":
        return PushOutcome(False, "Ometria takes SMS consent only in its optin:sms collections: not pushed")
    if action.field in COMPUTED_BY_OMETRIA:
        return PushOutcome(False, f"Ometria computes {action.field} from the orders it holds: repair the orders")
    return PushOutcome(False, f"ometria: {action.field!r} of a contact cannot be pushed")


def _order_fields(action: Action) -> Record | PushOutcome:
    if action.field == "" and action.after == PRESENT:
        truth = action.truth
        status = ORDER_STATUS.get(truth.get("status") or "")
        fields = {
            "web_id": truth.get("external_id"),
            "timestamp": _iso(truth.get("placed_at")),
            "grand_total": _number(truth.get("total")),
            "currency": truth.get("currency"),
            "channel": truth.get("channel"),
            "customer": {k: v for k, v in (("id", truth.get("customer_id")), ("email", truth.get("email"))) if v},
            **(_status(status) if status else {}),
        }
        return {k: v for k, v in fields.items() if v not in (None, {})}
    if action.field == "status":
        status = ORDER_STATUS.get(action.after or "")
        return _status(status) if status else PushOutcome(False, f"Ometria has no order status for {action.after!r}")
    if action.field == "total":
        return {"grand_total": _number(action.after)}
    return PushOutcome(False, f"{action.field}: Ometria replaces an order's line items whole; lines are not pushed")


def _product_fields(action: Action) -> Record | PushOutcome:
    if action.action == "create_offer":
        truth = action.truth
        fields = {
            "sku": _record_id(action),
            "title": truth.get("name"),
            "price": _number(truth.get("price")),
            "currency": truth.get("currency"),
            "is_active": truth.get("status") != "discontinued",
            "is_variant": True,
        }
        return {k: v for k, v in fields.items() if v is not None}
    if action.action == "update_price":
        return {"price": _number(action.after)}
    if action.action == "set_offer_status":
        return {"is_active": action.after != "discontinued"}
    stock = {"stock_level": int(Decimal(action.after or "0")), "stock_updated_at": datetime.now(UTC).isoformat()}
    return {"properties": stock}


def _status(status: str) -> Record:
    return {"status": status, "is_valid": status != "cancelled"}


def _optin(consent: str | None) -> str:
    return OPTIN_VALUES.get((consent or "").strip().lower(), "NOT_SPECIFIED")


def _contact_ids(action: Action, contacts: pl.DataFrame | None) -> list[str]:
    return sorted(profiles_of(action, contacts)["customer_id"]) if contacts is not None else []


def _record_id(action: Action) -> str:
    return action.key.split("/")[0] if action.action in PRODUCT_ACTIONS else action.key


def _entity(action: Action) -> str:
    if action.action == "set_stock":
        return "inventory"
    return ENTITY_OF.get(action.action, "products")


# --- what Ometria holds for one action ------------------------------------------------------------------


def _current(action: Action, held: Mapping[str, pl.DataFrame]) -> str | None:
    frame = held[_entity(action)]
    if action.action in CONTACT_ACTIONS:
        rows = profiles_of(action, frame)
    else:
        key = "order_id" if action.action in ORDER_ACTIONS else "sku"
        rows = frame.filter(pl.col(key) == _record_id(action))
    if action.field == "" or action.action == "create_offer":
        return PRESENT if rows.height else ABSENT
    column = {"set_stock": "available", "update_price": "price", "set_offer_status": "status"}.get(
        action.action, action.field
    )
    if column not in rows.columns:
        return None
    values = {v for v in rows[column].to_list() if v is not None}
    if action.action == "update_order_status":
        values = {CANONICAL_STATUS.get(v, v) for v in values}
    if len(values) > 1 and column == "email_consent":
        return "true" if "true" in values else "false"  # one subscribed contact is enough to mail the person
    return values.pop() if len(values) == 1 else None


def _number(value: str | None) -> Decimal | None:
    return None if value in (None, "") else Decimal(value)


def _iso(value: str | None) -> str | None:
    return None if not value else datetime.fromisoformat(value).isoformat()


def _json(records: list[Record]) -> list[Record]:
    """Records as JSON: amounts go out as JSON numbers (a two- or four-place amount survives the trip)."""
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
