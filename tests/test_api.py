"""The public Python API (driftwatch/__init__.py), as a scheduler calling Python uses it: load a drop,
audit, read findings, write the report, reconcile a month, decide whether the run failed."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import polars as pl
import pytest

import driftwatch
from driftwatch.config import parse_config
from driftwatch.engine import RunResult

FIXTURE = Path(__file__).parent.parent / "fixtures" / "payouts"


def test_a_night_and_a_month_end_through_the_public_api(tmp_path):
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer", drop)
    cfg = driftwatch.load_config(FIXTURE / "driftwatch.toml")
    with driftwatch.Store(tmp_path / "driftwatch.duckdb") as store:
        loaded = driftwatch.load(store, drop, cfg)
        assert {f.source for f in loaded.files} == {"bluecherry", "mirakl"}
        assert loaded.quarantine.height == 0

        result = driftwatch.audit(store, cfg, checks=["order_presence", "payout_matching"])
        assert isinstance(result, driftwatch.RunResult)
        stored = driftwatch.findings(store)
        assert set(stored["run_id"]) <= {result.run_id}
        assert stored.height == result.findings.height
        assert driftwatch.findings(store, status="resolved").height == 0  # a first run resolves nothing

        report = driftwatch.write_report(store, cfg, out=tmp_path / "out" / "night.html")
        assert report == tmp_path / "out" / "night.html"
        assert result.run_id in report.read_text(encoding="utf-8")

        month = driftwatch.reconcile(store, cfg, "2026-10")
        assert isinstance(month, driftwatch.Reconciliation)
        assert month.marketplace == "mirakl"
        assert month.period.name == "2026-10"
        assert month.matched.height > 0  # the fixture's October lines that agree with the ERP


def test_drifted_follows_audit_fail_on():
    counts = {"critical": 0, "high": 0, "medium": 2, "low": 5}
    result = RunResult("r1", pl.DataFrame(), True, counts)
    assert not driftwatch.drifted(result, parse_config({"audit": {"fail_on": "high"}}))
    assert driftwatch.drifted(result, parse_config({"audit": {"fail_on": "medium"}}))
    assert not driftwatch.drifted(RunResult("r2", pl.DataFrame(), True, dict.fromkeys(counts, 0)), parse_config({}))


def test_a_user_error_is_one_line(tmp_path):
    cfg = parse_config({})
    with driftwatch.Store(tmp_path / "s.duckdb") as store:
        try:
            driftwatch.write_report(store, cfg, out=tmp_path / "r.html")
        except driftwatch.UserError as exc:
            assert "\n" not in str(exc) and "no audit" in str(exc)
        else:
            raise AssertionError("a report without any run must be refused")


def test_the_api_leaves_the_subpackages_reachable():
    import driftwatch.report.build

    assert inspect.ismodule(driftwatch.report) and inspect.ismodule(driftwatch.payouts)
    assert set(driftwatch.__all__) >= {"load", "audit", "findings", "write_report", "reconcile", "drifted"}


def readme_example() -> str:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### From Python", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def night(tmp_path: Path, audit_table: str) -> tuple[Path, Path]:
    """The payouts fixture as a drop, and its configuration copied beside the store it names."""
    drop = tmp_path / "drop"
    shutil.copytree(FIXTURE / "retailer", drop)
    config = tmp_path / "driftwatch.toml"
    config.write_text((FIXTURE / "driftwatch.toml").read_text(encoding="utf-8") + audit_table, encoding="utf-8")
    return config, drop


def test_the_readme_example_runs_as_written(tmp_path):
    """The README's scheduler example, executed. The fixture's October has high findings (payout
    mismatches, an unmapped code) and no critical one: below fail_on it returns the new findings'
    fingerprints, at fail_on it raises."""
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    nightly_audit = namespace["nightly_audit"]

    config, drop = night(tmp_path / "lenient", '\n[audit]\nfail_on = "critical"\n')
    fingerprints = nightly_audit(str(config), str(drop))
    with driftwatch.Store(tmp_path / "lenient" / "driftwatch.duckdb") as store:
        new = driftwatch.findings(store, status="new")
    assert len(fingerprints) == new.height > 0
    assert sorted(fingerprints) == sorted(new["fingerprint"])
    assert set(new["severity"]) == {"high"}

    config, drop = night(tmp_path / "default", "")  # fail_on defaults to high
    with pytest.raises(RuntimeError, match=rf"^{new.height} new finding\(s\); see .*\.html$"):
        nightly_audit(str(config), str(drop))
