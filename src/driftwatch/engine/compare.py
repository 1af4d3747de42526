"""The generic comparison behind every [[compare]] table of a check file.

The truth (expected view) and the target's copy (actual view) are joined on the keys; rows on one side
only become `missing` / `extra` findings, and each declared field is compared with its kind's notion of
equality (money within a tolerance, text trimmed, postcodes without spaces...). Severity rules, impact
and `when` filters are SQL expressions over `expected`, `actual`, `diff` and the joined columns
(`expected_<col>`, `actual_<col>`). Everything stays lazy: one join per comparison, no Python loops over rows.

What is not compared, generically: a field one side's view lacks (that side holds it in no record: a
note says so); a field of a record one side changed after the other side's snapshot (`_changed`); a
record one side lacks that came into being after the other side's snapshot (`_late`). A number with no
value and a 0 agree (no lifetime value where the ERP's is 0); no value against another number is a
difference, reported as such.
"""

from __future__ import annotations

import dataclasses
import re
import string

import polars as pl

from driftwatch.engine.checkfile import CompareSpec, FieldSpec, Outcome, SeverityRule
from driftwatch.engine.context import Scope
from driftwatch.engine.findings import FINDING_COLUMNS, MONEY, as_text
from driftwatch.engine.views import CHANGED, DERIVED, LATE, VIEWS
from driftwatch.errors import UserError
from driftwatch.money import MoneyTolerance
from driftwatch.statuses import stage_classes

_IN_EXPECTED, _IN_ACTUAL = "_in_expected", "_in_actual"
_NUMERIC = ("money", "int")
_BOUNDS = tuple(f"{side}_{flag}" for side in ("expected", "actual") for flag in (LATE, CHANGED))


def run_compare(scope: Scope, spec: CompareSpec) -> pl.LazyFrame | None:
    rows = _suspects(scope, spec)
    if rows is None:
        return None
    names = rows.columns
    keys = [k for k in spec.keys if k in names]
    fields = [f for f in spec.fields if f"expected_{f.name}" in names and f"actual_{f.name}" in names]
    # A column one side does not hold is not compared (above), but the check's `when`, impact and message
    # expressions may still name it: they read it as null (an ERP that records no merges, or no prices).
    rows = rows.lazy().with_columns(pl.lit(None).alias(c) for c in sorted(_named(spec) - set(names)))
    rows = rows.with_columns(pl.lit(False).alias(c) for c in _BOUNDS if c not in names)
    rows = rows.with_columns(_key_expr(keys, names).alias("_key"), _part_expr(scope, spec, rows).alias("_part"))
    # The other side is only expected to hold a record that existed when it was captured.
    missing = pl.col(_IN_EXPECTED) & pl.col(_IN_ACTUAL).is_null() & ~pl.col(f"expected_{LATE}").fill_null(False)
    extra = pl.col(_IN_EXPECTED).is_null() & pl.col(_IN_ACTUAL) & ~pl.col(f"actual_{LATE}").fill_null(False)
    settled = ~(pl.col(f"expected_{CHANGED}").fill_null(False) | pl.col(f"actual_{CHANGED}").fill_null(False))
    both = pl.col(_IN_EXPECTED) & pl.col(_IN_ACTUAL) & settled
    parts = []
    if spec.missing:
        parts.append(_presence(scope, spec, rows.filter(missing), spec.missing, "present", "absent"))
    if spec.extra:
        parts.append(_presence(scope, spec, rows.filter(extra), spec.extra, "absent", "present"))
    currency = _currency(spec, names)
    same_currency = _same_currency(spec, names)
    for field in fields:
        differs = _field_differs(scope, spec, field, currency)
        if field.kind == "money" and same_currency is not None:
            _note_other_currency(scope, spec, rows.filter(both & differs & ~same_currency), field)
            differs = differs & same_currency
        parts.append(_field_differences(scope, spec, rows.filter(both & differs), field))
    return pl.concat(parts, how="vertical") if parts else None


