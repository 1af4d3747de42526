"""`driftwatch run`: the nightly job in one command."""

from __future__ import annotations

from pathlib import Path

import click

from driftwatch.alerts import preview
from driftwatch.cli._common import AppContext, checkpoints_option, full_option, pass_app
from driftwatch.cli.audit import print_notes
from driftwatch.cli.pull import show_pulls
from driftwatch.nightly import run_nightly


@click.command("run")
@checkpoints_option()
@full_option()
@click.option("--no-alerts", is_flag=True, help="Plan the alerts and print them instead of sending.")
@pass_app
def run_command(app: AppContext, checkpoints: Path | None, full: bool, no_alerts: bool) -> None:
    """Pull every configured source, audit, write the HTML report, send the alerts.

    Pulls are incremental where a platform allows it (see `driftwatch pull --help`); --full pulls everything.

    Exit codes for the scheduler: 0 no drift at or above audit.fail_on; 1 drift; 2 usage or configuration
    error, or the machine refused a write; 3 the job is incomplete (a source could not be pulled or an alert
    could not be delivered; what did arrive is stored, audited and reported); 70 internal error.

    \b
    Example (cron, 02:30 every night):
      30 2 * * *  cd /srv/driftwatch && driftwatch run >> driftwatch.log 2>&1
    """
    pulls = checkpoints or app.working("pulls")
    result = run_nightly(app.store, app.config, checkpoint_dir=pulls, send_alerts=not no_alerts, full=full)
    show_pulls(result.pulls)
    open_count = sum(result.run.counts.values())
    trust = "" if result.run.trusted else "  ** UNTRUSTED: snapshot_health failed **"
    click.echo(f"audit {result.run.run_id}: {open_count} open finding(s){trust}")
    print_notes(result.run.notes, "table")
    click.echo(f"report: {result.report}")
    if no_alerts:
        click.echo(preview(result.alerts.plan))
    for failed in result.alerts.failed:
        click.secho(f"alert delivery failed: {failed.route} → {failed.destination}: {failed.error}", fg="red")
    raise click.exceptions.Exit(result.exit_code(app.config.audit.fail_on))


def register(group: click.Group) -> None:
    group.add_command(run_command)
