"""`driftwatch alert`: one digest per destination for what is new, back, worse, changed or cleared in a run."""

from __future__ import annotations

import click

from driftwatch.alerts import preview
from driftwatch.alerts.run import alert_run
from driftwatch.cli._common import AppContext, pass_app
from driftwatch.exitcodes import ExitCode


@click.command()
@click.option("--run", "run_id", default=None, help="Audit run to alert on (default: the latest).")
@click.option("--preview", "only_preview", is_flag=True, help="Show what each route would receive; send nothing.")
@click.option("--report-link", default=None, help="Link digests point to (default: the run's report).")
@pass_app
def alert(app: AppContext, run_id: str | None, only_preview: bool, report_link: str | None) -> None:
    """Send each alert route ([[alerts.routes]]) its digest for a run.

    Each destination hears once about what is new to it, came back, got worse or changed since its last
    digest, and what cleared. Running it again for the same run sends nothing twice. Exits 3 (incomplete)
    when a delivery failed after its retries: the next `alert` makes it up to that destination alone.

    \b
    Examples:
      driftwatch alert --preview
      driftwatch alert --run 20261123T060000-1a2b3c
    """
    outcome = alert_run(app.store, app.config, run_id=run_id, report_link=report_link, send=not only_preview)
    if only_preview:
        click.echo(preview(outcome.plan))
        return
    for delivery in outcome.deliveries:
        line = f"{delivery.status}: {delivery.kind} to {delivery.destination} ({delivery.findings} findings)"
        click.echo(line + (f": {delivery.error}" if delivery.error else ""))
    if not outcome.deliveries:
        click.echo("nothing to send")
    if outcome.failed:
        raise click.exceptions.Exit(ExitCode.INCOMPLETE)


def register(group: click.Group) -> None:
    group.add_command(alert)
