"""The platforms driftwatch knows, each registered once with its connector, push side and traits.

A *platform* is a kind of system (Mirakl, Klaviyo, BlueCherry); a *source* is one configured instance of
it (`[sources.mirakl_fr] kind = "mirakl"`). Everything that depends on the platform (which connector
pulls it, which pusher repairs it, whether it is a system of record or a marketplace, its default status
vocabulary) is asked here, through the source's kind, never by comparing a source's name.

Adding a platform is one folder under `driftwatch/connectors/` whose `__init__.py` holds its `PLATFORM`,
and that `PLATFORM` in `driftwatch.application.BUILTIN_PLATFORMS` (this registry knows nothing of the
connectors that fill it). A package
outside driftwatch registers its own through the `driftwatch.platforms` entry-point group, naming a
`Platform` object (or a function returning one):

    # pyproject.toml of the plugin package
    [project.entry-points."driftwatch.platforms"]
    shopify = "driftwatch_shopify:PLATFORM"
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from driftwatch.errors import UserError
from driftwatch.statuses import Vocabulary

ENTRY_POINT_GROUP = "driftwatch.platforms"


@dataclass(frozen=True)
class ExportHeaders:
    """The headers a platform's own export files carry, read by file drops of its sources. A platform
    without them (the default) drops files with canonical column names."""

    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # per entity: header -> column
    # per entity: a header that is another report's name for a field, read as that name first
    variants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unused: tuple[str, ...] = ()  # headers its exports carry that nothing compares (dropped with a note)
    sku_template: str | None = None  # how a SKU is composed from other headers when no header is the SKU

    def known(self) -> list[str]:
        """Every header some export of the platform is known to carry."""
        mapped = [h for table in self.columns.values() for h in table]
        return [*mapped, *(h for table in self.variants.values() for h in table), *self.unused]


@dataclass(frozen=True)
class Platform:
    """One platform and its traits. `connector` and `pusher` are "module:attribute" references, imported
    on first use, so a platform whose optional dependencies are missing never breaks another."""

    name: str
    connector: str  # the class pulling it into canonical frames (see connectors.base.Connector)
    pusher: str | None = None  # the class executing repair actions on it (see driftwatch.push.Pusher)
    system_of_record: bool = False  # it holds the truth that feeds the targets
    marketplace: bool = False  # its orders are keyed by its own order id and come from its own channel
    stock_per_location: bool = False  # False: one stock figure per SKU (location "*")
    # its raw order, return and product statuses -> canonical, and the order stages it cannot tell apart
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    export_headers: ExportHeaders = field(default_factory=ExportHeaders)  # its export files' own headers

    def load_connector(self) -> type:
        return _load(self.connector, self.name)

    def load_pusher(self) -> type:
        if self.pusher is None:
            raise UserError(f"{self.name}: driftwatch cannot push repairs to this platform")
        return _load(self.pusher, self.name)

    def settings(self) -> frozenset[str]:
        """The `[sources.<name>]` keys a source of this platform may set: the common ones, and those its
        connector and pusher declare (`settings_keys`), next to the code that reads them."""
        declared = getattr(self.load_connector(), "settings_keys", frozenset())
        if self.pusher is not None:
            declared |= getattr(self.load_pusher(), "settings_keys", frozenset())
        return COMMON_SETTINGS | declared


def _load(reference: str, platform: str) -> Any:
    module, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{platform}: cannot load {reference} ({exc})") from None


# Settings every source may carry, whatever its platform (read by pulls, file drops and the HTTP layer, and
# by the audit: `carrier_map` turns ERP carrier codes into the codes this target knows). `full_every` and
# `overlap` schedule incremental pulls (driftwatch.incremental).
COMMON_SETTINGS = frozenset(
    {
        "kind",
        "timezone",
        "entities",
        "column_map",
        "ignore_columns",
        "sku_template",
        "checkpoint_rows",
        "timeout",
        "max_attempts",
        "backoff_initial",
        "backoff_max",
        "max_retry_after",
        "carrier_map",
        "full_every",
        "overlap",
    }
)

_registry: dict[str, Platform] = {}
_plugins_loaded = False


def register(platform: Platform) -> Platform:
    """Add a platform (a built-in or a plugin's); a second platform under one name is refused."""
    known = _registry.get(platform.name)
    if known is not None and known != platform:
        raise UserError(f"platform {platform.name!r} is registered twice ({known.connector}, {platform.connector})")
    _registry[platform.name] = platform
    return platform


def unregister(name: str) -> None:
    """Remove a platform (a test's toy platform, once the test is done)."""
    _registry.pop(name, None)


def get(name: str) -> Platform:
    """The platform named `name`; a UserError listing the known ones otherwise."""
    _load_plugins()
    try:
        return _registry[name]
    except KeyError:
        raise UserError(f"unknown platform {name!r}; expected one of {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    _load_plugins()
    return tuple(_registry)


def is_platform(name: str) -> bool:
    _load_plugins()
    return name in _registry


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must say which one it is, not crash with its traceback
            raise UserError(f"plugin platform {point.name!r} ({point.value}) cannot be loaded: {exc}") from None
        platform = loaded() if callable(loaded) else loaded  # a Platform, or a function returning one
        if not isinstance(platform, Platform):
            raise UserError(f"plugin platform {point.name!r} ({point.value}) is not a driftwatch Platform")
        register(platform)
    _plugins_loaded = True  # only once every plugin loaded: a broken one is reported on every lookup


def reload_plugins() -> None:
    """Read the entry points again (after a plugin was installed in this process, e.g. by a test)."""
    global _plugins_loaded
    _plugins_loaded = False
    _load_plugins()
