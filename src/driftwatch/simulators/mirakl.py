"""A loopback Mirakl MMP seller API serving canonical frames as offers, orders, carriers, transactions and
invoices, the way the documented API pages, limits and fails.

What it reproduces: the raw shop key in `Authorization` (401 `{"status", "message"}` otherwise); offset
pages (`max` <= 100, `offset`, `total_count`) for OF21, OR11 and IV01; seek pages for TL02 (`limit` <= 2000,
an opaque `page_token` that carries the query, since Mirakl ignores other parameters once a token is sent,
no `next_page_token` on the last page); OR11's `start_update_date` moved back by a few minutes so that
consecutive incremental pulls overlap; call ceilings (OR11 once a minute per listing, TL02 20 a minute and
60 an hour) answered with 429 and, as documented, no `Retry-After` unless asked for.

OF52-OF54, the asynchronous offer export: a differential export (`last_request_date`) lists every offer
updated since then, active or not, and every offer deleted since then (offer-id, product-sku, shop-id,
shop-sku, active and deleted only); without it, the active offers (`include_inactive_offers` adds the
others; it is refused in differential mode). Mirakl stamps each offer's `last-updated`: the simulator
stamps an offer whenever it finds it changed (by an import or in the dataset) and records one gone from the
dataset as deleted then. The export is PENDING for `export_seconds`, then COMPLETED with the URLs of its
`;`-separated CSV chunks; OF52 may be called once a minute and OF53 once every 10 s.

The write side repair uses: STO01 stock imports (a `;` CSV in `multipart/form-data`) and OF24 offer imports
(JSON), each once a minute, processed asynchronously (WAITING, RUNNING, then COMPLETE or FAILED after
`import_seconds`, whether or not anyone polls), polled through STO02 (once every 15 s) and OF02, with the
rejected lines in a `;` CSV error report (STO03, OF03) whose first two columns are the line number and the
reason; OF24 resets every field an offer line leaves out and answers a duplicate of a pending import with
that import's id; OR21 accept, OR23 tracking and OR24 ship, with the documented error codes in `message`.
Accepted writes change what later reads serve, and `writes` counts them per (operation, record key).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors.mirakl import mapping
from driftwatch.connectors.mirakl.client import CALL_LIMITS, OFFSET_PAGE_SIZE, SEEK_PAGE_SIZE
from driftwatch.connectors.mirakl.push import RENAMED_FIELDS, SAME_FIELDS, STOCK_COLUMNS, WRITE_CALL_LIMITS
from driftwatch.entities import ENTITIES
from driftwatch.normalize import coerce
from driftwatch.simulators._base import Request, Response, RetryAfterStyle, Simulator, Windows

API_KEY_ENV = "MIRAKL_API_KEY"
UPDATE_OVERLAP = timedelta(minutes=5)  # how far OR11 moves `start_update_date` back
_FUTURE_VALUE = "NEW_VALUE_NOT_IN_THE_DOCUMENTATION"
Record = dict[str, Any]
PRODUCT_ID_TYPES = frozenset({"SHOP_SKU", "SKU", "EAN", "UPC", "ISBN", "MPN"})
OF24_REQUIRED = ("shop_sku", "product_id", "product_id_type", "price", "state_code", "update_delete")
OFFER_REPORT_COLUMNS = {"sku": "shop_sku", "product-id": "product_id", "product-id-type": "product_id_type",
                        "price": "price", "quantity": "quantity", "state": "state_code",
                        "update-delete": "update_delete"}  # fmt: skip
TRACKABLE_STATES = frozenset({"SHIPPING", "SHIPPED", "TO_COLLECT"})
EXPORT_PATH = "/api/offers/export/async"
EXPORT_COLUMNS = ("offer-id", "product-sku", "shop-sku", "price", "total-price", "quantity", "currency-iso-code",
                  "state-code", "active", "deleted", "available-start-date", "available-end-date",
                  "min-order-quantity", "date-created", "last-updated")  # fmt: skip
DELETED_COLUMNS = ("offer-id", "product-sku", "shop-id", "shop-sku", "active", "deleted")
SHOP_ID = 2001
_WRITE_BUCKETS = (
    ("POST", re.compile(r"/api/offers"), "OF24"),
    ("POST", re.compile(r"/api/offers/stock/imports"), "STO01"),
    ("GET", re.compile(r"/api/offers/imports/[^/]+"), "OF02"),
    ("GET", re.compile(r"/api/offers/imports/[^/]+/error_report"), "OF03"),
    ("GET", re.compile(r"/api/offers/stock/imports/[^/]+/status"), "STO02"),
    ("GET", re.compile(r"/api/offers/stock/imports/[^/]+/error_report"), "STO03"),
    ("POST", re.compile(EXPORT_PATH), "OF52"),
    ("GET", re.compile(EXPORT_PATH + r"/status/[^/]+"), "OF53"),
)


@dataclass
class _Export:
    """One OF52 export: its CSV chunks, ready once `export_seconds` have passed."""

    tracking_id: str
    digest: str
    submitted: float  # monotonic
    chunks: list[bytes]


@dataclass
class _Import:
    """One asynchronous import: its parsed lines until processed, then its outcome."""

    import_id: int | str
    kind: str  # "offers" (OF24) or "stock" (STO01)
    lines: list[Record]
    digest: str
    submitted: float  # monotonic
    created_at: str
    failure: str | None = None  # set at submission when the file itself is unreadable
    status: str = "WAITING"
    errors: list[Record] = field(default_factory=list)  # the error report's rows
    counts: Counter[str] = field(default_factory=Counter)


class MiraklSimulator(Simulator):
    """`unnumbered_documents`: TL02 lines name their accounting document by id only (IV01 numbers it).
    `carriers_by_name`: orders carry the carrier's label (`shipping_company`) instead of its code.
    Write side: `import_seconds` (how long an import waits and runs), `partial_acceptance` (OR21 may accept
    some lines and refuse others), `operator_products` (catalogue products an offer may be created for,
    besides those already offered); `writes` counts the writes applied per (operation, SKU or order id)."""

    name = "mirakl"
    rate_limits: ClassVar[dict[str, Windows]] = {**CALL_LIMITS, **WRITE_CALL_LIMITS}

    def __init__(
        self,
        dataset: dict[str, pl.DataFrame] | None = None,
        *,
        rate_limits: dict[str, Windows] | None = None,
        retry_after: RetryAfterStyle = "none",
        api_key: str | None = None,
    ):
        super().__init__(dataset, rate_limits=rate_limits, retry_after=retry_after)
        self.api_key = api_key or f"shop-{secrets.token_hex(16)}"
        self.unnumbered_documents = False
        self.carriers_by_name = False
        self._cache: dict[str, tuple[tuple[pl.DataFrame | None, ...], list[Record]]] = {}
        self.import_seconds = 0.0  # how long an import waits and runs before Mirakl has processed it
        self.partial_acceptance = False  # the shop may accept some lines of an order and refuse others
        self.operator_products: set[str] = set()  # catalogue products the shop may offer, beyond its offers
        self.writes: Counter[tuple[str, str]] = Counter()  # (operation, offer SKU or order id) -> applied
        self._changed_offers: dict[str, Record | None] = {}  # written offers by SKU (None: deleted)
        self._changed_orders: dict[str, Record] = {}
        self._merged_offers: tuple[list[Record], int, list[Record]] | None = None
        self._built_offer_index: tuple[list[Record], dict[str, Record], set[str]] | None = None
        self._offer_version = 0
        self._imports: dict[str, _Import] = {}
        self._write_lock = threading.RLock()
        self.export_seconds = 0.0  # how long an offer export stays PENDING
        self.export_failure: str | None = None  # exports fail with this detail (FAILED in OF53)
        self._exports: dict[str, _Export] = {}
        # shop SKU -> (digest of the offer, date created, last updated, the offer) as Mirakl keeps them
        self._stamps: dict[str, tuple[str, str, str, Record]] = {}
        self._stamped_from: list[Record] | None = None
        self._deleted: dict[str, tuple[Record, str]] = {}  # shop SKU -> (the offer, when it was deleted)
        self._offer_ids: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        return {API_KEY_ENV: self.api_key}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return super().settings(api_key_env=API_KEY_ENV, **overrides)

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != self.api_key:
            return _error(401, "Unauthorized: invalid or missing shop API key")
        return None

    def bucket(self, request: Request) -> str | None:
        if request.path == "/api/orders" and request.query.get("offset", "0") == "0":
            return "OR11"
        if request.path == "/api/sellerpayment/transactions_logs":
            return "TL02"
        for method, path, operation in _WRITE_BUCKETS:
            if request.method == method and path.fullmatch(request.path):
                return operation
        return None

    def error(self, status: int, message: str) -> Response:
        return _error(status, message)

    def rate_limited(self, request: Request) -> Response:
        return _error(429, "Too many requests")

    def __enter__(self) -> MiraklSimulator:
        self._stamp_offers()  # the offers as they stand when the shop opens
        return super().__enter__()

    def handle(self, request: Request) -> Response:
        with self._write_lock:  # imports are processed, and writes applied, one request at a time
            self._process_imports()
            if request.path.startswith(EXPORT_PATH):
                return self._export(request)
            if request.method != "GET" or "/imports" in request.path:
                return self._write(request)
            return self._read(request)

    def _read(self, request: Request) -> Response:
        routes = {
            "/api/offers": lambda: self._offset(request, "offers", self._listed_offers(request), self._dress_offer),
            "/api/orders": lambda: self._offset(request, "orders", self._orders(request), self._dress_order),
            "/api/invoices": lambda: self._offset(request, "invoices", self._invoices()),
            "/api/shipping/carriers": lambda: Response(body={"carriers": self._carriers()}),
            "/api/sellerpayment/transactions_logs": lambda: self._seek(request),
        }
        if request.method != "GET" or request.path not in routes:
            return _error(404, f"No resource found for {request.method} {request.path}")
        return routes[request.path]()

    # --- pagination -------------------------------------------------------------------------------------

    def _offset(
        self, request: Request, items: str, records: list[Record], dress: Callable[[Record], Record] = dict
    ) -> Response:
        try:
            size, offset = int(request.query.get("max", 10)), int(request.query.get("offset", 0))
        except ValueError:
            return _error(400, "max and offset must be integers")
        if not 0 < size <= OFFSET_PAGE_SIZE or offset < 0:
            return _error(400, f"max must be between 1 and {OFFSET_PAGE_SIZE}, offset positive")
        self.page_served()
        page = [dress(r) for r in records[offset : offset + size]]
        return Response(body={items: page, "total_count": len(records)})

    def _seek(self, request: Request) -> Response:
        token = request.query.get("page_token")
        query = _untoken(token) if token else dict(request.query)
        if query is None:
            return _error(400, "Invalid page_token")
        limit = int(request.query.get("limit", 10))
        if not 0 < limit <= SEEK_PAGE_SIZE:
            return _error(400, f"limit must be between 1 and {SEEK_PAGE_SIZE}")
        criterion, _, direction = query.get("sort", "dateCreated,DESC").partition(",")
        field = {"dateCreated": "date_created", "lastUpdated": "last_updated"}.get(criterion)
        if field is None:
            return _error(400, f"Unknown sort criterion {criterion}")
        descending = direction.upper() != "ASC"
        lines = self._transactions(field)
        if since := query.get("last_updated_from"):
            lines = [t for t in lines if _moment(t["last_updated"]) >= _moment(since)]
        if descending:
            lines = lines[::-1]
        if "after" in query:
            after = (_moment(query["after"][0]), query["after"][1])
            position = lambda t: (_moment(t[field]), t["id"])  # noqa: E731
            lines = [t for t in lines if (position(t) < after if descending else position(t) > after)]
        page = [self._dress_transaction(t) for t in lines[:limit]]
        body: dict[str, Any] = {"data": page}
        if len(lines) > limit:
            body["next_page_token"] = _token({**query, "after": [page[-1][field], page[-1]["id"]]})
        self.page_served()
        return Response(body=body)

    # --- records built from the canonical dataset -------------------------------------------------------

    def _built(self, name: str, entities: tuple[str, ...], build: Callable[[], list[Record]]) -> list[Record]:
        """Records built from the dataset, rebuilt only when a frame they come from is replaced (a test
        changing the data between pages). Served pages are dressed copies: the cache is never mutated."""
        frames = tuple(self.dataset.get(entity) for entity in entities)
        cached = self._cache.get(name)
        if cached is None or any(a is not b for a, b in zip(cached[0], frames, strict=True)):
            cached = self._cache[name] = (frames, build())
        return cached[1]

    def _rows(self, entity: str) -> list[Record]:
        """The entity's canonical rows, typed."""
        frame = self.dataset.get(entity)
        if frame is None:
            return []
        typed = frame if _is_typed(frame, entity) else coerce(frame, entity, origin=f"simulator {entity}").good
        return typed.to_dicts()

    def _built_offers(self) -> list[Record]:
        """The offers the dataset describes, before any import changed them."""

        def build() -> list[Record]:
            stock = {r["sku"]: r for r in self._rows("inventory") if r["location"] == mapping.ALL_STOCK_LOCATIONS}
            products = sorted(self._rows("products"), key=lambda p: p["sku"])
            offers = [
                _filled(mapping.product_to_offer(self._offer_id(p["sku"]), p, stock.get(p["sku"]))) for p in products
            ]
            return _by_total_price(offers)

        return self._built("offers", ("products", "inventory"), build)

    def _offers(self) -> list[Record]:
        """The offers OF21 serves: the built ones as imports have changed them."""
        built = self._built_offers()
        if not self._changed_offers:
            return built
        merged = self._merged_offers
        if merged is None or merged[0] is not built or merged[1] != self._offer_version:
            offers = {o["shop_sku"]: o for o in built}
            offers.update(self._changed_offers)
            merged = self._merged_offers = (
                built,
                self._offer_version,
                _by_total_price([o for o in offers.values() if o is not None]),
            )
        return merged[2]

    def _listed_offers(self, request: Request) -> list[Record]:
        self._stamp_offers()
        offers = self._offers()
        if sku := request.query.get("sku"):
            return [o for o in offers if o["shop_sku"] == sku]
        return offers

    def _all_orders(self) -> list[Record]:
        def build() -> list[Record]:
            lines, shipments = defaultdict(list), {}
            for line in self._rows("order_lines"):
                lines[line["order_id"]].append(line)
            for shipment in self._rows("shipments"):
                shipments.setdefault(shipment["order_id"], shipment)
            records = [
                mapping.order_to_record(
                    order,
                    sorted(lines[order["order_id"]], key=lambda line: line["line_no"]),
                    shipments.get(order["order_id"]),
                )
                for order in self._rows("orders")
            ]
            # OR11's default sort: creation date, then order id.
            return sorted(records, key=lambda r: (_moment(r["created_date"]), r["order_id"]))

        records = self._built("orders", ("orders", "order_lines", "shipments"), build)
        if self._changed_orders:
            records = [self._changed_orders.get(r["order_id"], r) for r in records]
        return records

    def _orders(self, request: Request) -> list[Record]:
        records = self._all_orders()
        if since := request.query.get("start_update_date"):
            moved_back = mapping.parse_timestamp(since) - UPDATE_OVERLAP
            records = [r for r in records if _moment(r["last_updated_date"]) >= moved_back]
        if ids := request.query.get("order_ids"):
            records = [r for r in records if r["order_id"] in ids.split(",")]
        if refs := request.query.get("order_references_for_seller"):
            wanted = set(refs.split(","))
            records = [r for r in records if (r.get("references") or {}).get("order_reference_for_seller") in wanted]
        return records

    def _carriers(self) -> list[Record]:
        def build() -> list[Record]:
            codes = {s["carrier"] for s in self._rows("shipments") if s.get("carrier")}
            carriers = [{"code": c, "label": f"{c} Parcel Services", "standard_code": c} for c in codes]
            return sorted(carriers, key=lambda c: c["label"])  # SH21 sorts by label

        return self._built("carriers", ("shipments",), build)

    def _transactions(self, field: str) -> list[Record]:
        """TL02 lines in ascending (`field`, id) order."""

        def build() -> list[Record]:
            transactions = [mapping.payout_line_to_transaction(line) for line in self._rows("payout_lines")]
            return sorted(transactions, key=lambda t: (_moment(t[field]), t["id"]))

        transactions = self._built(f"transactions by {field}", ("payout_lines",), build)
        if self.faults.unknown_enums:
            # A transaction type Mirakl added after our mapping was written (the oldest line of all).
            when = mapping.iso(datetime(2000, 1, 1, tzinfo=UTC))
            new = {"id": "TL-" + _FUTURE_VALUE, "type": _FUTURE_VALUE, "amount": 0}
            transactions = [{**new, "date_created": when, "last_updated": when}, *transactions]
        return transactions

    def _invoices(self) -> list[Record]:
        def build() -> list[Record]:
            documents: dict[str, Record] = {}
            for line in self._rows("payout_lines"):
                payout = line.get("payout_id")
                if payout is None:
                    continue
                document = documents.setdefault(payout, _invoice(payout, line))
                if line["line_type"] == "payment":
                    document["total_charged_amount"] = line["amount"]
                    document["payment"] = {"state": "PAID", "transaction_date": mapping.iso(line["transaction_date"])}
            return sorted(documents.values(), key=lambda d: (_moment(d["date_created"]), d["id"]))

        return self._built("invoices", ("payout_lines",), build)

    # --- OF52-OF54: the asynchronous offer export -------------------------------------------------------

    def _stamp_offers(self) -> None:
        """Stamp each offer Mirakl would have stamped since the last look: a new or changed offer was last
        updated now, an offer gone was deleted now. Offers there from the start keep their dataset time."""
        offers = self._offers()
        if offers is self._stamped_from:
            return
        now = mapping.iso(datetime.now(UTC))
        first = self._stamped_from is None
        seen = set()
        for offer in offers:
            sku, digest = offer["shop_sku"], hashlib.sha256(json.dumps(offer, default=str, sort_keys=True).encode())
            seen.add(sku)
            known = self._stamps.get(sku)
            if known is not None and known[0] == digest.hexdigest():
                continue
            if known is None:
                created = self._dataset_time(sku) if first else now
                self._stamps[sku] = (digest.hexdigest(), created, created, offer)
            else:
                self._stamps[sku] = (digest.hexdigest(), known[1], now, offer)
            self._deleted.pop(sku, None)
        for sku in set(self._stamps) - seen:
            self._deleted[sku] = (self._stamps.pop(sku)[3], now)
        self._stamped_from = offers

    def _dataset_time(self, sku: str) -> str:
        """When the dataset says an offer last changed (its product's or stock's updated_at), else long ago."""
        times = [
            row["updated_at"]
            for entity in ("products", "inventory")
            for row in self._rows(entity)
            if row.get("sku") == sku and row.get("updated_at") is not None
        ]
        return mapping.iso(max(times)) if times else "2000-01-01T00:00:00Z"

    def _export(self, request: Request) -> Response:
        tail = request.path.removeprefix(EXPORT_PATH)
        if request.method == "POST" and tail == "":
            return self._submit_export(request)
        if request.method == "GET" and (match := re.fullmatch(r"/status/([^/]+)", tail)):
            return self._export_status(match[1])
        if request.method == "GET" and (match := re.fullmatch(r"/file/([^/]+)", tail)):
            return self._export_file(match[1], request.query.get("file", ""))
        return _error(404, f"No resource found for {request.method} {request.path}")

    def _submit_export(self, request: Request) -> Response:
        try:
            body = request.json() or {}
            since = _moment(body["last_request_date"]) if body.get("last_request_date") else None
            per_chunk = int(body.get("items_per_chunk") or 10_000)
        except (ValueError, TypeError):
            return _error(400, "The request body must be JSON; last_request_date a date-time")
        if since is not None and body.get("include_inactive_offers") is not None:
            return _error(400, "include_inactive_offers cannot be used in differential mode (last_request_date)")
        if body.get("export_type", "text/csv") != "text/csv":
            return _error(400, "This simulator exports text/csv only")
        digest = hashlib.sha256(request.body).hexdigest()
        for pending in self._exports.values():  # a duplicate export request gets the existing export
            if pending.digest == digest and time.monotonic() - pending.submitted < self.export_seconds:
                return Response(body={"tracking_id": pending.tracking_id})
        self._stamp_offers()
        lines = self._export_lines(since, bool(body.get("include_inactive_offers")))
        chunks = [_csv(lines[i : i + per_chunk]) for i in range(0, len(lines), per_chunk)] or [_csv([])]
        export = _Export(secrets.token_hex(8), digest, time.monotonic(), chunks)
        self._exports[export.tracking_id] = export
        return Response(body={"tracking_id": export.tracking_id})

    def _export_lines(self, since: datetime | None, inactive: bool) -> list[Record]:
        lines = [
            _export_line(offer, created, updated)
            for _, created, updated, offer in self._stamps.values()
            if (_moment(updated) >= since if since else offer["active"] or inactive)
        ]
        if since is not None:
            lines += [
                {"offer-id": str(offer["offer_id"]), "product-sku": offer["product_sku"], "shop-id": str(SHOP_ID),
                 "shop-sku": offer["shop_sku"], "active": "false", "deleted": "true"}
                for offer, deleted_at in self._deleted.values()
                if _moment(deleted_at) >= since
            ]  # fmt: skip
        return sorted(lines, key=lambda line: int(line["offer-id"]))  # sorted by offer identifier

    def _export_status(self, tracking_id: str) -> Response:
        export = self._exports.get(tracking_id)
        if export is None:
            return _error(404, f"Export {tracking_id} not found")
        updated = mapping.iso(datetime.now(UTC))
        if time.monotonic() - export.submitted < self.export_seconds:
            return Response(body={"status": "PENDING", "last_updated": updated})
        if self.export_failure is not None:
            return Response(body={"status": "FAILED", "last_updated": updated,
                                  "error": {"code": "1", "detail": self.export_failure}})  # fmt: skip
        where = f"{self.url}{EXPORT_PATH}/file/{tracking_id}?file=of52-export/offers"
        urls = [f"{where}/{n}.csv" for n in range(len(export.chunks))]
        return Response(body={"status": "COMPLETED", "last_updated": updated, "urls": urls})

    def _export_file(self, tracking_id: str, name: str) -> Response:
        export = self._exports.get(tracking_id)
        match = re.fullmatch(r"of52-export/offers/(\d+)\.csv", name)
        if export is None or match is None or int(match[1]) >= len(export.chunks):
            return _error(404, f"No export file {name} for {tracking_id}")
        self.page_served()
        return Response(body=export.chunks[int(match[1])], content_type="text/csv")

    # --- the write side: imports and order updates ------------------------------------------------------

    def _write(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "POST" and path == "/api/offers":
            return self._submit_offers(request)
        if method == "POST" and path == "/api/offers/stock/imports":
            return self._submit_stock(request)
        if method == "PUT" and (match := re.fullmatch(r"/api/orders/([^/]+)/(accept|tracking|ship)", path)):
            return self._order_update(match[1], match[2], request)
        if method == "GET" and (match := re.fullmatch(r"/api/offers/(stock/)?imports/([^/]+)(/status)?", path)):
            stock = bool(match[1])
            if stock == bool(match[3]):  # STO02 ends in /status, OF02 does not
                return self._import_status(match[2], "stock" if stock else "offers")
        if method == "GET" and (match := re.fullmatch(r"/api/offers/(stock/)?imports/([^/]+)/error_report", path)):
            return self._error_report(match[2], "stock" if match[1] else "offers")
        return _error(404, f"No resource found for {method} {path}")

    def _submit_offers(self, request: Request) -> Response:
        try:
            offers = request.json()["offers"]
            if not isinstance(offers, list) or not all(isinstance(o, dict) for o in offers):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, "The request body must be a JSON object with an 'offers' array of offers")
        digest = hashlib.sha256(request.body).hexdigest()
        for pending in self._imports.values():
            if pending.kind == "offers" and pending.digest == digest and pending.status in ("WAITING", "RUNNING"):
                return self._created(pending)  # Mirakl answers a duplicate import with the existing import id
        number = sum(i.kind == "offers" for i in self._imports.values()) + 1
        return self._created(self._new_import(number, "offers", offers, digest))

    def _submit_stock(self, request: Request) -> Response:
        upload = _uploaded_file(request)
        if upload is None:
            return _error(400, "A multipart/form-data part named 'file' is required")
        import_id = secrets.token_hex(8)  # STO01's import id is a string, where OF24's is an integer
        try:
            frame = pl.read_csv(io.BytesIO(upload), separator=";", infer_schema=False)
        except (pl.exceptions.PolarsError, ValueError):
            frame = None
        digest = hashlib.sha256(upload).hexdigest()
        if frame is None or tuple(frame.columns) != STOCK_COLUMNS:
            failure = f"The file header must be {';'.join(STOCK_COLUMNS)}"
            return self._created(self._new_import(import_id, "stock", [], digest, failure))
        return self._created(self._new_import(import_id, "stock", frame.to_dicts(), digest))

    def _new_import(
        self, import_id: int | str, kind: str, lines: list[Record], digest: str, failure: str | None = None
    ) -> _Import:
        submitted = time.monotonic()
        created = _Import(import_id, kind, lines, digest, submitted, mapping.iso(datetime.now(UTC)), failure)
        self._imports[str(import_id)] = created
        self._process_imports()
        return created

    def _created(self, created: _Import) -> Response:
        where = "stock/imports/{}/status" if created.kind == "stock" else "imports/{}"
        return Response(
            201,
            {"import_id": created.import_id},
            headers={"Location": f"/api/offers/{where.format(created.import_id)}"},
        )

    def _process_imports(self) -> None:
        """Mirakl works through imports on its own: each is processed once `import_seconds` have passed."""
        now = time.monotonic()
        for pending in self._imports.values():
            if pending.status not in ("WAITING", "RUNNING"):
                continue
            elapsed = now - pending.submitted
            if elapsed < self.import_seconds:
                pending.status = "WAITING" if elapsed < self.import_seconds / 2 else "RUNNING"
            elif pending.failure is not None:
                pending.status = "FAILED"
            else:
                offers = pending.kind == "offers"
                apply = self._apply_offer_line if offers else self._apply_stock_line
                for number, line in enumerate(pending.lines, start=1):
                    problem = apply(line, pending.counts)
                    if problem is not None:
                        echoed = _offer_report_line(line) if offers else line
                        pending.errors.append({"error-line": str(number), "error-message": problem, **echoed})
                pending.lines = []
                pending.status = "COMPLETE"

    def _import_status(self, import_id: str, kind: str) -> Response:
        found = self._imports.get(import_id)
        if found is None or found.kind != kind:
            return _error(404, f"Import {import_id} not found")
        done = found.status in ("COMPLETE", "FAILED")
        body: Record = {
            "import_id": found.import_id,
            "status": found.status,
            "date_created": found.created_at,
            "has_error_report": bool(found.errors),
            "lines_in_error": len(found.errors),
            "lines_in_success": found.counts["success"],
            "shop_id": 2001,
        }
        if kind == "offers":
            body |= {
                "lines_read": found.counts["success"] + len(found.errors),
                "lines_in_pending": 0 if done else len(found.lines),
                "mode": "NORMAL",
                "type": "MIRAKL",
                "offer_inserted": found.counts["inserted"],
                "offer_updated": found.counts["updated"],
                "offer_deleted": found.counts["deleted"],
                "reason_status": found.failure,
            }
        return Response(body=body)

    def _error_report(self, import_id: str, kind: str) -> Response:
        found = self._imports.get(import_id)
        if found is None or found.kind != kind or not found.errors:
            return _error(404, f"No error report for import {import_id}")
        report = pl.DataFrame(found.errors, schema=dict.fromkeys(found.errors[0], pl.String))
        return Response(body=report.write_csv(separator=";", quote_style="always").encode(), content_type="text/csv")

    def _apply_offer_line(self, line: Record, counts: Counter[str]) -> str | None:
        """Apply one OF24 line, or say why Mirakl rejects it."""
        missing = [name for name in OF24_REQUIRED if line.get(name) is None]
        if missing:
            return f"The field {missing[0]} is required"
        sku, mode = str(line["shop_sku"]), line["update_delete"] or "update"
        existing = self._offer(sku)
        if mode == "delete":
            if existing is None:
                return f"The offer with sku {sku} does not exist and cannot be deleted"
            self._change_offer("OF24", sku, None, counts, "deleted")
            return None
        if mode != "update":
            return f"Invalid update-delete value '{mode}': expected update or delete"
        problem = _offer_line_problem(line)
        if problem is None and existing is None and not self._knows_product(line):
            problem = f"The product {line['product_id']} ({line['product_id_type']}) does not exist in the catalogue"
        if problem is not None:
            return problem
        stored = self._stored_offer(line, existing)
        self._change_offer("OF24", sku, stored, counts, "updated" if existing else "inserted")
        return None

    def _apply_stock_line(self, line: Record, counts: Counter[str]) -> str | None:
        sku, quantity = line.get("offer-sku") or "", line.get("quantity") or ""
        mode = line.get("update-delete") or "update"
        existing = self._offer(sku) if sku else None
        if existing is None:
            return f"The offer with sku '{sku}' does not exist"
        if line.get("warehouse-code"):
            return f"The warehouse '{line['warehouse-code']}' does not exist"
        if mode not in ("update", "delete"):
            return f"Invalid update-delete value '{mode}'"
        if mode == "update" and not quantity.isdigit():
            return f"The quantity '{quantity}' must be a positive integer"
        stocked = {**existing, "quantity": int(quantity) if mode == "update" else 0}
        self._change_offer("STO01", sku, {**stocked, **_activity(stocked)}, counts, "updated")
        return None

    def _change_offer(self, operation: str, sku: str, offer: Record | None, counts: Counter[str], outcome: str) -> None:
        self._changed_offers[sku] = offer
        self._offer_version += 1
        counts["success"] += 1
        counts[outcome] += 1
        self.writes[(operation, sku)] += 1

    def _offer(self, sku: str) -> Record | None:
        if sku in self._changed_offers:
            return self._changed_offers[sku]
        return self._offer_index()[0].get(sku)

    def _offer_index(self) -> tuple[dict[str, Record], set[str]]:
        """The built offers by SKU and the products they offer, kept while the dataset is unchanged (an
        import looks up every line it applies)."""
        built = self._built_offers()
        index = self._built_offer_index
        if index is None or index[0] is not built:
            index = self._built_offer_index = (
                built,
                {o["shop_sku"]: o for o in built},
                {o["product_sku"] for o in built},
            )
        return index[1], index[2]

    def _knows_product(self, line: Record) -> bool:
        product = str(line["product_id"])
        offered = self._offer_index()[1] | {o["product_sku"] for o in self._changed_offers.values() if o}
        return line["product_id_type"] in PRODUCT_ID_TYPES and (product in offered or product in self.operator_products)

    def _stored_offer(self, line: Record, existing: Record | None) -> Record:
        """The offer as OF21 will show it: only what the line says, every other field back to its default."""
        price = Decimal(str(line["price"]))
        logistic = line.get("logistic_class")
        discount = line.get("discount")
        offer: Record = {
            "offer_id": existing["offer_id"] if existing else self._next_offer_id(),
            "shop_sku": str(line["shop_sku"]),
            "product_sku": existing["product_sku"] if existing else str(line["product_id"]),
            "product_title": existing.get("product_title") if existing else None,
            "currency_iso_code": existing["currency_iso_code"] if existing else self._shop_currency(),
            **{name: line.get(name) for name in SAME_FIELDS},
            **{old: line.get(new) for old, new in RENAMED_FIELDS.items()},
            "price": price,
            "total_price": price,
            "quantity": int(line.get("quantity") or 0),
            "state_code": str(line["state_code"]),
            "offer_additional_fields": line.get("offer_additional_fields") or [],
            "all_prices": line.get("all_prices") or [],
            "logistic_class": {"code": logistic, "label": logistic} if logistic else None,
            "discount": {
                "discount_price": discount.get("price"),
                "origin_price": price,
                "start_date": discount.get("start_date"),
                "end_date": discount.get("end_date"),
                "ranges": discount.get("ranges") or [],
            }
            if discount
            else None,
        }
        return {**offer, **_activity(offer)}

    def _offer_id(self, sku: str) -> int:
        """An offer's id, given once: an offer keeps it whatever happens to the others."""
        if sku not in self._offer_ids:
            self._offer_ids[sku] = max(self._offer_ids.values(), default=0) + 1
        return self._offer_ids[sku]

    def _next_offer_id(self) -> int:
        offers = [*self._offer_index()[0].values(), *(o for o in self._changed_offers.values() if o)]
        return max([*(o["offer_id"] for o in offers), *self._offer_ids.values()], default=0) + 1

    def _shop_currency(self) -> str:
        offers = self._offer_index()[0].values()
        return next((o["currency_iso_code"] for o in offers if o.get("currency_iso_code")), "EUR")

    def _order_update(self, order_id: str, verb: str, request: Request) -> Response:
        order = next((o for o in self._all_orders() if o["order_id"] == order_id), None)
        if order is None:
            return _error(404, f"ORDER_NOT_FOUND: order {order_id} does not exist")
        try:
            body = request.json() or {}
        except ValueError:
            return _error(400, "VALIDATION_ERROR: the body is not JSON")
        update = {"accept": self._accepted, "tracking": self._tracked, "ship": self._shipped}[verb]
        changed = update(order, body)
        if isinstance(changed, Response):
            return changed
        self._changed_orders[order_id] = {**changed, "last_updated_date": mapping.iso(datetime.now(UTC))}
        self.writes[({"accept": "OR21", "tracking": "OR23", "ship": "OR24"}[verb], order_id)] += 1
        return Response(204)

    def _accepted(self, order: Record, body: Record) -> Record | Response:
        state = order.get("order_state")
        if state != "WAITING_ACCEPTANCE":
            return _error(400, f"ORDER_INVALID_STATE: order {order['order_id']} is {state}, not WAITING_ACCEPTANCE")
        decisions = body.get("order_lines")
        if not isinstance(decisions, list):
            return _error(400, "VALIDATION_ERROR: order_lines is required")
        if any(d is None for d in decisions):
            return _error(400, "ORDER_LINE_NULL_ELEMENT: the order lines list contains a null element")
        if any(not isinstance(d, dict) or "id" not in d or not isinstance(d.get("accepted"), bool) for d in decisions):
            return _error(400, "VALIDATION_ERROR: each order line needs an id and accepted (true or false)")
        ids = [d["id"] for d in decisions]
        known = {line["order_line_id"] for line in order["order_lines"]}
        if len(set(ids)) != len(ids):
            return _error(400, "ORDER_LINE_DUPLICATE_ID: the order lines list contains duplicate ids")
        if unknown := set(ids) - known:
            return _error(400, f"ORDER_LINE_NOT_FOUND: order line {sorted(unknown)[0]} is not on this order")
        if known - set(ids):
            return _error(400, "ORDER_LINE_ACCEPTANCE_DECISION_MISSING: every order line must be accepted or refused")
        accepted = {d["accepted"] for d in decisions}
        if len(accepted) > 1 and not self.partial_acceptance:
            return _error(400, "ORDER_PARTIAL_ACCEPTANCE_DISABLED: partial acceptance is disabled for this shop")
        now = mapping.iso(datetime.now(UTC))
        return {**order, "order_state": "SHIPPING" if True in accepted else "REFUSED", "acceptance_decision_date": now}

    def _tracked(self, order: Record, body: Record) -> Record | Response:
        state = order.get("order_state")
        if state not in TRACKABLE_STATES:
            return _error(400, f"ORDER_INVALID_STATE: order {order['order_id']} is {state}: no tracking yet")
        code, name, tracking = body.get("carrier_code"), body.get("carrier_name"), body.get("tracking_number")
        if code:
            if code not in {c["code"] for c in self._carriers()}:
                return _error(400, f"VALIDATION_ERROR: carrier code '{code}' is not a registered carrier")
            if not tracking:
                return _error(400, f"VALIDATION_ERROR: tracking_number is required for carrier '{code}'")
        elif not name:
            return _error(400, "VALIDATION_ERROR: carrier_code (registered carrier) or carrier_name is required")
        return {
            **order,
            "shipping_carrier_code": code or None,
            "shipping_company": None if code else name,
            "shipping_tracking": tracking,
        }

    def _shipped(self, order: Record, body: Record) -> Record | Response:
        state = order.get("order_state")
        if state != "SHIPPING":
            return _error(400, f"ORDER_INVALID_STATE: order {order['order_id']} is {state}, not SHIPPING")
        now = mapping.iso(datetime.now(UTC))
        lines = [{**line, "shipped_date": line.get("shipped_date") or now} for line in order["order_lines"]]
        return {**order, "order_state": "SHIPPED", "order_lines": lines}

    # --- the switchable quirks, applied to the copy that is served --------------------------------------

    def _dress_offer(self, offer: Record) -> Record:
        return {**offer, "new_field_" + _FUTURE_VALUE.lower(): True} if self.faults.unknown_enums else dict(offer)

    def _dress_order(self, order: Record) -> Record:
        dressed = dict(order)
        if self.carriers_by_name and dressed.get("shipping_carrier_code"):
            labels = {c["code"]: c["label"] for c in self._carriers()}
            dressed["shipping_company"] = labels[dressed.pop("shipping_carrier_code")]
        if self.faults.unknown_enums:
            dressed["order_lines"] = [{**line, "order_line_state": _FUTURE_VALUE} for line in order["order_lines"]]
        return dressed

    def _dress_transaction(self, transaction: Record) -> Record:
        dressed = dict(transaction)
        if self.unnumbered_documents:
            dressed.pop("accounting_document_number", None)
        if self.faults.unknown_enums:
            dressed["payment_state"] = _FUTURE_VALUE
        return dressed


