"""A loopback Ometria Data API v2: contacts, orders and products read with `limit`/`offset`.

As Ometria documents: the `X-Ometria-Auth` key (403 "API key is not authorised to access this resource"
otherwise), at most 250 records a page, 4 requests a second on the Data API and 8 on `/v2/push`, and 429s
that carry no `Retry-After`. Records come in the order they were stored (Ometria's internal id), so a
record added while a client pages shows up on a later page.

`POST /v2/push` takes a JSON array of at most 100 records of one `@type` (400 otherwise) and answers 202
`{"status": "OK", "request_id", "accepted", "rejected"}`: a record without an `id`, of an unknown type or
over 60 KB is rejected at once; the accepted ones are validated and merged (only the fields sent change,
and `timestamp_updated` becomes the time of the merge) `processing_delay` seconds later, and a record
that fails validation then is visible only in `GET /v2/push/_errors` (the 100 most recent errors, newest
first). Each error carries the documented
`error_message` and `error_path`, and, so that a client can tell which record failed, the `request_id` of
its push and the record's `@type` and `id` (fields the public documentation does not show). More than
50,000 records waiting to be processed is a 429. `writes` counts the merged records per "type/id".
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors.ometria import mapping
from driftwatch.simulators import _base as base

API_KEY_ENV = "OMETRIA_API_KEY"
MAX_PAGE = 250
UNKNOWN_STATUS = "on_hold"  # what `unknown_enums` serves: a status the documented vocabulary lacks
MAX_PUSH = 100
MAX_RECORD_BYTES = 60 * 1024
MAX_QUEUED = 50_000
ERRORS_KEPT = 100
ORDER_STATUSES = ("pending", "shipped", "complete", "cancelled")
PATH_OF = {"contact": "/v2/contacts", "order": "/v2/orders", "product": "/v2/products"}
NEW_RECORD_NEEDS = {"order": ("timestamp", "grand_total", "currency")}
ENTITIES_OF = {
    "/v2/contacts": ("customers",),
    "/v2/orders": ("orders", "order_lines"),
    "/v2/products": ("products", "inventory"),
}


class OmetriaSimulator(base.Simulator):
    name = "ometria"
    rate_limits: ClassVar = {"read": [(4, 1.0)], "push": [(8, 1.0)]}

    def __init__(
        self,
        dataset: dict[str, pl.DataFrame] | None = None,
        *,
        api_key: str = "om-sim-key",
        processing_delay: float = 0.05,
        **kwargs: Any,
    ):
        kwargs.setdefault("retry_after", "none")
        super().__init__(dataset, **kwargs)
        self.faults.set(storm_retry_after=None)  # the platform documents no Retry-After
        self.api_key = api_key
        self.processing_delay = processing_delay
        self.writes: Counter[str] = Counter()
        self._cache: dict[str, tuple[tuple[int, ...], list[dict[str, Any]]]] = {}
        self._queue: deque[tuple[float, str, dict[str, Any]]] = deque()  # (due, request_id, record)
        self._errors: deque[dict[str, Any]] = deque(maxlen=ERRORS_KEPT)
        self._push_lock = threading.Lock()

    @property
    def env(self) -> dict[str, str]:
        return {API_KEY_ENV: self.api_key}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return super().settings(api_key_env=API_KEY_ENV, **overrides)

    def authenticate(self, request: base.Request) -> base.Response | None:
        if request.headers.get("x-ometria-auth") != self.api_key:
            return base.Response(403, {"message": "API key is not authorised to access this resource"})
        return None

    def bucket(self, request: base.Request) -> str | None:
        return "push" if request.path.startswith("/v2/push") else "read"

    def error(self, status: int, message: str) -> base.Response:
        return base.Response(status, {"message": message})

    def rate_limited(self, request: base.Request) -> base.Response:
        return base.Response(429, {"message": "Too many requests: please reduce your rate"})

    def handle(self, request: base.Request) -> base.Response:
        self.process(due_only=True)
        if request.method == "POST" and request.path == "/v2/push":
            return self._push(request.body)
        if request.method == "GET" and request.path == "/v2/push/_errors":
            with self._push_lock:
                return base.Response(200, list(reversed(self._errors)))
        if request.method != "GET" or request.path not in ENTITIES_OF:
            return base.Response(404, {"message": f"no such resource: {request.method} {request.path}"})
        try:
            limit = int(request.query.get("limit", 10))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return base.Response(400, {"message": "limit and offset must be whole numbers"})
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            return base.Response(400, {"message": f"limit must be between 1 and {MAX_PAGE}, offset at least 0"})
        page = self._records(request.path)[offset : offset + limit]
        if self.faults.unknown_enums and request.path == "/v2/orders":
            page = [{**r, "status": UNKNOWN_STATUS} for r in page]
        self.page_served()
        return base.Response(200, page)

    def _records(self, path: str) -> list[dict[str, Any]]:
        """The records of a resource, rebuilt only when a frame behind it was replaced."""
        entities = ENTITIES_OF[path]
        version = tuple(id(self.dataset.get(e)) for e in entities)
        cached = self._cache.get(path)
        if cached is None or cached[0] != version:
            frames = [self.dataset.get(e) for e in entities]
            builder = {
                "/v2/contacts": mapping.contacts_from_frame,
                "/v2/orders": mapping.orders_from_frames,
                "/v2/products": mapping.products_from_frames,
            }[path]
            cached = (version, list(builder(*frames)))
            self._cache[path] = cached
        return cached[1]

    # --- push -------------------------------------------------------------------------------------------

    def _push(self, body: bytes) -> base.Response:
        try:
            records = json.loads(body, parse_float=Decimal)
        except ValueError:
            return base.Response(400, {"message": "Payload invalid: not JSON"})
        if not isinstance(records, list):
            return base.Response(400, {"message": "Payload invalid: expected an array of records"})
        if len(records) > MAX_PUSH:
            return base.Response(400, {"message": f"Payload invalid: at most {MAX_PUSH} records per request"})
        if len({r.get("@type") for r in records if isinstance(r, dict)}) > 1:
            return base.Response(400, {"message": "Payload invalid: one record type per request"})
        request_id = str(uuid.uuid4())
        due = time.monotonic() + self.processing_delay
        with self._push_lock:
            if len(self._queue) + len(records) > MAX_QUEUED:
                return base.Response(
                    429, {"message": "Too many records waiting to be processed: please reduce your rate"}
                )
            rejected = 0
            for record in records:
                problem = _refused_at_once(record)
                if problem:
                    rejected += 1
                    self._error(request_id, record if isinstance(record, dict) else {}, problem, "root")
                else:
                    self._queue.append((due, request_id, record))
        accepted = len(records) - rejected
        return base.Response(
            202, {"status": "OK", "request_id": request_id, "accepted": accepted, "rejected": rejected}
        )

    def process(self, *, due_only: bool = False) -> None:
        """Validate and merge the records pushed so far (by default all of them, due or not)."""
        with self._push_lock:
            now = time.monotonic()
            taken = []
            while self._queue and (not due_only or self._queue[0][0] <= now):
                taken.append(self._queue.popleft())
            for kind in {record["@type"] for _, _, record in taken}:
                self._process(kind, [(request_id, r) for _, request_id, r in taken if r["@type"] == kind])

    def _process(self, kind: str, pushed: list[tuple[str, dict[str, Any]]]) -> None:
        """One record type's pushed records, in the order received: each validated, then merged (only the
        fields sent change); the resource's canonical frames are rebuilt once from its records."""
        path = PATH_OF[kind]
        records = {str(r["id"]): dict(r) for r in self._records(path)}
        for request_id, record in pushed:
            problem = _invalid(record, str(record["id"]) in records)
            if problem:
                self._error(request_id, record, *problem)
                continue
            current = records.setdefault(str(record["id"]), {})
            current.update(record, timestamp_updated=datetime.now(UTC).isoformat())
            self.writes[f"{kind}/{record['id']}"] += 1
        merged = list(records.values())
        if kind == "contact":
            frames = {"customers": mapping.frame("customers", (mapping.contact_to_row(r) for r in merged))}
        elif kind == "order":
            rows = [mapping.order_to_rows(r) for r in merged]
            frames = {
                "orders": mapping.frame("orders", (order for order, _ in rows)),
                "order_lines": mapping.frame("order_lines", (line for _, lines in rows for line in lines)),
            }
        else:
            rows = [mapping.product_to_rows(r) for r in merged]
            frames = {
                "products": mapping.frame("products", (product for product, _ in rows)),
                "inventory": mapping.frame("inventory", (stock for _, stock in rows if stock["available"] is not None)),
            }
        self.dataset.update(frames)
        self._cache[path] = (tuple(id(self.dataset.get(e)) for e in ENTITIES_OF[path]), merged)

    def _error(self, request_id: str, record: dict[str, Any], message: str, path: str) -> None:
        self._errors.append(
            {
                "error_message": message,
                "error_path": path,
                "request_id": request_id,
                "@type": record.get("@type"),
                "id": record.get("id"),
            }
        )


