"""`driftwatch pull`: snapshot live sources into the store."""

from __future__ import annotations

from pathlib import Path

import click

from driftwatch.cli._common import AppContext, checkpoints_option, emit, format_option, full_option, pass_app
from driftwatch.exitcodes import ExitCode
from driftwatch.pull import PullResult, pull_sources, results_frame


@click.command()
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Pull only this source (repeatable). Default: every source configured with base_url, path or sftp_url.",
)
@checkpoints_option()
@full_option()
@format_option()
@pass_app
def pull(app: AppContext, sources: tuple[str, ...], checkpoints: Path | None, full: bool, fmt: str) -> None:
    """Pull every configured source (or --source NAME) and store the snapshots.

    Each source asks only for what changed since its last pull where its platform can list that, and
    merges the changes into the records that pull kept; every `full_every` (default 7d) and whenever the
    kept records cannot be trusted it pulls everything, which is when deletions show. The `kind` and
    `detail` columns say which pull each entity got and why.

    Credentials come from the environment variables the config names (for example KLAVIYO_API_KEY).
    Exit code 3 when any source could not be pulled; what did arrive is stored.

    \b
    Example:
      KLAVIYO_API_KEY=pk_... driftwatch pull --source klaviyo
      driftwatch pull --full          # everything from every source, deletions included
    """
    pulls = checkpoints or app.working("pulls")
    results = pull_sources(app.store, app.config, sources or None, checkpoint_dir=pulls, full=full)
    show_pulls(results, fmt)
    if any(r.error for r in results):
        raise click.exceptions.Exit(ExitCode.INCOMPLETE)


def show_pulls(results: list[PullResult], fmt: str = "table") -> None:
    """The pulled snapshots, then each failure in full on stderr (a table cell would cut it short)."""
    emit(results_frame(results).drop("error") if fmt == "table" else results_frame(results), fmt, title="Pulled")
    for failed in (r for r in results if r.error):
        click.secho(f"pull failed: {failed.source}: {failed.error}", fg="red", err=True)


def register(group: click.Group) -> None:
    group.add_command(pull)
