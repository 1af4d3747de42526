"""Progress on a terminal for work that takes more than a few seconds, and silence everywhere else.

A `Board` is one live display on stderr (rich) that a whole command shares: each source's pull, each
listing it pages through, and the merge and store after it are lines on it. It draws nothing when stderr is
not a terminal (cron, CI, a pipe into a log) and nothing for work that ends within `DELAY` seconds: a quick
pull prints only its results. `PageProgress` and `Step` join the board in use, or bring their own.

    with Board():                                   # auto: on a terminal, after DELAY seconds
        with PageProgress("klaviyo customers") as pages:
            pages.advance(100)
        with Step("klaviyo: storing 2,000,000 records"):
            ...
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

DELAY = 2.0  # seconds of work before anything is drawn (unless progress was asked for explicitly)
_board: ContextVar[Board | None] = ContextVar("driftwatch_progress_board", default=None)


class Board:
    """`enabled`: None draws on a terminal only, after `DELAY` seconds; True draws at once; False never."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._delay = DELAY if enabled is None else 0.0
        self._progress = Progress(
            SpinnerColumn(finished_text="-"),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._shown = False
        self._closed = False
        self._token: Any = None

    def __enter__(self) -> Board:
        self._token = _board.set(self)
        if self.enabled:
            self._timer = threading.Timer(self._delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _board.reset(self._token)
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._shown:
                self._progress.stop()

    def _show(self) -> None:
        with self._lock:
            if not self._closed:
                self._progress.start()
                self._shown = True

    def line(self, description: str) -> TaskID:
        """A new line, its counts empty and its spinner turning until `finish`."""
        return self._progress.add_task(description, total=1, counts="")

    def update(self, task: TaskID, counts: str) -> None:
        self._progress.update(task, counts=counts)

    def finish(self, task: TaskID) -> None:
        self._progress.update(task, completed=1)


def board(enabled: bool | None = None) -> AbstractContextManager[Any]:
    """A new Board for a command's work, or nothing new inside one already in use (a nightly run's):
    its lines join that one, for a terminal shows one live display at a time."""
    return nullcontext() if _board.get() is not None else Board(enabled)


class _OnBoard:
    """A line on the board in use, or on a board of its own for as long as it lasts."""

    def __init__(self, description: str, enabled: bool | None = None):
        self._description = description
        self._enabled = enabled
        self._own: Board | None = None
        self._board: Board | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Any:
        board = _board.get()
        if board is None:
            self._own = board = Board(self._enabled)
            board.__enter__()
        self._board = board
        self._task = board.line(self._description)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._board is not None and self._task is not None
        self._board.finish(self._task)
        if self._own is not None:
            self._own.__exit__(*exc)

    def _counts(self, text: str) -> None:
        assert self._board is not None and self._task is not None
        self._board.update(self._task, text)


class PageProgress(_OnBoard):
    """A listing read page by page: records, pages and records a second so far."""

    def __enter__(self) -> PageProgress:
        self._started = time.monotonic()
        self.records = 0
        self.pages = 0
        return super().__enter__()

    def advance(self, records: int) -> None:
        self.records += records
        self.pages += 1
        elapsed = time.monotonic() - self._started
        rate = f"  {self.records / elapsed:,.0f} records/s" if elapsed >= 1 else ""  # a rate needs some time
        self._counts(f"{self.records:,} records  {self.pages:,} pages{rate}")


class Step(_OnBoard):
    """Work without pages (merging, normalising, storing): a line whose spinner turns until it is done,
    with what it has done so far (`counts`) when the work can tell."""

    def __enter__(self) -> Step:
        return super().__enter__()

    def counts(self, text: str) -> None:
        self._counts(text)
