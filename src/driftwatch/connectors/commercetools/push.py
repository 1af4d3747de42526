"""Repairs pushed to commercetools as update actions, guarded by each resource's version.

commercetools has no bulk write: every resource takes one `POST /{resource}/{id}` with the version the
writer last saw and a list of update actions, applied all or none. A batch therefore reads every record
its actions touch (one query per kind of lookup), then sends one update per record with every action
of the batch for that record. The update actions are worked out from what the record holds now, so a
value already there is not written again, and a 409 ConcurrentModification (a checkout reserving stock,
an agent editing an order) re-reads the record and works them out again from its new state.

What each repair action does:
- set_stock (key "SKU/location", or "SKU" where the target publishes one figure): inventory entry of
  the SKU and supply channel (no channel: location "*"), `changeQuantity`. commercetools publishes
  `availableQuantity` = `quantityOnStock` - reserved, and that is what the audit compares, so the
  quantity sent is the ERP's available-to-sell plus what the entry has reserved.
- update_order_status: `changeOrderState` and/or `changeShipmentState`, the fewest changes whose raw
  "orderState/shipmentState" maps to the ERP's canonical status (through the status map given as
  `status_map`, else the shipped defaults). `returned` and `refunded` live in returnInfo, not in the
  order's states, and are refused. `transitionState` is not used: custom State machines are
  project-specific, and the audit reads orderState and shipmentState.
- upsert_order, order missing: the storefront's order (`orderNumber` = the ERP's external_id) gets the
  ERP's number in the `erpOrderNumber` custom field, which is how the audit finds it. Creating an order,
  and changing its totals or lines (Order Edits), are refused: driftwatch does not rewrite what a
  customer bought.
- upsert_contact: `changeEmail`, `setFirstName`, `setLastName`, `changeAddress` of the default shipping
  address (`addAddress` + `setDefaultShippingAddress` when there is none), and the lifetime value,
  order count and last order date custom fields, on the customer's most recently modified profile
  (the one the audit reads). A customer missing on commercetools is refused: sign-up belongs to the
  storefront. merge_profiles is not executed (commercetools has no merge).
- update_consent: the consent custom field (and `consentUpdatedAt` from the ERP) on every profile of
  the customer, since one subscribed profile is enough to mail them.
A resource without a custom type gets one with `setCustomType` (type keys: `custom_types` setting).

Settings, besides the connector's (`[sources.commercetools]`): `currency` for a lifetime value on a
customer that has none yet; `custom_types = {customer = "...", order = "..."}`. The API client needs
`manage_products`, `manage_orders` and `manage_customers` for the resources it repairs.

commercetools documents quantities as eventually consistent (up to 10 s): a verify straight after a push
may still read the old availableQuantity and say "still drifting"; the next audit is the judge.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from itertools import product
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from driftwatch.connectors._http import error_excerpt
from driftwatch.connectors.commercetools import PLATFORM, mapping
from driftwatch.connectors.commercetools.client import MAX_LIMIT, error_text, id_after, id_in, quote
from driftwatch.connectors.commercetools.connector import Connector
from driftwatch.push import Action, PushOutcome
from driftwatch.statuses import canonical_status, merged_map

Row = dict[str, Any]
Update = dict[str, Any]

# Every value of the two enums, in the order they are tried when a status needs changing.
ORDER_STATES = ("Confirmed", "Open", "Complete", "Cancelled")
SHIPMENT_STATES = ("Pending", "Ready", "Shipped", "Delivered", "Partial", "Delayed", "Backorder", "Canceled")
CUSTOM_TYPES = {"customer": "customer-fields", "order": "order-fields"}
NAME_ACTIONS = {"first_name": ("setFirstName", "firstName"), "last_name": ("setLastName", "lastName")}
ADDRESS_FIELDS = {"postcode": "postalCode", "country": "country"}
VALUE_FIELDS = ("lifetime_value", "order_count", "last_order_at")  # custom fields
CONSENT_FIELDS = ("email_consent", "sms_consent")  # custom fields
MAX_CONFLICTS = 5  # re-reads after a 409 before the action is reported failed
DEFAULT_ADDRESS_KEY = "driftwatch-shipping"
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T")


class Refused(Exception):
    """An action commercetools cannot take as driftwatch would send it; the message says why."""


class VersionConflict(Exception):
    pass


class Pusher:
    target = "commercetools"
    # No bulk endpoint: a batch is one read per lookup and one update per record, so its size only bounds
    # the query predicates (`id in (...)` of at most this many values).
    batch_size = 100
    actions = frozenset({"set_stock", "update_order_status", "upsert_order", "upsert_contact", "update_consent"})
    settings_keys = frozenset({"custom_types"})

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        source: str | None = None,
        env: Mapping[str, str] = os.environ,
        status_map: Mapping[str, str] | None = None,
        **_: Any,
    ):
        self.settings = settings
        self.connector = Connector(settings, source=source, env=env, progress=False)
        self.target = self.connector.source
        self.names = self.connector.names
        self.status_map = dict(status_map) if status_map is not None else merged_map(PLATFORM.vocabulary, None)
        self.custom_types = {**CUSTOM_TYPES, **settings.get("custom_types", {})}

    # ---------------------------------------------------------------- the Pusher protocol

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        with self._session():
            records = self._records(batch)
            results: dict[str, list[PushOutcome]] = defaultdict(list)
            for (path, record_id), actions in _by_record(batch, records).items():
                for action_id, outcome in self._write(path, records.resources[path][record_id], actions).items():
                    results[action_id].append(outcome)
        return {a.action_id: _combined(results[a.action_id]) or PushOutcome(False, records.missing(a)) for a in batch}

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        with self._session():
            records = self._records(batch)
        return {a.action_id: self._current(a, records) for a in batch}

    @contextmanager
    def _session(self) -> Iterator[None]:
        """One HTTP client (and token) per batch, as the connector uses one per pull."""
        self.client = self.connector._connect()
        try:
            yield
        finally:
            self.client.close()

    # ---------------------------------------------------------------- reading what the actions touch

    def _records(self, batch: list[Action]) -> Records:
        records = Records()
        stock = [a.key for a in batch if a.action == "set_stock"]
        orders = [a for a in batch if a.action in ("update_order_status", "upsert_order")]
        customers = [a for a in batch if a.action in ("upsert_contact", "update_consent")]
        if stock:
            skus = {part for key in stock for part in (key, key.rpartition("/")[0]) if part}
            entries = self._query("inventory", f"sku in ({_values(skus)})", {"expand": "supplyChannel"})
            records.add_inventory(entries)
        if orders:
            numbers = {a.key for a in orders} | ({a.truth.get("external_id") for a in orders} - {None})
            field = self.names.fields["erp_order_number"]
            found = self._query("orders", f"custom(fields({field} in ({_values(numbers)})))")
            found += self._query("orders", f"orderNumber in ({_values(numbers)})")
            records.add_orders(found, self.names)
        if customers:
            ids = {a.key for a in customers}
            found = self._query("customers", f"externalId in ({_values(ids)})")
            emails = {a.truth.get("email") for a in customers} - {None}
            if emails:
                found += self._query("customers", f"email in ({_values(emails)})")
            records.add_customers(found, self.names, customers)
        return records

    def _query(self, path: str, where: str, params: Mapping[str, str] | None = None) -> list[Row]:
        """Every record matching `where`, page by page in id order."""
        found, after = [], None
        while True:
            page = self.client.query(path, where=[where, id_after(after)], limit=MAX_LIMIT, params=params)
            found += page
            if len(page) < MAX_LIMIT:
                return found
            after = page[-1]["id"]

    def _reread(self, path: str, record_id: str) -> Row | None:
        params = {"expand": "supplyChannel"} if path == "inventory" else None
        found = self.client.query(path, where=[id_in([record_id])], limit=1, params=params)
        return found[0] if found else None

    # ---------------------------------------------------------------- writing one record

    def _write(self, path: str, record: Row, actions: list[Action]) -> dict[str, PushOutcome]:
        """One update with every action for this record, worked out again from its new state after a 409.
        An action commercetools cannot take fails alone; the others still go."""
        state: dict[str, Row | None] = {"record": record}
        refused: dict[str, PushOutcome] = {}

        def attempt() -> dict[str, PushOutcome]:
            current = state["record"]
            if current is None:
                gone = PushOutcome(False, f"commercetools {path} {record['id']} was deleted while being repaired")
                return dict.fromkeys((a.action_id for a in actions), gone)
            refused.clear()
            updates: list[Update] = []
            for action in actions:
                try:
                    # Actions sharing an update (a postcode and a country: one address) send it once.
                    updates += [u for u in self._updates(path, current, action, actions) if u not in updates]
                except Refused as reason:
                    refused[action.action_id] = PushOutcome(False, str(reason))
            sending = [a.action_id for a in actions if a.action_id not in refused]
            if not updates:
                return dict.fromkeys(sending, PushOutcome(True, "already held"))
            response = self.client.http.request(
                "POST",
                f"/{self.client.project_key}/{path}/{current['id']}",
                json={"version": current["version"], "actions": updates},
                expect=(400, 404, 409),
            )
            if response.status_code == 409:
                state["record"] = self._reread(path, current["id"])
                raise VersionConflict(error_excerpt(response, error_text))
            if response.status_code != 200:
                return dict.fromkeys(sending, PushOutcome(False, error_excerpt(response, error_text)))
            done = PushOutcome(True, f"{path} {current['id']} version {response.json()['version']}")
            return dict.fromkeys(sending, done)

        retrying = Retrying(
            stop=stop_after_attempt(MAX_CONFLICTS), retry=retry_if_exception_type(VersionConflict), reraise=True
        )
        try:
            outcomes = retrying(attempt)
        except VersionConflict as conflict:
            stuck = PushOutcome(False, f"{conflict} (still conflicting after {MAX_CONFLICTS} attempts)")
            outcomes = dict.fromkeys((a.action_id for a in actions), stuck)
        return {**outcomes, **refused}

    def _updates(self, path: str, record: Row, action: Action, together: list[Action]) -> list[Update]:
        """The update actions that make `record` hold `action.after` (and what the actions it goes `together`
        with need of the same part of the record); none when it already does."""
        if path == "inventory":
            return _stock_updates(record, action)
        if path == "orders":
            return self._order_updates(record, action)
        return self._customer_updates(record, action, together)

    def _order_updates(self, order: Row, action: Action) -> list[Update]:
        if action.action == "update_order_status":
            return self._status_updates(order, action.after)
        if action.field == "":  # the storefront's order, without the ERP's number the audit finds it by
            if mapping.order_rows(order, self.names)[0]["order_id"] == action.key:
                return []
            return self._custom_updates(order, "order", {self.names.fields["erp_order_number"]: action.key})
        raise Refused(
            f"order {action.key} {action.field}: commercetools changes an order's totals and lines only through "
            "Order Edits, which driftwatch does not send; amend the order in commercetools"
        )

    def _status_updates(self, order: Row, wanted: str | None) -> list[Update]:
        current = (order.get("orderState"), order.get("shipmentState"))
        if self._canonical(*current) == wanted:
            return []
        for states in _state_candidates(*current):
            if self._canonical(*states) == wanted:
                changes = [
                    {"action": "changeOrderState", "orderState": states[0]},
                    {"action": "changeShipmentState", "shipmentState": states[1]},
                ]
                return [c for c, old, new in zip(changes, current, states, strict=True) if old != new]
        raise Refused(f"no orderState/shipmentState of commercetools means {wanted!r} in the status map")

    def _canonical(self, order_state: str | None, shipment_state: str | None) -> str | None:
        raw = f"{order_state}/{shipment_state}" if shipment_state else order_state
        return canonical_status(raw, self.status_map)

    def _customer_updates(self, customer: Row, action: Action, together: list[Action]) -> list[Update]:
        if action.field == "":  # the customer was missing, and has a profile now
            return []
        if action.action == "update_consent" and action.field in CONSENT_FIELDS:
            fields = {self.names.fields[action.field]: _bool(action.after)}
            if action.truth.get("consent_updated_at"):
                fields[self.names.fields["consent_updated_at"]] = _timestamp(action.truth["consent_updated_at"])
            return self._custom_updates(customer, "customer", fields)
        if action.action == "upsert_contact" and action.field == "email":
            if not action.after:
                raise Refused(f"customer {action.key}: commercetools requires an email")
            same = str(customer.get("email", "")).lower() == action.after.lower()
            return [] if same else [{"action": "changeEmail", "email": action.after}]
        if action.action == "upsert_contact" and action.field in NAME_ACTIONS:
            update, name = NAME_ACTIONS[action.field]
            return [] if customer.get(name) == action.after else [{"action": update, name: action.after}]
        if action.action == "upsert_contact" and action.field in ADDRESS_FIELDS:
            address = [a for a in together if a.action == "upsert_contact" and a.field in ADDRESS_FIELDS]
            wanted = {ADDRESS_FIELDS[a.field]: a.after for a in address}
            return _address_updates(customer, action, wanted)
        if action.action == "upsert_contact" and action.field in VALUE_FIELDS:
            value = self._value(customer, action)
            return self._custom_updates(customer, "customer", {self.names.fields[action.field]: value})
        raise Refused(f"customer {action.key}: driftwatch cannot set {action.field!r} on commercetools")

    def _value(self, customer: Row, action: Action) -> Any:
        """A customer value custom field in its commercetools type."""
        if action.after is None:
            return None
        if action.field == "order_count":
            return int(Decimal(action.after))
        if action.field == "last_order_at":
            return _timestamp(action.after)
        held = _custom(customer).get(self.names.fields["lifetime_value"]) or {}
        currency = held.get("currencyCode") or self.settings.get("currency")
        if not currency:
            raise Refused(f"customer {action.key}: set `currency` to give a lifetime value its currency")
        return mapping.to_money(Decimal(action.after), currency)

    def _custom_updates(self, record: Row, kind: str, fields: Mapping[str, Any]) -> list[Update]:
        held = _custom(record)
        changed = {name: value for name, value in fields.items() if not _same_value(held.get(name), value)}
        if not changed:
            return []
        if record.get("custom") is None:
            present = {name: value for name, value in changed.items() if value is not None}
            custom_type = {"typeId": "type", "key": self.custom_types[kind]}
            return [{"action": "setCustomType", "type": custom_type, "fields": present}]
        return [
            {"action": "setCustomField", "name": name, **({} if value is None else {"value": value})}
            for name, value in changed.items()
        ]

    # ---------------------------------------------------------------- what the platform holds

    def _current(self, action: Action, records: Records) -> str | None:
        if action.action == "set_stock":
            entry = records.entries.get(action.key)
            return None if entry is None else _text(entry.get("availableQuantity"))
        if action.action in ("update_order_status", "upsert_order"):
            order = records.orders.get(action.key)
            if action.action == "update_order_status":
                return None if order is None else self._canonical(order.get("orderState"), order.get("shipmentState"))
            if action.field == "":
                return "present" if order is not None else "absent"
            return None  # totals and lines are not repaired here
        profiles = records.profiles.get(action.key, [])
        if action.field == "":
            return "present" if profiles else "absent"
        if not profiles:
            return None
        if action.action == "update_consent":  # any subscribed profile is a subscribed customer
            held = [mapping.customer_row(p, self.names).get(action.field) for p in profiles]
            known = [v for v in held if v is not None]
            return _text(any(known)) if known else None
        return _customer_value(mapping.customer_row(profiles[0], self.names), action.field)


class Records:
    """The records a batch touches, by the key its actions name."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Row]] = defaultdict(dict)
        self.entries: dict[str, Row] = {}
        self.orders: dict[str, Row] = {}
        self.unnumbered: dict[str, Row] = {}  # by orderNumber: orders the ERP's number is not stored on
        self.profiles: dict[str, list[Row]] = {}  # newest first

    def add_inventory(self, entries: list[Row]) -> None:
        for entry in entries:
            self.resources["inventory"][entry["id"]] = entry
            location = mapping.inventory_row(entry)["location"]
            self.entries[f"{entry['sku']}/{location}"] = entry
            if location == mapping.NO_LOCATION:
                self.entries.setdefault(entry["sku"], entry)

    def add_orders(self, orders: list[Row], names: mapping.Names) -> None:
        for order in orders:
            self.resources["orders"][order["id"]] = order
            head = mapping.order_rows(order, names)[0]
            self.orders[head["order_id"]] = order
            if head["external_id"] and head["order_id"] == head["external_id"]:
                self.unnumbered[head["external_id"]] = order

    def add_customers(self, customers: list[Row], names: mapping.Names, actions: list[Action]) -> None:
        """Profiles of each ERP customer, as the audit matches them: those storing its id, and those storing
        no ERP id that have its email."""
        unique = {c["id"]: c for c in customers}
        for customer in unique.values():
            self.resources["customers"][customer["id"]] = customer
        for action in actions:
            if action.key in self.profiles:
                continue
            email = (action.truth.get("email") or "").lower()
            mine = [
                c
                for c in unique.values()
                if c.get("externalId") == action.key
                or (email and not c.get("externalId") and str(c.get("email", "")).lower() == email)
            ]
            self.profiles[action.key] = sorted(mine, key=lambda c: c.get("lastModifiedAt") or "", reverse=True)

    def record_of(self, action: Action) -> list[tuple[str, str]]:
        """(path, id) of each record the action changes."""
        if action.action == "set_stock":
            entry = self.entries.get(action.key)
            return [] if entry is None else [("inventory", entry["id"])]
        if action.action in ("update_order_status", "upsert_order"):
            order = self.orders.get(action.key)
            if order is None and action.action == "upsert_order" and action.field == "":
                order = self.unnumbered.get(action.truth.get("external_id") or "")
            return [] if order is None else [("orders", order["id"])]
        profiles = self.profiles.get(action.key, [])
        if action.action == "upsert_contact" and action.field != "":
            profiles = profiles[:1]
        return [("customers", p["id"]) for p in profiles]

    def missing(self, action: Action) -> str:
        if action.action == "set_stock":
            return f"commercetools has no inventory entry for {action.key}"
        if action.action in ("update_order_status", "upsert_order"):
            return (
                f"commercetools has no order {action.key}; driftwatch does not create orders "
                "(they come from the storefront's checkout)"
            )
        return (
            f"ERP customer {action.key} has no customer on commercetools; driftwatch does not create customers "
            "(sign-up belongs to the storefront)"
        )


