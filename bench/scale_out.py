"""The benchmark's stock and order comparison on the local executor and on Dask clusters of 1 and 2 workers.

    .venv/bin/python bench/scale_out.py --rows 1M             # generate and load if needed (as compare.py does)
    .venv/bin/python bench/scale_out.py --rows 1M --runs 3 --partitions 4
    flock /work/bench-data/bench.lock .venv/bin/python bench/scale_out.py --rows 10M --data /work/bench-data/cmp10m \
        --runs 1 --warmups 0 --setups local dask1 dask2

The data and store are compare.py's (bench/data/<size>/driftwatch.duckdb). For each entity, the audit of
compare.py's driftwatch checks runs: locally in one part (the baseline), locally in `--partitions` parts
one after another, and on a local Dask cluster of 1 and of 2 worker processes (one thread each) given
`--partitions` parts. Each cluster is started before its runs and reached by its scheduler's address, as a
standing cluster would be; its start-up is timed apart. One warm-up run, then `--runs` timed runs; the
median is reported with the ratio to the baseline, and every run's findings are checked equal to the
baseline's (check, target, key, field, expected, actual). CPU seconds are this process's plus, on Dask,
every worker process's (asked of each worker before and after the run): on a shared machine they move
less than wall time. Results: bench/results/scale_out.csv and .md (a size measured again replaces its rows).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402  (bench/ is a folder of scripts, not a package)
import generate as gen  # noqa: E402

from driftwatch.config import EngineSettings  # noqa: E402
from driftwatch.engine import audit  # noqa: E402
from driftwatch.executors import Executor  # noqa: E402
from driftwatch.store import Store  # noqa: E402

SAME = ["check_id", "target", "key", "field", "expected", "actual"]
RESULTS = compare.RESULTS


SETUPS = ("local", "local-parts", "dask1", "dask2")


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_now(client) -> float:
    """CPU seconds so far of this process and, given a Dask client, of each of its cluster's workers."""
    workers = client.run(_process_cpu_s) if client is not None else {}
    return _process_cpu_s() + sum(workers.values())


def run_once(data: Path, entity: str, engine: EngineSettings | None, client=None) -> tuple[float, float, pl.DataFrame]:
    checks = compare.DRIFTWATCH_CHECKS[entity]
    with Store(data / "driftwatch.duckdb") as store:
        cpu = cpu_now(client)
        started = time.perf_counter()
        result = audit(store, compare.driftwatch_config(), checks=checks, engine=engine)
        wall = time.perf_counter() - started
        cpu = cpu_now(client) - cpu
    return wall, cpu, result.findings.select(SAME).sort(SAME, nulls_last=True)


def timed(data: Path, entity: str, engine: EngineSettings | None, args, baseline: pl.DataFrame | None, client=None):
    """Median wall and CPU seconds of `args.runs` audits after `args.warmups` (imports, page cache, a
    cluster's first tasks); each run's findings checked equal to the baseline's."""
    for _ in range(args.warmups):
        run_once(data, entity, engine, client)
    walls, cpus = [], []
    for _ in range(args.runs):
        wall, cpu, found = run_once(data, entity, engine, client)
        walls.append(wall)
        cpus.append(cpu)
        if baseline is not None and not found.equals(baseline):
            raise SystemExit(f"{entity}: findings differ from the local executor's with {engine}")
        print(f"  {entity} {engine}: {wall:.1f} s wall, {cpu:.1f} s CPU (load {os.getloadavg()[0]:.1f})", flush=True)
    return statistics.median(walls), statistics.median(cpus), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1M")
    parser.add_argument("--data", type=Path, default=BENCH / "data")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--entities", nargs="+", default=list(compare.ENTITIES), choices=compare.ENTITIES)
    args = parser.parse_args()
    rows = gen.parse_rows(args.rows)
    data = args.data / gen.size_label(rows)
    if not (data / "manifest.json").exists():
        gen.generate(data, rows)
    subprocess.run([sys.executable, compare.__file__, "--load", str(data)], check=True, capture_output=True)

    from distributed import Client, LocalCluster

    out = []
    for entity in args.entities:
        load = [os.getloadavg()[0]]
        base_s, base_cpu, baseline = timed(data, entity, None, args, None)
        setups = [("local, 1 part", base_s, base_cpu, None)]
        if "local-parts" in args.setups:
            parts = EngineSettings(Executor(), args.partitions)
            parts_s, parts_cpu, _ = timed(data, entity, parts, args, baseline)
            setups.append((f"local, {args.partitions} parts", parts_s, parts_cpu, None))
        for workers in [w for w in (1, 2) if f"dask{w}" in args.setups]:
            started = time.perf_counter()
            with (
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, scheduler_port=0
                ) as cluster,
                Client(cluster) as client,
            ):
                startup = time.perf_counter() - started
                engine = EngineSettings(Executor("dask", scheduler=cluster.scheduler_address), args.partitions)
                dask_s, dask_cpu, _ = timed(data, entity, engine, args, baseline, client)
            setups.append((f"dask, {workers} worker(s), {args.partitions} parts", dask_s, dask_cpu, startup))
        load.append(os.getloadavg()[0])
        for setup, median, cpu, startup in setups:
            row = {
                "rows_per_side": rows,
                "entity": entity,
                "setup": setup,
                "median_s": round(median, 2),
                "vs_local": round(median / base_s, 2),
                "cpu_s": round(cpu, 1),
                "cpu_vs_local": round(cpu / base_cpu, 2),
                "cluster_start_s": None if startup is None else round(startup, 1),
                "findings": baseline.height,
                "same_findings": True,
                "runs": args.runs,
                "load_avg": round(statistics.mean(load), 1),
                "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "revision": compare.driftwatch_revision(),
            }
            print(row, flush=True)
            out.append(row)
    frame = pl.DataFrame(out)
    RESULTS.mkdir(exist_ok=True)
    if (RESULTS / "scale_out.csv").exists():  # other sizes' rows stay
        old = pl.read_csv(RESULTS / "scale_out.csv").filter(pl.col("rows_per_side") != rows)
        frame = pl.concat([old, frame], how="diagonal_relaxed").sort("rows_per_side", maintain_order=True)
    frame.write_csv(RESULTS / "scale_out.csv")
    write_markdown(frame, machine())


def write_markdown(frame: pl.DataFrame, where: str) -> None:
    with pl.Config(
        tbl_formatting="ASCII_MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_cols=-1,
        tbl_rows=-1,
        tbl_width_chars=1000,
        fmt_str_lengths=100,
    ):
        (RESULTS / "scale_out.md").write_text(f"{where}\n\n{frame}\n", encoding="utf-8")


def machine() -> str:
    import dask
    import duckdb

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, Python {sys.version.split()[0]}, polars {pl.__version__}, "
        f"duckdb {duckdb.__version__}, dask {dask.__version__}, revision {compare.driftwatch_revision()}"
    )


if __name__ == "__main__":
    main()