def _invalid(record: dict[str, Any], exists: bool) -> tuple[str, str] | None:
    """Ometria's asynchronous validation: (message, path) of the first problem, or None."""
    kind = record["@type"]
    if not exists:
        for field in NEW_RECORD_NEEDS.get(kind, ()):
            if record.get(field) in (None, ""):
                return "required field missing", f"root > {field}"
    email = record.get("email")
    if kind == "contact" and email is not None and not _looks_like_email(str(email)):
        return "not a valid value", "root > email"
    optin = record.get("marketing_optin")
    if kind == "contact" and optin is not None and optin not in mapping.OPTIN:
        return "not a valid value", "root > marketing_optin"
    if kind == "order" and record.get("status") is not None and record["status"] not in ORDER_STATUSES:
        return "not a valid value", "root > status"
    return None


def _refused_at_once(record: Any) -> str | None:
    if not isinstance(record, dict) or record.get("@type") not in PATH_OF:
        return "Payload invalid: @type must be one of contact, order, product"
    if record.get("id") in (None, ""):
        return "Payload invalid: every record needs an id"
    if len(json.dumps(record, default=str).encode()) > MAX_RECORD_BYTES:
        return "Payload invalid: Record is too large."
    return None


def _looks_like_email(value: str) -> bool:
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain and " " not in value
