"""Keyed comparisons in parts and on a Dask cluster: the same findings, record for record, as the
one-process audit, on the demo retailer and on hand-built frames where rows meet across a hash split
(groups of order lines, keys one side lacks, null keys)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import tomli_w

from driftwatch.cli import run_cli
from driftwatch.config import EngineSettings, parse_config
from driftwatch.demo.generator import generate
from driftwatch.demo.run import demo_config
from driftwatch.engine import audit, partitions
from driftwatch.errors import UserError
from driftwatch.executors import Executor
from driftwatch.exitcodes import ExitCode
from driftwatch.filedrop import load_directory
from driftwatch.store import IncomingSnapshot, Store

CONTENT = ["check_id", "severity", "source", "target", "entity", "key", "field", "expected", "actual", "impact"]
CONTENT += ["currency", "message", "repair_action", "fingerprint"]
CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)


def content(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(CONTENT).with_columns(pl.col("impact").cast(pl.String)).sort(CONTENT, nulls_last=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo retailer's drop loaded into a store, its config file beside it."""
    root = tmp_path_factory.mktemp("partitions")
    snapshots = generate(root / "snapshots", seed=7).out_dir
    tables = demo_config(snapshots)
    (root / "driftwatch.toml").write_text(tomli_w.dumps({**tables, "store": {"path": "audit.duckdb"}}))
    cfg = parse_config(tables, root / "driftwatch.toml")
    with Store(root / "audit.duckdb") as store:
        load_directory(store, snapshots, cfg)
        whole = content(audit(store, cfg).findings)
    return root, cfg, whole


def test_the_demo_audit_in_parts_gives_the_same_findings(demo, monkeypatch):
    root, cfg, whole = demo
    joined = []
    real = partitions.join_part

    def counted(*args):
        joined.append(args[2])
        return real(*args)

    monkeypatch.setattr(partitions, "join_part", counted)
    with Store(root / "audit.duckdb") as store:
        parted = content(audit(store, cfg, engine=EngineSettings(Executor(), partitions=3)).findings)
    assert whole.height > 50
    assert parted.equals(whole)
    # Every comparison's join ran as three parts (the part numbers 0, 1, 2 of each join).
    assert len(joined) >= 3 * 8 and sorted(set(joined)) == [0, 1, 2] and len(joined) % 3 == 0


def test_the_demo_audit_on_a_dask_cluster_of_two_workers_gives_the_same_findings(demo, capsys):
    root, _, whole = demo
    args = ["audit", "--config", str(root / "driftwatch.toml"), "--format", "json"]
    code = run_cli([*args, "--executor", "dask", "--workers", "2", "--partitions", "4"])
    on_dask = pl.DataFrame(json.loads(capsys.readouterr().out), infer_schema_length=None)
    assert code == ExitCode.DRIFT
    assert content(on_dask.with_columns(pl.col("impact").cast(pl.Decimal(18, 4)))).equals(whole)


def test_parts_written_to_a_shared_folder_are_removed_after_the_audit(demo, tmp_path):
    root, cfg, whole = demo
    shared = tmp_path / "shared"
    engine = EngineSettings(Executor(), partitions=2, shared_dir=shared)
    with Store(root / "audit.duckdb") as store:
        assert content(audit(store, cfg, engine=engine).findings).equals(whole)
    assert [p.name for p in shared.iterdir() if p.name != ".lock"] == []


ENGINE_ERRORS = [
    ({"executor": "spark"}, "executor must be one of local, dask"),
    ({"partitions": 0}, "engine.partitions: expected a positive whole number"),
    ({"workers": "2"}, "workers must be a positive whole number"),
    ({"scheduler": "tcp://h:8786"}, "only for the dask executor"),
    ({"executor": "dask", "scheduler": "h:8786"}, "tcp://"),
    ({"shared_dir": "hdfs://cluster/parts"}, "engine.shared_dir: a folder every worker mounts at the same path"),
    ({"partition": 4}, "engine.partition: unknown key (did you mean 'partitions'?)"),
]


@pytest.mark.parametrize(("table", "message"), ENGINE_ERRORS)
def test_engine_settings_are_checked_with_the_config(table, message):
    with pytest.raises(UserError) as raised:
        parse_config({"engine": table})
    assert message in str(raised.value)


