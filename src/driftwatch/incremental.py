"""Incremental pulls: each night's complete snapshot built from the records changed since the last pull.

A source's last complete pull leaves in its working folder (`<pulls>/<source>/last-pull/`) the records it
stored, as the connector gave them (before normalising), the same records parsed with each one's own
problems (`driftwatch.normalize.Parsed`), and a small state: when that pull started, when
the last full pull started, a fingerprint of the settings and mapping it ran with, and the snapshot each
entity became. The next pull asks the platform only for the records changed since that start (less an
`overlap` for the platform's clock and its eventual consistency), replaces the kept records those changes
come from (`merge`) and stores the whole as a new snapshot, normalised exactly as a full pull is: only the
changes are parsed, the kept records' parsed rows are reused, and keys held twice are checked over the whole. A record
changed while a pull runs carries a time after that pull's start, so the next pull reads it again.

A platform's changes never show a record deleted without trace, so a full pull runs on a schedule
(`full_every`, default weekly) and whenever the kept records cannot be trusted: none kept yet, settings or
mapping changed, the previous pull did not complete, the clock went back, or the store's latest snapshot is
not the one the kept records became (a file drop or another store since). `PullPlan.reason` says which.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from driftwatch.connectors.base import RECORD
from driftwatch.errors import UserError
from driftwatch.files import atomic_path, write_text
from driftwatch.normalize import Parsed

if TYPE_CHECKING:
    from driftwatch.store import SnapshotInfo

FULL_EVERY = timedelta(days=7)
OVERLAP = timedelta(minutes=10)
FOLDER = "last-pull"  # not an entity name: staged pages live beside it, one folder per entity
STATE = "state.json"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any, setting: str) -> timedelta:
    """`"7d"`, `"12h"`, `"10m"`, `"30s"` or `"2w"` (a bare number is days); a UserError naming the setting."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(days=value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise UserError(f'{setting}: expected a duration such as "7d", "12h" or "10m", not {value!r}')
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


@dataclass(frozen=True)
class PullPlan:
    """What one source's pull asks the platform for: everything (since None), or the changes since a time."""

    since: datetime | None
    reason: str

    @property
    def kind(self) -> str:
        return "full" if self.since is None else "incremental"


