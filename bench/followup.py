"""What incidents and sync latency add to an audit: the engine's audit of a store's latest snapshots, then
grouping its findings into incidents and measuring sync latency, each timed in the same process.

    .venv/bin/python bench/followup.py --db ~/.local/share/driftwatch/demo/driftwatch.duckdb \
        --config ~/.local/share/driftwatch/demo/driftwatch.toml --runs 5

It audits a copy of the store (the original is left as it was), `--runs` times, and prints the median wall
time of each step and its ratio to the engine's audit.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from driftwatch.config import load_config
from driftwatch.engine import audit, load_catalogue
from driftwatch.incidents import record_incidents
from driftwatch.latency import record_latency
from driftwatch.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cfg = load_config(args.config)
    owners = {check_id: spec.owner for check_id, spec in load_catalogue(cfg).items()}
    times: dict[str, list[float]] = {"audit": [], "incidents": [], "latency": []}
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-") as tmp:
        copy = Path(tmp) / "store.duckdb"
        shutil.copy(args.db, copy)
        with Store(copy) as store:
            for _ in range(args.runs):
                started = time.perf_counter()
                run_id = audit(store, cfg).run_id
                times["audit"].append(time.perf_counter() - started)
                started = time.perf_counter()
                incidents = record_incidents(store, cfg, run_id, owners)
                times["incidents"].append(time.perf_counter() - started)
                started = time.perf_counter()
                latency = record_latency(store, cfg, run_id)
                times["latency"].append(time.perf_counter() - started)
    base = statistics.median(times["audit"])
    print(f"{args.runs} runs; the last grouped {incidents} incident(s) and measured {latency.height} feed(s)")
    for step, values in times.items():
        median = statistics.median(values)
        print(f"{step:10s} median {median:6.2f} s  ({median / base:.2f} x the audit)")


if __name__ == "__main__":
    main()
