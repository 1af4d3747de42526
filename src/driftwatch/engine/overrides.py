"""driftwatch.toml's `[checks.<id>]` tables, held against the options each check file declares.

A check's options are its file's `[options]`; the configuration may override them for the check and per
target (`[checks.<id>.targets.<source>]`). A name the check does not declare, a target that is not a
source, or a value of the wrong shape is refused here, when the configuration is read, rather than
silently ignored by an audit that then runs with the default.
"""

from __future__ import annotations

from typing import Any

from driftwatch.config import Config, unknown_key
from driftwatch.engine.checkfile import CheckSpec
from driftwatch.errors import UserError
from driftwatch.money import MoneyTolerance

TARGETS = "targets"
# Options checks no longer take, and where what they set lives now.
MOVED = {
    ("tracking_sync", "carrier_map"): "a target's carrier codes are `carrier_map` in its [sources.<target>] table",
    ("returns_sync", "processed_statuses"): "it takes canonical return states as `processed_states`; "
    "the source's own words go in [statuses.<source>.returns]",
    ("ltv_after_refunds", "refunded_statuses"): "a refund is a return whose canonical state is `refunded`; "
    "the source's own words go in [statuses.<source>.returns]",
    ("fulfilment_events", "refunded_statuses"): "a refund is a return whose canonical state is `refunded`; "
    "the source's own words go in [statuses.<source>.returns]",
}


def validate_check_settings(cfg: Config) -> None:
    """Every `[checks.*]` key names a check, an option of it, or a known target; every value fits."""
    from driftwatch.engine.runner import load_catalogue  # the catalogue reads the views and rules

    catalogue = load_catalogue(cfg)
    problems: list[str] = []
    for check_id, table in cfg.section("checks").items():
        where = f"checks.{check_id}"
        if check_id not in catalogue:
            problems.append(f"{where}: {unknown_key(check_id, catalogue, 'check')}")
        elif not isinstance(table, dict):
            problems.append(f"{where}: expected a table of options: [checks.{check_id}]")
        else:
            problems += _check_table(catalogue[check_id], table, where, cfg.known_sources())
    if problems:
        raise UserError("\n".join(problems))


def _check_table(check: CheckSpec, table: dict[str, Any], where: str, sources: tuple[str, ...]) -> list[str]:
    problems = []
    for name, value in table.items():
        if name != TARGETS:
            problems += _option(check, name, value, f"{where}.{name}", allow_targets=True)
        elif not isinstance(value, dict):
            problems.append(f"{where}.{TARGETS}: expected tables per target: [{where}.{TARGETS}.<source>]")
        else:
            for target, overrides in value.items():
                at = f"{where}.{TARGETS}.{target}"
                if target not in sources:
                    problems.append(f"{at}: {unknown_key(target, sources, 'target')}")
                elif not isinstance(overrides, dict):
                    problems.append(f"{at}: expected a table of options")
                else:
                    problems += [p for n, v in overrides.items() for p in _option(check, n, v, f"{at}.{n}")]
    return problems


def _option(check: CheckSpec, name: str, value: Any, key: str, *, allow_targets: bool = False) -> list[str]:
    if (check.id, name) in MOVED:
        return [f"{key}: no longer an option of {check.id}: {MOVED[check.id, name]}"]
    if name not in check.options:
        allowed = [*check.options, *([TARGETS] if allow_targets else [])]
        return [f"{key}: {unknown_key(name, allowed, f'option of {check.id}')}"]
    if name.endswith("money_tolerance"):
        try:
            MoneyTolerance.parse(value)
        except ValueError as exc:
            return [f"{key}: {exc}"]
        return []
    expected = _shape(check.options[name])
    return [] if _shape(value) == expected else [f"{key}: expected {expected}, got {value!r}"]


def _shape(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a table"
