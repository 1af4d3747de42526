"""The check catalogue on the demo retailer: every injected drift found and nothing else, nothing at all
on a consistent retailer, representation never drift, the same snapshots always the same findings, and
the findings lifecycle across runs. Real DuckDB files, real file drops."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from click.testing import CliRunner

from driftwatch.cli import audit as audit_cli
from driftwatch.cli import cli
from driftwatch.config import parse_config
from driftwatch.demo.generator import generate
from driftwatch.demo.run import demo_config as demo_tables
from driftwatch.engine import acknowledge, audit, findings
from driftwatch.engine.context import AuditContext
from driftwatch.engine.runner import evaluate, load_catalogue
from driftwatch.errors import UserError
from driftwatch.filedrop import load_directory
from driftwatch.store import Store

CAPTURED = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
KEY = ["check_id", "target", "key"]


def demo_config(snapshot_dir: Path):
    """The demo topology, with BlueCherry's status codes from the mapping the export came with."""
    return parse_config(demo_tables(snapshot_dir))


def loaded_store(path: Path, *dirs: Path) -> Store:
    store = Store(path)
    for directory in dirs:
        load_directory(store, directory, demo_config(directory))
    return store


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("drifted"), seed=7, captured_at=CAPTURED).out_dir


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("clean"), seed=7, drift=False, captured_at=CAPTURED).out_dir


@pytest.fixture(scope="module")
def drift_run(drifted, tmp_path_factory):
    store = loaded_store(tmp_path_factory.mktemp("db") / "audit.duckdb", drifted)
    yield store, audit(store, demo_config(drifted))
    store.close()


def test_every_injected_drift_is_found_and_nothing_else(drifted, drift_run):
    answer = pl.read_csv(drifted / "answer_key.csv", infer_schema=False).select(KEY).unique()
    found = drift_run[1].findings.select(KEY).unique()
    per_check = {}
    for check_id in sorted(set(answer["check_id"]) | set(found["check_id"])):
        expected = set(answer.filter(pl.col("check_id") == check_id).iter_rows())
        got = set(found.filter(pl.col("check_id") == check_id).iter_rows())
        if expected != got:
            per_check[check_id] = {"missed": sorted(expected - got), "unexpected": sorted(got - expected)}
    assert per_check == {}


def test_every_catalogue_check_but_snapshot_health_is_exercised(drift_run):
    found = set(drift_run[1].findings["check_id"])
    assert len(found) == 17 and "snapshot_health" not in found


def test_the_severity_rules_the_design_pins(drift_run):
    found = drift_run[1].findings

    def severities(check_id: str, message_part: str) -> set[str]:
        rows = found.filter((pl.col("check_id") == check_id) & pl.col("message").str.contains(message_part))
        assert rows.height, f"no {check_id} finding mentions {message_part!r}"
        return set(rows["severity"])

    assert severities("stock_parity", "oversell risk") == {"critical"}
    assert severities("consent_parity", "subscribed to email") == {"critical"}
    assert severities("order_status_drift", "premature dispatch") == {"critical"}


def test_a_consistent_retailer_has_no_findings(clean, tmp_path):
    with loaded_store(tmp_path / "clean.duckdb", clean) as store:
        result = audit(store, demo_config(clean))
    assert result.findings.height == 0
    assert result.trusted


def test_representation_is_never_drift(clean, tmp_path):
    """Email case and spaces, 19.9 against 19.90, another timezone, codes with leading zeros."""
    copy = tmp_path / "copy"
    _copy_tree(clean, copy)
    _rewrite(copy / "klaviyo" / "customers.csv", lambda f: f.with_columns(
        pl.concat_str(pl.lit("  "), pl.col("email").str.to_uppercase(), pl.lit(" ")).alias("email"),
        pl.col("first_name").str.to_uppercase(),
        pl.col("lifetime_value").str.replace(r"0+$", "").str.replace(r"\.$", ""),
        _in_paris("updated_at"), _in_paris("consent_updated_at"), _in_paris("last_order_at"),
    ))  # fmt: skip
    for target in ("mirakl", "ometria"):
        _rewrite(copy / target / "products.csv", lambda f: f.with_columns(pl.col("price").str.replace(r"0$", "")))
    _rewrite(copy / "klaviyo" / "events.csv", lambda f: f.with_columns(_in_paris("occurred_at")))
    for source in ("bluecherry", "ometria", "klaviyo"):
        _rewrite(copy / source / "customers.csv", lambda f: f.with_columns(
            pl.when(pl.col("country") == "DE").then(pl.lit("01234")).otherwise(pl.col("postcode")).alias("postcode")
        ))  # fmt: skip
    with loaded_store(tmp_path / "repr.duckdb", copy) as store:
        assert store.latest("ometria", "customers").filter(pl.col("postcode") == "01234").height > 0
        result = audit(store, demo_config(copy))
    assert result.findings.select("check_id", "target", "key", "field").to_dicts() == []


