"""The DuckDB store: every snapshot ever loaded, plus what later parts keep (findings, journals, alerts).

One table per canonical entity (`snap_<entity>`) holds the rows of every snapshot, tagged with its
snapshot_id; `snapshots` describes each one. Schema changes are forward migrations, applied in version
order on open, each once. The store owns the mechanism and its own tables; the parts above it (engine,
alerts, payouts, repair, ...) declare their tables as `MIGRATIONS` and `driftwatch.application` registers
them, so the store never names a part above it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.normalize import QUARANTINE_SCHEMA, Coerced
from driftwatch.redaction import redact

DEFAULT_PATH = Path("driftwatch.duckdb")
# A load commits the rows it has stored once more than this many wait (see Store.ingest).
COMMIT_ROWS = 1_000_000

_SQL_TYPES = {
    "code": "VARCHAR",
    "text": "VARCHAR",
    "email": "VARCHAR",
    "money": "DECIMAL(18,4)",
    "int": "BIGINT",
    "timestamp": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
}


@dataclass(frozen=True)
class Migration:
    """One forward schema change. Once released it is never edited or removed: a change of mind is a new
    migration. Versions are global, a range per part: 1-99 store, 100-199 engine, 200-299 alerts,
    300-399 payouts, 400-499 repair, 500-599 incidents and latency."""

    version: int
    name: str
    sql: str


_MIGRATIONS: dict[int, Migration] = {}


def register_migrations(migrations: Iterable[Migration]) -> None:
    """Add forward migrations (a part's `MIGRATIONS`); registering the same one twice is harmless, two
    different ones under one version are refused."""
    for migration in migrations:
        existing = _MIGRATIONS.get(migration.version)
        if existing is not None and existing != migration:
            raise ValueError(f"migration {migration.version} is already {existing.name!r}")
        _MIGRATIONS[migration.version] = migration


def migrations() -> list[Migration]:
    """Every registered migration, in the order they apply."""
    return sorted(_MIGRATIONS.values(), key=lambda m: m.version)


# The store's own tables. The snapshot tables are written out, not derived from ENTITIES: a released
# migration never changes, so a column added to an entity needs a migration of its own.
MIGRATIONS = (
    Migration(
        1,
        "snapshots",
        """
    CREATE TABLE snapshots (
      snapshot_id VARCHAR PRIMARY KEY,
      source VARCHAR NOT NULL,
      entity VARCHAR NOT NULL,
      captured_at TIMESTAMPTZ NOT NULL,
      loaded_at TIMESTAMPTZ NOT NULL,
      row_count BIGINT NOT NULL,
      quarantined_rows BIGINT NOT NULL,
      content_hash VARCHAR NOT NULL,
      columns VARCHAR[] NOT NULL,
      origin VARCHAR
    );
    CREATE TABLE quarantine (
      snapshot_id VARCHAR NOT NULL,
      source VARCHAR NOT NULL,
      entity VARCHAR NOT NULL,
      origin VARCHAR,
      line BIGINT,
      "column" VARCHAR,
      value VARCHAR,
      reason VARCHAR NOT NULL
    );
    CREATE TABLE snap_products (snapshot_id VARCHAR NOT NULL, sku VARCHAR, style VARCHAR, colour VARCHAR,
      size VARCHAR, name VARCHAR, price DECIMAL(18,4), currency VARCHAR, status VARCHAR, updated_at TIMESTAMPTZ);
    CREATE TABLE snap_pack_components (snapshot_id VARCHAR NOT NULL, pack_sku VARCHAR, component_sku VARCHAR,
      qty BIGINT);
    CREATE TABLE snap_inventory (snapshot_id VARCHAR NOT NULL, sku VARCHAR, location VARCHAR, on_hand BIGINT,
      allocated BIGINT, on_order BIGINT, safety_stock BIGINT, available BIGINT, updated_at TIMESTAMPTZ);
    CREATE TABLE snap_customers (snapshot_id VARCHAR NOT NULL, customer_id VARCHAR, erp_customer_id VARCHAR,
      email VARCHAR, email_consent BOOLEAN, sms_consent BOOLEAN, consent_updated_at TIMESTAMPTZ,
      first_name VARCHAR, last_name VARCHAR, postcode VARCHAR, country VARCHAR, lifetime_value DECIMAL(18,4),
      order_count BIGINT, last_order_at TIMESTAMPTZ, merged_into VARCHAR, updated_at TIMESTAMPTZ);
    CREATE TABLE snap_orders (snapshot_id VARCHAR NOT NULL, order_id VARCHAR, external_id VARCHAR,
      channel VARCHAR, customer_id VARCHAR, email VARCHAR, status VARCHAR, placed_at TIMESTAMPTZ,
      updated_at TIMESTAMPTZ, total DECIMAL(18,4), currency VARCHAR);
    CREATE TABLE snap_order_lines (snapshot_id VARCHAR NOT NULL, order_id VARCHAR, line_no BIGINT, sku VARCHAR,
      qty_ordered BIGINT, qty_shipped BIGINT, qty_cancelled BIGINT, qty_returned BIGINT,
      unit_price DECIMAL(18,4));
    CREATE TABLE snap_shipments (snapshot_id VARCHAR NOT NULL, shipment_id VARCHAR, order_id VARCHAR,
      carrier VARCHAR, tracking_number VARCHAR, shipped_at TIMESTAMPTZ);
    CREATE TABLE snap_returns (snapshot_id VARCHAR NOT NULL, return_id VARCHAR, order_id VARCHAR, sku VARCHAR,
      qty BIGINT, amount DECIMAL(18,4), status VARCHAR, processed_at TIMESTAMPTZ);
    CREATE TABLE snap_events (snapshot_id VARCHAR NOT NULL, event_id VARCHAR, metric VARCHAR, order_id VARCHAR,
      email VARCHAR, occurred_at TIMESTAMPTZ, value DECIMAL(18,4));
    CREATE TABLE snap_payout_lines (snapshot_id VARCHAR NOT NULL, line_id VARCHAR, payout_id VARCHAR,
      external_id VARCHAR, line_type VARCHAR, amount DECIMAL(18,4), currency VARCHAR,
      transaction_date TIMESTAMPTZ);
    CREATE TABLE snap_journal_entries (snapshot_id VARCHAR NOT NULL, entry_id VARCHAR, order_id VARCHAR,
      payout_id VARCHAR, account VARCHAR, amount DECIMAL(18,4), currency VARCHAR, posted_at TIMESTAMPTZ);
    """,
    ),
    Migration(
        2,
        "staged snapshots",
        # A snapshot whose rows are stored but not yet recorded in `snapshots` (see Store.ingest).
        "CREATE TABLE staged_snapshots (snapshot_id VARCHAR PRIMARY KEY, entity VARCHAR NOT NULL);",
    ),
)
# A layered snapshot (see Store.ingest) is its own rows plus its base's rows whose key it does not hide.
# `snapshot_layers` names each layered snapshot's base; `snap_<entity>_hidden` holds the keys it hides.
_HIDDEN_KEYS = {
    "products": "sku VARCHAR",
    "pack_components": "pack_sku VARCHAR, component_sku VARCHAR",
    "inventory": "sku VARCHAR, location VARCHAR",
    "customers": "customer_id VARCHAR",
    "orders": "order_id VARCHAR",
    "order_lines": "order_id VARCHAR, line_no BIGINT",
    "shipments": "shipment_id VARCHAR",
    "returns": "return_id VARCHAR",
    "events": "event_id VARCHAR",
    "payout_lines": "line_id VARCHAR",
    "journal_entries": "entry_id VARCHAR",
}
MIGRATIONS += (
    Migration(
        3,
        "layered snapshots",
        "CREATE TABLE snapshot_layers (snapshot_id VARCHAR PRIMARY KEY, base_id VARCHAR NOT NULL);\n"
        + "".join(
            f"CREATE TABLE snap_{entity}_hidden (snapshot_id VARCHAR NOT NULL, {keys});\n"
            for entity, keys in _HIDDEN_KEYS.items()
        ),
    ),
)
# Beside a complete snapshot a pull stores (one later pulls are likely layered on), each row's key and a
# 64-bit hash of the row: a layer is then found by reading keys and hashes, not every base row.
MIGRATIONS += (
    Migration(
        4,
        "row hashes of complete snapshots",
        "".join(
            f"CREATE TABLE snap_{entity}_hashes (snapshot_id VARCHAR NOT NULL, {keys}, row_hash UBIGINT NOT NULL);\n"
            for entity, keys in _HIDDEN_KEYS.items()
        ),
    ),
)
register_migrations(MIGRATIONS)

# A layered snapshot is stored only while its own rows stay under this share of its rows; past it, reading
# the layers would cost more than a complete copy saves.
MAX_LAYER_SHARE = 0.5


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot_id: str
    source: str
    entity: str
    captured_at: datetime
    row_count: int
    quarantined_rows: int
    content_hash: str
    columns: tuple[str, ...]
    origin: str | None = None
    base_id: str | None = None  # a layered snapshot's base (see Store.ingest); None: its rows are all its own


_INFO_COLUMNS = (
    "s.snapshot_id, source, entity, captured_at, row_count, quarantined_rows, content_hash, columns, origin, "
    "l.base_id FROM snapshots s LEFT JOIN snapshot_layers l ON l.snapshot_id = s.snapshot_id"
)


@dataclass
class IncomingSnapshot:
    """A validated snapshot on its way into the store."""

    source: str
    entity: str
    captured_at: datetime
    frame: pl.DataFrame
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    origin: str | None = None
    keep: pl.Series | None = None  # per row of `frame`: store it (None: every row)
    # The stored snapshot this one most likely shares most rows with (the previous pull's, for a pull that
    # merged changes into it): stored as a layer on its base when it does. None: stored whole.
    shares_with: SnapshotInfo | None = None
    # Later snapshots are likely layered on this one (a pull that can merge changes): stored whole, it keeps
    # each row's key and hash beside it, so finding a layer on it reads those instead of its rows.
    keeps_hashes: bool = False
    _hashes: pl.Series | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_coerced(
        cls, source: str, entity: str, captured_at: datetime, coerced: Coerced, origin: str | None = None
    ) -> IncomingSnapshot:
        """The rows that passed, without copying them out of the rest."""
        return cls(source, entity, captured_at, coerced.rows, coerced.bad, origin, coerced.keep)

    @property
    def row_count(self) -> int:
        return self.frame.height if self.keep is None else int(self.keep.sum())

    def row_hashes(self) -> pl.Series:
        """A 64-bit hash of every column of each row of `frame` (kept or not), computed once: the content hash,
        a layer and the hashes kept beside a base all use it."""
        if self._hashes is None:
            self._hashes = _row_hash(self.frame)
        return self._hashes

    def content_hash(self) -> str:
        # Order-insensitive: a re-export that lists the same rows in another order is the same snapshot.
        digest = hashlib.sha256()
        digest.update(repr(sorted(self.frame.schema.items())).encode())
        row_hashes = self.row_hashes()
        if self.keep is not None:
            row_hashes = row_hashes.filter(self.keep)
        row_hashes = row_hashes.sort().rechunk()
        for buffer in row_hashes.to_arrow().buffers():
            if buffer is not None:
                digest.update(buffer)
        return digest.hexdigest()


@dataclass(frozen=True)
class IngestResult:
    snapshot: SnapshotInfo
    loaded: bool  # False: the same snapshot was already stored, nothing changed


class Store:
    """A driftwatch DuckDB file. Opening it applies any pending migrations."""

    def __init__(self, path: Path | str = DEFAULT_PATH, *, read_only: bool = False):
        self.path = Path(path)
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise UserError(f"cannot open store {self.path}: {exc}") from None
        self.connection.execute("SET TimeZone = 'UTC'")
        if not read_only:
            self.migrate()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self.query("SELECT max(version) FROM schema_migrations").fetchall()
        return rows[0][0] or 0

    def migrate(self) -> list[int]:
        """Apply pending migrations in version order, each in its own transaction. Returns what ran."""
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)"
        )
        applied = {row[0] for row in self.query("SELECT version FROM schema_migrations").fetchall()}
        unknown = sorted(applied - set(_MIGRATIONS))
        if unknown:
            raise UserError(
                f"store {self.path} was written by a newer driftwatch (schema version {unknown[-1]} is unknown "
                "here); upgrade driftwatch to open it"
            )
        ran = []
        for migration in migrations():
            if migration.version in applied:
                continue
            with self.transaction() as cur:
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    [migration.version, migration.name, datetime.now(UTC)],
                )
            ran.append(migration.version)
        return ran

    # -- plumbing -------------------------------------------------------------------------------------

    def query(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        """Run one statement on its own cursor, so an unfinished result never blocks the next query."""
        return self.connection.cursor().execute(sql, params or [])

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        frame = self.connection.cursor().sql(sql, params=params or None).pl()
        # DuckDB names UTC "Etc/UTC"; polars will not compare that with "UTC", so every frame speaks "UTC".
        return frame.with_columns(
            pl.col(name).dt.convert_time_zone("UTC")
            for name, dtype in frame.schema.items()
            if isinstance(dtype, pl.Datetime) and dtype.time_zone not in (None, "UTC")
        )

    @contextmanager
    def memory_limited(self, limit: str) -> Iterator[None]:
        """DuckDB's memory limit set to `limit` (such as "1GB") for a while, then back to DuckDB's default (a
        store never sets another). DuckDB keeps every block it reads cached up to its limit (80 % of the
        machine by default), so a long run of reads holds what it read long after; past the limit its joins
        and aggregations spill to disk."""
        self.connection.execute(f"SET memory_limit = '{limit}'")
        try:
            yield
        finally:
            self.connection.execute("RESET memory_limit")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self.connection.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # -- snapshots ------------------------------------------------------------------------------------

    def ingest(self, incoming: Iterable[IncomingSnapshot]) -> list[IngestResult]:
        """Store snapshots: all of them, or (on any failure) none.

        Rows are committed as they come, once more than COMMIT_ROWS wait, under snapshot ids no reader knows
        yet (every read of a snapshot goes through `snapshots`); the last transaction records them all. One
        transaction around every row of a drop held them all in memory until its end: 12 GiB for a drop of
        88M rows, where this needs what its largest file needs. A small drop is still one transaction. A
        failure removes the rows committed so far; rows a killed load left are removed by the next ingest
        (`staged_snapshots` names them)."""
        self._remove_staged(self.frame("SELECT snapshot_id, entity FROM staged_snapshots").rows())
        staged: list[tuple[SnapshotInfo, pl.DataFrame]] = []
        results: list[IngestResult] = []
        cur = self.connection.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            waiting = 0
            for snap in incoming:
                results.append(self._stage(cur, snap))
                if results[-1].loaded:
                    staged.append((results[-1].snapshot, snap.quarantine))
                    waiting += results[-1].snapshot.row_count
                del snap  # a large snapshot's rows are not held while the next one is read
                if waiting > COMMIT_ROWS:
                    cur.execute("COMMIT")
                    cur.execute("BEGIN TRANSACTION")
                    waiting = 0
            for info, quarantine in staged:
                self._record(cur, info, quarantine)
            cur.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):  # a transaction a failed statement ended cannot be rolled back
                cur.execute("ROLLBACK")
            self._remove_staged([(info.snapshot_id, info.entity) for info, _ in staged])
            raise
        if staged:
            # Fold the write-ahead log into the file now: otherwise the next process to open the store
            # (the nightly audit) replays it, and a large load makes that replay cost gigabytes of memory.
            self.query("CHECKPOINT")
        return results

    def _stage(self, cur: duckdb.DuckDBPyConnection, snap: IncomingSnapshot) -> IngestResult:
        """A snapshot's rows stored under a new id, not recorded yet; or the same snapshot stored before."""
        content_hash = snap.content_hash()
        existing = cur.execute(
            "SELECT snapshot_id FROM snapshots WHERE source = ? AND entity = ? AND captured_at = ? "
            "AND content_hash = ?",
            [snap.source, snap.entity, snap.captured_at, content_hash],
        ).fetchall()
        if existing:
            return IngestResult(self.snapshot(existing[0][0]), loaded=False)
        info = SnapshotInfo(
            snapshot_id=uuid.uuid4().hex[:16],
            source=snap.source,
            entity=snap.entity,
            captured_at=snap.captured_at,
            row_count=snap.row_count,
            quarantined_rows=snap.quarantine.select("line").n_unique() if snap.quarantine.height else 0,
            content_hash=content_hash,
            columns=tuple(snap.frame.columns),
            origin=snap.origin,
        )
        cols = ", ".join(info.columns)
        keep = pl.repeat(True, snap.frame.height, eager=True) if snap.keep is None else snap.keep
        cur.execute("INSERT INTO staged_snapshots VALUES (?, ?)", [info.snapshot_id, info.entity])
        base = self._layer_base(snap)
        key = ENTITIES[snap.entity].key
        layer = None if base is None else _layer(snap, keep, self._base_hashes(cur, base), key)
        if layer is not None and layer[0].height <= MAX_LAYER_SHARE * info.row_count:
            own, hidden = layer
            self._insert(cur, f"snap_{snap.entity}", info.snapshot_id, own)
            self._insert(cur, f"snap_{snap.entity}_hidden", info.snapshot_id, hidden)
            return IngestResult(replace(info, base_id=base.snapshot_id), loaded=True)
        cur.register("incoming_rows", snap.frame.with_columns(keep.alias("_keep")))  # no copy of the rows
        try:
            cur.execute(
                f"INSERT INTO snap_{snap.entity} (snapshot_id, {cols}) SELECT ?, {cols} FROM incoming_rows WHERE _keep",
                [info.snapshot_id],
            )
        finally:
            cur.unregister("incoming_rows")
        if snap.keeps_hashes and _canonical(snap):
            hashes = snap.frame.select(key).with_columns(snap.row_hashes().alias("row_hash")).filter(keep)
            self._insert(cur, f"snap_{snap.entity}_hashes", info.snapshot_id, hashes)
        return IngestResult(info, loaded=True)

    def _base_hashes(self, cur: duckdb.DuckDBPyConnection, base: SnapshotInfo) -> pl.DataFrame:
        """The base's rows as key columns and `row_hash`: as kept beside it, else hashed from its rows (a
        snapshot stored before hashes were kept, or not by a pull). polars promises the same hashes only within
        one version: after an upgrade the kept hashes match no row, the layer outgrows its share and the
        snapshot is stored whole, correct and one night slower."""
        key = list(ENTITIES[base.entity].key)
        if cur.execute(f"SELECT 1 FROM snap_{base.entity}_hashes WHERE snapshot_id = ? LIMIT 1",
                       [base.snapshot_id]).fetchall():  # fmt: skip
            spec = ENTITIES[base.entity].schema
            kept = self.frame(
                f"SELECT {', '.join(key)}, row_hash FROM snap_{base.entity}_hashes WHERE snapshot_id = ?",
                [base.snapshot_id],
            )
            return kept.cast({**{c: spec[c] for c in key}, "row_hash": pl.UInt64})
        held = self.rows(base)
        return held.select(key).with_columns(_row_hash(held).alias("row_hash"))

    def _layer_base(self, snap: IncomingSnapshot) -> SnapshotInfo | None:
        """The complete snapshot an incoming one can be layered on: the base of the snapshot it shares rows
        with (so a layer never lies on a layer), holding the same columns, as the incoming frame holds them
        in their canonical types (a row compares with the base's as the store would hold it)."""
        shared = snap.shares_with
        if shared is None or (shared.source, shared.entity) != (snap.source, snap.entity):
            return None
        base = shared if shared.base_id is None else self.snapshot(shared.base_id)
        if set(base.columns) != set(snap.frame.columns):
            return None
        return base if _canonical(snap) else None

    @staticmethod
    def _insert(cur: duckdb.DuckDBPyConnection, table: str, snapshot_id: str, frame: pl.DataFrame) -> None:
        cols = ", ".join(frame.columns)
        cur.register("incoming_part", frame)
        try:
            cur.execute(f"INSERT INTO {table} (snapshot_id, {cols}) SELECT ?, {cols} FROM incoming_part", [snapshot_id])
        finally:
            cur.unregister("incoming_part")

    def _record(self, cur: duckdb.DuckDBPyConnection, info: SnapshotInfo, quarantine: pl.DataFrame) -> None:
        """A staged snapshot made visible: its entry in `snapshots`, and its quarantined rows."""
        cur.execute(
            "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                info.snapshot_id,
                info.source,
                info.entity,
                info.captured_at,
                datetime.now(UTC),
                info.row_count,
                info.quarantined_rows,
                info.content_hash,
                list(info.columns),
                info.origin,
            ],
        )
        if info.base_id is not None:
            cur.execute("INSERT INTO snapshot_layers VALUES (?, ?)", [info.snapshot_id, info.base_id])
        cur.execute("DELETE FROM staged_snapshots WHERE snapshot_id = ?", [info.snapshot_id])
        cur.register("incoming_bad", _redacted(quarantine))
        try:
            cur.execute(
                'INSERT INTO quarantine SELECT ?, ?, ?, origin, line, "column", value, reason FROM incoming_bad',
                [info.snapshot_id, info.source, info.entity],
            )
        finally:
            cur.unregister("incoming_bad")

    def _remove_staged(self, staged: list[tuple[str, str]]) -> None:
        """The rows of snapshots staged and never recorded (a failed or killed load)."""
        for snapshot_id, entity in staged:
            with self.transaction() as cur:
                cur.execute(f"DELETE FROM snap_{entity} WHERE snapshot_id = ?", [snapshot_id])
                cur.execute(f"DELETE FROM snap_{entity}_hidden WHERE snapshot_id = ?", [snapshot_id])
                cur.execute(f"DELETE FROM snap_{entity}_hashes WHERE snapshot_id = ?", [snapshot_id])
                cur.execute("DELETE FROM staged_snapshots WHERE snapshot_id = ?", [snapshot_id])

    def snapshot(self, snapshot_id: str) -> SnapshotInfo:
        rows = self.query(f"SELECT {_INFO_COLUMNS} WHERE s.snapshot_id = ?", [snapshot_id]).fetchall()
        if not rows:
            raise UserError(f"no snapshot {snapshot_id!r} in {self.path}")
        return _info(rows[0])

    def _nth_latest(self, source: str, entity: str, n: int) -> SnapshotInfo | None:
        rows = self.query(
            f"SELECT {_INFO_COLUMNS} WHERE source = ? AND entity = ? ORDER BY captured_at DESC, loaded_at DESC "
            "LIMIT 1 OFFSET ?",
            [source, entity, n],
        ).fetchall()
        return _info(rows[0]) if rows else None

    def latest_snapshot(self, source: str, entity: str) -> SnapshotInfo | None:
        return self._nth_latest(source, entity, 0)

    def previous_snapshot(self, source: str, entity: str) -> SnapshotInfo | None:
        """The snapshot before the latest one, for "far smaller than last time" and "since when" questions."""
        return self._nth_latest(source, entity, 1)

    def snapshot_sql(self, info: SnapshotInfo, columns: Iterable[str] | None = None) -> tuple[str, list]:
        """A SELECT of a snapshot's rows (`columns`, default every column it holds) and its parameters: the one
        way to read a snapshot's rows, to be used as a subquery (`SELECT ... FROM (<sql>) WHERE ...`, the
        reader's own parameters after these). Readers never name `snap_<entity>` themselves, so how a
        snapshot's rows are laid out is the store's alone."""
        columns = tuple(info.columns if columns is None else columns)
        own = f"SELECT {', '.join(columns)} FROM snap_{info.entity} WHERE snapshot_id = ?"
        if info.base_id is None:
            return own, [info.snapshot_id]
        # A layer: its own rows, and its base's rows but those whose key it hides (one anti-join).
        hidden = f"snap_{info.entity}_hidden"
        same_key = " AND ".join(f"h.{k} = b.{k}" for k in ENTITIES[info.entity].key)
        base = (
            f"SELECT {', '.join(f'b.{c}' for c in columns)} FROM snap_{info.entity} b "
            f"ANTI JOIN (SELECT * FROM {hidden} WHERE snapshot_id = ?) h ON {same_key} WHERE b.snapshot_id = ?"
        )
        return f"{own} UNION ALL {base}", [info.snapshot_id, info.snapshot_id, info.base_id]

    def rows(self, info: SnapshotInfo, columns: Iterable[str] | None = None) -> pl.DataFrame:
        """A snapshot's rows with canonical dtypes and only the columns that source actually provided (of
        `columns`, when given: a reader that needs a few columns of a wide snapshot reads only those)."""
        spec = ENTITIES[info.entity]
        wanted = info.columns if columns is None else [c for c in info.columns if c in set(columns)]
        frame = self.frame(*self.snapshot_sql(info, wanted))
        return frame.cast({c: spec.schema[c] for c in wanted})

    def latest(self, source: str, entity: str) -> pl.DataFrame | None:
        info = self.latest_snapshot(source, entity)
        return None if info is None else self.rows(info)

    def snapshots(self) -> pl.DataFrame:
        return self.frame(
            "SELECT snapshot_id, source, entity, captured_at, loaded_at, row_count, quarantined_rows, content_hash, "
            "origin FROM snapshots ORDER BY source, entity, captured_at"
        )

    def latest_snapshots(self) -> pl.DataFrame:
        """One row per (source, entity): the latest snapshot, with how many earlier ones exist."""
        return self.frame(
            "SELECT source, entity, arg_max(snapshot_id, captured_at) AS snapshot_id, max(captured_at) AS captured_at, "
            "arg_max(row_count, captured_at) AS row_count, arg_max(quarantined_rows, captured_at) AS quarantined_rows, "
            "count(*) AS snapshots FROM snapshots GROUP BY source, entity ORDER BY source, entity"
        )

    def quarantine(self, snapshot_id: str | None = None) -> pl.DataFrame:
        where, params = ("WHERE snapshot_id = ?", [snapshot_id]) if snapshot_id else ("", [])
        return self.frame(f'SELECT * FROM quarantine {where} ORDER BY origin, line, "column"', params)


