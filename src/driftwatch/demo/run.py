"""`make demo`: the nightly job, end to end, on the demo retailer.

It generates the retailer (with drift injected and an answer key), serves every platform's copy from a
loopback simulator of that platform's API, stores and audits the two nights before (`demo.history`: the
causes of the last night's incidents and the history sync latency is measured from), and then does what a
nightly `driftwatch run` does: pull through the real connectors, audit, write the HTML report and preview
the alerts. Last, it scores the audit against the answer key.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import tomli_w

from driftwatch.alerts import ledger, preview
from driftwatch.alerts.run import alert_run
from driftwatch.auditing import audit
from driftwatch.config import load_config
from driftwatch.demo.generator import generate
from driftwatch.demo.history import earlier_nights, inject_causes
from driftwatch.errors import UserError
from driftwatch.files import write_text
from driftwatch.locations import demo_dir, working
from driftwatch.nightly import run_nightly
from driftwatch.pull import pull_sources, results_frame
from driftwatch.report.build import load_run
from driftwatch.simulators import PLATFORMS, SIMULATORS
from driftwatch.store import Store

# What feeds what in the demo retailer: BlueCherry feeds every target, except that Emarsys takes its
# customers and web orders from the commercetools storefront.
FEEDS = [
    {"source": "bluecherry", "target": "mirakl",
     "entities": ["products", "inventory", "orders", "order_lines", "shipments", "payout_lines"]},
    {"source": "bluecherry", "target": "klaviyo", "entities": ["customers", "products", "inventory", "events"]},
    {"source": "bluecherry", "target": "ometria",
     "entities": ["customers", "orders", "order_lines", "products", "inventory"]},
    {"source": "bluecherry", "target": "emarsys", "entities": ["products", "inventory"]},
    {"source": "commercetools", "target": "emarsys", "entities": ["customers", "orders", "order_lines"],
     "channels": ["web"]},
]  # fmt: skip
ANSWER_KEY_COLUMNS = ["check_id", "target", "key"]


def demo_config(snapshot_dir: Path, sources: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The demo's driftwatch.toml as tables: its topology, BlueCherry's status codes (from the mapping the
    export came with), the agreed commission, and how to reach each source."""
    codes = json.loads((snapshot_dir / "bluecherry" / "_status_map.json").read_text(encoding="utf-8"))
    rates = json.loads((snapshot_dir / "mirakl" / "_commission_rates.json").read_text(encoding="utf-8"))
    return {
        "store": {"path": "driftwatch.duckdb"},
        "audit": {"fail_on": "high"},
        "feeds": FEEDS,
        "sources": sources or {},
        "statuses": {"bluecherry": codes},
        "payouts": {"commission": {"default": rates["default"], "shipping": rates.get("base") != "order_amount"}},
        "report": {"out_dir": "reports"},
        "alerts": {"routes": [
            {"name": "ops", "url_env": ["DRIFTWATCH_OPS_WEBHOOK"], "min_severity": "high"},
            {"name": "cx", "url_env": ["DRIFTWATCH_CX_SLACK"], "teams": ["customer-service", "crm", "crm-compliance"]},
            {"name": "stock", "url_env": ["DRIFTWATCH_STOCK_SLACK"], "teams": ["ecommerce-ops", "integration"],
             "min_severity": "medium"},
        ]},
        "slo": {"klaviyo": {"inventory": "6h"}, "ometria": {"inventory": "2h"}, "emarsys": {"inventory": "6h"}},
    }  # fmt: skip


