"""Locked periods: a month's close is kept as it was, and later data shows as variances against it.

Each locked table is stored whole as Parquet, so a close comes back with exactly its columns and types.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import polars as pl

from driftwatch.errors import UserError
from driftwatch.payouts.period import Period
from driftwatch.payouts.result import TABLE_KEYS, VARIANCE_SCHEMA, Reconciliation
from driftwatch.store import Migration, Store

MIGRATIONS = (
    Migration(
        300,
        "payout period closes",
        """
    CREATE TABLE payout_closes (
      period VARCHAR PRIMARY KEY,
      locked_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE payout_close_tables (
      period VARCHAR NOT NULL,
      table_name VARCHAR NOT NULL,
      row_count BIGINT NOT NULL,
      parquet BLOB NOT NULL,
      PRIMARY KEY (period, table_name)
    );
        """,
    ),
    # Each marketplace closes its own periods. Closes kept before that were the one marketplace's: Mirakl's.
    Migration(
        301,
        "payout period closes per marketplace",
        """
    CREATE TABLE payout_closes_by_marketplace (
      marketplace VARCHAR NOT NULL,
      period VARCHAR NOT NULL,
      locked_at TIMESTAMPTZ NOT NULL,
      PRIMARY KEY (marketplace, period)
    );
    INSERT INTO payout_closes_by_marketplace SELECT 'mirakl', period, locked_at FROM payout_closes;
    DROP TABLE payout_closes;
    ALTER TABLE payout_closes_by_marketplace RENAME TO payout_closes;
    CREATE TABLE payout_close_tables_by_marketplace (
      marketplace VARCHAR NOT NULL,
      period VARCHAR NOT NULL,
      table_name VARCHAR NOT NULL,
      row_count BIGINT NOT NULL,
      parquet BLOB NOT NULL,
      PRIMARY KEY (marketplace, period, table_name)
    );
    INSERT INTO payout_close_tables_by_marketplace
      SELECT 'mirakl', period, table_name, row_count, parquet FROM payout_close_tables;
    DROP TABLE payout_close_tables;
    ALTER TABLE payout_close_tables_by_marketplace RENAME TO payout_close_tables;
        """,
    ),
)


def locked_at(store: Store, period: Period, marketplace: str = "mirakl") -> datetime | None:
    rows = store.query(
        "SELECT locked_at FROM payout_closes WHERE marketplace = ? AND period = ?", [marketplace, period.name]
    ).fetchall()
    return rows[0][0] if rows else None


def lock(store: Store, reconciliation: Reconciliation) -> datetime:
    """Keep this reconciliation as its marketplace's close of the period. A period is locked once."""
    period, marketplace = reconciliation.period, reconciliation.marketplace
    already = locked_at(store, period, marketplace)
    if already is not None:
        raise UserError(
            f"{marketplace} period {period} is already locked (since {already:%Y-%m-%d %H:%M} UTC); its close is kept"
        )
    now = datetime.now(UTC)
    with store.transaction() as cur:
        cur.execute("INSERT INTO payout_closes VALUES (?, ?, ?)", [marketplace, period.name, now])
        for name in TABLE_KEYS:
            frame = getattr(reconciliation, name)
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            cur.execute(
                "INSERT INTO payout_close_tables VALUES (?, ?, ?, ?, ?)",
                [marketplace, period.name, name, frame.height, buffer.getvalue()],
            )
    return now


def load_close(store: Store, period: Period, marketplace: str = "mirakl") -> Reconciliation | None:
    when = locked_at(store, period, marketplace)
    if when is None:
        return None
    rows = store.query(
        "SELECT table_name, parquet FROM payout_close_tables WHERE marketplace = ? AND period = ?",
        [marketplace, period.name],
    ).fetchall()
    tables = {name: pl.read_parquet(io.BytesIO(data)) for name, data in rows}
    # A table this version keeps that an older close did not: the close simply had none of it.
    tables |= {name: pl.DataFrame() for name in TABLE_KEYS if name not in tables}
    return Reconciliation(period=period, locked_at=when, marketplace=marketplace, **tables)


def variances(close: Reconciliation, current: Reconciliation) -> pl.DataFrame:
    """Every row that is new, gone or changed in today's reconciliation compared with the locked close."""
    rows = []
    for name, keys in TABLE_KEYS.items():
        rows.extend(_table_variances(name, keys, getattr(close, name), getattr(current, name)))
    return pl.DataFrame(rows, schema=VARIANCE_SCHEMA, orient="row")


def _table_variances(name: str, keys: tuple[str, ...], locked: pl.DataFrame, now: pl.DataFrame) -> list[tuple]:
    before = _by_key(locked, keys)
    after = _by_key(now, keys)
    found = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None:
            found.append((name, key, "new", _describe(new, keys)))
        elif new is None:
            found.append((name, key, "gone", _describe(old, keys)))
        else:
            # Only the columns the close kept: a column added since is not a change in the data.
            changes = [f"{col}: {_text(old[col])} -> {_text(new.get(col))}" for col in old if old[col] != new.get(col)]
            if changes:
                found.append((name, key, "changed", "; ".join(changes)))
    return found


def _by_key(frame: pl.DataFrame, keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {"/".join(_text(row[k]) for k in keys): row for row in frame.iter_rows(named=True)}


def _describe(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "; ".join(f"{col}: {_text(value)}" for col, value in row.items() if col not in keys and value is not None)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
