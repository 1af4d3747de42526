"""Ometria: contacts, orders (with their line items) and products (with their stock level).

Settings (`[sources.ometria]`): `api_key_env` (the name of the variable holding the API key), optional
`base_url`, `page_size` (at most 250), `read_rate` / `push_rate` (requests a second) and HTTP timings.

Ometria documents no updated-since filter on its lists (only `limit`, `offset` and, for products,
`active`), and reading every page to keep the recent records would cost as many requests as a full pull, so
every pull reads every record (`always_whole`): an incremental `since` changes nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors.base import BaseConnector, Cursor, Pulled
from driftwatch.connectors.ometria import mapping
from driftwatch.connectors.ometria.client import BASE_URL, OmetriaClient

# Each Ometria record type yields its canonical entity and, riding along in the same record, maybe a second.
FEEDS: dict[str, tuple[str, ...]] = {
    "contact": ("customers",),
    "order": ("orders", "order_lines"),
    "product": ("products", "inventory"),
}
RIDER = "_rider"  # the JSON of the second entity's rows, staged with the record that carries them


def _order(record: dict[str, Any]) -> dict[str, Any]:
    order, lines = mapping.order_to_rows(record)
    return {**order, RIDER: json.dumps(lines)}


def _product(record: dict[str, Any]) -> dict[str, Any]:
    product, stock = mapping.product_to_rows(record)
    return {**product, RIDER: json.dumps([stock] if stock["available"] is not None else [])}


TO_ROWS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "contact": mapping.contact_to_row,
    "order": _order,
    "product": _product,
}


class Connector(BaseConnector):
    name = "ometria"
    entities = ("customers", "orders", "order_lines", "products", "inventory")
    drop_decoders = mapping.DROP_DECODERS
    settings_keys = frozenset({"base_url", "api_key_env", "page_size", "read_rate", "push_rate"})
    always_whole: ClassVar[Mapping[str, str]] = {
        "*": "Ometria documents no updated-since filter (its lists take limit, offset and, for products, active)"
    }

    def __init__(self, settings: dict[str, Any], **kwargs: Any):
        super().__init__(settings, **kwargs)
        self._api_key = self.credential("api_key_env")
        self._client: OmetriaClient | None = None
        self._pulled: dict[str, pl.DataFrame] = {}  # one pull's frames, so a record type is read once

    def check(self) -> str:
        client = OmetriaClient(self.setting("base_url", BASE_URL), self._api_key, {"page_size": 1}, self.http_settings)
        try:
            client.page("contact", 0)
        finally:
            client.close()
        return "API key accepted (GET /v2/contacts)"

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        self._client = OmetriaClient(
            self.setting("base_url", BASE_URL), self._api_key, self.settings, self.http_settings
        )
        try:
            return super().pull(entities, since=since)
        finally:
            self._client.close()
            self._pulled = {}

    def pull_entity(self, entity: str, *, since: datetime | None) -> pl.DataFrame:
        if entity not in self._pulled:
            record_type = next(t for t, produced in FEEDS.items() if entity in produced)
            self._pulled.update(self._pull_feed(record_type))
        return self._pulled[entity]

    def _pull_feed(self, record_type: str) -> dict[str, pl.DataFrame]:
        assert self._client is not None
        client, (primary, *riders) = self._client, FEEDS[record_type]

        def fetch(cursor: Cursor | None) -> tuple[list[dict[str, Any]], Cursor | None]:
            offset = cursor["offset"] if cursor else 0
            records = client.page(record_type, offset)
            rows = [TO_ROWS[record_type](r) for r in records]
            return rows, ({"offset": offset + len(records)} if len(records) == client.page_size else None)

        staged = self.paginate(primary, fetch, params={"page_size": client.page_size})
        frames = {primary: mapping.frame(primary, staged.to_dicts())}
        carried = staged[RIDER].to_list() if RIDER in staged.columns else []
        for rider in riders:
            frames[rider] = mapping.frame(rider, (row for rows in carried for row in json.loads(rows or "[]")))
        return frames
