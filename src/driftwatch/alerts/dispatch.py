"""Decide what each route hears about a run, show it, and deliver it through apprise.

A finding alerts a route when the route has not been told about it (new, or never delivered), when it
came back (regressed), or when it got worse than the route last saw (higher severity, larger |impact| or
a larger difference between the two sides). Ongoing drift stays quiet. When a route's open findings are
all gone, it gets one all-clear. Only a delivery that reached every destination moves the route's state
forward, so a failed one is retried on the next `alert` and its findings are never lost.

A run whose snapshots failed their health check is not trusted: a truncated export makes every other
check scream (or fall silent). Such a run alerts only its snapshot_health findings, never sends an
all-clear, and leaves what routes know about everything else untouched until a trusted run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import apprise
import polars as pl
import tenacity

from driftwatch.alerts import ledger
from driftwatch.alerts.digest import Message, drift_digest, resolved_notice
from driftwatch.alerts.routes import AlertSettings, Destination, Route
from driftwatch.engine.runner import HEALTH_CHECK
from driftwatch.errors import UserError
from driftwatch.report.summary import RunInfo, by_attention, open_findings, severity_rank
from driftwatch.store import Store


@dataclass(frozen=True)
class Outgoing:
    route: Route
    message: Message | None  # None: nothing new for this route
    open_findings: pl.DataFrame  # what the route knows once this is delivered
    pending: tuple[Destination, ...]  # destinations that have not received it yet
    replaces_state: bool = True  # False: only adds to what the route knows (an untrusted run)
    superseded_by: str | None = None  # a later run this route was already alerted for: nothing happens


def plan_alerts(
    store: Store,
    settings: AlertSettings,
    run: RunInfo,
    findings: pl.DataFrame,
    *,
    report_link: str,
    owners: Mapping[str, str] | None = None,
    mask: bool = True,
) -> list[Outgoing]:
    """What every route would receive for this run; reads the store, sends and changes nothing."""
    current = open_findings(findings)
    if not run.trusted:
        current = current.filter(pl.col("check_id") == HEALTH_CHECK)
    return [_plan_route(store, route, run, current, report_link, owners or {}, mask) for route in settings.routes]


def deliver(store: Store, settings: AlertSettings, run: RunInfo, plan: list[Outgoing]) -> list[ledger.Delivery]:
    """Send each planned message to its pending destinations, recording every outcome in the store."""
    results = []
    for outgoing in plan:
        if outgoing.superseded_by:
            continue
        message = outgoing.message
        sent = [_send(store, settings, run, outgoing.route, message, d) for d in outgoing.pending] if message else []
        results += sent
        if all(d.status == "sent" for d in sent):
            ledger.remember(store, outgoing.route.name, run, outgoing.open_findings, replace=outgoing.replaces_state)
    return results


def preview(plan: list[Outgoing]) -> str:
    """Human-readable: each route, its destinations, and the exact message it would get."""
    blocks = []
    for outgoing in plan:
        names = ", ".join(d.label for d in outgoing.route.destinations)
        head = f"== route {outgoing.route.name} → {names}"
        if outgoing.superseded_by:
            blocks.append(
                f"{head}\n(nothing to send: this route was already alerted for the later run {outgoing.superseded_by})"
            )
        elif outgoing.message is None:
            blocks.append(f"{head}\n(nothing to send: no new, regressed or worsened findings)")
        elif not outgoing.pending:
            blocks.append(f"{head}\n(already delivered for this run: {outgoing.message.title})")
        else:
            blocks.append(f"{head}\n{outgoing.message.title}\n\n{outgoing.message.body}")
    return "\n\n".join(blocks) if blocks else "No alert routes are configured ([[alerts.routes]])."


def _plan_route(
    store: Store,
    route: Route,
    run: RunInfo,
    current: pl.DataFrame,
    link: str,
    owners: Mapping[str, str],
    mask: bool,
) -> Outgoing:
    latest = ledger.latest_run(store, route.name)
    if latest is not None and latest[1] > run.started_at:
        return Outgoing(route, None, current.clear(), (), superseded_by=latest[0])
    mine = route.select(current, owners)
    # Acknowledged and muted findings stay open but quiet; the route is all clear only when none are open.
    attended = mine.filter(~pl.col("acknowledged") & ~pl.col("muted"))
    known = ledger.known(store, route.name)
    alerting = _needing_attention(attended, known)
    if alerting.height:
        message = drift_digest(route.name, run, alerting, link, mask=mask)
    elif mine.height == 0 and known.height and run.trusted:
        message = resolved_notice(route.name, run, known.height, link)
    else:
        message = None
    pending = route.destinations
    if message is not None:
        sent = ledger.already_sent(store, run.run_id, route.name)
        pending = tuple(d for d in route.destinations if (message.kind, d.label) not in sent)
    return Outgoing(route, message, attended, pending, replaces_state=run.trusted)


def _needing_attention(mine: pl.DataFrame, known: pl.DataFrame) -> pl.DataFrame:
    """The route's open findings that alert, with a `reason`, most urgent first."""
    joined = ledger.with_diff(mine).join(known, on="fingerprint", how="left", suffix="_known")
    was_known = pl.col("severity_known").is_not_null()
    worse = (
        (severity_rank() > severity_rank("severity_known"))
        | (pl.col("impact").abs() > pl.col("impact_known").abs())
        | (pl.col("diff") > pl.col("diff_known"))
    ).fill_null(False)
    reason = (
        pl.when(pl.col("status") == "regressed")
        .then(pl.lit("regressed"))
        .when(~was_known & (pl.col("status") == "new"))
        .then(pl.lit("new"))
        .when(~was_known)
        .then(pl.lit("unalerted"))
        .when(worse)
        .then(pl.lit("worsened"))
    )
    alerting = joined.with_columns(reason.alias("reason")).filter(pl.col("reason").is_not_null())
    return by_attention(alerting.select(*mine.columns, "reason"))


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
                body=message.body,
                title=message.title,
                notify_type=_notify_type(message),
                body_format=apprise.NotifyFormat.TEXT,
            )
        except Exception as exc:  # a plugin bug must count as a failed delivery, not end the run's alerts
            errors.append(_redact(f"{type(exc).__name__}: {exc}", url))
            return False
        if not result:
            errors.append("; ".join(_redact(e.message, url) for e in result.logs() if e.level in ("WARNING", "ERROR")))
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


def _redact(text: str, url: str) -> str:
    """Apprise names hosts in its errors; make sure no token or password from the URL goes with them."""
    for token in re.split(r"[/:@?&=#]+", url):
        if len(token) >= 8:
            text = text.replace(token, "***")
    return text
