"""Pull customers, orders (with lines and returns), inventory entries and products from commercetools.

Settings (`[sources.commercetools]` in driftwatch.toml):

    base_url = "https://api.europe-west1.gcp.commercetools.com"
    auth_url = "https://auth.europe-west1.gcp.commercetools.com"   # default: base_url with api. -> auth.
    project = "my-shop"                      # the project key (not a secret: it is in every URL)
    client_id_env = "CTP_CLIENT_ID"          # names of environment variables, never the values
    client_secret_env = "CTP_CLIENT_SECRET"
    scopes = ["view_orders:my-shop", ...]    # default: every scope of the API client
    page_size = 500                          # 1..500
    currency = "EUR"                         # which variant price is the product's price (default: the first)
    message_retention_days = 15              # used when the token may not read the project settings
    # optional: custom_fields = {...}, attributes = {...}, locale = "en" (see mapping.py)

Incremental pulls (`since`) read the Messages Query API for the ids of the resources changed since then
and fetch only those (scope `view_messages`); a resource a message names that is no longer found was
deleted. When messages are disabled in the project, or `since` is older than their retention, the
resources whose `lastModifiedAt` is since then are read instead, and deletions wait for the next full pull.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors._checkpoint import Staging
from driftwatch.connectors.base import RECORD, BaseConnector, Delta, Pulled
from driftwatch.connectors.commercetools import mapping
from driftwatch.connectors.commercetools.client import MAX_LIMIT, CommercetoolsClient, id_after, id_in, quote
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.progress import PageProgress

log = logging.getLogger("driftwatch.connectors.commercetools")

Row = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One queryable endpoint and the canonical entities its records give."""

    path: str
    type_id: str  # the resource reference type in Messages
    entities: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)


# Query results and Messages are eventually consistent: reading a few minutes before `since` costs a few
# records fetched twice and never misses a change that became visible late.
MESSAGE_OVERLAP = timedelta(minutes=5)

RESOURCES = (
    Resource("customers", "customer", ("customers",)),
    Resource("orders", "order", ("orders", "order_lines", "returns", "shipments")),
    Resource("inventory", "inventory-entry", ("inventory",), {"expand": "supplyChannel"}),
    Resource("product-projections", "product", ("products",), {"staged": "false"}),
)


