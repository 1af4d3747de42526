"""`driftwatch demo`: the nightly job, end to end, on a generated demo retailer."""

from __future__ import annotations

from pathlib import Path

import click

from driftwatch.cli._common import AppContext, pass_app
from driftwatch.demo.run import run_demo
from driftwatch.errors import UserError
from driftwatch.locations import demo_dir


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the demo's data, config, store and report (default: the per-user data folder, "
    f"{demo_dir()}). Emptied first if an earlier demo made it; any other non-empty folder is refused.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated retailer.")
@pass_app
def demo(app: AppContext, out: Path | None, seed: int) -> None:
    """Run the nightly job end to end on a generated demo retailer: no credentials, no network.

    It generates a fashion retailer on BlueCherry with drift injected, serves each platform's copy from a
    loopback simulator of its API, then pulls, audits, writes the report, previews the alerts, and scores
    the audit against the drift that was injected.

    \b
    Examples:
      driftwatch demo
      driftwatch demo --out /tmp/driftwatch-demo
      driftwatch --config ~/.local/share/driftwatch/demo/driftwatch.toml findings --status new
    """
    if app.config_path is not None or app.db_path is not None:
        raise UserError("the demo writes its own config and store into --out; --config and --db do not apply")
    out = out or demo_dir()
    run_demo(out, seed)
    config = out / "driftwatch.toml"
    click.echo(f"\nEverything is in {out}. Explore it with, for example:")
    click.echo(f"  driftwatch --config {config} findings --status new")
    click.echo(f"  driftwatch --config {config} report")


def register(group: click.Group) -> None:
    group.add_command(demo)
