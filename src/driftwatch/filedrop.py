"""File drops: `DIR/<source>/<entity>.csv|.parquet|.jsonl` plus an optional `_manifest.json`.

`<source>` is a configured source (`mirakl_fr`, read as its kind's platform) or a platform's own name.

This is how BlueCherry data usually arrives (scheduled report exports), and how any source can be audited
without credentials. Report headers are mapped to canonical columns by a column map (BlueCherry's export
headers are shipped as defaults, per report; a client's config adds its own). A header that is known but
carries nothing driftwatch compares (BlueCherry's `Color Name`, or another report's `Style Name`) is
dropped with a note; a header nobody knows stops the load, naming where to map it. A file that cannot be
read at all stops the load with a one-line error and stores nothing; a bad row is quarantined with its
reason.

A drop is untrusted input. A file or folder that is a symbolic link leading outside the drop is refused
before anything is read through it; an error quotes at most a short, redacted excerpt of a file's content;
a capture time later than now (beyond CLOCK_SKEW) is refused, since it would hide every later drop; headers
that differ only in case are refused, naming both; UTF-16 text (with its byte-order mark) is read as such.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import polars as pl

from driftwatch import platforms
from driftwatch.config import Config, unknown_source
from driftwatch.entities import ENTITIES
from driftwatch.errors import DataError, UserError
from driftwatch.normalize import coerce_batches
from driftwatch.progress import Step, board
from driftwatch.redaction import excerpt
from driftwatch.store import IncomingSnapshot, IngestResult, Store

FORMATS = (".csv", ".parquet", ".jsonl")
MANIFEST = "_manifest.json"
# How far ahead of this machine's clock a capture time may be: two hosts' clocks rarely agree to the second.
CLOCK_SKEW = timedelta(minutes=5)
# When the load happens, if not now: a simulation replaying a night (`loading_at`). Never set by the CLI.
_LOADING_AT: ContextVar[datetime | None] = ContextVar("loading_at", default=None)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Rows of a file read, parsed and validated at a time: bounds the raw text held while loading a large file.
BATCH_ROWS = 1_000_000
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
        return _ignored_note(self.ignored)


def _ignored_note(ignored: tuple[str, ...]) -> str | None:
    return f"ignored column(s) driftwatch does not compare: {', '.join(ignored)}" if ignored else None


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
    """Read every file of a snapshot directory and store it in one transaction: all files or none. Files
    are read one at a time, each BATCH_ROWS rows at a time, and stored as soon as read: the load holds one
    file's parsed rows, never a whole file's raw text nor the whole drop."""
    files: list[FileResult] = []
    quarantines: list[pl.DataFrame] = []

    def snapshots() -> Iterator[IncomingSnapshot]:
        for snap, path, note in read_directory(directory, cfg):
            # What the report needs of the file, not its rows: they are the store's once ingested.
            files.append(FileResult(path, snap.source, snap.entity, snap.row_count, 0, False, "", note))
            quarantines.append(snap.quarantine)
            with Step(f"{snap.source} {snap.entity}: storing {snap.row_count:,} rows"):
                yield snap  # the store has it when this resumes
            del snap

    with board():  # on a terminal, once the load has taken a few seconds
        results = store.ingest(snapshots())
    stored = [_file_result(file, result) for file, result in zip(files, results, strict=True)]
    return LoadReport(Path(directory), stored, pl.concat(quarantines))


def read_directory(directory: Path | str, cfg: Config) -> Iterator[tuple[IncomingSnapshot, Path, str | None]]:
    """Every file of a snapshot directory read and validated, one after the other, with the path it came
    from and what reading it noted; nothing stored. The folders, file names and capture times are checked
    before any file is read."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory (expected DIR/<source>/<entity>.csv)")
    sources = [_source_files(source_dir) for source_dir in _source_dirs(directory, cfg)]
    if not any(files for _, files, _ in sources):
        raise UserError(f"{directory}: no snapshot files found (expected DIR/<source>/<entity>.csv|.parquet|.jsonl)")
    return _read_sources(sources, cfg)


def _read_sources(sources: list[tuple[Path, list[Path], datetime]], cfg: Config) -> Iterator[tuple]:
    for source_dir, files, captured_at in sources:
        yield from _read_source(source_dir, files, captured_at, cfg)


def _file_result(file: FileResult, result: IngestResult) -> FileResult:
    return dataclasses.replace(
        file,
        quarantined=result.snapshot.quarantined_rows,
        loaded=result.loaded,
        snapshot_id=result.snapshot.snapshot_id,
    )


