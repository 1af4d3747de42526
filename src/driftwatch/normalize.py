"""Turn any frame with canonical column names into canonical dtypes, and split out the rows that cannot be.

Every source goes through `coerce`: file drops and API pulls alike, so a snapshot means the same thing
whichever way it arrived. A value that cannot be parsed, or a row that breaks the entity's rules, is never
dropped silently: it comes back in `bad` with its line, column, value and reason. Money is never rounded on
the way in: an amount with more decimals than the store keeps (4), or a price, order total or journal amount
with more than its row's currency has (12.345 GBP), is held back instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import pandera.polars as pa
import polars as pl

from driftwatch.entities import DTYPES, MONEY, TIMESTAMP, Entity, entity, model
from driftwatch.errors import DataError
from driftwatch.money import minor_digits
from driftwatch.redaction import excerpt

LINE = "__line"
QUARANTINE_SCHEMA = {
    "origin": pl.String,
    "line": pl.Int64,
    "column": pl.String,
    "value": pl.String,
    "reason": pl.String,
}

_VALIDATE_ROWS = 1_000_000
_TRUE = ["true", "t", "yes", "y", "1", "subscribed", "opted_in", "optin", "on"]
_FALSE = ["false", "f", "no", "n", "0", "unsubscribed", "opted_out", "optout", "off", "never_subscribed"]
# Thousands separators appear in spreadsheet exports ("1,200"); only strip them where the grouping is exact.
_GROUPED_NUMBER = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"
_UTC_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
_TZ_AWARE = ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"]
_NAIVE = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
]


@dataclass(frozen=True)
class Coerced:
    """Every parsed row, and the problems that hold some of them back."""

    rows: pl.DataFrame  # every row, parsed (a value that could not be is null)
    bad: pl.DataFrame  # QUARANTINE_SCHEMA: one row per problem, several problems per line possible
    keep: pl.Series  # per row of `rows`: no problem holds it back

    @cached_property
    def good(self) -> pl.DataFrame:
        """The rows that passed, as a copy; the store takes `rows` and `keep` instead, which spares a
        snapshot of tens of millions of rows a second copy in memory."""
        return self.rows if self.keep.all() else self.rows.filter(self.keep)


def coerce(
    frame: pl.DataFrame,
    entity_name: str,
    *,
    origin: str = "",
    first_line: int = 2,
    naive_timezone: str = "UTC",
) -> Coerced:
    """Parse and validate `frame` as `entity_name`.

    `first_line` is the line number of the first row in the origin (2 for a CSV with a header row), so
    every reported problem points at the line a person would open. Naive timestamps are read in
    `naive_timezone` (an ERP export usually speaks local time) and stored in UTC.
    """
    parsed = parse_frame(frame, entity_name, origin=origin, first_line=first_line, naive_timezone=naive_timezone)
    return finish(parsed, entity_name, origin=origin, first_line=first_line)


def parse_frame(
    frame: pl.DataFrame, entity_name: str, *, origin: str = "", first_line: int = 2, naive_timezone: str = "UTC"
) -> Parsed:
    """`parse` of a frame held whole, a slice at a time."""
    slices = (frame.slice(offset, _VALIDATE_ROWS) for offset in range(0, max(frame.height, 1), _VALIDATE_ROWS))
    return parse(slices, entity_name, origin=origin, first_line=first_line, naive_timezone=naive_timezone)


def coerce_batches(
    batches: Iterable[pl.DataFrame],
    entity_name: str,
    *,
    origin: str = "",
    first_line: int = 2,
    naive_timezone: str = "UTC",
) -> Coerced:
    """`coerce` over a file read in batches (consecutive rows, same columns): only one batch of the raw
    input is held at a time, so a snapshot of tens of millions of rows needs memory for its parsed rows,
    not for those and the raw text besides. Duplicate keys are found across all batches."""
    parsed = parse(batches, entity_name, origin=origin, first_line=first_line, naive_timezone=naive_timezone)
    return finish(parsed, entity_name, origin=origin, first_line=first_line)


@dataclass(frozen=True)
class Parsed:
    """Rows parsed and checked one by one, before the one rule that spans rows (a key held once) is checked.

    Each row's problems depend on that row alone, so the parsed rows of an unchanged record can be kept and
    put beside newly parsed ones (`Parsed.concat`): an incremental pull parses only the changed records."""

    rows: pl.DataFrame  # every row, parsed
    problems: pl.DataFrame  # QUARANTINE_SCHEMA + PARSE, `line` counting from the frame's `first_line`

    def concat(self, other: Parsed) -> Parsed:
        """`other`'s rows after these, its problems' lines moved on by this frame's height (both numbered from
        the same first line)."""
        moved = other.problems.with_columns(pl.col("line") + self.rows.height)
        return Parsed(pl.concat([self.rows, other.rows], how="vertical"), pl.concat([self.problems, moved]))

    def take(self, rows: pl.Series, first_line: int) -> Parsed:
        """The rows at the indices `rows` (ascending), renumbered from `first_line`, with their problems."""
        lines = pl.DataFrame({"line": rows.cast(pl.Int64) + first_line}).with_row_index("new")
        problems = self.problems.join(lines, on="line", how="inner").with_columns(
            (pl.col("new").cast(pl.Int64) + first_line).alias("line")
        )
        return Parsed(self.rows[rows], problems.select(self.problems.columns))


PARSE = "parse"  # a problem column: the value could not be parsed (not reported again as missing)


def parse(
    batches: Iterable[pl.DataFrame],
    entity_name: str,
    *,
    origin: str = "",
    first_line: int = 2,
    naive_timezone: str = "UTC",
) -> Parsed:
    """Every row parsed, and the problems each row has by itself (`finish` adds duplicate keys)."""
    spec = entity(entity_name)
    parsed_parts, parse_errors, line = [], [], first_line
    for raw in batches:
        raw = raw.with_columns(pl.lit(None, pl.String).alias(c) for c in spec.key_defaults if c not in raw.columns)
        _check_columns(raw, spec, origin)
        raw = raw.with_row_index(LINE, offset=line).with_columns(pl.col(LINE).cast(pl.Int64))
        parsed = raw.select(
            LINE,
            *[
                _parse(col, kind, naive_timezone, raw.schema[col]).alias(col)
                for col, kind in spec.columns.items()
                if col in raw.columns
            ],
        ).with_columns(pl.col(c).fill_null(default) for c, default in spec.key_defaults.items())
        parse_errors.append(_parse_errors(raw, parsed, spec, origin))
        parsed_parts.append(parsed)
        line += raw.height
    if not parsed_parts:
        raise DataError(f"{origin}: no rows to read, not even a header")
    parsed = pl.concat(parsed_parts, rechunk=False)
    parse_problems = pl.concat(parse_errors)
    # A value that failed to parse is null now; report it once, as unparseable, not again as missing.
    rule_errors = _rule_errors(parsed, spec, origin).join(parse_problems, on=["line", "column"], how="anti")
    problems = pl.concat(
        [parse_problems.with_columns(pl.lit(True).alias(PARSE)), rule_errors.with_columns(pl.lit(False).alias(PARSE))]
    )
    return Parsed(parsed.drop(LINE), problems)


def finish(parsed: Parsed, entity_name: str, *, origin: str = "", first_line: int = 2) -> Coerced:
    """The rows and every problem, with every copy of a key held more than once."""
    spec = entity(entity_name)
    numbered = parsed.rows.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))
    parse_problems = parsed.problems.filter(pl.col(PARSE))
    duplicates = _duplicate_keys(numbered, spec, origin).join(parse_problems, on=["line", "column"], how="anti")
    bad = pl.concat([parsed.problems.drop(PARSE), duplicates]).sort("line", "column")
    keep = ~numbered[LINE].is_in(bad["line"].unique().implode()).alias("keep")
    return Coerced(parsed.rows, bad, keep)


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def _check_columns(frame: pl.DataFrame, spec: Entity, origin: str) -> None:
    where = f"{origin}: " if origin else ""
    unknown = [c for c in frame.columns if c not in spec.columns]
    if unknown:
        raise DataError(
            f"{where}unknown column(s) {', '.join(repr(excerpt(c, 40)) for c in unknown)} for entity {spec.name!r}; "
            f"expected some of: {', '.join(spec.columns)} (map report headers in the source's column_map)"
        )
    missing = [c for c in spec.key if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}missing key column(s) {', '.join(map(repr, missing))} for entity {spec.name!r} "
            f"(key: {', '.join(spec.key)})"
        )


def _as_text(col: str) -> pl.Expr:
    text = pl.col(col).cast(pl.String).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _parse(col: str, kind: str, naive_timezone: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_nested():  # a list or record where one value belongs: no value, and _parse_errors says why
        return pl.lit(None, dtype=DTYPES[kind])
    typed = _from_typed(col, kind, naive_timezone, dtype)
    if typed is not None:
        return typed
    text = _as_text(col)
    if kind == "code":
        return text
    # One spelling per character: "é" exported as e + combining accent (Unicode NFD, as macOS tools and
    # some platforms write it) is the same name or address as the precomposed "é" (NFC).
    if kind == "text":
        return _nfc(text)
    if kind == "email":
        return _nfc(text).str.to_lowercase()
    if kind in ("money", "int"):
        number = pl.when(text.str.contains(_GROUPED_NUMBER)).then(text.str.replace_all(",", "")).otherwise(text)
        money = number.cast(MONEY, strict=False)
        if kind == "money":
            return money
        # "3" and "3.0" are both three units; "3.5" units is not a quantity.
        whole = money.cast(pl.Int64, strict=False)
        return pl.when(money == whole.cast(MONEY)).then(whole).otherwise(None)
    if kind == "bool":
        lowered = text.str.to_lowercase()
        return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False).otherwise(None)
    if kind == "timestamp":
        return _parse_timestamp(text, naive_timezone)
    raise AssertionError(f"unhandled column kind {kind}")


def _from_typed(col: str, kind: str, naive_timezone: str, dtype: pl.DataType) -> pl.Expr | None:
    """A column that already has a fitting type (parquet, an API's JSON numbers) is converted directly:
    going through text would only cost time. Floats still go through text, where 0.29 stays 0.29."""
    value = pl.col(col)
    if kind == "timestamp" and isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return value.dt.convert_time_zone("UTC").cast(TIMESTAMP)
    if kind == "timestamp" and (isinstance(dtype, pl.Datetime) or dtype == pl.Date):
        return _localized(value.cast(pl.Datetime("us")), naive_timezone)
    if kind == "money" and (dtype.is_integer() or isinstance(dtype, pl.Decimal)):
        return value.cast(MONEY, strict=False)
    if kind == "int" and dtype.is_integer():
        return value.cast(pl.Int64, strict=False)
    if kind == "bool" and dtype == pl.Boolean:
        return value
    return None


def _nfc(text: pl.Expr) -> pl.Expr:
    return text.map_batches(_nfc_values, return_dtype=pl.String)


def _nfc_values(values: pl.Series) -> pl.Series:
    """Values in Unicode NFC. ASCII text is NFC already and normalising costs ten times what finding the
    few values that are not ASCII does, so only those are normalised."""
    wider = values.str.len_bytes() != values.str.len_chars()
    if not wider.any():
        return values
    at = wider.arg_true()
    return values.scatter(at, values.gather(at).str.normalize("NFC"))


def _localized(naive: pl.Expr, naive_timezone: str) -> pl.Expr:
    local = naive.dt.replace_time_zone(naive_timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC")


def _parse_timestamp(text: pl.Expr, naive_timezone: str) -> pl.Expr:
    return text.map_batches(lambda values: _first_format(values, naive_timezone), return_dtype=TIMESTAMP)


def _first_format(values: pl.Series, naive_timezone: str) -> pl.Series:
    """Each value parsed with the first format that reads it. A source writes its timestamps one way, so
    after the first format only the few values it could not read are tried against the next. The commonest
    export shape (`2026-10-26T05:08:57Z`) is read as it is, by a fixed format that costs a fifth of
    rewriting it first; the rest are rewritten as ISO 8601 (Z as +00:00, a space as T) and read."""
    value = pl.col("v")
    utc = value.str.strptime(pl.Datetime("us"), _UTC_SECONDS, strict=False).dt.replace_time_zone("UTC")
    parsers = [value.str.strptime(TIMESTAMP, fmt, strict=False) for fmt in _TZ_AWARE] + [
        _localized(value.str.strptime(pl.Datetime("us"), fmt, strict=False), naive_timezone) for fmt in _NAIVE
    ]
    parsed = pl.repeat(None, len(values), dtype=TIMESTAMP, eager=True).alias(values.name)
    pending = values.to_frame("v").with_row_index("i").filter(pl.col("v").is_not_null())
    parsed, pending = _read_with(utc, parsed, pending)
    pending = pending.with_columns(_iso(value))
    for parser in parsers:
        if pending.height == 0:
            break
        parsed, pending = _read_with(parser, parsed, pending)
    return parsed


def _read_with(parser: pl.Expr, parsed: pl.Series, pending: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """`parsed` with the pending values `parser` reads, and the values still pending."""
    attempt = pending.with_columns(parser.cast(TIMESTAMP).alias("t"))
    done = attempt.filter(pl.col("t").is_not_null())
    return parsed.scatter(done["i"], done["t"]), attempt.filter(pl.col("t").is_null()).drop("t")


def _iso(text: pl.Expr) -> pl.Expr:
    """A timestamp's text as ISO 8601: Z as +00:00, a space between date and time as T."""
    return text.str.replace(r"Z$", "+00:00").str.replace(r"^(\d{4}-\d{2}-\d{2}) (\d)", "${1}T${2}")


def _parse_errors(raw: pl.DataFrame, parsed: pl.DataFrame, spec: Entity, origin: str) -> pl.DataFrame:
    problems = []
    for col, kind in spec.columns.items():
        if col not in raw.columns:
            continue
        if raw.schema[col].is_nested():
            problems.append(_nested_problems(raw, col, kind, origin))
            continue
        if raw.schema[col] == pl.String and kind in _ANY_TEXT:
            continue  # text is read as it is: no value of it fails to parse
        given = _as_text(col) if raw.schema[col] == pl.String else pl.col(col)
        failed = given.is_not_null() & parsed[col].is_null()
        rows = raw.filter(failed)
        if rows.height:
            problems.append(_problems(rows, col, origin, f"not a valid {_KIND_NAMES[kind]}"))
        if kind == "money" and _may_be_finer_than_stored(raw.schema[col]):
            rows = raw.filter(_finer_than_stored(col, raw.schema[col]) & ~failed)
            if rows.height:
                reason = f"more decimals than driftwatch keeps ({STORED_DECIMALS}); an amount is never rounded"
                problems.append(_problems(rows, col, origin, reason))
    return pl.concat(problems) if problems else empty_quarantine()


STORED_DECIMALS = MONEY.scale


_ANY_TEXT = ("code", "text", "email")


def _may_be_finer_than_stored(dtype: pl.DataType) -> bool:
    """Whether a column of this type can hold an amount the store would round (a decimal type with four
    places or fewer cannot, and reading each value as text to find out costs more than the rest of it)."""
    return not (dtype.is_integer() or (isinstance(dtype, pl.Decimal) and dtype.scale <= STORED_DECIMALS))


def _finer_than_stored(col: str, dtype: pl.DataType) -> pl.Expr:
    """An amount the store's money type would round: a non-zero decimal beyond the fourth. A float is judged
    by its value (0.1 + 0.2 is 0.3, not 0.30000000000000004), text and decimals by their digits."""
    if dtype.is_float():
        value = pl.col(col)
        return (value - value.round(STORED_DECIMALS)).abs() > 1e-9 * pl.max_horizontal(pl.lit(1.0), value.abs())
    if dtype.is_integer():
        return pl.lit(False)
    return pl.col(col).cast(pl.String).str.contains(rf"\.\d{{{STORED_DECIMALS}}}\d*[1-9]").fill_null(False)


# Amounts that are whole minor units of their row's currency: what a customer is charged and what the ledger
# posts. A marketplace's payout lines are not among them: commission and fee lines carry sub-cent precision.
IN_MINOR_UNITS = {"products": ("price",), "orders": ("total",), "journal_entries": ("amount",)}


def _beyond_currency(frame: pl.DataFrame, spec: Entity, origin: str) -> pl.DataFrame:
    """Prices, order totals and journal amounts with more decimals than their row's currency has (12.345
    GBP, 12.5 JPY): held back, never rounded. `driftwatch.money` knows each currency's minor unit."""
    money = [c for c in IN_MINOR_UNITS.get(spec.name, ()) if c in frame.columns]
    if "currency" not in frame.columns or not money or frame.height == 0:
        return empty_quarantine()
    digits = {code: minor_digits(code) for code in frame["currency"].drop_nulls().unique().to_list()}
    step = pl.col("currency").replace_strict(
        {code: 10 ** (STORED_DECIMALS - min(d, STORED_DECIMALS)) for code, d in digits.items()},
        default=None,
        return_dtype=pl.Int64,
    )
    places = pl.col("currency").replace_strict(digits, default=None, return_dtype=pl.Int64)
    problems = []
    for col in money:
        scaled = (pl.col(col).cast(pl.Decimal(38, STORED_DECIMALS)) * 10**STORED_DECIMALS).cast(pl.Int64)
        rows = frame.filter((scaled % step) != 0)
        if rows.height:
            problems.append(
                rows.select(
                    pl.lit(origin).alias("origin"),
                    pl.col(LINE).alias("line"),
                    pl.lit(col).alias("column"),
                    pl.col(col).cast(pl.String).str.replace(r"\.?0+$", "").alias("value"),  # 12.3450: 12.345
                    pl.format("more decimals than {} has ({}); an amount is never rounded", "currency", places).alias(
                        "reason"
                    ),
                )
            )
    return pl.concat(problems) if problems else empty_quarantine()


_KIND_NAMES = {
    "money": "decimal amount",
    "int": "whole number",
    "bool": "true/false value",
    "timestamp": "date or timestamp (ISO 8601 or MM/DD/YYYY)",
    "code": "code",
    "text": "text",
    "email": "email",
}


def _nested_problems(raw: pl.DataFrame, col: str, kind: str, origin: str) -> pl.DataFrame:
    """A Parquet or JSONL column of lists (or records) where the entity holds one value per row: each row
    that has one is held back with the whole value, as JSON, so nothing of it is lost."""
    rows = raw.filter(pl.col(col).is_not_null()).select(LINE, col)
    what = "a record" if isinstance(raw.schema[col], pl.Struct) else "a list of values"
    shown = [json.dumps(value, default=str, ensure_ascii=False) for value in rows[col].to_list()]
    return rows.select(
        pl.lit(origin).alias("origin"),
        pl.col(LINE).alias("line"),
        pl.lit(col).alias("column"),
        pl.Series("value", shown, dtype=pl.String),
        pl.lit(f"{what}, where one {_KIND_NAMES[kind]} was expected").alias("reason"),
    )


def _problems(rows: pl.DataFrame, col: str, origin: str, reason: str) -> pl.DataFrame:
    return rows.select(
        pl.lit(origin).alias("origin"),
        pl.col(LINE).alias("line"),
        pl.lit(col).alias("column"),
        pl.col(col).cast(pl.String).alias("value"),
        pl.lit(reason).alias("reason"),
    )


def _rule_errors(frame: pl.DataFrame, spec: Entity, origin: str) -> pl.DataFrame:
    """Rows breaking the entity's rules, each judged by itself (`_duplicate_keys` spans rows). The rules are
    validated a slice at a time: pandera keeps a few working columns per rule, and over a whole 50M-row
    snapshot those outgrow the snapshot itself."""
    present = [c for c in frame.columns if c != LINE]
    schema = model(spec, present, unique=False)
    problems = [_beyond_currency(frame, spec, origin)]
    for offset in range(0, max(frame.height, 1), _VALIDATE_ROWS):
        part = frame.slice(offset, _VALIDATE_ROWS)
        try:
            schema.validate(part.drop(LINE), lazy=True)
        except pa.errors.SchemaErrors as exc:
            problems.append(_failures_to_problems(exc.failure_cases, part, spec, origin))
    return pl.concat(problems)


def _duplicate_keys(frame: pl.DataFrame, spec: Entity, origin: str) -> pl.DataFrame:
    """Every copy of a key that appears more than once (a row without its key is reported as such).

    A hash per key, sorted, finds the few candidate rows; the exact comparison runs on those alone. A hash
    table over 50M composite keys would cost gigabytes, the sorted hashes cost 8 bytes a row."""
    keys = [k for k in spec.key if k in frame.columns]
    key_desc = "/".join(spec.key)
    hashes = pl.concat(
        [
            frame.slice(offset, _VALIDATE_ROWS).select(pl.struct(keys).hash(seed=0))[:, 0]
            for offset in range(0, max(frame.height, 1), _VALIDATE_ROWS)
        ]
    )
    ordered = hashes.sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    candidates = frame.select(LINE, *keys).filter(
        hashes.is_in(repeated.implode()) & pl.all_horizontal(pl.col(k).is_not_null() for k in keys)
    )
    copies = candidates.filter(pl.struct(keys).is_duplicated())
    return copies.select(
        pl.lit(origin).alias("origin"),
        pl.col(LINE).alias("line"),
        pl.lit(key_desc).alias("column"),
        pl.concat_str(keys, separator="/").alias("value"),
        pl.lit(f"duplicate key ({key_desc}): every copy is held back").alias("reason"),
    )


def _failures_to_problems(failures: pl.DataFrame, frame: pl.DataFrame, spec: Entity, origin: str) -> pl.DataFrame:
    rows = failures.filter(pl.col("index").is_not_null())
    if rows.height == 0:  # a schema-level failure with no row: our own coercion is wrong, not the data
        raise DataError(f"{origin}: {spec.name} could not be validated: {excerpt(failures.row(0, named=True), 200)}")
    lines = (
        frame.select(pl.col(LINE).alias("line")).with_row_index("index").with_columns(pl.col("index").cast(pl.Int32))
    )
    key_desc = "/".join(spec.key)
    return (
        rows.join(lines, on="index", how="left")
        .select(
            pl.lit(origin).alias("origin"),
            pl.col("line").cast(pl.Int64),
            pl.coalesce(pl.col("column"), pl.lit(key_desc)).alias("column"),
            pl.col("failure_case").cast(pl.String).alias("value"),
            pl.col("check").map_elements(lambda c: _reason(c, key_desc), return_dtype=pl.String).alias("reason"),
        )
        .unique()
    )


def _reason(check: str, key_desc: str) -> str:
    if check == "not_nullable":
        return "required value is missing"
    if check.startswith("isin"):
        return f"not an allowed value: {check[len('isin') :].strip('()')}"
    if check.startswith("str_matches"):
        return "not a valid email address"
    if check.startswith(("greater_than", "gt", "ge")):
        return f"out of range ({check})"
    return check


__all__ = [
    "DTYPES",
    "QUARANTINE_SCHEMA",
    "Coerced",
    "Parsed",
    "coerce",
    "coerce_batches",
    "empty_quarantine",
    "finish",
    "parse",
    "parse_frame",
]
