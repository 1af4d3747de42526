"""driftwatch.toml: sources, column maps, status mappings, feeds, check options.

Every problem is reported as `FILE: KEY: problem`, so a user can go straight to the line. Secrets are
never values in this file, only the names of environment variables that hold them (keys ending in `_env`).
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftwatch.entities import CANONICAL_STATUSES, ENTITIES, SOURCES, SYSTEMS_OF_RECORD
from driftwatch.errors import UserError
from driftwatch.statuses import merged_map

DEFAULT_CONFIG_NAME = "driftwatch.toml"
SEVERITIES = ("critical", "high", "medium", "low")
_TOP_LEVEL = (
    "store",
    "audit",
    "sources",
    "statuses",
    "feeds",
    "checks",
    "report",
    "alerts",
    "repair",
    "payouts",
)
# Setting names that hold a credential. A name such as `project_key` or `listing_field` is not one.
_SECRET_NAME = re.compile(r"(^key$|api_?key|secret|password|passphrase|token|private_key|access_key)", re.IGNORECASE)
TARGETS = tuple(s for s in SOURCES if s not in SYSTEMS_OF_RECORD)


@dataclass(frozen=True)
class Feed:
    """A system of record feeds a target with some entities (orders only of some channels, stock only
    from some locations)."""

    source: str
    target: str
    entities: tuple[str, ...]
    channels: tuple[str, ...] | None = None
    locations: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AuditSettings:
    fail_on: str = "high"
    marketplaces: tuple[str, ...] = ("mirakl",)


@dataclass
class Config:
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    store_path: Path = Path("driftwatch.duckdb")
    audit: AuditSettings = field(default_factory=AuditSettings)
    feeds: list[Feed] = field(default_factory=list)
    checks_dirs: list[Path] = field(default_factory=list)

    def source(self, name: str) -> dict[str, Any]:
        """The [sources.NAME] table (connector settings, column maps, timezone), empty when absent."""
        return self.raw.get("sources", {}).get(name, {})

    def status_map(self, source: str) -> dict[str, str]:
        return merged_map(source, self.raw.get("statuses", {}).get(source))

    def check_options(self, check_id: str, target: str | None = None) -> dict[str, Any]:
        """User overrides for a check: check-level values, then the target's own."""
        table = dict(self.raw.get("checks", {}).get(check_id, {}))
        per_target = table.pop("targets", {})
        if target is not None:
            table.update(per_target.get(target, {}))
        return table

    def feeds_to(self, target: str) -> list[Feed]:
        return [f for f in self.feeds if f.target == target]

    def section(self, name: str) -> dict[str, Any]:
        return self.raw.get(name, {})


