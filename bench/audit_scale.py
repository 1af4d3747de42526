"""Benchmark: loading and auditing a generated retailer at scale, beside DuckDB loading the same files.

    .venv/bin/python bench/audit_scale.py --scale 100 --runs 3
    .venv/bin/python bench/audit_scale.py --scale 3334 --runs 3 --workdir /data/bench   # the issue's size
    .venv/bin/python bench/audit_scale.py --scale 3334 --baseline /tmp/dw-base/src      # another commit beside

Scale 1 is ~300 SKUs x 3 warehouses, 600 customers, ~1,440 orders / ~3,400 lines; scale 3334 is ~1M SKUs,
2M customers, ~4.95M orders / ~12M lines, 88M rows in 31 parquet files. The retailer is generated once
(kept in the work folder). Each round then runs, each step in a fresh process:

- `duckdb`: DuckDB's own `CREATE TABLE ... AS SELECT * FROM read_parquet(file)` for every file of the drop
  into a new database file, then CHECKPOINT: the floor for getting these files into a store;
- `load`: `driftwatch.load_directory` (what `driftwatch load DIR` runs) into a new store: read, validate,
  quarantine, store, as one transaction;
- `audit`: `driftwatch.engine.audit` over that store, every check: reading the latest snapshots, every
  check, and storing the findings; then, timed apart (`follow_ups_*`), what `driftwatch audit` does after
  it: grouping the findings into incidents and measuring sync latency.

`--baseline SRC` runs the load and the audit a second time per round with PYTHONPATH=SRC (another commit's
`src`, exported with `git archive`), so both are measured in the same hour on the same files. Peak memory
is each process's own VmHWM (see compare.peak_rss_mib). Prints one JSON object (medians and ratios) and
writes it to results/audit_scale-<scale>.json.
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

from compare import RESULTS, cpu_s, driftwatch_revision, peak_rss_mib  # the same peak measure as the comparison


def _config(snapshot_dir: Path):
    """The demo retailer's own configuration, the one `make demo` writes."""
    from driftwatch.config import parse_config
    from driftwatch.demo.run import demo_config

    return parse_config(demo_config(snapshot_dir))


def generate(workdir: Path, scale: int) -> Path:
    """The retailer's drop, generated once per scale."""
    from driftwatch.demo.generator import generate as generate_retailer

    snapshot_dir = workdir / f"retailer-{scale}"
    if not (snapshot_dir / "answer_key.csv").exists():
        started = time.perf_counter()
        result = generate_retailer(snapshot_dir, scale=scale, file_format="parquet")
        print(f"generated {result.total_rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    return snapshot_dir


def drop_files(snapshot_dir: Path) -> list[Path]:
    return sorted(p for p in snapshot_dir.glob("*/*") if p.suffix in (".parquet", ".csv") and p.name[0] != "_")


# -- the steps, each in its own process -------------------------------------------------------------------


def duckdb_once(snapshot_dir: Path, db: Path) -> dict:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(str(db))
    for i, path in enumerate(drop_files(snapshot_dir)):
        reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM {reader}('{path}')")
    con.execute("CHECKPOINT")
    con.close()
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": cpu_s(), "peak_mib": peak_rss_mib()}


def load_once(snapshot_dir: Path, db: Path) -> dict:
    from driftwatch.filedrop import load_directory
    from driftwatch.store import Store

    cfg = _config(snapshot_dir)
    started = time.perf_counter()
    with Store(db) as store:
        report = load_directory(store, snapshot_dir, cfg)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": cpu_s(),
        "peak_mib": peak_rss_mib(),
        "snapshots": report.loaded,
        "rows": sum(f.rows for f in report.files),
    }


def audit_once(snapshot_dir: Path, db: Path) -> dict:
    """The engine's audit (every check, findings stored), then what `driftwatch audit` does after it (incidents,
    sync latency), timed apart: `wall_s`, `cpu_s` and `peak_mib` are the engine's alone, as they always were."""
    from driftwatch.engine import audit
    from driftwatch.store import Store

    try:
        from driftwatch.auditing import follow_up
    except ImportError:  # a baseline from before the follow-ups could be run on their own
        follow_up = None
    cfg = _config(snapshot_dir)
    with Store(db) as store:
        started = time.perf_counter()
        result = audit(store, cfg)
        measured = {
            "wall_s": round(time.perf_counter() - started, 2),
            "cpu_s": cpu_s(),
            "peak_mib": peak_rss_mib(),
            "findings": result.findings.height,
        }
        if follow_up is not None:
            started = time.perf_counter()
            follow_up(store, cfg, result.run_id)
            measured["follow_ups_wall_s"] = round(time.perf_counter() - started, 2)
            measured["follow_ups_cpu_s"] = round(cpu_s() - measured["cpu_s"], 1)
            measured["peak_with_follow_ups_mib"] = peak_rss_mib()
    return measured


