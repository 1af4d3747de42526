"""Grouping one check's open findings on one target by what their records share (pure frame functions).

A candidate cause is one value of one attribute (location WH-RET, ERP status 80, the run in which the
findings first appeared). It becomes an incident when all of these hold:

- **size**: it covers at least MIN_SIZE findings. Two records sharing a style or a location is too often
  chance; three that share it and little else do not happen by chance in any catalogue we have seen.
- **share**: at least MIN_SHARE of the records that carry the value drift. A cause breaks most of what it
  touches (every SKU stocked in a location dropped from a feed, every order in a status nobody mapped);
  half leaves room for records whose two sides agree anyway (a SKU with no stock to lose).
- **concentration**: the value is not shared by every record of the target's scope (the only location, the
  only currency explains nothing), and records carrying it drift at least LIFT times as often as those
  that do not.

For the run in which findings first appeared, the records are the findings themselves: the run must have a
baseline (the check had audited the target in earlier runs), the arrivals in it must be at least MIN_SHARE of
the open findings, and at least LIFT times the usual number of arrivals per earlier run.

Causes are taken greedily: the one covering the most findings first (ties: the more specific attribute of
ATTRIBUTES, then the value), its findings set aside, and the rest grouped again. Findings no cause covers
stay on their own. Everything here is deterministic: the same findings and records give the same incidents.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

MIN_SIZE = 3
MIN_SHARE = 0.5
LIFT = 5.0
ALSO_SHARED = 0.9  # another value held by this much of an incident is named beside its cause
# From the most specific and actionable to the least: ties between causes covering as many findings go
# to the earlier one (a location beats the run the findings appeared in).
ATTRIBUTES = (
    "location",
    "division",
    "channel",
    "status",
    "target_status",
    "carrier",
    "style",
    "sku_prefix",
    "line_type",
    "payout_id",
    "stalled",
    "country",
    "currency",
    "first_run",
)


@dataclass(frozen=True)
class Cause:
    """What a group of findings shares, and how the rest of the target looks beside it."""

    attribute: str
    value: str
    members: tuple[str, ...]  # fingerprints, sorted
    findings: int  # open findings of the check on the target (the "of N" of "40 of 40")
    drifting_with: int  # records (or, for first_run, findings) carrying the value that drift
    records_with: int  # records carrying the value
    drifting_without: int  # drifting records that do not carry it
    records_without: int  # records that do not carry it
    also: tuple[tuple[str, str, int], ...] = ()  # (attribute, value, members holding it) beside the cause

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def share(self) -> float:
        return self.size / self.findings if self.findings else 0.0


def group(findings: pl.DataFrame, records: pl.DataFrame | None, arrivals: pl.DataFrame | None = None) -> list[Cause]:
    """The causes among one check's open findings on one target.

    `findings`: fingerprint, key and first_run (the run in which each finding's open spell began).
    `records`: the target's scope, `key` plus one list column per attribute (`attributes.Population`).
    `arrivals`: run_id and arrived (findings that began in each earlier run that audited the target);
    without it the first run explains nothing.
    """
    total = findings.height
    remaining = findings.sort("fingerprint")
    causes: list[Cause] = []
    while remaining.height >= MIN_SIZE:
        candidates = _record_candidates(remaining, records, total) + _arrival_candidates(remaining, arrivals, total)
        if not candidates:
            break
        best = min(candidates, key=lambda c: (-c.size, ATTRIBUTES.index(c.attribute), c.value))
        causes.append(_with_also(best, remaining, records))
        remaining = remaining.filter(~pl.col("fingerprint").is_in(best.members))
    return causes


def _record_candidates(remaining: pl.DataFrame, records: pl.DataFrame | None, total: int) -> list[Cause]:
    if records is None or records.height == 0:
        return []
    drifting = remaining.select("fingerprint", "key").join(records, on="key", how="inner")
    drifting_keys = remaining["key"].n_unique()
    candidates = []
    for attribute in (a for a in records.columns if a != "key"):
        carried = records.select("key", attribute).explode(attribute).drop_nulls(attribute).unique()
        population = carried.group_by(attribute).agg(pl.col("key").n_unique().alias("records_with"))
        hits = (
            drifting.select("fingerprint", "key", attribute)
            .explode(attribute)
            .drop_nulls(attribute)
            .group_by(attribute)
            .agg(
                pl.col("fingerprint").unique().sort().alias("members"), pl.col("key").n_unique().alias("drifting_with")
            )
        )
        for value, members, drifting_with, records_with in (
            hits.join(population, on=attribute).sort(attribute).iter_rows()
        ):
            cause = Cause(
                attribute,
                value,
                tuple(members),
                total,
                drifting_with,
                records_with,
                drifting_keys - drifting_with,
                records.height - records_with,
            )
            if _holds(cause):
                candidates.append(cause)
    return candidates


def _holds(cause: Cause) -> bool:
    if cause.size < MIN_SIZE or cause.records_without <= 0 or cause.records_with <= 0:
        return False
    inside = cause.drifting_with / cause.records_with
    outside = cause.drifting_without / cause.records_without
    return inside >= MIN_SHARE and inside >= LIFT * outside


def _arrival_candidates(remaining: pl.DataFrame, arrivals: pl.DataFrame | None, total: int) -> list[Cause]:
    """A run in which most of the open findings arrived at once, against the usual arrivals per run."""
    if arrivals is None or arrivals.height == 0 or "first_run" not in remaining.columns:
        return []
    candidates = []
    by_run = remaining.group_by("first_run").agg(pl.col("fingerprint").sort()).sort("first_run")
    for run_id, members in by_run.iter_rows():
        earlier = arrivals.filter(pl.col("run_id") < run_id)
        if run_id is None or earlier.height == 0:
            continue  # the first audit of the target: everything arrives in it, which explains nothing
        size = len(members)
        usual = float(earlier["arrived"].mean() or 0.0)
        if size >= MIN_SIZE and size / remaining.height >= MIN_SHARE and size >= LIFT * usual:
            arrived_before = int(earlier["arrived"].sum())
            candidates.append(
                Cause("first_run", run_id, tuple(members), total, size, size, arrived_before, earlier.height)
            )
    return candidates


def _with_also(cause: Cause, remaining: pl.DataFrame, records: pl.DataFrame | None) -> Cause:
    """Name the other values most of the incident's records share too (the cause itself excluded)."""
    if records is None:
        return cause
    members = remaining.filter(pl.col("fingerprint").is_in(cause.members)).join(records, on="key", how="inner")
    also = []
    for attribute in (a for a in records.columns if a != "key"):
        universal = records.select(attribute).explode(attribute).group_by(attribute).len()
        universal = universal.filter(pl.col("len") == records.height)[attribute].to_list()
        counts = (
            members.select("fingerprint", attribute)
            .explode(attribute)
            .drop_nulls(attribute)
            .group_by(attribute)
            .agg(pl.col("fingerprint").n_unique().alias("n"))
            .filter((pl.col("n") >= ALSO_SHARED * cause.size) & ~pl.col(attribute).is_in(universal))
            .sort(attribute)
        )
        for value, n in counts.iter_rows():
            if (attribute, value) != (cause.attribute, cause.value):
                also.append((attribute, value, n))
    return Cause(**{**cause.__dict__, "also": tuple(also)})
