"""The surface every connector shares, and the base class that implements the common part of it.

A connector pulls what a platform holds as canonical frames (column names from `driftwatch.entities`;
values may still be strings: `driftwatch.normalize.coerce` types them). A platform module subclasses
`BaseConnector`, declares `name` and `entities`, and implements `pull_entity`, usually with `paginate`:

    class Connector(BaseConnector):
        name = "klaviyo"
        entities = ("customers",)

        def pull_entity(self, entity, *, since):
            def fetch(cursor):              # cursor: None on the first page, else what the last page returned
                body = self.http.request_json("GET", cursor["next"] if cursor else "/api/profiles")
                rows = [profile_to_row(r) for r in body["data"]]
                following = body["links"].get("next")
                return rows, ({"next": following} if following else None)

            return self.paginate(entity, fetch, params={"since": since})
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from driftwatch.connectors._checkpoint import Staging
from driftwatch.connectors._http import HttpSettings
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.progress import PageProgress
from driftwatch.redaction import NOT_A_VARIABLE, is_variable_name, remember

# The column a connector may add to a frame: the platform record each row came from (an order for its lines,
# a resource id). An incremental pull's changes replace every kept row of the records they name (see
# driftwatch.incremental.merge); the column is never stored.
RECORD = "_record"
Cursor = dict[str, Any]
Rows = list[dict[str, Any]] | pl.DataFrame
# fetch(cursor) -> (the page's canonical rows, the cursor of the next page or None after the last page)
FetchPage = Callable[[Cursor | None], tuple[Rows, Cursor | None]]
_REQUIRED = object()


@dataclass(frozen=True)
class Delta:
    """An entity pulled as the records changed since `since` (not whole), and the records the platform
    says were deleted since (named as `driftwatch.incremental.merge` names records)."""

    since: datetime
    gone: frozenset[str] = frozenset()
    how: str = ""  # how the changes were read, when the connector had a choice (for the pull's report)
    carried: frozenset[str] = frozenset()  # columns the changes lack: a record already held keeps its values


@dataclass(frozen=True)
class Pulled:
    """What one pull brought back: a canonical frame per entity, and when the pull started (UTC).

    `deltas` names the entities pulled as changes only (the others are whole); `whole` says why an entity
    came whole although changes were asked for, when the platform decided it during the pull. A connector
    may build its frames with a `RECORD` column; it is moved out of `frames` into `records` (per entity, the
    record of each row, in the frame's order), so `frames` hold canonical columns only."""

    source: str
    captured_at: datetime
    frames: dict[str, pl.DataFrame]
    deltas: dict[str, Delta] = field(default_factory=dict)
    whole: dict[str, str] = field(default_factory=dict)
    records: dict[str, pl.Series] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", dict(self.frames))  # the caller's dict stays as it was
        for entity, frame in list(self.frames.items()):
            if RECORD in frame.columns:
                self.records[entity] = frame[RECORD]
                self.frames[entity] = frame.drop(RECORD)

    def with_records(self, entity: str) -> pl.DataFrame:
        """The entity's frame with its `RECORD` column back, when the connector named records."""
        frame = self.frames[entity]
        return frame.with_columns(self.records[entity]) if entity in self.records else frame


class Connector(Protocol):
    name: str  # the platform
    source: str  # the configured source (an instance of the platform) this connector pulls
    entities: tuple[str, ...]
    settings_keys: frozenset[str]  # the [sources.<name>] keys it reads, besides platforms.COMMON_SETTINGS
    incremental: Mapping[str, str]  # entity -> the documented listing of changes a `since` pull uses
    always_whole: Mapping[str, str]  # entity (or "*") -> why it is pulled whole whatever `since` says

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        source: str | None = None,
        env: Mapping[str, str] = ...,
        checkpoint_dir: Path | None = None,
        progress: bool | None = None,
    ) -> None: ...

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled: ...

    def check(self) -> str: ...

    def close(self) -> None: ...