def _note_unheld_fields(scope: Scope, spec: CompareSpec, expected: pl.LazyFrame, actual: pl.LazyFrame) -> None:
    """A field one side does not hold in any record is not compared: a note names the side and field (a
    view computing the field, or deriving the entity from another, has said itself what it lacked)."""
    sides = ((spec.expected, scope.source, expected), (spec.actual, scope.target, actual))
    for view_name, source, frame in sides:
        names = frame.collect_schema().names()
        for field in spec.fields:
            derived = field.name in DERIVED[view_name] or scope.ctx.snapshot(source, spec.entity) is None
            if field.name not in names and not derived:
                scope.note(source, spec.entity, "not_compared", field.name)


def _suspects(scope: Scope, spec: CompareSpec) -> pl.DataFrame | None:
    """The joined rows that may hold a finding of `spec`, or of any other comparison of the audit over the
    same two views and keys (the three order checks all join the ERP's orders to the target's): the join,
    the costliest step, runs once for all of them. Keyed by the options the views read, so two checks that
    configure a view differently never share it."""
    reading = _ReadOptions(scope.options)
    view_scope = dataclasses.replace(scope, options=reading)
    expected, actual = VIEWS[spec.expected](view_scope), VIEWS[spec.actual](view_scope)
    if expected is None or actual is None:
        return None
    _note_unheld_fields(scope, spec, expected, actual)
    together = [s for s in scope.ctx.compares if _same_join(s, spec)] if spec in scope.ctx.compares else [spec]
    options = tuple(sorted((name, repr(scope.options.get(name))) for name in reading.read))
    key = ("suspects", scope.source, scope.target, scope.feed, tuple(together), options)
    return scope.ctx.shared(key, lambda: _join_where_configured(scope, expected, actual, together), uses=len(together))


def _join_where_configured(
    scope: Scope, expected: pl.LazyFrame, actual: pl.LazyFrame, specs: list[CompareSpec]
) -> pl.DataFrame | None:
    """The join in this process, or split by a hash of its key into parts run on the audit's executor
    (a comparison of groups is split by its group, so each group stays whole)."""
    keys = [k for k in specs[0].keys if k in expected.collect_schema().names()]
    if scope.ctx.partitioned is None or not keys:
        return _join_suspects(expected, actual, specs)
    by = [specs[0].group] if specs[0].group in keys else keys
    return scope.ctx.partitioned.join(_join_suspects, expected, actual, by, specs)


def _same_join(a: CompareSpec, b: CompareSpec) -> bool:
    return (a.expected, a.actual, a.keys, a.group) == (b.expected, b.actual, b.keys, b.group)


class _ReadOptions(dict):
    """A check's options that remember which of them a view asked for."""

    def __init__(self, options: dict) -> None:
        super().__init__(options)
        self.read: set[str] = set()

    def __contains__(self, name: object) -> bool:
        self.read.add(str(name))
        return super().__contains__(name)

    def __getitem__(self, name: str):
        self.read.add(name)
        return super().__getitem__(name)

    def get(self, name: str, default=None):
        self.read.add(name)
        return super().get(name, default)


