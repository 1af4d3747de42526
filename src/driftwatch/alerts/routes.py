"""Alert routes from configuration: which findings go to whom, through which apprise URLs.

```toml
[alerts]
retry_attempts = 3          # tries per destination before a delivery counts as failed
retry_wait_seconds = 2      # first pause between tries; doubles each time

[[alerts.routes]]
name = "cx"
url_env = ["DRIFTWATCH_SLACK_CX"]        # environment variables holding apprise URLs (secrets live there)
urls = ["mailto://relay.internal?to=cx@example.com"]   # literal apprise URLs, only for secret-free ones
checks = ["order_status_drift", "fulfilment_events"]  # optional: any check when absent
targets = ["klaviyo", "ometria"]                        # optional: any target when absent
teams = ["cx"]                                           # optional: owner teams of the checks
min_severity = "high"                                    # optional: default "low" (everything)
```
A finding goes to a route when it passes every filter the route sets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import polars as pl

from driftwatch.engine.findings import SEVERITIES, SEVERITY_RANK, severity_rank
from driftwatch.errors import UserError
from driftwatch.redaction import NOT_A_VARIABLE, is_variable_name, remember_url

_ROUTE_KEYS = {"name", "urls", "url_env", "checks", "targets", "teams", "min_severity"}
_ALERT_KEYS = {"routes", "retry_attempts", "retry_wait_seconds"}


@dataclass(frozen=True)
class Destination:
    """One apprise URL of a route. `label` names it in logs and the store without revealing the URL."""

    label: str
    url: str | None = None  # a literal URL from the file
    env: str | None = None  # or the environment variable that holds it

    def resolve(self) -> str:
        """The URL; its tokens and password are redacted from then on, wherever they would appear."""
        if self.url is not None:
            remember_url(self.url)
            return self.url
        value = os.environ.get(self.env or "", "").strip()
        if not value:
            raise UserError(f"alert destination {self.label}: environment variable {self.env} is not set")
        remember_url(value)
        return value


@dataclass(frozen=True)
class Route:
    name: str
    destinations: tuple[Destination, ...]
    checks: frozenset[str] | None = None
    targets: frozenset[str] | None = None
    teams: frozenset[str] | None = None
    min_severity: str = "low"

    def select(self, findings: pl.DataFrame, owners: Mapping[str, str]) -> pl.DataFrame:
        """The findings this route is responsible for. `owners` maps check_id to its owner team."""
        condition = severity_rank() >= SEVERITY_RANK[self.min_severity]
        if self.checks is not None:
            condition &= pl.col("check_id").is_in(sorted(self.checks))
        if self.targets is not None:
            condition &= pl.col("target").is_in(sorted(self.targets))
        if self.teams is not None:
            owned = sorted(check for check, team in owners.items() if team in self.teams)
            condition &= pl.col("check_id").is_in(owned)
        return findings.filter(condition)


@dataclass(frozen=True)
class AlertSettings:
    routes: tuple[Route, ...]
    retry_attempts: int = 3
    retry_wait_seconds: float = 2.0


def parse_alerts(raw: Mapping) -> AlertSettings:
    """Read the `[alerts]` table of a parsed driftwatch.toml (absent: no routes)."""
    section = raw.get("alerts", {})
    _no_unknown_keys(section, _ALERT_KEYS, "[alerts]")
    routes = tuple(_route(entry, i) for i, entry in enumerate(section.get("routes", []), start=1))
    names = [route.name for route in routes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"[[alerts.routes]]: route names must be unique, repeated: {', '.join(duplicates)}")
    attempts = section.get("retry_attempts", 3)
    wait = section.get("retry_wait_seconds", 2.0)
    if not isinstance(attempts, int) or attempts < 1:
        raise UserError("[alerts] retry_attempts: expected a whole number of at least 1")
    if not isinstance(wait, int | float) or wait < 0:
        raise UserError("[alerts] retry_wait_seconds: expected a number of seconds, 0 or more")
    return AlertSettings(routes, attempts, float(wait))


def _route(entry: Mapping, position: int) -> Route:
    where = f"[[alerts.routes]] #{position}"
    if not isinstance(entry, Mapping):
        raise UserError(f"{where}: expected a table")
    _no_unknown_keys(entry, _ROUTE_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{where}: `name` is required")
    where = f"alert route {name!r}"
    urls = _strings(entry, "urls", where) or ()
    envs = _strings(entry, "url_env", where) or ()
    if not all(is_variable_name(env) for env in envs):  # a URL pasted in place of its variable: never echoed
        raise UserError(f"{where}: url_env: {NOT_A_VARIABLE}")
    if not urls and not envs:
        raise UserError(f"{where}: give `url_env` (environment variables holding apprise URLs) or `urls`")
    destinations = tuple(Destination(f"{name}:{_scheme(url)}#{i}", url=url) for i, url in enumerate(urls, 1))
    destinations += tuple(Destination(f"{name}:${env}", env=env) for env in envs)
    min_severity = entry.get("min_severity", "low")
    if min_severity not in SEVERITIES:
        raise UserError(f"{where}: min_severity {min_severity!r} is not one of {', '.join(SEVERITIES)}")
    return Route(
        name=name,
        destinations=destinations,
        checks=_optional_set(entry, "checks", where),
        targets=_optional_set(entry, "targets", where),
        teams=_optional_set(entry, "teams", where),
        min_severity=min_severity,
    )


def _scheme(url: str) -> str:
    # Only the scheme goes into labels: the rest of a URL may carry tokens or passwords.
    return urlsplit(url).scheme or "url"


def _strings(entry: Mapping, key: str, where: str) -> tuple[str, ...] | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UserError(f"{where}: `{key}` must be a string or a list of strings")
    return tuple(v.strip() for v in value)


def _optional_set(entry: Mapping, key: str, where: str) -> frozenset[str] | None:
    values = _strings(entry, key, where)
    return None if values is None else frozenset(values)


def _no_unknown_keys(table: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")
