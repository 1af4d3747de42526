"""Many retailers at once: each one's nightly job (its own config and store) as a task on an executor.

A fleet file lists the retailers; paths in it are relative to the file's folder:

    [fleet]
    executor = "local"                # or "dask"
    workers = 2                       # local: jobs at once (1: one after another); dask: local cluster size
    # scheduler = "tcp://10.0.0.5:8786"   # dask: an existing cluster instead of a local one

    [retailers.acme]
    config = "acme/driftwatch.toml"
    # db = "acme/driftwatch.duckdb"   # default: the retailer config's store.path

    outcomes = list(run_fleet(load_fleet(Path("fleet.toml"))))
    fleet_exit_code(outcomes)         # the worst, by the exit-code contract

A retailer's job never raises: what ended it (drift, a source not pulled, a broken config, a bug) is its
Outcome, and the other retailers run on. Each job reads its credentials from the environment of the
process that runs it (on a cluster: the worker machines' environment); nothing secret travels in a task.
"""

from __future__ import annotations

import re
import time
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from driftwatch.config import SEVERITIES, load_config, unknown_key
from driftwatch.errors import IncompleteError, UserError, first_line
from driftwatch.executors import Executor, run_tasks
from driftwatch.exitcodes import ExitCode
from driftwatch.files import refused_write

_FLEET_KEYS = ("executor", "workers", "scheduler")
_RETAILER_KEYS = ("config", "db")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Worst last: a bug is worse than a job that could not start, which is worse than one that ran on part of
# its data, which is worse than drift. An internal error never hides behind drift.
_RANK = (ExitCode.CLEAN, ExitCode.DRIFT, ExitCode.INCOMPLETE, ExitCode.USER_ERROR, ExitCode.INTERNAL_ERROR)
STATUS = {
    ExitCode.CLEAN: "clean",
    ExitCode.DRIFT: "drift",
    ExitCode.INCOMPLETE: "incomplete",
    ExitCode.USER_ERROR: "user error",
    ExitCode.INTERNAL_ERROR: "internal error",
}


@dataclass(frozen=True)
class Retailer:
    name: str
    config: Path
    db: Path | None = None


@dataclass(frozen=True)
class Fleet:
    path: Path
    retailers: tuple[Retailer, ...]
    executor: Executor = field(default_factory=Executor)


@dataclass(frozen=True)
class Outcome:
    """How one retailer's nightly job ended. `traceback` is set only for an internal error."""

    retailer: str
    exit_code: int
    seconds: float = 0.0
    run_id: str | None = None
    open_findings: dict[str, int] = field(default_factory=dict)
    trusted: bool | None = None
    report: str | None = None
    failed_pulls: tuple[str, ...] = ()
    failed_alerts: tuple[str, ...] = ()
    error: str | None = None
    traceback: str | None = None

    @property
    def status(self) -> str:
        return STATUS[ExitCode(self.exit_code)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "retailer": self.retailer,
            "status": self.status,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 1),
            "run_id": self.run_id,
            "open_findings": self.open_findings,
            "trusted": self.trusted,
            "report": self.report,
            "failed_pulls": list(self.failed_pulls),
            "failed_alerts": list(self.failed_alerts),
            "error": self.error,
        }


def load_fleet(path: Path | str) -> Fleet:
    """Read and check a fleet file; every problem is a one-line UserError naming the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: fleet file not found") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    for key in raw:
        if key not in ("fleet", "retailers"):
            raise UserError(f"{path}: {key}: {unknown_key(key, ('fleet', 'retailers'), 'section')}")
    settings = _table(raw, "fleet", path, required=False)
    for key in settings:
        if key not in _FLEET_KEYS:
            raise UserError(f"{path}: fleet.{key}: {unknown_key(key, _FLEET_KEYS)}")
    try:
        executor = Executor(settings.get("executor", "local"), settings.get("workers", 1), settings.get("scheduler"))
    except UserError as exc:
        raise UserError(f"{path}: [fleet]: {exc}") from None
    base = path.parent
    retailers = tuple(_retailer(name, table, base, path) for name, table in _table(raw, "retailers", path).items())
    if not retailers:
        raise UserError(f'{path}: no retailer listed; add a [retailers.<name>] table with config = "..."')
    _refuse_shared_stores(retailers, path)
    return Fleet(path, retailers, executor)


def _table(raw: dict[str, Any], key: str, path: Path, *, required: bool = True) -> dict[str, Any]:
    value = raw.get(key, {} if not required else None)
    if not isinstance(value, dict):
        raise UserError(f"{path}: [{key}] must be a table" if value is not None else f"{path}: no [{key}] table")
    return value


def _retailer(name: str, table: Any, base: Path, path: Path) -> Retailer:
    where = f"{path}: retailers.{name}"
    if not _NAME.match(name):
        raise UserError(f"{where}: a retailer's name is letters, digits, '_', '-' and '.'")
    if not isinstance(table, dict):
        raise UserError(f'{where}: must be a table with config = "..."')
    for key in table:
        if key not in _RETAILER_KEYS:
            raise UserError(f"{where}.{key}: {unknown_key(key, _RETAILER_KEYS)}")
    paths = {}
    for key in _RETAILER_KEYS:
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise UserError(f"{where}.{key}: must be a path (text), got {value!r}")
        paths[key] = None if value is None else base / Path(value).expanduser()
    if paths["config"] is None:
        raise UserError(f"{where}: config is missing (the retailer's driftwatch.toml)")
    if not paths["config"].is_file():
        raise UserError(f"{where}.config: {paths['config']} is not a file")
    return Retailer(name, paths["config"], paths["db"])


def _refuse_shared_stores(retailers: tuple[Retailer, ...], path: Path) -> None:
    """Two jobs writing one store at once would have one fail on the other's lock: the fleet says so first."""
    seen: dict[tuple[str, Path], str] = {}
    for retailer in retailers:
        what = ("db", retailer.db.resolve()) if retailer.db else ("config", retailer.config.resolve())
        if what in seen:
            raise UserError(
                f"{path}: retailers.{retailer.name}: same {what[0]} as retailers.{seen[what]}; "
                "each retailer needs a store of its own"
            )
        seen[what] = retailer.name


