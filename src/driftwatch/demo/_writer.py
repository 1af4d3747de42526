"""Writes canonical frames as a file-drop snapshot: DIR/<source>/<entity>.<csv|parquet>, chunk by chunk.

Frames carry money as integer cents; the writer turns it into exact decimals. Two BlueCherry report
exports keep BlueCherry's own headers and MM/DD/YYYY dates, as the real exports do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import polars as pl
import pyarrow.parquet as pq

from driftwatch.entities import ENTITIES, MONEY

FILE_FORMATS = ("csv", "parquet")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
BLUECHERRY_DATE_FORMAT = "%m/%d/%Y"
BLUECHERRY_HEADERS = {
    "products": {
        "style": "Style",
        "colour": "Color #",
        "size": "Size",
        "name": "Style Name",
        "price": "Retail Price",
        "currency": "Currency",
        "status": "Status",
        "updated_at": "Last Modified",
    },
    "inventory": {
        "style": "Style",
        "colour": "Color #",
        "size": "Size",
        "location": "Location",
        "on_hand": "Total QOH",
        "allocated": "Total Open",
        "on_order": "Total Ship To WIP",
        "safety_stock": "Safety Stock",
        "available": "Avail QOH",
        "updated_at": "Last Modified",
    },
}


def money_text(cents: pl.Expr) -> pl.Expr:
    """Integer cents as an exact decimal string: -1234 -> "-12.34"."""
    magnitude = cents.abs()
    return pl.concat_str(
        pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (magnitude // 100).cast(pl.String),
        pl.lit("."),
        (magnitude % 100).cast(pl.String).str.zfill(2),
    )


def _report_headers(source: str, entity: str) -> dict[str, str] | None:
    return BLUECHERRY_HEADERS.get(entity) if source == "bluecherry" else None


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


class SnapshotWriter:
    """Appends chunks to one file per (source, entity); the first chunk fixes the columns."""

    def __init__(self, out_dir: Path, file_format: str) -> None:
        self.out_dir = out_dir
        self.file_format = file_format
        self.row_counts: dict[tuple[str, str], int] = {}
        self._columns: dict[tuple[str, str], list[str]] = {}
        self._csv: dict[tuple[str, str], IO[bytes]] = {}
        self._parquet: dict[tuple[str, str], pq.ParquetWriter] = {}

    def write(self, frames: dict[tuple[str, str], pl.DataFrame]) -> None:
        for (source, entity), frame in frames.items():
            self._write_one(source, entity, frame)

    def _write_one(self, source: str, entity: str, frame: pl.DataFrame) -> None:
        key = (source, entity)
        headers = _report_headers(source, entity)
        wanted = list(headers) if headers else [c for c in frame.columns if c in ENTITIES[entity].columns]
        table = self._present(frame.select(self._columns.setdefault(key, wanted)), entity, headers)
        self.row_counts[key] = self.row_counts.get(key, 0) + len(table)
        path = self.out_dir / source / f"{entity}.{self.file_format}"
        if self.file_format == "csv":
            first = key not in self._csv
            if first:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._csv[key] = path.open("wb")
            table.write_csv(self._csv[key], include_header=first, datetime_format=TIMESTAMP_FORMAT)
        else:
            arrow = table.to_arrow()
            if key not in self._parquet:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._parquet[key] = pq.ParquetWriter(path, arrow.schema)
            self._parquet[key].write_table(arrow.cast(self._parquet[key].schema))

    def _present(self, frame: pl.DataFrame, entity: str, headers: dict[str, str] | None) -> pl.DataFrame:
        kinds = ENTITIES[entity].columns
        money = [c for c in frame.columns if kinds.get(c) == "money"]
        as_text = self.file_format == "csv"
        frame = frame.with_columns(
            (money_text(pl.col(c)) if as_text else money_text(pl.col(c)).cast(MONEY)).alias(c) for c in money
        )
        if headers is None:
            return frame
        return frame.with_columns(pl.col("updated_at").dt.strftime(BLUECHERRY_DATE_FORMAT)).select(
            pl.col(column).alias(header) for column, header in headers.items()
        )

    def close(self) -> None:
        for handle in self._csv.values():
            handle.close()
        for writer in self._parquet.values():
            writer.close()
