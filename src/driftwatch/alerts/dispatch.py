"""Decide what each destination hears about a run, show it, and deliver it through apprise.

Each destination of each route gets one digest per run, computed against what that destination already
knows (see `changes`): the findings that are new to it, came back, got worse or changed, and what cleared
since its last digest. Ongoing drift stays quiet. Only a delivery that reached the destination moves its
state forward, so a failed one is made up on the next `alert` to that destination alone, and a
destination that got its digest never gets it twice.

A run whose snapshots failed their health check is not trusted: a truncated export makes every other
check scream (or fall silent). Such a run alerts only its snapshot_health findings, never says anything
cleared, and leaves what destinations know about everything else untouched until a trusted run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import apprise
import polars as pl
import tenacity

from driftwatch.alerts import ledger
from driftwatch.alerts.changes import attention, cleared, new_after, next_state, sightings
from driftwatch.alerts.digest import Message, digest
from driftwatch.alerts.groups import LATENCY_CHECK, is_group, members_of
from driftwatch.alerts.routes import AlertSettings, Destination, Route
from driftwatch.engine.runner import HEALTH_CHECK
from driftwatch.errors import UserError
from driftwatch.redaction import excerpt, redact
from driftwatch.report.summary import RunInfo, open_findings
from driftwatch.store import Store

ERROR_LIMIT = 300  # characters of a delivery error kept and shown


@dataclass(frozen=True)
class Outgoing:
    route: Route
    destination: Destination
    message: Message | None  # None: nothing new for this destination
    state: pl.DataFrame  # what the destination knows once this is delivered
    delivered: bool = False  # it already has this run: nothing happens
    superseded_by: str | None = None  # it already has a later run: nothing happens


def plan_alerts(
    store: Store,
    settings: AlertSettings,
    run: RunInfo,
    findings: pl.DataFrame,
    *,
    report_link: str,
    owners: Mapping[str, str] | None = None,
    mask: bool = True,
    members: pl.DataFrame | None = None,
) -> list[Outgoing]:
    """What every destination would receive for this run; reads the store, sends and changes nothing.

    `findings`: the run's findings as `engine.findings` lists them (with `acknowledged` and `muted`), and
    optionally when each began (`since`, `since_status` from `engine.findings.open_since`); it may hold
    incidents and breached objectives as rows of their own (`alerts.groups`), with `members` (incident_id,
    fingerprint) naming the findings each incident tells.
    """
    seen = sightings(findings, run.started_at)
    members = (
        members if members is not None else pl.DataFrame(schema={"incident_id": pl.String, "fingerprint": pl.String})
    )
    return [
        _plan(store, route, destination, run, seen, report_link, owners or {}, mask, members)
        for route in settings.routes
        for destination in route.destinations
    ]


def deliver(store: Store, settings: AlertSettings, run: RunInfo, plan: list[Outgoing]) -> list[ledger.Delivery]:
    """Send each planned message to its destination, recording every outcome in the store."""
    results = []
    for outgoing in plan:
        if outgoing.delivered or outgoing.superseded_by:
            continue
        if outgoing.message is not None:
            sent = _send(store, settings, run, outgoing.route, outgoing.message, outgoing.destination)
            results.append(sent)
            if sent.status != "sent":
                continue
        ledger.remember(store, outgoing.route.name, outgoing.destination.label, run, outgoing.state)
    return results


def preview(plan: list[Outgoing]) -> str:
    """Human-readable: each route, its destinations, and the exact message each would get (destinations
    that would get the same message are shown once)."""
    blocks: list[str] = []
    routes = {o.route.name: o.route for o in plan}
    for name in routes:
        mine = [o for o in plan if o.route.name == name]
        shown: dict[str, list[str]] = {}
        for outgoing in mine:
            shown.setdefault(_preview_text(outgoing), []).append(outgoing.destination.label)
        for text, labels in shown.items():
            blocks.append(f"== route {name} → {', '.join(labels)}\n{text}")
    return "\n\n".join(blocks) if blocks else "No alert routes are configured ([[alerts.routes]])."


def _preview_text(outgoing: Outgoing) -> str:
    if outgoing.superseded_by:
        return f"(nothing to send: already alerted for the later run {outgoing.superseded_by})"
    if outgoing.delivered:
        return "(nothing to send: already delivered for this run)"
    if outgoing.message is None:
        return "(nothing to send: nothing new, worse, changed or cleared since the last digest)"
    return f"{outgoing.message.title}\n\n{outgoing.message.body}"


def _plan(
    store: Store,
    route: Route,
    destination: Destination,
    run: RunInfo,
    seen: pl.DataFrame,
    report: str,
    owners: Mapping[str, str],
    mask: bool,
    members: pl.DataFrame,
) -> Outgoing:
    last = ledger.seen(store, route.name, destination.label)
    known = ledger.known(store, route.name, last)
    if last is not None and last.run_id == run.run_id:
        return Outgoing(route, destination, None, known, delivered=True)
    if last is not None and last.started_at > run.started_at:
        return Outgoing(route, destination, None, known, superseded_by=last.run_id)
    mine = route.select(seen, owners)
    if not run.trusted:
        mine = mine.filter(pl.col("check_id") == HEALTH_CHECK)
    now_open = open_findings(mine)
    first = None if last else ledger.first_attempt(store, route.name, destination.label)
    alerting = attention(now_open, known, horizon=new_after(last and last.started_at, first, run.started_at))
    # Sync objectives are judged every run, whichever checks ran.
    checks = None if run.checks is None else (*run.checks, LATENCY_CHECK)
    gone = cleared(known, seen, checks) if run.trusted else known.clear()
    # An open incident's findings are told by its line; those of one that cleared by its cleared line.
    told = pl.col("fingerprint").is_in(members_of(members, now_open) + members_of(members, gone))
    # Muted findings are hidden everywhere; acknowledged ones still keep a route from being all clear.
    still_open = now_open.filter(pl.col("quiet").ne_missing(pl.lit("mute")) & ~is_group())
    message = digest(
        route.name,
        run,
        alerting.filter(~is_group() & ~told),
        now_open.filter(pl.col("quiet").is_null() & ~is_group() & ~told),
        gone.filter(~told),
        open_findings=still_open.height,
        report=report,
        mask=mask,
        groups=alerting.filter(is_group()),
    )
    return Outgoing(route, destination, message, next_state(known, mine, gone))


def _send(
    store: Store, settings: AlertSettings, run: RunInfo, route: Route, message: Message, destination: Destination
) -> ledger.Delivery:
    attempts, error = _notify(destination, message, settings)
    delivery = ledger.Delivery(
        run_id=run.run_id,
        route=route.name,
        destination=destination.label,
        kind=message.kind,
        status="sent" if error is None else "failed",
        attempts=attempts,
        findings=message.findings,
        title=message.title,
        error=error,
    )
    ledger.record(store, delivery)
    return delivery


def _notify(destination: Destination, message: Message, settings: AlertSettings) -> tuple[int, str | None]:
    """Deliver one message to one destination with retries. Returns (attempts, error or None)."""
    try:
        url = destination.resolve()
    except UserError as exc:
        return 0, str(exc)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return 0, f"{destination.label} is not a valid apprise URL"
    errors: list[str] = []

    def attempt() -> bool:
        try:
            result = notifier.notify(
                body=redact(message.body),  # findings quote what platforms hold: nothing credential-shaped goes out
                title=redact(message.title),
                notify_type=_notify_type(message),
                body_format=apprise.NotifyFormat.TEXT,
            )
        except Exception as exc:  # a plugin bug must count as a failed delivery, not end the run's alerts
            errors.append(excerpt(f"{type(exc).__name__}: {exc}", ERROR_LIMIT))
            return False
        if not result:
            logged = "; ".join(e.message for e in result.logs() if e.level in ("WARNING", "ERROR"))
            errors.append(excerpt(logged, ERROR_LIMIT))
        return bool(result)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.retry_attempts),
        wait=tenacity.wait_exponential(multiplier=settings.retry_wait_seconds, max=60),
        retry=tenacity.retry_if_result(lambda ok: not ok),
        retry_error_callback=lambda state: False,
    )
    ok = retrying(attempt)
    attempts = retrying.statistics.get("attempt_number", 1)
    return attempts, None if ok else (errors[-1] or "delivery failed")


def _notify_type(message: Message) -> apprise.NotifyType:
    if message.kind == "resolved":
        return apprise.NotifyType.SUCCESS
    return apprise.NotifyType.FAILURE if message.urgent else apprise.NotifyType.WARNING
