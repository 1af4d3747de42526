"""Check files: one TOML file per check, read and validated before anything runs.

A check either compares an expected frame (the truth, from a named view) with an actual frame (the
target's copy) field by field, or names a rule function for what is not a plain comparison. Every
problem is reported as `FILE: KEY: problem`.

    id = "catalogue_parity"            # unique, lower_snake_case
    title = "Catalogue matches the ERP"
    owner = "ecommerce"                # the team that owns this kind of drift
    reads = ["products"]               # entities the check reads
    applies_to = ["products"]          # run once per feed carrying any of these ("source": per system of
                                       # record, "run": once)
    rule = "stock_staleness"           # a rule function (engine/rules.py), or [[compare]] tables:

    [[compare]]
    entity = "products"
    expected = "erp_products"          # views (engine/views.py)
    actual = "target_products"
    keys = ["sku"]                     # join keys (those the expected view has)
    part = "lines[{line_no}]"          # optional: names the part of a record, prefixed to the field
    group = "order_ref"                # optional: first compare per-group digests (e.g. lines per order)
    missing = { severity = "medium", repair = "create_offer", when = "expected_status = 'active'",
                message = "..." }      # rows of the truth the target lacks
    extra = { severity = "low", repair = "deactivate_offer", message = "...",
              rules = [...],           # as a field's rules, over expected_<col> / actual_<col>
              field = "available", expected = "0", actual = "actual_available" }
                                       # optional: the values shown (and pushed) instead of absent/present

    [[compare.fields]]
    name = "price"
    kind = "money"                     # money | int | text | text_ci | postcode | bool | timestamp | code
    tolerance = "money_tolerance"      # an option name or a number
    severity = "high"
    rules = [{ when = "actual > expected", severity = "critical" }]   # first match wins
    impact = "abs(diff)"               # SQL over expected, actual, diff and the frame's columns
    repair = "update_price"
    message = "price {actual} on {target}, {expected} in the ERP"

    [options]                          # defaults; driftwatch.toml [checks.ID] overrides them
    money_tolerance = {}               # money: one amount, or amounts per currency (default: one minor unit)
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.severity import SEVERITIES

# The built-in catalogue ships inside the package, so an installed wheel has it too.
BUILTIN_CHECKS_DIR: Traversable = files("driftwatch") / "checks"
FIELD_KINDS = ("money", "int", "text", "text_ci", "postcode", "bool", "timestamp", "code", "status")
SCOPES = ("feed", "source", "run")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class SeverityRule:
    when: str
    severity: str
    message: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What to report for rows present on one side only."""

    severity: str
    repair: str | None
    message: str
    when: str | None = None
    impact: str | None = None
    rules: tuple[SeverityRule, ...] = ()
    # What the finding shows for a record one side lacks: by default the words present/absent; a check
    # that can say what the truth holds instead (a quantity) names the field and the SQL for each side,
    # and a repair then pushes that value.
    field: str | None = None
    expected: str | None = None
    actual: str | None = None


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    severity: str
    message: str
    tolerance: str | float | None = None
    when: str | None = None
    rules: tuple[SeverityRule, ...] = ()
    impact: str | None = None
    repair: str | None = None


