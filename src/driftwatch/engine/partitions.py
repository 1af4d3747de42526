"""Keyed comparisons in partitions: both sides of a comparison split by a hash of its join key, each part
joined as a task on the audit's executor (in this process, in a pool, or on a Dask cluster), and the parts'
rows put back together.

A full join on keys splits exactly along a hash of those keys: rows that can meet always land in the same
part, so the union of the parts' rows is the whole join's, and every finding computed from it is the same.
A comparison that compares groups (an order's lines, `group = "order_ref"`) is split by the group, so
each group's digest is computed over all of its rows. The views (what each side holds, derived from its
snapshots) are computed here, once; what is distributed is the join and the first pass over it, the cost
that grows with the rows. Parts are parquet files in the engine's shared folder (see EngineSettings).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import polars as pl

from driftwatch.config import EngineSettings
from driftwatch.executors import Session
from driftwatch.files import private_directory
from driftwatch.scratch import scratch_folder

Join = Callable[[pl.LazyFrame, pl.LazyFrame, list], pl.DataFrame | None]
_PART = "_part"


class Partitioned:
    """An audit's way of running keyed joins in parts; `join` is the one-process join it splits."""

    def __init__(self, settings: EngineSettings, scratch: Path, cleanup: ExitStack) -> None:
        self.settings = settings
        self.session = cleanup.enter_context(Session(settings.executor))
        if settings.shared_dir is None:  # inside the audit's scratch folder, removed with it
            self.folder = private_directory(scratch / "partitions")
        else:  # a folder of its own per audit, removed at its end (a killed audit's, by the next one's start)
            self.folder = cleanup.enter_context(scratch_folder(settings.shared_dir, "partitions"))
        self._joins = itertools.count()

    def join(
        self, join: Join, expected: pl.LazyFrame, actual: pl.LazyFrame, keys: list[str], specs: list
    ) -> pl.DataFrame | None:
        n = self.settings.parts
        folder = self.folder / f"join-{next(self._joins)}"
        schemas = {}
        for side, frame in (("expected", expected), ("actual", actual)):
            schemas[side] = dict(frame.collect_schema())
            frame.with_columns((pl.struct(keys).hash(seed=0) % n).alias(_PART)).sink_parquet(
                pl.PartitionBy(folder / side, key=_PART, include_key=False), mkdir=True, compression="lz4"
            )
        tasks = [(join, str(folder), part, schemas, specs) for part in range(n)]
        parts: list[pl.DataFrame | None] = [None] * n
        try:
            for index, result in self.session.map(join_part, tasks):
                if isinstance(result, BaseException):
                    raise result
                parts[index] = result
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        found = [part for part in parts if part is not None]
        if not found:
            return None
        return pl.concat(found, how="vertical_relaxed").rechunk()


def join_part(join: Join, folder: str, part: int, schemas: dict, specs: list) -> pl.DataFrame | None:
    """One part of a join, as a task: read both sides' files of the part, join them the one-process way."""

    def side(name: str) -> pl.LazyFrame:
        where = Path(folder) / name / f"{_PART}={part}"
        if not where.is_dir():  # no row of this side hashed to this part
            return pl.LazyFrame(schema=schemas[name])
        return pl.scan_parquet(str(where / "*.parquet"), hive_partitioning=False, schema=schemas[name])

    return join(side("expected"), side("actual"), specs)
