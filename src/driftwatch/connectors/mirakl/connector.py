"""Pull a Mirakl shop (MMP seller API) into canonical frames.

One listing feeds several entities: OF21 offers give `products` and `inventory`; OR11 orders give
`orders`, `order_lines` and `shipments` (SH21 carriers name the unregistered ones); TL02 transaction lines
give `payout_lines` (IV01 numbers the documents a line names only by id). Each listing is called once per
pull, because Mirakl caps how often each one may be called.

Raw records are staged page by page (`BaseConnector.paginate`), so an interrupted pull resumes where it
stopped; a record seen twice (overlapping incremental pulls, records moving while paging) is kept once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from driftwatch.connectors.base import RECORD, BaseConnector, Cursor, Delta, Pulled
from driftwatch.connectors.mirakl import mapping
from driftwatch.connectors.mirakl.client import OFFSET_PAGE_SIZE, SEEK_PAGE_SIZE, MiraklClient, call_limiters
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.progress import PageProgress

log = logging.getLogger(__name__)

TL02_PATH = "/api/sellerpayment/transactions_logs"
EXPORT_PATH = "/api/offers/export/async"  # OF52; OF53 is its /status/{tracking id}
OFFER_ENTITIES = frozenset({"products", "inventory"})
ORDER_ENTITIES = frozenset({"orders", "order_lines", "shipments"})
RAW = "record"  # the staged column holding one raw record as JSON (money as exact text)
MAX_RESTARTS = 3  # an offset listing restarts when records shift under it; this often at most


class Connector(BaseConnector):
    """Settings (`[sources.mirakl]`): `base_url`, `api_key_env` (the variable holding the shop API key);
    optional `shop_id`, `call_limits` ({operation: [[calls, seconds], ...]}, default the documented
    ceilings), `offset_page_size` (<= 100), `seek_page_size` (<= 2000) and HTTP timings."""

    name = "mirakl"
    entities = ("products", "inventory", "orders", "order_lines", "shipments", "payout_lines")
    incremental: ClassVar[Mapping[str, str]] = {
        **dict.fromkeys(OFFER_ENTITIES, "OF52 offer export since last_request_date (deleted offers included)"),
        **dict.fromkeys(ORDER_ENTITIES, "OR11 orders filtered on start_update_date"),
        "payout_lines": "TL02 transaction lines filtered on last_updated_from",
    }
    settings_keys = frozenset(
        {"base_url", "api_key_env", "shop_id", "call_limits", "offset_page_size", "seek_page_size", "export_timeout"}
    )

    @classmethod
    def decode_drop(cls, entity: str, frame: pl.DataFrame, settings: Mapping[str, Any]) -> pl.DataFrame:
        """Transaction lines dropped as TL02 gives them (ORDER_AMOUNT, PAYMENT, ...) read as a pull reads
        them: the canonical line type, and a PAYMENT's amount as the amount paid out. A line already in
        canonical words is read as given."""
        if entity != "payout_lines" or frame.schema.get("line_type") != pl.String:
            return frame
        raw = pl.col("line_type").str.strip_chars()
        paid_out = raw.is_in(sorted(mapping.PAID_OUT))
        if "amount" in frame.columns:
            amount = pl.col("amount")
            if frame.schema["amount"] == pl.String:  # negated as text: the normaliser parses it exactly
                amount = amount.str.strip_chars()
                negated = pl.when(amount.str.starts_with("-")).then(amount.str.slice(1)).otherwise(pl.lit("-") + amount)
            else:
                negated = -amount
            frame = frame.with_columns(pl.when(paid_out).then(negated).otherwise(pl.col("amount")).alias("amount"))
        return frame.with_columns(raw.replace(mapping.LINE_TYPES).alias("line_type"))

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
        self._base_url = self.setting("base_url")
        self._api_key = self.credential("api_key_env")
        self._limiters = call_limiters(self.setting("call_limits", {}))
        self._gone_offers: frozenset[str] = frozenset()

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        """`since` narrows orders (and their lines and shipments) and payout lines to those updated since
        then. Each order's rows carry its Mirakl id as their record, so a changed order replaces all of them."""
        chosen = self._select(entities)
        captured_at = datetime.now(UTC)
        with self._client() as client:
            frames = self._pull(client, chosen, since)
        deltas = {e: Delta(since) for e in chosen if since is not None and e in self.incremental}
        if since is not None and OFFER_ENTITIES.intersection(chosen):
            offers = Delta(since, self._gone_offers, "OF52 export", carried=frozenset({"name"}))
            deltas |= {e: offers for e in OFFER_ENTITIES.intersection(chosen)}
        return Pulled(self.source, captured_at, {entity: frames[entity] for entity in chosen}, deltas)

    def check(self) -> str:
        with self._client() as client:
            client.get("/api/shipping/carriers")
        return "shop API key accepted (SH21 GET /api/shipping/carriers)"

    def _client(self) -> MiraklClient:
        return MiraklClient(
            self._base_url,
            self._api_key,
            key_variable=self.setting("api_key_env"),
            limiters=self._limiters,
            settings=self.http_settings,
            shop_id=self.setting("shop_id", None),
            offset_page_size=int(self.setting("offset_page_size", OFFSET_PAGE_SIZE)),
            seek_page_size=int(self.setting("seek_page_size", SEEK_PAGE_SIZE)),
        )

    def _pull(self, client: MiraklClient, chosen: tuple[str, ...], since: datetime | None) -> dict[str, pl.DataFrame]:
        frames: dict[str, pl.DataFrame] = {}
        if OFFER_ENTITIES.intersection(chosen) and since is not None:
            frames["products"], frames["inventory"] = self._offer_changes(client, since)
        elif OFFER_ENTITIES.intersection(chosen):
            offers = self._offers(client)
            frames["products"] = _offer_frame("products", map(mapping.offer_to_product, offers))
            frames["inventory"] = _offer_frame("inventory", map(mapping.offer_to_inventory, offers))
        if ORDER_ENTITIES.intersection(chosen):
            orders = self._orders(client, since)
            # The retailer's sales channel of these orders is this marketplace instance.
            heads = ((o, mapping.order_to_order(o, channel=self.source)) for o in orders)
            frames["orders"] = _order_frame("orders", heads)
            lines = ((o, r) for o in orders for r in mapping.order_to_lines(o))
            frames["order_lines"] = _order_frame("order_lines", lines)
            if "shipments" in chosen:
                carriers = mapping.carriers_by_label(client.get("/api/shipping/carriers")["carriers"])
                shipments = ((o, mapping.order_to_shipment(o, carriers)) for o in orders)
                frames["shipments"] = _order_frame("shipments", ((o, s) for o, s in shipments if s is not None))
        if "payout_lines" in chosen:
            frames["payout_lines"] = self._payout_lines(client, since)
        return frames

    # --- listings ---------------------------------------------------------------------------------------

    def _offers(self, client: MiraklClient) -> list[dict[str, Any]]:
        return self._offset_listing(client, "products", "/api/offers", "offers", lambda o: o["shop_sku"], {})

    def _offer_changes(self, client: MiraklClient, since: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The offers updated since `since` (OF52's differential export, polled with OF53, read with OF54),
        and in `_gone_offers` those deleted since. The export carries no product title: an offer created
        since then is read from OF21 whole; for the others, merging keeps the title already held."""
        lines = self._offer_export(client, since)
        deleted = lines["deleted"] == "true" if lines.height else pl.Series([], dtype=pl.Boolean)
        self._gone_offers = frozenset(lines.filter(deleted)["shop-sku"].to_list())
        changed = lines.filter(~deleted).to_dicts()
        created = {line["shop-sku"] for line in changed if mapping.parse_timestamp(line["date-created"]) >= since}
        at = datetime.now(UTC)
        products = [mapping.export_line_to_product(line, at) for line in changed if line["shop-sku"] not in created]
        stock = [mapping.export_line_to_inventory(line) for line in changed if line["shop-sku"] not in created]
        for sku in sorted(created):  # few a night: one OF21 call each, for the title
            for offer in client.offset_page("/api/offers", "offers", {"sku": sku}, 0)[0]:
                products.append(mapping.offer_to_product(offer))
                stock.append(mapping.offer_to_inventory(offer))
        return _offer_frame("products", products), _offer_frame("inventory", stock)

    def _offer_export(self, client: MiraklClient, since: datetime) -> pl.DataFrame:
        tracking = client.post(EXPORT_PATH, {"last_request_date": mapping.iso(since)}, limited_as="OF52")["tracking_id"]
        deadline = time.monotonic() + float(self.setting("export_timeout", 1800.0))
        with PageProgress(f"{self.source} offer export {tracking}", self.progress) as progress:
            while True:  # OF53's ceiling (every 10 s at most) paces the polling
                status = client.get(f"{EXPORT_PATH}/status/{tracking}", limited_as="OF53")
                if status.get("status") == "COMPLETED":
                    break
                if status.get("status") == "FAILED":
                    detail = (status.get("error") or {}).get("detail") or "no detail given"
                    raise UserError(f"{self.source}: the offer export (OF52 {tracking}) failed: {detail}")
                if time.monotonic() > deadline:
                    raise UserError(f"{self.source}: the offer export (OF52 {tracking}) was not ready in time")
            chunks = []
            for url in status.get("urls") or ():
                chunk = pl.read_csv(io.BytesIO(client.file(url)), separator=";", infer_schema=False)
                chunks.append(chunk)
                progress.advance(chunk.height)
        if not chunks:
            return pl.DataFrame(schema={"shop-sku": pl.String, "deleted": pl.String})
        return pl.concat(chunks, how="diagonal")

    def _orders(self, client: MiraklClient, since: datetime | None) -> list[dict[str, Any]]:
        # Mirakl moves `start_update_date` back a little so that no order is missed: consecutive incremental
        # pulls overlap, and the staging keeps each order once.
        params = {"start_update_date": mapping.iso(since)} if since else {}
        return self._offset_listing(
            client, "orders", "/api/orders", "orders", lambda o: o["order_id"], params, listing="OR11"
        )

    def _payout_lines(self, client: MiraklClient, since: datetime | None) -> pl.DataFrame:
        # Ascending by last update: a line updated while we page moves behind us and is read again, where
        # the default (newest first) would move it ahead of the page we are on and lose it.
        params = {"sort": "lastUpdated,ASC", **({"last_updated_from": mapping.iso(since)} if since else {})}

        def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
            token = cursor["page_token"] if cursor else None
            try:
                page, following = client.seek_page(TL02_PATH, params, token, limited_as="TL02")
            except UserError as refused:
                if token is None:
                    raise
                # A token saved by an interrupted pull may have expired: read the listing again instead.
                log.warning("%s; reading the transaction lines again from the start", refused)
                return _staged("line_id", [], lambda t: t["id"]), {"page_token": None}
            return _staged("line_id", page, lambda t: t["id"]), ({"page_token": following} if following else None)

        lines = _records(self.paginate("payout_lines", fetch, params=params))
        numbers = self._document_numbers(client, lines)
        return _frame("payout_lines", (mapping.transaction_to_payout_line(t, numbers) for t in lines))

    def _document_numbers(self, client: MiraklClient, lines: list[dict[str, Any]]) -> dict[str, str]:
        """IV01, only when some line names its accounting document by id alone."""
        if all(t.get("accounting_document_number") or not t.get("accounting_document_id") for t in lines):
            return {}
        invoices = self._offset_listing(
            client, "_invoices", "/api/invoices", "invoices", lambda i: i["id"], {"type": "ALL"}, staged=False
        )
        return {invoice["id"]: mapping.invoice_number(invoice) for invoice in invoices}

    def _offset_listing(
        self,
        client: MiraklClient,
        entity: str,
        path: str,
        items: str,
        key_of: Callable[[dict[str, Any]], str],
        params: dict[str, Any],
        *,
        listing: str | None = None,
        staged: bool = True,
    ) -> list[dict[str, Any]]:
        """Every record of an offset listing, read again from the start if records shift under it.

        Each page after the first re-reads the previous page's last record: if it is no longer there,
        something was inserted, deleted or re-sorted before our position, and a record may have been
        skipped, so the listing starts over (the staging keeps each record once).
        """
        key = ENTITIES[entity].key[0] if staged else "id"

        def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
            cursor = cursor or {"offset": 0, "anchor": None, "restarts": 0}
            anchor, restarts = cursor["anchor"], cursor["restarts"]
            start = cursor["offset"] - 1 if anchor is not None else cursor["offset"]
            page, total = client.offset_page(path, items, params, start, listing=listing)
            if anchor is not None:
                if (not page or key_of(page[0]) != anchor) and restarts < MAX_RESTARTS:
                    return _staged(key, [], key_of), {"offset": 0, "anchor": None, "restarts": restarts + 1}
                page = page[1:] if page and key_of(page[0]) == anchor else page
            following = cursor["offset"] + len(page)
            done = not page or following >= total
            next_cursor = None if done else {"offset": following, "anchor": key_of(page[-1]), "restarts": restarts}
            return _staged(key, page, key_of), next_cursor

        if not staged:
            return _unstaged(fetch)
        return _records(self.paginate(entity, fetch, params={"path": path, **params}))


def _unstaged(fetch: Callable[[Cursor | None], tuple[pl.DataFrame, Cursor | None]]) -> list[dict[str, Any]]:
    """A small listing (IV01's documents) read whole in memory, each record once."""
    pages, cursor = [], None
    while True:
        page, cursor = fetch(cursor)
        pages.append(page)
        if cursor is None:
            return _records(pl.concat(pages).unique(subset="id", keep="last", maintain_order=True))


def _staged(key: str, records: list[dict[str, Any]], key_of: Callable[[dict[str, Any]], str]) -> pl.DataFrame:
    return pl.DataFrame(
        {key: [key_of(r) for r in records], RAW: [json.dumps(r, default=str) for r in records]},
        schema={key: pl.String, RAW: pl.String},
    )


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    if RAW not in frame.columns:  # nothing was staged
        return []
    return [json.loads(text) for text in frame[RAW]]


def _frame(entity: str, rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Text columns, exactly those Mirakl fills for the entity; the normaliser types them."""
    return pl.DataFrame(list(rows), schema=dict.fromkeys(mapping.COLUMNS[entity], pl.String))


def _offer_frame(entity: str, rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """`_frame` of an offer's rows, whose record is the offer (its shop SKU): a deleted offer names it."""
    frame = _frame(entity, rows)
    return frame.with_columns(frame["sku"].alias(RECORD))


def _order_frame(entity: str, rows: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> pl.DataFrame:
    """`_frame` of rows given with the order they come from, whose Mirakl id is their record (`RECORD`)."""
    schema = {**dict.fromkeys(mapping.COLUMNS[entity], pl.String), RECORD: pl.String}
    return pl.DataFrame([{**row, RECORD: order["order_id"]} for order, row in rows], schema=schema)