def _by_record(batch: list[Action], records: Records) -> dict[tuple[str, str], list[Action]]:
    grouped: dict[tuple[str, str], list[Action]] = defaultdict(list)
    for action in batch:
        for target in records.record_of(action):
            grouped[target].append(action)
    return grouped


def _combined(outcomes: list[PushOutcome]) -> PushOutcome | None:
    """One action's outcome over the records it changed: failed if any of them failed."""
    if not outcomes:
        return None
    failed = [o for o in outcomes if not o.ok]
    return failed[0] if failed else outcomes[0]


def _stock_updates(entry: Row, action: Action) -> list[Update]:
    wanted = int(Decimal(action.after or "0"))
    available = int(entry.get("availableQuantity", 0))
    if available == wanted:
        return []
    # Both quantities are eventually consistent (up to 10 s): a stale pair must never pass for a negative
    # reservation and push the stock below what the ERP can sell.
    reserved = max(0, int(entry.get("quantityOnStock", 0)) - available)
    return [{"action": "changeQuantity", "quantity": wanted + reserved}]


def _address_updates(customer: Row, action: Action, wanted: Mapping[str, str | None]) -> list[Update]:
    """The default shipping address (the one the audit reads) with the ERP's postcode and/or country;
    a customer without an address gets one (commercetools requires its country)."""
    address = dict(mapping._customer_address(customer))
    if all(address.get(column) == value for column, value in wanted.items()):
        return []
    if address:
        address_id = address.pop("id")
        return [{"action": "changeAddress", "addressId": address_id, "address": {**address, **wanted}}]
    new = {"postalCode": action.truth.get("postcode"), "country": action.truth.get("country"), **wanted}
    if not new["country"]:
        raise Refused(f"customer {action.key} has no address, and commercetools needs a country to add one")
    new = {"key": DEFAULT_ADDRESS_KEY, **{k: v for k, v in new.items() if v is not None}}
    return [
        {"action": "addAddress", "address": new},
        {"action": "setDefaultShippingAddress", "addressKey": DEFAULT_ADDRESS_KEY},
    ]


