"""The benchmark's correctness logic at a tiny size: the generator's manifest against its own files, and the
precision/recall scoring. Timings are never asserted here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import polars as pl
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("bench_compare", BENCH / "compare.py")
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)
gen = compare.gen

ROWS = 40_000


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "40k"
    gen.generate(out, ROWS, seed=3, chunk_rows=8_000)
    return out


def _manifest(snapshots: Path, entity: str) -> pl.DataFrame:
    return pl.read_parquet(snapshots / "manifest.parquet").filter(pl.col("entity") == entity)


def test_score_counts_stripped_keys_against_reported_truth():
    manifest = pl.DataFrame(
        {"key": ["a", "b", "c", "d"], "kind": ["x", "x", "y", "z"], "report": [True, True, True, False]}
    )
    reported = pl.Series(["a", " b ", "d", "e", None])
    assert compare.score(reported, manifest) == {
        "precision": 0.5,  # a, b right; d (a no-difference kind) and e (untouched) wrong
        "recall": 0.6667,
        "true_pos": 2,
        "false_pos": 2,
        "false_neg": 1,
    }


def test_detection_by_kind_counts_each_kind():
    manifest = pl.DataFrame({"key": ["a", "b", "c"], "kind": ["x", "x", "y"], "report": [True, True, False]})
    counts = compare.detection_by_kind(pl.Series(["a", "c", "c"]), manifest)
    assert counts.rows() == [("x", True, 2, 1), ("y", False, 1, 1)]


def test_generation_is_seeded(snapshots, tmp_path):
    again = tmp_path / "again"
    gen.generate(again, ROWS, seed=3, chunk_rows=8_000)
    for name in ["manifest.parquet", "bluecherry/inventory.parquet", "ometria/orders.parquet"]:
        assert pl.read_parquet(snapshots / name).equals(pl.read_parquet(again / name))


def test_every_kind_is_injected_and_files_match_the_manifest(snapshots):
    manifest = pl.read_parquet(snapshots / "manifest.parquet")
    kinds = {(e, k) for e, k in manifest.select("entity", "kind").unique().iter_rows()}
    expected = {("stock", k) for k in gen.STOCK_KINDS} | {("orders", k) for k in gen.ORDER_KINDS}
    assert kinds == expected
    for entity, file in compare.FILES.items():
        source, target = (
            pl.read_parquet(p).select(compare._key_expr(entity)) for p in compare._paths(snapshots, entity)
        )
        truth = _manifest(snapshots, entity)

        def keys(kind: str, truth=truth) -> set[str]:
            return set(truth.filter(pl.col("kind") == kind)["key"])

        counts = {
            side: frame.group_by("key").len().filter(pl.col("len") > 1)["key"].to_list()
            for side, frame in (("source", source), ("target", target))
        }
        assert set(counts["source"]) == keys("duplicate_in_source"), file
        assert set(counts["target"]) == keys("duplicate_in_target"), file
        assert keys("missing_in_target").isdisjoint(target["key"]) and keys("missing_in_target") <= set(source["key"])
        assert keys("missing_in_source").isdisjoint(source["key"]) and keys("missing_in_source") <= set(target["key"])
        n_missing = len(keys("missing_in_source")), len(keys("missing_in_target"))
        assert source.height == ROWS - n_missing[0] + len(counts["source"])
        assert target.height == ROWS - n_missing[1] + len(counts["target"])


def test_representation_rows_differ_only_in_representation(snapshots):
    target = pl.read_parquet(snapshots / "ometria" / "orders.parquet")
    source = pl.read_parquet(snapshots / "bluecherry" / "orders.parquet")
    truth = _manifest(snapshots, "orders")
    joined = target.with_columns(pl.col("order_id").str.strip_chars()).join(source, on="order_id", suffix="_erp")
    rows = joined.join(truth, left_on="order_id", right_on="key")

    def of(kind: str) -> pl.DataFrame:
        return rows.filter(pl.col("kind") == kind)

    money = of("money_representation")
    assert (money["total"] != money["total_erp"].cast(pl.String)).all()
    parsed = money["total"].str.strip_chars().str.replace_all(",", "").cast(pl.Decimal(18, 2))
    assert (parsed == money["total_erp"]).all()
    email = of("email_representation")
    assert (email["email"] != email["email_erp"]).all()
    assert (email["email"].str.strip_chars().str.to_lowercase() == email["email_erp"]).all()
    zone = of("timestamp_other_zone")
    assert not zone["placed_at"].str.ends_with("Z").any()
    assert (zone["placed_at"].str.to_datetime(time_zone="UTC") == zone["placed_at_erp"]).all()
    assert (target["order_id"].str.strip_chars().str.len_chars() == 10).all()  # leading zeros kept as text


def test_duckdb_floor_reports_exactly_the_manifest(snapshots):
    """The hand-written query and the manifest are two independent readings of one spec: they must agree."""
    for entity in compare.ENTITIES:
        _, keys = compare.run_duckdb(snapshots, entity)
        assert compare.score(keys, _manifest(snapshots, entity))["precision"] == 1.0, entity
        assert compare.score(keys, _manifest(snapshots, entity))["recall"] == 1.0, entity


def test_driftwatch_reports_exactly_the_manifest(snapshots):
    compare.load_driftwatch(snapshots)
    for entity in compare.ENTITIES:
        _, keys = compare.run_driftwatch(snapshots, entity)
        assert compare.score(keys, _manifest(snapshots, entity)) | {"true_pos": 0} == {
            "precision": 1.0, "recall": 1.0, "true_pos": 0, "false_pos": 0, "false_neg": 0
        }, entity  # fmt: skip


def test_a_run_killed_for_memory_is_recorded_as_failed_not_raised(tmp_path):
    killed = tmp_path / "python"
    killed.write_text("#!/bin/sh\nkill -9 $$\n")
    killed.chmod(0o755)
    run = compare.measure_once(killed, "datacompy", tmp_path, "orders", tmp_path / "keys.parquet")
    assert run["failed"].startswith("out of memory after")


def test_a_run_that_fails_otherwise_is_recorded_with_its_last_words(tmp_path):
    failing = tmp_path / "python"
    failing.write_text("#!/bin/sh\necho 'ValueError: no such file' >&2\nexit 3\n")
    failing.chmod(0o755)
    run = compare.measure_once(failing, "duckdb", tmp_path, "stock", tmp_path / "keys.parquet")
    assert run["failed"].startswith("exit 3 after") and run["failed"].endswith("ValueError: no such file")
