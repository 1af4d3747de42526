"""The same stock and order comparison three ways: driftwatch, datacompy (Polars) and a DuckDB FULL OUTER JOIN.

    .venv/bin/python bench/compare.py --rows 1M                 # generate if needed, load, measure, write results
    .venv/bin/python bench/compare.py --rows 10M --runs 5 --data /data/bench

For each size, entity (stock, orders) and tool: one warm-up run, then `--runs` timed runs, each in a fresh
subprocess. Wall time is measured inside the child around the comparison only; peak memory is the child's
own peak resident set (VmHWM), so it includes the interpreter and the tool's imports. Precision and recall are
computed per key against the manifest that bench/generate.py wrote. Results: bench/results/results.csv
(one row per size, entity and tool; rerunning a size replaces its rows) and bench/results/results.md.

What each tool is given (the comparison is spelled out in bench/generate.py):
- driftwatch: the snapshots loaded once into a driftwatch store (normalize.coerce + Store.ingest, timed
  apart as load_s and not counted); the timed part is `audit(store, cfg, checks=...)`: stock_parity for
  stock, order_status_drift + order_value_drift + order_presence for orders (status, total, and orders on
  one side only), plus snapshot_health, which every audit runs. Rows quarantined at load (duplicate keys)
  count as reported: `driftwatch db quarantine` lists them with file, line and reason.
- datacompy: PolarsCompare on the parquet files as read (read and preparation timed), with the same keys
  and tolerances and its own representation options (ignore_spaces, ignore_case). Preparation is only the
  domain logic datacompy cannot know: ERP available-to-sell, the target's status vocabulary and status
  groups, a plain polars cast of the target's text totals, and the target-only cancelled-order rule.
- duckdb: one hand-written query per entity over the parquet files (normalisation written for this data),
  each side grouped by key (duplicates) and then FULL OUTER JOINed: the practical floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from argparse import SUPPRESS
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import generate as gen  # noqa: E402  (bench/ is a folder of scripts, not a package)

TOOLS = ("driftwatch", "datacompy", "duckdb")
ENTITIES = ("stock", "orders")
FILES = {"stock": "inventory", "orders": "orders"}
DRIFTWATCH_CHECKS = {"stock": ["stock_parity"], "orders": ["order_status_drift", "order_value_drift", "order_presence"]}
DATACOMPY_VENV = BENCH / ".venv-datacompy"
DATACOMPY_REQUIREMENTS = ["datacompy==1.1.0", "pyarrow"]
RESULTS = BENCH / "results"
RESULT_SCHEMA = {
    "rows_per_side": pl.Int64, "entity": pl.String, "tool": pl.String, "median_s": pl.Float64, "min_s": pl.Float64,
    "max_s": pl.Float64, "runs": pl.Int64, "peak_mib": pl.Int64, "precision": pl.Float64, "recall": pl.Float64,
    "true_pos": pl.Int64, "false_pos": pl.Int64, "false_neg": pl.Int64, "load_s": pl.Float64, "measured_at": pl.String,
    "load_avg": pl.Float64, "failed": pl.String, "revision": pl.String, "median_cpu_s": pl.Float64,
}  # fmt: skip


# -- scoring -------------------------------------------------------------------------------------------


def score(reported: pl.Series, manifest: pl.DataFrame) -> dict:
    """Precision and recall of the reported keys against one entity's manifest (key, kind, report)."""
    found = set(reported.str.strip_chars().drop_nulls().to_list())
    truth = set(manifest.filter(pl.col("report"))["key"].to_list())
    true_pos = len(found & truth)
    return {
        "precision": round(true_pos / len(found), 4) if found else 1.0,
        "recall": round(true_pos / len(truth), 4) if truth else 1.0,
        "true_pos": true_pos,
        "false_pos": len(found - truth),
        "false_neg": len(truth - found),
    }


def detection_by_kind(reported: pl.Series, manifest: pl.DataFrame) -> pl.DataFrame:
    """Per injected kind: how many of its keys were reported (all of them should be, or none)."""
    found = pl.DataFrame({"key": reported.str.strip_chars().drop_nulls().unique(), "_hit": True})
    return (
        manifest.join(found, on="key", how="left")
        .group_by("kind", "report")
        .agg(pl.len().alias("injected"), pl.col("_hit").fill_null(False).sum().alias("reported"))
        .sort("kind")
    )


# -- the three tools (each runs in its own child process) ----------------------------------------------