def _join_suspects(expected: pl.LazyFrame, actual: pl.LazyFrame, specs: list[CompareSpec]) -> pl.DataFrame | None:
    keys = [k for k in specs[0].keys if k in expected.collect_schema().names()]
    fields = list(dict.fromkeys(f.name for spec in specs for f in spec.fields))
    if specs[0].group is not None:
        expected, actual = _differing_groups(expected, actual, specs[0].group, keys, fields)
    joined = _join(expected, actual, keys)
    names = joined.collect_schema().names()
    fields = [f for f in fields if f"expected_{f}" in names and f"actual_{f}" in names]
    named = set().union(*(_named(spec) for spec in specs))
    joined = joined.select(_read_columns(specs, keys, fields, named, names))
    missing = pl.col(_IN_EXPECTED) & pl.col(_IN_ACTUAL).is_null()
    extra = pl.col(_IN_EXPECTED).is_null() & pl.col(_IN_ACTUAL)
    both = pl.col(_IN_EXPECTED) & pl.col(_IN_ACTUAL)
    # Normalising a value can only make two values equal, never unequal: raw inequality is a cheap first
    # pass over the whole join, and the exact comparison then runs on the few rows it keeps.
    suspects = [both & pl.col(f"expected_{f}").ne_missing(pl.col(f"actual_{f}")) for f in fields]
    suspects += [missing] if any(spec.missing for spec in specs) else []
    suspects += [extra] if any(spec.extra for spec in specs) else []
    if not suspects:
        return None
    # Rechunked: polars 2.1's string kernels can panic on the many-chunk columns a filtered join leaves.
    return joined.filter(pl.any_horizontal(suspects)).collect().rechunk()


def _named(spec: CompareSpec) -> set[str]:
    """The joined columns a check's expressions and messages name."""
    return set(re.findall(r"\b(?:expected|actual)_\w+", repr(spec)))


