"""A loopback Klaviyo: the read side of the REST API, as Klaviyo's OpenAPI spec documents it.

Serves `GET /api/profiles`, `/api/catalog-variants`, `/api/events` and `/api/metrics` from canonical
frames, with the documented private-key auth (a bad or missing key is a 400), the required `revision`
header, cursor pages whose `links.next` disappears on the last page, `page[size]` maxima (a larger size
is a 400 naming the parameter), `filter` (`equals`, `greater-than`, ... and `and(...)`), ascending
`sort`, JSON:API `errors[]`, and the per-endpoint burst and steady fixed-window rate limits (429s carry
no RateLimit headers). Cursors seek past the last record served, so a record inserted or moved behind
the cursor while paging is not served again in that pass, as with a real cursor.

The write side repair uses, each answering in Klaviyo's shapes and limits and applied to the dataset so a
later pull sees it: catalog variant bulk update jobs (at most 100 variants, 500 jobs in progress; 202, then
`queued`, `processing` and `complete` as `job_seconds` pass, whether or not anyone polls, with per-row
`errors[]` pointing at the rows it could not apply); profile subscription bulk create and delete jobs (at
most 1000 and 100 profiles; 202 with no body and nothing to poll; `consented_at` only with
`historical_import`; with `double_opt_in` a subscribe waits for a confirmation that never comes);
`POST /api/events` (202, applied after `job_seconds`; a second event with the same `unique_id` for a
profile and metric is dropped); `PATCH /api/profiles/{id}` (never changes consent) and
`POST /api/profile-import` (an upsert by id, external id or email). `writes` counts the writes applied
per (operation, record key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

import polars as pl

from driftwatch.connectors.klaviyo import mapping
from driftwatch.connectors.klaviyo.client import BUCKETS, MEDIA_TYPE, RATE_LIMITS
from driftwatch.connectors.klaviyo.push import (
    SUBSCRIBE_PER_JOB,
    UNSUBSCRIBE_PER_JOB,
    VARIANTS_PER_JOB,
    WRITE_BUCKETS,
    WRITE_RATE_LIMITS,
)
from driftwatch.entities import ENTITIES
from driftwatch.simulators._base import Request, Response, Simulator

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
ALL_BUCKETS = {**BUCKETS, **WRITE_BUCKETS}
JOB_PATH = "/api/catalog-variant-bulk-update-jobs"
VARIANT_ROWS = "/data/attributes/variants/data"
MAX_JOBS_IN_PROGRESS = 500
JOB_LIFETIME = timedelta(days=7)
EARLIEST_EVENT = datetime(1990, 1, 1, tzinfo=UTC)
_NO_SKUS = pl.DataFrame(schema={"sku": pl.String})
CONDITION = re.compile(r"([a-z-]+)\(([\w.]+),(\[[^\]]*\]|(?:\"[^\"]*\"|'[^']*'|[^(),])*)\)")

# The filters each list documents (x-klaviyo-filters in Klaviyo's OpenAPI spec): field -> operators.
_COMPARE = frozenset({"greater-or-equal", "greater-than", "less-or-equal", "less-than"})
FILTERS: dict[str, dict[str, frozenset[str]]] = {
    "/api/profiles": {
        **dict.fromkeys(("id", "email", "phone_number", "external_id"), frozenset({"any", "equals"})),
        **dict.fromkeys(("created", "updated"), frozenset({"greater-than", "less-than"})),
    },
    "/api/events": {
        "metric_id": frozenset({"equals"}),
        "profile_id": frozenset({"equals"}),
        "datetime": _COMPARE,
        "timestamp": _COMPARE,
    },
    "/api/catalog-variants": {
        "ids": frozenset({"any"}),
        "sku": frozenset({"equals"}),
        "title": frozenset({"contains"}),
        "published": frozenset({"equals"}),
    },
}


class BadRequest(Exception):
    def __init__(self, detail: str, parameter: str):
        super().__init__(detail)
        self.parameter = parameter


class KlaviyoSimulator(Simulator):
    name = "klaviyo"
    rate_limits: ClassVar = {**RATE_LIMITS, **WRITE_RATE_LIMITS}

    def __init__(self, dataset: Mapping[str, pl.DataFrame] | None = None, *, api_key: str = API_KEY, **kwargs: Any):
        super().__init__(dataset, **kwargs)
        self.api_key = api_key
        # (path, sort, filter) -> (what it was built from, the listing)
        self._cache: dict[tuple[str, str, str], tuple[list[Any], pl.DataFrame]] = {}
        self.job_seconds = 0.0  # how long an accepted write waits before Klaviyo applies it
        self.double_opt_in = False  # the account's opt-in setting: a subscribe waits for confirmation
        self.writes: Counter[tuple[str, str]] = Counter()  # (operation, record key) -> writes applied
        self.dropped_events = 0  # events Klaviyo dropped as duplicates of a `unique_id`
        self._jobs: dict[str, _Job] = {}
        self._unique_ids: set[tuple[str, str, str]] = set()  # (unique_id, profile, metric) seen
        self._write_lock = threading.RLock()

    def __enter__(self) -> KlaviyoSimulator:
        # Build each list in its default order now, so no request (and no benchmark) pays for it.
        for path, sorts in SORTS.items():
            self._listing(path, next(iter(sorts)), "")
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
        resource = "/".join(request.path.split("/")[:3])  # /api/profiles/{id} counts as /api/profiles
        return ALL_BUCKETS.get(resource)

    def error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        parameter: str | None = None,
        pointer: str = "/data/",
    ) -> Response:
        source = {"parameter": parameter} if parameter else {"pointer": pointer}
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
        with self._write_lock:  # accepted writes are applied, in order, before any request is answered
            self.apply_due()
            if request.method != "GET" or request.path.startswith(JOB_PATH):
                return self._write(request)
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

    # --- writes ---------------------------------------------------------------------------------------------

    def _write(self, request: Request) -> Response:
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Response]] = {
            ("POST", JOB_PATH): self._submit_variants,
            ("POST", "/api/profile-subscription-bulk-create-jobs"): lambda data: self._submit_consent(data, True),
            ("POST", "/api/profile-subscription-bulk-delete-jobs"): lambda data: self._submit_consent(data, False),
            ("POST", "/api/events"): self._submit_event,
            ("POST", "/api/profile-import"): self._import_profile,
        }
        try:
            if request.method == "GET" and request.path.startswith(f"{JOB_PATH}/"):
                return self._job_status(request.path.removeprefix(f"{JOB_PATH}/"))
            if request.method == "PATCH" and request.path.startswith("/api/profiles/"):
                return self._patch_profile(request.path.removeprefix("/api/profiles/"), _data(request))
            route = routes.get((request.method, request.path))
            if route is None:
                return self.error(405, f"Method {request.method} is not simulated for {request.path}.")
            return route(_data(request))
        except Invalid as bad:
            return self.error(400, str(bad), pointer=bad.pointer)

    def _queue(self, kind: str, payload: Any, *, total: int = 1, historical: bool = False) -> _Job:
        job = _Job(uuid.uuid4().hex[:20], kind, payload, time.monotonic(), datetime.now(UTC), total, historical)
        self._jobs[job.job_id] = job
        return job

    def apply_due(self) -> None:
        """Apply, in the order accepted, every accepted write whose processing time has come (every request
        does this first; a test calls it to see what Klaviyo made of the writes it accepted)."""
        appliers = {"variants": self._apply_variants, "event": self._apply_event}
        now = time.monotonic()
        for job in self._jobs.values():
            if job.completed_at is None and now - job.submitted >= self.job_seconds:
                appliers.get(job.kind, self._apply_consent)(job)
                job.completed_at = datetime.now(UTC)

    # catalog variant bulk update jobs

    def _submit_variants(self, data: dict[str, Any]) -> Response:
        _expect_type(data, "catalog-variant-bulk-update-job")
        rows = _rows(data, ("variants", "data"), VARIANTS_PER_JOB, "variants")
        for i, row in enumerate(rows):
            if row.get("type") != "catalog-variant" or not row.get("id") or not isinstance(row.get("attributes"), dict):
                raise Invalid("Each variant needs type catalog-variant, an id and attributes.", f"{VARIANT_ROWS}/{i}")
        in_progress = sum(job.kind == "variants" and job.completed_at is None for job in self._jobs.values())
        if in_progress >= MAX_JOBS_IN_PROGRESS:
            raise Invalid(f"At most {MAX_JOBS_IN_PROGRESS} catalog bulk jobs may be in progress.", "/data")
        job = self._queue("variants", rows, total=len(rows))
        return Response(202, self._job_document(job), content_type=MEDIA_TYPE)

    def _job_status(self, job_id: str) -> Response:
        job = self._jobs.get(job_id)
        if job is None or job.kind != "variants":
            return self.error(404, f"A catalog variant bulk update job with id {job_id} does not exist.")
        return Response(200, self._job_document(job), content_type=MEDIA_TYPE)

    def _job_document(self, job: _Job) -> dict[str, Any]:
        done = job.completed_at is not None
        if done:
            status = "complete"
        else:
            status = "processing" if time.monotonic() - job.submitted >= self.job_seconds / 2 else "queued"
        link = {"self": f"{self.url}{JOB_PATH}/{job.job_id}"}
        attributes = {
            "status": status,
            "created_at": job.created_at,
            "total_count": job.total,
            "completed_count": job.total - len(job.errors) if done else 0,
            "failed_count": len(job.errors),
            "completed_at": job.completed_at,
            "errors": job.errors,
            "expires_at": job.created_at + JOB_LIFETIME,
        }
        return {
            "data": {
                "type": "catalog-variant-bulk-update-job",
                "id": job.job_id,
                "attributes": attributes,
                "links": link,
            },
            "links": link,
        }

    def _apply_variants(self, job: _Job) -> None:
        known = {sku for name in ("products", "inventory") for sku in self.dataset.get(name, _NO_SKUS)["sku"]}
        now = datetime.now(UTC)
        for i, row in enumerate(job.payload):
            sku = row["id"].removeprefix(mapping.VARIANT_PREFIX)
            if not row["id"].startswith(mapping.VARIANT_PREFIX) or sku not in known:
                job.errors.append(_job_error("not_found", f"A catalog variant with id {row['id']} does not exist.", i))
                continue
            attributes = row["attributes"]
            quantity = attributes.get("inventory_quantity")
            if "inventory_quantity" in attributes and not _is_number(quantity):
                job.errors.append(
                    _job_error("invalid", "inventory_quantity must be a number.", i, "/inventory_quantity")
                )
                continue
            if quantity is not None:
                self._upsert_row(
                    "inventory", {"sku": sku, "location": "*"}, {"available": int(quantity), "updated_at": now}
                )
            product = {"price": attributes.get("price"), "name": attributes.get("title")}
            if "published" in attributes:
                product["status"] = "active" if attributes["published"] else "discontinued"
            product = {k: v for k, v in product.items() if v is not None}
            if product:
                self._upsert_row("products", {"sku": sku}, product)
            self.writes[("variant", sku)] += 1

    # subscription bulk jobs

    def _submit_consent(self, data: dict[str, Any], subscribe: bool) -> Response:
        kind = "profile-subscription-bulk-create-job" if subscribe else "profile-subscription-bulk-delete-job"
        _expect_type(data, kind)
        rows = _rows(data, ("profiles", "data"), SUBSCRIBE_PER_JOB if subscribe else UNSUBSCRIBE_PER_JOB, "profiles")
        historical = bool((data.get("attributes") or {}).get("historical_import"))
        wanted = "SUBSCRIBED" if subscribe else "UNSUBSCRIBED"
        for i, row in enumerate(rows):
            where = f"/data/attributes/profiles/data/{i}/attributes"
            attributes = row.get("attributes") or {}
            if not (attributes.get("email") or attributes.get("phone_number") or (subscribe and row.get("id"))):
                raise Invalid("A profile needs an email or a phone number.", where)
            marketing = _get(attributes, "subscriptions", "email", "marketing")
            if marketing and marketing.get("consent") != wanted:
                raise Invalid(f"consent must be {wanted}.", f"{where}/subscriptions/email/marketing/consent")
            consented_at = marketing.get("consented_at")
            if consented_at is not None and not historical:
                raise Invalid("consented_at is only accepted with historical_import.", f"{where}/subscriptions")
            if historical and (_moment(consented_at) is None or _moment(consented_at) > datetime.now(UTC)):
                raise Invalid("historical_import needs consented_at, in the past.", f"{where}/subscriptions")
        self._queue("subscribe" if subscribe else "unsubscribe", rows, historical=historical)
        return Response(202)

    def _apply_consent(self, job: _Job) -> None:
        subscribe = job.kind == "subscribe"
        if subscribe and self.double_opt_in and not job.historical:
            return  # each person is sent a confirmation; nobody is subscribed until they confirm
        now = datetime.now(UTC)
        for row in job.payload:
            attributes = row.get("attributes") or {}
            marketing = _get(attributes, "subscriptions", "email", "marketing")
            if not marketing:
                continue  # channels other than email are not simulated
            profile_id = self._find_profile(row.get("id"), None, attributes.get("email"))
            if profile_id is None and not subscribe:
                continue
            profile_id = profile_id or _new_profile_id()
            when = _moment(marketing.get("consented_at")) or now
            values = {"email_consent": subscribe, "consent_updated_at": when, "updated_at": now}
            if attributes.get("email"):
                values["email"] = attributes["email"].strip().lower()
            self._upsert_row("customers", {"customer_id": profile_id}, values)
            self.writes[("consent", profile_id)] += 1

    # events

    def _submit_event(self, data: dict[str, Any]) -> Response:
        _expect_type(data, "event")
        attributes = data.get("attributes") or {}
        name = _get(attributes, "metric", "data", "attributes").get("name")
        if not isinstance(name, str) or not name or len(name) >= 128:
            raise Invalid("A metric name (under 128 characters) is required.", "/data/attributes/metric")
        profile = _get(attributes, "profile", "data", "attributes")
        if not any(profile.get(k) for k in ("id", "email", "phone_number")):
            raise Invalid("The profile needs an id, email or phone_number.", "/data/attributes/profile")
        if not isinstance(attributes.get("properties"), dict):
            raise Invalid("properties is required.", "/data/attributes/properties")
        if "time" in attributes:
            when = _moment(attributes["time"])
            if when is None or not EARLIEST_EVENT <= when <= datetime.now(UTC) + timedelta(days=365):
                raise Invalid("time must be a datetime after 1990 and at most a year ahead.", "/data/attributes/time")
        if "value" in attributes and not _is_number(attributes["value"]):
            raise Invalid("value must be a number.", "/data/attributes/value")
        self._queue("event", attributes)
        return Response(202)

    def _apply_event(self, job: _Job) -> None:
        attributes = job.payload
        name = attributes["metric"]["data"]["attributes"]["name"]
        profile = attributes["profile"]["data"]["attributes"]
        email = profile.get("email") or self._email_of(profile.get("id"))
        when = (_moment(attributes.get("time")) or datetime.now(UTC)).replace(microsecond=0)
        unique_id = str(attributes.get("unique_id") or when.isoformat())
        seen = (unique_id, str(profile.get("id") or email), name)
        if seen in self._unique_ids:
            self.dropped_events += 1  # only the first event with this unique_id is kept
            return
        self._unique_ids.add(seen)
        metric = mapping.METRICS.get(name)
        if metric is None:
            return  # other metrics are recorded, not served by this simulator
        value = attributes.get("value")
        row = {
            "metric": metric,
            "order_id": _text_or_none(attributes["properties"].get(mapping.ORDER_ID_PROPERTY)),
            "email": None if email is None else email.strip().lower(),
            "occurred_at": when,
            "value": None if value is None else Decimal(str(value)),
        }
        self._upsert_row("events", {"event_id": _new_profile_id()}, row)
        self.writes[("event", f"{name}/{unique_id}")] += 1

    # profiles

    def _patch_profile(self, profile_id: str, data: dict[str, Any]) -> Response:
        _expect_type(data, "profile")
        if data.get("id") != profile_id:
            raise Invalid("data.id must be the id of the profile in the URL.", "/data/id")
        if self._find_profile(profile_id, None, None) is None:
            return self.error(404, f"A profile with id {profile_id} does not exist.")
        values = _profile_values(data.get("attributes") or {})  # `subscriptions` is not a PATCH field
        self._upsert_row("customers", {"customer_id": profile_id}, {**values, "updated_at": datetime.now(UTC)})
        self.writes[("profile", profile_id)] += 1
        return Response(200, {"data": self._profile_resource(profile_id)}, content_type=MEDIA_TYPE)

    def _import_profile(self, data: dict[str, Any]) -> Response:
        _expect_type(data, "profile")
        attributes = data.get("attributes") or {}
        if not (data.get("id") or any(attributes.get(k) for k in ("email", "phone_number", "external_id"))):
            raise Invalid("One of id, email, phone_number or external_id is required.", "/data/attributes")
        values = _profile_values(attributes)
        found = self._find_profile(data.get("id"), attributes.get("external_id"), attributes.get("email"))
        profile_id = found or _new_profile_id()
        self._upsert_row("customers", {"customer_id": profile_id}, {**values, "updated_at": datetime.now(UTC)})
        self.writes[("profile", profile_id)] += 1
        return Response(200 if found else 201, {"data": self._profile_resource(profile_id)}, content_type=MEDIA_TYPE)

    def _find_profile(self, profile_id: str | None, external_id: str | None, email: str | None) -> str | None:
        customers = self.dataset.get("customers")
        if customers is None:
            return None
        for column, value in (("customer_id", profile_id), ("erp_customer_id", external_id), ("email", email)):
            if value and column in customers.columns:
                value = value.strip().lower() if column == "email" else value
                found = customers.filter(pl.col(column) == value)["customer_id"]
                if found.len():
                    return found[0]
        return None

    def _email_of(self, profile_id: str | None) -> str | None:
        customers = self.dataset.get("customers")
        if customers is None or not profile_id:
            return None
        emails = customers.filter(pl.col("customer_id") == profile_id)["email"]
        return emails[0] if emails.len() else None

    def _profile_resource(self, profile_id: str) -> dict[str, Any]:
        row = self.dataset["customers"].filter(pl.col("customer_id") == profile_id).row(0, named=True)
        return self._profile(row)

    def _upsert_row(self, entity: str, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Set `values` on the row of `entity` with this key, adding the row (and any missing column)."""
        schema = ENTITIES[entity].schema
        frame = self.dataset.get(entity, pl.DataFrame(schema={c: schema[c] for c in key}))
        missing = [c for c in (*key, *values) if c not in frame.columns]
        frame = frame.with_columns(pl.lit(None, schema[c]).alias(c) for c in missing)
        match = pl.all_horizontal([pl.col(c) == v for c, v in key.items()])
        if frame.select(match.any()).item():
            frame = frame.with_columns(
                pl.when(match).then(pl.lit(v, frame.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in values.items()
            )
        else:
            frame = pl.concat([frame, pl.DataFrame([{**key, **values}], schema=frame.schema)])
        self.dataset[entity] = frame  # a new frame: the list caches see the change

    # --- lists ----------------------------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        path, query = request.path, request.query
        size = _page_size(query.get("page[size]"), DEFAULT_PAGE_SIZE[path], MAX_PAGE_SIZE[path])
        listing = self._listing(path, query.get("sort", next(iter(SORTS[path]))), query.get("filter", ""))
        start = 0
        if "page[cursor]" in query:  # seek past the last record served, wherever it now is
            start = int(listing["_key"].search_sorted(_decode(query["page[cursor]"]), side="right"))
        page = listing.slice(start, size)
        body: dict[str, Any] = {"data": self._resources(path, page), "links": {"self": self._link(request, query)}}
        if start + size < listing.height:
            body["links"]["next"] = self._link(request, {**query, "page[cursor]": _encode(page["_key"][-1])})
        if path == "/api/events" and "profile" in query.get("include", "").split(","):
            body["included"] = self._profiles_of(page)
        self.page_served()
        return Response(200, body, content_type=MEDIA_TYPE)

    def _listing(self, path: str, sort: str, filter_text: str) -> pl.DataFrame:
        """The records of a list that pass the filter, in the requested order: a frame of `_key` (sort value
        and id, ascending: what a cursor seeks past) and `_row` (where to build the record from). Rebuilt
        only when the dataset changed; the records themselves are built page by page, so a list of millions
        costs no more than its keys."""
        if sort not in SORTS[path]:
            raise BadRequest(f"'{sort}' is not a valid sort field.", "sort")
        keep = _parse_filter(path, filter_text)
        sources = [*self._frames(path)]  # the cache holds what it was built from: the same objects, same data
        cached = self._cache.get((path, sort, filter_text))
        if cached is not None and list(map(id, cached[0])) == list(map(id, sources)):
            return cached[1]
        field = SORTS[path][sort]
        values = self._values(path)
        listing = (
            values.filter(keep)
            .with_columns(_key=pl.concat_str(_sort_text(values.schema[field], field), pl.lit("\x00"), pl.col("id")))
            .sort("_key")
        )
        self._cache[(path, sort, filter_text)] = (sources, listing)
        return listing

    def _frames(self, path: str) -> list[pl.DataFrame]:
        names = {"/api/profiles": ["customers"], "/api/events": ["events", "customers"]}.get(
            path, ["products", "inventory"]
        )
        return [self.dataset.get(name, pl.DataFrame()) for name in names]

    def _values(self, path: str) -> pl.DataFrame:
        """Per record of a list: `_row`, and the fields its documented filters and sorts read."""
        if path == "/api/profiles":
            customers = self._customers()
            return customers.select(
                _row=pl.int_range(pl.len()),
                id=pl.col("customer_id"),
                email=pl.col("email") if "email" in customers.columns else pl.lit(None, pl.String),
                external_id=_column(customers, "erp_customer_id", pl.String),
                updated=_column(customers, "updated_at", pl.Datetime("us", "UTC")),
                created=pl.lit(None, pl.Datetime("us", "UTC")),
            )
        if path == "/api/events":
            events = self.dataset.get("events", pl.DataFrame(schema=ENTITIES["events"].schema))
            names = {canonical: METRIC_IDS[name] for name, canonical in mapping.METRICS.items()}
            emails = events["email"].to_list()
            profile_ids = self._profile_ids()
            return events.select(
                _row=pl.int_range(pl.len()),
                id=pl.col("event_id"),
                metric_id=pl.col("metric").replace_strict(names, return_dtype=pl.String),
                profile_id=pl.Series([profile_ids.get(e) or _anonymous_id(e) for e in emails], dtype=pl.String),
                email=pl.col("email"),
                datetime=pl.col("occurred_at"),
                timestamp=pl.col("occurred_at").dt.epoch("s"),
            )
        skus = [row["sku"] for row, _ in self._variant_rows()]
        return pl.DataFrame(
            {
                "_row": range(len(skus)),
                "id": [f"{mapping.VARIANT_PREFIX}{sku}" for sku in skus],
                "ids": [f"{mapping.VARIANT_PREFIX}{sku}" for sku in skus],
                "sku": skus,
            },
            schema={"_row": pl.Int64, "id": pl.String, "ids": pl.String, "sku": pl.String},
        )

    def _resources(self, path: str, page: pl.DataFrame) -> list[dict[str, Any]]:
        rows = page["_row"].to_list()
        if path == "/api/profiles":
            return [self._profile(row) for row in self._customers()[rows].to_dicts()]
        if path == "/api/events":
            events = self.dataset["events"][rows].to_dicts()
            return [
                mapping.event_to_resource(row, metric_id, profile_id)
                for row, metric_id, profile_id in zip(events, page["metric_id"], page["profile_id"], strict=True)
            ]
        variants = self._variant_rows()
        return [mapping.product_to_variant(*variants[i]) for i in rows]

    def _customers(self) -> pl.DataFrame:
        return self.dataset.get("customers", pl.DataFrame(schema={"customer_id": pl.String}))

    def _profile(self, row: dict[str, Any]) -> dict[str, Any]:
        profile = mapping.customer_to_profile(row)
        if self.faults.unknown_enums:
            profile["attributes"]["subscriptions"]["email"]["marketing"]["consent"] = UNKNOWN_CONSENT
        return profile

    def _variant_rows(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """(product row, stock row) per catalog variant: every product, and every SKU only stock names."""
        products = self.dataset.get("products", pl.DataFrame(schema={"sku": pl.String}))
        inventory = self.dataset.get("inventory", pl.DataFrame(schema={"sku": pl.String}))
        stock = {row["sku"]: row for row in inventory.to_dicts()}
        rows = {row["sku"]: row for row in products.to_dicts()}
        rows.update({sku: {"sku": sku} for sku in stock.keys() - rows.keys()})
        return [(row, stock.get(sku)) for sku, row in rows.items()]

    def _profile_ids(self) -> dict[str, str]:
        customers = self.dataset.get("customers")
        if customers is None:
            return {}
        return dict(zip(customers["email"], customers["customer_id"], strict=True))

    def _profiles_of(self, page: pl.DataFrame) -> list[dict[str, Any]]:
        """The `included` profiles of a page of events (`include=profile`)."""
        emails = dict(zip(page["profile_id"], page["email"], strict=True))
        return [{"type": "profile", "id": pid, "attributes": {"email": email}} for pid, email in emails.items()]

    def _metrics(self) -> list[dict[str, Any]]:
        return [{"type": "metric", "id": mid, "attributes": {"name": name}} for name, mid in METRIC_IDS.items()]

    def _link(self, request: Request, query: Mapping[str, str]) -> str:
        return f"{self.url}{request.path}" + (f"?{urlencode(query)}" if query else "")


@dataclass
class _Job:
    """An accepted asynchronous write: a catalog job, a subscription job or an event."""

    job_id: str
    kind: str  # variants, subscribe, unsubscribe, event
    payload: Any
    submitted: float  # monotonic
    created_at: datetime
    total: int
    historical: bool
    completed_at: datetime | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class Invalid(Exception):
    """A write Klaviyo refuses with a 400 whose `source.pointer` names the offending part of the body."""

    def __init__(self, detail: str, pointer: str):
        super().__init__(detail)
        self.pointer = pointer


def _data(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise Invalid("The request body is not valid JSON.", "/") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise Invalid("The request body needs a data object.", "/data")
    return body["data"]


def _expect_type(data: dict[str, Any], kind: str) -> None:
    if data.get("type") != kind:
        raise Invalid(f"data.type must be {kind}.", "/data/type")


def _rows(data: dict[str, Any], path: tuple[str, ...], limit: int, what: str) -> list[dict[str, Any]]:
    rows = _get(data.get("attributes") or {}, *path[:-1]).get(path[-1])
    pointer = "/data/attributes/" + "/".join(path)
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise Invalid(f"{what} must be a non-empty list of objects.", pointer)
    if len(rows) > limit:
        raise Invalid(f"A job accepts at most {limit} {what}; this one has {len(rows)}.", pointer)
    return rows


def _get(data: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _job_error(code: str, detail: str, row: int, within: str = "") -> dict[str, Any]:
    pointer = f"{VARIANT_ROWS}/{row}{'/attributes' + within if within else ''}"
    return {"id": str(uuid.uuid4()), "code": code, "title": detail.split(".")[0], "detail": detail,
            "source": {"pointer": pointer}}  # fmt: skip


def _profile_values(attributes: dict[str, Any]) -> dict[str, Any]:
    """Canonical customer columns from profile attributes: a field left out is kept, a null clears it."""
    values: dict[str, Any] = {}
    for name, column in (("external_id", "erp_customer_id"), ("first_name", "first_name"), ("last_name", "last_name")):
        if name in attributes:
            values[column] = _text_or_none(attributes[name])
    if "email" in attributes:
        email = attributes["email"]
        if email is not None and (not isinstance(email, str) or "@" not in email or " " in email.strip()):
            raise Invalid(f"Invalid email address: {email}", "/data/attributes/email")
        values["email"] = None if email is None else email.strip().lower()
    location = attributes.get("location") or {}
    for name, column in (("zip", "postcode"), ("country", "country")):
        if name in location:
            values[column] = _text_or_none(location[name])
    properties = attributes.get("properties") or {}
    for column, name in mapping.PROFILE_PROPERTIES.items():
        if name in properties:
            values[column] = _property(column, properties[name])
    return values


def _property(column: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if column == "lifetime_value":
            return Decimal(str(value))
        if column == "order_count":
            return int(value)
    except (ArithmeticError, ValueError):
        raise Invalid(f"{column} must be a number.", f"/data/attributes/properties/{column}") from None
    if column == "last_order_at":
        moment = _moment(value)
        if moment is None:
            raise Invalid(f"{column} must be a datetime.", f"/data/attributes/properties/{column}")
        return moment
    return str(value)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal | float) and not isinstance(value, bool)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _new_profile_id() -> str:
    return "01" + uuid.uuid4().hex[:24].upper()


def _page_size(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise BadRequest(f"Page size must be an integer between 1 and {maximum}.", "page[size]")
    return int(value)


def _parse_filter(path: str, text: str) -> pl.Expr:
    """Klaviyo's filter syntax, `op(field,value)` conditions joined by `and(...)` or commas, each field and
    operator as the list documents them (`FILTERS`), as one expression over the list's `_values`."""
    body = text[4:-1] if text.startswith("and(") and text.endswith(")") else text
    conditions = CONDITION.findall(body)
    if text and (not conditions or CONDITION.sub("", body).replace(",", "").strip()):
        raise BadRequest(f"Invalid filter: {text}", "filter")
    expression = pl.lit(True)
    for op, name, value in conditions:
        allowed = FILTERS[path].get(name)
        if allowed is None:
            raise BadRequest(f"'{name}' is not a valid filter field.", "filter")
        if op not in allowed:
            raise BadRequest(f"'{op}' is not a valid operator for '{name}'.", "filter")
        expression = expression & _condition(op, name, _literal(value))
    return expression


def _condition(op: str, name: str, expected: Any) -> pl.Expr:
    column = pl.col(name)
    compare: dict[str, Callable[[], pl.Expr]] = {
        "equals": lambda: column == expected,
        "greater-than": lambda: column > expected,
        "greater-or-equal": lambda: column >= expected,
        "less-than": lambda: column < expected,
        "less-or-equal": lambda: column <= expected,
        "any": lambda: column.is_in(expected if isinstance(expected, list) else [expected]),
        "contains": lambda: column.str.contains(str(expected), literal=True),
    }
    return column.is_not_null() & compare[op]().fill_null(False)


def _literal(value: str) -> Any:
    if value.startswith("["):  # `any(field,["a","b"])`
        try:
            return json.loads(value.replace("'", '"'))
        except ValueError:
            raise BadRequest(f"Invalid filter value '{value}'.", "filter") from None
    if value[:1] in "\"'" and value[-1:] == value[:1]:
        return value[1:-1]
    if value in ("true", "false"):
        return value == "true"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return Decimal(value)
    except ArithmeticError:
        raise BadRequest(f"Invalid filter value '{value}'.", "filter") from None


def _sort_text(dtype: pl.DataType, field: str) -> pl.Expr:
    """A sort field as text whose order is the field's order (fixed-width UTC instants)."""
    if isinstance(dtype, pl.Datetime):
        return pl.col(field).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f").fill_null("")
    return pl.col(field).cast(pl.String).fill_null("")


def _column(frame: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    return pl.col(name) if name in frame.columns else pl.lit(None, dtype)


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, TypeError):
        raise BadRequest("Invalid page cursor.", "page[cursor]") from None


def _anonymous_id(email: str | None) -> str:
    """A profile created by an event for an email that has no profile yet."""
    return "01ANON" + hashlib.sha1(str(email).encode()).hexdigest()[:20].upper()
