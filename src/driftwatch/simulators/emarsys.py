"""A loopback Emarsys: the contact API (v2 with WSSE, v3 with OAuth), a catalogue feed, sales-data files.

As Emarsys documents: every answer is `{"replyCode", "replyText", "data"}`; application errors come back
inside HTTP 200 (an unknown field id: 2006; a key not found: 2008 in `data.errors`; every key failing:
`result: false`); more than 1,000 keys is HTTP 400 with replyCode 1000; a wrong WSSE digest, a `Created`
more than 5 minutes off, or a replayed nonce is HTTP 401; 1,000 requests a minute per API user, then 429
with `X-RateLimit-*` headers (the reset as a unix time) and no `Retry-After`.

Contacts are written with `PUT contact/?create_if_not_exists=1` (`key_id` and `contacts[]`, or one contact
as the body): only the fields sent change; ids come back in `data.ids` (a string for an existing contact,
an integer for a created one) and per-contact failures in `data.errors`, keyed by the key value, all
inside HTTP 200 with replyCode 0 (a key held by several contacts: 2010; an opt-in other than 1, 2 or null:
the simulator answers 2013, its own choice of code). `upsert_races` makes that many creations lose the
documented race (2006 "already exists", nothing created). Accepted writes change the served contacts, and
`writes` counts them per contact (by the ERP id it stores, else its Emarsys id).

The catalogue is served as the CSV file Emarsys imports: generated from the dataset until the integration
writes one to `catalog_file` (the retailer's host serves what is there); the sales data is written, as
uploaded files, to `sales_data_dir` (Emarsys offers no download of it).
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors.emarsys import mapping
from driftwatch.connectors.emarsys.client import BATCH, wsse_header
from driftwatch.connectors.emarsys.mapping import text
from driftwatch.simulators import _base as base

ENV = {
    "username_env": "EMARSYS_USERNAME",
    "secret_env": "EMARSYS_SECRET",
    "client_id_env": "EMARSYS_CLIENT_ID",
    "client_secret_env": "EMARSYS_CLIENT_SECRET",
}
CATALOG_PATH = "/catalog/products.csv"
SHOP = "https://shop.example"
MAX_SKEW_SECONDS = 300
_WSSE = re.compile(r'(\w+)="([^"]*)"')
OPT_IN_WRITES = (1, 2, "1", "2", None)


def reply(data: Any, code: int = 0, text: str = "OK", status: int = 200) -> base.Response:
    return base.Response(status, {"replyCode": code, "replyText": text, "data": data})


class EmarsysSimulator(base.Simulator):
    name = "emarsys"
    rate_limits: ClassVar = {"api": [(1000, 60.0)]}

    def __init__(
        self, dataset: dict[str, pl.DataFrame] | None = None, *, field_ids: dict[str, str] | None = None, **kwargs: Any
    ):
        kwargs.setdefault("retry_after", "none")
        super().__init__(dataset, **kwargs)
        self.faults.set(storm_retry_after=None)  # the platform documents no Retry-After
        self.fields = mapping.field_ids({"field_ids": field_ids or {}})
        self.credentials = {
            "EMARSYS_USERNAME": "driftwatch001",
            "EMARSYS_SECRET": secrets.token_hex(12),
            "EMARSYS_CLIENT_ID": "driftwatch-client",
            "EMARSYS_CLIENT_SECRET": secrets.token_hex(12),
        }
        self.sales_data_dir: Path | None = None
        self.catalog_file: Path | None = None
        self._nonces: set[str] = set()
        self._tokens: dict[str, int] = {}  # token -> requests it has served
        self._started = time.time()
        self._cache: tuple[tuple[int, bool], list[dict[str, Any]], dict[str, Any]] | None = None
        self._write_lock = threading.Lock()  # one contact write at a time, as Emarsys serialises a key's writes
        self.writes: Counter[str] = Counter()
        self.upsert_races = 0

    # --- wiring ---------------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return dict(self.credentials)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        wiring = {
            **ENV,
            "auth_url": f"{self.url}/oauth2/token",
            "catalog_url": f"{self.url}{CATALOG_PATH}",
            "sales_data_dir": str(self.sales_data_dir),
            "catalog_file": str(self.catalog_file),
            "link_template": f"{SHOP}/{{sku}}",
            "field_ids": self.fields,
        }
        return super().settings(**{**wiring, **overrides})

    def __enter__(self) -> EmarsysSimulator:
        self.sales_data_dir = Path(tempfile.mkdtemp(prefix="emarsys-sales-"))
        self.catalog_file = Path(tempfile.mkdtemp(prefix="emarsys-catalog-")) / "products.csv"
        self.upload_sales_data("sales_initial.csv")
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for folder in (self.sales_data_dir, self.catalog_file and self.catalog_file.parent):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def upload_sales_data(self, file_name: str, lines: pl.DataFrame | None = None) -> Path:
        """Add a sales-data file as an integration uploads it (by default, the dataset's orders)."""
        assert self.sales_data_dir is not None
        if lines is None:
            lines = mapping.sales_from_frames(self.dataset.get("orders"), self.dataset.get("order_lines"))
        path = self.sales_data_dir / file_name
        lines.write_csv(path)
        return path

    # --- auth and limits ------------------------------------------------------------------------------

    def authenticate(self, request: base.Request) -> base.Response | None:
        if request.path == CATALOG_PATH:
            return None  # hosted by the retailer, fetched by Emarsys: no API credentials
        if request.path == "/oauth2/token":
            expected = f"{self.credentials['EMARSYS_CLIENT_ID']}:{self.credentials['EMARSYS_CLIENT_SECRET']}"
            if request.headers.get("authorization") != "Basic " + base64.b64encode(expected.encode()).decode():
                return base.Response(401, {"error": "invalid_client"})
            return None
        if request.path.startswith("/api/v3/"):
            return self._check_bearer(request.headers.get("authorization", ""))
        return self._check_wsse(request.headers.get("x-wsse", ""))

    def _check_wsse(self, header: str) -> base.Response | None:
        parts = dict(_WSSE.findall(header))
        if not {"Username", "PasswordDigest", "Nonce", "Created"} <= set(parts):
            return reply("", 1, "Unauthorized: X-WSSE header missing or malformed", status=401)
        if parts["Username"] != self.credentials["EMARSYS_USERNAME"]:
            return reply("", 1, "Unauthorized", status=401)
        expected = wsse_header(
            parts["Username"], self.credentials["EMARSYS_SECRET"], nonce=parts["Nonce"], created=parts["Created"]
        )
        if dict(_WSSE.findall(expected))["PasswordDigest"] != parts["PasswordDigest"]:
            return reply("", 1, "Unauthorized", status=401)
        created = datetime.fromisoformat(parts["Created"].replace("Z", "+00:00"))
        if abs((datetime.now(UTC) - created).total_seconds()) > MAX_SKEW_SECONDS:
            return reply("", 1, "Unauthorized: request timestamp out of range", status=401)
        with self._lock:
            if parts["Nonce"] in self._nonces:
                return reply("", 1, "Unauthorized: nonce already used", status=401)
            self._nonces.add(parts["Nonce"])
        return None

    def _check_bearer(self, header: str) -> base.Response | None:
        token = header.removeprefix("Bearer ")
        limit = self.faults.expire_token_after
        with self._lock:
            served = self._tokens.get(token)
            if served is None or (limit is not None and served >= limit):
                return base.Response(401, {"error": "invalid_token", "error_description": "token expired or unknown"})
            self._tokens[token] = served + 1
        return None

    def bucket(self, request: base.Request) -> str | None:
        return "api" if request.path.startswith("/api/") else None

    def error(self, status: int, message: str) -> base.Response:
        return reply("", status, message, status=status)

    def rate_limited(self, request: base.Request) -> base.Response:
        window = 60
        reset = self._started + ((time.time() - self._started) // window + 1) * window
        response = reply("", 429, "Too many requests", status=429)
        response.headers.update(
            {"X-RateLimit-Limit": "1000", "X-Ratelimit-Remaining": "0", "X-RateLimit-Reset": str(math.ceil(reset))}
        )
        return response

    # --- endpoints ------------------------------------------------------------------------------------

    def handle(self, request: base.Request) -> base.Response:
        if request.path == "/oauth2/token":
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._tokens[token] = 0
            return base.Response(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600})
        if request.path == CATALOG_PATH:
            if self.catalog_file is not None and self.catalog_file.exists():
                body = self.catalog_file.read_bytes()
            else:
                body = (
                    mapping.catalogue_from_frames(self.dataset.get("products"), self.dataset.get("inventory"), SHOP)
                    .write_csv()
                    .encode()
                )
            return base.Response(200, body, content_type="text/csv; charset=utf-8")
        endpoint = re.sub(r"^/api/v[23]/", "", request.path)
        if request.method == "GET" and endpoint == "contact/query/":
            return self._query(request.query)
        if request.method == "POST" and endpoint == "contact/getdata":
            return self._getdata(request.json() or {})
        if request.method == "PUT" and endpoint in ("contact", "contact/"):
            return self._upsert(request.query, request.json() or {})
        return reply(
            "", 1001, f"Invalid or missing parameters: no endpoint {request.method} {request.path}", status=404
        )

    def _contacts(self) -> list[dict[str, Any]]:
        return self._current()[0]

    def _by(self, field_id: str) -> dict[str, list[dict[str, Any]]]:
        """The contacts grouped by the value of one field (several for a key that is not unique)."""
        contacts, index = self._current()
        with self._lock:
            if field_id not in index:
                grouped: dict[str, list[dict[str, Any]]] = {}
                for contact in contacts:
                    grouped.setdefault(str(contact.get(field_id)), []).append(contact)
                index[field_id] = grouped
            return index[field_id]

    def _current(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[dict[str, Any]]]]]:
        """Contacts and their indexes, rebuilt only when the customers frame was replaced or the enum fault
        switched."""
        customers, odd_values = self.dataset.get("customers"), self.faults.unknown_enums
        version = (id(customers), odd_values)
        with self._lock:
            if self._cache is None or self._cache[0] != version:
                contacts = mapping.contacts_from_frame(customers, self.fields)
                if odd_values:  # an opt-in value outside the documented 1/2
                    contacts = [{**c, self.fields["email_consent"]: "3"} for c in contacts]
                self._cache = (version, contacts, {})
            return self._cache[1], self._cache[2]

    def _query(self, query: dict[str, str]) -> base.Response:
        key = query.get("return", "")
        if key not in ("id", *self.fields.values()):
            return reply("", 2006, f"Invalid field id: {key}")
        limit, offset = int(query.get("limit", 10000)), int(query.get("offset", 0))
        if not 1 <= limit <= 10000:
            return reply("", 1001, "Invalid or missing parameters: limit must be 1..10000", status=400)
        listed = [c for c in self._contacts() if c.get(key) not in (None, "") or query.get("excludeempty") != "true"]
        page = [{"id": c["id"], key: c.get(key)} for c in listed[offset : offset + limit]]
        self.page_served()
        return reply({"result": page})

    def _getdata(self, body: dict[str, Any]) -> base.Response:
        keys, fields = [str(k) for k in body.get("keyValues") or []], [str(f) for f in body.get("fields") or []]
        key_id = str(body.get("keyId", ""))
        if len(keys) > BATCH:
            return reply("", 1000, f"Batch is too large: at most {BATCH} contacts per call", status=400)
        known = {"id", "uid", *self.fields.values()}
        if key_id not in known:
            return reply("", 2004, f"Invalid key field id: {key_id}")
        if unknown := [f for f in fields if f not in known]:
            return reply("", 2006, f"Invalid field id: {', '.join(unknown)}")
        by_key = self._by(key_id)
        result, errors = [], []
        for key in keys:
            found = by_key.get(key, [])
            if len(found) == 1:
                result.append(
                    {"id": found[0]["id"], "uid": f"u{found[0]['id']}", **{f: found[0].get(f) for f in fields}}
                )
            else:
                code, text = (
                    (2008, "No contact found with the external id")
                    if not found
                    else (2010, "More contacts found with the external id")
                )
                errors.append({"key": key, "errorCode": code, "errorMsg": f"{text}: {key_id}"})
        return reply({"result": result if result or not errors else False, "errors": errors})

    def _upsert(self, query: dict[str, str], body: dict[str, Any]) -> base.Response:
        contacts = body.get("contacts")
        if contacts is None:  # the single-contact form: the body is the contact
            contacts = [{k: v for k, v in body.items() if k not in ("key_id", "contact_list_id")}]
        if len(contacts) > BATCH:
            return reply("", 1000, f"Batch is too large: at most {BATCH} contacts per call", status=400)
        key_id = str(body.get("key_id", "3"))
        known = {"id", "uid", *self.fields.values()}
        if key_id not in known:
            return reply("", 2004, f"Invalid key field id: {key_id}")
        if unknown := sorted({str(f) for c in contacts for f in c} - known):
            return reply("", 2006, f"Invalid field id: {', '.join(unknown)}")
        create = query.get("create_if_not_exists") in ("1", "true")
        with self._write_lock:
            current = [dict(c) for c in self._contacts()]
            by_key: dict[str | None, list[dict[str, Any]]] = {}
            for contact in current:
                by_key.setdefault(text(contact.get(key_id)), []).append(contact)
            ids: list[str | int] = []
            errors: dict[str, dict[str, str]] = {}
            for sent in contacts:
                key = text(sent.get(key_id))
                outcome = self._write_one(sent, key, key_id, by_key, current, create)
                if isinstance(outcome, dict):
                    errors[key or ""] = outcome
                else:
                    ids.append(outcome)
            self.dataset["customers"] = mapping.contacts_frame(current, self.fields)
        return reply({"ids": ids, **({"errors": errors} if errors else {})})

    def _write_one(
        self,
        sent: dict[str, Any],
        key: str | None,
        key_id: str,
        by_key: dict[str | None, list[dict[str, Any]]],
        current: list[dict[str, Any]],
        create: bool,
    ) -> str | int | dict[str, str]:
        """One contact of an upsert: its id (a string when it existed, an integer when created), or its error."""
        if key is None:
            return {"2005": f"No value provided for key field: {key_id}"}
        opt_in = self.fields["email_consent"]
        if sent.get(opt_in) not in OPT_IN_WRITES:
            return {"2013": f"Invalid value for field {opt_in}: only 1, 2 or null are accepted"}
        found = by_key.get(key, [])
        if len(found) > 1:
            return {"2010": f"More contacts found with the external id: {key_id}"}
        if not found and not create:
            return {"2008": f"No contact found with the external id: {key_id}"}
        if not found and self.upsert_races > 0:
            self.upsert_races -= 1
            return {"2006": "Contact with the external id already exists"}
        if found:
            contact, reply_id = found[0], str(found[0]["id"])
        else:
            reply_id = max((int(c["id"]) for c in current if str(c["id"]).isdigit()), default=0) + 1
            contact = {"id": str(reply_id), key_id: key}
            current.append(contact)
            by_key[key] = [contact]
        contact.update({str(f): text(v) for f, v in sent.items() if str(f) not in ("id", "uid")})
        self.writes[contact.get(self.fields["erp_customer_id"]) or contact["id"]] += 1
        return reply_id