@dataclass(frozen=True)
class CompareSpec:
    entity: str
    expected: str
    actual: str
    keys: tuple[str, ...]
    fields: tuple[FieldSpec, ...] = ()
    missing: Outcome | None = None
    extra: Outcome | None = None
    currency: str | None = None  # a column of either view: the findings' currency
    part: str | None = None  # template naming the part of a record, e.g. "lines[{line_no}]"
    group: str | None = None  # a key column: compare row by row only in groups whose digests differ


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    owner: str
    path: Path
    reads: tuple[str, ...]
    applies_to: tuple[str, ...] | str
    description: str = ""
    rule: str | None = None
    compares: tuple[CompareSpec, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return self.applies_to if isinstance(self.applies_to, str) else "feed"


class _Reader:
    """Reads values from one check file, naming the file and key in every complaint."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> UserError:
        return UserError(f"{self.path}: {key}: {problem}")

    def get(self, table: dict, key: str, where: str, kind: type | tuple, default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}{key}", "required key is missing")
            return default
        value = table[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(f"{where}{key}", f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def choice(self, table: dict, key: str, where: str, choices: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(table, key, where, str, default)
        if value is not None and value not in choices:
            raise self.fail(f"{where}{key}", f"{value!r} is not one of {', '.join(choices)}")
        return value

    def unknown_keys(self, table: dict, allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{where}{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _kind_name(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", int: "a number", float: "a number", list: "a list", dict: "a table", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def load_check(path: Path | Traversable, views: set[str], rules: set[str]) -> CheckSpec:
    """Read one check file; `views` and `rules` are the names a file may refer to."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read check file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    r = _Reader(path)
    r.unknown_keys(
        raw, {"id", "title", "owner", "description", "reads", "applies_to", "rule", "compare", "options"}, ""
    )
    check_id = r.get(raw, "id", "", str)
    if not _ID.match(check_id):
        raise r.fail("id", f"{check_id!r} must be lower_snake_case")
    reads = tuple(_entities(r, raw, "reads"))
    applies_to = raw.get("applies_to", "feed")
    if isinstance(applies_to, str):
        applies_to = r.choice(raw, "applies_to", "", SCOPES)
    else:
        applies_to = tuple(_entities(r, raw, "applies_to"))
    rule = r.get(raw, "rule", "", str, None)
    if rule is not None and rule not in rules:
        raise r.fail("rule", f"unknown rule {rule!r}; known rules: {', '.join(sorted(rules))}")
    compares = tuple(
        _compare(r, table, f"compare[{i}].", views) for i, table in enumerate(r.get(raw, "compare", "", list, []))
    )
    if (rule is None) == (not compares):
        raise r.fail("rule", "a check has either a rule or [[compare]] tables (exactly one of them)")
    options = r.get(raw, "options", "", dict, {})
    _check_option_names(r, compares, options)
    return CheckSpec(
        id=check_id,
        title=r.get(raw, "title", "", str),
        owner=r.get(raw, "owner", "", str),
        path=path,
        reads=reads,
        applies_to=applies_to,
        description=r.get(raw, "description", "", str, "").strip(),
        rule=rule,
        compares=compares,
        options=options,
    )


def _check_option_names(r: _Reader, compares: tuple[CompareSpec, ...], options: dict[str, Any]) -> None:
    """Every {name} in a SQL expression and every named tolerance is an option the file declares."""
    for i, spec in enumerate(compares):
        where = f"compare[{i}]."
        sql = [(f"{where}{side}.when", o.when) for side, o in (("missing", spec.missing), ("extra", spec.extra)) if o]
        for j, f in enumerate(spec.fields):
            at = f"{where}fields[{j}]."
            sql += [(f"{at}when", f.when), (f"{at}impact", f.impact)]
            sql += [(f"{at}rules[{k}].when", rule.when) for k, rule in enumerate(f.rules)]
            if isinstance(f.tolerance, str) and f.tolerance not in options:
                raise r.fail(f"{at}tolerance", f"no option {f.tolerance!r} in [options]")
        for key, text in sql:
            for _, name, _, _ in string.Formatter().parse(text or ""):
                if name is not None and name not in options:
                    raise r.fail(key, f"{{{name}}} names no option in [options]")


def _entities(r: _Reader, raw: dict, key: str) -> list[str]:
    names = r.get(raw, key, "", list)
    for name in names:
        if name not in ENTITIES:
            raise r.fail(key, f"unknown entity {name!r}; expected some of {', '.join(ENTITIES)}")
    return names


def _compare(r: _Reader, table: dict, where: str, views: set[str]) -> CompareSpec:
    if not isinstance(table, dict):
        raise r.fail(where.rstrip("."), "expected a table")
    r.unknown_keys(
        table,
        {"entity", "expected", "actual", "keys", "fields", "missing", "extra", "currency", "part", "group"},
        where,
    )
    entity = r.choice(table, "entity", where, tuple(ENTITIES))
    for side in ("expected", "actual"):
        if r.get(table, side, where, str) not in views:
            raise r.fail(f"{where}{side}", f"unknown view {table[side]!r}; known views: {', '.join(sorted(views))}")
    keys = r.get(table, "keys", where, list)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise r.fail(f"{where}keys", "expected a non-empty list of column names")
    fields = tuple(
        _field(r, item, f"{where}fields[{i}].") for i, item in enumerate(r.get(table, "fields", where, list, []))
    )
    return CompareSpec(
        entity=entity,
        expected=table["expected"],
        actual=table["actual"],
        keys=tuple(keys),
        fields=fields,
        missing=_outcome(r, table, "missing", where),
        extra=_outcome(r, table, "extra", where),
        currency=r.get(table, "currency", where, str, None),
        part=r.get(table, "part", where, str, None),
        group=_group(r, table, where, keys),
    )


def _group(r: _Reader, table: dict, where: str, keys: list[str]) -> str | None:
    group = r.get(table, "group", where, str, None)
    if group is not None and group not in keys:
        raise r.fail(f"{where}group", f"{group!r} must be one of the keys ({', '.join(keys)})")
    return group


def _outcome(r: _Reader, table: dict, key: str, where: str) -> Outcome | None:
    item = r.get(table, key, where, dict, None)
    if item is None:
        return None
    where = f"{where}{key}."
    r.unknown_keys(
        item, {"severity", "repair", "message", "when", "impact", "rules", "field", "expected", "actual"}, where
    )
    return Outcome(
        severity=r.choice(item, "severity", where, SEVERITIES),
        repair=r.get(item, "repair", where, str, None),
        message=r.get(item, "message", where, str),
        when=r.get(item, "when", where, str, None),
        impact=r.get(item, "impact", where, str, None),
        rules=_rules(r, item, where),
        field=r.get(item, "field", where, str, None),
        expected=r.get(item, "expected", where, str, None),
        actual=r.get(item, "actual", where, str, None),
    )


def _field(r: _Reader, item: dict, where: str) -> FieldSpec:
    if not isinstance(item, dict):
        raise r.fail(where.rstrip("."), "expected a table")
    r.unknown_keys(
        item, {"name", "kind", "tolerance", "when", "severity", "rules", "impact", "repair", "message"}, where
    )
    return FieldSpec(
        name=r.get(item, "name", where, str),
        kind=r.choice(item, "kind", where, FIELD_KINDS),
        severity=r.choice(item, "severity", where, SEVERITIES),
        message=r.get(item, "message", where, str),
        tolerance=r.get(item, "tolerance", where, (str, int, float), None),
        when=r.get(item, "when", where, str, None),
        rules=_rules(r, item, where),
        impact=r.get(item, "impact", where, str, None),
        repair=r.get(item, "repair", where, str, None),
    )


def _rules(r: _Reader, item: dict, where: str) -> tuple[SeverityRule, ...]:
    rules = []
    for i, rule in enumerate(r.get(item, "rules", where, list, [])):
        rule_where = f"{where}rules[{i}]."
        if not isinstance(rule, dict):
            raise r.fail(rule_where.rstrip("."), "expected { when = ..., severity = ... }")
        r.unknown_keys(rule, {"when", "severity", "message"}, rule_where)
        rules.append(
            SeverityRule(
                r.get(rule, "when", rule_where, str),
                r.choice(rule, "severity", rule_where, SEVERITIES),
                r.get(rule, "message", rule_where, str, None),
            )
        )
    return tuple(rules)


def load_checks(dirs: list[Path | Traversable], views: set[str], rules: set[str]) -> dict[str, CheckSpec]:
    """Every check file in `dirs` (the built-in directory first); a duplicate id is an error."""
    checks: dict[str, CheckSpec] = {}
    for directory in dirs:
        if not directory.is_dir():
            raise UserError(f"{directory}: checks directory not found")
        for path in check_files(directory):
            spec = load_check(path, views, rules)
            if spec.id in checks:
                raise UserError(f"{path}: id: {spec.id!r} is already defined in {checks[spec.id].path}")
            checks[spec.id] = spec
    return checks


def check_files(directory: Path | Traversable) -> list[Path | Traversable]:
    """The check files of a directory, by name."""
    return sorted((p for p in directory.iterdir() if p.name.endswith(".toml") and p.is_file()), key=lambda p: p.name)