def _layer(
    snap: IncomingSnapshot, keep: pl.Series, base: pl.DataFrame, key: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The kept rows of `snap` as a layer on a base (`base`: its rows' keys and `row_hash`): the rows the base
    does not hold as they are, and the keys of the base's rows to hide (replaced or gone). A layer hides by
    key, so it needs each key once on both sides (None otherwise). Rows are matched by a hash of the whole
    row, which costs a fraction of writing every row again."""
    new = pl.DataFrame({"_key": snap.frame.select(key).hash_rows(seed=0), "_row": snap.row_hashes()})
    new = new.with_row_index("_index").filter(keep)
    old = pl.DataFrame({"_key": base.select(key).hash_rows(seed=0), "_row": base["row_hash"]}).with_row_index("_index")
    if new["_key"].n_unique() != new.height or old["_key"].n_unique() != old.height:
        return None
    # Joined on the row hash alone (it covers the key): a changed row is taken for its old self only if its
    # 64-bit hash equals one of the base's, odds of about one in 10^13 per changed row of a 2M-row base.
    own = new.join(old, on="_row", how="anti")["_index"]
    hidden = old.join(new, on="_row", how="anti")["_index"]
    return snap.frame[own], base.select(key)[hidden]


def _row_hash(rows: pl.DataFrame) -> pl.Series:
    """A 64-bit hash of every column of each row, the columns taken in name order (so it does not depend on
    the order a frame holds them in)."""
    return rows.select(sorted(rows.columns)).hash_rows(seed=0)


def _canonical(snap: IncomingSnapshot) -> bool:
    """Whether every column of the incoming frame has its entity's canonical type, as the store reads it back:
    only such rows hash as the store's own rows of the same values do."""
    schema = ENTITIES[snap.entity].schema
    return all(dtype == schema[c] for c, dtype in snap.frame.schema.items())


def _redacted(quarantine: pl.DataFrame) -> pl.DataFrame:
    """Quarantined values are a file's or a platform's own text: stored redacted, as every outside text is."""
    if quarantine.height == 0:
        return quarantine
    changed = {v: clean for v in quarantine["value"].drop_nulls().unique().to_list() if (clean := redact(v)) != v}
    return quarantine.with_columns(pl.col("value").replace(changed)) if changed else quarantine


def _info(row: tuple) -> SnapshotInfo:
    sid, source, entity, captured_at, row_count, quarantined, content_hash, columns, origin, base_id = row
    return SnapshotInfo(
        sid, source, entity, captured_at, row_count, quarantined, content_hash, tuple(columns), origin, base_id
    )
