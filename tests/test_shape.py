"""The shape test: every non-key column of every entity is optional. Each one is dropped in turn from a demo
drop (from the systems of record's files, then from the targets'), and the drop is audited through the
command line: the exit code is 0 or 1, never a traceback, and every check whose findings changed says so
in a note naming the dropped column. A dropped column no check reads changes nothing.

Each variant audits with the checks that read the entity, over the snapshots those checks read (a check
file's `reads`, which the engine enforces), so the test stays quick enough for `make test`."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from click.testing import CliRunner

from driftwatch.cli import audit as audit_cli
from driftwatch.cli import cli
from driftwatch.config import parse_config
from driftwatch.demo.generator import generate
from driftwatch.demo.run import demo_config
from driftwatch.engine import findings, latest_run_id, load_catalogue, run_notes
from driftwatch.entities import ENTITIES
from driftwatch.filedrop import read_directory
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
FINDING = ["check_id", "target", "key", "field"]


@dataclasses.dataclass(frozen=True)
class Drop:
    tables: dict
    snapshots: list[IncomingSnapshot]
    systems_of_record: frozenset[str]
    empty_store: Path  # migrated once, copied for every variant


@pytest.fixture(scope="module")
def drop(tmp_path_factory) -> Drop:
    directory = generate(tmp_path_factory.mktemp("shape"), seed=5, captured_at=CAPTURED).out_dir
    tables = demo_config(directory)
    snapshots = [snap for snap, *_ in read_directory(directory, parse_config(tables))]
    empty = tmp_path_factory.mktemp("empty") / "empty.duckdb"
    Store(empty).close()
    return Drop(tables, snapshots, frozenset(feed["source"] for feed in tables["feeds"]), empty)


@pytest.fixture(scope="module")
def baseline(drop, tmp_path_factory):
    return _audit(tmp_path_factory.mktemp("baseline"), drop, drop.snapshots, checks=[])


def _audit(tmp_path: Path, drop: Drop, snapshots: list[IncomingSnapshot], checks: list[str]):
    config = tmp_path / "driftwatch.toml"
    config.write_text(tomli_w.dumps(drop.tables), encoding="utf-8")
    catalogue = load_catalogue(parse_config(drop.tables))
    read = {entity for check in checks or catalogue for entity in catalogue[check].reads}
    db = tmp_path / "shape.duckdb"
    shutil.copyfile(drop.empty_store, db)
    with Store(db) as store:
        store.ingest(snap for snap in snapshots if snap.entity in read)
    if "audit" not in cli.commands:
        audit_cli.register(cli)
    args = ["--config", str(config), "--db", str(db), "audit", *(a for c in checks for a in ("--check", c))]
    invoked = CliRunner().invoke(cli, args, catch_exceptions=False)  # a traceback fails the test here
    assert invoked.exit_code in (0, 1), invoked.output
    with Store(db) as store:
        run_id = latest_run_id(store)
        return findings(store, run_id).select(FINDING), run_notes(store, run_id), invoked.stdout


def _variants(drop: Drop, entity: str) -> list[tuple[str, str, list[IncomingSnapshot], set[str]]]:
    """(column, role, snapshots with the column dropped from that role's files, sources it was dropped from)."""
    variants = []
    for column in ENTITIES[entity].columns:
        if column in ENTITIES[entity].key:
            continue
        for role in ("system of record", "target"):
            touched, snapshots = set(), []
            for snap in drop.snapshots:
                mine = (snap.source in drop.systems_of_record) == (role == "system of record")
                if snap.entity == entity and mine and column in snap.frame.columns:
                    touched.add(snap.source)
                    snap = dataclasses.replace(snap, frame=snap.frame.drop(column))
                snapshots.append(snap)
            if touched:
                variants.append((column, role, snapshots, touched))
    return variants


@pytest.mark.parametrize("entity", [e for e in ENTITIES if len(ENTITIES[e].columns) > len(ENTITIES[e].key)])
def test_each_optional_column_dropped_in_turn_is_audited_and_named(drop, baseline, entity, tmp_path):
    reading = [c.id for c in load_catalogue(parse_config(drop.tables)).values() if entity in c.reads]
    base_found, base_notes, _ = baseline
    problems = []
    for i, (column, role, snapshots, touched) in enumerate(_variants(drop, entity)):
        where = tmp_path / f"v{i}"
        where.mkdir()
        found, notes, printed = _audit(where, drop, snapshots, reading)
        new_notes = notes.join(base_notes, on=["check_id", "target", "source", "entity", "column", "kind"], how="anti")
        # A note that is new names what was dropped: the column, of an entity file it was dropped from.
        untrue = new_notes.filter(
            (pl.col("column") != column) | (pl.col("entity") != entity) | ~pl.col("source").is_in(list(touched))
        )
        # A check whose findings changed says why, for that target.
        before = base_found.filter(pl.col("check_id").is_in(reading))
        changed = pl.concat([found.join(before, on=FINDING, how="anti"), before.join(found, on=FINDING, how="anti")])
        unexplained = (
            changed.select("check_id", "target").unique().join(new_notes, on=["check_id", "target"], how="anti")
        )
        unprinted = [m for m in new_notes["message"] if f"info: {m}" not in printed]
        if untrue.height or unexplained.height or unprinted:
            problems.append(
                f"{entity}.{column} dropped from the {role}'s files: unexplained {unexplained.rows()}, "
                f"untrue notes {untrue['message'].to_list()}, not printed {unprinted}"
            )
    assert not problems, "\n".join(problems)