class BaseConnector:
    """Settings, credentials from the environment, entity selection, and resumable paging.

    `settings` is the `[sources.<name>]` table of driftwatch.toml: `base_url`, the *names* of the
    environment variables that hold credentials (e.g. `api_key_env = "KLAVIYO_API_KEY"`), and optional
    HTTP timings (see `HttpSettings`), and `checkpoint_rows`. `source` is the configured source's name
    (`mirakl_fr`), the platform's own name by default: errors, staged pages and snapshots carry it.
    """

    name: ClassVar[str]
    entities: ClassVar[tuple[str, ...]]
    settings_keys: ClassVar[frozenset[str]] = frozenset()
    # Rows fetched between two writes of the staging (setting `checkpoint_rows`); 0 writes every page.
    checkpoint_rows: ClassVar[int] = 0
    # entity -> column -> the function a pull reads that column's coded values with (see decode_drop)
    drop_decoders: ClassVar[Mapping[str, Mapping[str, Callable[[str], str | None]]]] = {}
    # entity -> the platform's documented listing of records changed since a time, which `pull(since=...)`
    # uses for it (see driftwatch.incremental); an entity not named here is always pulled whole.
    incremental: ClassVar[Mapping[str, str]] = {}
    # entity (or "*" for all) -> why it is always pulled whole, for the pull's report
    always_whole: ClassVar[Mapping[str, str]] = {"*": "the connector lists every record, not changes"}

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        source: str | None = None,
        env: Mapping[str, str] = os.environ,
        checkpoint_dir: Path | None = None,
        progress: bool | None = None,
    ):
        self.source = source or self.name
        self.settings = dict(settings)
        self.env = env
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.http_settings = HttpSettings.from_settings(self.settings)

    def __enter__(self) -> BaseConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release connections; a platform connector that holds a client closes it here."""

    @classmethod
    def decode_drop(cls, entity: str, frame: pl.DataFrame, settings: Mapping[str, Any]) -> pl.DataFrame:
        """A file drop of this platform's `entity` (canonical column names), its coded values (an opt-in
        written 1/2, a subscription state) read the way a pull reads them: through `drop_decoders`, the
        functions the pull uses. The rest of a drop is read as given."""
        return decode_values(frame, cls.drop_decoders.get(entity, {}))

    def setting(self, key: str, default: Any = _REQUIRED) -> Any:
        """A plain setting; without a default, a missing one is a UserError."""
        if key in self.settings:
            return self.settings[key]
        if default is _REQUIRED:
            raise UserError(f"sources.{self.source}: missing setting {key!r}")
        return default

    def credential(self, setting_key: str, *, secret: bool = True) -> str:
        """The credential held by the environment variable that setting `setting_key` names. A secret (not a
        user name or a client id: `secret=False`) is redacted from then on, from everything driftwatch prints,
        logs, stores or sends."""
        variable = self.setting(setting_key)
        if not is_variable_name(variable):  # a secret pasted in place of its variable's name: never echoed
            raise UserError(f"sources.{self.source}.{setting_key}: {NOT_A_VARIABLE}")
        value = self.env.get(variable, "").strip()
        if not value:
            raise UserError(f"sources.{self.source}: environment variable {variable} ({setting_key}) is not set")
        if secret:
            remember(value)
        return value

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        """Every record of each entity, or with `since` the records changed since then for the entities the
        platform can list that way (`incremental`); `Pulled.deltas` says which came as changes."""
        chosen = self._select(entities)
        captured_at = datetime.now(UTC)
        changed = {e for e in chosen if since is not None and e in self.incremental}
        frames = {entity: self.pull_entity(entity, since=since if entity in changed else None) for entity in chosen}
        deltas = {entity: Delta(since) for entity in changed if since is not None}
        return Pulled(self.source, captured_at, frames, deltas)

    def pull_entity(self, entity: str, *, since: datetime | None) -> pl.DataFrame:
        raise NotImplementedError

    def check(self) -> str:
        """Reach the platform once with its cheapest authenticated call (`driftwatch doctor`): returns what
        that proved, raises UserError when it fails. Reads nothing worth storing and writes nothing."""
        raise NotImplementedError

    def paginate(self, entity: str, fetch: FetchPage, *, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Call `fetch` page after page until it returns no next cursor, staging the pages so that an
        interrupted pull resumes from its last cursor; returns every record once per entity key."""
        key = ENTITIES[entity].key
        flush_rows = int(self.setting("checkpoint_rows", self.checkpoint_rows))
        staging = Staging(self.checkpoint_dir, self.source, entity, key, dict(params or {}), flush_rows=flush_rows)
        with PageProgress(f"{self.source} {entity}", self.progress) as progress:
            try:
                while not staging.done:
                    rows, cursor = fetch(staging.cursor)
                    page = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, infer_schema_length=None)
                    staging.save(page, cursor)
                    progress.advance(page.height)
            except BaseException:
                staging.flush()  # keep what was fetched: the next pull resumes after it
                raise
        frame = staging.frame()
        staging.clear()
        return frame if frame.width else pl.DataFrame(schema=dict.fromkeys(ENTITIES[entity].columns, pl.String))

    def _select(self, entities: Iterable[str] | None) -> tuple[str, ...]:
        if entities is None:
            return self.entities
        chosen = tuple(entities)
        unknown = [e for e in chosen if e not in self.entities]
        if unknown:
            raise UserError(f"{self.source} cannot pull {', '.join(unknown)}: it provides {', '.join(self.entities)}")
        return chosen


def decode_values(frame: pl.DataFrame, decoders: Mapping[str, Callable[[str], str | None]]) -> pl.DataFrame:
    """Each named text column of a drop through its decoder (the function a pull reads the value with),
    called once per distinct value. A value the decoder does not know comes back as it was, for the
    normaliser to report."""
    for column, decode in decoders.items():
        if column not in frame.columns or frame.schema[column] != pl.String:
            continue  # absent, or typed already (a parquet boolean needs no decoding)
        values = frame[column].drop_nulls().unique().to_list()
        lookup = {value: decode(value.strip()) for value in values}
        frame = frame.with_columns(pl.col(column).replace_strict(lookup, default=None, return_dtype=pl.String))
    return frame
