"""Alerts over several nights of real audits of the demo retailer, sent by the `driftwatch alert` command to
a real SMTP server and a real HTTP receiver on loopback.

Each night loads what changed in the exports (a file drop of the edited entity, captured a little later),
audits, and runs `driftwatch alert` in its own process, as cron would: an identical night is silent; a
status-only change alerts once; a partial fix lists what cleared; a destination that failed gets the
digest once when it is back while the healthy one does not get it again; an acknowledged finding that
worsens alerts again; the command exits 0, 3 or 2 as documented.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from helpers_alerts import SmtpSink, WebhookSink

from driftwatch.config import load_config
from driftwatch.demo.generator import generate
from driftwatch.demo.run import FEEDS
from driftwatch.engine import audit, findings, run_info
from driftwatch.filedrop import load_directory
from driftwatch.store import Store

CAPTURED = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
DRIFTWATCH = str(Path(sys.executable).parent / "driftwatch")


class Nights:
    """A driftwatch home (config, store, exports) audited night after night."""

    def __init__(self, home: Path, exports: Path, smtp: SmtpSink, webhook: WebhookSink) -> None:
        self.home, self.exports, self.webhook = home, exports, webhook
        self.drops = 0
        self.latest: dict[tuple[str, str], Path] = {}  # each edited export as last dropped
        codes = json.loads((exports / "bluecherry" / "_status_map.json").read_text(encoding="utf-8"))
        config = {
            "store": {"path": "driftwatch.duckdb"},
            "feeds": FEEDS,
            "statuses": {"bluecherry": codes},
            "report": {"out_dir": "reports", "link_base": "https://intranet.example/driftwatch/"},
            "alerts": {
                "retry_attempts": 1,
                "retry_wait_seconds": 0,
                "routes": [
                    {"name": "cx", "urls": [smtp.url("cx@example.com")], "url_env": ["DW_E2E_CX_HOOK"],
                     "teams": ["customer-service"]},
                    {"name": "stock", "urls": [smtp.url("stock@example.com")], "checks": ["stock_parity"],
                     "min_severity": "critical"},
                ],
            },
        }  # fmt: skip
        self.config = home / "driftwatch.toml"
        self.config.write_text(tomli_w.dumps(config), encoding="utf-8")
        self.cfg = load_config(self.config)
        self.env = {**os.environ, "DW_E2E_CX_HOOK": webhook.url}

    def audit(self, drop: Path | None = None) -> str:
        with Store(self.cfg.store_path) as store:
            if drop is not None:
                load_directory(store, drop, self.cfg)
            return audit(store, self.cfg).run_id

    def edit(self, source: str, entity: str, key: str, value: str, column: str, new: str) -> Path:
        """A drop of one export with one value changed, captured ten minutes after the previous drop."""
        self.drops += 1
        drop = self.home / f"drop-{self.drops}"
        original = self.latest.get((source, entity), self.exports / source / f"{entity}.csv")
        rows = pl.read_csv(original, infer_schema=False)
        assert rows.filter(pl.col(key) == value).height == 1
        edited = pl.when(pl.col(key) == value).then(pl.lit(new)).otherwise(pl.col(column))
        rows = rows.with_columns(edited.alias(column))
        (drop / source).mkdir(parents=True)
        rows.write_csv(drop / source / f"{entity}.csv")
        captured = CAPTURED + timedelta(minutes=10 * self.drops)
        (drop / source / "_manifest.json").write_text(json.dumps({"captured_at": f"{captured:%Y-%m-%dT%H:%M:%SZ}"}))
        self.latest[(source, entity)] = drop / source / f"{entity}.csv"
        return drop

    def driftwatch(self, *args: str) -> subprocess.CompletedProcess:
        command = [DRIFTWATCH, "--config", str(self.config), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=self.env, check=False)

    def started(self, run_id: str) -> str:
        with Store(self.cfg.store_path) as store:
            return f"{run_info(store, run_id)['started_at']:%Y-%m-%d}"

    def fingerprint(self, check_id: str, target: str, key: str) -> str:
        with Store(self.cfg.store_path) as store:
            found = findings(store)
        row = found.filter((pl.col("check_id") == check_id) & (pl.col("target") == target) & (pl.col("key") == key))
        return row["fingerprint"].item()


@pytest.fixture
def nights(tmp_path):
    exports = generate(tmp_path / "exports", captured_at=CAPTURED).out_dir
    with SmtpSink() as smtp, WebhookSink() as webhook:
        yield Nights(tmp_path, exports, smtp, webhook), smtp, webhook


def bodies(smtp: SmtpSink, to: str) -> list[str]:
    return [m.get_body().get_content().replace("\r\n", "\n") for m in smtp.messages if m["To"] == to]


def record_lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("- [")]


def test_several_nights_each_change_once_nothing_twice(nights):
    night, smtp, webhook = nights
    exports = night.exports

    # Night 1: the drifted retailer. Every destination hears of its drift.
    first_day = night.started(night.audit(exports))
    first = night.driftwatch("alert")
    assert first.returncode == 0, first.stderr
    assert len(bodies(smtp, "cx@example.com")) == len(webhook.payloads) == len(bodies(smtp, "stock@example.com")) == 1
    cx_first = bodies(smtp, "cx@example.com")[0]
    assert webhook.payloads[0]["message"] == cx_first.rstrip("\n")
    assert "- [high] SO00000183 on mirakl: order SO00000183 is cancelled in the ERP but accepted on mirakl. " \
           "437.70 EUR at risk. New." in cx_first  # fmt: skip
    assert "Report: https://intranet.example/driftwatch/driftwatch-" in cx_first

    # Night 2: the same exports. Silence.
    night.audit()
    quiet = night.driftwatch("alert")
    assert quiet.returncode == 0 and "nothing to send" in quiet.stdout
    assert len(smtp.messages) == 2 and len(webhook.payloads) == 1

    # Night 3: the cancelled order moves on Mirakl from SHIPPING (accepted) to SHIPPED; same severity, same money.
    night.audit(night.edit("mirakl", "orders", "order_id", "SO00000183", "status", "SHIPPED"))
    assert night.driftwatch("alert").returncode == 0
    changed = [bodies(smtp, "cx@example.com")[1], webhook.payloads[1]["message"]]
    for body in changed:
        assert record_lines(body) == [
            "- [high] SO00000183 on mirakl: order SO00000183 is cancelled in the ERP but shipped on mirakl "
            f"(status: shipped, was accepted). 437.70 EUR at risk. Changed, open since {first_day}."
        ]
    assert len(bodies(smtp, "stock@example.com")) == 1

    # Night 4: Ometria gets the cancellation of SO00000845, and the CX webhook is down.
    webhook.fail_next = 1
    night.audit(night.edit("ometria", "orders", "order_id", "SO00000845", "status", "cancelled"))
    down = night.driftwatch("alert")
    assert down.returncode == 3, down.stdout + down.stderr
    assert "failed: resolved to cx:$DW_E2E_CX_HOOK" in down.stdout
    partial = bodies(smtp, "cx@example.com")[2]
    assert "Cleared since the last digest (1):\n- SO00000845 on ometria: order_status_drift (status)" in partial
    assert record_lines(partial) == []
    assert str(smtp.messages[-1]["Subject"]).startswith("driftwatch: 1 cleared, ")

    # Night 5: nothing changed; the webhook is back and gets what it missed, once; the mailbox gets nothing.
    night.audit()
    back = night.driftwatch("alert")
    assert back.returncode == 0, back.stdout
    assert len(webhook.payloads) == 3 and len(bodies(smtp, "cx@example.com")) == 3
    assert "- SO00000845 on ometria: order_status_drift (status)" in webhook.payloads[2]["message"]
    assert night.driftwatch("alert").stdout.strip() == "nothing to send"

    # Night 6: two oversold SKUs are acknowledged; one of them grows fourfold.
    for target, sku in (("klaviyo", "00112-010-XL"), ("emarsys", "P0011-000-OS")):
        acked = night.driftwatch("ack", night.fingerprint("stock_parity", target, sku), "--note", "supplier fix")
        assert acked.returncode == 0, acked.stderr
    night.audit(night.edit("klaviyo", "inventory", "sku", "00112-010-XL", "available", "24"))
    assert night.driftwatch("alert").returncode == 0
    stock = bodies(smtp, "stock@example.com")
    assert len(stock) == 2
    assert record_lines(stock[1]) == [
        "- [critical] 00112-010-XL on klaviyo: klaviyo publishes 24 but ERP available-to-sell is 0: oversell risk "
        f"(available: 24, was 6). 1,437.60 EUR at risk. Worse than when acknowledged, open since {first_day}."
    ]

    # A run that does not exist is a user error: one line, exit 2, nothing sent.
    missing = night.driftwatch("alert", "--run", "no-such-run")
    assert missing.returncode == 2 and missing.stderr.startswith("error: no audit run 'no-such-run'")
    assert len(smtp.messages) == 5 and len(webhook.payloads) == 3
