"""Running an audit: every check on every feed it applies to, findings stored with their lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl

from driftwatch.config import Config, EngineSettings
from driftwatch.engine.checkfile import BUILTIN_CHECKS_DIR, CheckSpec, load_checks
from driftwatch.engine.compare import run_compare
from driftwatch.engine.context import AuditContext, CannotRun, Scope
from driftwatch.engine.findings import (
    FINDING_COLUMNS,
    RunResult,
    empty_findings,
    findings,
    open_counts,
    record_run,
)
from driftwatch.engine.notes import notes_frame
from driftwatch.engine.rules import RULES
from driftwatch.engine.views import VIEWS
from driftwatch.errors import UserError
from driftwatch.progress import Step, board
from driftwatch.store import Store

HEALTH_CHECK = "snapshot_health"


def load_catalogue(cfg: Config) -> dict[str, CheckSpec]:
    """Every check: the built-in files, then the user's directories."""
    return load_checks([BUILTIN_CHECKS_DIR, *cfg.checks_dirs], set(VIEWS), set(RULES))


def audit(
    store: Store, cfg: Config, *, checks: list[str] | None = None, engine: EngineSettings | None = None
) -> RunResult:
    """Run the checks (default: all) over the latest snapshots and store the findings as a new run.

    snapshot_health always runs, first: whether the run can be trusted is what every later consumer
    (alerts, repair) asks first, and a snapshot it distrusts is held back from the other checks. What a
    check could not do (a column no record holds, a distrusted snapshot) is stored as the run's notes.
    `engine` (default: the config's [engine]) says where keyed comparisons run: in this process, in parts,
    or on a Dask cluster (driftwatch.engine.partitions); the findings are the same wherever they run.
    """
    started_at = datetime.now(UTC)
    chosen = _choose(load_catalogue(cfg), checks)
    compares = [spec for check in chosen for spec in check.compares]
    with AuditContext(store, cfg, compares=compares, engine=engine) as ctx:
        found = evaluate(ctx, chosen)
        notes = notes_frame(ctx.notes())
    trusted = found.filter(pl.col("check_id") == HEALTH_CHECK).height == 0
    run_id = record_run(
        store,
        found,
        checks=[c.id for c in chosen],
        snapshot_ids=ctx.snapshot_ids(),
        trusted=trusted,
        started_at=started_at,
        notes=notes,
    )
    stored = findings(store, run_id)
    return RunResult(run_id, stored, trusted, open_counts(stored), notes)


def _choose(catalogue: dict[str, CheckSpec], wanted: list[str] | None) -> list[CheckSpec]:
    if not wanted:
        return list(catalogue.values())
    unknown = [c for c in wanted if c not in catalogue]
    if unknown:
        raise UserError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(catalogue)}")
    ids = dict.fromkeys([HEALTH_CHECK, *wanted]) if HEALTH_CHECK in catalogue else dict.fromkeys(wanted)
    return [catalogue[c] for c in ids]


def evaluate(ctx: AuditContext, checks: list[CheckSpec]) -> pl.DataFrame:
    """All findings of `checks`, one row per fingerprint, in a stable order."""
    # snapshot_health first: it tells the context which snapshots the other checks must not read.
    checks = sorted(checks, key=lambda check: check.id != HEALTH_CHECK)
    # The heavy passes (comparison joins, rule scans) ran on the streaming engine as the plans were built;
    # what is left is shaping a few rows per plan, one plan at a time.
    found = []
    with board(), Step("audit") as step:  # on a terminal, once the audit has taken a few seconds
        for number, check in enumerate(checks, start=1):
            step.counts(f"check {number}/{len(checks)}: {check.id}")
            found += [frame.collect(engine="in-memory").select(FINDING_COLUMNS) for frame in _run_check(ctx, check)]
    if not found:
        return empty_findings()
    found = pl.concat(found, how="vertical")
    return found.sort("check_id", "target", "key", "field", "source", nulls_last=True).unique(
        subset=["check_id", "target", "key", "field"], keep="first", maintain_order=True
    )


def _run_check(ctx: AuditContext, check: CheckSpec) -> Iterator[pl.LazyFrame]:
    for scope in _scopes(ctx, check):
        ctx.current = (check.id, scope.target)
        produced = []
        try:
            if check.rule is not None:
                produced = [RULES[check.rule](scope)]
            else:
                for spec in check.compares:
                    produced.append(run_compare(scope, spec))
        except CannotRun as reason:
            # What the check found before it hit the gap is kept; the rest is said in a note.
            ctx.note(reason.note(check.id, scope.target))
        yield from (frame for frame in produced if frame is not None)
    ctx.current = None


def _scopes(ctx: AuditContext, check: CheckSpec) -> Iterator[Scope]:
    cfg = ctx.cfg

    def options(target: str | None) -> dict:
        return cfg.check_options(check.id, target, defaults=check.options)

    if check.scope == "run":
        yield Scope(ctx, check, None, None, None, options(None))
    elif check.scope == "source":
        for source in sorted({feed.source for feed in cfg.feeds}):
            yield Scope(ctx, check, source, source, None, options(source))
    else:
        for feed in cfg.feeds:
            if any(entity in feed.entities for entity in check.applies_to):
                yield Scope(ctx, check, feed.source, feed.target, feed, options(feed.target))