@dataclass
class LastPull:
    """The state a source's pulls leave for the next one (see the module docstring)."""

    fingerprint: str = ""
    completed: bool = False
    started_at: datetime | None = None  # the latest pull, complete or not
    captured_at: datetime | None = None  # the last complete pull
    full_at: datetime | None = None  # the last complete full pull
    snapshots: dict[str, dict[str, str]] = field(default_factory=dict)  # entity -> snapshot_id, content_hash
    parser: str = ""  # `parser_digest()` of the driftwatch that parsed the kept records

    def to_json(self) -> str:
        times = {k: _iso(getattr(self, k)) for k in ("started_at", "captured_at", "full_at")}
        return json.dumps(
            {"fingerprint": self.fingerprint, "completed": self.completed, **times, "snapshots": self.snapshots,
             "parser": self.parser},
            indent=2,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> LastPull:
        raw = json.loads(text)
        times = {k: _parse(raw.get(k)) for k in ("started_at", "captured_at", "full_at")}
        return cls(
            raw.get("fingerprint", ""),
            bool(raw.get("completed")),
            **times,
            snapshots=raw.get("snapshots", {}),
            parser=raw.get("parser", ""),
        )


class Memory:
    """A source's `last-pull/` folder: the state and the records each entity's last snapshot was built from.

    Without a working folder (`root` None) nothing is kept and every pull is full."""

    def __init__(self, root: Path | None, source: str):
        self.folder = None if root is None else Path(root) / source / FOLDER
        self.state = self._load()

    def _load(self) -> LastPull | None:
        if self.folder is None or not (self.folder / STATE).exists():
            return None
        try:
            return LastPull.from_json((self.folder / STATE).read_text())
        except (ValueError, TypeError, KeyError):
            return None  # unreadable: as good as none, the next pull is full

    def begin(self, fingerprint: str, now: datetime) -> None:
        """Mark a pull under way: until `finish`, the next pull knows this one did not complete."""
        if self.folder is None:
            return
        state = self.state or LastPull()
        state.fingerprint, state.completed, state.started_at = fingerprint, False, now
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(self.folder / STATE, state.to_json())
        self.state = state

    def records(self, entity: str) -> pl.DataFrame | None:
        """The raw records `entity`'s last snapshot was built from, if kept."""
        return pl.read_parquet(self._path(entity)) if self.has_records(entity) else None

    def parsed(self, entity: str) -> Parsed | None:
        """Those records parsed, row for row, with each row's own problems, if kept by a driftwatch that parses
        as this one does (otherwise the next pull parses them all again)."""
        rows, problems = self._path(entity, ".rows"), self._path(entity, ".problems")
        if self.state is None or self.state.parser != parser_digest():
            return None
        if not (self.has_records(entity) and rows.exists() and problems.exists()):
            return None
        return Parsed(pl.read_parquet(rows), pl.read_parquet(problems))

    def has_records(self, entity: str) -> bool:
        return self.folder is not None and self._path(entity).exists()

    def _path(self, entity: str, part: str = "") -> Path:
        assert self.folder is not None
        return self.folder / f"{entity}{part}.parquet"

    def finish(
        self,
        *,
        fingerprint: str,
        captured_at: datetime,
        full: bool,
        records: Mapping[str, pl.DataFrame],
        parsed: Mapping[str, Parsed],
        snapshots: Mapping[str, SnapshotInfo],
    ) -> None:
        """Keep `records` (entity -> the complete raw frame stored) and what they `parsed` to, and mark the pull
        complete."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for entity, frame in records.items():
            # Parsed rows first: records without them are parsed again, parsed rows without records are unused.
            for part, kept in ((".rows", parsed[entity].rows), (".problems", parsed[entity].problems)):
                with atomic_path(self._path(entity, part)) as tmp:
                    kept.write_parquet(tmp, compression="lz4")
            with atomic_path(self._path(entity)) as tmp:
                frame.write_parquet(tmp, compression="lz4")
        previous = self.state or LastPull()
        kept = {e: {"snapshot_id": s.snapshot_id, "content_hash": s.content_hash} for e, s in snapshots.items()}
        self.state = LastPull(
            fingerprint=fingerprint,
            completed=True,
            started_at=captured_at,
            captured_at=captured_at,
            full_at=captured_at if full else previous.full_at,
            snapshots={**(previous.snapshots if not full else {}), **kept},
            parser=parser_digest(),
        )
        write_text(self.folder / STATE, self.state.to_json())

    def forget(self) -> None:
        if self.folder is not None and self.folder.exists():
            shutil.rmtree(self.folder)
        self.state = None


def plan_pull(
    memory: Memory,
    *,
    fingerprint: str,
    now: datetime,
    full_every: timedelta,
    overlap: timedelta,
    merged: Iterable[str],
    latest: Mapping[str, SnapshotInfo | None],
    forced: bool = False,
) -> PullPlan:
    """Full or incremental, and why. `merged`: the entities whose changes would be merged into kept records;
    `latest`: the store's latest snapshot of each of them."""
    last = memory.state
    if forced:
        return PullPlan(None, "full pull asked for (--full)")
    if memory.folder is None:
        return PullPlan(None, "no working folder to keep the last pull's records in")
    merged = list(merged)
    if not merged:
        return PullPlan(None, "the platform offers no changes-only listing for these entities")
    if last is None or last.captured_at is None:
        return PullPlan(None, "first pull: no earlier pull to build on")
    if not last.completed:
        return PullPlan(None, f"the previous pull (started {_when(last.started_at)}) did not complete")
    if last.fingerprint != fingerprint:
        return PullPlan(None, "the source's settings or the connector's mapping changed since the last pull")
    if now < last.captured_at:
        return PullPlan(None, f"the clock is behind the last pull ({_when(last.captured_at)})")
    if last.full_at is None or now - last.full_at >= full_every:
        return PullPlan(None, f"scheduled: full_every {_span(full_every)}, last full pull {_when(last.full_at)}")
    for entity in merged:
        kept, stored = last.snapshots.get(entity), latest.get(entity)
        if kept is None or not memory.has_records(entity):
            return PullPlan(None, f"no records kept for {entity} yet")
        if stored is None:
            return PullPlan(None, f"the store holds no {entity} snapshot of this source")
        if (stored.snapshot_id, stored.content_hash) != (kept["snapshot_id"], kept["content_hash"]):
            return PullPlan(None, f"the store's latest {entity} snapshot is not the one the last pull wrote")
    since = last.captured_at - overlap
    return PullPlan(since, f"changes since {_when(since)} (last pull {_when(last.captured_at)}, less {_span(overlap)})")


def merge(
    kept: pl.DataFrame,
    changes: pl.DataFrame,
    key: tuple[str, ...],
    gone: Iterable[str] = (),
    carried: Iterable[str] = (),
) -> pl.DataFrame:
    """The kept records with every record that changed replaced by its changes and every record gone removed
    (`unchanged`, then the changes after them)."""
    rows, changes = unchanged(kept, changes, key, gone, carried)
    return pl.concat([kept[rows], changes], how="diagonal_relaxed")


def merge_parsed(
    kept: pl.DataFrame,
    parsed: Parsed | None,
    changes: pl.DataFrame,
    key: tuple[str, ...],
    gone: Iterable[str] = (),
    carried: Iterable[str] = (),
    *,
    parse: Callable[[pl.DataFrame], Parsed],
    first_line: int,
) -> tuple[pl.DataFrame, Parsed]:
    """`merge`, and the merged records parsed (`parse`, numbering lines from `first_line`): the kept records'
    parsed rows still held, then the changes parsed. Every row's problems are its own, so this is what
    parsing the merged whole gives. Without parsed rows that match the kept records (kept by an older
    driftwatch), or when the changes come with other columns than the kept records, the whole is parsed."""
    rows, changes = unchanged(kept, changes, key, gone, carried)
    complete = pl.concat([kept[rows], changes], how="diagonal_relaxed")
    if parsed is None or parsed.rows.height != kept.height or dict(changes.schema) != dict(kept.schema):
        return complete, parse(complete)
    return complete, parsed.take(rows, first_line).concat(parse(changes))


def unchanged(
    kept: pl.DataFrame,
    changes: pl.DataFrame,
    key: tuple[str, ...],
    gone: Iterable[str] = (),
    carried: Iterable[str] = (),
) -> tuple[pl.Series, pl.DataFrame]:
    """The rows of `kept` no change touches (their indices, ascending), and the changes to put after them.

    Records are named by `RECORD` when the frames carry it (an order replaces all its lines, so a line
    removed from an order goes too), else by the entity key; `gone` names records the platform deleted.
    `carried` are columns the changes do not hold (Mirakl's offer export has no product title): a changed
    record already kept keeps its value, a new one has the changes' own.
    """
    by = [RECORD] if RECORD in changes.columns or RECORD in kept.columns else list(key)
    if len(by) != 1 and gone:
        raise ValueError("records gone can only be named by a one-column key or by RECORD")
    changes = _carry(kept, changes, by, [c for c in carried if c in kept.columns])
    named = changes.select(by).cast(pl.String)
    if gone:
        named = pl.concat([named, pl.DataFrame({by[0]: list(gone)}, schema={by[0]: pl.String})])
    rows = kept.select(list(dict.fromkeys([*by, *(key if by != list(key) else ())]))).with_row_index(_ROW)
    if kept.height:
        rows = rows.join(named.unique(), on=by, how="anti", nulls_equal=False)
    if by != list(key) and changes.height and rows.height:
        # A changed record may now give a key a kept record's row still holds: the changes win, as a later
        # page wins in a full pull.
        rows = rows.join(changes.select(key).unique(), on=list(key), how="anti", nulls_equal=False)
    return rows[_ROW].sort(), changes


_ROW = "\x00row"


def _carry(kept: pl.DataFrame, changes: pl.DataFrame, by: list[str], carried: list[str]) -> pl.DataFrame:
    if not carried or not changes.height:
        return changes
    held = kept.select(*by, *(pl.col(c).alias(f"{c}\x00kept") for c in carried)).unique(subset=by, keep="last")
    joined = changes.join(held.with_columns(pl.lit(True).alias("\x00held")), on=by, how="left", nulls_equal=False)
    own = {c: pl.col(c) if c in changes.columns else pl.lit(None, kept.schema[c]) for c in carried}
    return joined.with_columns(
        pl.when(pl.col("\x00held")).then(pl.col(f"{c}\x00kept")).otherwise(own[c]).alias(c) for c in carried
    ).select(*changes.columns, *(c for c in carried if c not in changes.columns))


def fingerprint(settings: Mapping[str, Any], connector_class: type) -> str:
    """What decides the records a pull gives: the source's settings, driftwatch's version and the code of
    the connector's package (its mapping above all). A change to any of them makes the next pull full."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(_version().encode())
    module = sys.modules.get(connector_class.__module__)
    path = Path(getattr(module, "__file__", "") or "")
    for source in sorted(path.parent.glob("*.py")) if path.name else ():
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


@cache
def parser_digest() -> str:
    """What decides how a record is parsed and checked: the normaliser's and the entities' code and the
    libraries they run on. Kept parsed rows from another are not reused (the records are parsed again)."""
    digest = hashlib.sha256(f"{_version()} {pl.__version__} {_version('pandera')}".encode())
    for name in ("driftwatch.normalize", "driftwatch.entities", "driftwatch.money"):
        digest.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


def _version(package: str = "driftwatch") -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text).astimezone(UTC)


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