class Connector(BaseConnector):
    name = "commercetools"
    entities = tuple(entity for resource in RESOURCES for entity in resource.entities)
    incremental: ClassVar[Mapping[str, str]] = dict.fromkeys(
        entities, "Messages since then (else lastModifiedAt), the resources they name read by id"
    )
    settings_keys = frozenset(
        {
            "base_url",
            "auth_url",
            "project",
            "client_id_env",
            "client_secret_env",
            "scopes",
            "page_size",
            "currency",
            "message_retention_days",
            "custom_fields",
            "attributes",
            "locale",
        }
    )

    @classmethod
    def decode_drop(cls, entity: str, frame: pl.DataFrame, settings: Mapping[str, Any]) -> pl.DataFrame:
        """An inventory drop's reservations (quantityOnStock less availableQuantity) are its `allocated`, as
        a pull reads them."""
        frame = super().decode_drop(entity, frame, settings)
        return mapping.drop_inventory(frame) if entity == "inventory" else frame

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        source: str | None = None,
        env: Mapping[str, str] = os.environ,
        checkpoint_dir: Path | None = None,
        progress: bool | None = None,
    ):
        super().__init__(settings, source=source, env=env, checkpoint_dir=checkpoint_dir, progress=progress)
        self.names = mapping.Names(self.settings)
        self.page_size = int(self.setting("page_size", MAX_LIMIT))
        if not 1 <= self.page_size <= MAX_LIMIT:
            raise UserError(f"sources.{self.source}: page_size must be 1..{MAX_LIMIT}, not {self.page_size}")
        base_url = self.setting("base_url")
        # One HTTP client (and token) per pull, closed after it: a nightly job never holds a stale one.
        self._connect = functools.partial(
            CommercetoolsClient,
            api_url=base_url,
            auth_url=self.setting("auth_url", None) or _auth_url(base_url, self.source),
            project_key=self.setting("project"),
            client_id=self.credential("client_id_env", secret=False),
            client_secret=self.credential("client_secret_env"),
            scopes=self.setting("scopes", ()),
            settings=self.http_settings,
        )

    def check(self) -> str:
        client = self._connect()
        try:
            project = client.project()
        finally:
            client.close()
        if project is None:
            return (
                f"API client accepted; project {client.project_key} settings not readable with its scopes "
                "(only incremental pulls need them)"
            )
        return f"API client accepted; project {client.project_key} readable"

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        """With `since`, each resource's changes: the resources Messages name since then, fetched by id (a
        resource named but no longer found was deleted, or for products unpublished), else, when Messages
        cannot answer, those whose `lastModifiedAt` is since then (deletions then wait for a full pull)."""
        chosen = self._select(entities)
        captured_at = datetime.now(UTC)
        frames: dict[str, pl.DataFrame] = {}
        deltas: dict[str, Delta] = {}
        self.client = self._connect()
        try:
            for resource in RESOURCES:
                wanted = tuple(e for e in resource.entities if e in chosen)
                if not wanted:
                    continue
                changes = None if since is None else self._changes(resource, since)
                pulled = self._pull_resource(resource, wanted, changes)
                frames |= pulled
                if changes is not None:
                    delta = Delta(since, changes.gone(pulled.values()), changes.note)
                    deltas |= dict.fromkeys(wanted, delta)
        finally:
            self.client.close()
        return Pulled(self.source, captured_at, {entity: frames[entity] for entity in chosen}, deltas)

    # ---------------------------------------------------------------- one resource

    def _pull_resource(
        self, resource: Resource, wanted: tuple[str, ...], changes: _Changes | None
    ) -> dict[str, pl.DataFrame]:
        params = {"changes": None if changes is None else changes.params, "page_size": self.page_size}
        stagings = {e: Staging(self.checkpoint_dir, self.source, e, ENTITIES[e].key, params) for e in wanted}
        after, finished = _resume_point(stagings.values())
        with PageProgress(f"{self.source} {resource.path}", self.progress) as progress:
            while not finished:
                records, following = self._page(resource, after, changes)
                rows = self._rows(resource, records)
                cursor = None if following is None else {"after": following}
                for entity, staging in stagings.items():
                    staging.save(_frame(entity, rows[entity]), cursor)
                progress.advance(len(records))
                after, finished = following, following is None
        frames = {entity: staging.frame() for entity, staging in stagings.items()}
        for staging in stagings.values():
            staging.clear()
        return frames

    def _page(self, resource: Resource, after: str | None, changes: _Changes | None) -> tuple[list[Row], str | None]:
        """One page of records after id `after`, and the id to continue after (None: that was the last)."""
        if changes is None or changes.ids is None:
            modified = None if changes is None else f"lastModifiedAt >= {quote(changes.start)}"
            records = self.client.query(
                resource.path, where=[modified, id_after(after)], limit=self.page_size, params=resource.params
            )
            return records, (records[-1]["id"] if len(records) == self.page_size else None)
        start = 0 if after is None else bisect.bisect_right(changes.ids, after)
        chunk = changes.ids[start : start + self.page_size]
        if not chunk:
            return [], None
        records = self.client.query(resource.path, where=[id_in(chunk)], limit=len(chunk), params=resource.params)
        more = start + len(chunk) < len(changes.ids)
        return records, (chunk[-1] if more else None)

    def _rows(self, resource: Resource, records: list[Row]) -> dict[str, list[Row]]:
        """Each record's rows per entity, each row naming the record (its resource id) it came from."""
        rows: dict[str, list[Row]] = {entity: [] for entity in resource.entities}

        def add(entity: str, record: Row, produced: Iterable[Row]) -> None:
            rows[entity].extend({**row, RECORD: record["id"]} for row in produced)

        for record in records:
            if resource.type_id == "customer":
                add("customers", record, [mapping.customer_row(record, self.names)])
            elif resource.type_id == "order":
                head, lines, returns = mapping.order_rows(record, self.names)
                add("orders", record, [head])
                add("order_lines", record, lines)
                add("returns", record, returns)
                add("shipments", record, mapping.order_shipments(record, self.names))
            elif resource.type_id == "inventory-entry":
                add("inventory", record, [mapping.inventory_row(record)])
            else:
                add("products", record, self._product_rows(record))
        return rows

    def _product_rows(self, projection: Row) -> list[Row]:
        rows = mapping.product_rows(projection, self.names, self.setting("currency", None))
        variants = 1 + len(projection.get("variants") or [])
        if len(rows) < variants:
            log.warning(
                "commercetools: product %s has %d variant(s) without a SKU; they cannot be audited",
                projection.get("key") or projection["id"],
                variants - len(rows),
            )
        return rows

    # ---------------------------------------------------------------- incremental

    def _changes(self, resource: Resource, since: datetime) -> _Changes:
        """How to read the resources changed since `since`: the ids Messages name, or `lastModifiedAt`."""
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        start = mapping.to_timestamp(since - MESSAGE_OVERLAP)
        enabled, retention_days = self._messages_configuration()
        if not enabled:
            return _Changes(start, None, "by lastModifiedAt: Messages are disabled in the project")
        if since < datetime.now(UTC) - timedelta(days=retention_days):
            return _Changes(start, None, f"by lastModifiedAt: Messages are kept {retention_days} days")
        where = [f"createdAt >= {quote(start)}", f"resource(typeId = {quote(resource.type_id)})"]
        ids = {
            message["resource"]["id"]
            for page in self.client.pages("messages", where=where, limit=self.page_size)
            for message in page
        }
        return _Changes(start, sorted(ids), "by Messages")

    def _messages_configuration(self) -> tuple[bool, int]:
        default_days = int(self.setting("message_retention_days", 15))
        project = self.client.project()
        if project is None:  # the token may not read the project settings: trust the configuration
            return True, default_days
        config = project.get("messages") or {}
        return bool(config.get("enabled")), int(config.get("deleteDaysAfterCreation") or default_days)


