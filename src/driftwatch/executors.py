"""Where independent tasks run: here, one after another or in a pool of processes, or on a Dask cluster.

    executor = Executor("dask", workers=2)                    # a local cluster of 2 worker processes
    executor = Executor("dask", scheduler="tcp://10.0.0.5:8786")
    for index, outcome in run_tasks(executor, task, [(a,), (b,)]):
        ...                                                    # in the order they finish

Dask is an optional extra (`pip install 'driftwatch[dask]'`); the local executor needs nothing more. A task
and its arguments must be importable functions and picklable values: on a cluster they run in other
processes, perhaps on other machines, and read their credentials from those machines' environment.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from driftwatch.errors import UserError

EXECUTORS = ("local", "dask")
SCHEDULER_SCHEMES = ("tcp://", "tls://", "ws://", "wss://")
DASK_EXTRA = "pip install 'driftwatch[dask]'"
CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class Executor:
    """`local`: `workers` processes at once (1: one task after another, in this process). `dask`: the
    cluster whose scheduler is `scheduler`, or a local cluster of `workers` processes when it is None."""

    kind: str = "local"
    workers: int = 1
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise UserError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise UserError(f"workers must be a positive whole number, got {self.workers!r}")
        if self.scheduler is not None:
            if self.kind != "dask":
                raise UserError('a scheduler is only for the dask executor (executor = "dask")')
            if not self.scheduler.startswith(SCHEDULER_SCHEMES):
                raise UserError(
                    f"scheduler must be a Dask scheduler address ({', '.join(SCHEDULER_SCHEMES)}...), "
                    f"got {self.scheduler!r}"
                )

    def describe(self) -> str:
        if self.kind == "dask" and self.scheduler:
            return f"dask at {self.scheduler}"
        if self.kind == "dask":
            return f"dask, a local cluster of {self.workers} worker(s)"
        return "local, one task after another" if self.workers == 1 else f"local, {self.workers} processes"


def run_tasks(executor: Executor, task: Callable[..., Any], args: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
    """Run `task(*a)` for each `a` of `args`; yield (index, result) as each finishes. A task that raised,
    or whose worker process died, yields its exception instead of a result: one task's failure never
    stops the others."""
    with Session(executor) as session:
        yield from session.map(task, args)


class Session:
    """An executor held open for several batches of tasks: an audit hands the cluster one batch per
    comparison, and starts (or connects to) it once."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._stack = ExitStack()
        self._client: Any = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def map(self, task: Callable[..., Any], args: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """(index, result or exception) of `task(*a)` for each `a` of `args`, as each finishes."""
        if self.executor.kind == "dask":
            if self._client is None:
                self._client = self._stack.enter_context(dask_client(self.executor))
            yield from _on_dask(self._client, task, args)
        elif self.executor.workers == 1:
            for index, arguments in enumerate(args):
                try:
                    yield index, task(*arguments)
                except Exception as exc:
                    yield index, exc
        else:
            yield from _in_processes(self.executor.workers, task, args)


def _in_processes(workers: int, task: Callable[..., Any], args: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
    # "spawn": a forked child would inherit polars' and DuckDB's threads mid-flight.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, max(len(args), 1)), mp_context=context) as pool:
        futures = {pool.submit(task, *arguments): index for index, arguments in enumerate(args)}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


def _on_dask(client: Any, task: Callable[..., Any], args: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed as dask_completed

    futures = {client.submit(task, *arguments, pure=False): index for index, arguments in enumerate(args)}
    for future in dask_completed(futures):
        error = future.exception()
        yield futures[future], error if error is not None else future.result()


@contextmanager
def dask_client(executor: Executor) -> Iterator[Any]:
    """A client of the configured cluster, or of a local cluster started for the duration (its workers are
    processes, one thread each: the tasks run polars and DuckDB, which bring their own threads)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError(f"the dask executor needs the dask extra: {DASK_EXTRA}") from None
    if executor.scheduler is not None:
        try:
            client = Client(executor.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {executor.scheduler}: {exc}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=executor.workers,
            threads_per_worker=1,
            processes=True,
            scheduler_port=0,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