def _source_dirs(directory: Path, cfg: Config) -> list[Path]:
    dirs = sorted(p for p in directory.iterdir() if not p.name.startswith((".", "_")) and _inside(p, directory))
    dirs = [p for p in dirs if p.is_dir()]
    for d in dirs:
        if d.name not in cfg.known_sources():
            raise DataError(f"{d}: {unknown_source(d.name, cfg, 'source folder')}")
    return dirs


def _source_files(source_dir: Path) -> tuple[Path, list[Path], datetime]:
    """A source folder's files and when they were captured, each file's name checked: nothing read yet."""
    files = drop_files(source_dir, source_dir.parent)
    for path in files:
        _entity_of(path)
    return source_dir, files, captured_at_of(source_dir, files)


def _read_source(
    source_dir: Path, files: list[Path], captured_at: datetime, cfg: Config
) -> Iterator[tuple[IncomingSnapshot, Path, str | None]]:
    source = source_dir.name
    settings = cfg.source(source)
    kind = cfg.kind(source)
    for path in files:
        export = read_entity_batches(path, source, settings, kind=kind, batch_rows=BATCH_ROWS)
        batches: Iterator[pl.DataFrame] = iter(export)
        if export.entity == "orders" and cfg.is_marketplace(source):
            batches = (keyed_by_marketplace_id(frame) for frame in batches)
        with Step(f"{source} {export.entity}: reading {path.name}") as step:
            coerced = coerce_batches(
                _counted(batches, step),
                export.entity,
                origin=str(path),
                first_line=first_record_line(path),
                naive_timezone=settings.get("timezone", "UTC"),
            )
        if export.note:
            log.info("%s: %s", path, export.note)
        snap = IncomingSnapshot.from_coerced(source, export.entity, captured_at, coerced, str(path))
        yield snap, path, export.note
        del snap, coerced  # not held while the next file is read


def _counted(batches: Iterable[pl.DataFrame], step: Step) -> Iterator[pl.DataFrame]:
    rows = 0
    for batch in batches:
        yield batch
        rows += batch.height
        step.counts(f"{rows:,} rows")


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


def drop_files(folder: Path, root: Path | None = None) -> list[Path]:
    """The files of a drop folder (not hidden, not `_manifest.json`), refusing any entry that is a symbolic
    link leading outside `root` (default: the folder itself) before anything is read through it."""
    root = folder if root is None else root
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")))
    return [p for p in entries if _inside(p, root) and p.is_file()]


def _inside(path: Path, root: Path) -> bool:
    """True for an entry that stays inside `root` once its links are followed; a DataError for one that
    leads outside (a secrets file, /etc, another customer's drop): it is never read."""
    try:
        resolved = path.resolve(strict=False)
        inside = resolved.is_relative_to(root.resolve(strict=False))
    except (OSError, RuntimeError):  # a link loop
        inside = False
    if not inside:
        raise DataError(f"{path}: a symbolic link leading outside the drop; refused, nothing was read through it")
    return True


def read_entity_file(path: Path, source: str, settings: dict, *, kind: str | None = None) -> ExportFile:
    """One export file of a source (whose platform is `kind`, by default its name), with canonical column
    names; the platform's coded values (Emarsys's opt-in 1/2, Klaviyo's subscription states) read as its
    connector reads them, everything else still as given."""
    export = read_entity_batches(path, source, settings, kind=kind, batch_rows=None)
    frame = pl.concat(list(export))
    return ExportFile(export.entity, frame, export.ignored)


class EntityBatches:
    """An export file read as `read_entity_file` reads it, `batch_rows` rows at a time (None: whole), for
    one pass. `ignored` is known once the first batch is read."""

    def __init__(self, path: Path, source: str, settings: dict, *, kind: str | None = None, batch_rows: int | None):
        self.path, self.source, self.settings, self.kind = path, source, settings, kind or source
        self.entity = _entity_of(path)
        self.batch_rows = batch_rows
        self.ignored: tuple[str, ...] = ()

    @property
    def note(self) -> str | None:
        return _ignored_note(self.ignored)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        decode = platforms.get(self.kind).load_connector().decode_drop if platforms.is_platform(self.kind) else None
        for raw in _read_batches(self.path, self.batch_rows):
            frame, self.ignored = _map_columns(raw, self.source, self.kind, self.entity, self.settings, self.path)
            yield frame if decode is None else decode(self.entity, frame, self.settings)