def _differing_groups(
    expected: pl.LazyFrame, actual: pl.LazyFrame, group: str, keys: list[str], fields: list[str]
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Both sides restricted to the groups (e.g. orders, for their lines) whose digests differ.

    A digest is the wrapping sum of a hash per row over the keys and the compared fields: equal rows give
    equal digests, so a group with the same digest on both sides cannot hold a finding. Aggregating per
    group streams in little memory; only the few differing groups meet in the row-by-row join.
    """
    names = set(expected.collect_schema().names()) & set(actual.collect_schema().names())
    cols = [c for c in keys if c != group] + [f for f in fields if f in names]

    def digest(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.group_by(group).agg(pl.struct(cols).hash(seed=0).sum().alias("_digest"), pl.len().alias("_rows"))

    both = digest(expected).join(digest(actual), on=group, how="full", coalesce=True, suffix="_actual")
    differs = pl.col("_digest").ne_missing(pl.col("_digest_actual")) | pl.col("_rows").ne_missing(
        pl.col("_rows_actual")
    )
    groups = both.filter(differs).select(group).collect().lazy()
    return expected.join(groups, on=group, how="semi"), actual.join(groups, on=group, how="semi")


def _read_columns(
    specs: list[CompareSpec], keys: list[str], fields: list[str], named: set[str], names: list[str]
) -> list[str]:
    """The joined columns the findings read: the keys, the compared fields, the record's own key, the
    currency and whatever the checks' expressions and messages name. The join carries no others, so a
    check comparing two columns of a wide view does not drag the rest through it."""
    sides = ("expected", "actual")
    wanted = {*keys, _IN_EXPECTED, _IN_ACTUAL, *named, *_BOUNDS, *(f"{side}_key" for side in sides)}
    wanted |= {f"{side}_{f}" for f in fields for side in sides}
    wanted |= {f"{side}_{spec.currency}" for spec in specs if spec.currency for side in sides}
    return [c for c in names if c in wanted]


def _join(expected: pl.LazyFrame, actual: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    def side(frame: pl.LazyFrame, prefix: str, flag: str) -> pl.LazyFrame:
        cols = frame.collect_schema().names()
        return frame.rename({c: f"{prefix}_{c}" for c in cols if c not in keys}).with_columns(pl.lit(True).alias(flag))

    return side(expected, "expected", _IN_EXPECTED).join(
        side(actual, "actual", _IN_ACTUAL), on=keys, how="full", coalesce=True
    )


def _key_expr(keys: list[str], names: list[str]) -> pl.Expr:
    """The truth's own identity of the record where it has one (e.g. the ERP order number)."""
    sides = [f"{s}_key" for s in ("expected", "actual") if f"{s}_key" in names]
    if sides:
        return pl.coalesce(sides)
    return pl.concat_str([pl.col(k).cast(pl.String) for k in keys], separator="/", ignore_nulls=True)


def _part_expr(scope: Scope, spec: CompareSpec, rows: pl.LazyFrame) -> pl.Expr:
    """Which part of the record differs (e.g. `lines[2]`), prefixed to the field name."""
    return pl.lit(None, pl.String) if spec.part is None else _message(scope, rows, spec.part)


def _presence(
    scope: Scope, spec: CompareSpec, rows: pl.LazyFrame, outcome: Outcome, expected: str, actual: str
) -> pl.LazyFrame:
    if outcome.when:
        rows = rows.filter(_sql(scope, outcome.when))
    rows = rows.with_columns(
        (_sql(scope, outcome.expected) if outcome.expected else pl.lit(expected)).alias("expected"),
        (_sql(scope, outcome.actual) if outcome.actual else pl.lit(actual)).alias("actual"),
    )
    return _finish(
        scope,
        spec,
        rows,
        field=_field_name(outcome.field) if outcome.field else pl.col("_part").fill_null(""),
        severity=_severity(scope, outcome.rules, outcome.severity),
        message=_rule_messages(scope, rows, outcome.rules, outcome.message),
        impact=_impact(scope, outcome.impact),
        repair=outcome.repair,
    )


def _field_differs(scope: Scope, spec: CompareSpec, field: FieldSpec, currency: pl.Expr) -> pl.Expr:
    exp, act = pl.col(f"expected_{field.name}"), pl.col(f"actual_{field.name}")
    if field.kind == "status":
        # A status with no mapping is null here: unmapped_codes reports it, once per code.
        groups = _status_groups(scope, spec.entity)
        return exp.is_not_null() & act.is_not_null() & (exp.replace(groups) != act.replace(groups))
    if field.kind == "money":
        limit = money_limit(_option_or_value(scope, field.tolerance), currency)
        return _absent(exp, act) | ((act - exp).abs() > limit).fill_null(False)
    return _differs(field.kind, exp, act, _tolerance(scope, field))


def money_limit(tolerance: object, currency: pl.Expr) -> pl.Expr:
    """Per row, the money tolerance of the row's currency: a check's `money_tolerance` option is one amount
    for every currency or a table per currency, and a currency it does not name gets one minor unit."""
    return MoneyTolerance.parse({} if tolerance is None else tolerance).limit(currency, MONEY)


def _currency(spec: CompareSpec, names: list[str]) -> pl.Expr:
    """The currency of a joined row: the check's currency column, from whichever side has it."""
    sides = [f"{side}_{spec.currency}" for side in ("expected", "actual") if f"{side}_{spec.currency}" in names]
    return pl.coalesce(sides) if spec.currency and sides else pl.lit(None, pl.String)


def _same_currency(spec: CompareSpec, names: list[str]) -> pl.Expr | None:
    """Whether a joined row's amounts are in one currency: both sides name the same one, or a side names
    none (then the amounts are taken to be in the other's). A target's own price list in another currency
    (a GBP marketplace beside an EUR ERP) is not the ERP's price, higher or lower. None where the two
    sides' currencies are not both known to the comparison."""
    if not spec.currency:
        return None
    sides = [f"{side}_{spec.currency}" for side in ("expected", "actual")]
    if not all(side in names for side in sides):
        return None
    exp, act = (pl.col(side).cast(pl.String).str.strip_chars().str.to_uppercase() for side in sides)
    return (exp.is_null() | act.is_null() | (exp == act)).fill_null(True)


def _note_other_currency(scope: Scope, spec: CompareSpec, rows: pl.LazyFrame, field: FieldSpec) -> None:
    """One note per target naming the currencies met, where amounts were left out for being in another."""
    pairs = (
        rows.select(
            pl.col(f"actual_{spec.currency}").cast(pl.String).str.to_uppercase().alias("theirs"),
            pl.col(f"expected_{spec.currency}").cast(pl.String).str.to_uppercase().alias("ours"),
        )
        .unique()
        .sort("theirs", "ours")
        .collect()
    )
    if pairs.height:
        met = ", ".join(f"{theirs} against the ERP's {ours}" for theirs, ours in pairs.iter_rows())
        scope.note(scope.target, spec.entity, "other_currency", field.name, met)


def _field_differences(scope: Scope, spec: CompareSpec, rows: pl.LazyFrame, field: FieldSpec) -> pl.LazyFrame:
    exp, act = pl.col(f"expected_{field.name}"), pl.col(f"actual_{field.name}")
    diff = (act - exp) if field.kind in _NUMERIC else pl.lit(None)
    rows = rows.with_columns(exp.alias("expected"), act.alias("actual"), diff.alias("diff"))
    if field.when:
        rows = rows.filter(_sql(scope, field.when))
    return _finish(
        scope,
        spec,
        rows,
        field=_field_name(field.name),
        severity=_severity(scope, field.rules, field.severity),
        message=_rule_messages(scope, rows, field.rules, field.message),
        impact=_impact(scope, field.impact),
        repair=field.repair,
    )


def _field_name(name: str) -> pl.Expr:
    """The field, prefixed with the part of the record it belongs to (`lines[2].qty`)."""
    literal = pl.lit(name)
    return pl.when(pl.col("_part").is_null()).then(literal).otherwise(pl.format("{}.{}", "_part", literal))


def _absent(exp: pl.Expr, act: pl.Expr) -> pl.Expr:
    """A number one side has no value for: no value and 0 agree (nothing to hold); no value against any
    other number is a difference."""
    return ((exp.is_null() & (act != 0)) | (act.is_null() & (exp != 0))).fill_null(False)


def _differs(kind: str, exp: pl.Expr, act: pl.Expr, tolerance: float | None) -> pl.Expr:
    if kind == "int":
        return _absent(exp, act) | ((act - exp).abs() > pl.lit(tolerance or 0)).fill_null(False)
    if kind == "timestamp":
        if tolerance:
            gap = (act - exp).abs() > pl.duration(seconds=tolerance)
            return (exp.is_null() != act.is_null()) | gap.fill_null(False)
        exp, act = exp.dt.truncate("1s"), act.dt.truncate("1s")
    elif kind != "bool":
        exp, act = _canonical_text(kind, exp), _canonical_text(kind, act)
    return exp.ne_missing(act)


def _canonical_text(kind: str, value: pl.Expr) -> pl.Expr:
    """Text as the comparison sees it: representation (spacing, case where it carries no meaning) removed."""
    value = value.cast(pl.String).str.strip_chars()
    if kind == "text_ci":
        value = value.str.replace_all(r"\s+", " ").str.to_lowercase()
    elif kind == "postcode":
        value = value.str.replace_all(r"\s+", "").str.to_uppercase()
    elif kind == "text":
        value = value.str.replace_all(r"\s+", " ")
    return pl.when(value == "").then(None).otherwise(value)


def _tolerance(scope: Scope, field: FieldSpec) -> float | None:
    value = _option_or_value(scope, field.tolerance)
    return None if value is None else float(value)


def _option_or_value(scope: Scope, tolerance: str | float | None) -> object:
    """A field's tolerance: the option it names, or the number the check file gives."""
    return scope.option(tolerance) if isinstance(tolerance, str) else tolerance


def _status_groups(scope: Scope, entity: str) -> dict[str, str]:
    """Canonical statuses that count as equal: those the check leaves to other checks (`same_status`) and,
    for orders, the stages either side's platform cannot tell apart (Klaviyo's events have no `closed`)."""
    groups = list(scope.options.get("same_status", []))
    if entity == "orders":
        groups += [g for side in (scope.source, scope.target) if side for g in scope.cfg.same_stages(side)]
    return stage_classes(groups)


def _sql(scope: Scope, expression: str) -> pl.Expr:
    """A SQL expression; `{name}` stands for the check's option `name` (so a target can override it)."""
    try:
        return pl.sql_expr(_with_options(scope, expression))
    except UserError:
        raise
    except Exception as exc:  # polars raises several error types for bad SQL
        raise UserError(f"{scope.check.path}: SQL expression {expression!r}: {exc}") from None


def _with_options(scope: Scope, expression: str) -> str:
    names = [name for _, name, _, _ in string.Formatter().parse(expression) if name is not None]
    values = {}
    for name in names:
        if name not in scope.options:
            raise UserError(f"{scope.check.path}: SQL expression {expression!r}: no option {name!r}")
        values[name] = _sql_literal(scope.options[name])
    return expression.format(**values)


def _sql_literal(value: object) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_sql_literal(v) for v in value) + ")"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _severity(scope: Scope, rules: tuple[SeverityRule, ...], default: str) -> pl.Expr:
    expr = pl.lit(default)
    for rule in reversed(rules):
        expr = pl.when(_sql(scope, rule.when)).then(pl.lit(rule.severity)).otherwise(expr)
    return expr


