"""Getting data in: `init`, `load` and `db info`."""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl

from driftwatch.cli._common import AppContext, emit, format_option, pass_app
from driftwatch.config import DEFAULT_CONFIG_NAME
from driftwatch.errors import UserError
from driftwatch.filedrop import LoadReport, load_directory
from driftwatch.files import write_text
from driftwatch.starter import STARTER_CONFIG

QUARANTINE_SHOWN = 20


@click.command()
@click.option(
    "--path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"File to write (default: --config, else ./{DEFAULT_CONFIG_NAME}).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
def init(app: AppContext, path: Path | None, force: bool) -> None:
    """Write a commented starter driftwatch.toml.

    \b
    Examples:
      driftwatch init && $EDITOR driftwatch.toml
      driftwatch --config /etc/driftwatch/driftwatch.toml init
    """
    path = path or app.config_path or Path(DEFAULT_CONFIG_NAME)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; use --force to overwrite it")
    write_text(path, STARTER_CONFIG)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@format_option()
@pass_app
def load(app: AppContext, directory: Path, fmt: str) -> None:
    """Load a file-drop snapshot directory into the store.

    DIRECTORY holds one folder per source and one file per entity: DIRECTORY/<source>/<entity>.csv (or .parquet,
    .jsonl), with an optional DIRECTORY/<source>/_manifest.json giving {"captured_at": "..."}.
    Bad rows are quarantined with file, line, column and reason; good rows load. Loading the same files
    again changes nothing.

    \b
    Example:
      driftwatch load exports/2026-11-23 --format json
    """
    report = load_directory(app.store, directory, app.config)
    print_load_report(report, fmt)


def load_summary(report: LoadReport) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": [f.source for f in report.files],
            "entity": [f.entity for f in report.files],
            "rows": [f.rows for f in report.files],
            "quarantined": [f.quarantined for f in report.files],
            "status": ["loaded" if f.loaded else "unchanged" for f in report.files],
            "snapshot_id": [f.snapshot_id for f in report.files],
            "note": [f.note for f in report.files],
        },
        schema_overrides={"note": pl.String},
    )


def print_load_report(report: LoadReport, fmt: str) -> None:
    summary = load_summary(report)
    if fmt != "table":
        emit(summary, fmt)
        return
    emit(summary.drop("note"), fmt, title=f"Loaded {report.directory}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.quarantine.height:
        shown = report.quarantine.head(QUARANTINE_SHOWN)
        emit(shown, fmt, title=f"\nQuarantined: {report.quarantine.height} problem(s) (first {shown.height})")
        click.echo("All quarantined rows: driftwatch db quarantine")


@click.group()
def db() -> None:
    """Inspect the store."""


@db.command()
@format_option()
@pass_app
def info(app: AppContext, fmt: str) -> None:
    """Show the store's schema version and its latest snapshot of every source and entity.

    \b
    Example:
      driftwatch --db nightly.duckdb db info
    """
    store = app.store
    latest = store.latest_snapshots()
    if fmt == "table":
        click.echo(f"store: {store.path}  schema version: {store.schema_version()}")
    emit(latest, fmt, title="Latest snapshots")


@db.command()
@click.option("--snapshot", "snapshot_id", default=None, help="Only this snapshot's quarantined rows.")
@format_option()
@pass_app
def quarantine(app: AppContext, snapshot_id: str | None, fmt: str) -> None:
    """List quarantined rows with file, line, column, value and reason.

    \b
    Example:
      driftwatch db quarantine --format csv > quarantine.csv
    """
    emit(app.store.quarantine(snapshot_id), fmt, title="Quarantined rows")


def register(group: click.Group) -> None:
    for command in (init, load, db):
        group.add_command(command)
