"""Codes no mapping names: the records behind them drop out of every comparison, or never reach a target.

One finding per code, naming how many records carry it and one of them: the fix is one line of
configuration, not one repair per record.
"""

from __future__ import annotations

import polars as pl

from driftwatch.config import Feed
from driftwatch.engine.context import CannotRun, Scope
from driftwatch.engine.rules._base import findings_from, rule
from driftwatch.engine.views import ALL_LOCATIONS, carrier_codes, raw_statuses, with_canonical_status
from driftwatch.statuses import ORDERS, PRODUCTS, RETURNS

# entity -> (vocabulary, the record's key, the finding's field, where its mapping goes)
_STATUSES = {
    "orders": (ORDERS, "order_id", "status", "[statuses.{}]"),
    "returns": (RETURNS, "return_id", "return_status", "[statuses.{}.returns]"),
    "products": (PRODUCTS, "sku", "product_status", "[statuses.{}.products]"),
}


@rule
def unmapped_codes(scope: Scope) -> pl.LazyFrame | None:
    """Raw statuses (of orders, returns, products) that no mapping names, ERP carrier codes a target does not
    know, ERP locations that no feed lists, and feed locations the ERP does not know."""
    candidates = [
        *(_unmapped_statuses(scope, source, entity) for source in scope.cfg.known_sources() for entity in _STATUSES),
        *(_unmapped_carriers(scope, feed) for feed in scope.cfg.feeds),
        *(_unfed_locations(scope, source) for source in _sources_with_located_feeds(scope)),
        *(_feed_locations_unknown(scope, feed) for feed in scope.cfg.feeds),
    ]
    parts = [part for part in candidates if part is not None]
    return pl.concat(parts) if parts else None


def _unmapped_statuses(scope: Scope, source: str, entity: str) -> pl.LazyFrame | None:
    vocabulary, record_key, field, table = _STATUSES[entity]
    try:
        frame = _per_source(scope, source).frame(source, entity, needs=("status",))
    except CannotRun as reason:  # one source without statuses leaves the others to check
        scope.ctx.note(reason.note(scope.check.id, source))
        return None
    if frame is None:
        return None
    mapping = scope.cfg.status_map(source, vocabulary)
    unmapped = (
        with_canonical_status(frame, mapping, raw_statuses(scope, source, entity), vocabulary)
        .filter(pl.col("status").is_not_null() & pl.col("status_canonical").is_null())
        .group_by("status")
        .agg(pl.len().alias("records"), pl.col(record_key).min().alias("example"))
    )
    return findings_from(
        _per_source(scope, source),
        unmapped,
        entity=entity,
        key=pl.col("status"),
        field=field,
        expected=pl.lit("a mapped status"),
        actual=pl.col("status"),
        severity=scope.option("severity"),
        message=pl.format(
            "{} {} of {} (e.g. {}) carry raw status '{}' that no mapping names; add it to {}",
            "records",
            pl.lit(entity.rstrip("s") + "(s)"),
            pl.lit(source),
            "example",
            "status",
            pl.lit(table.format(source)),
        ),
    )


def _unmapped_carriers(scope: Scope, feed: Feed) -> pl.LazyFrame | None:
    """ERP carrier codes the target never uses, after the target's carrier_map: the target rejects (or
    mislabels) the tracking of every shipment sent with one, so the code is the finding, not each shipment."""
    if "shipments" not in feed.entities:
        return None
    feed_scope = Scope(scope.ctx, scope.check, feed.source, feed.target, feed, scope.options)
    try:
        codes = carrier_codes(feed_scope)
    except CannotRun as reason:  # what the feed lacks leaves the other feeds' codes to check
        scope.ctx.note(reason.note(scope.check.id, feed.target))
        return None
    if codes is None:
        return None
    unknown = codes.filter(~pl.col("known"))
    return findings_from(
        feed_scope,
        unknown.lazy(),
        entity="shipments",
        key=pl.col("carrier"),
        field="carrier",
        expected=pl.lit("a carrier code the target uses"),
        actual=pl.col("sent_as"),
        severity=scope.option("severity"),
        message=pl.format(
            "ERP carrier '{}' on {} shipment(s) of {} orders (e.g. order {}: {} missing there, {} under another "
            "carrier) is sent as '{}', a code {} never uses ({}); map it in [sources.{}] carrier_map",
            "carrier",
            "shipments",
            pl.lit(feed.target),
            "example",
            "missing",
            "relabelled",
            "sent_as",
            pl.lit(feed.target),
            "target_codes",
            pl.lit(feed.target),
        ),
    )


