"""What every command shares: the config and store it works on, and how it prints tables."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import click
import polars as pl

from driftwatch.config import Config, EngineSettings, load_config, parse_engine
from driftwatch.executors import EXECUTORS
from driftwatch.locations import working
from driftwatch.spreadsheet import to_csv
from driftwatch.store import Store

FORMATS = ("table", "json", "csv")


@dataclass
class AppContext:
    config_path: Path | None = None
    db_path: Path | None = None
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def store_path(self) -> Path:
        return self.db_path or self.config.store_path

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_path)
        return self._store

    def working(self, name: str) -> Path:
        """A folder for working files (plans, pulls) beside the store, created on first use."""
        return working(self.store_path, name)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def shared_options() -> list[click.Option]:
    """--config and --db, which every command takes before or after its name (see DriftwatchGroup).
    They set the command line's AppContext; the last one given wins."""
    return [
        click.Option(
            ["--config"],
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            callback=_remember("config_path"),
            help="Config file (default: ./driftwatch.toml if present, else built-in defaults).",
        ),
        click.Option(
            ["--db"],
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            callback=_remember("db_path"),
            help="DuckDB store (default: the config's store.path, else ./driftwatch.duckdb).",
        ),
    ]


def _remember(attribute: str):
    def callback(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            setattr(ctx.ensure_object(AppContext), attribute, value)

    return callback


def checkpoints_option():
    return click.option(
        "--checkpoints",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Where interrupted pulls keep their pages, to resume without re-reading "
        "(default: pulls/ in the store's working folder, <store name>.work/ beside the store).",
    )


def full_option():
    return click.option(
        "--full",
        is_flag=True,
        help="Pull every record of every source, not only what changed since the last pull "
        "(a full pull also runs on each source's full_every schedule, default 7d).",
    )


def format_option(default: str = "table"):
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="Output format: a table for people, json or csv for scripts.",
    )


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def emit(frame: pl.DataFrame, fmt: str, *, title: str | None = None) -> None:
    """Print a frame as a table, a JSON array of objects, or CSV."""
    if fmt == "json":
        rows = [{k: _jsonable(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
        click.echo(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        sys.stdout.write(to_csv(frame))  # often opened in a spreadsheet: no value read as a formula
    else:
        if title:
            click.echo(click.style(title, bold=True))
        if frame.height == 0:
            click.echo("(none)")
            return
        with pl.Config(
            tbl_rows=200,
            tbl_cols=30,
            fmt_str_lengths=60,
            tbl_hide_dataframe_shape=True,
            tbl_width_chars=220,
            tbl_hide_column_data_types=True,
            tbl_formatting="ASCII_MARKDOWN",
        ):
            click.echo(str(frame))


def engine_options():
    """--executor, --scheduler, --workers and --partitions: where an audit's keyed comparisons run."""

    def decorate(command):
        for option in reversed(
            [
                click.option("--executor", type=click.Choice(EXECUTORS), default=None, help="local or dask."),
                click.option("--scheduler", default=None, metavar="URL", help="Dask scheduler; implies dask."),
                click.option("--workers", type=click.IntRange(min=1), default=None, help="Local Dask workers."),
                click.option(
                    "--partitions", type=click.IntRange(min=1), default=None, help="Parts each comparison splits into."
                ),
            ]
        ):
            command = option(command)
        return command

    return decorate


def engine_settings(
    cfg: Config, executor: str | None, scheduler: str | None, workers: int | None, partitions: int | None
) -> EngineSettings:
    """The config's [engine], with what the command line says instead."""
    base = cfg.engine
    table = {
        "executor": "dask" if scheduler else executor or base.executor.kind,
        "workers": workers or base.executor.workers,
        "partitions": partitions or base.partitions,
    }
    if scheduler or (table["executor"] == "dask" and base.executor.scheduler):
        table["scheduler"] = scheduler or base.executor.scheduler
    problems: list[str] = []
    settings = parse_engine(table, cfg.base, lambda key, text: problems.append(text))
    if problems:
        raise click.UsageError(problems[0])
    return EngineSettings(settings.executor, settings.partitions, base.shared_dir)
