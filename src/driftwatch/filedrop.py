"""File drops: `DIR/<source>/<entity>.csv|.parquet|.jsonl` plus an optional `_manifest.json`.

`<source>` is a configured source (`mirakl_fr`, read as its kind's platform) or a platform's own name.

This is how BlueCherry data usually arrives (scheduled report exports), and how any source can be audited
without credentials. Report headers are mapped to canonical columns by a column map (BlueCherry's export
headers are shipped as defaults; a client's config adds its own). A file that cannot be read at all stops
the load with a one-line error and stores nothing; a bad row is quarantined with its reason.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from driftwatch.config import Config, unknown_source
from driftwatch.connectors.bluecherry.mapping import BLUECHERRY_COLUMN_MAP, BLUECHERRY_IGNORED, BLUECHERRY_SKU_TEMPLATE
from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError, UserError
from driftwatch.normalize import coerce
from driftwatch.store import IncomingSnapshot, IngestResult, Store

FORMATS = (".csv", ".parquet", ".jsonl")
MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class FileResult:
    path: Path
    source: str
    entity: str
    rows: int
    quarantined: int
    loaded: bool
    snapshot_id: str


@dataclass(frozen=True)
class LoadReport:
    directory: Path
    files: list[FileResult]
    quarantine: pl.DataFrame

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files)


def load_directory(store: Store, directory: Path | str, cfg: Config) -> LoadReport:
    """Read every file of a snapshot directory and store it in one transaction."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory (expected DIR/<source>/<entity>.csv)")
    prepared = [snap for source_dir in _source_dirs(directory, cfg) for snap in _read_source(source_dir, cfg)]
    if not prepared:
        raise UserError(f"{directory}: no snapshot files found (expected DIR/<source>/<entity>.csv|.parquet|.jsonl)")
    results = store.ingest(snap for snap, _ in prepared)
    files = [_file_result(path, snap, result) for (snap, path), result in zip(prepared, results, strict=True)]
    quarantine = pl.concat([snap.quarantine for snap, _ in prepared])
    return LoadReport(directory, files, quarantine)


def _file_result(path: Path, snap: IncomingSnapshot, result: IngestResult) -> FileResult:
    return FileResult(
        path,
        snap.source,
        snap.entity,
        snap.row_count,
        result.snapshot.quarantined_rows,
        result.loaded,
        result.snapshot.snapshot_id,
    )


def _source_dirs(directory: Path, cfg: Config) -> list[Path]:
    dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    for d in dirs:
        if d.name not in cfg.known_sources():
            raise DataError(f"{d}: {unknown_source(d.name, cfg, 'source folder')}")
    return dirs


def _read_source(source_dir: Path, cfg: Config) -> list[tuple[IncomingSnapshot, Path]]:
    source = source_dir.name
    files = sorted(p for p in source_dir.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    captured_at = captured_at_of(source_dir, files)
    settings = cfg.source(source)
    snaps = []
    kind = cfg.kind(source)
    for path in files:
        entity_name, frame = read_entity_file(path, source, settings, kind=kind)
        first_line = first_record_line(path)
        coerced = coerce(
            frame,
            entity_name,
            origin=str(path),
            first_line=first_line,
            naive_timezone=settings.get("timezone", "UTC"),
        )
        snaps.append((IncomingSnapshot.from_coerced(source, entity_name, captured_at, coerced, str(path)), path))
    return snaps


def read_entity_file(path: Path, source: str, settings: dict, *, kind: str | None = None) -> tuple[str, pl.DataFrame]:
    """One export file of a source (whose platform is `kind`, by default its name) as (entity, frame with
    canonical column names, values still as given)."""
    entity_name = _entity_of(path)
    return entity_name, _map_columns(_read_file(path), source, kind or source, entity_name, settings, path)


def _entity_of(path: Path) -> str:
    if path.suffix not in FORMATS:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    if path.stem not in ENTITIES:
        raise DataError(f"{path}: unknown entity {path.stem!r}; expected one of {', '.join(ENTITIES)}")
    return path.stem


def first_record_line(path: Path) -> int:
    """The line number of a file's first record: 1 in JSONL and Parquet; in a CSV the line after its header,
    which comes after any report title lines."""
    return report_title_lines(path) + 2 if path.suffix == ".csv" else 1


def report_title_lines(path: Path) -> int:
    """Lines above a CSV's header row that only title the report (its name, a run date, a blank line): a
    report exported to CSV often starts with them. Each has one filled cell at most, and a row with several
    filled cells (the header) follows; a file whose every row has one cell has no title."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = list(itertools.islice(csv.reader(handle), 20))
    for number, row in enumerate(rows):
        if sum(1 for cell in row if cell.strip()) > 1:
            return number
    return 0


def captured_at_of(source_dir: Path, files: list[Path]) -> datetime:
    """When a drop's data was true: its manifest's captured_at, else its newest file's time."""
    manifest = source_dir / MANIFEST
    if not manifest.exists():
        # Without a manifest, the export's own time is the best evidence of when the data was true.
        newest = max((p.stat().st_mtime for p in files), default=0)
        return datetime.fromtimestamp(newest, UTC).replace(microsecond=0)
    try:
        value = json.loads(manifest.read_text(encoding="utf-8"))["captured_at"]
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f'{manifest}: expected {{"captured_at": "ISO-8601 timestamp"}} ({exc})') from None
    if parsed.tzinfo is None:
        raise DataError(f"{manifest}: captured_at {value!r} has no timezone; add Z or +00:00")
    return parsed.astimezone(UTC)


