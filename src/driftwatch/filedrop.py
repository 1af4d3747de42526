"""File drops: `DIR/<source>/<entity>.csv|.parquet|.jsonl` plus an optional `_manifest.json`.

`<source>` is a configured source (`mirakl_fr`, read as its kind's platform) or a platform's own name.

This is how BlueCherry data usually arrives (scheduled report exports), and how any source can be audited
without credentials. Report headers are mapped to canonical columns by a column map (BlueCherry's export
headers are shipped as defaults, per report; a client's config adds its own). A header that is known but
carries nothing driftwatch compares (BlueCherry's `Color Name`, or another report's `Style Name`) is
dropped with a note; a header nobody knows stops the load, naming where to map it. A file that cannot be
read at all stops the load with a one-line error and stores nothing; a bad row is quarantined with its
reason.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from driftwatch import platforms
from driftwatch.config import Config, unknown_source
from driftwatch.connectors.bluecherry.mapping import (
    BLUECHERRY_COLUMN_MAP,
    BLUECHERRY_HEADER_VARIANTS,
    BLUECHERRY_SKU_TEMPLATE,
    BLUECHERRY_UNUSED,
)
from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError, UserError
from driftwatch.normalize import coerce
from driftwatch.store import IncomingSnapshot, IngestResult, Store

FORMATS = (".csv", ".parquet", ".jsonl")
MANIFEST = "_manifest.json"
log = logging.getLogger("driftwatch.filedrop")


@dataclass(frozen=True)
class ExportFile:
    """One export file read: its entity, its frame (canonical column names, values still as given), and the
    known headers it carried that nothing compares, dropped."""

    entity: str
    frame: pl.DataFrame
    ignored: tuple[str, ...] = ()

    @property
    def note(self) -> str | None:
        if not self.ignored:
            return None
        return f"ignored column(s) driftwatch does not compare: {', '.join(self.ignored)}"


@dataclass(frozen=True)
class FileResult:
    path: Path
    source: str
    entity: str
    rows: int
    quarantined: int
    loaded: bool
    snapshot_id: str
    note: str | None = None


@dataclass(frozen=True)
class LoadReport:
    directory: Path
    files: list[FileResult]
    quarantine: pl.DataFrame

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files)

    @property
    def notes(self) -> list[str]:
        return [f"{f.path}: {f.note}" for f in self.files if f.note]


def load_directory(store: Store, directory: Path | str, cfg: Config) -> LoadReport:
    """Read every file of a snapshot directory and store it in one transaction."""
    prepared = read_directory(directory, cfg)
    results = store.ingest(snap for snap, _, _ in prepared)
    files = [
        _file_result(path, snap, result, note) for (snap, path, note), result in zip(prepared, results, strict=True)
    ]
    quarantine = pl.concat([snap.quarantine for snap, _, _ in prepared])
    return LoadReport(Path(directory), files, quarantine)


def read_directory(directory: Path | str, cfg: Config) -> list[tuple[IncomingSnapshot, Path, str | None]]:
    """Every file of a snapshot directory read and validated, with the path it came from and what reading it
    noted; nothing stored."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory (expected DIR/<source>/<entity>.csv)")
    prepared = [snap for source_dir in _source_dirs(directory, cfg) for snap in _read_source(source_dir, cfg)]
    if not prepared:
        raise UserError(f"{directory}: no snapshot files found (expected DIR/<source>/<entity>.csv|.parquet|.jsonl)")
    return prepared


def _file_result(path: Path, snap: IncomingSnapshot, result: IngestResult, note: str | None) -> FileResult:
    return FileResult(
        path,
        snap.source,
        snap.entity,
        snap.row_count,
        result.snapshot.quarantined_rows,
        result.loaded,
        result.snapshot.snapshot_id,
        note,
    )


def _source_dirs(directory: Path, cfg: Config) -> list[Path]:
    dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    for d in dirs:
        if d.name not in cfg.known_sources():
            raise DataError(f"{d}: {unknown_source(d.name, cfg, 'source folder')}")
    return dirs


