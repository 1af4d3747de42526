from __future__ import annotations

import polars as pl
import pytest
from helpers_alerts import SmtpSink, WebhookSink, day, finding, findings_frame

from driftwatch.alerts import deliver, deliveries, parse_alerts, plan_alerts, preview
from driftwatch.errors import UserError
from driftwatch.report import RunInfo
from driftwatch.store import Store

OWNERS = {"consent_parity": "cx", "order_status_drift": "cx", "stock_parity": "merch"}
LINK = "file:///srv/driftwatch/reports/driftwatch-run.html"


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


def audit_day(n: int, rows: list[dict], trusted: bool = True) -> tuple[RunInfo, pl.DataFrame]:
    run = RunInfo(f"run-{n}", day(n), trusted=trusted)
    return run, findings_frame([{**row, "run_id": run.run_id} for row in rows])


def alert(store, settings, run, findings):
    plan = plan_alerts(store, settings, run, findings, report_link=LINK, owners=OWNERS)
    return deliver(store, settings, run, plan)


def drift(status: str, **overrides) -> list[dict]:
    base = [
        dict(
            check_id="stock_parity",
            target="klaviyo",
            key="SKU-100",
            field="available",
            severity="critical",
            expected="0",
            actual="14",
            impact="419.30",
        ),
        dict(
            check_id="consent_parity",
            target="klaviyo",
            key="C-1001",
            field="email_consent",
            severity="critical",
            expected="false",
            actual="true",
            message="jane.doe@example.com is subscribed downstream",
        ),
        dict(
            check_id="order_status_drift",
            target="ometria",
            key="SO-42",
            field="status",
            severity="high",
            expected="cancelled",
            actual="placed",
            impact="89.90",
        ),
    ]
    return [finding(**{**row, **overrides.get(row["key"], {})}, status=status) for row in base]


