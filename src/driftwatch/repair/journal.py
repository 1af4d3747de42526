"""The repair journal: a row is written before every push and completed after it.

That ordering is what makes `repair apply` safe to crash: on the next run an action is either done
(skipped), never started (pushed), or in doubt (started, outcome unknown: the platform is asked what it
holds before anything is pushed again).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from driftwatch.redaction import redact
from driftwatch.repair.plan import Action
from driftwatch.store import Migration, Store

SENDING, DONE, FAILED = "sending", "done", "failed"

MIGRATIONS = (
    Migration(
        400,
        "repair journal",
        """
    CREATE TABLE repair_journal (
      action_id VARCHAR PRIMARY KEY,
      plan_id VARCHAR NOT NULL,
      target VARCHAR NOT NULL,
      action VARCHAR NOT NULL,
      key VARCHAR NOT NULL,
      field VARCHAR,
      before VARCHAR,
      after VARCHAR,
      state VARCHAR NOT NULL,
      attempts INTEGER NOT NULL,
      started_at TIMESTAMPTZ NOT NULL,
      finished_at TIMESTAMPTZ,
      detail VARCHAR,
      verified VARCHAR
    );
        """,
    ),
)


class Journal:
    def __init__(self, store: Store):
        self.store = store

    def states(self, actions: list[Action]) -> dict[str, str]:
        ids = [a.action_id for a in actions]
        rows = self.store.query(
            "SELECT action_id, state FROM repair_journal WHERE list_contains(?, action_id)", [ids]
        ).fetchall()
        return dict(rows)

    def begin(self, plan_id: str, batch: list[Action]) -> None:
        """Record that these actions are about to be pushed; committed before the first byte is sent."""
        now = datetime.now(UTC)
        with self.store.transaction() as cur:
            for a in batch:
                cur.execute(
                    """
                    INSERT INTO repair_journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sending', 1, ?, NULL, NULL, NULL)
                    ON CONFLICT (action_id) DO UPDATE SET state = 'sending', attempts = repair_journal.attempts + 1,
                      started_at = excluded.started_at, finished_at = NULL, detail = NULL
                    """,
                    [a.action_id, plan_id, a.target, a.action, a.key, a.field, a.before, a.after, now],
                )

    def finish(self, outcomes: dict[str, tuple[str, str | None]]) -> None:
        """Complete actions: action_id -> (DONE or FAILED, detail)."""
        now = datetime.now(UTC)
        with self.store.transaction() as cur:
            for action_id, (state, detail) in outcomes.items():
                cur.execute(
                    "UPDATE repair_journal SET state = ?, detail = ?, finished_at = ? WHERE action_id = ?",
                    [state, None if detail is None else redact(detail), now, action_id],  # a platform's words
                )

    def verified(self, results: dict[str, str]) -> None:
        with self.store.transaction() as cur:
            for action_id, verdict in results.items():
                cur.execute("UPDATE repair_journal SET verified = ? WHERE action_id = ?", [verdict, action_id])

    def entries(self, plan_id: str | None = None) -> pl.DataFrame:
        where, params = ("WHERE plan_id = ?", [plan_id]) if plan_id else ("", [])
        return self.store.frame(f"SELECT * FROM repair_journal {where} ORDER BY target, key, field", params)
