"""The noise bar on real audits: the demo retailer drifts for three days, is fixed on day four, stays clean."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl
from helpers_alerts import SmtpSink, WebhookSink

from driftwatch.alerts import deliveries
from driftwatch.alerts.run import alert_run
from driftwatch.config import parse_config
from driftwatch.demo.generator import generate
from driftwatch.demo.run import FEEDS
from driftwatch.engine import audit
from driftwatch.filedrop import load_directory
from driftwatch.store import Store

DAY1 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def test_five_daily_audits_send_one_digest_and_one_all_clear_per_affected_route(tmp_path, monkeypatch):
    drifted = generate(tmp_path / "drifted", captured_at=DAY1).out_dir
    fixed = generate(tmp_path / "fixed", drift=False, captured_at=DAY1 + timedelta(days=3)).out_dir
    codes = json.loads((drifted / "bluecherry" / "_status_map.json").read_text(encoding="utf-8"))
    with SmtpSink() as smtp, WebhookSink() as webhook, Store(tmp_path / "driftwatch.duckdb") as store:
        monkeypatch.setenv("DW_E2E_CRM_HOOK", webhook.url)
        cfg = parse_config(
            {
                "feeds": FEEDS,
                "statuses": {"bluecherry": codes},
                "report": {"out_dir": str(tmp_path / "reports")},
                "alerts": {
                    "retry_wait_seconds": 0,
                    "routes": [
                        {"name": "ops", "urls": [smtp.url("ops@example.com")], "min_severity": "critical"},
                        {"name": "crm", "url_env": "DW_E2E_CRM_HOOK", "teams": ["crm", "crm-compliance"]},
                        # Nothing in the demo retailer is late on acceptance: this route must stay silent.
                        {"name": "quiet", "urls": [smtp.url("quiet@example.com")], "checks": ["no_such_check"]},
                    ],
                },
            }
        )
        runs = []
        # The exports change on day 1 (drifted) and day 4 (fixed); the other days audit the same snapshots.
        exports_of_day = {1: drifted, 4: fixed}
        for day in range(1, 6):
            if day in exports_of_day:
                load_directory(store, exports_of_day[day], cfg)
            runs.append(audit(store, cfg))
            outcome = alert_run(store, cfg, run_id=runs[-1].run_id)
            assert outcome.failed == [], f"day {day}"
            assert (sum(runs[-1].counts.values()) > 0) == (day <= 3), f"day {day}: {runs[-1].counts}"

        critical = runs[0].counts["critical"]
        assert critical > 0
        assert [str(m["Subject"]) for m in smtp.messages] == [
            f"driftwatch: {critical} findings need attention (ops)",
            "driftwatch: all clear (ops)",
        ]
        titles = [p["title"] for p in webhook.payloads]
        assert len(titles) == 2
        assert re.fullmatch(r"driftwatch: \d+ findings need attention \(crm\)", titles[0])
        assert titles[1] == "driftwatch: all clear (crm)"
        # The digest names the ERP customer ids the CRM team can act on, and links to the day-one report.
        digest = webhook.payloads[0]["message"]
        consent = runs[0].findings.filter(pl.col("check_id") == "consent_parity")
        assert consent.height > 0
        assert all(f"{key} email_consent" in digest for key in consent["key"])
        report = Path(urlsplit(digest.rsplit("Report: ", 1)[1].strip()).path)
        assert report.exists() and runs[0].run_id in report.name
        assert deliveries(store).filter(pl.col("route") == "quiet").height == 0
