"""Notes: what a run could not do, said once per run beside its findings (never as a finding).

A note is `info`: it never fails a run, never alerts and has no lifecycle. Its kinds:
- `skipped`: a check cannot run for a target, because a snapshot it reads holds no value in a column it
  needs (every non-key column is optional);
- `degraded`: a column a check reads is absent and counts as a documented default (safety_stock as 0);
- `not_compared`: a field that one side holds in none of its records is one that side does not sync, so
  it is not compared;
- `held_back`: a snapshot snapshot_health distrusts (mostly quarantined or truncated) is not read by the
  other checks, which would otherwise report every record it lost;
- `caveat`: what a reader must know to read the check's findings, in the check's own words (payout
  matching: the commission rate it assumed because none is configured);
- `other_currency`: amounts a target keeps in another currency than the ERP (a marketplace's own price
  list) cannot be compared with the ERP's, so they are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from driftwatch.store import Migration, Store

NOTE_KINDS = ("skipped", "degraded", "not_compared", "held_back", "caveat", "other_currency")
NOTE_SCHEMA: dict[str, pl.DataType] = {
    "check_id": pl.String(),
    "target": pl.String(),
    "source": pl.String(),
    "entity": pl.String(),
    "column": pl.String(),
    "kind": pl.String(),
    "message": pl.String(),
}

_COLUMNS = ", ".join(f'"{c}"' for c in NOTE_SCHEMA)  # quoted: `column` is an SQL keyword

MIGRATIONS = (
    Migration(
        101,
        "audit notes",
        """
    CREATE TABLE audit_notes (
      run_id VARCHAR NOT NULL,
      check_id VARCHAR NOT NULL,
      target VARCHAR,
      source VARCHAR NOT NULL,
      entity VARCHAR NOT NULL,
      "column" VARCHAR,
      kind VARCHAR NOT NULL,
      message VARCHAR NOT NULL
    );
        """,
    ),
)


@dataclass(frozen=True)
class Note:
    """What `check_id` could not do for `target`, because of `source`'s snapshot of `entity`."""

    check_id: str
    target: str | None
    source: str
    entity: str
    kind: str
    column: str | None = None
    # degraded: what the check does instead ("it counts as 0"); not_compared: what is left out (default:
    # the column itself);
    # held_back: why snapshot_health distrusts the snapshot; caveat: the whole of what is said;
    # other_currency: the currencies met ("GBP against the ERP's EUR").
    detail: str = ""

    @property
    def message(self) -> str:
        holds = f"the {self.source} {self.entity} snapshot holds no {self.column}"
        if self.kind == "skipped":
            return f"{self.check_id} cannot run for {self.target}: {holds}"
        if self.kind == "degraded":
            return f"{self.check_id} on {self.target}: {holds}, so {self.detail}"
        if self.kind == "caveat":
            return f"{self.check_id} on {self.target}: {self.detail}"
        if self.kind == "not_compared":
            left_out = self.detail or self.column
            return f"{self.check_id} on {self.target}: {holds} in any record, so {left_out} is not compared"
        if self.kind == "other_currency":
            return (
                f"{self.check_id} on {self.target}: {self.source} {self.entity} in {self.detail} are not compared "
                f"on {self.column}: amounts in two currencies are not the same money"
            )
        return (
            f"{self.check_id} held back for {self.target}: snapshot_health distrusts {self.source} "
            f"{self.entity} ({self.detail}), which would make it report every record"
        )


def notes_frame(notes: list[Note]) -> pl.DataFrame:
    rows = [
        {
            "check_id": n.check_id,
            "target": n.target,
            "source": n.source,
            "entity": n.entity,
            "column": n.column,
            "kind": n.kind,
            "message": n.message,
        }
        for n in notes
    ]
    return pl.DataFrame(rows, schema=NOTE_SCHEMA).sort("check_id", "target", "source", "entity", nulls_last=True)


def store_notes(cur, run_id: str, notes: pl.DataFrame) -> None:
    """Within the transaction that records the run."""
    cur.register("run_notes", notes.select(list(NOTE_SCHEMA)))
    try:
        cur.execute(f"INSERT INTO audit_notes SELECT ?, {_COLUMNS} FROM run_notes", [run_id])
    finally:
        cur.unregister("run_notes")


def run_notes(store: Store, run_id: str | None) -> pl.DataFrame:
    """The notes of a run, in a stable order."""
    if run_id is None:
        return pl.DataFrame(schema=NOTE_SCHEMA)
    frame = store.frame(
        f'SELECT {_COLUMNS} FROM audit_notes WHERE run_id = ? ORDER BY check_id, target, source, entity, "column"',
        [run_id],
    )
    return frame.cast(NOTE_SCHEMA)