def default_feeds() -> list[Feed]:
    """Without configuration the ERP feeds every target everything both sides hold."""
    everything = tuple(ENTITIES)
    return [Feed("bluecherry", target, everything) for target in TARGETS]


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file. With no path, ./driftwatch.toml if present, else the defaults."""
    if path is None:
        candidate = Path(DEFAULT_CONFIG_NAME)
        if not candidate.exists():
            return Config(feeds=default_feeds())
        path = candidate
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found (create one with `driftwatch init`)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    cfg = parse_config(raw, path)
    _validate_sections(cfg)
    return cfg


# Sections owned by other parts, validated where they are read; run at load time so that a mistake is
# reported when the config is read, not halfway through a nightly job.
_SECTION_VALIDATORS = {  # section -> (module:function, whether it reads the whole Config or the raw tables)
    "report": ("driftwatch.report.build:report_settings", "config"),
    "alerts": ("driftwatch.alerts.routes:parse_alerts", "raw"),
    "repair": ("driftwatch.repair.guards:settings", "config"),
    "payouts": ("driftwatch.payouts.settings:payout_settings", "config"),
}


def _validate_sections(cfg: Config) -> None:
    for section, (target, reads) in _SECTION_VALIDATORS.items():
        if section in cfg.raw:
            module, function = target.split(":")
            try:
                getattr(importlib.import_module(module), function)(cfg if reads == "config" else cfg.raw)
            except UserError as exc:
                raise UserError(f"{cfg.path}: {exc}") from None


def parse_config(raw: dict[str, Any], path: Path | None = None) -> Config:
    problems = _Problems(path)
    for key in raw:
        if key not in _TOP_LEVEL:
            problems.add(key, f"unknown section; expected one of {', '.join(_TOP_LEVEL)}")
    _check_secrets(raw, "", problems)
    _check_sources(raw.get("sources", {}), problems)
    _check_statuses(raw.get("statuses", {}), problems)
    feeds = _parse_feeds(raw.get("feeds"), problems)
    audit = _parse_audit(raw.get("audit", {}), problems)
    problems.raise_if_any()
    base = path.parent if path else Path.cwd()
    store = raw.get("store", {})
    return Config(
        path=path,
        raw=raw,
        store_path=base / store.get("path", "driftwatch.duckdb"),
        audit=audit,
        feeds=feeds,
        checks_dirs=[base / p for p in raw.get("audit", {}).get("checks_dirs", [])],
    )


class _Problems:
    def __init__(self, path: Path | None):
        self.where = str(path) if path else "configuration"
        self.items: list[str] = []

    def add(self, key: str, problem: str) -> None:
        self.items.append(f"{self.where}: {key}: {problem}")

    def raise_if_any(self) -> None:
        if self.items:
            raise UserError("\n".join(self.items))


def _check_secrets(table: dict[str, Any], prefix: str, problems: _Problems) -> None:
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_secrets(value, f"{dotted}.", problems)
        elif (
            isinstance(value, str)
            and not key.endswith("_env")
            and _SECRET_NAME.search(key)
            and "column_map" not in prefix
        ):
            problems.add(
                dotted,
                f"secrets never go in this file: set an environment variable and name it "
                f'with `{key}_env = "VARIABLE_NAME"`',
            )


def _check_sources(sources: dict[str, Any], problems: _Problems) -> None:
    for name, table in sources.items():
        if name not in SOURCES:
            problems.add(f"sources.{name}", f"unknown source; expected one of {', '.join(SOURCES)}")
            continue
        for entity_name in table.get("column_map", {}):
            if entity_name not in ENTITIES:
                problems.add(
                    f"sources.{name}.column_map.{entity_name}",
                    f"unknown entity; expected one of {', '.join(ENTITIES)}",
                )
                continue
            for header, column in table["column_map"][entity_name].items():
                if column not in ENTITIES[entity_name].columns:
                    problems.add(
                        f"sources.{name}.column_map.{entity_name}.{header!r}",
                        f"{column!r} is not a column of {entity_name}; expected one of "
                        f"{', '.join(ENTITIES[entity_name].columns)}",
                    )


def _check_statuses(statuses: dict[str, Any], problems: _Problems) -> None:
    for source, mapping in statuses.items():
        if source not in SOURCES:
            problems.add(f"statuses.{source}", f"unknown source; expected one of {', '.join(SOURCES)}")
            continue
        for raw_value, canonical in mapping.items():
            if canonical not in CANONICAL_STATUSES:
                problems.add(
                    f"statuses.{source}.{raw_value!r}",
                    f"{canonical!r} is not a canonical status; expected one of {', '.join(CANONICAL_STATUSES)}",
                )


def _parse_feeds(items: list[dict[str, Any]] | None, problems: _Problems) -> list[Feed]:
    if items is None:
        return default_feeds()
    feeds = []
    for i, item in enumerate(items):
        key = f"feeds[{i}]"
        source, target = item.get("source"), item.get("target")
        if source not in SOURCES or target not in SOURCES:
            problems.add(key, f"source and target must be sources ({', '.join(SOURCES)}); got {source!r} -> {target!r}")
            continue
        entities = tuple(item.get("entities", ENTITIES))
        unknown = [e for e in entities if e not in ENTITIES]
        if unknown:
            problems.add(f"{key}.entities", f"unknown entities {unknown}; expected some of {', '.join(ENTITIES)}")
        feeds.append(
            Feed(
                source,
                target,
                entities,
                tuple(item["channels"]) if "channels" in item else None,
                tuple(item["locations"]) if "locations" in item else None,
            )
        )
    return feeds


def _parse_audit(table: dict[str, Any], problems: _Problems) -> AuditSettings:
    fail_on = table.get("fail_on", "high")
    if fail_on not in SEVERITIES:
        problems.add("audit.fail_on", f"{fail_on!r} is not a severity; expected one of {', '.join(SEVERITIES)}")
    return AuditSettings(fail_on=fail_on, marketplaces=tuple(table.get("marketplaces", ("mirakl",))))