read_entity_batches = EntityBatches


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
    with _open_text(path) as handle:
        rows = list(itertools.islice(csv.reader(handle), 20))
    for number, row in enumerate(rows):
        if sum(1 for cell in row if cell.strip()) > 1:
            return number
    return 0


def captured_at_of(source_dir: Path, files: list[Path]) -> datetime:
    """When a drop's data was true: its manifest's captured_at, else its newest file's time. Never later than
    now (give or take CLOCK_SKEW): a drop dated in the future would be the latest snapshot until that date."""
    manifest = source_dir / MANIFEST
    if not manifest.exists() and not manifest.is_symlink():
        # Without a manifest, the export's own time is the best evidence of when the data was true.
        newest = max((p.stat().st_mtime for p in files), default=0)
        return _not_in_future(datetime.fromtimestamp(newest, UTC).replace(microsecond=0), source_dir, "its newest file")
    _inside(manifest, source_dir)
    try:
        value = json.loads(manifest.read_text(encoding="utf-8"))["captured_at"]
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError, UnicodeDecodeError) as exc:
        reason = excerpt(f"{type(exc).__name__}: {exc}", 80)
        raise DataError(f'{manifest}: expected {{"captured_at": "ISO-8601 timestamp"}} ({reason})') from None
    if parsed.tzinfo is None:
        raise DataError(f"{manifest}: captured_at '{excerpt(value, 40)}' has no timezone; add Z or +00:00")
    return _not_in_future(parsed.astimezone(UTC), manifest, "captured_at")


@contextmanager
def loading_at(moment: datetime) -> Iterator[None]:
    """Drops loaded inside the block are judged as if loaded at `moment`, not now: for a simulation that
    replays a night whose last export lands after the moment it runs (a generated retailer's pull)."""
    token = _LOADING_AT.set(moment)
    try:
        yield
    finally:
        _LOADING_AT.reset(token)


def _not_in_future(captured_at: datetime, where: Path, what: str) -> datetime:
    now = _LOADING_AT.get() or datetime.now(UTC)
    if captured_at > now + CLOCK_SKEW:
        raise DataError(
            f"{where}: {what} {captured_at:%Y-%m-%dT%H:%M:%SZ} is in the future (this machine's clock says "
            f"{now:%Y-%m-%dT%H:%M:%SZ}); a drop cannot have been captured later than now"
        )
    return captured_at


def _read_batches(path: Path, batch_rows: int | None) -> Iterator[pl.DataFrame]:
    """A file's rows, `batch_rows` at a time (None: all at once); at least one frame, with the file's
    columns, even when it holds no rows. A file that cannot be read stops with a DataError, whichever
    batch it fails in."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file; expected a header row and data")
    if path.suffix == ".parquet":
        yield from _parquet_batches(path, batch_rows)
        return
    _check_text(path)
    # UTF-16 text (Excel's "Unicode text") is re-encoded in memory: polars reads UTF-8 only.
    utf16 = _is_utf16(path)
    source: Path | io.BytesIO = io.BytesIO(_utf16_text(path).encode()) if utf16 else path
    try:
        if path.suffix == ".csv":
            title_lines = report_title_lines(path)
            _refuse_duplicate_headers(_csv_header(path, title_lines), path)
            scan = pl.scan_csv(
                source, infer_schema=False, encoding="utf8", truncate_ragged_lines=False, skip_rows=title_lines
            )
            header = pl.DataFrame(schema=scan.collect_schema())
            if header.width == 0:
                raise DataError(f"{path}: no columns found; expected a header row")
            if batch_rows is None or utf16:
                yield from _at_least(header, [scan.collect()])
                return
            yield from _at_least(header, scan.collect_batches(chunk_size=batch_rows, lazy=True))
            return
        frame = pl.read_ndjson(source, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        if path.suffix == ".csv":
            _refuse_ragged_rows(path)
        else:
            _refuse_mixed_lists(path)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse as {path.suffix[1:].upper()}: {excerpt(first, 120)}") from None
    if frame.width == 0 or frame.height == 0:
        raise DataError(f"{path}: no columns found; expected a header row")
    if _may_hold_lists_as_text(frame):
        _refuse_mixed_lists(path)
    yield from _slices(frame, batch_rows)


def _at_least(header: pl.DataFrame, batches: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """The batches, or the header alone (no rows) when there are none."""
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        yield header


def _slices(frame: pl.DataFrame, batch_rows: int | None) -> Iterator[pl.DataFrame]:
    if batch_rows is None:
        yield frame
        return
    for offset in range(0, max(frame.height, 1), batch_rows):
        yield frame.slice(offset, batch_rows)


def _parquet_batches(path: Path, batch_rows: int | None) -> Iterator[pl.DataFrame]:
    """A Parquet file's rows: each batch read on its own, so only its row groups are decoded."""
    try:
        if batch_rows is None:
            yield pl.read_parquet(path)
            return
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
        for offset in range(0, max(rows, 1), batch_rows):
            yield pl.scan_parquet(path).slice(offset, batch_rows).collect()
    except Exception as exc:  # polars raises several unrelated types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None


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
    with _open_text(path) as lines:
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
                        f"{path}: line {number}: column '{excerpt(column, 40)}' holds a list on some lines and a "
                        "single value on others; export one value per line (or a list on every line)"
                    )


