"""A loopback commercetools project: OAuth token endpoint, query endpoints, Messages, and their errors.

What it reproduces from the public API reference:
- `POST /oauth/token` with HTTP Basic client credentials, optional scopes, `expires_in`; 401
  `invalid_client` for wrong credentials, 400 `invalid_scope` for a scope the client does not have.
- `Authorization: Bearer` on every API call; 401 `invalid_token` once a token expired or was revoked
  (`faults.expire_token_after` revokes each token after that many requests); 403 `insufficient_scope`.
- Query endpoints with `where` predicates (the subset a connector needs: comparisons, `in`, nested
  fields), `sort`, `limit` (max 500), `offset` (max 10,000), `withTotal` (total capped at 10,000 under a
  predicate), `expand=supplyChannel` on inventory.
- Messages (`GET /{projectKey}/messages`): one per creation, change and deletion, dropped after the
  project's retention (`deleteDaysAfterCreation`).
- ErrorResponse bodies (`statusCode`, `message`, `errors[]`), and 502/503 from the edge in HTML
  (`fail_next(..., html=True)`), as the platform's infrastructure sends them.
- Updates (`POST /{projectKey}/{resource}/{id}` with `{version, actions}`, scope `manage_*`), all
  actions of a request applied or none: inventory `changeQuantity` (availableQuantity keeps the stock
  reserved), order `changeOrderState` / `changeShipmentState`, customer `changeEmail` (400 DuplicateField
  when another customer has it), `setFirstName`, `setLastName`, `addAddress`, `changeAddress`,
  `setDefaultShippingAddress`, and `setCustomField` / `setCustomType` on all three (400 InvalidOperation
  for a custom field on a resource without a custom type); at most 500 actions a request; 409
  ConcurrentModification with `currentVersion` for a stale version (`interfere()` makes another writer
  change a record just before the next updates land); `fail_updates()` answers the next updates with an
  error, before or after applying them (a response lost at the edge after the write committed). Each
  accepted update bumps the version, writes one Message per action and counts in `writes` ("path/id" ->
  accepted updates).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import polars as pl

from driftwatch.connectors.commercetools import mapping
from driftwatch.entities import ENTITIES
from driftwatch.normalize import coerce
from driftwatch.simulators._base import Request, Response, Simulator

PROJECT_KEY = "driftwatch-sim"
CLIENT_ID = "sim-client-id"
CLIENT_SECRET = "sim-client-secret-7f3a9c"
MAX_LIMIT = 500
MAX_OFFSET = 10_000

# Scope needed to read each endpoint (manage_project grants them all).
READ_SCOPES = {
    "customers": "view_customers",
    "orders": "view_orders",
    "inventory": "view_products",
    "product-projections": "view_products",
    "messages": "view_messages",
    "": "view_project_settings",
}
UPDATABLE = ("customers", "orders", "inventory")
MAX_UPDATE_ACTIONS = 500
ORDER_STATES = ("Open", "Confirmed", "Complete", "Cancelled")
SHIPMENT_STATES = ("Shipped", "Delivered", "Ready", "Pending", "Delayed", "Partial", "Backorder", "Canceled")
TYPE_IDS = {
    "customers": "customer",
    "orders": "order",
    "inventory": "inventory-entry",
    "product-projections": "product",
}
_CREATED = {
    "customer": "CustomerCreated",
    "order": "OrderCreated",
    "inventory-entry": "InventoryEntryCreated",
    "product": "ProductCreated",
}
_DELETED = {type_id: name.replace("Created", "Deleted") for type_id, name in _CREATED.items()}


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"statusCode": status, "message": message, "errors": [{"code": code, "message": message, **extra}]}


def auth_error(status: int, code: str, message: str) -> Response:
    body = error_body(status, code, message)
    return Response(status, {**body, "error": code, "error_description": message})


class CommercetoolsSimulator(Simulator):
    name: ClassVar[str] = "commercetools"

    def __init__(
        self,
        dataset: Mapping[str, pl.DataFrame] | None = None,
        *,
        token_lifetime: float = 172_800,
        granted_scopes: tuple[str, ...] = ("manage_project",),
        messages_enabled: bool = True,
        retention_days: int = 15,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        **kwargs: Any,
    ):
        super().__init__(dataset, **kwargs)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime = token_lifetime
        self.granted_scopes = granted_scopes
        self.messages_enabled = messages_enabled
        self.retention_days = retention_days
        self.tokens: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, dict[str, Any]]] = _resources(self.dataset)
        self.channels = {mapping.channel_id(key): key for key in _locations(self.dataset)}
        self.messages: list[dict[str, Any]] = []
        self._sequences: dict[str, int] = {}  # the last message sequenceNumber of each resource
        self._edge_errors: list[tuple[int, bool]] = []
        self._interference: list[Callable[[str, dict[str, Any]], None]] = []
        self._update_faults: list[tuple[int, bool]] = []
        self.writes: Counter[str] = Counter()  # "path/id" -> updates accepted
        self._data_lock = threading.RLock()
        for path, records in self.resources.items():
            for record in records.values():
                self._message(TYPE_IDS[path], record, _CREATED[TYPE_IDS[path]], record.get("createdAt"))

    # ---------------------------------------------------------------- what tests use

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "base_url": self.url,
            "auth_url": self.url,
            "project": PROJECT_KEY,
            "client_id_env": "CTP_CLIENT_ID",
            "client_secret_env": "CTP_CLIENT_SECRET",
            **overrides,
        }

    @property
    def env(self) -> dict[str, str]:
        return {"CTP_CLIENT_ID": self.client_id, "CTP_CLIENT_SECRET": self.client_secret}

    def fail_next(self, count: int, status: int = 503, *, html: bool = False) -> None:
        """The next `count` API calls answer `status` (502 BadGateway, 503 OverCapacity, 500 General), as
        commercetools' JSON or, from the edge, as an HTML page."""
        with self._data_lock:
            self._edge_errors.extend([(status, html)] * count)

    def interfere(self, count: int = 1, change: Callable[[str, dict[str, Any]], None] = lambda path, record: None):
        """Another writer (a checkout reserving stock, a support agent) changes the record the next `count`
        updates are about, just before they land: their version is stale and they meet a 409."""
        with self._data_lock:
            self._interference.extend([change] * count)

    def fail_updates(self, count: int, status: int = 503, *, after_applying: bool = False) -> None:
        """The next `count` updates answer `status`; `after_applying`: once the update is applied."""
        with self._data_lock:
            self._update_faults.extend([(status, after_applying)] * count)

    def update(self, path: str, resource_id: str, message_type: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change a stored resource as the platform would: new version, lastModifiedAt and a Message."""
        with self._data_lock:
            record = self.resources[path][resource_id]
            change(record)
            record["version"] += 1
            record["lastModifiedAt"] = mapping.to_timestamp(datetime.now(UTC))
            self._message(TYPE_IDS[path], record, message_type, record["lastModifiedAt"])

    def delete(self, path: str, resource_id: str) -> None:
        """Delete a stored resource as the platform would: it is no longer found, and a Message says so."""
        with self._data_lock:
            record = self.resources[path].pop(resource_id)
            record["version"] += 1
            self._message(TYPE_IDS[path], record, _DELETED[TYPE_IDS[path]], mapping.to_timestamp(datetime.now(UTC)))

    def create(self, path: str, record: dict[str, Any]) -> None:
        """Add a resource (at least its `id`) as if created now, with its creation Message."""
        with self._data_lock:
            now = mapping.to_timestamp(datetime.now(UTC))
            record = {"version": 1, **record, "createdAt": now, "lastModifiedAt": now}
            self.resources[path][record["id"]] = record
            self._message(TYPE_IDS[path], record, _CREATED[TYPE_IDS[path]], now)

    # ---------------------------------------------------------------- the HTTP surface

    def authenticate(self, request: Request) -> Response | None:
        if request.path == "/oauth/token":
            return None
        header = request.headers.get("authorization", "")
        token = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if token is None:
            return auth_error(401, "invalid_token", "invalid_token")
        token["uses"] += 1
        limit = self.faults.expire_token_after
        if time.monotonic() > token["expires"] or (limit is not None and token["uses"] > limit):
            return auth_error(401, "invalid_token", "invalid_token")
        needed = READ_SCOPES.get(_endpoint(request.path))
        if needed and request.method == "POST":
            needed = needed.replace("view_", "manage_")
        if needed and not _grants(token["scopes"], needed):
            message = f"Insufficient scope. One of the following scopes is missing: {needed}"
            return auth_error(403, "insufficient_scope", message)
        return None

    def error(self, status: int, message: str) -> Response:
        code = {401: "invalid_token", 403: "insufficient_scope", 502: "BadGateway", 503: "OverCapacity"}
        return Response(status, error_body(status, code.get(status, "General"), message))

    def rate_limited(self, request: Request) -> Response:
        return Response(429, error_body(429, "TooManyRequests", "Too many requests."))

    def handle(self, request: Request) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        edge = self._take_edge_error()
        if edge is not None:
            return edge
        parts = request.path.strip("/").split("/")
        if parts[0] == PROJECT_KEY and len(parts) == 3 and request.method == "POST" and parts[1] in UPDATABLE:
            return self._update_request(parts[1], parts[2], request)
        if parts[0] != PROJECT_KEY or len(parts) > 2 or request.method != "GET":
            return Response(404, error_body(404, "ResourceNotFound", f"URI '{request.path}' not found."))
        if len(parts) == 1:
            return Response(200, self._project())
        if parts[1] == "messages":
            return self._query(request, self._live_messages(), lambda record: record)
        if parts[1] not in self.resources:
            return Response(404, error_body(404, "ResourceNotFound", f"URI '{request.path}' not found."))
        with self._data_lock:
            records = list(self.resources[parts[1]].values())
            return self._query(request, records, lambda record: self._served(parts[1], record, request))

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode())) | request.query
        if _basic_credentials(request.headers.get("authorization", "")) != (self.client_id, self.client_secret):
            return auth_error(
                401, "invalid_client", "Please provide valid client credentials using HTTP Basic Authentication."
            )
        if form.get("grant_type") != "client_credentials":
            return auth_error(400, "unsupported_grant_type", "Invalid grant type.")
        requested = tuple(form["scope"].split()) if form.get("scope") else self.granted_scopes
        refused = [s for s in requested if not _grants(self.granted_scopes, s.split(":")[0])]
        if refused:
            return auth_error(400, "invalid_scope", f"Invalid scopes: {' '.join(refused)}")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = {"expires": time.monotonic() + self.token_lifetime, "uses": 0, "scopes": requested}
        scope = " ".join(s if ":" in s else f"{s}:{PROJECT_KEY}" for s in requested)
        return Response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime), "scope": scope}
        )

    def _take_edge_error(self) -> Response | None:
        with self._data_lock:
            if not self._edge_errors:
                return None
            status, html = self._edge_errors.pop(0)
        if html:
            page = f"<html><head><title>{status}</title></head><body><h1>{status} Bad Gateway</h1></body></html>"
            return Response(status, page.encode(), content_type="text/html")
        code = {502: "BadGateway", 503: "OverCapacity"}.get(status, "General")
        return Response(status, error_body(status, code, "The service is temporarily unavailable."))

    def _project(self) -> dict[str, Any]:
        return {
            "key": PROJECT_KEY,
            "name": "driftwatch simulator",
            "version": 1,
            "currencies": ["EUR", "GBP"],
            "messages": {"enabled": self.messages_enabled, "deleteDaysAfterCreation": self.retention_days},
        }

    def _served(self, path: str, record: dict[str, Any], request: Request) -> dict[str, Any]:
        record = json.loads(json.dumps(record))  # the client gets a copy, never the stored object
        if path == "inventory" and "supplyChannel" in request.query.get("expand", "") and "supplyChannel" in record:
            channel = record["supplyChannel"]
            channel["obj"] = {"id": channel["id"], "key": self.channels[channel["id"]], "roles": ["InventorySupply"]}
        if path == "orders" and self.faults.unknown_enums and record.get("shipmentState"):
            record["shipmentState"] = "Rerouted"  # a value the documentation does not list (yet)
        return record

    def _query(
        self, request: Request, records: list[dict[str, Any]], serve: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Response:
        query = request.query
        try:
            limit = int(query.get("limit", 20))
            offset = int(query.get("offset", 0))
            matches = _predicate(query["where"]) if query.get("where") else (lambda record: True)
        except (ValueError, KeyError) as error:
            return Response(400, error_body(400, "InvalidInput", f"Malformed parameter: {error}"))
        if not 0 <= limit <= MAX_LIMIT:
            return Response(400, error_body(400, "InvalidInput", f"The limit must be between 0 and {MAX_LIMIT}."))
        if not 0 <= offset <= MAX_OFFSET:
            return Response(400, error_body(400, "InvalidInput", f"The offset must be between 0 and {MAX_OFFSET}."))
        selected = [r for r in records if matches(r)]
        field, _, direction = query.get("sort", "id asc").partition(" ")
        selected.sort(key=lambda r: r.get(field) or "", reverse=direction.strip() == "desc")
        page = [serve(record) for record in selected[offset : offset + limit]]
        body: dict[str, Any] = {"limit": limit, "offset": offset, "count": len(page), "results": page}
        if query.get("withTotal", "true") != "false":
            body["total"] = min(len(selected), MAX_OFFSET) if query.get("where") else len(selected)
        self.page_served()
        return Response(200, body)

    # ---------------------------------------------------------------- updates

    def _update_request(self, path: str, resource_id: str, request: Request) -> Response:
        try:
            body = request.json()
            version, actions = int(body["version"]), list(body["actions"])
        except (ValueError, KeyError, TypeError) as error:
            return Response(
                400, error_body(400, "InvalidJsonInput", f"Request body does not contain valid JSON: {error}")
            )
        if len(actions) > MAX_UPDATE_ACTIONS:
            message = f"Too many update actions: {len(actions)}, the maximum is {MAX_UPDATE_ACTIONS}."
            return Response(400, error_body(400, "InvalidInput", message))
        with self._data_lock:
            status, after_applying = self._update_faults.pop(0) if self._update_faults else (None, False)
            if status is not None and not after_applying:
                return self._transient(status)
            current = self.resources[path].get(resource_id)
            if current is None:
                message = f"The Resource with ID '{resource_id}' was not found."
                return Response(404, error_body(404, "ResourceNotFound", message))
            if self._interference:
                self._interference.pop(0)(path, current)
                current["version"] += 1
                current["lastModifiedAt"] = mapping.to_timestamp(datetime.now(UTC))
            if version != current["version"]:
                message = (
                    f"Object {resource_id} has a different version than expected. "
                    f"Expected: {version} - Actual: {current['version']}."
                )
                return Response(
                    409, error_body(409, "ConcurrentModification", message, currentVersion=current["version"])
                )
            record = json.loads(json.dumps(current))  # all actions apply, or none
            messages = []
            for action in actions:
                try:
                    messages.append(self._apply(path, record, action))
                except _Rejected as rejected:
                    return Response(400, error_body(400, rejected.code, rejected.message, **rejected.extra))
            record["version"] += 1
            record["lastModifiedAt"] = mapping.to_timestamp(datetime.now(UTC))
            self.resources[path][resource_id] = record
            for message_type in messages:
                self._message(TYPE_IDS[path], record, message_type, record["lastModifiedAt"])
            self.writes[f"{path}/{resource_id}"] += 1
            return self._transient(status) if status is not None else Response(200, json.loads(json.dumps(record)))

    def _transient(self, status: int) -> Response:
        if status == 429:
            return Response(429, error_body(429, "TooManyRequests", "Too many requests."), {"Retry-After": "0"})
        code = {502: "BadGateway", 503: "OverCapacity"}.get(status, "General")
        return Response(status, error_body(status, code, "The service is temporarily unavailable."))

    def _apply(self, path: str, record: dict[str, Any], action: dict[str, Any]) -> str:
        """Apply one update action to `record`; the name of the Message it produces."""
        name = action.get("action")
        prefix = {"inventory": "InventoryEntry", "orders": "Order", "customers": "Customer"}[path]
        if name == "setCustomField":
            return prefix + _set_custom_field(record, action)
        if name == "setCustomType":
            record["custom"] = {
                "type": {"typeId": "type", **_type_identifier(action)},
                "fields": action.get("fields") or {},
            }
            return prefix + "CustomTypeSet"
        handler = _UPDATES.get((path, name))
        if handler is None:
            raise _Rejected("InvalidInput", f"Unknown update action '{name}' for {TYPE_IDS[path]}.")
        return handler(self, record, action)

    # ---------------------------------------------------------------- messages

    def _message(self, type_id: str, record: dict[str, Any], message_type: str, created_at: str | None) -> None:
        sequence = self._sequences[record["id"]] = self._sequences.get(record["id"], 0) + 1
        created = created_at or mapping.to_timestamp(datetime.now(UTC))
        self.messages.append(
            {
                "id": mapping.stable_id("message", record["id"], sequence),
                "version": 1,
                "sequenceNumber": sequence,
                "resource": {"typeId": type_id, "id": record["id"]},
                "resourceVersion": record.get("version", 1),
                "type": message_type,
                "createdAt": created,
                "lastModifiedAt": created,
            }
        )

    def _live_messages(self) -> list[dict[str, Any]]:
        if not self.messages_enabled:
            return []
        oldest = datetime.now(UTC) - timedelta(days=self.retention_days)
        with self._data_lock:
            return [m for m in self.messages if _parse_time(m["createdAt"]) >= oldest]


# -------------------------------------------------------------------- update actions


class _Rejected(Exception):
    """An update action the API refuses with 400: its error code, message and extra fields."""

    def __init__(self, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def _required(action: dict[str, Any], field: str) -> Any:
    if action.get(field) is None:
        raise _Rejected("RequiredField", f"A value is required for field {field}.", field=field)
    return action[field]


def _enum(action: dict[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = _required(action, field)
    if value not in allowed:
        raise _Rejected(
            "InvalidField",
            f"The value '{value}' is not valid for field '{field}'.",
            field=field,
            invalidValue=value,
            allowedValues=list(allowed),
        )
    return value


def _type_identifier(action: dict[str, Any]) -> dict[str, str]:
    identifier = {k: v for k, v in (action.get("type") or {}).items() if k in ("id", "key")}
    if not identifier:
        raise _Rejected("RequiredField", "A value is required for field type.", field="type")
    return identifier


def _set_custom_field(record: dict[str, Any], action: dict[str, Any]) -> str:
    """Set or (without a value) remove a custom field; the suffix of the Message name."""
    custom = record.get("custom")
    if custom is None:
        raise _Rejected("InvalidOperation", "This resource has no custom type: set one with setCustomType.")
    name, fields = _required(action, "name"), custom.setdefault("fields", {})
    if action.get("value") is None:
        if name not in fields:
            raise _Rejected("InvalidOperation", f"Cannot remove custom field '{name}': it is not set.")
        del fields[name]
        return "CustomFieldRemoved"
    suffix = "CustomFieldChanged" if name in fields else "CustomFieldAdded"
    fields[name] = action["value"]
    return suffix


def _change_quantity(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    quantity = _required(action, "quantity")
    if not isinstance(quantity, int) or quantity < 0:
        raise _Rejected("InvalidField", f"The value '{quantity}' is not valid for field 'quantity'.", field="quantity")
    reserved = record.get("quantityOnStock", 0) - record.get("availableQuantity", 0)
    record["quantityOnStock"], record["availableQuantity"] = quantity, quantity - reserved
    return "InventoryEntryQuantitySet"


def _change_order_state(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    record["orderState"] = _enum(action, "orderState", ORDER_STATES)
    return "OrderStateChanged"


def _change_shipment_state(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    record["shipmentState"] = _enum(action, "shipmentState", SHIPMENT_STATES)
    return "OrderShipmentStateChanged"


def _change_email(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    email = _required(action, "email")
    taken = any(
        other["id"] != record["id"] and str(other.get("email", "")).lower() == email.lower()
        for other in sim.resources["customers"].values()
    )
    if taken:
        raise _Rejected(
            "DuplicateField",
            f"A duplicate value '\"{email}\"' exists for field 'email'.",
            field="email",
            duplicateValue=email,
        )
    record["email"] = email
    return "CustomerEmailChanged"


def _set_name(field: str, message: str) -> Callable[[CommercetoolsSimulator, dict[str, Any], dict[str, Any]], str]:
    def apply(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
        if action.get(field) is None:
            record.pop(field, None)
        else:
            record[field] = action[field]
        return message

    return apply


def _add_address(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    address = dict(_required(action, "address"))
    _required(address, "country")
    address["id"] = str(uuid.uuid4())
    record.setdefault("addresses", []).append(address)
    return "CustomerAddressAdded"


def _change_address(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    index = _address_index(record, action)
    address = dict(_required(action, "address"))
    _required(address, "country")
    record["addresses"][index] = {**address, "id": record["addresses"][index]["id"]}
    return "CustomerAddressChanged"


def _set_default_shipping(sim: CommercetoolsSimulator, record: dict[str, Any], action: dict[str, Any]) -> str:
    record["defaultShippingAddressId"] = record["addresses"][_address_index(record, action)]["id"]
    return "CustomerDefaultShippingAddressSet"


def _address_index(record: dict[str, Any], action: dict[str, Any]) -> int:
    for index, address in enumerate(record.get("addresses") or []):
        if (action.get("addressId") and address.get("id") == action["addressId"]) or (
            action.get("addressKey") and address.get("key") == action["addressKey"]
        ):
            return index
    wanted = action.get("addressId") or action.get("addressKey")
    raise _Rejected("InvalidOperation", f"The customer does not have an address '{wanted}'.")


_UPDATES: dict[tuple[str, str], Callable[[CommercetoolsSimulator, dict[str, Any], dict[str, Any]], str]] = {
    ("inventory", "changeQuantity"): _change_quantity,
    ("orders", "changeOrderState"): _change_order_state,
    ("orders", "changeShipmentState"): _change_shipment_state,
    ("customers", "changeEmail"): _change_email,
    ("customers", "setFirstName"): _set_name("firstName", "CustomerFirstNameSet"),
    ("customers", "setLastName"): _set_name("lastName", "CustomerLastNameSet"),
    ("customers", "addAddress"): _add_address,
    ("customers", "changeAddress"): _change_address,
    ("customers", "setDefaultShippingAddress"): _set_default_shipping,
}


# -------------------------------------------------------------------- dataset -> resources


def _resources(dataset: Mapping[str, pl.DataFrame]) -> dict[str, dict[str, dict[str, Any]]]:
    names = mapping.Names()
    frames = {entity: _canonical(frame, entity) for entity, frame in dataset.items()}
    empty: list[dict[str, Any]] = []
    built = {
        "customers": mapping.customer_resources(frames["customers"], names) if "customers" in frames else empty,
        "orders": (
            mapping.order_resources(
                frames["orders"], frames.get("order_lines"), frames.get("returns"), names, frames.get("shipments")
            )
            if "orders" in frames
            else empty
        ),
        "inventory": mapping.inventory_resources(frames["inventory"]) if "inventory" in frames else empty,
        "product-projections": mapping.product_resources(frames["products"], names) if "products" in frames else empty,
    }
    return {path: {r["id"]: r for r in records} for path, records in built.items()}


def _canonical(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """Canonical dtypes, with every column of the entity (absent ones null)."""
    good = coerce(frame, entity, origin=f"simulator {entity}").good
    schema = ENTITIES[entity].schema
    return good.with_columns(pl.lit(None, dtype).alias(col) for col, dtype in schema.items() if col not in good.columns)


def _locations(dataset: Mapping[str, pl.DataFrame]) -> set[str]:
    if "inventory" not in dataset:
        return set()
    return {
        loc for loc in dataset["inventory"]["location"].cast(pl.String).to_list() if loc and loc != mapping.NO_LOCATION
    }


# -------------------------------------------------------------------- query predicates

_COMPARISON = re.compile(r'^(\w+)\s*(>=|<=|!=|>|<|=)\s*(".*"|-?\d+(?:\.\d+)?|true|false)$', re.S)
_MEMBERSHIP = re.compile(r"^(\w+)\s+in\s*\((.*)\)$", re.S)
_NESTED = re.compile(r"^(\w+)\s*\((.*)\)$", re.S)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _predicate(text: str) -> Callable[[dict[str, Any]], bool]:
    """The subset of commercetools query predicates a connector sends: `a and b`, comparisons, `in`, and
    `field(...)` to descend into an object. Anything else is refused as the API refuses bad input."""
    clauses = [_clause(part) for part in _split_and(text.strip())]
    return lambda record: all(clause(record) for clause in clauses)


def _clause(text: str) -> Callable[[dict[str, Any]], bool]:
    text = text.strip()
    if match := _COMPARISON.match(text):
        field, operator, literal = match.groups()
        value, compare = json.loads(literal), _OPERATORS[operator]
        if _is_timestamp(value):  # timestamps compare as instants, whatever their precision
            instant = _parse_time(value)
            return lambda record: record.get(field) is not None and compare(_parse_time(record[field]), instant)
        return lambda record: record.get(field) is not None and compare(record[field], value)
    if match := _MEMBERSHIP.match(text):
        field, values = match.group(1), set(json.loads(f"[{match.group(2)}]"))
        return lambda record: record.get(field) in values
    if match := _NESTED.match(text):
        field, inner = match.group(1), _predicate(match.group(2))
        return lambda record: isinstance(record.get(field), dict) and inner(record[field])
    raise ValueError(f"where: cannot parse {text!r}")


def _split_and(text: str) -> list[str]:
    """Split on top-level ` and `, outside quotes and parentheses."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        char = text[i]
        if char == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and text.startswith(" and ", i):
            parts.append(text[start:i])
            start = i = i + len(" and ")
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", value) is not None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _endpoint(path: str) -> str:
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 else ""


def _grants(scopes: tuple[str, ...], needed: str) -> bool:
    held = {scope.split(":")[0] for scope in scopes}
    manage = needed.replace("view_", "manage_")
    return bool(held & {needed, manage, "manage_project"})


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password
