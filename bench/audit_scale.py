"""Benchmark: the whole audit of a generated retailer at scale, load excluded.

    .venv/bin/python bench/audit_scale.py --scale 100 --runs 3
    .venv/bin/python bench/audit_scale.py --scale 3334 --runs 3 --workdir /data/bench   # the issue's size

Scale 1 is ~300 SKUs x 3 warehouses, 600 customers, ~1,440 orders / ~3,400 lines; scale 3334 is ~1M SKUs,
2M customers, ~4.8M orders / ~11.3M lines. The retailer is generated once as parquet and loaded once into
a DuckDB store (both timed, neither counted); each audit then runs in a fresh process, so its peak
resident memory (VmHWM, see compare.peak_rss_mib) is the audit's own: reading the latest snapshots out of DuckDB,
every check, and storing the findings. Prints one JSON object with the median wall time, the median
CPU time (steadier when other work shares the machine) and the peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import peak_rss_mib  # the same peak measure as the three-way comparison


def _config(snapshot_dir: Path):
    """The demo retailer's own configuration, the one `make demo` writes."""
    from driftwatch.config import parse_config
    from driftwatch.demo.run import demo_config

    return parse_config(demo_config(snapshot_dir))


def prepare(workdir: Path, scale: int) -> tuple[Path, Path, dict]:
    """Generate and load once per scale; returns (snapshot dir, store, timings)."""
    from driftwatch.demo.generator import generate
    from driftwatch.filedrop import load_directory
    from driftwatch.store import Store

    snapshot_dir, db = workdir / f"retailer-{scale}", workdir / f"audit-{scale}.duckdb"
    timings: dict = {}
    if not (snapshot_dir / "answer_key.csv").exists():
        started = time.perf_counter()
        result = generate(snapshot_dir, scale=scale, file_format="parquet")
        timings["generate_s"] = round(time.perf_counter() - started, 1)
        timings["rows"] = result.total_rows
    if not db.exists():
        started = time.perf_counter()
        with Store(db) as store:
            load_directory(store, snapshot_dir, _config(snapshot_dir))
            store.query("CHECKPOINT")  # else the first audit replays the write-ahead log and is measured with it
        timings["load_s"] = round(time.perf_counter() - started, 1)
    return snapshot_dir, db, timings


def audit_once(snapshot_dir: Path, db: Path) -> dict:
    from driftwatch.engine import audit
    from driftwatch.store import Store

    with Store(db) as store:
        started = time.perf_counter()
        result = audit(store, _config(snapshot_dir))
        wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": round(wall, 2),
        # CPU time of the whole process (start-up included): the steadier figure on a shared machine
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_mib": peak_rss_mib(),
        "findings": result.findings.height,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "driftwatch-bench",
        help="where the generated retailer and its store are kept between runs (reused when present)",
    )  # fmt: skip
    parser.add_argument("--audit-only", nargs=2, metavar=("SNAPSHOT_DIR", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.audit_only:
        print(json.dumps(audit_once(Path(args.audit_only[0]), Path(args.audit_only[1]))))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    snapshot_dir, db, timings = prepare(args.workdir, args.scale)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, __file__, "--audit-only", str(snapshot_dir), str(db)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({
        "scale": args.scale,
        **timings,
        "runs": runs,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_mib": max(r["peak_mib"] for r in runs),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
