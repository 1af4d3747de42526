"""Alerts night by night on a real store (findings recorded with their real lifecycle), delivered to a real
SMTP server and a real HTTP receiver on loopback: what each destination hears, and the words it reads."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from helpers_alerts import SmtpSink, WebhookSink, day, finding, findings_frame

from driftwatch.alerts import deliver, deliveries, parse_alerts, plan_alerts, preview
from driftwatch.engine.findings import FINDING_COLUMNS, FINDING_SCHEMA, acknowledge, findings, open_since, record_run
from driftwatch.errors import UserError
from driftwatch.report import RunInfo
from driftwatch.store import Store

OWNERS = {"consent_parity": "cx", "order_status_drift": "cx", "stock_parity": "merch", "order_presence": "cx"}
CHECKS = (*OWNERS, "payout_matching", "snapshot_health")
REPORT = "https://reports.example/driftwatch/driftwatch-run.html"


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "driftwatch.duckdb") as opened:
        yield opened


@pytest.fixture
def smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def webhook():
    with WebhookSink() as sink:
        yield sink


def settings_for(smtp: SmtpSink, monkeypatch, webhook: WebhookSink | None = None, **extra):
    routes = [{"name": "merch", "urls": [smtp.url("merch@example.com")], "teams": ["merch"]}]
    if webhook is not None:
        monkeypatch.setenv("DW_TEST_CX_HOOK", webhook.url)
        routes.append({"name": "cx", "url_env": "DW_TEST_CX_HOOK", "teams": ["cx"], "min_severity": "high"})
    routes.append({"name": "finance", "urls": [smtp.url("finance@example.com")], "checks": ["payout_matching"]})
    return parse_alerts({"alerts": {"retry_attempts": 2, "retry_wait_seconds": 0, "routes": routes, **extra}})


def audit_day(store: Store, n: int, rows: list[dict], trusted: bool = True) -> tuple[RunInfo, pl.DataFrame]:
    """Record a night's findings the way an audit does, and read them back the way `alert` does."""
    frame = pl.DataFrame([{c: r[c] for c in FINDING_COLUMNS} for r in rows], schema=FINDING_SCHEMA)
    run_id = record_run(store, frame, checks=list(CHECKS), snapshot_ids=[], trusted=trusted, started_at=day(n))
    run = RunInfo(run_id, day(n), trusted, CHECKS)
    return run, read_again(store, run)


def read_again(store: Store, run: RunInfo) -> pl.DataFrame:
    """The run's findings as `alert` would read them now (after an acknowledgement, say)."""
    return findings(store, run.run_id).join(open_since(store, run.run_id), on="fingerprint", how="left")


def alert(store, settings, run, found):
    plan = plan_alerts(store, settings, run, found, report_link=REPORT, owners=OWNERS)
    return deliver(store, settings, run, plan)


def night(store, settings, n, rows, trusted=True):
    run, found = audit_day(store, n, rows, trusted)
    return alert(store, settings, run, found)


STOCK = dict(
    check_id="stock_parity",
    target="klaviyo",
    key="SKU-100",
    field="available",
    severity="critical",
    expected="0",
    actual="14",
    impact="419.30",
    message="klaviyo publishes 14 but ERP available-to-sell is 0: oversell risk",
)
CONSENT = dict(
    check_id="consent_parity",
    target="klaviyo",
    key="C-1001",
    field="email_consent",
    severity="critical",
    expected="false",
    actual="true",
    message="customer C-1001 (jane.doe@example.com) is subscribed to email on klaviyo but opted out in the ERP",
)
ORDER = dict(
    check_id="order_status_drift",
    target="ometria",
    key="SO-42",
    field="status",
    severity="high",
    expected="cancelled",
    actual="placed",
    impact="89.90",
    message="order SO-42 is cancelled in the ERP but placed on ometria",
)


def drift(**overrides) -> list[dict]:
    """The three findings of a drifted night; `overrides` maps a key to the fields that differ, or to None
    when that finding is gone."""
    rows = []
    for base in (STOCK, CONSENT, ORDER):
        change = overrides.get(base["key"], {})
        if change is not None:
            rows.append(finding(**{**base, **change}))
    return rows


def mail_to(smtp: SmtpSink, address: str) -> list[str]:
    return [m.get_body().get_content() for m in smtp.messages if m["To"] == address]


