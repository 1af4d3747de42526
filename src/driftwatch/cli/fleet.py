"""`driftwatch fleet run`: many retailers' nightly jobs, each with its own config and store."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import click

from driftwatch.cli._common import AppContext, pass_app
from driftwatch.cli._crash import save_traceback
from driftwatch.config import SEVERITIES
from driftwatch.errors import UserError
from driftwatch.executors import EXECUTORS, Executor
from driftwatch.fleet import STATUS, Outcome, fleet_exit_code, load_fleet, run_fleet


@click.group("fleet")
def fleet_group() -> None:
    """Many retailers at once (a FLEET.toml lists each one's config and store)."""


@fleet_group.command("run")
@click.argument("fleet_file", metavar="FLEET.toml", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--executor", type=click.Choice(EXECUTORS), default=None, help="Where the jobs run (default: [fleet]).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Jobs at once / local Dask workers.")
@click.option("--scheduler", default=None, metavar="URL", help="Dask scheduler (tcp://HOST:PORT); implies dask.")
@click.option("--no-alerts", is_flag=True, help="Plan each retailer's alerts without sending them.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
@pass_app
def fleet_run(
    app: AppContext,
    fleet_file: Path,
    executor: str | None,
    workers: int | None,
    scheduler: str | None,
    no_alerts: bool,
    fmt: str,
) -> None:
    """Run each listed retailer's nightly job (pull, audit, report, alerts) as a task on an executor: here,
    one after another or `--workers N` at once, or on a Dask cluster. One line per retailer as it finishes.

    The exit code is the worst of the retailers': 70 internal error, then 2 something to fix (a broken
    config), 3 incomplete, 1 drift, 0 clean. A retailer's failure never stops the others.

    \b
    FLEET.toml (paths relative to it):
      [fleet]
      executor = "local"          # or "dask"; workers = 2; scheduler = "tcp://10.0.0.5:8786"
      [retailers.acme]
      config = "acme/driftwatch.toml"
      db = "acme/driftwatch.duckdb"   # optional: default the config's store.path

    \b
    Examples:
      driftwatch fleet run fleet.toml
      driftwatch fleet run fleet.toml --executor dask --scheduler tcp://10.0.0.5:8786 --format json
    """
    if app.config_path is not None or app.db_path is not None:
        # Each retailer's config and store come from FLEET.toml; one given here would be silently ignored.
        raise UserError(
            "fleet run takes each retailer's config and store from FLEET.toml; --config and --db do not apply"
        )
    fleet = load_fleet(fleet_file)
    kind = "dask" if scheduler else executor or fleet.executor.kind
    chosen = Executor(
        kind,
        workers or fleet.executor.workers,
        scheduler or (fleet.executor.scheduler if kind == "dask" else None),
    )
    outcomes: list[Outcome] = []
    if fmt == "table":
        click.echo(f"fleet {fleet_file}: {len(fleet.retailers)} retailer(s) on {chosen.describe()}")
    for outcome in run_fleet(fleet, executor=chosen, send_alerts=not no_alerts):
        outcome = _with_traceback_saved(outcome)
        outcomes.append(outcome)
        if fmt == "table":
            click.echo(summary_line(outcome, width=max(len(r.name) for r in fleet.retailers)))
    code = fleet_exit_code(outcomes)
    if fmt == "json":
        order = [r.name for r in fleet.retailers]
        rows = [o.as_dict() for o in sorted(outcomes, key=lambda o: order.index(o.retailer))]
        click.echo(json.dumps({"exit_code": int(code), "retailers": rows}, indent=2))
    else:
        counts = Counter(outcome.status for outcome in outcomes)
        tally = ", ".join(f"{counts[status]} {status}" for status in STATUS.values() if counts[status])
        click.echo(f"fleet: {tally}; exit {int(code)}")
    raise click.exceptions.Exit(code)


def summary_line(outcome: Outcome, width: int = 0) -> str:
    """One retailer's night on one line: how it ended, its open findings, what failed, where its report is."""
    parts = [f"{outcome.retailer:<{width}}", f"{outcome.status:<14}", f"exit {outcome.exit_code:<3}"]
    if outcome.run_id is not None:
        total = sum(outcome.open_findings.values())
        by_severity = ", ".join(f"{outcome.open_findings[s]} {s}" for s in SEVERITIES if outcome.open_findings.get(s))
        parts.append(f"{total} open" + (f" ({by_severity})" if by_severity else ""))
        if not outcome.trusted:
            parts.append("UNTRUSTED")
    if outcome.failed_pulls:
        parts.append("not pulled: " + "; ".join(outcome.failed_pulls))
    if outcome.failed_alerts:
        parts.append("alerts not delivered: " + "; ".join(outcome.failed_alerts))
    if outcome.error:
        parts.append(outcome.error)
    if outcome.report:
        parts.append(f"report {outcome.report}")
    parts.append(f"{outcome.seconds:.1f}s")
    return "  ".join(parts)


def _with_traceback_saved(outcome: Outcome) -> Outcome:
    """An internal error's traceback goes to a file, as for any command; the line says where."""
    if outcome.traceback is None:
        return outcome
    path = save_traceback(outcome.traceback, outcome.retailer)
    where = f"full traceback in {path}" if path else "the traceback could not be written to a file"
    return replace(outcome, error=f"{outcome.error}; {where}", traceback=None)


def register(group: click.Group) -> None:
    group.add_command(fleet_group)
