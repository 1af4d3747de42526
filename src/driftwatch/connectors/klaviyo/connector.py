"""Pull a Klaviyo account into canonical frames.

Profiles (with their subscriptions) give `customers`; catalog variants give `products` and `inventory`;
the order lifecycle metrics (Placed / Fulfilled / Cancelled / Refunded Order) give `events`. Klaviyo has
no mutable order: the audit derives order status from these events. Every list is staged as it is
fetched, so an interrupted pull resumes from its last staged cursor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors.base import BaseConnector, Cursor, Pulled, decode_values
from driftwatch.connectors.klaviyo import mapping
from driftwatch.connectors.klaviyo.client import REVISION, KlaviyoClient, after, all_of, before
from driftwatch.errors import UserError

UPDATE_WINDOWS = 8  # profiles changed since the last pull are read as this many spans of `updated` at once
MAX_UPDATE_WINDOWS = 32


class Connector(BaseConnector):
    """Settings (`[sources.klaviyo]`): `api_key_env` (the variable holding a private API key); optional
    `base_url` (default https://a.klaviyo.com), `revision`, `rate_limits` ({bucket: [[requests, seconds],
    ...]} for profiles, events, catalog, metrics; default the documented limits), `page_size` (records a
    page, at most each list's documented maximum), `update_windows` (the spans of `updated` an incremental
    pull reads side by side, default 8; 1 reads one listing), `profile_properties`
    ({canonical column: custom property} for lifetime_value, order_count, last_order_at,
    merged_into), `metrics`
    ({Klaviyo metric name: canonical metric}) and HTTP timings."""

    name = "klaviyo"
    settings_keys = frozenset(
        {
            "base_url",
            "api_key_env",
            "revision",
            "page_size",
            "rate_limits",
            "profile_properties",
            "metrics",
            "update_windows",
        }
    )
    entities = ("customers", "products", "inventory", "events")
    checkpoint_rows = 5000  # a file per 100-profile page would cost more than fetching it
    # The filters Klaviyo documents (x-klaviyo-filters in its OpenAPI spec, revision 2026-07-15).
    incremental: ClassVar[Mapping[str, str]] = {
        "customers": "profiles filtered greater-than(updated, since)",
        "events": "events filtered greater-than(datetime, since)",
    }
    always_whole: ClassVar[Mapping[str, str]] = dict.fromkeys(
        ("products", "inventory"), "Klaviyo documents no update filter on catalog variants"
    )
    drop_decoders = mapping.DROP_DECODERS

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
        self.properties = {**mapping.PROFILE_PROPERTIES, **self.setting("profile_properties", {})}
        self.metrics = dict(self.setting("metrics", mapping.METRICS))
        self.client = KlaviyoClient(
            self.setting("base_url", "https://a.klaviyo.com"),
            self.credential("api_key_env"),
            revision=self.setting("revision", REVISION),
            settings=self.http_settings,
            rate_limits=self.setting("rate_limits", {}),
            page_size=self.setting("page_size", None),
        )
        self._variant_rows: pl.DataFrame | None = None

    @classmethod
    def decode_drop(cls, entity: str, frame: pl.DataFrame, settings: Mapping[str, Any]) -> pl.DataFrame:
        """Besides consent states, an events drop names its metrics as Klaviyo does (Placed Order): read
        through the source's `metrics`, as a pull reads them."""
        frame = super().decode_drop(entity, frame, settings)
        if entity != "events":
            return frame
        metrics = dict(settings.get("metrics", mapping.METRICS))
        return decode_values(frame, {"metric": lambda name: metrics.get(name, name)})

    def close(self) -> None:
        self.client.close()

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        """`since` narrows customers to the profiles updated since then and events to those that happened
        since then (an event recorded later than it happened by more than the source's `overlap` is seen by
        the next full pull); the catalog has no such filter and is always pulled whole."""
        self._variant_rows = None  # products and inventory share one listing per pull
        try:
            return super().pull(entities, since=since)
        finally:
            self._variant_rows = None

    def check(self) -> str:
        self.client.page("/api/metrics")
        return "private API key accepted (GET /api/metrics)"

    def pull_entity(self, entity: str, *, since: datetime | None) -> pl.DataFrame:
        if entity == "customers":
            return self._customers(since)
        if entity == "events":
            return self._events(since)
        return self._variant_entity(entity)

    # --- customers ----------------------------------------------------------------------------------------

    def _customers(self, since: datetime | None) -> pl.DataFrame:
        # Sorted by id, which never changes: a profile updated while we page keeps its place, where a sort
        # on `updated` would move it behind the cursor and past pages would shift.
        first = self.client.first_page_params(
            "profiles", **{"additional-fields[profile]": "subscriptions", "sort": "id"}
        )
        if since is not None:
            return self._customers_changed(first, since)

        def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
            body, following = self._page(cursor, "/api/profiles", first)
            return self._profiles(body), _next(following)

        return self.paginate("customers", fetch, params={"since": since, "properties": self.properties})

    def _customers_changed(self, first: dict[str, Any], since: datetime) -> pl.DataFrame:
        """The profiles updated since `since`, read as `update_windows` disjoint spans of `updated`, side by
        side: cursor pages come one after another, so one listing reads a page per round trip, however
        quickly the rate limit would allow the next; several listings at once keep the one shared limiter
        busy. Spans meet with a second's overlap (the filter's datetimes are whole seconds and its operators
        strict), and the last is open-ended. A profile updated while we page moves into the last span: it
        may be read twice (the later read wins, as a later page does) or, if its cursor has passed, not at
        all tonight; either way its `updated` is after this pull's start, so the next pull reads it."""
        windows = self.setting("update_windows", UPDATE_WINDOWS)
        if isinstance(windows, bool) or not isinstance(windows, int) or not 1 <= windows <= MAX_UPDATE_WINDOWS:
            raise UserError(
                f"sources.{self.source}.update_windows: expected a whole number from 1 to {MAX_UPDATE_WINDOWS}, "
                f"not {windows!r}"
            )
        spans = update_spans(since, datetime.now(UTC), windows)
        listings = [{**first, "filter": span} for span in spans]

        def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
            pending = cursor["listings"] if cursor else [{"listing": i, "next": None} for i in range(len(listings))]
            pages = list(pool.map(lambda at: self._listing_page(listings[at["listing"]], at), pending))
            pages.sort(key=lambda page: page[2])  # in the order the answers came: a later read wins
            following = [
                {"listing": at["listing"], "next": url} for at, (_, url, _) in zip(pending, pages, strict=True)
            ]
            following = [at for at in following if at["next"] is not None]
            frame = pl.concat([rows for rows, _, _ in pages]) if pages else self._profiles({"data": []})
            return frame, {"listings": following} if following else None

        with ThreadPoolExecutor(max_workers=len(listings), thread_name_prefix="klaviyo-profiles") as pool:
            return self.paginate(
                "customers", fetch, params={"since": since, "properties": self.properties, "spans": spans}
            )

    def _listing_page(self, first: dict[str, Any], at: Cursor) -> tuple[pl.DataFrame, str | None, float]:
        body, following = self._page(_next(at["next"]), "/api/profiles", first)
        return self._profiles(body), following, time.monotonic()

    def _profiles(self, body: dict[str, Any]) -> pl.DataFrame:
        return _frame(
            mapping.COLUMNS["customers"], (mapping.profile_to_customer(p, self.properties) for p in body["data"])
        )

    # --- catalog ------------------------------------------------------------------------------------------

    def _variant_entity(self, entity: str) -> pl.DataFrame:
        """Products or inventory from the catalog variants; both come from one staged listing."""
        variants = self._variants()
        if entity == "products":
            return variants.select(mapping.COLUMNS["products"])
        return variants.filter(pl.col("available").is_not_null()).select(
            "sku", location=pl.lit("*"), available="available", updated_at="stock_updated_at"
        )

    def _variants(self) -> pl.DataFrame:
        if self._variant_rows is None:
            first = self.client.first_page_params("catalog", sort="created")

            def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
                body, following = self._page(cursor, "/api/catalog-variants", first)
                return _frame(mapping.VARIANT_COLUMNS, map(mapping.variant_to_row, body["data"])), _next(following)

            self._variant_rows = self.paginate("products", fetch, params={"listing": "catalog-variants"})
        return self._variant_rows

    # --- events -------------------------------------------------------------------------------------------

    def _events(self, since: datetime | None) -> pl.DataFrame:
        """Each order metric in turn (the API filters events by one metric id at a time)."""
        metric_names = {mid: self.metrics[name] for mid, name in self.client.metric_ids(self.metrics).items()}
        metric_ids = sorted(metric_names)

        def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
            if not metric_ids:
                return _frame(mapping.COLUMNS["events"], []), None
            cursor = cursor or {"metric": metric_ids[0], "next": None}
            metric_id = cursor["metric"]
            first = self.client.first_page_params(
                "events",
                include="profile",
                **{
                    "fields[profile]": "email",
                    "sort": "datetime",
                    "filter": all_of(f'equals(metric_id,"{metric_id}")', after("datetime", since)),
                },
            )
            body, following = self._page(_next(cursor["next"]), "/api/events", first)
            emails = {p["id"]: (p.get("attributes") or {}).get("email") for p in body.get("included") or []}
            rows = [mapping.event_to_row(e, metric_names, emails) for e in body["data"]]
            later = metric_ids[metric_ids.index(metric_id) + 1 :]
            if following:
                upcoming: Cursor | None = {"metric": metric_id, "next": following}
            else:
                upcoming = {"metric": later[0], "next": None} if later else None
            return _frame(mapping.COLUMNS["events"], rows), upcoming

        return self.paginate("events", fetch, params={"since": since, "metrics": self.metrics})

    def _page(self, cursor: Cursor | None, path: str, first: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The first page of a list, or the page a staged `links.next` URL points at."""
        if cursor is None:
            return self.client.page(path, first)
        return self.client.page(cursor["next"])


def update_spans(since: datetime, until: datetime, count: int) -> list[str]:
    """`count` filters on `updated` that together hold every profile updated after `since`: equal spans up
    to `until` (whole seconds), each from a second before the previous one ends, the last open-ended."""
    start = since.astimezone(UTC)
    step = max(0, int((until - start).total_seconds())) // max(1, count)
    if count <= 1 or step < 2:
        return [after("updated", start)]
    ends = [(start + timedelta(seconds=step * i)).replace(microsecond=0) for i in range(1, count)]
    lows = [after("updated", start), *(after("updated", end - timedelta(seconds=1)) for end in ends)]
    highs = [before("updated", end) for end in ends] + [None]
    return [all_of(low, high) for low, high in zip(lows, highs, strict=True)]


def _next(url: str | None) -> Cursor | None:
    return None if url is None else {"next": url}


def _frame(columns: Iterable[str], rows: Iterable[mapping.Row]) -> pl.DataFrame:
    """Text columns, exactly those Klaviyo fills; the normaliser types them."""
    return pl.DataFrame(list(rows), schema=dict.fromkeys(columns, pl.String))
