"""The application assembled: every part's tables and configuration sections, registered in one place.

The lower layers own registries and know nothing of what fills them: the store applies the migrations
registered with it, the configuration validates the sections registered with it, the platform registry
answers for the platforms registered with it. Each part above them declares what it brings (`MIGRATIONS`,
a section's validator, a connector folder's `PLATFORM`) next to the code that uses it, and this module,
imported by `driftwatch/__init__.py`, hands them over. A new part with tables or a section of
driftwatch.toml, or a new built-in platform, adds one line here; nothing below it changes.
"""

from __future__ import annotations

from driftwatch import config, platforms, store
from driftwatch.alerts.ledger import MIGRATIONS as ALERT_TABLES
from driftwatch.alerts.routes import parse_alerts
from driftwatch.connectors import bluecherry, commercetools, emarsys, klaviyo, mirakl, ometria
from driftwatch.engine.findings import MIGRATIONS as FINDING_TABLES
from driftwatch.engine.notes import MIGRATIONS as NOTE_TABLES
from driftwatch.engine.overrides import validate_check_settings
from driftwatch.incidents.lifecycle import MIGRATIONS as INCIDENT_TABLES
from driftwatch.latency.record import MIGRATIONS as LATENCY_TABLES
from driftwatch.latency.slo import slo_settings
from driftwatch.payouts.closes import MIGRATIONS as PAYOUT_TABLES
from driftwatch.payouts.settings import validate_payouts
from driftwatch.repair.guards import settings as repair_settings
from driftwatch.repair.journal import MIGRATIONS as REPAIR_TABLES
from driftwatch.report.build import report_settings

# Every part's tables (each migration is applied once, in version order, when a store opens).
MIGRATIONS = (
    *store.MIGRATIONS,
    *FINDING_TABLES,
    *NOTE_TABLES,
    *ALERT_TABLES,
    *PAYOUT_TABLES,
    *REPAIR_TABLES,
    *INCIDENT_TABLES,
    *LATENCY_TABLES,
)

# The sections of driftwatch.toml other parts own, validated in this order when the file is read.
SECTIONS = (
    config.Section("report", report_settings),
    config.Section("alerts", lambda cfg: parse_alerts(cfg.raw)),
    config.Section("repair", repair_settings),
    # Before the checks: it says where each option payout_matching no longer takes has gone.
    config.Section("payouts", validate_payouts, also_on=("checks",)),
    config.Section("checks", validate_check_settings),
    config.Section("slo", slo_settings),
)


# The platforms driftwatch ships, each its connector folder's registration; plugins add theirs through the
# `driftwatch.platforms` entry points.
BUILTIN_PLATFORMS = tuple(
    package.PLATFORM for package in (bluecherry, commercetools, emarsys, ometria, klaviyo, mirakl)
)


def assemble() -> None:
    """Register every part with the registries below it. Safe to call again."""
    store.register_migrations(MIGRATIONS)
    for platform in BUILTIN_PLATFORMS:
        platforms.register(platform)
    for section in SECTIONS:
        config.register_section(section)
