"""`driftwatch pull`: snapshot live sources into the store."""

from __future__ import annotations

from pathlib import Path

import click

from driftwatch.cli._common import AppContext, emit, format_option, pass_app
from driftwatch.pull import pull_sources, results_frame

EXIT_PULL_FAILED = 1


@click.command()
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="Pull only this source (repeatable). Default: every source configured with base_url, path or sftp_url.",
)
@click.option(
    "--checkpoints",
    type=click.Path(path_type=Path),
    default=Path(".driftwatch/pulls"),
    show_default=True,
    help="Where interrupted pulls keep their pages, to resume without re-reading.",
)
@format_option()
@pass_app
def pull(app: AppContext, sources: tuple[str, ...], checkpoints: Path, fmt: str) -> None:
    """Pull every configured source (or --source NAME) and store the snapshots.

    Credentials come from the environment variables the config names (for example KLAVIYO_API_KEY).
    Exit code 1 when any source failed; what did arrive is stored.

    \b
    Example:
      KLAVIYO_API_KEY=pk_... driftwatch pull --source klaviyo
    """
    results = pull_sources(app.store, app.config, sources or None, checkpoint_dir=checkpoints)
    emit(results_frame(results), fmt, title="Pulled")
    if any(r.error for r in results):
        raise click.exceptions.Exit(EXIT_PULL_FAILED)


def register(group: click.Group) -> None:
    group.add_command(pull)
