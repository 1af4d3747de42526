"""`driftwatch report` and `driftwatch alert` on a real audit of the demo retailer, and the report in Chromium.

Klaviyo lists a product whose SKU and name are `<script>alert(1)</script>`; catalogue_parity reports it as
a SKU the ERP does not know, so the hostile value reaches the findings, the report and the browser the
way any value from an export would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from click.testing import CliRunner
from helpers_alerts import WebhookSink

from driftwatch.cli import cli
from driftwatch.demo.generator import generate
from driftwatch.demo.run import FEEDS

SCRIPT_NAME = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A working directory with driftwatch.toml and a store holding one audit of the demo retailer."""
    home = tmp_path_factory.mktemp("driftwatch")
    snapshots = generate(home / "snapshots").out_dir
    products = snapshots / "klaviyo" / "products.csv"
    header = products.read_text(encoding="utf-8").splitlines()[0]
    assert header == "sku,name,price,currency,status,updated_at"
    with products.open("a", encoding="utf-8") as rows:
        rows.write(f"{SCRIPT_NAME},{SCRIPT_NAME},10.00,EUR,active,2026-10-01T00:00:00Z\n")
    codes = json.loads((snapshots / "bluecherry" / "_status_map.json").read_text(encoding="utf-8"))
    config = {
        "store": {"path": "driftwatch.duckdb"},
        "feeds": FEEDS,
        "statuses": {"bluecherry": codes},
        "report": {"out_dir": "reports", "link_base": "https://reports.example/driftwatch"},
        "alerts": {
            "retry_attempts": 2,
            "retry_wait_seconds": 0,
            "routes": [{"name": "merch", "url_env": "DW_CLI_MERCH_HOOK", "checks": ["catalogue_parity"]}],
        },
    }
    (home / "driftwatch.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    for args in (["load", str(snapshots)], ["audit"]):
        result = invoke(home, args)
        assert result.exit_code in (0, 1), result.output
    return home


def invoke(home: Path, args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["--config", str(home / "driftwatch.toml"), *args], env=env, catch_exceptions=False)


def test_report_command_writes_the_report_and_exports(audited):
    result = invoke(
        audited,
        [
            "report",
            "--export",
            str(audited / "out" / "findings.csv"),
            "--export",
            str(audited / "out" / "findings.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    report, csv, parquet = (Path(line) for line in result.output.split())
    assert report.parent == audited / "reports" and report.name.startswith("driftwatch-")
    html = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT_NAME not in html
    exported = pl.read_parquet(parquet)
    assert exported.height == pl.read_csv(csv).height > 0
    assert SCRIPT_NAME in exported.filter(pl.col("check_id") == "catalogue_parity")["key"].to_list()


def test_report_for_an_unknown_run_is_a_one_line_user_error(audited):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "driftwatch"), "--config", str(audited / "driftwatch.toml"),
         "report", "--run", "no-such-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no audit run 'no-such-run' in {audited / 'driftwatch.duckdb'}"


def test_alert_preview_then_send_then_nothing_twice(audited):
    with WebhookSink() as hook:
        env = {"DW_CLI_MERCH_HOOK": hook.url}
        preview = invoke(audited, ["alert", "--preview"], env)
        assert preview.exit_code == 0, preview.output
        assert "== route merch → merch:$DW_CLI_MERCH_HOOK" in preview.output
        assert "https://reports.example/driftwatch/driftwatch-" in preview.output
        assert hook.payloads == []

        hook.fail_next = 2
        failed = invoke(audited, ["alert"], env)
        assert failed.exit_code == 3  # incomplete, as for `run`: the next `alert` makes it up
        assert "failed: drift to merch:$DW_CLI_MERCH_HOOK" in failed.output

        sent = invoke(audited, ["alert"], env)
        assert sent.exit_code == 0, sent.output
        again = invoke(audited, ["alert"], env)
        assert again.exit_code == 0 and "nothing to send" in again.output
        assert len(hook.payloads) == 1
        assert f"[medium] {SCRIPT_NAME} on klaviyo: " in hook.payloads[0]["message"]


@pytest.mark.browser
def test_report_renders_in_headless_chromium(audited, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI")
        pytest.skip("chromium is not installed")
    report = audited / "reports" / "browser.html"
    assert invoke(audited, ["report", "--out", str(report)]).exit_code == 0
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
    ]  # fmt: skip
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000, "a blank page compresses to a few kilobytes"
    dom = subprocess.run(
        [*flags, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert "Today's data can be trusted." in dom
    assert 'id="findings-table"' in dom
    rows = dom.count('<tr data-check="')
    assert rows > 10
    assert f"{rows} shown" in dom, "the table script ran and counted every row"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert SCRIPT_NAME not in dom
