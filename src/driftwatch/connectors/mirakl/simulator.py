"""A loopback Mirakl MMP seller API serving canonical frames as offers, orders, carriers, transactions and
invoices, the way the documented API pages, limits and fails.

What it reproduces: the raw shop key in `Authorization` (401 `{"status", "message"}` otherwise); offset
pages (`max` <= 100, `offset`, `total_count`) for OF21, OR11 and IV01; seek pages for TL02 (`limit` <= 2000,
an opaque `page_token` that carries the query, since Mirakl ignores other parameters once a token is sent,
no `next_page_token` on the last page); OR11's `start_update_date` moved back by a few minutes so that
consecutive incremental pulls overlap; call ceilings (OR11 once a minute per listing, TL02 20 a minute and
60 an hour) answered with 429 and, as documented, no `Retry-After` unless asked for.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors._simulator import Request, Response, RetryAfterStyle, Simulator, Windows
from driftwatch.connectors.mirakl import mapping
from driftwatch.connectors.mirakl.client import CALL_LIMITS, OFFSET_PAGE_SIZE, SEEK_PAGE_SIZE
from driftwatch.entities import ENTITIES
from driftwatch.normalize import coerce

API_KEY_ENV = "MIRAKL_API_KEY"
UPDATE_OVERLAP = timedelta(minutes=5)  # how far OR11 moves `start_update_date` back
_FUTURE_VALUE = "NEW_VALUE_NOT_IN_THE_DOCUMENTATION"
Record = dict[str, Any]


class MiraklSimulator(Simulator):
    """`unnumbered_documents`: TL02 lines name their accounting document by id only (IV01 numbers it).
    `carriers_by_name`: orders carry the carrier's label (`shipping_company`) instead of its code."""

    name = "mirakl"
    rate_limits: ClassVar[dict[str, Windows]] = CALL_LIMITS

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
        return None

    def rate_limited(self, request: Request) -> Response:
        return _error(429, "Too many requests")

    def handle(self, request: Request) -> Response:
        routes = {
            "/api/offers": lambda: self._offset(request, "offers", self._offers(), self._dress_offer),
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

    def _offers(self) -> list[Record]:
        def build() -> list[Record]:
            stock = {r["sku"]: r for r in self._rows("inventory") if r["location"] == mapping.ALL_STOCK_LOCATIONS}
            products = sorted(self._rows("products"), key=lambda p: p["sku"])
            offers = [mapping.product_to_offer(i + 1, p, stock.get(p["sku"])) for i, p in enumerate(products)]
            # OF21's default sort: total price ascending.
            return sorted(offers, key=lambda o: (o["total_price"] is None, o["total_price"] or 0, o["offer_id"]))

        return self._built("offers", ("products", "inventory"), build)

    def _orders(self, request: Request) -> list[Record]:
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
        if since := request.query.get("start_update_date"):
            moved_back = mapping.parse_timestamp(since) - UPDATE_OVERLAP
            records = [r for r in records if _moment(r["last_updated_date"]) >= moved_back]
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