def test_noise_bar_five_days_send_one_digest_and_one_all_clear_per_route(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    days = [drift("new"), drift("ongoing"), drift("ongoing"), drift("resolved"), []]
    for n, rows in enumerate(days, start=1):
        run, findings = audit_day(n, rows)
        results = alert(store, settings, run, findings)
        assert all(d.status == "sent" for d in results)

    merch_mail = [m for m in smtp.messages if m["To"] == "merch@example.com"]
    assert [str(m["Subject"]) for m in merch_mail] == [
        "driftwatch: 1 finding needs attention (merch)",
        "driftwatch: all clear (merch)",
    ]
    assert webhook.titles() == ["driftwatch: 2 findings need attention (cx)", "driftwatch: all clear (cx)"]
    assert not [m for m in smtp.messages if m["To"] == "finance@example.com"]
    sent = deliveries(store)
    assert sent.group_by("route", "kind").len().sort("route", "kind").rows() == [
        ("cx", "drift", 1),
        ("cx", "resolved", 1),
        ("merch", "drift", 1),
        ("merch", "resolved", 1),
    ]


def test_digest_names_record_ids_both_values_and_the_report_and_masks_emails(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    alert(store, settings, *audit_day(1, drift("new")))

    body = webhook.payloads[0]["message"]
    assert "C-1001 email_consent: expected false, klaviyo has true" in body
    assert "SO-42 status: expected cancelled, ometria has placed, 89.90 EUR at risk" in body
    assert f"Report: {LINK}" in body
    mail = smtp.messages[0].get_body().get_content()
    assert "SKU-100 available: expected 0, klaviyo has 14, 419.30 EUR at risk (new)" in mail
    assert "jane.doe@example.com" not in body
    assert "SKU-100" not in body, "the cx route must not receive the merch route's findings"


def test_worsened_finding_alerts_again_but_unchanged_drift_stays_quiet(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    alert(store, settings, *audit_day(1, drift("new")))
    alert(store, settings, *audit_day(2, drift("ongoing")))
    assert len(smtp.messages) == 1

    worse = {"SKU-100": {"actual": "40", "impact": "1198.00"}}
    alert(store, settings, *audit_day(3, drift("ongoing", **worse)))
    assert len(smtp.messages) == 2
    body = smtp.messages[1].get_body().get_content()
    assert "expected 0, klaviyo has 40" in body
    assert "worse than last run" in body

    alert(store, settings, *audit_day(4, drift("ongoing", **worse)))
    assert len(smtp.messages) == 2


def test_higher_severity_counts_as_worse(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    alert(store, settings, *audit_day(1, drift("new", **{"SKU-100": {"severity": "medium"}})))
    alert(store, settings, *audit_day(2, drift("ongoing")))
    assert smtp.subjects() == ["driftwatch: 1 finding needs attention (merch)"] * 2
    assert "[critical] SKU-100" in smtp.messages[1].get_body().get_content()


def test_regressed_finding_alerts_even_when_the_route_still_knows_it(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    alert(store, settings, *audit_day(1, drift("new")))
    # The run in which it was resolved was never alerted; it is back now.
    alert(store, settings, *audit_day(3, drift("regressed")))
    assert len(smtp.messages) == 2
    assert "(back again)" in smtp.messages[1].get_body().get_content()


def test_untrusted_run_alerts_only_its_health_findings_and_keeps_what_routes_know(store, smtp, monkeypatch):
    settings = parse_alerts({"alerts": {"routes": [{"name": "ops", "urls": smtp.url("ops@example.com")}]}})
    alert(store, settings, *audit_day(1, drift("new")))

    truncated = finding(
        "snapshot_health",
        "bluecherry",
        "bluecherry/inventory",
        field="row_count",
        severity="critical",
        expected="12000",
        actual="310",
    )
    oversell = finding(
        "stock_parity", "mirakl", "SKU-200", field="available", severity="critical", expected="0", actual="5"
    )
    alert(store, settings, *audit_day(2, [*drift("ongoing"), oversell, truncated], trusted=False))
    body = smtp.messages[1].get_body().get_content()
    assert "bluecherry/inventory row_count: expected 12000, bluecherry has 310" in body
    assert "held back" in body
    assert "SKU-200" not in body

    # Trusted again: only the finding the route never heard about alerts; the day-one drift stays quiet.
    alert(store, settings, *audit_day(3, [*drift("ongoing"), {**oversell, "status": "ongoing"}]))
    body = smtp.messages[2].get_body().get_content()
    assert "SKU-200" in body and "SKU-100" not in body and "C-1001" not in body
    assert len(smtp.messages) == 3


def test_untrusted_run_never_sends_an_all_clear(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    alert(store, settings, *audit_day(1, drift("new")))
    # Half the exports are missing: the drift seems gone, but only because nothing was compared.
    alert(store, settings, *audit_day(2, drift("resolved"), trusted=False))
    assert smtp.subjects() == ["driftwatch: 1 finding needs attention (merch)"]
    alert(store, settings, *audit_day(3, drift("resolved")))
    assert smtp.subjects()[-1] == "driftwatch: all clear (merch)"


def test_rerunning_alert_for_the_same_run_sends_nothing_twice(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    run, findings = audit_day(1, drift("new"))
    alert(store, settings, run, findings)
    again = alert(store, settings, run, findings)
    assert again == []
    assert len(smtp.messages) == 1
    assert len(webhook.payloads) == 1


def test_alerting_an_older_run_again_sends_nothing_and_keeps_the_newer_state(store, smtp, monkeypatch):
    settings = settings_for(smtp, monkeypatch)
    day1 = audit_day(1, drift("new"))
    alert(store, settings, *day1)
    alert(store, settings, *audit_day(2, drift("resolved")))
    assert smtp.subjects()[-1] == "driftwatch: all clear (merch)"

    text = preview(plan_alerts(store, settings, *day1, report_link=LINK, owners=OWNERS))
    assert "already alerted for the later run run-2" in text
    assert alert(store, settings, *day1) == []
    # Had day one wound the state back, this clean day would send a second all-clear.
    alert(store, settings, *audit_day(3, []))
    assert len(smtp.messages) == 2


def test_failed_delivery_is_retried_recorded_and_delivered_later_without_losing_findings(
    store, smtp, webhook, monkeypatch
):
    settings = settings_for(smtp, monkeypatch, webhook)
    webhook.fail_next = 2  # both attempts of the first alert fail
    run, findings = audit_day(1, drift("new"))
    results = alert(store, settings, run, findings)

    failed = [d for d in results if d.status == "failed"]
    assert [(d.route, d.attempts) for d in failed] == [("cx", 2)]
    assert failed[0].error
    assert webhook.payloads == []
    assert len(smtp.messages) == 1, "a failing route does not stop the others"

    # The next day the drift is merely ongoing, yet the cx route still hears about it: it was never told.
    run2, findings2 = audit_day(2, drift("ongoing"))
    results = alert(store, settings, run2, findings2)
    assert [(d.route, d.status) for d in results] == [("cx", "sent")]
    assert "2 open, not alerted before" in webhook.payloads[0]["message"]
    assert len(smtp.messages) == 1


def test_retry_within_one_delivery_succeeds_after_a_transient_failure(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    webhook.fail_next = 1
    results = alert(store, settings, *audit_day(1, drift("new")))
    cx = [d for d in results if d.route == "cx"]
    assert [(d.status, d.attempts) for d in cx] == [("sent", 2)]
    assert len(webhook.payloads) == 1


def test_secret_urls_never_reach_the_store(store, smtp, monkeypatch):
    monkeypatch.setenv("DW_TEST_SECRET_HOOK", "json://127.0.0.1:9/hooks/T0KENSECRETVALUE")
    settings = parse_alerts(
        {"alerts": {"retry_attempts": 1, "routes": [{"name": "ops", "url_env": "DW_TEST_SECRET_HOOK"}]}}
    )
    results = alert(store, settings, *audit_day(1, drift("new")))
    assert [d.status for d in results] == ["failed"]
    dump = str(deliveries(store).rows())
    assert "T0KENSECRETVALUE" not in dump
    assert "ops:$DW_TEST_SECRET_HOOK" in dump


def test_missing_environment_variable_is_a_failed_delivery_not_a_crash(store, monkeypatch):
    monkeypatch.delenv("DW_TEST_UNSET", raising=False)
    settings = parse_alerts({"alerts": {"routes": [{"name": "ops", "url_env": "DW_TEST_UNSET"}]}})
    results = alert(store, settings, *audit_day(1, drift("new")))
    assert [(d.status, d.attempts) for d in results] == [("failed", 0)]
    assert "DW_TEST_UNSET is not set" in results[0].error


def test_preview_shows_each_route_and_sends_nothing(store, smtp, webhook, monkeypatch):
    settings = settings_for(smtp, monkeypatch, webhook)
    run, findings = audit_day(1, drift("new"))
    text = preview(plan_alerts(store, settings, run, findings, report_link=LINK, owners=OWNERS))
    assert "== route merch" in text and "== route cx" in text
    assert "SKU-100" in text and "C-1001" in text
    assert "route finance" in text and "nothing to send" in text
    assert smtp.messages == [] and webhook.payloads == []
    # Previewing changed nothing: the real alert still sends.
    alert(store, settings, run, findings)
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
    findings = findings_frame(
        [
            finding("stock_parity", "klaviyo", "S1", severity="critical"),
            finding("stock_parity", "mirakl", "S2", severity="critical"),
            finding("consent_parity", "klaviyo", "C1", severity="high"),
            finding("order_status_drift", "ometria", "O1", severity="medium"),
            finding("order_status_drift", "ometria", "O2", severity="high"),
        ]
    )
    a, b = settings.routes
    assert a.select(findings, OWNERS)["key"].to_list() == ["S1"]
    assert b.select(findings, OWNERS)["key"].to_list() == ["C1", "O2"]


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
