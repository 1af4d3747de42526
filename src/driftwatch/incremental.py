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
import uuid
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
    # entity -> the stems of its kept files: a base, then a part per pull since (see Memory). An entity not
    # listed (a folder written before parts existed) has its base alone, named after the entity.
    chains: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> str:
        times = {k: _iso(getattr(self, k)) for k in ("started_at", "captured_at", "full_at")}
        return json.dumps(
            {"fingerprint": self.fingerprint, "completed": self.completed, **times, "snapshots": self.snapshots,
             "parser": self.parser, "chains": self.chains},
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
            chains=raw.get("chains", {}),
        )


@dataclass(frozen=True)
class Kept:
    """What one entity's pull leaves for the next: every record and their parsed rows (`removed` None, a
    base), or only what changed since the records kept before (a part): the indices of those records it
    drops (`removed`), and the records it puts after the rest (the changes), parsed."""

    records: pl.DataFrame
    parsed: Parsed
    removed: pl.Series | None = None


# A part costs a pass over the kept rows each time they are read: past this many, a pull keeps a fresh base.
MAX_PARTS = 14
_RECORDS, _ROWS, _PROBLEMS, _REMOVED = "", ".rows", ".problems", ".removed"


class Memory:
    """A source's `last-pull/` folder: the state and the records each entity's last snapshot was built from.

    An entity's records are kept as a base (a pull that kept them whole: its raw records, their parsed rows
    and problems) and a part per incremental pull since (`Kept`): the indices of the previous records it
    dropped, and the changes' records, parsed rows and problems. So a night writes what changed, not every
    record again; reading replays the parts on the base. Each write goes to files of a new stem, and
    `state.json`, written last, names the stems: a write killed halfway leaves the previous state whole.
    A full pull, or any pull that parsed the whole, writes a fresh base and the old files go.

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

    def records(self, entity: str, columns: Iterable[str] | None = None) -> pl.DataFrame | None:
        """The raw records `entity`'s last snapshot was built from, if kept (only `columns` of them, those the
        records hold, when given: a merge needs only the columns that name records)."""
        if not self.has_records(entity):
            return None
        base, *parts = self._chain(entity)
        frame = self._read(base, _RECORDS, columns)
        for part in parts:
            kept = frame.filter(_kept_mask(frame.height, self._read(part, _REMOVED)["row"]))
            frame = pl.concat([kept, self._read(part, _RECORDS, columns)], how="diagonal_relaxed")
        return frame

    def schema(self, entity: str) -> dict[str, pl.DataType]:
        """The kept records' columns and types (a part only ever holds its base's)."""
        return dict(pl.read_parquet_schema(self._path(self._chain(entity)[0])))

    def parts(self, entity: str) -> int:
        return len(self._chain(entity)) - 1

    def parsed(self, entity: str, first_line: int = 1) -> Parsed | None:
        """Those records parsed, row for row, with each row's own problems (lines from `first_line`), if kept by
        a driftwatch that parses as this one does (otherwise the next pull parses them all again)."""
        if self.state is None or self.state.parser != parser_digest() or not self.has_records(entity):
            return None
        chain = self._chain(entity)
        if not all(self._path(stem, part).exists() for stem in chain for part in (_ROWS, _PROBLEMS)):
            return None
        base, *parts = chain
        parsed = Parsed(self._read(base, _ROWS), self._read(base, _PROBLEMS))
        for part in parts:
            kept = _without(parsed, self._read(part, _REMOVED)["row"], first_line)
            parsed = kept.concat(Parsed(self._read(part, _ROWS), self._read(part, _PROBLEMS)))
        return parsed

    def has_records(self, entity: str) -> bool:
        if self.folder is None:
            return False
        base, *parts = self._chain(entity)
        return self._path(base).exists() and all(self._path(p, e).exists() for p in parts for e in ("", _REMOVED))

    def _chain(self, entity: str) -> list[str]:
        chains = self.state.chains if self.state is not None else {}
        return chains.get(entity, [entity])

    def _path(self, stem: str, part: str = "") -> Path:
        assert self.folder is not None
        return self.folder / f"{stem}{part}.parquet"

    def _read(self, stem: str, part: str, columns: Iterable[str] | None = None) -> pl.DataFrame:
        path = self._path(stem, part)
        if columns is not None:
            held = pl.read_parquet_schema(path)
            columns = [c for c in dict.fromkeys(columns) if c in held]
        return pl.read_parquet(path, columns=columns)

    def finish(
        self,
        *,
        fingerprint: str,
        captured_at: datetime,
        full: bool,
        kept: Mapping[str, Kept],
        snapshots: Mapping[str, SnapshotInfo],
    ) -> None:
        """Keep each entity's records (`kept`: whole, or the part since the last pull's) and mark the pull
        complete. State last: until it is written the files it names are the previous pull's."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = self.state or LastPull()
        chains = {} if full else {e: self._chain(e) for e in previous.snapshots}
        for entity, written in kept.items():
            stem = f"{entity}.{uuid.uuid4().hex[:12]}"
            files = [(_RECORDS, written.records), (_ROWS, written.parsed.rows), (_PROBLEMS, written.parsed.problems)]
            if written.removed is not None:
                files.append((_REMOVED, pl.DataFrame({"row": written.removed})))
            for part, frame in files:
                with atomic_path(self._path(stem, part)) as tmp:
                    frame.write_parquet(tmp, compression="lz4")
            chains[entity] = [stem] if written.removed is None else [*self._chain(entity), stem]
        ids = {e: {"snapshot_id": s.snapshot_id, "content_hash": s.content_hash} for e, s in snapshots.items()}
        self.state = LastPull(
            fingerprint=fingerprint,
            completed=True,
            started_at=captured_at,
            captured_at=captured_at,
            full_at=captured_at if full else previous.full_at,
            snapshots={**(previous.snapshots if not full else {}), **ids},
            parser=parser_digest(),
            chains=chains,
        )
        write_text(self.folder / STATE, self.state.to_json())
        self._drop_unlisted()

    def _drop_unlisted(self) -> None:
        """Remove the files the state no longer names: replaced bases and parts, and a killed write's."""
        assert self.folder is not None and self.state is not None
        stems = {stem for e in {*self.state.snapshots, *self.state.chains} for stem in self._chain(e)}
        listed = {self._path(stem, part).name for stem in stems for part in (_RECORDS, _ROWS, _PROBLEMS, _REMOVED)}
        for path in self.folder.glob("*.parquet"):
            if path.name not in listed:
                path.unlink(missing_ok=True)

    def forget(self) -> None:
        if self.folder is not None and self.folder.exists():
            shutil.rmtree(self.folder)
        self.state = None