MARKER = ".driftwatch-demo"  # marks a folder the demo made, so that only such a folder is ever emptied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=demo_dir())
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        return run_demo(args.out, args.seed)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_demo(out: Path, seed: int = 7) -> int:
    """Generate the demo retailer into `out`, run the nightly job on it, and score the audit."""
    fresh_folder(out)
    snapshots = out / "snapshots"
    captured_at = datetime.now(UTC).replace(microsecond=0)
    say(f"1. generating the demo retailer into {snapshots}")
    generate(snapshots, seed=seed, captured_at=captured_at)
    plan = inject_causes(snapshots, captured_at, seed=seed)
    with ExitStack() as stack:
        simulators = {name: stack.enter_context(SIMULATORS[name].from_snapshot_dir(snapshots)) for name in PLATFORMS}
        say("2. serving " + ", ".join(f"{name} on {sim.url}" for name, sim in simulators.items()))
        sources = {name: sim.settings() for name, sim in simulators.items()}
        sources["bluecherry"] = {"path": str((snapshots / "bluecherry").resolve())}
        config_path = out / "driftwatch.toml"
        write_text(config_path, tomli_w.dumps(demo_config(snapshots, sources)))
        cfg = load_config(config_path)
        # Credentials live only in this process's environment, as they would on a real host.
        env = {k: v for sim in simulators.values() for k, v in sim.env.items()}
        say("3. the two nights before: stored and audited as they happened")
        scratch = working(cfg.store_path, "scratch") / "demo-history"
        scratch.mkdir(exist_ok=True)
        with Store(scratch / "pulled.duckdb") as pulled:
            pull_sources(pulled, cfg, env=env, progress=False)
            nights = earlier_nights(pulled, plan)
        shutil.rmtree(scratch)
        with Store(cfg.store_path) as store:
            for night in nights:
                store.ingest(night)
                run_id = audit(store, cfg).run_id
                _as_if_alerted(store, cfg, run_id)
                print(f"   {night[0].captured_at:%Y-%m-%d %H:%M}: run {run_id}, its digests taken as delivered")
            say(f"4. nightly job with {config_path}: pull every source, audit, report, alerts (preview)")
            pulls = working(cfg.store_path, "pulls")
            result = run_nightly(store, cfg, env=env, checkpoint_dir=pulls, send_alerts=False)
    print(results_frame(result.pulls))
    print_findings(result.run.findings)
    say(f"5. report: {result.report.resolve()}")
    say("6. alerts each route would receive:")
    print(preview(result.alerts.plan))
    score(result.run.findings.filter(pl.col("status") != "resolved"), snapshots / "answer_key.csv")
    return 0


def fresh_folder(out: Path) -> None:
    """Every demo starts from nothing, so it shows what a first night looks like; but only a folder an
    earlier demo made (or an empty one) is ever emptied: --out pointing at anything else is refused."""
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out} is a file; give --out a folder for the demo")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise UserError(f"{out} is not empty and was not made by the demo; give --out a new or empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_text(out / MARKER, "made by `driftwatch demo`: the next demo run into this folder empties it\n")


def _as_if_alerted(store: Store, cfg, run_id: str) -> None:
    """Every destination knows the night's drift, as after a delivered digest: the last night's digests then
    say what changed since, as they would on a store that has been alerting for a while."""
    outcome = alert_run(store, cfg, run_id=run_id, send=False)
    run, _ = load_run(store, run_id)
    for outgoing in outcome.plan:
        ledger.remember(store, outgoing.route.name, outgoing.destination.label, run, outgoing.state)


def print_findings(findings: pl.DataFrame) -> None:
    summary = (
        findings.filter(pl.col("status") != "resolved")
        .pivot(on="severity", index=["check_id", "target"], values="key", aggregate_function="len")
        .fill_null(0)
        .sort("check_id", "target")
    )
    columns = ["check_id", "target", *[s for s in ("critical", "high", "medium", "low") if s in summary.columns]]
    with pl.Config(tbl_rows=100, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(summary.select(columns))


def score(findings: pl.DataFrame, answer_key: Path) -> None:
    expected = pl.read_csv(answer_key, infer_schema=False).select(ANSWER_KEY_COLUMNS).unique()
    found = findings.select(ANSWER_KEY_COLUMNS).unique()
    hits = expected.join(found, on=ANSWER_KEY_COLUMNS, how="semi").height
    extra = found.join(expected, on=ANSWER_KEY_COLUMNS, how="anti").height
    say(f"7. answer key: {hits} of {expected.height} injected drifts found, {extra} finding(s) not in the key")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