def _invoice(payout: str, line: dict[str, Any]) -> dict[str, Any]:
    # An issued document has a numeric invoice_id; one whose number is not a plain integer is still a draft.
    issued = payout.isdigit() and str(int(payout)) == payout
    return {
        "id": payout,
        "invoice_id": int(payout) if issued else None,
        "type": "AUTO_INVOICE",
        "state": "COMPLETE" if issued else "DRAFT",
        "currency_iso_code": line.get("currency"),
        "date_created": mapping.iso(line.get("transaction_date")),
        "payment": {"state": "PENDING"},
    }


def _is_typed(frame: pl.DataFrame, entity: str) -> bool:
    schema = ENTITIES[entity].schema
    return all(schema.get(name) == dtype for name, dtype in frame.schema.items())


def _moment(value: str | None) -> datetime:
    return mapping.parse_timestamp(value) if value else datetime.min.replace(tzinfo=UTC)


def _token(query: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(query, default=str).encode()).decode()


def _untoken(token: str) -> dict[str, Any] | None:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        return None


def _error(status: int, message: str) -> Response:
    return Response(status, {"status": status, "message": message})


def _filled(offer: Record) -> Record:
    """A served offer with the fields a real shop fills, so that an import that drops them shows."""
    product = offer.get("product_title") or offer["shop_sku"]
    extra: Record = {"description": f"{product}, shipped from our own warehouse", "leadtime_to_ship": 2}
    if "NOT_IN_AVAILABILITY_PERIOD" in offer["inactivity_reasons"]:
        extra["available_end_date"] = "2026-01-01T00:00:00Z"  # how a shop takes an offer off sale
    return {**offer, **extra}