STEPS = {"duckdb": duckdb_once, "load": load_once, "audit": audit_once}


def run_step(step: str, snapshot_dir: Path, db: Path, src: Path | None = None) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, __file__, "--step", step, str(snapshot_dir), str(db)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{step} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_1min": round(os.getloadavg()[0], 2)}


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def summary(runs: list[dict]) -> dict:
    out = {"median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2)}
    out["min_max_wall_s"] = [min(r["wall_s"] for r in runs), max(r["wall_s"] for r in runs)]
    out["peak_mib"] = max(r["peak_mib"] for r in runs)
    if "cpu_s" in runs[0]:
        out["median_cpu_s"] = round(statistics.median(r["cpu_s"] for r in runs), 1)
    if all("follow_ups_wall_s" in r for r in runs):
        out["follow_ups_median_wall_s"] = round(statistics.median(r["follow_ups_wall_s"] for r in runs), 2)
        out["follow_ups_median_cpu_s"] = round(statistics.median(r["follow_ups_cpu_s"] for r in runs), 1)
        out["peak_with_follow_ups_mib"] = max(r["peak_with_follow_ups_mib"] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "driftwatch-bench",
        help="where the generated retailer is kept between runs (reused when present), and the stores",
    )  # fmt: skip
    parser.add_argument("--baseline", type=Path, help="another commit's src folder, measured beside this one")
    parser.add_argument("--audit-only", action="store_true", help="load once, then time only the audits")
    parser.add_argument("--step", nargs=3, metavar=("STEP", "SNAPSHOT_DIR", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step, snapshot_dir, db = args.step
        print(json.dumps(STEPS[step](Path(snapshot_dir), Path(db))))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    snapshot_dir = generate(args.workdir, args.scale)
    builds = {"this": None, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    runs: dict[str, list[dict]] = {f"{b} {s}": [] for b in builds for s in ("load", "audit")}
    runs["duckdb load"] = []
    for attempt in range(args.runs):
        if not args.audit_only:
            db = fresh(args.workdir / "duckdb") / "floor.duckdb"
            runs["duckdb load"].append(run_step("duckdb", snapshot_dir, db))
            print(f"round {attempt + 1}: duckdb {runs['duckdb load'][-1]}", flush=True)
            shutil.rmtree(db.parent)
        for build, src in builds.items():
            db = args.workdir / build / "driftwatch.duckdb"
            if not args.audit_only or not db.exists():
                db = fresh(args.workdir / build) / "driftwatch.duckdb"
                load = run_step("load", snapshot_dir, db, src)
                if not args.audit_only:
                    runs[f"{build} load"].append(load)
                    print(f"round {attempt + 1}: {build} load {load}", flush=True)
            runs[f"{build} audit"].append(run_step("audit", snapshot_dir, db, src))
            print(f"round {attempt + 1}: {build} audit {runs[f'{build} audit'][-1]}", flush=True)
    result = {
        "scale": args.scale,
        "rows": runs["this load"][0]["rows"] if runs["this load"] else None,
        "revision": driftwatch_revision(),
        "baseline": str(args.baseline) if args.baseline else None,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{name: summary(r) for name, r in runs.items() if r},
    }
    for build in builds:
        load, audit = result.get(f"{build} load"), result[f"{build} audit"]
        if load:
            result[f"{build} load + audit s"] = round(load["median_wall_s"] + audit["median_wall_s"], 1)
            floor = result["duckdb load"]
            result[f"{build} load / duckdb"] = round(load["median_wall_s"] / floor["median_wall_s"], 2)
            result[f"{build} load / duckdb, cpu"] = round(load["median_cpu_s"] / floor["median_cpu_s"], 2)
    result["runs"] = runs
    text = json.dumps(result, indent=2)
    print(text)
    if not args.audit_only:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"audit_scale-{args.scale}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
