"""A loopback Klaviyo: the read side of the REST API, as Klaviyo's OpenAPI spec documents it.

Serves `GET /api/profiles`, `/api/catalog-variants`, `/api/events` and `/api/metrics` from canonical
frames, with the documented private-key auth (a bad or missing key is a 400), the required `revision`
header, cursor pages whose `links.next` disappears on the last page, `page[size]` maxima (a larger size
is a 400 naming the parameter), `filter` (`equals`, `greater-than`, ... and `and(...)`), ascending
`sort`, JSON:API `errors[]`, and the per-endpoint burst and steady fixed-window rate limits (429s carry
no RateLimit headers). Cursors seek past the last record served, so a record inserted or moved behind
the cursor while paging is not served again in that pass, as with a real cursor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
from bisect import bisect_right
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

import polars as pl

from driftwatch.connectors._simulator import Request, Response, Simulator
from driftwatch.connectors.klaviyo import mapping
from driftwatch.connectors.klaviyo.client import BUCKETS, MEDIA_TYPE, RATE_LIMITS

API_KEY = "pk_simulated_4f1c2b7a9e0d"
MAX_PAGE_SIZE = {"/api/profiles": 100, "/api/events": 1000, "/api/catalog-variants": 100}
DEFAULT_PAGE_SIZE = {"/api/profiles": 20, "/api/events": 200, "/api/catalog-variants": 100}
SORTS = {
    "/api/profiles": {"id": "id", "created": "id", "updated": "updated"},
    "/api/events": {"datetime": "datetime", "timestamp": "datetime"},
    "/api/catalog-variants": {"created": "id"},
}
METRIC_IDS = {
    "Placed Order": "VxPlcd",
    "Fulfilled Order": "WfFlfd",
    "Cancelled Order": "XcCncl",
    "Refunded Order": "YrRfnd",
    "Opened Email": "ZoOpnd",  # accounts hold other metrics too; a pull must ignore them
}
UNKNOWN_CONSENT = "PENDING"  # a state the documentation does not list (the `unknown_enums` fault)
REVISION_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9]+)?$")
CONDITION = re.compile(r"([a-z-]+)\(([\w.]+),((?:\"[^\"]*\"|'[^']*'|[^(),])*)\)")

Entry = tuple[tuple[str, str], dict[str, Any], dict[str, Any]]  # (sort key, resource, filterable values)


class BadRequest(Exception):
    def __init__(self, detail: str, parameter: str):
        super().__init__(detail)
        self.parameter = parameter


class KlaviyoSimulator(Simulator):
    name = "klaviyo"
    rate_limits: ClassVar = RATE_LIMITS

    def __init__(self, dataset: Mapping[str, pl.DataFrame] | None = None, *, api_key: str = API_KEY, **kwargs: Any):
        super().__init__(dataset, **kwargs)
        self.api_key = api_key
        # (path, sort, filter) -> (what it was built from, entries, their sort keys)
        self._cache: dict[tuple[str, str, str], tuple[list[Any], list[Entry], list[tuple[str, str]]]] = {}

    def __enter__(self) -> KlaviyoSimulator:
        # Build each list in its default order now, so no request (and no benchmark) pays for it.
        for path, sorts in SORTS.items():
            self._entries(path, next(iter(sorts)), "")
        super().__enter__()
        return self

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"base_url": self.url, "api_key_env": "KLAVIYO_API_KEY", **overrides}

    @property
    def env(self) -> dict[str, str]:
        return {"KLAVIYO_API_KEY": self.api_key}

    # --- protocol -------------------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Klaviyo-API-Key {self.api_key}":
            return self.error(400, "Missing or invalid private key.", code="not_authenticated")
        if not REVISION_FORMAT.match(request.headers.get("revision", "")):
            return self.error(400, "Missing or invalid revision header (YYYY-MM-DD[.suffix]).", code="invalid_revision")
        return None

    def bucket(self, request: Request) -> str | None:
        return BUCKETS.get(request.path)

    def error(self, status: int, message: str, *, code: str | None = None, parameter: str | None = None) -> Response:
        source = {"parameter": parameter} if parameter else {"pointer": "/data/"}
        codes = {400: "invalid", 404: "not_found", 405: "method_not_allowed", 429: "throttled"}
        error = {
            "id": str(uuid.uuid4()),
            "status": status,
            "code": code or codes.get(status, "error"),
            "title": message.split(".")[0],
            "detail": message,
            "source": source,
        }
        return Response(status, {"errors": [error]}, content_type=MEDIA_TYPE)

    def rate_limited(self, request: Request) -> Response:
        return self.error(429, "Request was throttled.")  # and no RateLimit headers, as documented

    def limit_headers(self, windows: list[tuple[int, int, float]]) -> dict[str, str]:
        limit, remaining, reset = windows[-1]  # the headers describe the steady window
        return {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(math.ceil(reset)),
        }

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return self.error(405, f"Method {request.method} is not simulated.")
        if request.path == "/api/metrics":
            return Response(
                200, {"data": self._metrics(), "links": {"self": self._link(request, {})}}, content_type=MEDIA_TYPE
            )
        if request.path not in MAX_PAGE_SIZE:
            return self.error(404, f"{request.path} is not a Klaviyo endpoint.")
        try:
            return self._list(request)
        except BadRequest as bad:
            return self.error(400, str(bad), parameter=bad.parameter)

    # --- lists ----------------------------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        path, query = request.path, request.query
        size = _page_size(query.get("page[size]"), DEFAULT_PAGE_SIZE[path], MAX_PAGE_SIZE[path])
        entries, keys = self._entries(path, query.get("sort", next(iter(SORTS[path]))), query.get("filter", ""))
        start = bisect_right(keys, _decode(query["page[cursor]"])) if "page[cursor]" in query else 0
        page = entries[start : start + size]
        body: dict[str, Any] = {
            "data": [resource for _, resource, _ in page],
            "links": {"self": self._link(request, query)},
        }
        if start + size < len(entries):
            body["links"]["next"] = self._link(request, {**query, "page[cursor]": _encode(page[-1][0])})
        if path == "/api/events" and "profile" in query.get("include", "").split(","):
            body["included"] = self._profiles_of(page)
        self.page_served()
        return Response(200, body, content_type=MEDIA_TYPE)

    def _entries(self, path: str, sort: str, filter_text: str) -> tuple[list[Entry], list[tuple[str, str]]]:
        """The filtered, sorted records of a list, rebuilt only when the dataset changed."""
        if sort not in SORTS[path]:
            raise BadRequest(f"'{sort}' is not a valid sort field.", "sort")
        # The cache holds what it was built from, so an identity that matches is the same dataset.
        sources = [*self._frames(path), self.faults.unknown_enums]
        cached = self._cache.get((path, sort, filter_text))
        if cached is not None and list(map(id, cached[0])) == list(map(id, sources)):
            return cached[1], cached[2]
        keep = _parse_filter(filter_text)
        field = SORTS[path][sort]
        entries = sorted(
            ((_sort_value(values.get(field)), resource["id"]), resource, values)
            for resource, values in self._records(path)
            if keep(values)
        )
        keys = [key for key, _, _ in entries]
        self._cache[(path, sort, filter_text)] = (sources, entries, keys)
        return entries, keys

    def _frames(self, path: str) -> list[pl.DataFrame]:
        names = {"/api/profiles": ["customers"], "/api/events": ["events", "customers"]}.get(
            path, ["products", "inventory"]
        )
        return [self.dataset.get(name, pl.DataFrame()) for name in names]

    def _records(self, path: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        if path == "/api/profiles":
            return [self._profile(row) for row in self.dataset.get("customers", pl.DataFrame()).to_dicts()]
        if path == "/api/events":
            profile_ids = self._profile_ids()
            return [self._event(row, profile_ids) for row in self.dataset.get("events", pl.DataFrame()).to_dicts()]
        return self._variants()

    def _profile(self, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        profile = mapping.customer_to_profile(row)
        if self.faults.unknown_enums:
            profile["attributes"]["subscriptions"]["email"]["marketing"]["consent"] = UNKNOWN_CONSENT
        values = {
            "id": row["customer_id"],
            "email": row.get("email"),
            "external_id": row.get("erp_customer_id"),
            "updated": row.get("updated_at"),
        }
        return profile, values

    def _event(self, row: dict[str, Any], profile_ids: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        names = {canonical: name for name, canonical in mapping.METRICS.items()}
        metric_id = METRIC_IDS[names[row["metric"]]]
        email = row.get("email")
        profile_id = profile_ids.get(email) or _anonymous_id(email)
        event = mapping.event_to_resource(row, metric_id, profile_id)
        values = {"metric_id": metric_id, "profile_id": profile_id, "datetime": row.get("occurred_at"), "email": email}
        return event, values

    def _variants(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        products = self.dataset.get("products", pl.DataFrame(schema={"sku": pl.String}))
        inventory = self.dataset.get("inventory", pl.DataFrame(schema={"sku": pl.String}))
        stock = {row["sku"]: row for row in inventory.to_dicts()}
        rows = {row["sku"]: row for row in products.to_dicts()}
        rows.update({sku: {"sku": sku} for sku in stock.keys() - rows.keys()})
        return [
            (mapping.product_to_variant(row, stock.get(sku)), {"id": f"{mapping.VARIANT_PREFIX}{sku}", "sku": sku})
            for sku, row in rows.items()
        ]

    def _profile_ids(self) -> dict[str, str]:
        customers = self.dataset.get("customers")
        if customers is None:
            return {}
        return dict(zip(customers["email"], customers["customer_id"], strict=True))

    def _profiles_of(self, page: list[Entry]) -> list[dict[str, Any]]:
        """The `included` profiles of a page of events (`include=profile`)."""
        emails = {values["profile_id"]: values["email"] for _, _, values in page}
        return [{"type": "profile", "id": pid, "attributes": {"email": email}} for pid, email in emails.items()]

    def _metrics(self) -> list[dict[str, Any]]:
        return [{"type": "metric", "id": mid, "attributes": {"name": name}} for name, mid in METRIC_IDS.items()]

    def _link(self, request: Request, query: Mapping[str, str]) -> str:
        return f"{self.url}{request.path}" + (f"?{urlencode(query)}" if query else "")


def _page_size(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise BadRequest(f"Page size must be an integer between 1 and {maximum}.", "page[size]")
    return int(value)


def _parse_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """Klaviyo's filter syntax: `op(field,value)` conditions, several joined with `and(...)`."""
    body = text[4:-1] if text.startswith("and(") and text.endswith(")") else text
    conditions = CONDITION.findall(body)
    if text and (not conditions or CONDITION.sub("", body).replace(",", "").strip()):
        raise BadRequest(f"Invalid filter: {text}", "filter")
    tests = [_condition(op, field, _literal(value)) for op, field, value in conditions]
    return lambda values: all(test(values) for test in tests)


def _condition(op: str, field: str, expected: Any) -> Callable[[dict[str, Any]], bool]:
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "equals": lambda a, b: a == b,
        "greater-than": lambda a, b: a > b,
        "greater-or-equal": lambda a, b: a >= b,
        "less-than": lambda a, b: a < b,
        "less-or-equal": lambda a, b: a <= b,
    }
    if op not in compare:
        raise BadRequest(f"Unsupported filter operator '{op}'.", "filter")
    return lambda values: values.get(field) is not None and compare[op](values[field], expected)


def _literal(value: str) -> Any:
    if value[:1] in "\"'" and value[-1:] == value[:1]:
        return value[1:-1]
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return Decimal(value)
    except ArithmeticError:
        raise BadRequest(f"Invalid filter value '{value}'.", "filter") from None


def _sort_value(value: Any) -> str:
    return "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)


def _encode(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode(cursor: str) -> tuple[str, str]:
    try:
        sort_value, record_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise BadRequest("Invalid page cursor.", "page[cursor]") from None
    return str(sort_value), str(record_id)


def _anonymous_id(email: str | None) -> str:
    """A profile created by an event for an email that has no profile yet."""
    return "01ANON" + hashlib.sha1(str(email).encode()).hexdigest()[:20].upper()
