"""The `driftwatch` command: a thin layer over the library. Every command has --help with an example."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftwatch.cli import alert, audit, payouts, pull, repair, report, run, snapshots
from driftwatch.cli._common import AppContext
from driftwatch.errors import UserError

EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default: ./driftwatch.toml if present, else built-in defaults).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path),
    default=None,
    help="DuckDB store (default: the config's store.path, else ./driftwatch.duckdb).",
)
@click.version_option(package_name="driftwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, db_path: Path | None) -> None:
    """Find where downstream platforms have drifted from the ERP, report it, alert on it, repair it.

    \b
    Example, auditing a directory of exports:
      driftwatch load exports/2026-11-23
      driftwatch audit
      driftwatch findings --format json
    """
    app = AppContext(config_path, db_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


for module in (snapshots, pull, audit, report, alert, run, repair, payouts):
    module.register(cli)


def main() -> None:
    try:
        # Outside standalone mode click returns a command's exit code instead of exiting with it.
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
