"""Benchmark: `driftwatch load` of one large file, beside DuckDB reading the same file into a table.

    .venv/bin/python bench/load_file.py --rows 10M --format parquet --runs 3
    .venv/bin/python bench/load_file.py --rows 1M --format csv parquet
    .venv/bin/python bench/load_file.py --rows 10M --baseline /tmp/dw-base/src   # another commit beside

One file of orders (`ometria/orders.<format>`: ERP-style order numbers with leading zeros, emails, statuses,
ISO timestamps, totals written as text), generated once per size and format into the work folder. Each
round runs, each step in a fresh process:

- `duckdb`: `CREATE TABLE orders AS SELECT * FROM read_parquet(file)` (or `read_csv`) into a new database
  file, then CHECKPOINT: the floor for getting this file into a DuckDB file;
- `load`: `driftwatch.load_directory` (what `driftwatch load DIR` runs) into a new store: read, parse,
  validate, quarantine, store;
- `baseline load` (with `--baseline SRC`, another commit's `src` exported with `git archive`): the same
  with PYTHONPATH=SRC, so two commits are measured in the same hour on the same file.

Peak memory is each process's own VmHWM (see compare.peak_rss_mib). Prints one JSON object with the
median wall time and peak memory of each step and the ratio of the medians, and writes it to
results/load_file-<rows>-<format>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from compare import RESULTS, cpu_s, driftwatch_revision, peak_rss_mib
from generate import parse_rows, size_label

CAPTURED_AT = "2026-11-23T02:00:00+00:00"
STATUSES = ["pending", "shipped", "complete", "cancelled"]


def generate(folder: Path, rows: int, fmt: str) -> Path:
    """The drop folder holding one orders file of `rows` rows, made once."""
    drop = folder / f"orders-{rows}-{fmt}"
    path = drop / "ometria" / f"orders.{fmt}"
    if path.exists():
        return drop
    path.parent.mkdir(parents=True, exist_ok=True)
    i = pl.int_range(0, rows, eager=True)
    placed = pl.datetime(2026, 1, 1, time_zone="UTC") + pl.duration(minutes=i % 400_000)
    frame = pl.select(
        order_id=pl.format("{}", i + 1).str.zfill(10),
        channel=pl.lit("web"),
        customer_id=pl.format("C{}", (i * 7919) % (rows // 3 + 1)).str.zfill(9),
        email=pl.format("c{}@example.com", (i * 7919) % (rows // 3 + 1)),
        status=pl.lit(pl.Series(STATUSES)).gather(i % 4),
        placed_at=placed.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        updated_at=(placed + pl.duration(hours=6)).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        total=pl.format("{}.{}", (i * 37) % 2_000, ((i * 13) % 100).cast(pl.String).str.zfill(2)),
        currency=pl.lit("EUR"),
    )
    partial = path.with_suffix(".tmp")
    if fmt == "parquet":
        frame.write_parquet(partial, row_group_size=1_000_000)
    else:
        frame.write_csv(partial)
    partial.rename(path)
    (drop / "ometria" / "_manifest.json").write_text(json.dumps({"captured_at": CAPTURED_AT}))
    return drop


def duckdb_once(drop: Path, db: Path) -> dict:
    import duckdb

    (path,) = (drop / "ometria").glob("orders.*")
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE orders AS SELECT * FROM {reader}('{path}')")
    con.execute("CHECKPOINT")
    con.close()
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": cpu_s(), "peak_mib": peak_rss_mib()}


def load_once(drop: Path, db: Path) -> dict:
    from driftwatch.config import parse_config
    from driftwatch.filedrop import load_directory
    from driftwatch.store import Store

    cfg = parse_config({})
    started = time.perf_counter()
    with Store(db) as store:
        report = load_directory(store, drop, cfg)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": cpu_s(),
        "peak_mib": peak_rss_mib(),
        "rows": sum(f.rows for f in report.files),
        "quarantined": sum(f.quarantined for f in report.files),
    }


STEPS = {"duckdb": duckdb_once, "load": load_once}


def run_step(step: str, drop: Path, workdir: Path, src: Path | None = None) -> dict:
    folder = workdir / "store"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = dict(os.environ, **({"PYTHONPATH": str(src)} if src else {}))
    cmd = [sys.executable, __file__, "--step", step, str(drop), str(folder / "bench.duckdb")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode:
        raise RuntimeError(f"{step} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=parse_rows, nargs="+", default=[10_000_000])
    parser.add_argument("--format", nargs="+", choices=("parquet", "csv"), default=["parquet"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "driftwatch-bench-load")
    parser.add_argument("--baseline", type=Path, help="another commit's src folder, its load measured beside")
    parser.add_argument("--step", nargs=3, metavar=("STEP", "DROP", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step, drop, db = args.step
        print(json.dumps(STEPS[step](Path(drop), Path(db))))
        return
    for rows in args.rows:
        for fmt in args.format:
            drop = generate(args.workdir, rows, fmt)
            steps = {"duckdb": ("duckdb", None), "load": ("load", None)}
            if args.baseline:
                steps["baseline load"] = ("load", args.baseline.resolve())
            runs: dict[str, list[dict]] = {name: [] for name in steps}
            for attempt in range(args.runs):
                for step, (kind, src) in steps.items():
                    runs[step].append(run_step(kind, drop, args.workdir, src))
                    print(f"{rows:,} {fmt} round {attempt + 1}: {step} {runs[step][-1]}", flush=True)
            result = {
                "rows": rows,
                "format": fmt,
                "revision": driftwatch_revision(),
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **{
                    step: {
                        "median_wall_s": round(statistics.median(r["wall_s"] for r in done), 2),
                        "median_cpu_s": round(statistics.median(r["cpu_s"] for r in done), 1),
                        "peak_mib": max(r["peak_mib"] for r in done),
                    }
                    for step, done in runs.items()
                },
            }
            for load in [s for s in steps if s != "duckdb"]:
                for measure in ("wall_s", "cpu_s"):
                    ratio = result[load][f"median_{measure}"] / result["duckdb"][f"median_{measure}"]
                    result[f"{load} / duckdb, {measure}"] = round(ratio, 2)
            result["runs"] = runs
            text = json.dumps(result, indent=2)
            print(text)
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"load_file-{size_label(rows)}-{fmt}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