def _sources_with_located_feeds(scope: Scope) -> list[str]:
    """Systems of record whose every stock feed names the locations it sells from: only then can a location
    feed no target (a feed that names none takes stock from every location)."""
    stock_feeds = [feed for feed in scope.cfg.feeds if "inventory" in feed.entities]
    sources = {feed.source for feed in stock_feeds}
    return sorted(s for s in sources if all(f.locations is not None for f in stock_feeds if f.source == s))


def _unfed_locations(scope: Scope, source: str) -> pl.LazyFrame | None:
    """ERP locations holding stock that no feed lists (and the check's `unfed_locations` does not name): their
    stock reaches no target, which is either a missing feed location or a location code renamed in the ERP."""
    inventory = _per_source(scope, source).frame(source, "inventory")
    if inventory is None:
        return None
    listed = {
        location
        for feed in scope.cfg.feeds
        if feed.source == source and "inventory" in feed.entities
        for location in feed.locations or ()
    }
    known = [*listed, *scope.option("unfed_locations"), ALL_LOCATIONS]
    unknown = (
        inventory.filter(pl.col("location").is_not_null() & ~pl.col("location").is_in(known))
        .group_by("location")
        .agg(pl.len().alias("skus"), pl.col("sku").min().alias("example"))
    )
    return findings_from(
        _per_source(scope, source),
        unknown,
        entity="inventory",
        key=pl.col("location"),
        field="location",
        expected=pl.lit("a location a feed lists"),
        actual=pl.col("location"),
        severity=scope.option("severity"),
        message=pl.format(
            "ERP location '{}' holds stock of {} SKU(s) (e.g. {}) but no [[feeds]] lists it, so that stock reaches "
            "no target; add it to a feed's locations, or to unmapped_codes' unfed_locations if it feeds none",
            "location",
            "skus",
            "example",
        ),
    )


def _feed_locations_unknown(scope: Scope, feed: Feed) -> pl.LazyFrame | None:
    """Locations a stock feed lists that the ERP's inventory never names (a code renamed in the ERP, or
    mistyped in the feed): the target would be compared with no stock at all from them."""
    if feed.locations is None or "inventory" not in feed.entities:
        return None
    if not scope.ctx.has(feed.source, "inventory", "location"):
        return None
    held = set(scope.ctx.distinct(feed.source, "inventory", "location").collect()["location"].drop_nulls())
    unknown = [location for location in feed.locations if location not in held]
    shown = ", ".join(sorted(held)[:6]) + (", ..." if len(held) > 6 else "")
    return findings_from(
        Scope(scope.ctx, scope.check, feed.source, feed.target, feed, scope.options),
        pl.LazyFrame({"location": unknown}, schema={"location": pl.String}),
        entity="inventory",
        key=pl.col("location"),
        field="location",
        expected=pl.lit("a location the ERP holds stock in"),
        actual=pl.col("location"),
        severity=scope.option("severity"),
        message=pl.format(
            "the feed to {} takes stock from location '{}', which the ERP's inventory never names ({}); "
            "correct the feed's locations",
            pl.lit(feed.target),
            "location",
            pl.lit(shown or "none at all"),
        ),
    )


def _per_source(scope: Scope, source: str) -> Scope:
    """A finding about a source's own codes: the source is its own target."""
    return Scope(scope.ctx, scope.check, source, source, None, scope.options)
