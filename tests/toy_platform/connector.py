"""Pull the toy shop's stock: `{"stock": {"SKU": quantity, ...}}`, one figure per SKU."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from driftwatch.connectors.base import BaseConnector


def read_shop(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


class Connector(BaseConnector):
    name = "toy"
    entities = ("inventory",)
    settings_keys = frozenset({"path"})

    def pull_entity(self, entity: str, *, since: object) -> pl.DataFrame:
        stock = read_shop(Path(self.setting("path")))["stock"]

        def fetch(cursor: dict | None) -> tuple[list[dict], None]:
            return [{"sku": sku, "location": "*", "available": n} for sku, n in sorted(stock.items())], None

        return self.paginate(entity, fetch)
