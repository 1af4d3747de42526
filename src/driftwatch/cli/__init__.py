"""The `driftwatch` command: a thin layer over the library. Every command has --help with an example.

Exit codes are a contract with schedulers (driftwatch.exitcodes): `main` turns every way a command can end
into one of them, so a crash never looks like drift.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from driftwatch.cli import alert, audit, demo, doctor, fleet, incidents, payouts, pull, repair, report, run, snapshots
from driftwatch.cli._common import AppContext, shared_options
from driftwatch.cli._crash import internal_error
from driftwatch.errors import IncompleteError, UserError, first_line
from driftwatch.exitcodes import ExitCode
from driftwatch.files import refused_write
from driftwatch.redaction import redacting_output


class DriftwatchGroup(click.Group):
    """Gives every command, and every command of a subgroup, the --config and --db options, so they work
    the same before or after a command's name (`driftwatch --db x.duckdb audit` = `driftwatch audit --db
    x.duckdb`). They are added when a command is looked up, so commands registered later get them too."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _share_options(command)
        return command


def _share_options(command: click.Command) -> None:
    present = {param.name for param in command.params}
    command.params.extend(option for option in shared_options() if option.name not in present)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _share_options(sub)


@click.group(
    cls=DriftwatchGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    params=shared_options(),
)
@click.version_option(package_name="driftwatch")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Find where downstream platforms have drifted from the ERP, report it, alert on it, repair it.

    \b
    Example, auditing a directory of exports:
      driftwatch load exports/2026-11-23
      driftwatch audit
      driftwatch findings --format json

    \b
    Exit codes: 0 clean, 1 drift, 2 something to fix first (usage, configuration, data, disk full),
    3 incomplete (a source not pulled, an alert or a push not delivered: run it again), 70 internal error.
    """
    ctx.call_on_close(ctx.ensure_object(AppContext).close)


for module in (snapshots, pull, audit, incidents, report, alert, run, fleet, repair, payouts, demo, doctor):
    module.register(cli)


def run_cli(args: Sequence[str] | None = None) -> int:
    """Run one command line and return its exit code (driftwatch.exitcodes). Everything it prints is
    redacted on the way out (driftwatch.redaction): no credential reaches a terminal or a scheduler's log."""
    with redacting_output():
        return _run(args)


def _run(args: Sequence[str] | None) -> int:
    try:
        # Outside standalone mode click returns a command's exit code instead of exiting with it.
        code = cli.main(list(args) if args is not None else None, prog_name="driftwatch", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return ExitCode.USER_ERROR
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "driftwatch"
        click.echo(f"error: {exc.format_message()} (see {where} --help)", err=True)
        return ExitCode.USER_ERROR
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return ExitCode.USER_ERROR
    except IncompleteError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.INCOMPLETE
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.USER_ERROR
    except BrokenPipeError:
        return ExitCode.USER_ERROR  # whatever read the output stopped reading: nothing to print it on
    except Exception as exc:
        reason = refused_write(exc)
        if reason is not None:  # a full disk met inside DuckDB or polars: the operator must act, not a bug
            click.echo(f"error: the machine refused a write ({reason}): {first_line(exc)}", err=True)
            return ExitCode.USER_ERROR
        return internal_error(exc)
    return code if isinstance(code, int) else ExitCode.CLEAN


def main() -> None:
    sys.exit(run_cli())