@dataclass(frozen=True)
class _Changes:
    """A resource's changes since `start`: the `ids` Messages name (None: those with a later lastModifiedAt)."""

    start: str
    ids: list[str] | None
    note: str

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.start, "ids": self.ids}

    def gone(self, frames: Iterable[pl.DataFrame]) -> frozenset[str]:
        """The resources Messages named that the queries no longer found: deleted (or unpublished)."""
        if self.ids is None:
            return frozenset()
        found = {record for frame in frames if RECORD in frame.columns for record in frame[RECORD].to_list()}
        return frozenset(self.ids) - found


def _frame(entity: str, rows: list[Row]) -> pl.DataFrame:
    """`mapping.frame` with the record each row came from."""
    return mapping.frame(entity, rows).with_columns(pl.Series(RECORD, [row[RECORD] for row in rows], pl.String))


def _resume_point(stagings: Iterable[Staging]) -> tuple[str | None, bool]:
    """Where to continue: after the smallest id any unfinished entity reached (pages fetched again are
    de-duplicated by key), from the start if one of them has nothing staged."""
    unfinished = [s for s in stagings if not s.done]
    if not unfinished:
        return None, True
    if any(s.cursor is None for s in unfinished):
        return None, False
    return min(s.cursor["after"] for s in unfinished), False


def _auth_url(base_url: str, source: str) -> str:
    if "://api." not in base_url:
        raise UserError(
            f"sources.{source}: set auth_url (the OAuth host, e.g. https://auth.<region>.commercetools.com)"
        )
    return base_url.replace("://api.", "://auth.", 1)