def _state_candidates(order_state: str | None, shipment_state: str | None) -> Iterable[tuple[str | None, str | None]]:
    """Other (orderState, shipmentState) pairs, fewest changes first."""
    singles = [(o, shipment_state) for o in ORDER_STATES if o != order_state]
    singles += [(order_state, s) for s in SHIPMENT_STATES if s != shipment_state]
    yield from singles
    yield from ((o, s) for o, s in product(ORDER_STATES, SHIPMENT_STATES) if o != order_state and s != shipment_state)


def _customer_value(row: Row, field: str) -> str | None:
    value = row.get(field)
    if value is None:
        return None
    if field == "last_order_at":  # as findings print instants: to the second
        return _parse_time(str(value)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _custom(record: Row) -> Mapping[str, Any]:
    return (record.get("custom") or {}).get("fields") or {}


def _same_value(held: Any, wanted: Any) -> bool:
    if isinstance(held, Mapping) and isinstance(wanted, Mapping):  # Money: equal amounts, same currency
        return mapping.money_value(held) == mapping.money_value(wanted) and held.get("currencyCode") == wanted.get(
            "currencyCode"
        )
    if isinstance(held, str) and isinstance(wanted, str) and _TIMESTAMP.match(held) and _TIMESTAMP.match(wanted):
        return _parse_time(held) == _parse_time(wanted)
    return held == wanted


def _bool(text: str | None) -> bool | None:
    return None if text is None else text.strip().lower() in ("true", "1", "yes")


def _timestamp(text: str) -> str:
    return mapping.to_timestamp(_parse_time(text))


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _values(values: Iterable[str]) -> str:
    return ", ".join(quote(v) for v in sorted(values))
