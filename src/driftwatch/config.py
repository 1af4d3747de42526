"""driftwatch.toml: sources, column maps, status mappings, feeds, check options.

A source is a named instance of a platform: `[sources.mirakl_fr] kind = "mirakl"`. A source named after
its platform (`[sources.klaviyo]`, or a `klaviyo/` drop folder with no table at all) needs no `kind`.
Whatever depends on the platform (connector, pusher, marketplace or not, default statuses) is asked of
the source's kind through `driftwatch.platforms`.

Every problem is reported as `FILE: KEY: problem`, so a user can go straight to the line. Secrets are
never values in this file, only the names of environment variables that hold them (keys ending in `_env`):
a value that looks like a credential by its shape is refused whatever its key (see `_check_secrets`), and
the refusal names the key, never the value.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftwatch import platforms, redaction
from driftwatch.entities import ENTITIES
from driftwatch.errors import UserError
from driftwatch.executors import Executor
from driftwatch.objectstore import is_object_url
from driftwatch.platforms import Platform
from driftwatch.severity import SEVERITIES
from driftwatch.statuses import CANONICAL, ORDERS, merged_map

DEFAULT_CONFIG_NAME = "driftwatch.toml"
# The top-level tables this module reads itself; the other parts register theirs (`register_section`).
_OWN_SECTIONS = ("store", "audit", "engine", "sources", "statuses", "feeds")
# Setting names that say they hold a credential (besides every value shaped like one). A name such as
# `project_key` or `listing_field` is not one.
_SECRET_NAME = re.compile(
    r"(^key$|api_?key|secret|password|passphrase|token|private_key|access_key|credential)", re.IGNORECASE
)
_SECRET_HINT = (
    "secrets never go in this file{what}: put it in an environment variable and name that variable in the "
    "matching `*_env` setting (api_key_env, client_secret_env, sftp_password_env, url_env, ...)"
)
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_STORE_KEYS = ("path",)
_AUDIT_KEYS = ("fail_on", "marketplaces", "checks_dirs")
_ENGINE_KEYS = ("executor", "scheduler", "workers", "partitions", "shared_dir")
_FEED_KEYS = ("source", "target", "entities", "channels", "locations")
DEFAULT_SYSTEM_OF_RECORD = "bluecherry"  # what feeds every target when no [[feeds]] say otherwise


@dataclass(frozen=True)
class Feed:
    """A system of record feeds a target with some entities (orders only of some channels, stock only
    from some locations)."""

    source: str
    target: str
    entities: tuple[str, ...]
    channels: tuple[str, ...] | None = None
    locations: tuple[str, ...] | None = None


# Source settings that name a folder on this machine.
_FOLDER_SETTINGS = ("path", "outbox")


@dataclass(frozen=True)
class AuditSettings:
    fail_on: str = "high"
    # Sources counted as marketplaces besides those whose platform is one (Mirakl instances always are).
    marketplaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineSettings:
    """Where an audit's keyed comparisons run: `partitions` > 1 splits both sides of each by a hash of its
    join key and joins each part as a task on `executor`; parts are written under `shared_dir` (default: the
    audit's scratch folder, beside the store), which workers on other machines must see at the same path,
    or to object storage when it is a URL (s3://bucket/prefix, gs://...: driftwatch.objectstore)."""

    executor: Executor = field(default_factory=Executor)
    partitions: int | None = None  # None: 1 on the local executor, two per worker on Dask
    shared_dir: Path | str | None = None  # a str is an object storage URL

    @property
    def parts(self) -> int:
        if self.partitions is not None:
            return self.partitions
        return 1 if self.executor.kind == "local" else 2 * self.executor.workers

    @property
    def splits(self) -> bool:
        """Whether keyed comparisons leave the one-process join: in parts, or on a cluster."""
        return self.parts > 1 or self.executor.kind != "local"


@dataclass
class Config:
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    store_path: Path = Path("driftwatch.duckdb")
    audit: AuditSettings = field(default_factory=AuditSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    feeds: list[Feed] = field(default_factory=list)
    checks_dirs: list[Path] = field(default_factory=list)

    def source(self, name: str) -> dict[str, Any]:
        """The [sources.NAME] table (connector settings, column maps, timezone), empty when absent. Folders
        it names (`path`, `outbox`) are relative to the config file's folder, like the store, never to
        wherever the command happens to run."""
        table = dict(self.raw.get("sources", {}).get(name, {}))
        for key in _FOLDER_SETTINGS:
            if isinstance(table.get(key), str):
                table[key] = str(self.base / Path(table[key]).expanduser())
        return table

    @property
    def base(self) -> Path:
        """The folder relative paths in the config are read from."""
        return self.path.parent if self.path else Path.cwd()

    def configured_sources(self) -> tuple[str, ...]:
        """The sources named by a [sources.NAME] table."""
        return tuple(self.raw.get("sources", {}))

    def known_sources(self) -> tuple[str, ...]:
        """Every name a source may go by: the configured sources, then each platform's own name."""
        return tuple(dict.fromkeys([*self.configured_sources(), *platforms.names()]))

    def kind(self, name: str) -> str:
        """The platform of a source: its `kind`, else its own name when that names a platform."""
        kind = self.source(name).get("kind")
        if kind is not None:
            return kind
        if platforms.is_platform(name):
            return name
        raise UserError(unknown_source(name, self))

    def platform(self, name: str) -> Platform:
        return platforms.get(self.kind(name))

    def is_marketplace(self, name: str) -> bool:
        return name in self.audit.marketplaces or self.platform(name).marketplace

    def marketplace_channels(self) -> tuple[str, ...]:
        """The ERP channels whose orders go to a marketplace: each marketplace's feed channels, else the
        channel named like the marketplace. Other targets never receive these orders."""
        marketplaces = [
            *(name for name in platforms.names() if platforms.get(name).marketplace),
            *self.audit.marketplaces,
            *(name for name in self.configured_sources() if self.is_marketplace(name)),
        ]
        channels = list(marketplaces)
        for feed in self.feeds:
            if self.is_marketplace(feed.target):
                channels += feed.channels if feed.channels is not None else [feed.target]
        return tuple(dict.fromkeys(channels))

    def status_map(self, source: str, vocabulary: str = ORDERS) -> dict[str, str]:
        """Raw -> canonical for one source and vocabulary (orders, returns, products): the entries of
        `[statuses.<source>]`, then those of `[statuses.<platform>]` (shared by every instance of the
        platform), then the platform's shipped defaults. Order statuses go straight in the table; the other
        vocabularies in its sub-table of their name (`[statuses.<source>.returns]`)."""
        kind = self.kind(source)
        tables = self.raw.get("statuses", {})
        overrides = {**_vocabulary_table(tables.get(kind, {}), vocabulary)}
        overrides.update(_vocabulary_table(tables.get(source, {}), vocabulary))
        return merged_map(platforms.get(kind).vocabulary, overrides, vocabulary)

    def same_stages(self, source: str) -> tuple[tuple[str, ...], ...]:
        """The canonical order stages a source's platform cannot tell apart."""
        return self.platform(source).vocabulary.same_stages

    def check_options(
        self, check_id: str, target: str | None = None, defaults: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A check's options: its file's `defaults`, then `[checks.<id>]`, then the target's own
        `[checks.<id>.targets.<target>]` (see `merge_options` for how tables combine)."""
        table = dict(self.raw.get("checks", {}).get(check_id, {}))
        per_target = table.pop("targets", {})
        merged = merge_options(defaults or {}, table)
        if target is not None:
            merged = merge_options(merged, per_target.get(target, {}))
        return merged

    def feeds_to(self, target: str) -> list[Feed]:
        return [f for f in self.feeds if f.target == target]

    def section(self, name: str) -> dict[str, Any]:
        return self.raw.get(name, {})


@dataclass(frozen=True)
class Section:
    """A top-level table of driftwatch.toml that another part owns (`[report]`, `[alerts]`, ...), and the
    function of that part validating it. Validation runs when the file is read, so a mistake is reported
    then, not halfway through a nightly job."""

    name: str
    validate: Callable[[Config], None] | None = None
    also_on: tuple[str, ...] = ()  # other sections whose presence calls for this validation too


_SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> None:
    """Make a top-level table known (`driftwatch.application` registers each part's). Validators run in
    the order their sections were registered."""
    if section.name in _OWN_SECTIONS:
        raise ValueError(f"[{section.name}] is read by the configuration itself")
    _SECTIONS[section.name] = section


def sections() -> tuple[str, ...]:
    """Every top-level table a config file may hold."""
    return (*_OWN_SECTIONS, *_SECTIONS)


def merge_options(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`: a table option (a money tolerance per currency) adds to the
    table above it, entry by entry; any other value replaces. A money tolerance given as one amount is the
    amount for every currency, so it replaces whatever per-currency entries came before."""
    merged = dict(base)
    for name, value in override.items():
        before = merged.get(name)
        if name.endswith("money_tolerance") and before is not None and not isinstance(before, dict):
            before = {"default": before}
        merged[name] = {**before, **value} if isinstance(value, dict) and isinstance(before, dict) else value
    return merged


def unknown_key(key: str, allowed: Iterable[str], what: str = "key") -> str:
    """The problem with a key that is not one of `allowed`, with the closest allowed one as a hint."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what}{hint}; expected one of {', '.join(allowed)}"


def unknown_source(name: str, cfg: Config | None = None, what: str = "source") -> str:
    configured = ", ".join(cfg.configured_sources()) if cfg is not None else ""
    return (
        f"unknown {what} {name!r}: it is neither a configured source ({configured or 'none configured'}) "
        f"nor a platform ({', '.join(platforms.names())})"
    )


def default_feeds(sources: dict[str, Any] | None = None) -> list[Feed]:
    """Without [[feeds]], the ERP (BlueCherry, or each configured BlueCherry instance) feeds every target
    (each non-system-of-record platform and configured source) everything both sides hold."""
    sources = sources or {}
    kinds = {name: table.get("kind", name) for name, table in sources.items()}
    erps = [name for name, kind in kinds.items() if kind == DEFAULT_SYSTEM_OF_RECORD] or [DEFAULT_SYSTEM_OF_RECORD]
    targets = [name for name in platforms.names() if not platforms.get(name).system_of_record]
    targets += [
        name
        for name, kind in kinds.items()
        if platforms.is_platform(kind) and not platforms.get(kind).system_of_record and name not in targets
    ]
    everything = tuple(ENTITIES)
    return [Feed(erp, target, everything) for erp in erps for target in targets]


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file. With no path, ./driftwatch.toml if present, else the defaults."""
    if path is None:
        candidate = Path(DEFAULT_CONFIG_NAME)
        if not candidate.exists():
            return Config(feeds=default_feeds())
        path = candidate
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found (create one with `driftwatch init`)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    cfg = parse_config(raw, path)
    _validate_sections(cfg)
    return cfg


def _validate_sections(cfg: Config) -> None:
    """Each registered section's own validation, in the order they were registered."""
    for section in _SECTIONS.values():
        if section.validate is not None and any(name in cfg.raw for name in (section.name, *section.also_on)):
            try:
                section.validate(cfg)
            except UserError as exc:
                lines = str(exc).splitlines()
                raise UserError(
                    "\n".join(line if line.startswith(f"{cfg.path}:") else f"{cfg.path}: {line}" for line in lines)
                ) from None


def parse_config(raw: dict[str, Any], path: Path | None = None) -> Config:
    problems = _Problems(path)
    for key in raw:
        if key not in sections():
            problems.add(key, unknown_key(key, sections(), "section"))
    _check_tables(raw, problems)
    _check_secrets(raw, "", problems)
    sources = raw.get("sources", {})
    _check_sources(sources, problems)
    known = tuple(dict.fromkeys([*sources, *platforms.names()]))
    _check_statuses(raw.get("statuses", {}), known, problems)
    feeds = _parse_feeds(raw.get("feeds"), sources, known, problems)
    audit = _parse_audit(raw.get("audit", {}), known, problems)
    base = path.parent if path else Path.cwd()
    engine = parse_engine(raw.get("engine", {}), base, problems.add)
    problems.raise_if_any()
    store = raw.get("store", {})
    return Config(
        path=path,
        raw=raw,
        store_path=base / store.get("path", "driftwatch.duckdb"),
        audit=audit,
        engine=engine,
        feeds=feeds,
        checks_dirs=[base / p for p in raw.get("audit", {}).get("checks_dirs", [])],
    )


def _check_tables(raw: dict[str, Any], problems: _Problems) -> None:
    """Every section is a table of the right shape, and the simple ones hold only their known keys."""
    for section in sections():
        if section != "feeds" and section in raw and not isinstance(raw[section], dict):
            problems.add(section, f"expected a table: [{section}]")
            raw[section] = {}
    if "feeds" in raw and not (isinstance(raw["feeds"], list) and all(isinstance(f, dict) for f in raw["feeds"])):
        problems.add("feeds", "expected [[feeds]] tables")
        raw["feeds"] = []
    for section, allowed in (("store", _STORE_KEYS), ("audit", _AUDIT_KEYS), ("engine", _ENGINE_KEYS)):
        for key in raw.get(section, {}):
            if key not in allowed:
                problems.add(f"{section}.{key}", unknown_key(key, allowed))


class _Problems:
    def __init__(self, path: Path | None):
        self.where = str(path) if path else "configuration"
        self.items: list[str] = []

    def add(self, key: str, problem: str) -> None:
        self.items.append(f"{self.where}: {key}: {problem}")

    def raise_if_any(self) -> None:
        if self.items:
            raise UserError("\n".join(self.items))


def _check_secrets(table: dict[str, Any], prefix: str, problems: _Problems) -> None:
    """No credential in the file, whatever its key: every value (in tables and lists, at any depth) is
    judged by its shape (`redaction.looks_like_secret`: a URL with a password or a token in it, a webhook, a
    known key prefix, a long random token); a key named like a credential may hold no value at all; and an
    `*_env` setting must name an environment variable, not be the credential pasted in its place. A refused
    value is remembered for redaction and never shown."""
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if key.endswith("_env"):
            names = value if isinstance(value, list) else [value]
            if not all(redaction.is_variable_name(name) for name in names):
                _remember_strings(value)
                problems.add(dotted, redaction.NOT_A_VARIABLE)
        elif _SECRET_NAME.search(key) and "column_map" not in prefix:
            _remember_strings(value)
            problems.add(dotted, _SECRET_HINT.format(what=""))
        elif isinstance(value, dict):
            _check_secrets(value, f"{dotted}.", problems)
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _check_secrets(item, f"{dotted}[{i}].", problems)
                elif isinstance(item, str) and redaction.looks_like_secret(item):
                    redaction.remember(item)
                    problems.add(f"{dotted}[{i}]", _SECRET_HINT.format(what=" (this value looks like one; not shown)"))
        elif any(redaction.looks_like_secret(text) for text in _strings_of(value)):
            _remember_strings(value)
            problems.add(dotted, _SECRET_HINT.format(what=" (this value looks like one; not shown)"))


def _strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings_of(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings_of(item)]
    return []


def _remember_strings(value: Any) -> None:
    """A refused value is redacted from whatever may echo it later (another section's error message)."""
    for text in _strings_of(value):
        redaction.remember(text)


def _check_sources(sources: dict[str, Any], problems: _Problems) -> None:
    for name, table in sources.items():
        if not _check_kind(name, table, problems):
            continue
        platform = platforms.get(table.get("kind", name))
        allowed = platform.settings()
        for key in table:
            if key not in allowed:
                problems.add(
                    f"sources.{name}.{key}", unknown_key(key, allowed, f"setting for a {platform.name} source")
                )
        if not isinstance(table.get("column_map", {}), dict):
            problems.add(f"sources.{name}.column_map", "expected tables per entity: [sources.NAME.column_map.ENTITY]")
            continue
        for entity_name in table.get("column_map", {}):
            if entity_name not in ENTITIES:
                problems.add(f"sources.{name}.column_map.{entity_name}", unknown_key(entity_name, ENTITIES, "entity"))
                continue
            if not isinstance(table["column_map"][entity_name], dict):
                problems.add(f"sources.{name}.column_map.{entity_name}", 'expected a table: "Report header" = "column"')
                continue
            for header, column in table["column_map"][entity_name].items():
                if not isinstance(column, str) or column not in ENTITIES[entity_name].columns:
                    problems.add(
                        f"sources.{name}.column_map.{entity_name}.{header!r}",
                        f"{column!r} is not a column of {entity_name}; expected one of "
                        f"{', '.join(ENTITIES[entity_name].columns)}",
                    )


def _check_kind(name: str, table: Any, problems: _Problems) -> bool:
    """A source's name is a lower_snake identifier and its kind a platform (its own name by default)."""
    where = f"sources.{name}"
    if not SOURCE_NAME.match(name):
        problems.add(where, "a source name is lower_snake_case (letters, digits, _), e.g. mirakl_fr")
        return False
    if not isinstance(table, dict):
        problems.add(where, "expected a table of settings")
        return False
    kind = table.get("kind")
    if kind is None:
        if platforms.is_platform(name):
            return True
        problems.add(
            where,
            f'unknown source: {name!r} is not a platform, so name its platform with kind = "..." '
            f"(one of {', '.join(platforms.names())})",
        )
        return False
    if not isinstance(kind, str) or not platforms.is_platform(kind):
        problems.add(f"{where}.kind", f"{kind!r} is not a platform; expected one of {', '.join(platforms.names())}")
        return False
    if platforms.is_platform(name) and kind != name:
        problems.add(
            f"{where}.kind", f"a source named {name!r} is the {name} platform; give a {kind} source another name"
        )
        return False
    return True


def _check_statuses(statuses: dict[str, Any], known: tuple[str, ...], problems: _Problems) -> None:
    """`[statuses.<source>]` maps order statuses; its sub-tables `returns` and `products` map those."""
    for source, table in statuses.items():
        if source not in known:
            problems.add(
                f"statuses.{source}", f"unknown source; expected a configured source or a platform: {', '.join(known)}"
            )
            continue
        if not isinstance(table, dict):
            problems.add(f"statuses.{source}", 'expected a table: "RAW_STATUS" = "canonical status"')
            continue
        for raw_value, canonical in table.items():
            if isinstance(canonical, dict):
                if raw_value not in CANONICAL or raw_value == ORDERS:
                    others = ", ".join(v for v in CANONICAL if v != ORDERS)
                    problems.add(
                        f"statuses.{source}.{raw_value}",
                        f"unknown vocabulary; order statuses go straight in [statuses.{source}], "
                        f"the others in one of: {others}",
                    )
                    continue
                for code, value in canonical.items():
                    _check_status(problems, f"statuses.{source}.{raw_value}.{code!r}", value, raw_value)
            else:
                _check_status(problems, f"statuses.{source}.{raw_value!r}", canonical, ORDERS)


def _vocabulary_table(table: dict[str, Any], vocabulary: str) -> dict[str, str]:
    if vocabulary == ORDERS:
        return {code: value for code, value in table.items() if not isinstance(value, dict)}
    return table.get(vocabulary, {})


def _check_status(problems: _Problems, key: str, value: Any, vocabulary: str) -> None:
    names = CANONICAL[vocabulary]
    if value not in names:
        kind = {ORDERS: "status", "returns": "return state", "products": "product status"}[vocabulary]
        problems.add(key, f"{value!r} is not a canonical {kind}; expected one of {', '.join(names)}")


def _parse_feeds(
    items: list[dict[str, Any]] | None, sources: dict[str, Any], known: tuple[str, ...], problems: _Problems
) -> list[Feed]:
    if items is None:
        return default_feeds(sources)
    feeds = []
    for i, item in enumerate(items):
        key = f"feeds[{i}]"
        for name in item:
            if name not in _FEED_KEYS:
                problems.add(f"{key}.{name}", unknown_key(name, _FEED_KEYS))
        for name in ("entities", "channels", "locations"):
            if name in item and not (isinstance(item[name], list) and all(isinstance(v, str) for v in item[name])):
                problems.add(f"{key}.{name}", f'expected a list of names, e.g. {name} = ["..."]')
                item = {k: v for k, v in item.items() if k != name}
        source, target = item.get("source"), item.get("target")
        if source not in known or target not in known:
            problems.add(
                key,
                f"source and target must be sources (configured or platforms: {', '.join(known)}); "
                f"got {source!r} -> {target!r}",
            )
            continue
        entities = tuple(item.get("entities", ENTITIES))
        unknown = [e for e in entities if e not in ENTITIES]
        if unknown:
            problems.add(f"{key}.entities", f"unknown entities {unknown}; expected some of {', '.join(ENTITIES)}")
        feeds.append(
            Feed(
                source,
                target,
                entities,
                tuple(item["channels"]) if "channels" in item else None,
                tuple(item["locations"]) if "locations" in item else None,
            )
        )
    return feeds


def parse_engine(table: dict[str, Any], base: Path, problem: Callable[[str, str], None]) -> EngineSettings:
    """[engine] (or the same options on the command line), each problem given to `problem(key, text)`."""
    try:
        executor = Executor(table.get("executor", "local"), table.get("workers", 1), table.get("scheduler"))
    except UserError as exc:
        problem("engine", str(exc))
        executor = Executor()
    partitions = table.get("partitions")
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1):
        problem("engine.partitions", f"expected a positive whole number, got {partitions!r}")
        partitions = None
    shared = table.get("shared_dir")
    shared_dir: Path | str | None = None
    if shared is not None and not isinstance(shared, str):
        problem("engine.shared_dir", f"expected a folder every worker sees at the same path, got {shared!r}")
    elif shared is not None and is_object_url(shared):
        shared_dir = shared.rstrip("/")
    elif shared is not None and "://" in shared and not shared.startswith("file://"):
        problem(
            "engine.shared_dir",
            f"a folder every worker mounts at the same path (or file://), or s3:// or gs://, not {shared!r}",
        )
    elif shared is not None:
        shared_dir = base / Path(shared.removeprefix("file://")).expanduser()
    return EngineSettings(executor, partitions, shared_dir)


def _parse_audit(table: dict[str, Any], known: tuple[str, ...], problems: _Problems) -> AuditSettings:
    fail_on = table.get("fail_on", "high")
    if fail_on not in SEVERITIES:
        problems.add("audit.fail_on", f"{fail_on!r} is not a severity; expected one of {', '.join(SEVERITIES)}")
    marketplaces = tuple(table.get("marketplaces", ()))
    for name in marketplaces:
        if name not in known:
            problems.add("audit.marketplaces", f"{name!r} is not a source; expected some of {', '.join(known)}")
    return AuditSettings(fail_on=fail_on, marketplaces=marketplaces)
