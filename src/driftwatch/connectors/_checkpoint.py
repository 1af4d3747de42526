"""Resumable pulls: fetched pages are staged on disk with the cursor that follows them.

A pull of millions of records takes long enough to be interrupted. Pages are written as parquet under
`<checkpoint_dir>/<source>/<entity>/` beside a small JSON state holding the next cursor (or offset, or
seek id); a later pull with the same parameters resumes from that cursor instead of starting again.
Without a checkpoint_dir the pages are kept in memory, so both cases share one code path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.files import atomic_path, write_text

STATE_FILE = "state.json"


class Staging:
    """The pages fetched so far for one (source, entity) pull, and the cursor to continue from.

    `params` identifies the pull (e.g. its `since`): staged pages of a pull with other params are discarded,
    since resuming them would mix two different queries. With `flush_rows`, pages are written together once
    that many rows have arrived (and on the last page, and by `flush`), which saves a file per page on a
    large pull; a crash then re-fetches at most that many rows.
    """

    def __init__(
        self,
        root: Path | None,
        source: str,
        entity: str,
        key: tuple[str, ...],
        params: dict[str, Any],
        *,
        flush_rows: int = 0,
    ):
        self.key = key
        self.params = json.loads(json.dumps(params, default=str))
        self._dir = None if root is None else Path(root) / source / entity
        self._flush_rows = flush_rows
        self._pages: list[pl.DataFrame] = []  # in memory: without a directory, or not yet flushed
        self._held_rows = 0
        self._cursor: dict[str, Any] | None = None
        self._done = False
        self._written = 0  # page files on disk
        self._load()

    @property
    def cursor(self) -> dict[str, Any] | None:
        """Where to continue from; None means from the start (or, once `done`, nothing left)."""
        return self._cursor

    @property
    def done(self) -> bool:
        return self._done

    def save(self, page: pl.DataFrame, cursor: dict[str, Any] | None) -> None:
        """Stage one page and the cursor after it (None: this was the last page)."""
        self._cursor, self._done = cursor, cursor is None
        if page.width:
            self._pages.append(page)
            self._held_rows += page.height
        if self._done or self._held_rows >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write the pages held in memory, then the cursor after them."""
        if self._dir is None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        if self._pages:
            pages = pl.concat(self._pages, how="diagonal_relaxed")
            with atomic_path(self._dir / f"page-{self._written:06d}.parquet") as tmp:
                pages.write_parquet(tmp)
            self._written += 1
            self._pages, self._held_rows = [], 0
        # The pages are on disk before the cursor moves past them: a crash in between re-fetches them, which
        # the key de-duplication absorbs, and never skips one.
        state = {"params": self.params, "cursor": self._cursor, "done": self._done}
        write_text(self._dir / STATE_FILE, json.dumps(state, default=str))

    def frame(self) -> pl.DataFrame:
        """Every staged record once per key; a later page wins (a record that moved while paging)."""
        pages = [pl.scan_parquet(p) for p in self._page_files()] + [p.lazy() for p in self._pages]
        if not pages:
            return pl.DataFrame()
        frame = pl.concat(pages, how="diagonal_relaxed").collect()
        return frame.unique(subset=list(self.key), keep="last", maintain_order=True)

    def clear(self) -> None:
        self._pages, self._held_rows, self._cursor, self._done, self._written = [], 0, None, False, 0
        if self._dir is not None and self._dir.exists():
            shutil.rmtree(self._dir)

    def _load(self) -> None:
        if self._dir is None or not (self._dir / STATE_FILE).exists():
            self.clear()
            return
        state = json.loads((self._dir / STATE_FILE).read_text())
        if state.get("params") != self.params:
            self.clear()
            return
        self._cursor, self._done = state["cursor"], state["done"]
        self._written = len(self._page_files())

    def _page_files(self) -> list[Path]:
        return sorted(self._dir.glob("page-*.parquet")) if self._dir is not None and self._dir.exists() else []