def subjects_to(smtp: SmtpSink, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.messages if m["To"] == address]


def test_noise_bar_five_nights_one_digest_then_one_all_clear_per_route(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    nights = [drift(), drift(), drift(), [], []]
    for n, rows in enumerate(nights, start=1):
        assert all(d.status == "sent" for d in night(store, settings, n, rows))

    assert subjects_to(smtp, "merch@example.com") == [
        "driftwatch: 1 record needs attention (merch)",
        "driftwatch: all clear (merch)",
    ]
    assert webhook.titles() == ["driftwatch: 2 records need attention (cx)", "driftwatch: all clear (cx)"]
    assert not subjects_to(smtp, "finance@example.com")
    all_clear = webhook.payloads[1]["message"]
    assert "Cleared since the last digest (2):" in all_clear
    assert "- C-1001 on klaviyo: consent_parity (email_consent)" in all_clear
    assert "- SO-42 on ometria: order_status_drift (status)" in all_clear
    assert deliveries(store).group_by("route", "kind").len().sort("route", "kind").rows() == [
        ("cx", "drift", 1),
        ("cx", "resolved", 1),
        ("merch", "drift", 1),
        ("merch", "resolved", 1),
    ]


def test_digest_line_names_the_record_what_is_wrong_the_money_and_the_report(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    night(store, settings, 1, drift())

    body = webhook.payloads[0]["message"]
    assert (
        "- [critical] C-1001 on klaviyo: customer C-1001 (j***@example.com) is subscribed to email on klaviyo but "
        "opted out in the ERP. New." in body
    )
    assert "- [high] SO-42 on ometria: order SO-42 is cancelled in the ERP but placed on ometria. 89.90 EUR at " \
           "risk. New." in body  # fmt: skip
    assert "2 records need attention (2 new), 89.90 EUR at risk. 2 open on this route." in body
    assert body.endswith(f"Report: {REPORT}")
    assert "jane.doe@example.com" not in body
    assert "SKU-100" not in body, "the cx route must not receive the merch route's findings"
    mail = mail_to(smtp, "merch@example.com")[0]
    assert "- [critical] SKU-100 on klaviyo: klaviyo publishes 14 but ERP available-to-sell is 0: oversell risk. " \
           "419.30 EUR at risk. New." in mail  # fmt: skip


def test_a_status_only_change_alerts_once_as_changed_with_the_previous_value(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    night(store, settings, 1, drift())
    shipped = {"SO-42": {"actual": "shipped", "message": "order SO-42 is cancelled in the ERP but shipped on ometria"}}
    night(store, settings, 2, drift(**shipped))
    night(store, settings, 3, drift(**shipped))

    assert webhook.titles() == [
        "driftwatch: 2 records need attention (cx)",
        "driftwatch: 1 record needs attention (cx)",
    ]
    body = webhook.payloads[1]["message"]
    assert (
        "- [high] SO-42 on ometria: order SO-42 is cancelled in the ERP but shipped on ometria (status: shipped, "
        "was placed). 89.90 EUR at risk. Changed, open since 2026-11-02." in body
    )
    assert "C-1001" not in body
    assert len(mail_to(smtp, "merch@example.com")) == 1


def test_the_erp_side_moving_alone_or_a_narrower_gap_stays_quiet(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    night(store, settings, 1, drift())
    night(store, settings, 2, drift(**{"SKU-100": {"expected": "2", "actual": "16"}}))  # both moved, same gap
    night(store, settings, 3, drift(**{"SKU-100": {"expected": "2", "actual": "9", "impact": "209.65"}}))
    assert len(mail_to(smtp, "merch@example.com")) == 1
    # Now the target publishes less than the ERP holds: another problem (hidden stock), though the gap is smaller.
    night(store, settings, 4, drift(**{"SKU-100": {"expected": "12", "actual": "9", "impact": "59.90"}}))
    mail = mail_to(smtp, "merch@example.com")
    assert len(mail) == 2 and "(available: 9, was 9)" not in mail[1]
    assert "Changed, open since 2026-11-02." in mail[1]


def test_a_worse_finding_alerts_again_with_what_it_was(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    night(store, settings, 1, drift())
    worse = {"SKU-100": {"actual": "40", "impact": "1198.00", "message": "klaviyo publishes 40 but ERP ATS is 0"}}
    night(store, settings, 2, drift(**worse))
    night(store, settings, 3, drift(**worse))

    mail = mail_to(smtp, "merch@example.com")
    assert len(mail) == 2
    assert "SKU-100 on klaviyo: klaviyo publishes 40 but ERP ATS is 0 (available: 40, was 14). 1,198.00 EUR at risk. " \
           "Worse, open since 2026-11-02." in mail[1]  # fmt: skip


def test_a_higher_severity_alone_counts_as_worse(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    night(store, settings, 1, drift(**{"SKU-100": {"severity": "medium"}}))
    night(store, settings, 2, drift())
    mail = mail_to(smtp, "merch@example.com")
    assert len(mail) == 2
    assert "- [critical] SKU-100 on klaviyo:" in mail[1] and "(now critical, was medium)" in mail[1]


def test_a_partial_fix_lists_what_cleared_while_the_route_has_other_findings(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    night(store, settings, 1, drift())
    night(store, settings, 2, drift(**{"SO-42": None}))

    assert webhook.titles()[1] == "driftwatch: 1 cleared, 1 still open (cx)"
    body = webhook.payloads[1]["message"]
    assert "1 cleared since the last digest. 1 open on this route." in body
    assert "Cleared since the last digest (1):\n- SO-42 on ometria: order_status_drift (status)" in body
    assert "C-1001" not in body

    # Cleared and new in one digest; then nothing more to say.
    brand_new = finding("order_presence", "ometria", "SO-77", field="", severity="high", expected="present",
                        actual="absent", message="order SO-77 is missing on ometria", impact="120.00")  # fmt: skip
    night(store, settings, 3, [*drift(**{"SO-42": None, "C-1001": None}), brand_new])
    night(store, settings, 4, [*drift(**{"SO-42": None, "C-1001": None}), brand_new])
    assert webhook.titles()[2:] == ["driftwatch: 1 record needs attention, 1 cleared (cx)"]
    body = webhook.payloads[2]["message"]
    assert "SO-77 on ometria: order SO-77 is missing on ometria. 120.00 EUR at risk. New." in body
    assert "- C-1001 on klaviyo: consent_parity (email_consent)" in body


def test_one_failing_destination_is_made_up_alone_and_the_other_never_hears_twice(store, smtp, webhook, monkeypatch):
    monkeypatch.setenv("DW_TEST_OPS_HOOK", webhook.url)
    settings = parse_alerts({"alerts": {"retry_attempts": 1, "retry_wait_seconds": 0, "routes": [
        {"name": "ops", "urls": [smtp.url("ops@example.com")], "url_env": "DW_TEST_OPS_HOOK"},
    ]}})  # fmt: skip
    night(store, settings, 1, drift())
    webhook.fail_next = 1
    results = night(store, settings, 2, drift(**{"SO-42": None}))
    outcomes = [(d.destination, d.status) for d in results]
    assert outcomes == [("ops:mailto#1", "sent"), ("ops:$DW_TEST_OPS_HOOK", "failed")]

    results = night(store, settings, 3, drift(**{"SO-42": None}))
    assert [(d.destination, d.status) for d in results] == [("ops:$DW_TEST_OPS_HOOK", "sent")]
    assert len(mail_to(smtp, "ops@example.com")) == 2
    assert len(webhook.payloads) == 2
    assert "- SO-42 on ometria: order_status_drift (status)" in webhook.payloads[1]["message"]

    night(store, settings, 4, drift(**{"SO-42": None}))
    assert len(mail_to(smtp, "ops@example.com")) == 2 and len(webhook.payloads) == 2


def test_labels_after_a_failed_delivery_say_what_is_true(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook, retry_attempts=1)
    night(store, settings, 1, drift(**{"SO-42": None}))
    night(store, settings, 2, drift(**{"SO-42": None, "C-1001": None}))  # C-1001 cleared, cx told
    webhook.fail_next = 1
    night(store, settings, 3, drift())  # C-1001 back, SO-42 new: cx's webhook fails
    night(store, settings, 4, drift())
    assert len(webhook.payloads) == 3
    body = webhook.payloads[2]["message"]
    assert "C-1001 on klaviyo:" in body and "Back again since 2026-11-04." in body
    assert "SO-42 on ometria:" in body and "New since 2026-11-04." in body
    assert "not alerted before" not in body


def test_a_route_added_later_hears_of_older_drift_as_not_alerted_before(store, smtp, monkeypatch):
    night(store, parse_alerts({}), 1, drift())
    night(store, settings_for(smtp, monkeypatch), 2, drift())
    assert "Open since 2026-11-02, not alerted before." in mail_to(smtp, "merch@example.com")[0]


def test_an_acknowledged_finding_that_gets_worse_alerts_again(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    run, found = audit_day(store, 1, drift())
    alert(store, settings, run, found)
    acknowledge(store, found.filter(pl.col("key") == "SKU-100")["fingerprint"].item(), note="supplier feed fix")
    night(store, settings, 2, drift(**{"SKU-100": {"actual": "10", "impact": "299.50"}}))  # better: still covered
    night(store, settings, 3, drift(**{"SKU-100": {"actual": "56", "impact": "1677.20"}}))
    night(store, settings, 4, drift(**{"SKU-100": {"actual": "56", "impact": "1677.20"}}))

    mail = mail_to(smtp, "merch@example.com")
    assert len(mail) == 2
    assert "(available: 56, was 10). 1,677.20 EUR at risk. Worse than when acknowledged, open since " \
           "2026-11-02." in mail[1]  # fmt: skip


def test_a_muted_finding_stays_quiet_until_its_date_then_says_so(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    run, found = audit_day(store, 1, drift())
    fingerprint = found.filter(pl.col("key") == "SKU-100")["fingerprint"].item()
    acknowledge(store, fingerprint, mute=True, until=date.today())
    alert(store, settings, run, read_again(store, run))
    night(store, settings, 2, drift(**{"SKU-100": {"actual": "56", "impact": "1677.20"}}))
    assert subjects_to(smtp, "merch@example.com") == []

    store.query("UPDATE finding_acks SET until = ?", [date.today() - timedelta(days=1)])  # its date has passed
    night(store, settings, 3, drift(**{"SKU-100": {"actual": "56", "impact": "1677.20"}}))
    assert "No longer muted, open since 2026-11-02." in mail_to(smtp, "merch@example.com")[0]


def test_one_line_per_record_with_every_check_it_fails_grouped_by_check(store, smtp, monkeypatch):
    settings = parse_alerts({"alerts": {"routes": [{"name": "ops", "urls": [smtp.url("ops@example.com")]}]}})
    lost = dict(target="mirakl", key="MRK-1", impact="309.40", severity="critical")
    rows = [
        finding("acceptance_sla", field="acceptance", expected="2026-11-03T00:00:00Z", actual="WAITING_ACCEPTANCE",
                message="mirakl order MRK-1 awaits acceptance and is auto-cancelled at 2026-11-03T00:00:00Z", **lost),
        finding("order_presence", field="", expected="absent", actual="present",
                message="mirakl order MRK-1 (WAITING_ACCEPTANCE) is not in the ERP: a lost order", **lost),
        finding("stock_parity", "mirakl", "SKU-1", field="available", expected="3", actual="5", impact="20.00",
                severity="critical", message="mirakl publishes 5 but ERP available-to-sell is 3: oversell risk"),
        finding("stock_parity", "emarsys", "SKU-1", field="available", expected="3", actual="4", impact="1500",
                currency="JPY", severity="critical", message="emarsys publishes 4 but ERP available-to-sell is 3"),
        {**finding("order_presence", "ometria", "SO-9", field="", expected="present", actual="absent"),
         "message": None},
    ]  # fmt: skip
    night(store, settings, 1, rows)
    body = mail_to(smtp, "ops@example.com")[0]
    lines = body.splitlines()
    assert len([line for line in lines if "MRK-1" in line]) == 1
    assert (
        "- [critical] MRK-1 on mirakl: mirakl order MRK-1 awaits acceptance and is auto-cancelled at "
        "2026-11-03T00:00:00Z; order_presence: mirakl order MRK-1 (WAITING_ACCEPTANCE) is not in the ERP: a lost "
        "order. 309.40 EUR at risk. New." in lines
    )
    sections = [line for line in lines[2:] if line and not line.startswith(("-", "Report"))]
    assert sections == ["stock_parity (2)", "acceptance_sla (1)", "order_presence (1)"]
    assert "1,500 JPY at risk" in body and "20.00 EUR at risk" in body
    assert "- [high] SO-9 on ometria: ometria has no record, the ERP has a record. New." in lines
    assert "absent" not in body.replace("(WAITING_ACCEPTANCE)", "")
    assert lines[1] == "4 records need attention (4 new), 329.40 EUR, 1,500 JPY at risk. 5 open on this route."


def test_an_untrusted_run_alerts_only_its_health_findings_and_keeps_what_routes_know(store, smtp, monkeypatch):
    settings = parse_alerts({"alerts": {"routes": [{"name": "ops", "urls": smtp.url("ops@example.com")}]}})
    night(store, settings, 1, drift())
    truncated = finding(
        "snapshot_health",
        "bluecherry",
        "inventory",
        field="row_count",
        severity="critical",
        expected=">= 11400",
        actual="310",
        message="bluecherry inventory: 310 rows against 12000",
    )
    oversell = finding(
        "stock_parity",
        "mirakl",
        "SKU-200",
        field="available",
        severity="critical",
        expected="0",
        actual="5",
        message="mirakl publishes 5 but ERP available-to-sell is 0",
    )
    night(store, settings, 2, [*drift(**{"SO-42": None}), oversell, truncated], trusted=False)
    body = mail_to(smtp, "ops@example.com")[1]
    assert "inventory on bluecherry: bluecherry inventory: 310 rows against 12000" in body
    assert "held back" in body
    assert "SKU-200" not in body and "SO-42" not in body, "an untrusted run says nothing cleared or new"

    # Trusted again: the finding held back alerts, the clearing is told, the day-one drift stays quiet.
    night(store, settings, 3, [*drift(**{"SO-42": None}), oversell])
    body = mail_to(smtp, "ops@example.com")[2]
    assert "SKU-200" in body and "- SO-42 on ometria: order_status_drift (status)" in body
    assert "SKU-100" not in body and "C-1001" not in body
    assert "- inventory on bluecherry: snapshot_health (row_count)" in body
    assert len(smtp.messages) == 3


def test_an_untrusted_run_never_sends_an_all_clear(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    night(store, settings, 1, drift())
    night(store, settings, 2, [], trusted=False)  # half the exports missing: the drift only seems gone
    assert subjects_to(smtp, "merch@example.com") == ["driftwatch: 1 record needs attention (merch)"]
    night(store, settings, 3, [])
    assert subjects_to(smtp, "merch@example.com")[-1] == "driftwatch: all clear (merch)"


def test_a_check_that_did_not_run_clears_nothing(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    night(store, settings, 1, drift())
    frame = pl.DataFrame(schema=FINDING_SCHEMA)
    run_id = record_run(store, frame, checks=["consent_parity"], snapshot_ids=[], trusted=True, started_at=day(2))
    alert(store, settings, RunInfo(run_id, day(2), True, ("consent_parity",)), findings(store, run_id))
    assert subjects_to(smtp, "merch@example.com") == ["driftwatch: 1 record needs attention (merch)"]


def test_alerting_a_run_again_sends_nothing_twice(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    run, found = audit_day(store, 1, drift())
    alert(store, settings, run, found)
    assert alert(store, settings, run, found) == []
    assert len(smtp.messages) == 1 and len(webhook.payloads) == 1
    text = preview(plan_alerts(store, settings, run, found, report_link=REPORT, owners=OWNERS))
    assert "already delivered for this run" in text


def test_alerting_an_older_run_again_sends_nothing_and_keeps_the_newer_state(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    day1 = audit_day(store, 1, drift())
    alert(store, settings, *day1)
    day2 = audit_day(store, 2, [])
    alert(store, settings, *day2)
    assert subjects_to(smtp, "merch@example.com")[-1] == "driftwatch: all clear (merch)"

    text = preview(plan_alerts(store, settings, *day1, report_link=REPORT, owners=OWNERS))
    assert f"already alerted for the later run {day2[0].run_id}" in text
    assert alert(store, settings, *day1) == []
    # Had day one wound the state back, this clean day would send a second all-clear.
    night(store, settings, 3, [])
    assert len(smtp.messages) == 2


def test_a_failed_delivery_is_retried_recorded_and_made_up_later(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    webhook.fail_next = 2  # both attempts of the first alert fail
    results = night(store, settings, 1, drift())
    failed = [d for d in results if d.status == "failed"]
    assert [(d.route, d.attempts) for d in failed] == [("cx", 2)]
    assert failed[0].error
    assert webhook.payloads == []
    assert len(smtp.messages) == 1, "a failing route does not stop the others"

    # The next night the drift is merely ongoing, yet cx hears about it as what it is: new since the first night.
    results = night(store, settings, 2, drift())
    assert [(d.route, d.status) for d in results] == [("cx", "sent")]
    assert "2 records need attention (2 new)" in webhook.payloads[0]["message"]
    assert "New since 2026-11-02." in webhook.payloads[0]["message"]
    assert len(smtp.messages) == 1


def test_a_retry_within_one_delivery_succeeds_after_a_transient_failure(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    webhook.fail_next = 1
    results = night(store, settings, 1, drift())
    assert [(d.status, d.attempts) for d in results if d.route == "cx"] == [("sent", 2)]
    assert len(webhook.payloads) == 1


def test_secret_urls_never_reach_the_store(store, monkeypatch):
    monkeypatch.setenv("DW_TEST_SECRET_HOOK", "json://127.0.0.1:9/hooks/T0KENSECRETVALUE")
    settings = parse_alerts(
        {"alerts": {"retry_attempts": 1, "routes": [{"name": "ops", "url_env": "DW_TEST_SECRET_HOOK"}]}}
    )
    results = night(store, settings, 1, drift())
    assert [d.status for d in results] == ["failed"]
    dump = str(deliveries(store).rows()) + str(store.frame("SELECT * FROM alert_known").rows())
    assert "T0KENSECRETVALUE" not in dump
    assert "ops:$DW_TEST_SECRET_HOOK" in str(deliveries(store).rows())


def test_a_missing_environment_variable_is_a_failed_delivery_not_a_crash(store, monkeypatch):
    monkeypatch.delenv("DW_TEST_UNSET", raising=False)
    settings = parse_alerts({"alerts": {"routes": [{"name": "ops", "url_env": "DW_TEST_UNSET"}]}})
    results = night(store, settings, 1, drift())
    assert [(d.status, d.attempts) for d in results] == [("failed", 0)]
    assert "DW_TEST_UNSET is not set" in results[0].error


def test_preview_shows_each_route_and_sends_nothing(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    run, found = audit_day(store, 1, drift())
    text = preview(plan_alerts(store, settings, run, found, report_link=REPORT, owners=OWNERS))
    assert "== route merch → merch:mailto#1" in text and "== route cx → cx:$DW_TEST_CX_HOOK" in text
    assert "SKU-100" in text and "C-1001" in text
    assert "== route finance → finance:mailto#1\n(nothing to send" in text
    assert smtp.messages == [] and webhook.payloads == []
    alert(store, settings, run, found)  # previewing changed nothing: the real alert still sends
    assert len(smtp.messages) == 1


def test_route_filters_combine_checks_targets_teams_and_severity():
    settings = parse_alerts(
        {
            "alerts": {
                "routes": [
                    {
                        "name": "a",
                        "urls": "json://x",
                        "checks": ["stock_parity", "consent_parity"],
                        "targets": ["klaviyo"],
                        "min_severity": "critical",
                    },
                    {"name": "b", "urls": "json://x", "teams": ["cx"], "min_severity": "high"},
                ]
            }
        }
    )
    found = findings_frame(
        [
            finding("stock_parity", "klaviyo", "S1", severity="critical"),
            finding("stock_parity", "mirakl", "S2", severity="critical"),
            finding("consent_parity", "klaviyo", "C1", severity="high"),
            finding("order_status_drift", "ometria", "O1", severity="medium"),
            finding("order_status_drift", "ometria", "O2", severity="high"),
        ]
    )
    a, b = settings.routes
    assert a.select(found, OWNERS)["key"].to_list() == ["S1"]
    assert b.select(found, OWNERS)["key"].to_list() == ["C1", "O2"]


@pytest.mark.parametrize(
    ("route", "complaint"),
    [
        ({"urls": "json://x"}, "`name` is required"),
        ({"name": "x"}, "give `url_env`"),
        ({"name": "x", "urls": "json://x", "min_severity": "urgent"}, "min_severity 'urgent'"),
        ({"name": "x", "urls": "json://x", "channel": "#ops"}, "unknown setting(s) channel"),
        ({"name": "x", "url_env": ["OK", 3]}, "must be a string or a list of strings"),
    ],
)
def test_bad_route_configuration_is_a_user_error(route, complaint):
    with pytest.raises(UserError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse_alerts({"alerts": {"routes": [route]}})


def test_duplicate_route_names_are_rejected():
    with pytest.raises(UserError, match="unique"):
        parse_alerts({"alerts": {"routes": [{"name": "x", "urls": "json://a"}, {"name": "x", "urls": "json://b"}]}})


def test_a_digest_lists_the_most_urgent_records_and_counts_the_rest(store, smtp, monkeypatch):
    settings = parse_alerts({"alerts": {"routes": [{"name": "ops", "urls": [smtp.url("ops@example.com")]}]}})
    rows = [
        finding("stock_parity", "mirakl", f"SKU-{n:02}", field="available", expected="0", actual=str(n),
                impact=f"{n}.00", severity="critical" if n > 20 else "medium", message=f"mirakl publishes {n}")
        for n in range(1, 26)
    ]  # fmt: skip
    rows.append(finding("tracking_sync", "mirakl", "SO-1", field="carrier", actual="UPS", severity="low"))
    night(store, settings, 1, rows)
    body = mail_to(smtp, "ops@example.com")[0]
    listed = [line for line in body.splitlines() if line.startswith("- [")]
    assert len(listed) == 10 and listed[0].startswith("- [critical] SKU-25 on mirakl")
    assert "- … and 10 more in the report" in body
    assert "… and 6 more records in the report (stock_parity 5, tracking_sync 1)." in body
    assert body.splitlines()[1].startswith("26 records need attention (26 new), 325.00 EUR at risk.")


def test_the_report_link_is_one_a_reader_can_open(tmp_path):
    from driftwatch.config import parse_config
    from driftwatch.report.build import report_settings

    published = report_settings(parse_config({"report": {"link_base": "https://intranet.example/dw"}}))
    assert published.link_for(tmp_path / "driftwatch-r1.html") == "https://intranet.example/dw/driftwatch-r1.html"
    local = report_settings(parse_config({"report": {"out_dir": str(tmp_path)}}))
    text = local.link_for(tmp_path / "driftwatch-r1.html")
    assert "file://" not in text and str(tmp_path / "driftwatch-r1.html") in text and "link_base" in text
    for bad in ("file:///srv/reports/", "reports/", 42):
        with pytest.raises(UserError, match=r"\[report\] link_base: .* is not an address readers can open"):
            report_settings(parse_config({"report": {"link_base": bad}}))


def test_what_routes_knew_before_destinations_kept_their_own_carries_over(tmp_path, smtp, monkeypatch):
    path = tmp_path / "upgraded.duckdb"
    settings = settings_for(smtp, monkeypatch)
    with Store(path) as store:
        night(store, settings, 1, drift())
        # The store as an earlier version left it: one state per route, without values.
        store.query(
            "CREATE TABLE alert_state (route VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, severity VARCHAR NOT NULL,"
            " impact DECIMAL(18,4), diff DECIMAL(38,6), run_id VARCHAR NOT NULL, PRIMARY KEY (route, fingerprint))"
        )
        store.query(
            "INSERT INTO alert_state SELECT route, fingerprint, severity, impact, abs(gap), run_id FROM alert_known"
        )
        store.query("CREATE TABLE alert_routes AS SELECT route, run_id, started_at FROM alert_destinations")
        store.query("DROP TABLE alert_known")
        store.query("DROP TABLE alert_destinations")
        store.query("DELETE FROM schema_migrations WHERE version = 202")
    with Store(path) as store:
        assert store.migrate() == []  # opening the store ran it
        night(store, settings, 2, drift())
        assert len(smtp.messages) == 1, "nothing new: the routes' old state carried over"
        night(store, settings, 3, drift(**{"SKU-100": {"actual": "40", "impact": "1198.00"}}))
        assert len(smtp.messages) == 2 and "Worse, open since 2026-11-02." in mail_to(smtp, "merch@example.com")[1]
        kept = store.frame("SELECT route, destination FROM alert_destinations ORDER BY ALL").rows()
        assert kept == [("finance", ""), ("finance", "finance:mailto#1"), ("merch", ""), ("merch", "merch:mailto#1")]
