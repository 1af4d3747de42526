"""Alerting a stored run: configuration, owners and the report link gathered for `plan_alerts`/`deliver`."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from driftwatch.alerts.dispatch import Outgoing, deliver, plan_alerts
from driftwatch.alerts.groups import LATENCY_CHECK, LATENCY_OWNER, incident_rows, objective_rows
from driftwatch.alerts.ledger import Delivery
from driftwatch.alerts.routes import parse_alerts
from driftwatch.config import Config
from driftwatch.engine import load_catalogue
from driftwatch.engine.findings import open_since
from driftwatch.incidents import incident_members, run_incidents
from driftwatch.latency import previous_latency, run_latency
from driftwatch.report.build import build_report, load_run, report_settings
from driftwatch.report.summary import RunInfo
from driftwatch.store import Store


@dataclass(frozen=True)
class AlertOutcome:
    plan: list[Outgoing]
    deliveries: list[Delivery]

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status == "failed"]


def alert_run(
    store: Store, cfg: Config, *, run_id: str | None = None, report_link: str | None = None, send: bool = True
) -> AlertOutcome:
    """Plan (and unless `send` is false, deliver) the alerts of a run (default: the latest).

    Without `report_link` the digest points at the run's report (`[report] link_base`), which is written
    first if it is missing so that no alert points at nothing.
    """
    settings = parse_alerts(cfg.raw)
    reports = report_settings(cfg)
    # Muted findings come along so that each destination's state follows them (see alerts.changes).
    run, found = load_run(store, run_id, muted=True)
    found = found.join(open_since(store, run.run_id), on="fingerprint", how="left")
    found, members = _with_groups(store, run, found)
    path = reports.path_for(run.run_id)
    owners = {check_id: spec.owner for check_id, spec in load_catalogue(cfg).items()}
    owners.setdefault(LATENCY_CHECK, LATENCY_OWNER)
    plan = plan_alerts(
        store,
        settings,
        run,
        found,
        report_link=report_link or reports.link_for(path),
        owners=owners,
        mask=reports.mask_emails,
        members=members,
    )
    if not send:
        return AlertOutcome(plan, [])
    if report_link is None and not path.exists() and any(o.message for o in plan):
        build_report(store, reports, run.run_id, path)
    return AlertOutcome(plan, deliver(store, settings, run, plan))


def _with_groups(store: Store, run: RunInfo, found: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The run's findings with its incidents and breached sync objectives as rows of their own, and the
    findings of each incident (those of a resolved one as it was last seen)."""
    incidents = run_incidents(store, run.run_id)
    members = incident_members(store, run.run_id, resolved_too=True)
    extra = [
        incident_rows(incidents, run.started_at),
        objective_rows(run_latency(store, run.run_id), previous_latency(store, run.run_id), run.started_at),
    ]
    frames = [found, *(frame for frame in extra if frame.height)]
    return pl.concat(frames, how="diagonal_relaxed"), members
