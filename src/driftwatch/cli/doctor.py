"""`driftwatch doctor`: check a deployment before trusting it, one line per check."""

from __future__ import annotations

import click
import polars as pl

from driftwatch.cli._common import FORMATS, AppContext, emit, pass_app
from driftwatch.doctor import diagnose, exit_code

MARKS = {"ok": "ok", "config": "FIX", "unreachable": "FAIL"}


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table: one line per check; json or csv: one record per check for scripts.",
)
@pass_app
def doctor(app: AppContext, fmt: str) -> None:
    """Validate the config, name missing environment variables, open the store, and reach every configured
    source and alert destination once with a cheap authenticated call. Nothing is pulled, sent or stored.

    Exit code 0 when all is well, 2 when the config or environment must change (lines marked FIX), 3 when
    a source or destination could not be reached or refused its credentials (lines marked FAIL).

    \b
    Examples:
      driftwatch doctor --config /srv/driftwatch/driftwatch.toml
      driftwatch doctor --format json
    """
    checks = []
    for check in diagnose(app.config_path, app.db_path):
        checks.append(check)
        if fmt == "table":
            click.echo(f"{MARKS[check.status]:<4}  {check.subject}: {check.detail}")
    if fmt != "table":
        columns = {"status": pl.String, "subject": pl.String, "detail": pl.String}
        emit(pl.DataFrame([check.__dict__ for check in checks], schema=columns), fmt)
    raise click.exceptions.Exit(exit_code(checks))


def register(group: click.Group) -> None:
    group.add_command(doctor)