def _in_paris(column: str) -> pl.Expr:
    parsed = pl.col(column).str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", strict=False)
    return parsed.dt.convert_time_zone("Europe/Paris").dt.strftime("%Y-%m-%dT%H:%M:%S%:z").alias(column)


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).write_bytes(path.read_bytes())


def _rewrite(path: Path, change) -> None:
    change(pl.read_csv(path, infer_schema=False)).write_csv(path)


def test_the_same_snapshots_give_the_same_findings(drifted, drift_run):
    store, first = drift_run
    again = audit(store, demo_config(drifted))
    columns = [c for c in first.findings.columns if c not in ("run_id", "status")]
    assert again.findings.select(columns).equals(first.findings.select(columns))
    assert set(again.findings["status"]) == {"ongoing"}


def test_lifecycle_new_ongoing_resolved_regressed(tmp_path):
    later = CAPTURED + timedelta(days=1)
    runs = [
        generate(tmp_path / "d1", seed=3, captured_at=CAPTURED).out_dir,
        generate(tmp_path / "c2", seed=3, drift=False, captured_at=later).out_dir,
        generate(tmp_path / "d3", seed=3, captured_at=later + timedelta(days=1)).out_dir,
    ]
    with Store(tmp_path / "life.duckdb") as store:
        load_directory(store, runs[0], demo_config(runs[0]))
        first = audit(store, demo_config(runs[0])).findings
        second = audit(store, demo_config(runs[0])).findings
        load_directory(store, runs[1], demo_config(runs[1]))
        third = audit(store, demo_config(runs[1])).findings
        load_directory(store, runs[2], demo_config(runs[2]))
        fourth = audit(store, demo_config(runs[2])).findings
    assert set(first["status"]) == {"new"} and first.height > 30
    assert set(second["status"]) == {"ongoing"}
    assert set(third["status"]) == {"resolved"}
    assert set(third["fingerprint"]) == set(first["fingerprint"])
    seen = set(first["fingerprint"])
    regressed = fourth.filter(pl.col("fingerprint").is_in(seen))
    assert regressed.height > 30 and set(regressed["status"]) == {"regressed"}
    assert set(fourth.filter(~pl.col("fingerprint").is_in(seen))["status"]) <= {"new"}


def test_auditing_one_check_never_resolves_another(drifted, tmp_path):
    with loaded_store(tmp_path / "one.duckdb", drifted) as store:
        cfg = demo_config(drifted)
        audit(store, cfg)
        only = audit(store, cfg, checks=["stock_parity"]).findings
    assert set(only["check_id"]) == {"stock_parity"}
    assert set(only["status"]) == {"ongoing"}


def test_a_check_finds_the_same_alone_as_beside_the_checks_it_shares_joins_with(drifted, drift_run):
    """Checks comparing the same two views share one join; a view option one check overrides keeps its own."""
    store, _ = drift_run
    cfg = demo_config(drifted)
    cfg.raw["checks"] = {"consent_parity": {"require_email": False}}
    catalogue = load_catalogue(cfg)
    with AuditContext(store, cfg, compares=[s for c in catalogue.values() for s in c.compares]) as ctx:
        together = evaluate(ctx, list(catalogue.values()))
    for check in catalogue.values():
        with AuditContext(store, cfg) as ctx:
            alone = evaluate(ctx, [check])
        assert together.filter(pl.col("check_id") == check.id).equals(alone), check.id