def _rule_messages(scope: Scope, rows: pl.LazyFrame, rules: tuple[SeverityRule, ...], default: str) -> pl.Expr:
    expr = _message(scope, rows, default)
    for rule in reversed(rules):
        if rule.message:
            expr = pl.when(_sql(scope, rule.when)).then(_message(scope, rows, rule.message)).otherwise(expr)
    return expr


def _message(scope: Scope, rows: pl.LazyFrame, template: str) -> pl.Expr:
    """A message template ("{actual} on {target}, {expected} in the ERP") as a polars expression."""
    schema = rows.collect_schema()
    literals = {"target": scope.target or "", "source": scope.source or ""}
    pieces: list[pl.Expr] = []
    for text, name, _spec, _conv in string.Formatter().parse(template):
        if text:
            pieces.append(pl.lit(text))
        if name is None:
            continue
        if name in literals:
            pieces.append(pl.lit(literals[name]))
        elif name in ("key", "part") and f"_{name}" in schema:
            pieces.append(pl.col(f"_{name}"))
        elif name in schema:
            pieces.append(as_text(pl.col(name), schema[name]).fill_null("none"))
        else:
            raise UserError(f"{scope.check.path}: message {template!r}: unknown placeholder {{{name}}}")
    return pl.concat_str(pieces)


