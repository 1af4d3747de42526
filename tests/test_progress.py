"""Progress lines: drawn for work that lasts, on a terminal, or when asked for; never otherwise."""

from __future__ import annotations

import re
import sys
import time

import pytest

from driftwatch import progress
from driftwatch.progress import Board, PageProgress, Step


def as_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr (the one capsys reads while the test runs) claims to be a terminal; the delay is short."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(progress, "DELAY", 0.3)


def test_quick_work_on_a_terminal_draws_nothing(monkeypatch, capsys):
    as_terminal(monkeypatch)
    with Board(), PageProgress("klaviyo customers") as pages:
        pages.advance(100)
    assert capsys.readouterr().err == ""


def test_work_that_lasts_on_a_terminal_shows_each_line(monkeypatch, capsys):
    as_terminal(monkeypatch)
    with Board():
        with Step("klaviyo: incremental pull, changes since 02:20"), PageProgress("klaviyo customers") as pages:
            pages.advance(100)
            pages.advance(40)
            time.sleep(0.6)
        with Step("klaviyo: merging, normalising and storing"):
            pass
    shown = capsys.readouterr().err
    assert "klaviyo: incremental pull, changes since 02:20" in shown
    assert "klaviyo customers" in shown and "140 records" in shown and "2 pages" in shown
    assert "merging, normalising and storing" in shown


def test_off_a_terminal_nothing_is_drawn_however_long(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr(progress, "DELAY", 0.1)
    with Board(), PageProgress("klaviyo customers") as pages:
        pages.advance(100)
        time.sleep(0.3)
    assert capsys.readouterr().err == ""


def test_asked_for_it_is_drawn_at_once_and_asked_not_to_never(capsys):
    with PageProgress("shop products", True) as pages:
        pages.advance(35)
    assert "shop products" in capsys.readouterr().err
    with Board(False), PageProgress("shop products", True) as pages:  # the board in use decides
        pages.advance(35)
        time.sleep(0.1)
    assert capsys.readouterr().err == ""


def _drop(root, rows: int = 5):
    folder = root / "drop" / "klaviyo"
    folder.mkdir(parents=True)
    (folder / "customers.csv").write_text("customer_id,email\n" + "".join(f"C{i},c{i}@x.com\n" for i in range(rows)))
    (folder / "_manifest.json").write_text('{"captured_at": "2026-11-23T02:00:00Z"}')
    return root / "drop"


def test_a_load_that_lasts_on_a_terminal_shows_each_file_read_and_stored(tmp_path, monkeypatch, capsys):
    from driftwatch.config import Config, default_feeds
    from driftwatch.filedrop import load_directory
    from driftwatch.store import Store

    as_terminal(monkeypatch)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    with Store(tmp_path / "store.duckdb") as store:
        load_directory(store, _drop(tmp_path), Config(feeds=default_feeds()))
        time.sleep(0.2)
    shown = capsys.readouterr().err
    assert "klaviyo customers: reading customers.csv" in shown and "5 rows" in shown
    assert "klaviyo customers: storing 5 rows" in shown


def test_an_audit_that_lasts_on_a_terminal_says_which_check_runs_and_off_a_terminal_nothing(
    tmp_path, monkeypatch, capsys
):
    from driftwatch.config import Config, default_feeds
    from driftwatch.engine import audit
    from driftwatch.filedrop import load_directory
    from driftwatch.store import Store

    cfg = Config(feeds=default_feeds())
    with Store(tmp_path / "store.duckdb") as store:
        load_directory(store, _drop(tmp_path), cfg)
        capsys.readouterr()
        audit(store, cfg)  # stderr is not a terminal under pytest
        assert capsys.readouterr().err == ""
        as_terminal(monkeypatch)
        monkeypatch.setattr(progress, "DELAY", 0.0)
        audit(store, cfg)
    shown = capsys.readouterr().err
    assert re.search(r"audit +check \d+/\d+: \w+", shown)  # the line shows the check running when drawn