def run_fleet(fleet: Fleet, *, executor: Executor | None = None, send_alerts: bool = True) -> Iterator[Outcome]:
    """Each retailer's nightly job on `executor` (default: the fleet file's), its Outcome as it finishes."""
    retailers = fleet.retailers
    started = time.monotonic()
    for index, result in run_tasks(executor or fleet.executor, run_retailer, [(r, send_alerts) for r in retailers]):
        if isinstance(result, Outcome):
            yield result
        else:  # the process running the job died, or the executor lost it: never mistaken for drift
            yield Outcome(
                retailers[index].name,
                ExitCode.INTERNAL_ERROR,
                time.monotonic() - started,
                error=f"the job's worker failed: {type(result).__name__}: {first_line(result)}",
                traceback="".join(traceback.format_exception(result)),
            )


def run_retailer(retailer: Retailer, send_alerts: bool = True) -> Outcome:
    """One retailer's nightly job, as `driftwatch --config CONFIG [--db DB] run` does it; never raises."""
    # Imported here: a worker process pays for the nightly job's modules only when it runs one.
    from driftwatch.locations import working
    from driftwatch.nightly import run_nightly
    from driftwatch.store import Store

    started = time.monotonic()
    outcome = Outcome(retailer.name, ExitCode.INTERNAL_ERROR)
    try:
        cfg = load_config(retailer.config)
        store_path = retailer.db or cfg.store_path
        with Store(store_path) as store:
            result = run_nightly(
                store, cfg, checkpoint_dir=working(store_path, "pulls"), send_alerts=send_alerts, progress=False
            )
        outcome = Outcome(
            retailer.name,
            result.exit_code(cfg.audit.fail_on),
            run_id=result.run.run_id,
            open_findings={s: int(result.run.counts.get(s, 0)) for s in SEVERITIES},
            trusted=result.run.trusted,
            report=str(result.report),
            failed_pulls=tuple(sorted({f"{p.source}: {p.error}" for p in result.failed_pulls})),
            failed_alerts=tuple(f"{d.route} → {d.destination}: {d.error}" for d in result.alerts.failed),
        )
    except IncompleteError as exc:
        outcome = Outcome(retailer.name, ExitCode.INCOMPLETE, error=str(exc))
    except UserError as exc:
        outcome = Outcome(retailer.name, ExitCode.USER_ERROR, error=str(exc))
    except Exception as exc:
        reason = refused_write(exc)
        if reason is not None:  # a full disk: the operator's to fix, as for a single `driftwatch run`
            outcome = Outcome(
                retailer.name, ExitCode.USER_ERROR, error=f"the machine refused a write ({reason}): {first_line(exc)}"
            )
        else:
            outcome = Outcome(
                retailer.name,
                ExitCode.INTERNAL_ERROR,
                error=f"{type(exc).__name__}: {first_line(exc)}",
                traceback="".join(traceback.format_exception(exc)),
            )
    return replace(outcome, seconds=time.monotonic() - started)


def fleet_exit_code(outcomes: list[Outcome]) -> int:
    """The worst of the retailers' exit codes: internal error, then user error, incomplete, drift, clean."""
    return max((ExitCode(o.exit_code) for o in outcomes), key=_RANK.index, default=ExitCode.CLEAN)
