"""Sync objectives per integration: how fast a target must show the ERP's changes.

```toml
[slo.klaviyo]
inventory = "6h"                       # p95 of the lag under 6 hours
customers = { p95 = "4h", p50 = "1h" }  # either or both percentiles

[slo.mirakl]
inventory = { p95 = "90m" }
```
A table per target (a source some feed sends to), one entry per entity whose lag is measured
(`latency.TRACKED`: inventory, customers, products, orders; `orders` is the order status, also for a feed
of events). Durations are a number and a unit: `s`, `m`, `h` or `d`. An objective is breached when
the run's measured percentile is over it, or when a change still waiting to appear is already older than
its p95 objective (a job that stopped shows no lag at all, only changes that never arrive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from driftwatch.config import Config
from driftwatch.errors import UserError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PERCENTILES = ("p50", "p95")


@dataclass(frozen=True)
class Objective:
    target: str
    entity: str
    p50_seconds: float | None = None
    p95_seconds: float | None = None


def slo_settings(cfg: Config) -> dict[tuple[str, str], Objective]:
    """The objectives of `[slo]`, by (target, entity); every key is checked and unknown ones refused."""
    from driftwatch.latency.record import measured_entities  # named where they are measured

    section = cfg.section("slo")
    if not isinstance(section, dict):
        raise UserError('[slo]: expected a table of targets, e.g. [slo.klaviyo] inventory = "6h"')
    targets = sorted({feed.target for feed in cfg.feeds})
    objectives = {}
    for target, table in section.items():
        where = f"[slo.{target}]"
        if target not in targets:
            raise UserError(f"{where}: {target!r} is not a target of any feed; expected one of {', '.join(targets)}")
        if not isinstance(table, dict):
            raise UserError(f'{where}: expected a table of entities, e.g. inventory = "6h"')
        measured = measured_entities(entity for feed in cfg.feeds if feed.target == target for entity in feed.entities)
        for entity, value in table.items():
            if entity not in measured:
                raise UserError(
                    f"{where} {entity}: no measured sync of that name to {target}; "
                    f"expected one of {', '.join(measured) or 'none (no measured entity feeds it)'}"
                )
            objectives[(target, entity)] = _objective(target, entity, value, f"{where} {entity}")
    return objectives


def _objective(target: str, entity: str, value: object, where: str) -> Objective:
    if isinstance(value, str):
        return Objective(target, entity, p95_seconds=_seconds(value, where))
    if not isinstance(value, dict) or not value:
        raise UserError(f'{where}: expected a duration such as "6h" or a table such as {{ p95 = "6h" }}')
    unknown = sorted(set(value) - set(_PERCENTILES))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; expected {', '.join(_PERCENTILES)}")
    return Objective(
        target,
        entity,
        p50_seconds=_seconds(value["p50"], f"{where} p50") if "p50" in value else None,
        p95_seconds=_seconds(value["p95"], f"{where} p95") if "p95" in value else None,
    )


def _seconds(value: object, where: str) -> float:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise UserError(f'{where}: {value!r} is not a duration; write a number and a unit (s, m, h, d), e.g. "6h"')
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float | None) -> str:
    """6 h, 45 min, 1.5 d: one unit, at most one decimal."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        hours = seconds / 3600
        return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.1f} d".replace(".0 d", " d")