def _by_total_price(offers: list[Record]) -> list[Record]:
    # OF21's default sort: total price ascending.
    return sorted(offers, key=lambda o: (o["total_price"] is None, o["total_price"] or 0, o["offer_id"]))


def _activity(offer: Record) -> Record:
    """`active` and `inactivity_reasons` as Mirakl works them out from the availability period and stock."""
    now = datetime.now(UTC)
    start, end = offer.get("available_start_date"), offer.get("available_end_date")
    if (start and _moment(start) > now) or (end and _moment(end) <= now):
        reasons = ["NOT_IN_AVAILABILITY_PERIOD"]
    else:
        reasons = ["ZERO_QUANTITY"] if not offer.get("quantity") else []
    return {"active": not reasons, "inactivity_reasons": reasons}


def _offer_line_problem(line: Record) -> str | None:
    """Why Mirakl would reject an offer line's values, if it would."""
    try:
        price = Decimal(str(line["price"]))
    except InvalidOperation:
        return f"The price '{line['price']}' is not a number"
    if price < 0:
        return "The price must be positive"
    quantity = line.get("quantity")
    if quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0):
        return f"The quantity '{quantity}' must be a positive integer"
    for name in RENAMED_FIELDS.values():
        if line.get(name) is not None:
            try:
                mapping.parse_timestamp(str(line[name]))
            except ValueError:
                return f"The date {name} '{line[name]}' is invalid"
    return None


