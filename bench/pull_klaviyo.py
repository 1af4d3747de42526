"""A large Klaviyo account pulled in full, then, the next night, incrementally after some profiles changed.

GET /api/profiles allows 75 requests a second (burst) and 750 a minute (steady), 100 profiles a page: the
fastest any client can read N profiles is set by those windows (`minimum_seconds`). This measures, in one
run, against the loopback simulator held at those limits:

- the full pull of every profile, against the floor for all of them;
- after `--changed` (default 2 %) of the profiles changed, the incremental pull that asks only for the
  profiles updated since the full pull, against the floor for the changed ones; the steady window is let
  reset between the two, as a night would.

Both go through `driftwatch.pull.pull_sources` into a real store, as `driftwatch pull` does. Each reports the
fetch (the connector's requests, paced by the rate limit: what the floor bounds) and the whole pull: one
`pull_sources` call from start to return (reading the config, the plan, the fetch, then merging the changes
into the kept profiles, normalising, storing the snapshot and keeping the records for the next night). It
holds no audit, and not the opening of the store, the state copy, the simulator's start or its changes.
The simulator runs in its own process, as a platform would.

    .venv/bin/python bench/pull_klaviyo.py [--profiles 2000000] [--changed 0.02] [--json bench/results/x.json]

The machine's load is recorded with the figures, with the CPU time the fetch took on each side (the
connector's process, the simulator's): cursor pages are read one after another, so a pull can stay at the
floor only while a page's round trip (the simulator building it, the connector parsing and mapping it)
fits in the time the burst window gives each request (1/75 s); on a busy machine that decides the fetch.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import tomli_w

from driftwatch import incremental, pull
from driftwatch.config import load_config
from driftwatch.connectors.klaviyo.client import PAGE_SIZES, RATE_LIMITS
from driftwatch.connectors.klaviyo.connector import UPDATE_WINDOWS, Connector
from driftwatch.normalize import coerce
from driftwatch.simulators.klaviyo import KlaviyoSimulator as Simulator
from driftwatch.store import Store


def profiles(count: int) -> pl.DataFrame:
    """`count` canonical customers, built column-wise."""
    n = pl.int_range(count)
    frame = pl.select(
        customer_id=pl.format("01HBENCH{}", n.cast(pl.String).str.zfill(18)),
        erp_customer_id=pl.format("C{}", n.cast(pl.String).str.zfill(7)),
        email=pl.format("bench.{}@example.com", n),
        email_consent=n % 2 == 0,
        sms_consent=n % 3 == 0,
        first_name=pl.lit("Pat"),
        last_name=n.cast(pl.String),
        country=pl.lit("GB"),
        lifetime_value=pl.format("{}.50", n % 1000),
        order_count=n % 12,
        updated_at=pl.lit(datetime(2026, 11, 1, tzinfo=UTC)),
    )
    return coerce(frame, "customers").good


def minimum_seconds(requests: int) -> float:
    """The earliest the last request can start under fixed burst and steady windows: every full steady
    window before it, then the burst windows its remainder needs."""
    if requests <= 0:
        return 0.0
    (burst, burst_period), (steady, steady_period) = RATE_LIMITS["profiles"]
    full_windows = (requests - 1) // steady
    remainder = requests - full_windows * steady
    return full_windows * steady_period + (math.ceil(remainder / burst) - 1) * burst_period


def serve(count: int, port: int, urls: mp.Queue, commands: mp.Queue, replies: mp.Queue) -> None:
    """The simulator's process: serve `count` profiles (on `port`, 0 for any); on "change F SINCE" update a
    fraction F of them (every 1/F-th profile, as a day's changes spread over the account), stamped `updated`
    at times spread evenly from SINCE to now, as a day's changes spread over the day; on "cpu" answer the CPU
    time it has used, on "served" the profile pages served so far, on "stop" report what it saw."""
    with Simulator({"customers": profiles(count)}, port=port) as sim:
        urls.put((sim.settings(), sim.env))
        while (command := commands.get()) != "stop":
            if command == "cpu":
                replies.put(time.process_time())
                continue
            if command == "served":
                replies.put(sim.count(status=200, path="/api/profiles"))
                continue
            _, fraction, since = command.split()
            customers = sim.dataset["customers"]
            every = round(1 / float(fraction))
            touched = pl.int_range(pl.len()) % every == 0
            start, now = datetime.fromisoformat(since), datetime.now(UTC)
            spread = pl.lit(start) + (pl.int_range(pl.len()) / pl.len() * pl.lit(now - start)).cast(pl.Duration("us"))
            sim.dataset["customers"] = customers.with_columns(
                last_name=pl.when(touched).then(pl.lit("Changed")).otherwise("last_name"),
                updated_at=pl.when(touched).then(spread).otherwise("updated_at"),
            )
            replies.put(int(customers.height // every + (customers.height % every > 0)))
        replies.put({"429": sim.count(status=429), "served": sim.count(status=200, path="/api/profiles")})


class Timed:
    """Times the phases of a whole `pull_sources` run: the connector's requests (`fetch`), reading the kept
    records and their parsed rows, finding the kept records no change touches (`merge`), parsing records
    (all of them in a full pull, the changes in an incremental one), checking keys over the whole and
    building the quarantine (`check`), storing the snapshot, keeping the records and parsed rows."""

    PHASES = (
        ("fetch", Connector, "pull"),
        ("read_kept", incremental.Memory, "records"),
        ("read_kept", incremental.Memory, "parsed"),
        ("merge", incremental, "unchanged"),
        ("parse", pull, "parse_frame"),
        ("check", pull, "finish"),
        ("store", Store, "ingest"),
        ("keep", incremental.Memory, "finish"),
    )

    def __init__(self) -> None:
        self.seconds = dict.fromkeys((name for name, _, _ in self.PHASES), 0.0)
        self.cpu_seconds = dict.fromkeys(self.seconds, 0.0)
        self._originals = [(owner, attribute, getattr(owner, attribute)) for _, owner, attribute in self.PHASES]

    def __enter__(self) -> Timed:
        for (name, owner, attribute), (_, _, original) in zip(self.PHASES, self._originals, strict=True):
            setattr(owner, attribute, self._timed(name, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attribute, original in self._originals:
            setattr(owner, attribute, original)

    def _timed(self, name, original):
        def run(*args, **kwargs):
            started, cpu = time.monotonic(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.monotonic() - started
                self.cpu_seconds[name] += time.process_time() - cpu

        return run


@contextmanager
def locked(path: Path | None) -> Iterator[float]:
    """Hold `path`'s lock (as `flock PATH` does) for the block; yields the seconds spent waiting for it."""
    if path is None:
        yield 0.0
        return
    started = time.monotonic()
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield round(time.monotonic() - started, 2)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def night(store: Store, config: Path, env: dict, pulls: Path, simulator_cpu) -> dict:
    load_before, simulator_before = os.getloadavg()[0], simulator_cpu()
    with Timed() as timed:
        started, cpu_started = time.monotonic(), time.process_time()
        (result,) = pull.pull_sources(
            store, load_config(config), ["klaviyo"], env=env, checkpoint_dir=pulls, progress=None
        )
        total, total_cpu = time.monotonic() - started, time.process_time() - cpu_started
    if result.error:
        raise SystemExit(f"the pull failed: {result.error}")
    phases = {name: round(seconds, 2) for name, seconds in timed.seconds.items()}
    return {"kind": result.kind, "detail": result.detail, "rows": result.rows, "fetch_s": phases.pop("fetch"),
            "total_s": round(total, 2), "phases_s": phases,
            # CPU of driftwatch's process (every thread): it survives a loaded machine better than wall time.
            "total_cpu_s": round(total_cpu, 2),
            "phases_cpu_s": {name: round(s, 2) for name, s in timed.cpu_seconds.items() if name != "fetch"},
            "fetch_cpu_s": {"connector": round(timed.cpu_seconds["fetch"], 2),
                            "simulator": round(simulator_cpu() - simulator_before, 2)},
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.02, help="fraction of profiles changed between the pulls")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--lock", type=Path, help="hold this file's lock (flock) for the incremental night")
    parser.add_argument("--save-state", type=Path, help="keep the full night's store, working folder and figures here")
    parser.add_argument(
        "--from-state", type=Path, help="start from a --save-state folder instead of pulling the full night again"
    )
    args = parser.parse_args()
    saved = json.loads((args.from_state / "full.json").read_text()) if args.from_state else None
    if saved is not None and saved["profiles"] != args.profiles:
        raise SystemExit(f"{args.from_state} holds a full night of {saved['profiles']:,} profiles")

    urls, commands, replies = mp.Queue(), mp.Queue(), mp.Queue()
    port = saved["port"] if saved else 0  # the same base URL: the kept records were pulled from it
    server = mp.Process(target=serve, args=(args.profiles, port, urls, commands, replies), daemon=True)
    server.start()
    settings, env = urls.get(timeout=1800)

    def simulator_cpu() -> float:
        commands.put("cpu")
        return replies.get(timeout=600)

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        config = folder / "driftwatch.toml"
        if saved is not None:
            shutil.copytree(args.from_state, folder, dirs_exist_ok=True)
            full, full_started = saved["full"], datetime.fromisoformat(saved["started"])
        else:
            config.write_text(tomli_w.dumps({"sources": {"klaviyo": {**settings, "entities": ["customers"]}}}))
            full_started = datetime.now(UTC)
            with Store(folder / "driftwatch.duckdb") as store:
                full = night(store, config, env, folder / "pulls", simulator_cpu)
            if args.save_state:
                shutil.copytree(folder, args.save_state, dirs_exist_ok=True)
                port = int(settings["base_url"].rsplit(":", 1)[1])
                state = {"profiles": args.profiles, "port": port, "started": full_started.isoformat(), "full": full}
                (args.save_state / "full.json").write_text(json.dumps(state, indent=2) + "\n")
        commands.put(f"change {args.changed} {full_started.isoformat()}")
        changed = replies.get(timeout=600)
        time.sleep(RATE_LIMITS["profiles"][1][1] + 1)  # the steady window resets, as it has by the next night
        commands.put("served")
        served_before = replies.get(timeout=60)
        with locked(args.lock) as waited, Store(folder / "driftwatch.duckdb") as store:
            incremental = night(store, config, env, folder / "pulls", simulator_cpu)
            incremental["lock_wait_s"] = waited
            commands.put("served")
            incremental["requests_served"] = replies.get(timeout=60) - served_before
            stored = store.latest("klaviyo", "customers")
    commands.put("stop")
    seen = replies.get(timeout=60)
    server.join(timeout=30)
    if incremental["kind"] != "incremental":
        raise SystemExit(f"the second night was not incremental: {incremental['detail']}")

    full_requests = math.ceil(args.profiles / PAGE_SIZES["profiles"])
    changed_requests = math.ceil(changed / PAGE_SIZES["profiles"])
    full["minimum_s"] = round(minimum_seconds(full_requests), 2)
    incremental["minimum_s"] = round(minimum_seconds(changed_requests), 2)
    for figures, requests in ((full, full_requests), (incremental, changed_requests)):
        figures["fetch_ratio"] = round(figures["fetch_s"] / figures["minimum_s"], 3) if figures["minimum_s"] else None
        figures["total_ratio"] = round(figures["total_s"] / figures["minimum_s"], 3) if figures["minimum_s"] else None
        cpu = figures["fetch_cpu_s"]
        figures["fetch_cpu_ms_per_request"] = round(1000 * (cpu["connector"] + cpu["simulator"]) / requests, 2)
    figures = {
        "profiles": args.profiles,
        "changed": changed,
        "requests": {"full": full_requests, "incremental": changed_requests, "served": seen["served"]},
        "full_from_state": str(args.from_state) if args.from_state else None,
        "update_windows": UPDATE_WINDOWS,
        "full": full,
        "incremental": incremental,
        "incremental_vs_full": round(incremental["total_s"] / full["total_s"], 4),
        "stored_changed": int((stored["last_name"] == "Changed").sum()),
        "responses_429": seen["429"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "limits": {"burst_per_s": RATE_LIMITS["profiles"][0][0], "steady_per_min": RATE_LIMITS["profiles"][1][0]},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if figures["stored_changed"] != changed or stored.height != args.profiles:
        raise SystemExit(f"stored {stored.height} profiles, {figures['stored_changed']} changed; expected "
                         f"{args.profiles} and {changed}")  # fmt: skip


if __name__ == "__main__":
    main()