def _kept_mask(height: int, removed: pl.Series) -> pl.Series:
    """Per row of `height`: whether it is not among `removed` (indices)."""
    return ~pl.int_range(height, eager=True, dtype=pl.UInt32).is_in(removed.cast(pl.UInt32).implode())


def _without(parsed: Parsed, removed: pl.Series, first_line: int) -> Parsed:
    """`parsed` but the rows at `removed` (indices), its problems' lines renumbered from `first_line`: what
    `Parsed.take` of the other rows gives, by a filter, which at 2M rows costs a tenth of a gather."""
    removed = removed.cast(pl.Int64).sort()
    problems = parsed.problems.filter(~(pl.col("line") - first_line).is_in(removed.implode()))
    moved_up = removed.search_sorted(problems["line"] - first_line)  # the rows removed before each kept one
    problems = problems.with_columns((pl.col("line") - moved_up).cast(pl.Int64))
    return Parsed(parsed.rows.filter(_kept_mask(parsed.rows.height, removed)), problems)


def _removed(height: int, rows: pl.Series) -> pl.Series:
    """The indices of `height` rows that are not in `rows` (the complement `_kept_rows` turns back)."""
    every = pl.int_range(height, eager=True, dtype=pl.UInt32)
    return every.filter(~every.is_in(rows.cast(pl.UInt32).implode())).alias("row")


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
    schema: Mapping[str, pl.DataType] | None = None,
    records: Callable[[], pl.DataFrame] | None = None,
    whole: bool = False,
) -> tuple[Parsed, Kept]:
    """`merge` parsed (`parse`, numbering lines from `first_line`): the kept records' parsed rows still held,
    then the changes parsed. Every row's problems are its own, so this is what parsing the merged whole
    gives. Also what to keep for the next pull: the part (rows dropped, changes added), or the merged whole
    when it was parsed whole or `whole` asks for a fresh base.

    `kept` needs only the columns naming records (`RECORD`, the key) and the `carried` ones; `schema` is the
    kept records' own and `records()` reads them whole (default: `kept` is whole), needed only when the
    whole is parsed or kept. Without parsed rows that match the kept records (kept by an older driftwatch),
    or when the changes come with other columns than the kept records, the whole is parsed."""
    rows, changes = unchanged(kept, changes, key, gone, carried)
    schema = dict(kept.schema) if schema is None else dict(schema)

    def complete() -> pl.DataFrame:
        return pl.concat([(kept if records is None else records())[rows], changes], how="diagonal_relaxed")

    if parsed is None or parsed.rows.height != kept.height or dict(changes.schema) != schema:
        merged = complete()
        reparsed = parse(merged)
        return reparsed, Kept(merged, reparsed)
    changed, removed = parse(changes), _removed(kept.height, rows)
    merged_parsed = _without(parsed, removed, first_line).concat(changed)
    if whole:
        return merged_parsed, Kept(complete(), merged_parsed)
    return merged_parsed, Kept(changes, changed, removed)


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