def _offer_report_line(line: Record) -> Record:
    return {
        column: None if line.get(name) is None else str(line[name]) for column, name in OFFER_REPORT_COLUMNS.items()
    }


def _uploaded_file(request: Request) -> bytes | None:
    """The `file` part of a multipart/form-data body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + request.body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True)
    return None


def _export_line(offer: Record, created: str, updated: str) -> Record:
    """An offer as OF54 writes it in CSV: text, its custom fields as columns named by their codes."""
    values = {
        "offer-id": offer["offer_id"],
        "product-sku": offer["product_sku"],
        "shop-sku": offer["shop_sku"],
        "price": offer.get("price"),
        "total-price": offer.get("total_price"),
        "quantity": offer.get("quantity"),
        "currency-iso-code": offer.get("currency_iso_code"),
        "state-code": offer.get("state_code"),
        "active": "true" if offer.get("active") else "false",
        "deleted": "false",
        "available-start-date": offer.get("available_start_date"),
        "available-end-date": offer.get("available_end_date"),
        "min-order-quantity": offer.get("min_order_quantity"),
        "date-created": created,
        "last-updated": updated,
        **{f["code"]: f.get("value") for f in offer.get("offer_additional_fields") or ()},
    }
    return {column: None if value is None else str(value) for column, value in values.items()}


def _csv(lines: list[Record]) -> bytes:
    columns = list(dict.fromkeys([*EXPORT_COLUMNS, *(c for line in lines for c in line)]))
    frame = pl.DataFrame(lines, schema=dict.fromkeys(columns, pl.String))
    return frame.write_csv(separator=";").encode()