def test_engine_defaults_one_part_here_two_per_dask_worker():
    assert not parse_config({}).engine.splits
    assert parse_config({"engine": {"executor": "dask", "workers": 3}}).engine.parts == 6
    assert parse_config({"engine": {"partitions": 5}}).engine.parts == 5
    assert parse_config({"engine": {"shared_dir": "file:///mnt/parts"}}).engine.shared_dir == Path("/mnt/parts")
    assert parse_config({"engine": {"shared_dir": "s3://b/parts/"}}).engine.shared_dir == "s3://b/parts"


def test_without_the_dask_extra_the_dask_executor_is_a_one_line_error(demo, capsys, monkeypatch):
    root, _, _ = demo
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if `driftwatch[dask]` were not installed
    code = run_cli(["audit", "--config", str(root / "driftwatch.toml"), "--executor", "dask"])
    err = capsys.readouterr().err
    assert code == ExitCode.USER_ERROR
    assert err == "error: the dask executor needs the dask extra: pip install 'driftwatch[dask]'\n"


def test_a_bad_scheduler_on_the_command_line_is_a_usage_error(demo, capsys):
    root, _, _ = demo
    code = run_cli(["audit", "--config", str(root / "driftwatch.toml"), "--scheduler", "localhost:8786"])
    assert code == ExitCode.USER_ERROR
    assert "scheduler must be a Dask scheduler address" in capsys.readouterr().err


def order_tables(side: str) -> list[IncomingSnapshot]:
    """60 orders of 1-3 lines; the target differs in some lines' quantities and prices, lacks some lines
    and one order, and has a line and an order the ERP has not."""
    placed = CAPTURED - timedelta(days=2)
    order_ids = [f"SO{n:04d}" for n in range(60)] + (["SO9999"] if side == "target" else [])
    if side == "target":
        order_ids.remove("SO0007")
    lines = []
    for order_id in order_ids:
        n = int(order_id[2:])
        for line_no in range(1, 2 + n % 3):
            qty, price = 1 + line_no, Decimal("10.00") + n
            if side == "target" and n % 7 == 3 and line_no == 1:
                qty += 1
            if side == "target" and n % 11 == 5 and line_no == 2:
                price += Decimal("0.50")
            if side == "target" and n % 13 == 4 and line_no == 2:
                continue
            lines.append((order_id, line_no, f"SKU{n % 5}", qty, price))
        if side == "target" and n % 17 == 2:
            lines.append((order_id, 9, "SKU9", 1, Decimal("1.00")))
    orders = pl.DataFrame(
        {
            "order_id": order_ids,
            "channel": ["web"] * len(order_ids),
            "status": ["shipped"] * len(order_ids),
            "placed_at": [placed] * len(order_ids),
            "currency": ["EUR"] * len(order_ids),
        }
    )
    order_lines = pl.DataFrame(
        lines, schema=["order_id", "line_no", "sku", "qty_ordered", "unit_price"], orient="row"
    ).with_columns(
        pl.col("line_no").cast(pl.Int64),
        pl.col("qty_ordered").cast(pl.Int64),
        pl.col("unit_price").cast(pl.Decimal(18, 4)),
    )
    source = "bluecherry" if side == "source" else "ometria"
    return [
        IncomingSnapshot(source, "orders", CAPTURED, orders),
        IncomingSnapshot(source, "order_lines", CAPTURED, order_lines),
    ]


@pytest.mark.parametrize("parts", [2, 7])
def test_order_lines_split_by_order_meet_their_whole_order_in_every_part(tmp_path, parts):
    cfg = parse_config(
        {"feeds": [{"source": "bluecherry", "target": "ometria", "entities": ["orders", "order_lines"]}]}
    )
    checks = ["order_value_drift", "order_presence"]
    with Store(tmp_path / "s.duckdb") as store:
        store.ingest(order_tables("source") + order_tables("target"))
        whole = content(audit(store, cfg, checks=checks).findings)
        parted = content(audit(store, cfg, checks=checks, engine=EngineSettings(Executor(), partitions=parts)).findings)
    assert parted.equals(whole)
    found = set(whole.filter(pl.col("check_id") != "snapshot_health").select("check_id", "key").rows())
    assert ("order_presence", "SO0007") in found and ("order_presence", "SO9999") in found
    assert len({key for check, key in found if check == "order_value_drift"}) >= 10