def _impact(scope: Scope, expression: str | None) -> pl.Expr:
    if expression is None:
        return pl.lit(None, MONEY)
    return _sql(scope, expression).cast(MONEY)


def _finish(
    scope: Scope,
    spec: CompareSpec,
    rows: pl.LazyFrame,
    *,
    field: pl.Expr,
    severity: pl.Expr,
    message: pl.Expr,
    impact: pl.Expr,
    repair: str | None,
) -> pl.LazyFrame:
    schema = rows.collect_schema()
    sides = [f"{side}_{spec.currency}" for side in ("expected", "actual") if f"{side}_{spec.currency}" in schema]
    currency = pl.coalesce(sides) if spec.currency and sides else pl.lit(None, pl.String)
    return rows.select(
        pl.lit(scope.check.id).alias("check_id"),
        severity.alias("severity"),
        pl.lit(scope.source).alias("source"),
        pl.lit(scope.target).alias("target"),
        pl.lit(spec.entity).alias("entity"),
        pl.col("_key").alias("key"),
        field.alias("field"),
        as_text(pl.col("expected"), schema["expected"]).alias("expected"),
        as_text(pl.col("actual"), schema["actual"]).alias("actual"),
        impact.alias("impact"),
        currency.cast(pl.String).alias("currency"),
        message.alias("message"),
        pl.lit(repair, pl.String).alias("repair_action"),
    ).select(FINDING_COLUMNS)
