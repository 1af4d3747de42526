from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

import polars as pl
import pytest
from helpers_alerts import day, finding, findings_frame

from driftwatch.errors import UserError
from driftwatch.report import History, ReportOptions, RunInfo, export_findings, render_report

SCRIPT_NAME = "<script>alert(1)</script>"


def sample_findings() -> pl.DataFrame:
    return findings_frame(
        [
            finding(
                "stock_parity",
                "klaviyo",
                "SKU-001",
                field="available",
                severity="critical",
                expected="0",
                actual="14",
                impact="419.30",
            ),
            finding(
                "stock_parity",
                "mirakl",
                "SKU-002/WH1",
                field="available",
                severity="high",
                expected="3",
                actual="9",
                impact="120.00",
                status="ongoing",
            ),
            finding(
                "catalogue_parity",
                "emarsys",
                "SKU-003",
                field="name",
                severity="medium",
                expected=SCRIPT_NAME,
                actual="Blue Tee",
            ),
            finding(
                "consent_parity",
                "klaviyo",
                "C-1001",
                field="email",
                severity="critical",
                expected="jane.doe@example.com",
                actual="jane@old.example.org",
                status="regressed",
            ),
            finding("order_presence", "mirakl", "SO-43", severity="low", expected="present", status="resolved"),
        ]
    )


class Cells(HTMLParser):
    """Collects the text of the page and of the findings table's body cells."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.in_script = False
        self.table_rows = 0

    def handle_starttag(self, tag, attrs):
        self.in_script = tag == "script"
        if tag == "tr" and dict(attrs).get("data-check"):
            self.table_rows += 1

    def handle_endtag(self, tag):
        self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts.append(data)


def parse(html: str) -> Cells:
    cells = Cells()
    cells.feed(html)
    return cells


def test_report_opens_with_trust_and_counts_every_finding():
    run = RunInfo("run-7", day(7), trusted=True)
    html = render_report(run, sample_findings())
    assert "Today's data can be trusted." in html
    assert parse(html).table_rows == 5
    assert "539.30 EUR" in html  # open impact only: the resolved finding carries none, both stock ones do
    assert "SKU-002/WH1" in html


def test_report_is_self_contained_and_works_offline():
    html = render_report(RunInfo("run-7", day(7), trusted=True), sample_findings())
    assert not re.search(r"""<(link|img|iframe)\b|\ssrc=|@import|url\(|https?://""", html)
    assert "<style>" in html and "<script>" in html and "<svg" in html


def test_untrusted_run_says_so_and_lists_the_health_problem():
    findings = pl.concat(
        [
            sample_findings(),
            findings_frame(
                [
                    finding(
                        "snapshot_health",
                        "bluecherry",
                        "bluecherry/inventory",
                        field="row_count",
                        severity="critical",
                        expected="12000",
                        actual="310",
                        message="inventory export is 97% smaller than the previous one",
                    )
                ]
            ),
        ]
    )
    html = render_report(RunInfo("run-8", day(8), trusted=False), findings)
    assert "Do not trust today" in html
    assert "inventory export is 97% smaller than the previous one" in html


def test_every_value_is_escaped_and_no_injected_script_survives():
    html = render_report(RunInfo("run-7", day(7), trusted=True), sample_findings())
    assert SCRIPT_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert all("alert(1)" not in script for script in parse(html).scripts)


def test_emails_are_masked_unless_configured_otherwise():
    run = RunInfo("run-7", day(7), trusted=True)
    masked = render_report(run, sample_findings())
    assert "jane.doe@example.com" not in masked
    assert "j***@example.com" in masked
    plain = render_report(run, sample_findings(), options=ReportOptions(mask_emails=False))
    assert "jane.doe@example.com" in plain


def test_trend_covers_earlier_runs_and_ignores_later_ones():
    runs = pl.DataFrame({"run_id": ["r1", "r2", "r9"], "started_at": [day(1), day(2), day(9)]})
    counts = pl.DataFrame(
        {
            "run_id": ["r1", "r2", "r9"],
            "check_id": ["stock_parity"] * 3,
            "target": ["mirakl"] * 3,
            "severity": ["high"] * 3,
            "findings": [4, 2, 99],
        }
    )
    window = History(runs, counts).window(RunInfo("run-7", day(7), True), sample_findings(), last=14)
    assert window.runs["run_id"].to_list() == ["r1", "r2", "run-7"]
    series = dict(((c, t), v) for c, t, v in window.series(["check_id", "target"]).iter_rows())
    assert series[("stock_parity", "mirakl")] == [4, 2, 1]
    assert series[("stock_parity", "klaviyo")] == [0, 0, 1]
    html = render_report(RunInfo("run-7", day(7), True), sample_findings(), History(runs, counts))
    assert "open findings per run: 4, 2, 1" in html
    assert "99" not in re.sub(r"<[^>]+>", " ", html).split()


def test_large_runs_cap_the_table_and_point_to_the_export():
    many = findings_frame([finding("stock_parity", "klaviyo", f"SKU-{i:04}", field="available") for i in range(30)])
    html = render_report(RunInfo("run-7", day(7), True), many, options=ReportOptions(max_table_rows=10))
    assert parse(html).table_rows == 10
    assert "Showing the 10 most urgent of 30 findings" in html


def test_exports_keep_money_exact_in_parquet_and_to_the_minor_unit_in_csv_and_mask_emails(tmp_path):
    findings = sample_findings()
    csv = export_findings(findings, tmp_path / "out" / "findings.csv")
    parquet = export_findings(findings, tmp_path / "out" / "findings.parquet")
    from_parquet = pl.read_parquet(parquet)
    assert from_parquet.schema["impact"] == pl.Decimal(18, 4)
    assert Decimal("419.30") in from_parquet["impact"].to_list()
    assert from_parquet["severity"][0] == "critical"
    text = csv.read_text()
    assert ",419.30," in text and "419.3000" not in text and "jane.doe@example.com" not in text
    assert from_parquet.height == findings.height


def test_export_refuses_unknown_formats(tmp_path):
    with pytest.raises(UserError, match=r"\.csv or \.parquet"):
        export_findings(sample_findings(), tmp_path / "findings.xlsx")
