"""Emarsys: contacts (getdata, 1,000 a call), the product catalogue feed, and sales-data lines.

Settings (`[sources.emarsys]`):
- `auth = "wsse"` (default: `username_env`, `secret_env`, API v2) or `"oauth"` (`client_id_env`,
  `client_secret_env`, optional `auth_url`: the token endpoint, API v3);
- `base_url`, `field_ids` (canonical column -> Emarsys field id, for the account's custom fields),
  `listing_field` (the field that marks a contact worth reading, default "3": every contact with an email),
  `page_size` (<= 1,000);
- `catalog_url`: the catalogue file Emarsys imports (it replaces the whole catalogue on each import);
- `sales_data_dir`: the sales-data files as uploaded. Emarsys offers no download of sales data, so the
  integration's archive of uploads is what Emarsys holds: every file counts (Emarsys never de-duplicates
  across file names), and a file whose header Emarsys would refuse is left out, as Emarsys leaves it out;
- `currency`: the account currency the catalogue and sales prices are in, where a line does not say.

Every pull reads everything (`always_whole` says why per entity): an incremental `since` changes nothing.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import polars as pl

from driftwatch.connectors.base import BaseConnector, Cursor, Pulled
from driftwatch.connectors.emarsys import mapping
from driftwatch.connectors.emarsys.client import (
    BASE_URL,
    BATCH,
    TOKEN_URL,
    EmarsysClient,
    OAuthClientCredentials,
    WsseAuth,
)
from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError, UserError

log = logging.getLogger("driftwatch.connectors.emarsys")


class Connector(BaseConnector):
    name = "emarsys"
    entities = ("customers", "products", "inventory", "orders", "order_lines")
    drop_decoders = mapping.DROP_DECODERS
    always_whole: ClassVar[Mapping[str, str]] = {
        # contact/getchanges is an export by whole days, of changes made through forms and the API only
        "customers": "Emarsys' export of changed contacts (contact/getchanges) leaves out data imports' changes",
        **dict.fromkeys(("products", "inventory"), "the catalogue is one file, replaced whole on each import"),
        **dict.fromkeys(("orders", "order_lines"), "sales data is the archive of uploaded files, read whole"),
    }
    settings_keys = frozenset(
        {
            "base_url",
            "auth",
            "username_env",
            "secret_env",
            "client_id_env",
            "client_secret_env",
            "auth_url",
            "field_ids",
            "listing_field",
            "page_size",
            "requests_per_minute",
            "catalog_url",
            "sales_data_dir",
            "currency",
        }
    )

    def __init__(self, settings: dict[str, Any], **kwargs: Any):
        super().__init__(settings, **kwargs)
        self.fields = mapping.field_ids(self.settings)
        unknown = set(self.fields) - set(ENTITIES["customers"].columns)
        if unknown:
            raise UserError(f"sources.{self.source}.field_ids: {', '.join(sorted(unknown))} are not customer columns")
        self._auth, self._api_path, self._secrets = self._credentials()
        self._client: EmarsysClient | None = None
        self._derived: dict[str, pl.DataFrame] = {}

    def _credentials(self) -> tuple[httpx.Auth, str, list[str]]:
        method = self.setting("auth", "wsse")
        if method == "wsse":
            secret = self.credential("secret_env")
            return WsseAuth(self.credential("username_env", secret=False), secret), "/api/v2", [secret]
        if method == "oauth":
            client_secret = self.credential("client_secret_env")
            auth_url = self.setting("auth_url", TOKEN_URL)
            auth = OAuthClientCredentials(auth_url, self.credential("client_id_env", secret=False), client_secret)
            return auth, "/api/v3", [client_secret]
        raise UserError(f"sources.{self.source}.auth: expected 'wsse' or 'oauth', not {method!r}")

    def check(self) -> str:
        client = self._connect()
        try:
            client.contact_ids(str(self.setting("listing_field", "3")), 0, 1)
        finally:
            client.close()
        return f"{self.setting('auth', 'wsse')} credentials accepted (GET {self._api_path}/contact/query)"

    def _connect(self) -> EmarsysClient:
        return EmarsysClient(
            self.setting("base_url", BASE_URL),
            self._auth,
            api_path=self._api_path,
            secrets=self._secrets,
            settings=self.settings,
            http_settings=self.http_settings,
        )

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        self._client = self._connect()
        try:
            return super().pull(entities, since=since)
        finally:
            self._client.close()
            self._derived = {}

    def pull_entity(self, entity: str, *, since: datetime | None) -> pl.DataFrame:
        if entity == "customers":
            return self._pull_contacts()
        if entity not in self._derived:
            if entity in ("products", "inventory"):
                products, inventory = self._pull_catalogue()
                self._derived.update(products=products, inventory=inventory)
            else:
                orders, lines = mapping.sales_to_frames(self._sales_lines(), self.setting("currency", None))
                self._derived.update(orders=orders, order_lines=lines)
        return self._derived[entity]

    def _pull_contacts(self) -> pl.DataFrame:
        """Contact ids page by page from `contact/query`, each page read whole with one getdata call."""
        assert self._client is not None
        client, listing_field = self._client, str(self.setting("listing_field", "3"))
        page_size = min(int(self.setting("page_size", BATCH)), BATCH)
        wanted = list(self.fields.values())

        def fetch(cursor: Cursor | None) -> tuple[pl.DataFrame, Cursor | None]:
            offset = cursor["offset"] if cursor else 0
            ids = client.contact_ids(listing_field, offset, page_size)
            contacts, errors = client.getdata(ids, wanted) if ids else ([], [])
            if errors:
                log.info("emarsys: %d of %d contacts not readable: %s", len(errors), len(ids), errors[:3])
            # A contact deleted between the listing and the read (2008) also left the listing, shifting
            # every later contact one place down: step back by as many, or the next page skips them.
            gone = sum(1 for e in errors if str(e.get("errorCode")) == "2008")
            return mapping.contacts_frame(contacts, self.fields), (
                {"offset": offset + len(ids) - gone} if len(ids) == page_size else None
            )

        return self.paginate("customers", fetch, params={"listing_field": listing_field, "page_size": page_size})

    def _pull_catalogue(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        assert self._client is not None
        text = self._client.get_text(self.setting("catalog_url"))
        catalogue = pl.read_csv(io.StringIO(text), infer_schema=False)
        if "item" not in catalogue.columns:
            raise UserError(f"emarsys: the catalogue at {self.setting('catalog_url')} has no 'item' column")
        return mapping.catalogue_to_frames(catalogue, self.setting("currency", None))

    def _sales_lines(self) -> pl.DataFrame:
        folder = Path(self.setting("sales_data_dir"))
        if not folder.is_dir():
            raise UserError(f"sources.{self.source}.sales_data_dir: {folder} is not a directory")
        accepted = [frame for path in sorted(folder.glob("*.csv")) if (frame := _sales_file(path)) is not None]
        lines = (
            pl.concat(accepted, how="diagonal")
            if accepted
            else pl.DataFrame(schema=dict.fromkeys(mapping.SALES_REQUIRED, pl.String))
        )
        return lines


def _sales_file(path: Path) -> pl.DataFrame | None:
    """One uploaded file, or None when Emarsys would have refused it: its header names are case-sensitive."""
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as error:
        raise DataError(f"emarsys sales data {path}: not a readable CSV ({error})") from None
    missing = [c for c in mapping.SALES_REQUIRED if c not in frame.columns]
    if missing:
        log.warning("emarsys: %s left out, as Emarsys refuses it: no column %s", path.name, ", ".join(missing))
        return None
    return frame