def test_a_truncated_snapshot_makes_the_run_untrusted(clean, tmp_path):
    """snapshot_health needs history: a second drop of the same retailer with klaviyo's customers cut to a
    tenth and an entity left out of mirakl's drop."""
    second = tmp_path / "second"
    _copy_tree(clean, second)
    later = (CAPTURED + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for manifest in second.glob("*/_manifest.json"):
        manifest.write_text(json.dumps({"captured_at": later}))
    _rewrite(second / "klaviyo" / "customers.csv", lambda f: f.head(f.height // 10))
    (second / "mirakl" / "shipments.csv").unlink()
    with loaded_store(tmp_path / "health.duckdb", clean) as store:
        load_directory(store, second, demo_config(second))
        store_result = audit(store, demo_config(second))
    health = store_result.findings.filter(pl.col("check_id") == "snapshot_health")
    assert not store_result.trusted
    assert set(health.select("target", "key", "field").iter_rows()) == {
        ("klaviyo", "customers", "row_count"),
        ("mirakl", "shipments", "captured_at"),
    }


def test_acknowledged_and_muted_findings_stop_failing_the_run(drifted, tmp_path):
    with loaded_store(tmp_path / "ack.duckdb", drifted) as store:
        cfg = demo_config(drifted)
        first = audit(store, cfg)
        critical = first.findings.filter(pl.col("severity") == "critical")["fingerprint"].to_list()
        acknowledge(store, critical[0], until=datetime(2099, 1, 1).date())
        for fingerprint in critical[1:]:
            acknowledge(store, fingerprint, mute=True)
        again = audit(store, cfg)
        listed = findings(store, again.run_id)
    assert first.counts["critical"] == len(critical) > 1
    assert again.counts["critical"] == 0
    assert listed.filter(pl.col("fingerprint") == critical[0])["acknowledged"].item()
    assert listed.filter(pl.col("muted")).height == len(critical) - 1


def _invoke(*args: str):
    if "audit" not in cli.commands:
        audit_cli.register(cli)
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_exit_codes_and_json(drifted, clean, tmp_path):
    config = tmp_path / "driftwatch.toml"
    config.write_text(tomli_w.dumps(demo_tables(drifted)))
    base = ["--config", str(config)]
    clean_run = _invoke(*base, "--db", str(tmp_path / "clean.duckdb"), "audit", "--snapshots", str(clean))
    assert clean_run.exit_code == 0, clean_run.output
    drift_db = ["--db", str(tmp_path / "drift.duckdb")]
    drift_run = _invoke(*base, *drift_db, "audit", "--snapshots", str(drifted))
    assert drift_run.exit_code == 1
    assert "stock_parity" in drift_run.output
    # JSON on stdout for scripts; what the run could not check goes to stderr as `info:` lines.
    shown = json.loads(_invoke(*base, *drift_db, "findings", "--format", "json", "--status", "new").stdout)
    assert {"check_id", "severity", "target", "key", "field", "expected", "actual", "status"} <= set(shown[0])
    with pytest.raises(UserError, match="unknown check"):  # the CLI's main() prints it and exits 2
        _invoke(*base, *drift_db, "audit", "--check", "nope")
    listed = _invoke(*base, "checks", "list", "--format", "json")
    assert len(json.loads(listed.output)) == 18


def test_options_are_overridden_per_target_from_the_config(drifted, drift_run):
    store = drift_run[0]
    cfg = demo_config(drifted)
    cfg.raw["checks"] = {"stock_parity": {"targets": {"klaviyo": {"stock_tolerance": 1000}}}}
    found = audit(store, cfg, checks=["stock_parity"]).findings.filter(pl.col("status") != "resolved")
    assert "klaviyo" not in set(found["target"])
    assert {"mirakl", "ometria", "emarsys"} <= set(found["target"])


def test_a_sku_without_erp_stock_rows_published_downstream_is_an_oversell_risk(clean, tmp_path):
    copy = tmp_path / "copy"
    _copy_tree(clean, copy)
    sku = pl.read_csv(copy / "klaviyo" / "inventory.csv", infer_schema=False).filter(
        pl.col("available").cast(pl.Int64) > 0
    )["sku"][0]
    style, colour, size = sku.split("-")
    _rewrite(copy / "bluecherry" / "inventory.csv", lambda f: f.filter(
        ~((pl.col("Style") == style) & (pl.col("Color #") == colour) & (pl.col("Size") == size))
    ))  # fmt: skip
    with loaded_store(tmp_path / "nostock.duckdb", copy) as store:
        found = audit(store, demo_config(copy), checks=["stock_parity"]).findings
    oversold = found.filter(pl.col("check_id") == "stock_parity")
    assert set(oversold["key"]) >= {sku}
    assert set(oversold.filter(pl.col("key") == sku)["severity"]) == {"critical"}
