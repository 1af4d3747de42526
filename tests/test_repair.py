"""Repair: plans, guard rails, and an apply that survives being killed at any point without pushing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from killed_apply import kill_apply

from driftwatch.config import Config, default_feeds
from driftwatch.connectors.bluecherry.push import Pusher as BlueCherryPusher
from driftwatch.connectors.bluecherry.push import outbox_files
from driftwatch.engine.findings import FINDING_SCHEMA, record_run
from driftwatch.errors import UserError
from driftwatch.repair import apply_plan, load_plan, make_plan, refusals
from driftwatch.store import IncomingSnapshot, Store

CAPTURED = datetime(2026, 11, 23, 2, tzinfo=UTC)


def finding(**values) -> dict:
    row = dict.fromkeys(FINDING_SCHEMA)
    row.update(severity="high", source="bluecherry", entity="payout_lines", field="journal_entry")
    row.update(values)
    return row


def fee_findings(n: int) -> pl.DataFrame:
    rows = [
        finding(
            check_id="payout_matching",
            target="mirakl",
            key=f"TL-{i}",
            expected=f"-{i}.50",
            actual=None,
            repair_action="create_journal_entry",
            message="fee without a journal entry",
        )
        for i in range(1, n + 1)
    ]
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def audited_store(path: Path, found: pl.DataFrame, *, trusted: bool = True) -> list[str]:
    with Store(path) as store:
        results = store.ingest(
            [
                IncomingSnapshot(
                    "mirakl", "payout_lines", CAPTURED, pl.DataFrame({"line_id": [f"TL-{i}" for i in range(1, 6)]})
                ),
                IncomingSnapshot(
                    "mirakl",
                    "inventory",
                    CAPTURED,
                    pl.DataFrame({"sku": [f"S{i}" for i in range(40)], "location": ["*"] * 40}),
                ),
            ]
        )
        ids = [r.snapshot.snapshot_id for r in results]
        record_run(
            store,
            found,
            checks=["payout_matching", "stock_parity"],
            snapshot_ids=ids,
            trusted=trusted,
            started_at=CAPTURED + timedelta(hours=1),
        )
    return ids


@pytest.fixture
def cfg(tmp_path) -> Config:
    return Config(feeds=default_feeds(), raw={"sources": {"bluecherry": {"outbox": str(tmp_path / "outbox")}}})


def test_plan_shows_before_and_after_and_routes_journal_entries_to_the_erp(tmp_path, cfg):
    audited_store(tmp_path / "s.duckdb", fee_findings(3))
    with Store(tmp_path / "s.duckdb") as store:
        plan = make_plan(store, cfg)
    assert [(a.platform, a.target, a.key, a.before, a.after) for a in plan.actions] == [
        ("bluecherry", "mirakl", "TL-1", None, "-1.50"),
        ("bluecherry", "mirakl", "TL-2", None, "-2.50"),
        ("bluecherry", "mirakl", "TL-3", None, "-3.50"),
    ]
    saved = load_plan(plan.save(tmp_path / "plan.json"))
    assert saved == plan


def test_apply_pushes_each_action_once_and_a_rerun_pushes_nothing(tmp_path, cfg):
    audited_store(tmp_path / "s.duckdb", fee_findings(3))
    with Store(tmp_path / "s.duckdb") as store:
        plan = make_plan(store, cfg)
        pusher = BlueCherryPusher(cfg.source("bluecherry"))
        first = apply_plan(store, cfg, plan, {"bluecherry": pusher})
        second = apply_plan(store, cfg, plan, {"bluecherry": pusher})
    assert first.pushed == 3 and set(first.verdicts.values()) == {"repaired"}
    assert second.pushed == 0 and second.already_done == 3
    assert len(outbox_files(tmp_path / "outbox")) == 1


def test_untrusted_runs_stale_plans_and_drastic_plans_are_refused(tmp_path, cfg):
    stock = pl.DataFrame(
        [
            finding(
                check_id="stock_parity",
                target="mirakl",
                entity="inventory",
                key=f"S{i}",
                field="available",
                expected="0",
                actual="4",
                repair_action="set_stock",
            )
            for i in range(5)
        ],
        schema=FINDING_SCHEMA,
    )
    audited_store(tmp_path / "s.duckdb", stock, trusted=False)
    with Store(tmp_path / "s.duckdb") as store:
        plan = make_plan(store, cfg)
        reasons = refusals(plan, store, cfg)
        assert any("untrusted" in r for r in reasons)
        assert any("5 of 40 SKUs (12.5%) would go to zero stock" in r for r in reasons)
        assert refusals(plan, store, cfg, override_guards=True, allow_untrusted=True) == []
        with pytest.raises(UserError, match="refusing to apply"):
            apply_plan(store, cfg, plan, {})
        store.ingest(
            [
                IncomingSnapshot(
                    "mirakl",
                    "inventory",
                    CAPTURED + timedelta(days=1),
                    pl.DataFrame({"sku": ["S1"], "location": ["*"]}),
                )
            ]
        )
        assert any(
            "predates the latest mirakl/inventory snapshot" in r
            for r in refusals(plan, store, cfg, override_guards=True, allow_untrusted=True)
        )


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_killed_apply_resumes_without_pushing_anything_twice(tmp_path, cfg, when):
    audited_store(tmp_path / "s.duckdb", fee_findings(4))
    with Store(tmp_path / "s.duckdb") as store:
        plan_path = make_plan(store, cfg).save(tmp_path / "plan.json")
    config = {"sources": {"bluecherry": {"outbox": str(tmp_path / "outbox")}}}
    kill_apply(
        "bluecherry",
        db=tmp_path / "s.duckdb",
        plan_path=plan_path,
        config=config,
        batch_size=1,
        kill_at=2,
        when=when,
        env={},
    )
    pushed_before_resume = len(outbox_files(tmp_path / "outbox"))
    assert pushed_before_resume == (1 if when == "before" else 2)

    with Store(tmp_path / "s.duckdb") as store:
        pusher = BlueCherryPusher(cfg.source("bluecherry"))
        pusher.batch_size = 1
        report = apply_plan(store, cfg, load_plan(plan_path), {"bluecherry": pusher})
    written = pl.concat([pl.read_csv(p, infer_schema=False) for p in outbox_files(tmp_path / "outbox")])
    assert sorted(written["key"]) == ["TL-1", "TL-2", "TL-3", "TL-4"]  # every record, each exactly once
    assert report.settled_in_doubt == (1 if when == "after" else 0)
    assert set(report.verdicts.values()) == {"repaired"}


def test_cli_plan_dry_run_then_apply(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from driftwatch.cli import cli

    audited_store(tmp_path / "s.duckdb", fee_findings(2))
    config = tmp_path / "driftwatch.toml"
    config.write_text(f'[sources.bluecherry]\noutbox = "{tmp_path / "outbox"}"\n')
    monkeypatch.chdir(tmp_path)
    base = ["--config", str(config), "--db", str(tmp_path / "s.duckdb"), "repair"]
    runner = CliRunner()
    planned = runner.invoke(cli, [*base, "plan", "--out", "plan.json"])
    assert planned.exit_code == 0, planned.output
    assert "TL-1" in planned.output and "-1.50" in planned.output
    dry = runner.invoke(cli, [*base, "apply", "plan.json"])
    assert dry.exit_code == 0 and "nothing is pushed" in dry.output
    assert not (tmp_path / "outbox").exists()
    declined = runner.invoke(cli, [*base, "apply", "plan.json", "--apply"], input="n\n")
    assert declined.exit_code != 0 and not (tmp_path / "outbox").exists()
    applied = runner.invoke(cli, [*base, "apply", "plan.json", "--apply", "--yes", "--format", "json"])
    assert applied.exit_code == 0, applied.output
    assert applied.output.count('"result": "repaired"') == 2
    assert len(outbox_files(tmp_path / "outbox")) == 1


def test_source_folders_are_relative_to_the_config_file_and_the_outbox_defaults_beside_the_store(tmp_path, monkeypatch):
    from driftwatch.config import load_config
    from driftwatch.repair import pusher_for

    home = tmp_path / "etc"
    home.mkdir()
    (home / "driftwatch.toml").write_text('[sources.bluecherry]\npath = "exports"\n', encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(home / "driftwatch.toml")
    assert cfg.source("bluecherry")["path"] == str(home / "exports")
    assert pusher_for("bluecherry", cfg).outbox == home / "driftwatch.work" / "outbox" / "bluecherry"

    (home / "driftwatch.toml").write_text('[sources.bluecherry]\noutbox = "to-erp"\n', encoding="utf-8")
    assert pusher_for("bluecherry", load_config(home / "driftwatch.toml")).outbox == home / "to-erp"
