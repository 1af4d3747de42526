"""--config and --db work the same on every command, before or after its name; the last one given wins."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from driftwatch.cli import cli


def every_command(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from every_command(command, ctx, (*path, name))


COMMANDS = [path for path, _ in every_command(cli, click.Context(cli))]


def test_every_command_is_reached():
    assert {("audit",), ("findings",), ("load",), ("report",), ("alert",), ("run",), ("pull",), ("init",)} <= set(
        COMMANDS
    )
    assert {("db", "info"), ("repair", "plan"), ("repair", "apply"), ("payouts", "reconcile")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_lists_config_and_db_in_its_help(path):
    shown = CliRunner().invoke(cli, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "--config FILE" in shown.output and "--db FILE" in shown.output


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    """Two stores: one with a loaded drop, one empty; which one a command reads shows which --db won."""
    drop = tmp_path / "drop" / "klaviyo"
    drop.mkdir(parents=True)
    (drop / "customers.csv").write_text("customer_id,email\nC1,a@example.com\n")
    (drop / "_manifest.json").write_text('{"captured_at": "2026-11-23T02:00:00Z"}')
    full, empty = tmp_path / "full.duckdb", tmp_path / "empty.duckdb"
    assert CliRunner().invoke(cli, ["load", str(tmp_path / "drop"), "--db", str(full)]).exit_code == 0
    return {"full": full, "empty": empty}


@pytest.mark.parametrize(
    "args",
    [
        ["--db", "{full}", "db", "info"],
        ["db", "--db", "{full}", "info"],
        ["db", "info", "--db", "{full}"],
        ["--db", "{empty}", "db", "info", "--db", "{full}"],
    ],
    ids=["before", "between group and command", "after", "the last one wins"],
)
def test_db_before_or_after_the_command_name(stores, args):
    args = [a.format(**{k: str(v) for k, v in stores.items()}) for a in args]
    shown = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert [row["source"] for row in json.loads(shown.output)] == ["klaviyo"]


def test_config_after_the_command_name_is_read(tmp_path):
    config = tmp_path / "dw.toml"
    config.write_text('[audit]\nfail_on = "sometimes"\n')
    for args in (["--config", str(config), "checks", "list"], ["checks", "list", "--config", str(config)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0
        assert "audit.fail_on: 'sometimes' is not a severity" in str(result.exception)


def test_init_writes_the_file_config_names(tmp_path):
    target = tmp_path / "etc" / "driftwatch.toml"
    target.parent.mkdir()
    result = CliRunner().invoke(cli, ["init", "--config", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("#")