def _read_file(path: Path) -> pl.DataFrame:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file; expected a header row and data")
    if path.suffix == ".parquet":
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars raises several unrelated types for a corrupt file
            raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    _check_text(path)
    try:
        if path.suffix == ".csv":
            frame = pl.read_csv(
                path,
                infer_schema=False,
                encoding="utf8",
                truncate_ragged_lines=False,
                skip_rows=report_title_lines(path),
            )
        else:
            frame = pl.read_ndjson(path, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse as {path.suffix[1:].upper()}: {first}") from None
    if frame.width == 0 or (frame.height == 0 and path.suffix == ".jsonl"):
        raise DataError(f"{path}: no columns found; expected a header row")
    return frame


def _check_text(path: Path) -> None:
    with path.open("rb") as fh:
        sample = fh.read(64 * 1024)
    if b"\x00" in sample:
        raise DataError(f"{path}: binary content; expected UTF-8 {path.suffix[1:].upper()} text")
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not merely a multi-byte character cut by the sample's end
            raise DataError(
                f"{path}: not UTF-8 (byte 0x{sample[exc.start]:02x} at offset {exc.start}); re-export as UTF-8"
            ) from None


def _normal(header: str) -> str:
    return re.sub(r"\s+", " ", header.strip().lstrip("\ufeff")).casefold()


def _map_columns(
    frame: pl.DataFrame, source: str, kind: str, entity_name: str, settings: dict, path: Path
) -> pl.DataFrame:
    columns = ENTITIES[entity_name].columns
    bluecherry = kind == "bluecherry"  # its report headers are known; other platforms' drops use canonical names
    mapping = {
        **(BLUECHERRY_COLUMN_MAP.get(entity_name, {}) if bluecherry else {}),
        **settings.get("column_map", {}).get(entity_name, {}),
    }
    by_header = {_normal(h): c for h, c in mapping.items()} | {_normal(c): c for c in columns}
    ignored = {
        _normal(h)
        for h in (
            *(BLUECHERRY_IGNORED if bluecherry else ()),
            *settings.get("ignore_columns", ()),
        )
    }
    template = settings.get("sku_template", BLUECHERRY_SKU_TEMPLATE if bluecherry else None)
    if "sku" in columns and template and not any(by_header.get(_normal(h)) == "sku" for h in frame.columns):
        frame = _compose_sku(frame, template)
        ignored |= {_normal(h) for h in re.findall(r"\{([^}]+)\}", template)}
    renames, dropped = {}, []
    for header in frame.columns:
        target = by_header.get(_normal(header))
        if target in columns and target not in renames.values():
            renames[header] = target
        elif _normal(header) in ignored or target is not None:
            dropped.append(header)
        else:
            raise DataError(
                f"{path}: unknown column {header!r} for {entity_name}; map it in "
                f"[sources.{source}.column_map.{entity_name}] or list it in sources.{source}.ignore_columns"
            )
    return frame.drop(dropped).rename(renames)


def _compose_sku(frame: pl.DataFrame, template: str) -> pl.DataFrame:
    """Build the SKU from report columns, e.g. "{Style}-{Color #}-{Size}", keeping every leading zero."""
    parts = re.split(r"(\{[^}]+\})", template)
    headers = {_normal(h): h for h in frame.columns}
    exprs = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            header = headers.get(_normal(part[1:-1]))
            if header is None:
                return frame  # the template does not apply; a missing key column is reported later
            exprs.append(pl.col(header).cast(pl.String).str.strip_chars())
        elif part:
            exprs.append(pl.lit(part))
    return frame.with_columns(pl.concat_str(exprs).alias("sku"))
