"""Incidents across runs: grouped after each audit, stored with their members, and followed like findings.

An incident's identity is its cause: the check, the target, the attribute and its value (stock_parity on
mirakl, location WH-RET). Tomorrow's incident is the same one when the same value of the same attribute
explains the same check's findings on the same target, whatever findings it covers by then; a location
dropped from a feed stays one incident as more SKUs of it drift, and once it is fixed and breaks again it
is that incident back again.

Per run an incident is `new` (never seen), `ongoing`, `worsened` (more findings, more money at risk in a
currency, or a higher severity than when last seen), `regressed` (it had resolved) or `resolved` (open in
the previous run, its check ran, and no longer explained). It is `acknowledged` while every finding in it is
(an acknowledgement of a finding covers what it was; `engine.findings`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from datetime import date
from functools import partial

import polars as pl

from driftwatch.config import Config
from driftwatch.engine.findings import OPEN_STATUSES, SEVERITY_RANK, acknowledge, findings, run_info
from driftwatch.errors import UserError
from driftwatch.incidents import words
from driftwatch.incidents.age import RUN_TIMES
from driftwatch.incidents.attributes import ORDER_ENTITIES, Population, RunSnapshots, population, population_key
from driftwatch.incidents.grouping import MIN_SIZE, Cause, group
from driftwatch.store import Migration, Store

# Registered by `driftwatch.application`.
MIGRATIONS = (
    Migration(
        500,
        "incidents",
        """
    CREATE TABLE incidents (
      run_id VARCHAR NOT NULL,
      incident_id VARCHAR NOT NULL,
      check_id VARCHAR NOT NULL,
      source VARCHAR,
      target VARCHAR,
      entity VARCHAR,
      attribute VARCHAR NOT NULL,
      value VARCHAR NOT NULL,
      status VARCHAR NOT NULL,          -- new | ongoing | worsened | regressed | resolved
      severity VARCHAR NOT NULL,        -- the most severe of its findings
      size INTEGER NOT NULL,            -- findings it covers
      records INTEGER NOT NULL,         -- distinct records (keys) among them
      findings_total INTEGER NOT NULL,  -- open findings of the check on the target
      drifting_with INTEGER NOT NULL,
      records_with INTEGER NOT NULL,
      drifting_without INTEGER NOT NULL,
      records_without INTEGER NOT NULL,
      cause VARCHAR NOT NULL,           -- the probable cause, as a sentence
      explanation VARCHAR NOT NULL,     -- why its findings were grouped
      owner VARCHAR,
      acknowledged BOOLEAN NOT NULL,
      PRIMARY KEY (run_id, incident_id)
    );
    CREATE TABLE incident_members (
      run_id VARCHAR NOT NULL,
      incident_id VARCHAR NOT NULL,
      fingerprint VARCHAR NOT NULL
    );
    CREATE TABLE incident_states (
      incident_id VARCHAR PRIMARY KEY,
      status VARCHAR NOT NULL,
      first_seen_run VARCHAR NOT NULL,
      opened_run VARCHAR NOT NULL,      -- the run its current open spell began in
      last_run VARCHAR NOT NULL
    );
    """,
    ),
)

OPEN = ("new", "ongoing", "worsened", "regressed")
HISTORY_RUNS = 14  # earlier runs whose arrivals tell the usual pace of new findings


def incident_id(check_id: str, target: str | None, attribute: str, value: str) -> str:
    return hashlib.md5("|".join([check_id, target or "", attribute, value]).encode()).hexdigest()[:16]


def record_incidents(store: Store, cfg: Config, run_id: str, owners: Mapping[str, str] | None = None) -> int:
    """Group the run's open findings into incidents and store them with their lifecycle. Returns how many
    are open. Muted findings are left out (nobody wants to hear of them); acknowledged ones count."""
    live = findings(store, run_id).filter(pl.col("status").is_in(OPEN_STATUSES) & ~pl.col("muted"))
    live = live.join(_first_runs(store, run_id), on="fingerprint", how="left")
    snaps = RunSnapshots(store, run_id)
    found: list[dict] = []
    members: list[tuple[str, str]] = []
    groups = [
        (check_id, target, rows, _most_common(rows, "source"), _most_common(rows, "entity"))
        for (check_id, target), rows in live.group_by("check_id", "target", maintain_order=True)
        if rows.height >= MIN_SIZE
    ]
    lenses = Counter(population_key(s, t, e, rows["key"]) for _, t, rows, s, e in groups if s and e)
    snaps.plan(lenses)  # each snapshot is forgotten after the last population that reads it
    for check_id, target, rows, source, entity in groups:
        pop = None
        if source and entity:
            key = population_key(source, target, entity, rows["key"])
            build = partial(population, snaps, cfg, source, target, entity, rows["key"])
            pop = snaps.shared(key, build, uses=lenses[key])
        arrivals = _arrivals(store, run_id, check_id, target, entity)
        for cause in group(rows.select("fingerprint", "key", "first_run"), pop and pop.records, arrivals):
            iid = incident_id(check_id, target, cause.attribute, cause.value)
            covered = rows.filter(pl.col("fingerprint").is_in(cause.members))
            ctx = _context(store, cfg, cause, source, target, entity, pop)
            found.append(
                {
                    "incident_id": iid,
                    "check_id": check_id,
                    "source": source,
                    "target": target,
                    "entity": entity,
                    "attribute": cause.attribute,
                    "value": cause.value,
                    "severity": max(covered["severity"].to_list(), key=lambda s: SEVERITY_RANK.get(s, 0)),
                    "size": cause.size,
                    "records": covered["key"].n_unique(),
                    "findings_total": cause.findings,
                    "drifting_with": cause.drifting_with,
                    "records_with": cause.records_with,
                    "drifting_without": cause.drifting_without,
                    "records_without": cause.records_without,
                    "cause": words.cause_sentence(cause, ctx),
                    "explanation": words.explanation(cause),
                    "owner": (owners or {}).get(check_id),
                    "acknowledged": bool(covered["acknowledged"].all()),
                }
            )
            members += [(iid, fingerprint) for fingerprint in cause.members]
    _store(store, run_id, found, members)
    return len(found)


def _most_common(rows: pl.DataFrame, column: str) -> str | None:
    counts = (
        rows.select(pl.col(column).drop_nulls()).group_by(column).len().sort(["len", column], descending=[True, False])
    )
    return counts[column][0] if counts.height else None


def _first_runs(store: Store, run_id: str) -> pl.DataFrame:
    """The run in which each finding open in `run_id` began its current spell."""
    return store.frame(
        """
        SELECT f.fingerprint, arg_max(f.run_id, r.started_at) AS first_run
        FROM findings f JOIN audit_runs r USING (run_id)
        WHERE f.status IN ('new', 'regressed')
          AND r.started_at <= (SELECT started_at FROM audit_runs WHERE run_id = ?)
          AND f.fingerprint IN (SELECT fingerprint FROM findings WHERE run_id = ? AND status <> 'resolved')
        GROUP BY f.fingerprint
        """,
        [run_id, run_id],
    )


def _arrivals(store: Store, run_id: str, check_id: str, target: str | None, entity: str | None) -> pl.DataFrame:
    """Findings of the check on the target that began in each earlier run that audited the target with that
    check, i.e. ran it and read the target's snapshot of the findings' entity (zero when none arrived), the
    latest HISTORY_RUNS of them."""
    return store.frame(
        """
        WITH earlier AS (
            SELECT r.run_id, r.started_at FROM audit_runs r
            WHERE r.started_at < (SELECT started_at FROM audit_runs WHERE run_id = ?)
              AND list_contains(r.checks, ?)
              AND EXISTS (SELECT 1 FROM snapshots s WHERE s.source = ? AND s.entity = ?
                          AND list_contains(r.snapshot_ids, s.snapshot_id))
            ORDER BY r.started_at DESC LIMIT ?
        )
        SELECT e.run_id, count(f.fingerprint) AS arrived
        FROM earlier e LEFT JOIN findings f
          ON f.run_id = e.run_id AND f.check_id = ? AND f.target IS NOT DISTINCT FROM ?
         AND f.status IN ('new', 'regressed')
        GROUP BY e.run_id ORDER BY e.run_id
        """,
        [run_id, check_id, target, entity, HISTORY_RUNS, check_id, target],
    )


def _context(
    store: Store, cfg: Config, cause: Cause, source: str, target: str, entity: str, pop: Population | None
) -> words.Context:
    ctx = words.Context(target=target, entity="orders" if entity in ORDER_ENTITIES else entity)
    if cause.attribute == "location":
        feed = next((f for f in cfg.feeds if f.source == source and f.target == target), None)
        feeds = feed is not None and (feed.locations is None or cause.value in feed.locations)
        absent = bool(pop and pop.target_locations is not None and cause.value not in pop.target_locations)
        return words.Context(target, ctx.entity, feeds_location=feeds, absent_on_target=absent)
    if cause.attribute == "status":
        try:
            mapping = {k.lower(): v for k, v in cfg.status_map(source).items()}
        except UserError:  # a source whose platform is unknown has no words to offer, only its codes
            mapping = {}
        return words.Context(target, ctx.entity, status_word=mapping.get(cause.value.lower(), ""))
    if cause.attribute == "first_run":
        info = run_info(store, cause.value)
        return words.Context(target, ctx.entity, run_started=info["started_at"] if info else None)
    return ctx


def _store(store: Store, run_id: str, found: list[dict], members: list[tuple[str, str]]) -> None:
    info = run_info(store, run_id)
    checks = list(info["checks"]) if info else []
    member_rows = pl.DataFrame(members, schema={"incident_id": pl.String, "fingerprint": pl.String}, orient="row")
    with store.transaction() as cur:
        cur.execute("DELETE FROM incidents WHERE run_id = ?", [run_id])
        cur.execute("DELETE FROM incident_members WHERE run_id = ?", [run_id])
        cur.register("current_members", member_rows)
        try:
            cur.execute(
                "INSERT INTO incident_members SELECT ?, incident_id, fingerprint FROM current_members", [run_id]
            )
        finally:
            cur.unregister("current_members")
        current = _with_status(cur, run_id, pl.DataFrame(found, schema=_INCIDENT_SCHEMA))
        cur.register("current_incidents", current)
        try:
            cur.execute(
                f"INSERT INTO incidents ({', '.join(_COLUMNS)}) SELECT ?, {', '.join(_COLUMNS[1:])} "
                "FROM current_incidents",
                [run_id],
            )
        finally:
            cur.unregister("current_incidents")
        _resolve_and_remember(cur, run_id, checks)


def _with_status(cur, run_id: str, current: pl.DataFrame) -> pl.DataFrame:
    """Each incident against its last sighting: new, back again (`regressed`), worse, or the same."""
    before = cur.sql(
        """
        SELECT s.incident_id, s.status AS state, p.size AS size_was, p.severity AS severity_was
        FROM incident_states s JOIN incidents p ON p.incident_id = s.incident_id AND p.run_id = s.last_run
        WHERE s.last_run <> ?
        """,
        params=[run_id],
    ).pl()
    before = before.cast({"size_was": pl.Int32})
    grew = _money_grew(cur, run_id)
    frame = current.join(before, on="incident_id", how="left")
    worse = (
        (pl.col("size") > pl.col("size_was"))
        | (_severity_rank("severity") > _severity_rank("severity_was"))
        | pl.col("incident_id").is_in(grew)
    )
    status = (
        pl.when(pl.col("state").is_null())
        .then(pl.lit("new"))
        .when(pl.col("state") == "resolved")
        .then(pl.lit("regressed"))
        .when(worse)
        .then(pl.lit("worsened"))
        .otherwise(pl.lit("ongoing"))
    )
    return frame.with_columns(status.alias("status")).drop("state", "size_was", "severity_was")


def _money_grew(cur, run_id: str) -> list[str]:
    """Incidents with more money at risk in some currency than at their last sighting (members of this run
    are already stored)."""
    rows = cur.execute(
        f"""
        WITH now AS ({_MONEY} WHERE m.run_id = ? GROUP BY ALL),
             was AS ({_MONEY} JOIN incident_states s ON s.incident_id = m.incident_id AND s.last_run = m.run_id
                     WHERE s.last_run <> ? GROUP BY ALL)
        SELECT DISTINCT now.incident_id FROM now JOIN was USING (incident_id, currency) WHERE now.amount > was.amount
        UNION
        SELECT DISTINCT now.incident_id FROM now
        WHERE now.incident_id IN (SELECT incident_id FROM was)
          AND (now.incident_id, now.currency) NOT IN (SELECT incident_id, currency FROM was)
        """,
        [run_id, run_id],
    ).fetchall()
    return [row[0] for row in rows]


_MONEY = """
    SELECT m.incident_id, coalesce(f.currency, '') AS currency, sum(abs(f.impact)) AS amount
    FROM incident_members m JOIN findings f ON f.run_id = m.run_id AND f.fingerprint = m.fingerprint
                            AND f.impact IS NOT NULL"""


def _severity_rank(column: str) -> pl.Expr:
    return pl.col(column).replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)


def _resolve_and_remember(cur, run_id: str, checks: list[str]) -> None:
    # Open before, not explained now, and its check ran: resolved; the row repeats the last sighting.
    cur.execute(
        f"""
        INSERT INTO incidents ({", ".join(_COLUMNS)})
        SELECT ?, {", ".join(c if c != "status" else "'resolved'" for c in _COLUMNS[1:])}
        FROM incidents i
        WHERE (i.incident_id, i.run_id) IN (
            SELECT s.incident_id, s.last_run FROM incident_states s
            WHERE s.status <> 'resolved' AND s.last_run <> ?
              AND s.incident_id NOT IN (SELECT incident_id FROM incidents WHERE run_id = ?))
          AND list_contains(?, i.check_id)
        """,
        [run_id, run_id, run_id, checks],
    )
    cur.execute(
        """
        INSERT INTO incident_states
        SELECT incident_id, status, ?, ?, ? FROM incidents WHERE run_id = ?
        ON CONFLICT (incident_id) DO UPDATE SET
            status = excluded.status, last_run = excluded.last_run,
            opened_run = CASE WHEN excluded.status IN ('new', 'regressed') THEN excluded.opened_run
                              ELSE incident_states.opened_run END
        """,
        [run_id, run_id, run_id, run_id],
    )


_INCIDENT_SCHEMA = {
    "incident_id": pl.String,
    "check_id": pl.String,
    "source": pl.String,
    "target": pl.String,
    "entity": pl.String,
    "attribute": pl.String,
    "value": pl.String,
    "severity": pl.String,
    "size": pl.Int32,
    "records": pl.Int32,
    "findings_total": pl.Int32,
    "drifting_with": pl.Int32,
    "records_with": pl.Int32,
    "drifting_without": pl.Int32,
    "records_without": pl.Int32,
    "cause": pl.String,
    "explanation": pl.String,
    "owner": pl.String,
    "acknowledged": pl.Boolean,
}
_COLUMNS = (
    "run_id",
    "incident_id",
    "check_id",
    "source",
    "target",
    "entity",
    "attribute",
    "value",
    "status",
    "severity",
    "size",
    "records",
    "findings_total",
    "drifting_with",
    "records_with",
    "drifting_without",
    "records_without",
    "cause",
    "explanation",
    "owner",
    "acknowledged",
)


def run_incidents(store: Store, run_id: str) -> pl.DataFrame:
    """A run's incidents, most urgent first: what was stored, plus `first_seen_run`, `first_seen_at`,
    `opened_at` (when the current open spell began, as of this run, in data time: `age.RUN_TIMES`),
    `last_run` (this run while open; for a resolved one, the last run it was open in), and `money` (list of
    {currency, amount})."""
    frame = store.frame(
        f"""
        WITH {RUN_TIMES},
        this AS (SELECT as_of FROM run_times WHERE run_id = ?),
        spells AS (
            SELECT i.incident_id, max(t.as_of) AS opened_at
            FROM incidents i JOIN run_times t USING (run_id)
            WHERE i.status IN ('new', 'regressed') AND t.as_of <= (SELECT as_of FROM this)
            GROUP BY i.incident_id),
        firsts AS (
            SELECT i.incident_id, arg_min(i.run_id, t.as_of) AS first_seen_run, min(t.as_of) AS first_seen_at
            FROM incidents i JOIN run_times t USING (run_id) GROUP BY i.incident_id),
        lasts AS (
            SELECT i.incident_id, arg_max(i.run_id, t.as_of) AS last_open_run
            FROM incidents i JOIN run_times t USING (run_id)
            WHERE i.status <> 'resolved' AND t.as_of <= (SELECT as_of FROM this)
            GROUP BY i.incident_id)
        SELECT i.*, f.first_seen_run, f.first_seen_at, s.opened_at, l.last_open_run AS last_run
        FROM incidents i
        LEFT JOIN spells s USING (incident_id) LEFT JOIN firsts f USING (incident_id)
        LEFT JOIN lasts l USING (incident_id)
        WHERE i.run_id = ?
        """,
        [run_id, run_id],
    )
    money = store.frame(
        """
        WITH sighting AS (
            SELECT i.incident_id, arg_max(i.run_id, r.started_at) AS run_id
            FROM incidents i JOIN audit_runs r USING (run_id)
            WHERE i.status <> 'resolved' AND r.started_at <= (SELECT started_at FROM audit_runs WHERE run_id = ?)
              AND i.incident_id IN (SELECT incident_id FROM incidents WHERE run_id = ?)
            GROUP BY i.incident_id),
        amounts AS (
            SELECT m.incident_id, coalesce(f.currency, '') AS currency, sum(abs(f.impact)) AS amount
            FROM sighting t
            JOIN incident_members m ON m.incident_id = t.incident_id AND m.run_id = t.run_id
            JOIN findings f ON f.run_id = m.run_id AND f.fingerprint = m.fingerprint AND f.impact IS NOT NULL
            GROUP BY ALL)
        SELECT incident_id, list({'currency': currency, 'amount': amount} ORDER BY currency) AS money
        FROM amounts GROUP BY incident_id
        """,
        [run_id, run_id],
    )
    frame = frame.join(money, on="incident_id", how="left")
    return frame.sort(
        [_severity_rank("severity"), pl.col("status") == "resolved", "size", "check_id", "target", "incident_id"],
        descending=[True, False, True, False, False, False],
    )


def incident_members(store: Store, run_id: str, *, resolved_too: bool = False) -> pl.DataFrame:
    """incident_id and fingerprint of every finding in an incident open in the run; with `resolved_too`, also
    those of the incidents the run resolved, as they were last seen open."""
    if not resolved_too:
        return store.frame(
            "SELECT incident_id, fingerprint FROM incident_members WHERE run_id = ? ORDER BY incident_id, fingerprint",
            [run_id],
        )
    return store.frame(
        """
        WITH last_open AS (
            SELECT i.incident_id, arg_max(i.run_id, r.started_at) AS run_id
            FROM incidents i JOIN audit_runs r USING (run_id)
            WHERE i.status <> 'resolved' AND r.started_at <= (SELECT started_at FROM audit_runs WHERE run_id = ?)
              AND i.incident_id IN (SELECT incident_id FROM incidents WHERE run_id = ?)
            GROUP BY i.incident_id)
        SELECT m.incident_id, m.fingerprint FROM incident_members m JOIN last_open USING (incident_id, run_id)
        ORDER BY m.incident_id, m.fingerprint
        """,
        [run_id, run_id],
    )


def acknowledge_incident(
    store: Store, incident: str, *, until: date | None = None, note: str | None = None
) -> list[str]:
    """Acknowledge every finding of an open incident as last seen, so the incident is acknowledged from the
    next run on while none of them gets worse; a finding that joins it later is not covered, and brings it
    back to the routes. `incident` is its id, with or without `incident:` in front. Returns the fingerprints
    acknowledged. There is no muting an incident: muted findings leave the grouping, so the incident would
    read as resolved (and alert as cleared) while nothing was fixed."""
    iid = incident.removeprefix("incident:").removeprefix("incident-")
    last = store.frame(
        """
        SELECT i.run_id, i.status FROM incidents i JOIN audit_runs r USING (run_id)
        WHERE i.incident_id = ? ORDER BY r.started_at DESC LIMIT 1
        """,
        [iid],
    ).to_dicts()
    if not last:
        raise UserError(f"no incident with id {iid!r} in {store.path} (`driftwatch incidents` lists them)")
    if last[0]["status"] == "resolved":
        raise UserError(f"incident {iid} is resolved: nothing of it is open to acknowledge")
    members = store.frame(
        "SELECT fingerprint FROM incident_members WHERE run_id = ? AND incident_id = ? ORDER BY fingerprint",
        [last[0]["run_id"], iid],
    )["fingerprint"].to_list()
    for fingerprint in members:
        acknowledge(store, fingerprint, until=until, note=note)
    return members
