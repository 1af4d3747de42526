"""Progress lines: drawn for work that lasts, on a terminal, or when asked for; never otherwise."""

from __future__ import annotations

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
