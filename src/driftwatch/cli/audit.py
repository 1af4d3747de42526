"""Auditing: `audit`, `findings`, `checks list` and `ack`.

Exit codes a scheduler can act on (driftwatch.exitcodes): 0 no open drift at or above the configured
severity (audit.fail_on), 1 drift, 2 usage, configuration or data error, 70 internal error.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
import polars as pl

from driftwatch.alerts.groups import INCIDENT
from driftwatch.auditing import audit
from driftwatch.cli._common import AppContext, emit, engine_options, engine_settings, format_option, pass_app
from driftwatch.engine import acknowledge, findings, latest_run_id, load_catalogue, run_notes
from driftwatch.engine.findings import OPEN_STATUSES, SEVERITIES, STATUSES, RunResult
from driftwatch.errors import UserError
from driftwatch.exitcodes import ExitCode
from driftwatch.filedrop import load_directory
from driftwatch.incidents import acknowledge_incident
from driftwatch.severity import fails

LISTED = ("check_id", "severity", "target", "key", "field", "expected", "actual", "status", "message", "fingerprint")


@click.command("audit")
@click.option(
    "--snapshots",
    "snapshots_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Load this file-drop directory first (DIR/<source>/<entity>.csv ...).",
)
@click.option("--check", "checks", multiple=True, metavar="ID", help="Run only this check (repeatable).")
@engine_options()
@format_option()
@pass_app
def audit_command(
    app: AppContext,
    snapshots_dir: Path | None,
    checks: tuple[str, ...],
    fmt: str,
    **engine: object,
) -> None:
    """Run the checks over the latest snapshots and store the findings as a new run.

    Exit code 0 when no open finding is at or above audit.fail_on (default: high), 1 when one is,
    2 on a usage, configuration or data error. Acknowledged and muted findings never fail a run.

    Keyed comparisons can run in parts (--partitions N) and on a Dask cluster (--executor dask, with
    --scheduler or on a local cluster of --workers processes; needs `pip install 'driftwatch[dask]'`); the
    findings are the same. Default: the config's [engine], else one part in this process.

    \b
    Examples:
      driftwatch audit --snapshots exports/2026-11-23
      driftwatch audit --check stock_parity --check consent_parity --format json
      driftwatch audit --executor dask --scheduler tcp://10.0.0.5:8786 --partitions 16
    """
    if snapshots_dir is not None:
        load_directory(app.store, snapshots_dir, app.config)
    settings = engine_settings(app.config, **engine)
    result = audit(app.store, app.config, checks=list(checks) or None, engine=settings)
    if fmt == "table":
        _print_summary(result)
    else:
        emit(result.findings.select(_listed(result.findings)), fmt)
    print_notes(result.notes, fmt)
    if fails(result.counts, app.config.audit.fail_on):
        raise click.exceptions.Exit(ExitCode.DRIFT)


def _print_summary(result: RunResult) -> None:
    live = result.findings.filter(pl.col("status").is_in(OPEN_STATUSES) & ~pl.col("muted"))
    click.echo(
        f"run {result.run_id}: {live.height} open finding(s)"
        + ("" if result.trusted else "  ** UNTRUSTED: snapshot_health failed **")
    )
    if live.height:
        summary = (
            live.pivot(on="severity", index=["check_id", "target"], values="key", aggregate_function="len")
            .fill_null(0)
            .sort("check_id", "target")
        )
        columns = ["check_id", "target", *[s for s in SEVERITIES if s in summary.columns]]
        emit(summary.select(columns), "table", title="findings by check, target and severity")
    resolved = result.findings.filter(pl.col("status") == "resolved").height
    if resolved:
        click.echo(f"{resolved} finding(s) resolved since the last run")


def print_notes(notes: pl.DataFrame, fmt: str) -> None:
    """What the run could not check, one `info` line each: below the table for people, on stderr when
    stdout carries JSON or CSV for a script."""
    for message in notes["message"]:
        click.echo(f"info: {message}", err=fmt != "table")


def _listed(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "run_id"]


@click.command("findings")
@click.option("--run", "run_id", default=None, help="Run id (default: the latest run).")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only findings with this status.")
@click.option("--check", "check_id", default=None, metavar="ID", help="Only this check's findings.")
@click.option("--include-muted", is_flag=True, help="Also show muted findings.")
@format_option()
@pass_app
def findings_command(
    app: AppContext,
    run_id: str | None,
    status: str | None,
    check_id: str | None,
    include_muted: bool,
    fmt: str,
) -> None:
    """Show the findings of a run (default: the latest).

    \b
    Examples:
      driftwatch findings --status new
      driftwatch findings --run 20261123T020000-1a2b3c --format csv > findings.csv
    """
    found = findings(app.store, run_id=run_id, status=status)
    notes = run_notes(app.store, run_id or latest_run_id(app.store))
    if check_id:
        found = found.filter(pl.col("check_id") == check_id)
        notes = notes.filter(pl.col("check_id") == check_id)
    if not include_muted:
        found = found.filter(~pl.col("muted"))
    if fmt == "table":
        emit(found.select([c for c in LISTED if c in found.columns]), fmt, title=f"{found.height} finding(s)")
    else:
        emit(found.select(_listed(found)), fmt)
    print_notes(notes, fmt)


@click.group("checks")
def checks_group() -> None:
    """The check catalogue (checks/*.toml plus the config's audit.checks_dirs)."""


@checks_group.command("list")
@format_option()
@pass_app
def checks_list(app: AppContext, fmt: str) -> None:
    """List every check: id, title, owner team, what it reads, how it runs and the options
    driftwatch.toml may set for it ([checks.<id>]).

    \b
    Example:
      driftwatch checks list --format json
    """
    catalogue = load_catalogue(app.config).values()
    frame = pl.DataFrame(
        {
            "id": [c.id for c in catalogue],
            "title": [c.title for c in catalogue],
            "owner": [c.owner for c in catalogue],
            "reads": [", ".join(c.reads) for c in catalogue],
            "runs": [f"rule {c.rule}" if c.rule else f"compare ({len(c.compares)})" for c in catalogue],
            "options": [", ".join(c.options) for c in catalogue],
            "file": [str(c.path) for c in catalogue],
        },
        schema={
            "id": pl.String,
            "title": pl.String,
            "owner": pl.String,
            "reads": pl.String,
            "runs": pl.String,
            "options": pl.String,
            "file": pl.String,
        },
    )
    emit(frame, fmt, title=f"{frame.height} check(s)")


@click.command("ack")
@click.argument("fingerprint")
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Until this date (inclusive); default: for good.",
)
@click.option("--mute", is_flag=True, help="Mute: hide it from findings and alerts, not just acknowledge it.")
@click.option("--note", default=None, help="Why (kept with the acknowledgement).")
@pass_app
def ack_command(
    app: AppContext,
    fingerprint: str,
    until,
    mute: bool,
    note: str | None,
) -> None:
    """Acknowledge a finding: it stays listed but no longer alerts or fails the run (--mute also hides it).
    `incident:<id>` acknowledges every finding of an incident as it is now (`driftwatch incidents`).

    \b
    Examples:
      driftwatch ack 3f9c2a1b7d4e8f60 --until 2026-12-01 --note "ERP fix in next release"
      driftwatch ack 3f9c2a1b7d4e8f60 --mute
      driftwatch ack incident:b26671f82b3c0fe9 --note "outlet feed re-enabled, Mirakl import tonight"
    """
    day: date | None = until.date() if until else None
    what = "muted" if mute else "acknowledged"
    if fingerprint.startswith(INCIDENT):
        if mute:
            raise UserError(
                "an incident cannot be muted (it would read as resolved): acknowledge it, or mute "
                "its findings one by one (`driftwatch findings`)"
            )
        members = acknowledge_incident(app.store, fingerprint, until=day, note=note)
        what = f"{what}: its {len(members)} finding(s)"
    else:
        acknowledge(app.store, fingerprint, until=day, mute=mute, note=note)
    click.echo(f"{fingerprint} {what}" + (f" until {day}" if day else ""))


def register(group: click.Group) -> None:
    for command in (audit_command, findings_command, checks_group, ack_command):
        group.add_command(command)