def _refuse_ragged_rows(path: Path) -> None:
    """The first CSV row with more fields than the header, by its line: which field is the extra one cannot
    be told, so the file is refused rather than loaded with shifted columns."""
    title_lines = report_title_lines(path)
    with _open_text(path) as handle:
        for _ in range(title_lines):
            handle.readline()
        reader = csv.reader(handle)
        header = next(reader, [])
        for row in reader:
            if len(row) > len(header):
                raise DataError(
                    f"{path}: line {reader.line_num + title_lines} has {len(row)} fields, the header has "
                    f"{len(header)}; quote values that contain the separator, or fix the row"
                )


def _csv_header(path: Path, title_lines: int) -> list[str]:
    with _open_text(path) as handle:
        return next(itertools.islice(csv.reader(handle), title_lines, None), [])


def _refuse_duplicate_headers(headers: list[str], path: Path) -> None:
    """Two headers naming one column but for case or spacing (`SKU` and `sku`): which one holds the truth
    cannot be told, so the file is refused, naming both."""
    seen: dict[str, str] = {}
    for header in headers:
        first = seen.setdefault(_normal(header), header)
        if first is not header:
            raise DataError(
                f"{path}: headers '{excerpt(first, 40)}' and '{excerpt(header, 40)}' name the same column "
                "(they differ only in case or spacing); keep one of them"
            )


def _is_utf16(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) in _UTF16_BOMS


def _utf16_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-16")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: UTF-16 text (by its byte-order mark) that does not decode at byte {exc.start}"
        ) from None


def _open_text(path: Path) -> IO[str]:
    """A file's text: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8 (a UTF-8 BOM is
    dropped); undecodable bytes are replaced, for `_check_text` has already refused a file that has many."""
    if _is_utf16(path):
        return path.open(encoding="utf-16", newline="")
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


def _check_text(path: Path) -> None:
    with path.open("rb") as fh:
        sample = fh.read(64 * 1024)
    if sample[:2] in _UTF16_BOMS:
        return  # UTF-16, read as such
    if b"\x00" in sample:
        zeros = sample[1::2].count(0) + sample[0::2].count(0)
        if zeros >= len(sample) // 2 - 2:  # every other byte zero: ASCII text in UTF-16
            raise DataError(
                f"{path}: UTF-16 text without a byte-order mark; re-export as UTF-8 (or UTF-16 with its BOM)"
            )
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
    _refuse_duplicate_headers(frame.columns, path)
    headers = platforms.get(kind).export_headers  # a platform's own export headers (BlueCherry's reports)
    user_maps = settings.get("column_map", {})
    frame = _read_variants(frame, headers.variants.get(entity_name, {}))
    mapping = {**headers.columns.get(entity_name, {}), **user_maps.get(entity_name, {})}
    by_header = {_normal(h): c for h, c in mapping.items()} | {_normal(c): c for c in columns}
    silent = {_normal(h) for h in settings.get("ignore_columns", ())}  # the user's own choice: no note
    known = {_normal(h) for h in [*headers.known(), *(h for table in user_maps.values() for h in table)]}
    template = settings.get("sku_template", headers.sku_template)
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
                f"{path}: unknown column '{excerpt(header, 40)}' for {entity_name}; map it in "
                f"[sources.{source}.column_map.{entity_name}] or list it in sources.{source}.ignore_columns"
            )
    return frame.drop(dropped).rename(renames), tuple(noted)


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
