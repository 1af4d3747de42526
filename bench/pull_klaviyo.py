"""Pull Klaviyo profiles from the loopback simulator at Klaviyo's documented profiles limits.

GET /api/profiles allows 75 requests a second (burst) and 750 a minute (steady), 100 profiles a page. The
fastest any client can pull N profiles is set by those windows; this measures how close the connector's
rate limiter gets to that floor (target: within 10%) and how many 429s it provokes (target: none after
the first). The simulator runs in its own process, as a platform would, so that serving pages does not
compete with the connector for the interpreter.

    .venv/bin/python bench/pull_klaviyo.py [--profiles 100000] [--json bench/results/pull_klaviyo.json]

The machine's load is recorded with the figures: the connector's per-request work (parsing, mapping,
staging) decides how close to the floor the pull gets once the steady window has reset.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from driftwatch.connectors.klaviyo import Connector
from driftwatch.connectors.klaviyo.client import PAGE_SIZES, RATE_LIMITS
from driftwatch.normalize import coerce
from driftwatch.simulators.klaviyo import KlaviyoSimulator as Simulator


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
    (burst, burst_period), (steady, steady_period) = RATE_LIMITS["profiles"]
    full_windows = (requests - 1) // steady
    remainder = requests - full_windows * steady
    return full_windows * steady_period + (math.ceil(remainder / burst) - 1) * burst_period


def serve(count: int, urls: mp.Queue, stop: mp.Event, counts: mp.Queue) -> None:
    """The simulator's process: serve `count` profiles until told to stop, then report what it saw."""
    with Simulator({"customers": profiles(count)}) as sim:
        urls.put((sim.settings(), sim.env))
        stop.wait()
        counts.put({"429": sim.count(status=429), "served": sim.count(status=200, path="/api/profiles")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    urls, counts, stop = mp.Queue(), mp.Queue(), mp.Event()
    server = mp.Process(target=serve, args=(args.profiles, urls, stop, counts), daemon=True)
    server.start()
    settings, env = urls.get(timeout=120)
    requests = math.ceil(args.profiles / PAGE_SIZES["profiles"])
    with tempfile.TemporaryDirectory() as staging:
        connector = Connector(settings, env=env, checkpoint_dir=Path(staging), progress=None)
        started = time.monotonic()
        frame = connector.pull(["customers"]).frames["customers"]
        elapsed = time.monotonic() - started
        connector.close()
    stop.set()
    seen = counts.get(timeout=60)
    server.join(timeout=10)
    throttled, served = seen["429"], seen["served"]

    floor = minimum_seconds(requests)
    figures = {
        "profiles": frame.height,
        "requests": served,
        "elapsed_s": round(elapsed, 2),
        "minimum_s": round(floor, 2),
        "ratio": round(elapsed / floor, 3) if floor else None,
        "responses_429": throttled,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "limits": {"burst_per_s": RATE_LIMITS["profiles"][0][0], "steady_per_min": RATE_LIMITS["profiles"][1][0]},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if frame.height != args.profiles:
        raise SystemExit(f"pulled {frame.height} profiles, expected {args.profiles}")


if __name__ == "__main__":
    main()