def _paths(data: Path, entity: str) -> tuple[Path, Path]:
    name = FILES[entity]
    return data / gen.SOURCE / f"{name}.parquet", data / gen.TARGET / f"{name}.parquet"


def driftwatch_config():
    from driftwatch.config import parse_config

    return parse_config(
        {
            "feeds": [{"source": gen.SOURCE, "target": gen.TARGET, "entities": ["inventory", "orders"]}],
            "checks": {
                "stock_parity": {"stock_tolerance": gen.STOCK_TOLERANCE},
                "order_value_drift": {"money_tolerance": float(gen.MONEY_TOLERANCE)},
            },
        }
    )


def load_driftwatch(data: Path) -> float:
    """Load the five snapshots into data/driftwatch.duckdb once; keeps the quarantined keys for scoring.

    Each file is loaded by its own process, as a nightly job loading one source's drop at a time would:
    a process that has held a 50M-row snapshot keeps much of that memory from the allocator afterwards."""
    db, quarantined = data / "driftwatch.duckdb", data / "driftwatch_quarantine.parquet"
    if db.exists() and quarantined.exists():
        return json.loads((data / "driftwatch_load.json").read_text())["load_s"]
    db.unlink(missing_ok=True)
    started, parts = time.perf_counter(), []
    files = [(gen.SOURCE, "products", data / gen.SOURCE / "products.parquet")]
    for entity in ENTITIES:
        sides = zip((gen.SOURCE, gen.TARGET), _paths(data, entity), strict=True)
        files += [(source, FILES[entity], path) for source, path in sides]
    for i, (source, entity, path) in enumerate(files):
        part = data / f"driftwatch_quarantine-{i}.parquet"
        one = [sys.executable, __file__, "--load-file", str(db), source, entity, str(path), str(part)]
        done = subprocess.run(one, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"loading {path} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        parts.append(part)
    pl.concat([pl.read_parquet(part) for part in parts]).write_parquet(quarantined)
    for part in parts:
        part.unlink()
    load_s = round(time.perf_counter() - started, 2)
    (data / "driftwatch_load.json").write_text(json.dumps({"load_s": load_s}))
    return load_s


def load_one_file(db: Path, source: str, entity: str, path: Path, bad_keys_out: Path) -> None:
    from driftwatch.normalize import coerce_batches
    from driftwatch.store import IncomingSnapshot, Store

    batches = (pl.from_arrow(batch) for batch in pq.ParquetFile(path).iter_batches(batch_size=1_000_000))
    coerced = coerce_batches(batches, entity, origin=str(path), first_line=1)
    with Store(db) as store:
        store.ingest([IncomingSnapshot.from_coerced(source, entity, gen.CAPTURED_AT, coerced, str(path))])
    keys = pl.DataFrame(schema={"entity": pl.String, "key": pl.String})
    if entity != "products":
        name = "stock" if entity == "inventory" else entity
        bad = pl.scan_parquet(path).with_row_index("line", offset=1)
        bad = bad.filter(pl.col("line").is_in(coerced.bad["line"].implode())).collect()
        keys = bad.select(pl.lit(name).alias("entity"), _key_expr(name))
    keys.write_parquet(bad_keys_out)


def _key_expr(entity: str) -> pl.Expr:
    if entity == "stock":
        return pl.format("{}/{}", pl.col("sku").str.strip_chars(), pl.col("location").str.strip_chars()).alias("key")
    return pl.col("order_id").str.strip_chars().alias("key")


def run_driftwatch(data: Path, entity: str) -> tuple[float, pl.Series]:
    from driftwatch.engine import audit
    from driftwatch.store import Store

    cfg = driftwatch_config()
    with Store(data / "driftwatch.duckdb") as store:
        started = time.perf_counter()
        result = audit(store, cfg, checks=DRIFTWATCH_CHECKS[entity])
        wall = time.perf_counter() - started
    keys = result.findings.filter(pl.col("check_id").is_in(DRIFTWATCH_CHECKS[entity]))["key"]
    quarantined = pl.read_parquet(data / "driftwatch_quarantine.parquet").filter(pl.col("entity") == entity)["key"]
    return wall, pl.concat([keys, quarantined])


def _status_group(status: pl.Expr) -> pl.Expr:
    groups = {s: "|".join(group) for group in gen.SAME_STATUS for s in group}
    return status.replace(groups)


def run_datacompy(data: Path, entity: str) -> tuple[float, pl.Series]:
    import datacompy

    source, target = _paths(data, entity)
    started = time.perf_counter()
    if entity == "stock":
        free = pl.col("on_hand").fill_null(0) - pl.col("allocated").fill_null(0) - pl.col("safety_stock").fill_null(0)
        erp = pl.read_parquet(source).select("sku", "location", pl.max_horizontal(0, free).alias("available"))
        copy = pl.read_parquet(target, columns=["sku", "location", "available"])
        keys, tolerance = ["sku", "location"], {"available": gen.STOCK_TOLERANCE}
    else:
        erp = pl.read_parquet(source, columns=["order_id", "status", "total"]).with_columns(
            _status_group(pl.col("status")), pl.col("total").cast(pl.Decimal(18, 4))
        )
        copy = pl.read_parquet(target, columns=["order_id", "status", "total", "placed_at"]).with_columns(
            _status_group(pl.col("status").replace_strict(gen.ORDER_STATUS_MAP, default=None)),
            pl.col("total").cast(pl.Decimal(18, 4), strict=False),
        )
        keys, tolerance = ["order_id"], {"total": float(gen.MONEY_TOLERANCE)}
    compare = datacompy.PolarsCompare(
        erp, copy, join_columns=keys, abs_tol=tolerance, ignore_spaces=True, ignore_case=True
    )
    differing = compare.all_mismatch().select(keys)
    target_only = compare.df2_unq_rows
    if entity == "orders":
        # The rule is about orders the ERP lacks, not the second copy of a duplicated one.
        in_erp = pl.col("order_id").str.strip_chars().is_in(erp["order_id"].str.strip_chars().implode())
        target_only = target_only.filter(in_erp | _live_target_only())
    found = pl.concat([differing, compare.df1_unq_rows.select(keys), target_only.select(keys)])
    wall = time.perf_counter() - started
    return wall, found.select(_key_expr(entity))["key"]


def _live_target_only() -> pl.Expr:
    """order_presence's rule: a target-only order is lost unless cancelled, or still placed within the lag."""
    placed = pl.col("placed_at").str.to_datetime(time_zone="UTC", strict=False)
    recent = placed > pl.lit(gen.CAPTURED_AT - timedelta(hours=24))
    cancelled = pl.col("status").fill_null("") == "cancelled"
    return ~cancelled & ~((pl.col("status").fill_null("") == "placed|accepted") & recent.fill_null(False))


def _sql_group(column: str) -> str:
    cases = " ".join(
        f"WHEN {column} IN ({', '.join(repr(s) for s in g)}) THEN '{'|'.join(g)}'" for g in gen.SAME_STATUS
    )
    return f"CASE {cases} ELSE {column} END"


def duckdb_sql(entity: str, source: Path, target: Path) -> str:
    if entity == "stock":
        return f"""
        WITH erp AS (
          SELECT trim(sku) AS sku, trim(location) AS location, count(*) AS n,
                 max(greatest(0, coalesce(on_hand, 0) - coalesce(allocated, 0) - coalesce(safety_stock, 0))) AS ats
          FROM read_parquet('{source}') GROUP BY ALL),
        copy AS (
          SELECT trim(sku) AS sku, trim(location) AS location, count(*) AS n, max(available) AS available
          FROM read_parquet('{target}') GROUP BY ALL)
        SELECT coalesce(erp.sku, copy.sku) || '/' || coalesce(erp.location, copy.location) AS key
        FROM erp FULL OUTER JOIN copy ON erp.sku = copy.sku AND erp.location = copy.location
        WHERE erp.sku IS NULL OR copy.sku IS NULL OR erp.n > 1 OR copy.n > 1
           OR copy.available IS NULL OR abs(copy.available - erp.ats) > {gen.STOCK_TOLERANCE}
        """
    statuses = " ".join(f"WHEN '{raw}' THEN '{canonical}'" for raw, canonical in gen.ORDER_STATUS_MAP.items())
    lag_start = (gen.CAPTURED_AT - timedelta(hours=24)).isoformat()
    return f"""
    WITH erp AS (
      SELECT trim(order_id) AS id, count(*) AS n, any_value({_sql_group("status")}) AS status,
             any_value(total::DECIMAL(18, 4)) AS total
      FROM read_parquet('{source}') GROUP BY 1),
    raw AS (
      SELECT trim(order_id) AS id, CASE trim(status) {statuses} END AS canonical,
             TRY_CAST(replace(trim(total), ',', '') AS DECIMAL(18, 4)) AS total,
             TRY_CAST(placed_at AS TIMESTAMPTZ) AS placed_at
      FROM read_parquet('{target}')),
    copy AS (
      SELECT id, count(*) AS n, any_value({_sql_group("canonical")}) AS status, any_value(total) AS total,
             any_value(placed_at) AS placed_at
      FROM raw GROUP BY 1)
    SELECT coalesce(erp.id, copy.id) AS key
    FROM erp FULL OUTER JOIN copy ON erp.id = copy.id
    WHERE copy.id IS NULL
       OR (erp.id IS NULL AND coalesce(copy.status, '') <> 'cancelled'
           AND NOT (copy.status = 'placed|accepted' AND coalesce(copy.placed_at > TIMESTAMPTZ '{lag_start}', false)))
       OR erp.n > 1 OR copy.n > 1
       OR erp.status <> copy.status
       OR (erp.total IS NULL) <> (copy.total IS NULL) OR abs(erp.total - copy.total) > {gen.MONEY_TOLERANCE}
    """


def run_duckdb(data: Path, entity: str) -> tuple[float, pl.Series]:
    import duckdb

    source, target = _paths(data, entity)
    started = time.perf_counter()
    con = duckdb.connect()
    keys = con.sql(duckdb_sql(entity, source, target)).pl()["key"]
    con.close()
    return time.perf_counter() - started, keys


RUNNERS = {"driftwatch": run_driftwatch, "datacompy": run_datacompy, "duckdb": run_duckdb}


def cpu_s() -> float:
    """This process's CPU time, every thread, start-up included: steadier than wall time when other work
    shares the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 1)


def median_seconds(run, runs: int) -> float:
    """The median wall time of `runs` calls of `run`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_mib() -> int:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux carries the forking parent's
    high-water mark into a child's ru_maxrss across exec, so a child of a large parent would report the
    parent's size."""
    status = Path("/proc/self/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kib // 1024


def child(tool: str, data: Path, entity: str, keys_out: Path) -> None:
    wall, keys = RUNNERS[tool](data, entity)
    peak, cpu = peak_rss_mib(), cpu_s()  # before writing the keys, which is scoring, not comparing
    pl.DataFrame({"key": keys.cast(pl.String)}).write_parquet(keys_out)
    print(json.dumps({"wall_s": wall, "peak_mib": peak, "cpu_s": cpu}))


# -- orchestration -------------------------------------------------------------------------------------


def ensure_datacompy_venv() -> Path:
    """datacompy pins polars < 1.45, so it gets its own virtual environment (created once, from PyPI)."""
    python = DATACOMPY_VENV / "bin" / "python"
    probe = [str(python), "-c", "import datacompy, pyarrow"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(DATACOMPY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DATACOMPY_REQUIREMENTS], check=True)
    return python


def measure_once(python: Path, tool: str, data: Path, entity: str, keys_out: Path) -> dict:
    """{wall_s, peak_mib, cpu_s} of one run in a fresh process, or {failed: why} when it did not complete."""
    cmd = [str(python), __file__, "--child", tool, str(data), entity, str(keys_out)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    after = f"after {time.perf_counter() - started:.0f} s"
    if done.returncode == -signal.SIGKILL or "MemoryError" in done.stderr or "memory allocation" in done.stderr:
        return {"failed": f"out of memory {after} (killed, or an allocation refused)"}
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"failed": f"exit {done.returncode} {after}: {last[:200]}"}


def measure(tools: list[str], data: Path, entity: str, runs: int) -> dict[str, dict]:
    """Per tool: a warm-up, then `runs` timed runs. The tools take turns run by run, so on a shared machine
    a burst of someone else's load falls on all of them rather than on whichever ran at that moment. A tool
    whose run does not complete (out of memory at 50M rows) is recorded as failed and not run again."""
    python = {tool: ensure_datacompy_venv() if tool == "datacompy" else Path(sys.executable) for tool in tools}
    keys_out = {tool: data / f"keys-{tool}-{entity}.parquet" for tool in tools}
    runs_of: dict[str, list[dict]] = {tool: [] for tool in tools}
    failed: dict[str, str] = {}
    for attempt in range(runs + 1):  # the first is the warm-up
        for tool in (t for t in tools if t not in failed):
            load_1min = os.getloadavg()[0]
            run = measure_once(python[tool], tool, data, entity, keys_out[tool])
            if "failed" in run:
                failed[tool] = run["failed"]
                print(f"  {tool}: {run['failed']}", flush=True)
            elif attempt:
                runs_of[tool].append({**run, "load_1min": load_1min})
    return {
        tool: {"failed": failed[tool]} if tool in failed else _summary(runs_of[tool], keys_out[tool]) for tool in tools
    }


def _summary(runs: list[dict], keys_out: Path) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "runs": len(runs),
        "peak_mib": max(r["peak_mib"] for r in runs),
        "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 1),
        "load_avg": round(statistics.mean(r["load_1min"] for r in runs), 2),
        "keys": pl.read_parquet(keys_out)["key"],
    }


def bench_size(rows: int, data_root: Path, runs: int, tools: list[str], entities: list[str]) -> list[dict]:
    data = data_root / gen.size_label(rows)
    if not (data / "manifest.json").exists():
        print(f"generating {data} ...", flush=True)
        gen.generate(data, rows)
    load_s = None
    if "driftwatch" in tools:
        # In a child process, so this process stays small while the tools run.
        load = [sys.executable, __file__, "--load", str(data)]
        out = subprocess.run(load, check=True, capture_output=True, text=True)
        load_s = json.loads(out.stdout.strip().splitlines()[-1])["load_s"]
    manifest = pl.read_parquet(data / "manifest.parquet")
    rows_out = []
    for entity in entities:
        truth = manifest.filter(pl.col("entity") == entity)
        print(f"{gen.size_label(rows)} {entity}: {', '.join(tools)} (load {os.getloadavg()[0]:.2f}) ...", flush=True)
        for tool, result in measure(tools, data, entity, runs).items():
            keys = result.pop("keys", None)
            row = {"rows_per_side": rows, "entity": entity, "tool": tool, **result,
                   **(score(keys, truth) if keys is not None else {}),
                   "load_s": load_s if tool == "driftwatch" else None, "revision": driftwatch_revision(),
                   "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows_out.append(row)
            if keys is None:
                continue
            kinds = detection_by_kind(keys, truth).with_columns(
                pl.lit(rows).alias("rows_per_side"), pl.lit(entity).alias("entity"), pl.lit(tool).alias("tool")
            )
            _merge_csv(RESULTS / "detection.csv", kinds, ["rows_per_side", "entity", "tool"])
    return rows_out


def _merge_csv(path: Path, new: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Replace the rows of `path` that `new` measures again; keep the others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pl.read_csv(path, schema_overrides=new.schema)
        new = pl.concat([old.join(new.select(keys).unique(), on=keys, how="anti"), new], how="diagonal_relaxed")
    tool_order = pl.col("tool").replace_strict({t: i for i, t in enumerate(TOOLS)})
    new = new.sort("rows_per_side", "entity", tool_order, *(["kind"] if "kind" in new.columns else []))
    new.write_csv(path)
    return new


def machine() -> str:
    import duckdb

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {mem_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, polars {pl.__version__}, duckdb {duckdb.__version__}, "
        f"datacompy 1.1.0 (its own venv, polars {_datacompy_polars()})"
    )


def driftwatch_revision() -> str:
    """The commit the driftwatch under test comes from. To measure a fixed commit while the work tree
    changes, export it (git archive HEAD src checks | tar -x -C DIR), run with PYTHONPATH=DIR/src and
    BENCH_DRIFTWATCH_REVISION=<commit>."""
    if os.environ.get("BENCH_DRIFTWATCH_REVISION"):
        return os.environ["BENCH_DRIFTWATCH_REVISION"]
    git = ["git", "-C", str(BENCH.parent)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True).stdout
    return f"{commit or '?'}{' + uncommitted changes' if dirty.strip() else ''}"


def _datacompy_polars() -> str:
    python = DATACOMPY_VENV / "bin" / "python"
    if not python.exists():  # datacompy not measured on this machine
        return "?"
    out = subprocess.run(
        [str(python), "-c", "import polars; print(polars.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


def write_markdown(results: pl.DataFrame, detection: pl.DataFrame) -> None:
    lines = [
        "# driftwatch against datacompy and DuckDB",
        "",
        f"Machine: {machine()}; each row names the driftwatch commit it measured. The machine was shared "
        "with other work: `load` is the mean 1-minute load "
        f"average taken before each timed run (above {os.cpu_count()}, other processes were competing for the "
        "cores, so times are slower and noisier than on an idle machine). The tools take turns run by run, so "
        "they share the same disturbance.",
        "",
        "Median wall time of the timed runs after one warm-up, each run in a fresh process; peak = the child's "
        "max resident memory. Precision and recall are per key against the generator's manifest. driftwatch's "
        "time excludes loading the snapshots into its store (load_s, once per size, both entities); the "
        "duplicate keys it reports are the rows it quarantined at that load, not findings of the timed checks. "
        "CPU s: the child process's CPU time, every thread, start-up and imports included (steadier than wall "
        "time on a shared machine); × DuckDB CPU is its ratio.",
        "",
        "| rows per side | entity | tool | median s | min–max s | peak MiB | precision | recall | FP | FN | "
        "× DuckDB time | CPU s | × DuckDB CPU | load s | load | commit |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    floor = {(r["rows_per_side"], r["entity"]): r for r in results.iter_rows(named=True)
             if r["tool"] == "duckdb"}  # fmt: skip
    for r in results.iter_rows(named=True):
        size = gen.size_label(r["rows_per_side"])
        if r.get("failed"):
            failed = f"| {size} | {r['entity']} | {r['tool']} | did not complete: {r['failed']} |"
            lines.append(failed + " |" * 11 + f" {r.get('revision') or ''} |")
            continue
        base = floor.get((r["rows_per_side"], r["entity"])) or {}
        ratio = f"{r['median_s'] / base['median_s']:.2f}" if base.get("median_s") else ""
        cpu = r.get("median_cpu_s")
        cpu_ratio = f"{cpu / base['median_cpu_s']:.2f}" if cpu and base.get("median_cpu_s") else ""
        load_s = "" if r["load_s"] is None else f"{r['load_s']:.1f}"
        lines.append(
            f"| {size} | {r['entity']} | {r['tool']} | {r['median_s']:.2f} | "
            f"{r['min_s']:.2f}–{r['max_s']:.2f} | {r['peak_mib']} | {r['precision']:.4f} | {r['recall']:.4f} | "
            f"{r['false_pos']} | {r['false_neg']} | {ratio} | {'' if cpu is None else cpu} | {cpu_ratio} | "
            f"{load_s} | {r['load_avg']:.1f} | "
            f"{r.get('revision') or ''} |"
        )
    lines += ["", "Keys reported per injected kind (report = a correct comparison flags it):", ""]
    wide = detection.with_columns(pl.format("{}/{}", "reported", "injected").alias("cell")).pivot(
        on="tool", index=["rows_per_side", "entity", "kind", "report"], values="cell"
    )
    tools = [t for t in TOOLS if t in wide.columns]
    lines += [
        "| rows per side | entity | kind | report | " + " | ".join(tools) + " |",
        "| ---: | --- | --- | --- | " + " | ".join("---:" for _ in tools) + " |",
    ]
    for r in wide.sort("rows_per_side", "entity", "kind").iter_rows(named=True):
        cells = " | ".join(str(r[t] or "") for t in tools)
        lines.append(
            f"| {gen.size_label(r['rows_per_side'])} | {r['entity']} | {r['kind']} | {r['report']} | {cells} |"
        )
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=["1M"], help="sizes: 1M 10M 50M or numbers")
    parser.add_argument("--data", type=Path, default=BENCH / "data", help="where generated snapshots live")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--entities", nargs="+", default=list(ENTITIES), choices=ENTITIES)
    parser.add_argument("--markdown", action="store_true", help="only rewrite results.md from the CSV files")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load-file", nargs=5, metavar=("DB", "SOURCE", "ENTITY", "PATH", "OUT"), help=SUPPRESS)
    parser.add_argument("--child", nargs=4, metavar=("TOOL", "DATA", "ENTITY", "KEYS_OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_file:
        db, source, entity, path, out = args.load_file
        load_one_file(Path(db), source, entity, Path(path), Path(out))
        return
    if args.load:
        print(json.dumps({"load_s": load_driftwatch(args.load)}))
        return
    if args.child:
        tool, data, entity, keys_out = args.child
        child(tool, Path(data), entity, Path(keys_out))
        return
    if args.markdown:
        write_markdown(pl.read_csv(RESULTS / "results.csv"), pl.read_csv(RESULTS / "detection.csv"))
        return
    for size in args.rows:
        rows = bench_size(gen.parse_rows(size), args.data, args.runs, args.tools, args.entities)
        results = _merge_csv(RESULTS / "results.csv", pl.DataFrame(rows, schema=RESULT_SCHEMA),
                             ["rows_per_side", "entity", "tool"])  # fmt: skip
        write_markdown(results, pl.read_csv(RESULTS / "detection.csv"))


if __name__ == "__main__":
    main()