def _read_source(source_dir: Path, cfg: Config) -> list[tuple[IncomingSnapshot, Path, str | None]]:
    source = source_dir.name
    files = sorted(p for p in source_dir.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    captured_at = captured_at_of(source_dir, files)
    settings = cfg.source(source)
    snaps = []
    kind = cfg.kind(source)
    for path in files:
        export = read_entity_file(path, source, settings, kind=kind)
        if export.note:
            log.info("%s: %s", path, export.note)
        frame = export.frame
        if export.entity == "orders" and cfg.is_marketplace(source):
            frame = keyed_by_marketplace_id(frame)
        first_line = first_record_line(path)
        coerced = coerce(
            frame,
            export.entity,
            origin=str(path),
            first_line=first_line,
            naive_timezone=settings.get("timezone", "UTC"),
        )
        snap = IncomingSnapshot.from_coerced(source, export.entity, captured_at, coerced, str(path))
        snaps.append((snap, path, export.note))
    return snaps


def keyed_by_marketplace_id(orders: pl.DataFrame) -> pl.DataFrame:
    """A marketplace's orders are keyed by its own order id (external_id): order_id, the ERP's number, is
    only filled once the ERP has the order. Where it is blank, or absent, the order is keyed by its
    external_id, as the connectors key it, so the order the ERP has not got yet is audited, not
    quarantined. Its lines and shipments name it by the same id."""
    if "external_id" not in orders.columns:
        return orders
    marketplace_id = pl.col("external_id").cast(pl.String).str.strip_chars()
    if "order_id" not in orders.columns:
        return orders.with_columns(marketplace_id.alias("order_id"))
    erp_number = pl.col("order_id").cast(pl.String).str.strip_chars()
    blank = erp_number.is_null() | (erp_number == "")
    keyed = pl.when(blank).then(marketplace_id).otherwise(pl.col("order_id").cast(pl.String))
    return orders.with_columns(keyed.alias("order_id"))


def read_entity_file(path: Path, source: str, settings: dict, *, kind: str | None = None) -> ExportFile:
    """One export file of a source (whose platform is `kind`, by default its name), with canonical column
    names; the platform's coded values (Emarsys's opt-in 1/2, Klaviyo's subscription states) read as its
    connector reads them, everything else still as given."""
    entity_name = _entity_of(path)
    kind = kind or source
    frame, ignored = _map_columns(_read_file(path), source, kind, entity_name, settings, path)
    if platforms.is_platform(kind):
        frame = platforms.get(kind).load_connector().decode_drop(entity_name, frame, settings)
    return ExportFile(entity_name, frame, ignored)


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
        _refuse_mixed_lists(path)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse as {path.suffix[1:].upper()}: {first}") from None
    if frame.width == 0 or (frame.height == 0 and path.suffix == ".jsonl"):
        raise DataError(f"{path}: no columns found; expected a header row")
    if path.suffix == ".jsonl" and _may_hold_lists_as_text(frame):
        _refuse_mixed_lists(path)
    return frame


def _may_hold_lists_as_text(frame: pl.DataFrame) -> bool:
    """polars reads a JSONL column mixing text and lists as text, the lists written out as JSON: a cheap
    test for whether that may have happened (a text value that opens like a JSON list or object)."""
    texts = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    if not texts:
        return False
    opens = pl.any_horizontal(pl.col(c).str.starts_with("[") | pl.col(c).str.starts_with("{") for c in texts)
    return bool(frame.select(opens.any()).item())


def _refuse_mixed_lists(path: Path) -> None:
    """A column that holds a list (or record) on some lines and a single value on others cannot be read as
    one column without guessing: stop with the first such line, storing nothing. (A column of lists on
    every line reads as a list column, and each of its rows is quarantined by `coerce`.)"""
    seen: dict[str, set[bool]] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line) if line.strip() else {}
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: cannot parse as JSONL: line {number}: {exc.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: cannot parse as JSONL: line {number} is not a JSON object")
            for column, value in record.items():
                if value is None:
                    continue
                kinds = seen.setdefault(column, set())
                kinds.add(isinstance(value, list | dict))
                if len(kinds) == 2:
                    raise DataError(
                        f"{path}: line {number}: column {column!r} holds a list on some lines and a single value "
                        "on others; export one value per line (or a list on every line)"
                    )


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
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The frame with canonical column names, and the known headers dropped because nothing compares them."""
    columns = ENTITIES[entity_name].columns
    bluecherry = kind == "bluecherry"  # its report headers are known; other platforms' drops use canonical names
    user_maps = settings.get("column_map", {})
    if bluecherry:
        frame = _read_variants(frame, BLUECHERRY_HEADER_VARIANTS.get(entity_name, {}))
    mapping = {**(BLUECHERRY_COLUMN_MAP.get(entity_name, {}) if bluecherry else {}), **user_maps.get(entity_name, {})}
    by_header = {_normal(h): c for h, c in mapping.items()} | {_normal(c): c for c in columns}
    silent = {_normal(h) for h in settings.get("ignore_columns", ())}  # the user's own choice: no note
    known = {_normal(h) for h in _known_headers(bluecherry, user_maps)}
    template = settings.get("sku_template", BLUECHERRY_SKU_TEMPLATE if bluecherry else None)
    if "sku" in columns and template and not any(by_header.get(_normal(h)) == "sku" for h in frame.columns):
        frame, used = _compose_sku(frame, template)
        silent |= used
    renames, dropped, noted = {}, [], []
    for header in frame.columns:
        target = by_header.get(_normal(header))
        if target in columns and target not in renames.values():
            renames[header] = target
        elif _normal(header) in silent:
            dropped.append(header)
        elif target is not None or _normal(header) in known:  # a second header for one column, or another report's
            dropped.append(header)
            noted.append(header)
        else:
            raise DataError(
                f"{path}: unknown column {header!r} for {entity_name}; map it in "
                f"[sources.{source}.column_map.{entity_name}] or list it in sources.{source}.ignore_columns"
            )
    return frame.drop(dropped).rename(renames), tuple(noted)


def _known_headers(bluecherry: bool, user_maps: dict[str, dict[str, str]]) -> list[str]:
    """Headers some report of the source is known to carry: mapped for any entity, or known to be unused."""
    maps = [*(BLUECHERRY_COLUMN_MAP.values() if bluecherry else ()), *user_maps.values()]
    variants = [h for table in BLUECHERRY_HEADER_VARIANTS.values() for h in table] if bluecherry else []
    return [*(h for table in maps for h in table), *variants, *(BLUECHERRY_UNUSED if bluecherry else ())]


def _read_variants(frame: pl.DataFrame, variants: dict[str, str]) -> pl.DataFrame:
    """Headers that are this report's name for a field other reports name otherwise (StyleMaster's SIZES
    for Size), renamed to the usual name unless the file carries that too."""
    present = {_normal(h) for h in frame.columns}
    wanted = {_normal(variant): usual for variant, usual in variants.items()}
    renames = {
        h: wanted[_normal(h)]
        for h in frame.columns
        if _normal(h) in wanted and _normal(wanted[_normal(h)]) not in present
    }
    return frame.rename(renames)


def _compose_sku(frame: pl.DataFrame, template: str) -> tuple[pl.DataFrame, set[str]]:
    """Build the SKU from report columns, e.g. "{Style}-{Color #}-{Size}", keeping every leading zero; also
    the (normalised) headers it used. A template whose columns the file lacks does not apply: the missing
    key column is reported later."""
    parts = re.split(r"(\{[^}]+\})", template)
    headers = {_normal(h): h for h in frame.columns}
    exprs, used = [], set()
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            header = headers.get(_normal(part[1:-1]))
            if header is None:
                return frame, set()
            exprs.append(pl.col(header).cast(pl.String).str.strip_chars())
            used.add(_normal(header))
        elif part:
            exprs.append(pl.lit(part))
    return frame.with_columns(pl.concat_str(exprs).alias("sku")), used
