"""`driftwatch report`: the HTML report of a run, and its findings as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import click

from driftwatch.cli._common import AppContext, pass_app
from driftwatch.report import export_findings
from driftwatch.report.build import build_report, load_run, report_settings


@click.command()
@click.option("--run", "run_id", default=None, help="Audit run to report (default: the latest).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="HTML file to write (default: <report.out_dir>/driftwatch-<run id>.html).",
)
@click.option(
    "--export",
    "exports",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the run's findings to this .csv or .parquet file (repeatable).",
)
@pass_app
def report(app: AppContext, run_id: str | None, out: Path | None, exports: tuple[Path, ...]) -> None:
    """Write a run's self-contained HTML report (opens offline) and print its path.

    \b
    Examples:
      driftwatch report
      driftwatch report --run 20261123T060000-1a2b3c --out /srv/www/driftwatch/today.html
      driftwatch report --export findings.csv --export findings.parquet
    """
    settings = report_settings(app.config)
    path = build_report(app.store, settings, run_id, out)
    click.echo(str(path))
    if exports:
        _, found = load_run(app.store, run_id)
        for target in exports:
            click.echo(str(export_findings(found, target, mask=settings.mask_emails)))


def register(group: click.Group) -> None:
    group.add_command(report)
