"""What follows from incidents and sync latency: the report's sections (in headless Chromium too) and the
digests each destination gets, delivered to a real HTTP receiver night after night."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime

import polars as pl
import pytest
from helpers_alerts import WebhookSink
from markupsafe import escape

from driftwatch.alerts.run import alert_run
from driftwatch.auditing import audit
from driftwatch.config import parse_config
from driftwatch.errors import UserError
from driftwatch.incidents import run_incidents
from driftwatch.incidents.age import aging, spells
from driftwatch.report.build import ReportSettings, build_report
from driftwatch.report.html import render_report
from driftwatch.report.sections import FollowUp
from driftwatch.report.summary import RunInfo
from driftwatch.store import Store
from tests.histories import CHECKS, History


def nightly(tmp_path, history: History, config: dict | None = None, alert: bool = False, url: str | None = None):
    """Audit (and alert, to `url`) each night of the history; yields (night, store, run id, outcome)."""
    raw = {**history.config(), **(config or {})}
    if url:
        raw["alerts"] = {"routes": [{"name": "ops", "urls": [url], "min_severity": "low"}], "retry_wait_seconds": 0}
        raw["report"] = {"out_dir": str(tmp_path / "reports"), "link_base": "https://intranet.example/dw/"}
    cfg = parse_config(raw)
    store = Store(tmp_path / "nightly.duckdb")
    for night in range(history.nights):
        store.ingest(history.night(night))
        run_id = audit(store, cfg, checks=CHECKS).run_id
        outcome = alert_run(store, cfg, run_id=run_id) if alert else None
        yield night, store, run_id, outcome


def test_a_route_hears_one_line_per_new_or_worsened_incident_and_its_clearing_once(tmp_path):
    history = History(nights=5, drop_location=("mirakl", "WH-RET", 1), fixed_on=4)
    with WebhookSink() as hook:
        bodies = {}
        for night, store, run_id, outcome in nightly(tmp_path, history, alert=True, url=hook.url):
            assert not outcome.failed
            bodies[night] = hook.payloads[-1]["message"] if len(hook.payloads) > len(bodies) else None
            if night == 1:
                dropped = {key for _, _, key in history.injected}
                [incident] = run_incidents(store, run_id).to_dicts()
    first = bodies[1]
    lines = [line for line in first.splitlines() if line.startswith("- ")]
    assert len(lines) == 1, first  # one incident line, not one line per SKU
    assert lines[0].startswith("- [medium] stock_parity on mirakl: ")
    assert f"are in location WH-RET, which feeds mirakl in the ERP. {incident['records']} records" in lines[0]
    assert "Owner ecommerce-ops. New." in lines[0]
    assert f"Findings: https://intranet.example/dw/driftwatch-{run_id_of(store, 1)}.html#incident-" in lines[0]
    assert not any(sku in first for sku in dropped)
    # Nights 2 and 3: the same incident, told again only if it grew, with its previous size.
    for night in (2, 3):
        told = [line for line in (bodies[night] or "").splitlines() if "are in location WH-RET" in line]
        assert all(", was " in line and "Worse, open since" in line for line in told), told
    # Night 4 fixed it: the clearing is one line, its SKUs are not listed one by one.
    fixed = bodies[4]
    assert "- location WH-RET on mirakl: stock_parity (incident)" in fixed
    assert not any(sku in fixed for sku in dropped)
    store.close()


def run_id_of(store: Store, night: int) -> str:
    return store.frame("SELECT run_id FROM audit_runs ORDER BY started_at")["run_id"][night]


def test_a_breached_sync_objective_alerts_when_it_begins_and_clears_when_it_ends(tmp_path):
    history = History(nights=6, stopped_job=("klaviyo", 1), fixed_on=4, noise=False)
    slo = {"slo": {"klaviyo": {"inventory": "6h"}}}
    with WebhookSink() as hook:
        for _ in nightly(tmp_path, history, slo, alert=True, url=hook.url):
            pass
    messages = [p["message"] for p in hook.payloads]
    breaches = [m for m in messages if "klaviyo inventory sync from bluecherry is too slow" in m]
    assert len(breaches) == 1, messages  # once, when it begins
    assert "still waiting, the oldest for" in breaches[0] and "over its 6 h objective" in breaches[0]
    # The night it catches up, the late changes arrive days late; the next night it runs on time again.
    assert "- inventory sync on klaviyo: sync_latency (objective)" in messages[-1], messages[-2:]


def test_the_report_leads_with_incidents_and_shows_latency_and_drift_age(tmp_path):
    history = History(nights=4, drop_location=("mirakl", "WH-RET", 1), stopped_job=("klaviyo", 2))
    *_, (_, store, run_id, _) = nightly(tmp_path, history)
    path = build_report(store, ReportSettings(out_dir=tmp_path), run_id, tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    assert html.index('id="incidents"') < html.index('id="trend"') < html.index('id="findings"')
    for incident in run_incidents(store, run_id).filter(pl.col("status") != "resolved").iter_rows(named=True):
        assert f'id="incident-{incident["incident_id"]}"' in html
        assert str(escape(incident["explanation"])) in html
    assert "which feeds mirakl in the ERP" in html and "every klaviyo stock figure stopped changing" in html
    assert 'id="latency-mirakl-inventory"' in html and "<polyline" in html
    # The trend starts at the first night measured, in data time, though every night was audited just now.
    first = 'id="latency-mirakl-inventory"'
    chart = html[html.index(first) : html.index("</article>", html.index(first))]
    assert f'class="tick">{history.captured(1):%Y-%m-%d %H:%M}<' in chart, chart
    assert 'id="aging"' in html and "fixed within a day" in html
    assert ">open 2 d<" in html or "open 2 d" in html  # the drop is two nights old, in data time
    store.close()


def test_drift_ages_in_data_time(tmp_path):
    history = History(nights=5, drop_location=("mirakl", "WH-RET", 1), fixed_on=2, noise=False)
    *_, (_, store, run_id, _) = nightly(tmp_path, history)
    found = spells(store, run_id)
    overall = aging(found).filter(pl.col("check_id").is_null()).to_dicts()[0]
    dropped = found.filter(pl.col("check_id") == "stock_parity")
    assert dropped.height and dropped["closed_at"].is_not_null().all()  # fixed the next night
    assert overall["fixed_day"] == dropped.height
    assert overall["open_day"] + overall["open_week"] + overall["open_longer"] == found["closed_at"].is_null().sum()
    store.close()


def test_incident_text_is_escaped_in_the_report():
    run = RunInfo("r1", datetime(2026, 11, 20, tzinfo=UTC), True)
    incidents = pl.DataFrame(
        [
            {
                "incident_id": "abc",
                "check_id": "stock_parity",
                "target": "mirakl",
                "severity": "high",
                "status": "new",
                "acknowledged": False,
                "cause": "3 of 3 stock figures are in location <script>alert(1)</script>",
                "explanation": "Grouped by location <b>x</b>",
                "owner": "ops",
                "size": 3,
                "records": 3,
                "money": [],
                "opened_at": run.started_at,
                "first_seen_at": run.started_at,
                "last_run": "r1",
            }
        ]
    )
    html = render_report(run, pl.DataFrame(schema=_FINDINGS), follow_up=FollowUp(incidents=incidents))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


_FINDINGS = {
    "run_id": pl.String, "check_id": pl.String, "severity": pl.String, "source": pl.String, "target": pl.String,
    "entity": pl.String, "key": pl.String, "field": pl.String, "expected": pl.String, "actual": pl.String,
    "impact": pl.Decimal(18, 4), "currency": pl.String, "message": pl.String, "repair_action": pl.String,
    "fingerprint": pl.String, "status": pl.String, "acknowledged": pl.Boolean, "muted": pl.Boolean,
}  # fmt: skip


@pytest.mark.browser
def test_a_link_to_an_incident_opens_its_findings_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI")
        pytest.skip("chromium is not installed")
    history = History(nights=3, drop_location=("mirakl", "WH-RET", 1))
    *_, (_, store, run_id, _) = nightly(tmp_path, history)
    path = build_report(store, ReportSettings(out_dir=tmp_path), run_id, tmp_path / "report.html")
    [incident_id] = run_incidents(store, run_id)["incident_id"].to_list()
    store.close()
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
    ]  # fmt: skip
    link = f"{path.as_uri()}#incident-{incident_id}"
    shot = tmp_path / "incident.png"
    subprocess.run([*flags, f"--screenshot={shot}", link], check=True, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000
    dom = subprocess.run([*flags, "--dump-dom", link], check=True, capture_output=True, text=True, timeout=120).stdout
    article = dom[dom.index(f'id="incident-{incident_id}"') :]
    assert article[: article.index("</article>")].count("<details open") == 1, "the link opened its findings"


def test_an_acknowledged_incident_stays_quiet_until_a_finding_joins_it(tmp_path):
    from click.testing import CliRunner

    from driftwatch.cli import cli

    history = History(nights=3, drop_location=("mirakl", "WH-RET", 1), noise=False)
    raw = history.config()
    raw["alerts"] = {"routes": [{"name": "ops", "urls": [], "min_severity": "low"}], "retry_wait_seconds": 0}
    raw["report"] = {"out_dir": str(tmp_path / "reports")}
    db = ["--db", str(tmp_path / "nightly.duckdb")]
    with WebhookSink() as hook:
        raw["alerts"]["routes"][0]["urls"] = [hook.url]
        cfg = parse_config(raw)

        def audited(night: int | None) -> tuple[dict, str]:
            """Audit (the night's new snapshots, or again on the same ones) and alert; the incident and the
            digest's message ("" when nothing was sent)."""
            sent = len(hook.payloads)
            with Store(tmp_path / "nightly.duckdb") as store:
                if night is not None:
                    store.ingest(history.night(night))
                run_id = audit(store, cfg, checks=CHECKS).run_id
                assert not alert_run(store, cfg, run_id=run_id).failed
                incidents = run_incidents(store, run_id).to_dicts()
            return (incidents[0] if incidents else {}), (
                hook.payloads[-1]["message"] if len(hook.payloads) > sent else ""
            )

        audited(0)
        incident, told = audited(1)
        assert "are in location WH-RET" in told and not incident["acknowledged"]
        listed = CliRunner().invoke(cli, [*db, "incidents", "--status", "new", "--format", "json"])
        assert listed.exit_code == 0, listed.output
        assert [i["incident_id"] for i in json.loads(listed.output)] == [incident["incident_id"]]
        acked = CliRunner().invoke(cli, [*db, "ack", f"incident:{incident['incident_id']}", "--note", "feed fix"])
        assert acked.exit_code == 0 and f"its {incident['size']} finding(s)" in acked.output, acked.output
        # The same findings again: the incident is acknowledged and nobody hears of it.
        same, told = audited(None)
        assert same["incident_id"] == incident["incident_id"] and same["size"] == incident["size"]
        assert same["acknowledged"] and "WH-RET" not in told
        quiet = CliRunner().invoke(cli, [*db, "incidents", "--status", "acknowledged", "--format", "json"])
        assert [i["incident_id"] for i in json.loads(quiet.output)] == [incident["incident_id"]], quiet.output
        table = CliRunner().invoke(cli, [*db, "incidents"])
        assert table.exit_code == 0 and "1 incident(s)" in table.output and incident["incident_id"] in table.output
        sheet = CliRunner().invoke(cli, [*db, "incidents", "--format", "csv"])
        assert sheet.exit_code == 0, sheet.output
        [row] = list(csv.DictReader(io.StringIO(sheet.output)))
        assert row["incident_id"] == incident["incident_id"] and row["money"].endswith(" EUR"), row
        # The next night more SKUs of the location drift: findings the acknowledgement never covered.
        grown, told = audited(2)
        assert grown["size"] > incident["size"] and not grown["acknowledged"]
        assert "are in location WH-RET" in told and f"was {incident['records']}" in told, told
    unknown = CliRunner().invoke(cli, [*db, "ack", "incident:0000000000000000"])
    assert isinstance(unknown.exception, UserError) and "no incident with id '0000000000000000'" in str(
        unknown.exception
    )
