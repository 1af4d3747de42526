"""Keyed comparisons in partitions: both sides of a comparison split by a hash of its join key, each part
joined as a task on the audit's executor (in this process, in a pool, or on a Dask cluster), and the parts'
rows put back together.

A full join on keys splits exactly along a hash of those keys: rows that can meet always land in the same
part, so the union of the parts' rows is the whole join's, and every finding computed from it is the same.
A comparison that compares groups (an order's lines, `group = "order_ref"`) is split by the group, so
each group's digest is computed over all of its rows. The views (what each side holds, derived from its
snapshots) are computed here, once; what is distributed is the join and the first pass over it, the cost
that grows with the rows. Parts are parquet files in the engine's shared folder (see EngineSettings), or
written here and uploaded to object storage (s3://, gs://) when the shared folder is a URL: each machine
then reads them with the credentials of its own environment, and the audit removes them at its end.
"""

from __future__ import annotations

import io
import itertools
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.config import EngineSettings
from driftwatch.executors import Session
from driftwatch.files import private_directory
from driftwatch.objectstore import failures, filesystem, is_object_url
from driftwatch.scratch import scratch_folder

Join = Callable[[pl.LazyFrame, pl.LazyFrame, list], pl.DataFrame | None]
_PART = "_part"


class Partitioned:
    """An audit's way of running keyed joins in parts; `join` is the one-process join it splits."""

    def __init__(self, settings: EngineSettings, scratch: Path, cleanup: ExitStack) -> None:
        self.settings = settings
        self.session = cleanup.enter_context(Session(settings.executor))
        self.bucket: _Bucket | None = None
        if isinstance(settings.shared_dir, str):  # object storage: written here first, then uploaded
            self.bucket = cleanup.enter_context(_bucket_folder(settings.shared_dir))
        if settings.shared_dir is None or self.bucket is not None:  # the audit's scratch, removed with it
            self.folder = private_directory(scratch / "partitions")
        else:  # a folder of its own per audit, removed at its end (a killed audit's, by the next one's start)
            self.folder = cleanup.enter_context(scratch_folder(settings.shared_dir, "partitions"))
        self._joins = itertools.count()

    def join(
        self, join: Join, expected: pl.LazyFrame, actual: pl.LazyFrame, keys: list[str], specs: list
    ) -> pl.DataFrame | None:
        n = self.settings.parts
        name = f"join-{next(self._joins)}"
        folder = self.folder / name
        schemas = {}
        for side, frame in (("expected", expected), ("actual", actual)):
            schemas[side] = dict(frame.collect_schema())
            frame.with_columns((pl.struct(keys).hash(seed=0) % n).alias(_PART)).sink_parquet(
                pl.PartitionBy(folder / side, key=_PART, include_key=False), mkdir=True, compression="lz4"
            )
        where = str(folder)
        try:
            if self.bucket is not None:
                where = self.bucket.upload(folder, name)
                shutil.rmtree(folder, ignore_errors=True)
            tasks = [(join, where, part, schemas, specs) for part in range(n)]
            parts: list[pl.DataFrame | None] = [None] * n
            for index, result in self.session.map(join_part, tasks):
                if isinstance(result, BaseException):
                    raise result
                parts[index] = result
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            if self.bucket is not None:
                self.bucket.remove(name)
        found = [part for part in parts if part is not None]
        if not found:
            return None
        return pl.concat(found, how="vertical_relaxed").rechunk()


def join_part(join: Join, folder: str, part: int, schemas: dict, specs: list) -> pl.DataFrame | None:
    """One part of a join, as a task: read both sides' files of the part, join them the one-process way."""
    if is_object_url(folder):
        return join(_downloaded(folder, "expected", part, schemas), _downloaded(folder, "actual", part, schemas), specs)

    def side(name: str) -> pl.LazyFrame:
        where = Path(folder) / name / f"{_PART}={part}"
        if not where.is_dir():  # no row of this side hashed to this part
            return pl.LazyFrame(schema=schemas[name])
        return pl.scan_parquet(str(where / "*.parquet"), hive_partitioning=False, schema=schemas[name])

    return join(side("expected"), side("actual"), specs)


def _downloaded(url: str, side: str, part: int, schemas: dict) -> pl.LazyFrame:
    """One side of one part from object storage, read into this worker's memory (a part is 1/N of a side)."""
    fs, root = filesystem(url)
    with failures(url, "a worker reading the parts"):
        files = sorted(fs.glob(f"{root}/{side}/{_PART}={part}/*.parquet"))
        frames = [pl.scan_parquet(io.BytesIO(fs.cat_file(f)), schema=schemas[side]) for f in files]
    return pl.concat(frames) if frames else pl.LazyFrame(schema=schemas[side])


class _Bucket:
    """This audit's own prefix in object storage; `upload` puts a join's parts there, `remove` takes them off."""

    def __init__(self, url: str, fs: Any, folder: str) -> None:
        self.url, self.fs, self.folder = url, fs, folder

    def upload(self, local: Path, name: str) -> str:
        with failures(self.url, "writing the parts"):
            for file in sorted(local.rglob("*.parquet")):
                self.fs.put_file(str(file), f"{self.folder}/{name}/{file.relative_to(local).as_posix()}")
        return self.fs.unstrip_protocol(f"{self.folder}/{name}")

    def remove(self, name: str = "") -> None:
        # Never fails the audit: what a failed removal leaves, the bucket's lifecycle rule expires (README).
        with suppress(Exception):
            self.fs.rm(f"{self.folder}/{name}".rstrip("/"), recursive=True)


@contextmanager
def _bucket_folder(url: str) -> Iterator[_Bucket]:
    """A prefix of the audit's own under `url`; one small object written first proves, before any work,
    that the endpoint answers and accepts this environment's credentials. Removed at the audit's end."""
    fs, root = filesystem(url)
    bucket = _Bucket(url, fs, f"{root.rstrip('/')}/partitions-{uuid.uuid4().hex}")
    with failures(url, "writing the parts"):
        fs.pipe_file(f"{bucket.folder}/.audit", b"")
    try:
        yield bucket
    finally:
        bucket.remove()
