"""Derived figures and the named views that check files compare.

The derived figures are pinned by the design so that every part agrees on them:
- available-to-sell = Σ over the feeding locations of max(0, on_hand − allocated − safety_stock); a pack's
  is the minimum over its components of floor(component ATS / qty); on_order never counts;
- net lifetime value = Σ total of the customer's orders not cancelled − Σ amount of their refunded returns
  (canonical return state `refunded`), with order count and last order date over the same orders;
- canonical status = the raw status through the source's mapping (null when unmapped), for orders,
  returns and products alike.

A view takes a Scope (one check on one feed) and returns a lazy frame, or None when a side was not
snapshotted: a source that was not snapshotted for an entity is not compared on it. A view declares the
columns it cannot do without when it reads a snapshot (`scope.source_frame(entity, needs=...)`), and what
an absent column counts as (`defaults=...`); any other column is read only where the snapshot holds it,
so a field one side does not hold drops out of the view and is not compared.

The time rule: a side is only expected to hold what the other side's snapshot could have known. A view
marks each record with `_late` (it came into being after the other side was captured: an order placed
after a platform's snapshot, a customer changed since) and `_changed` (its values were set after the other
side was captured); the comparison expects no `_late` record on the other side and compares no field of a
`_changed` one. The times are events (placed, processed, consent recorded, a record's update): an ERP's
stock and catalogue exports date their rows with the export's day ("As Of", "Last Modified"), which says
nothing of when a figure changed, so stock and catalogue are bounded by the platform's own times only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.entities import MONEY, TIMESTAMP, WHOLE_STOCK
from driftwatch.statuses import ORDERS, PRODUCTS, RETURNS, map_statuses

View = Callable[[Scope], pl.LazyFrame | None]
VIEWS: dict[str, View] = {}
# Fields a view computes from other columns: when one is missing, the view has said why in a note.
DERIVED: dict[str, tuple[str, ...]] = {}

ALL_LOCATIONS = WHOLE_STOCK
LATE, CHANGED = "_late", "_changed"
# What the order checks read of an order; derived order frames keep only these.
_ORDER_COLUMNS = ("order_ref", "key", "status_canonical", "total", "currency", "placed_at", "updated_at")
# When two events of one order share a timestamp, the later stage of the lifecycle wins.
_EVENT_ORDER = {"order_placed": 0, "order_fulfilled": 1, "order_cancelled": 2, "order_refunded": 3}


def view(fn: View | None = None, *, derives: tuple[str, ...] = ()) -> View | Callable[[View], View]:
    """Register a view a check file may name; `derives` lists the fields it computes."""

    def register(fn: View) -> View:
        VIEWS[fn.__name__] = fn
        DERIVED[fn.__name__] = derives
        return fn

    return register(fn) if fn is not None else register


# -- derived figures ----------------------------------------------------------------------------------


def zero_if_null(col: str) -> pl.Expr:
    return pl.col(col).fill_null(0)


def free_stock() -> pl.Expr:
    """max(0, on_hand − allocated − safety_stock) of one stock row: a location short of stock sells
    nothing, it does not take from the others. on_order never counts."""
    return pl.max_horizontal(
        pl.lit(0), zero_if_null("on_hand") - zero_if_null("allocated") - zero_if_null("safety_stock")
    )


def available_to_sell(
    inventory: pl.LazyFrame,
    packs: pl.LazyFrame | None = None,
    *,
    locations: tuple[str, ...] | None = None,
    by_location: bool = False,
) -> pl.LazyFrame:
    """ATS per SKU (and per location when `by_location`): columns sku, [location], available."""
    keys = ["sku", "location"] if by_location else ["sku"]
    if locations is not None:
        inventory = inventory.filter(pl.col("location").is_in(locations))
    free = free_stock()
    if by_location:
        # (sku, location) is the inventory's key, unique in every stored snapshot: nothing to add up.
        base = inventory.select(*keys, free.cast(pl.Int64).alias("available"))
    else:
        base = inventory.group_by(keys).agg(free.sum().cast(pl.Int64).alias("available"))
    if packs is None:
        return base
    return pl.concat(
        [
            base.join(packs.select("pack_sku").unique(), left_on="sku", right_on="pack_sku", how="anti"),
            _pack_ats(base, packs, keys),
        ],
        how="diagonal_relaxed",
    )


def _pack_ats(component_ats: pl.LazyFrame, packs: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    components = packs.group_by("pack_sku").agg(pl.len().alias("needed"))
    per_component = packs.join(component_ats, left_on="component_sku", right_on="sku", how="inner").with_columns(
        (pl.col("available") // pl.col("qty")).alias("packs")
    )
    group = ["pack_sku", *keys[1:]]
    # A component with no stock row at a location leaves the pack unbuildable there.
    found = per_component.group_by(group).agg(pl.col("packs").min(), pl.len().alias("found"))
    if len(keys) == 1:
        found = components.join(found, on="pack_sku", how="left").with_columns(pl.col("needed").alias("_n"))
    else:
        found = found.join(components, on="pack_sku").with_columns(pl.col("needed").alias("_n"))
    available = pl.when(pl.col("found").fill_null(0) < pl.col("_n")).then(0).otherwise(pl.col("packs"))
    return found.select(pl.col("pack_sku").alias("sku"), *keys[1:], available.cast(pl.Int64).alias("available"))


def with_canonical_status(
    frame: pl.LazyFrame,
    mapping: dict[str, str],
    raw_values: pl.LazyFrame | None = None,
    vocabulary: str = ORDERS,
) -> pl.LazyFrame:
    """Adds `status_canonical` (null where the raw status has no mapping: that is an unmapped code), for
    orders, returns or products (`vocabulary`). `raw_values` (a frame whose `status` column holds the
    distinct raw values) spares a pass over the frame."""
    if "status" not in frame.collect_schema().names():
        return frame.with_columns(pl.lit(None, pl.String).alias("status_canonical"))
    values = frame if raw_values is None else raw_values
    return frame.with_columns(map_statuses("status", mapping, values, vocabulary).alias("status_canonical"))


def net_lifetime_value(
    orders: pl.LazyFrame,
    returns: pl.LazyFrame | None,
    mapping: dict[str, str],
    *,
    return_map: dict[str, str] | None = None,
    raw_values: pl.LazyFrame | None = None,
    raw_return_values: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Per customer_id: lifetime_value, order_count, last_order_at, net of cancellations and refunds, and
    the currency of that value (null when the orders have none, or more than one).

    Each figure only where the orders hold what it is made of (no `total`: no lifetime_value); with the
    orders' `updated_at`, `cancelled_at` is when the customer's latest cancellation was recorded. `unmapped`
    marks a customer with an order or a return whose status no mapping names: whether it was cancelled or
    refunded cannot be told, so the figures are not known (the code is unmapped_codes' finding)."""
    names = orders.collect_schema().names()
    orders = with_canonical_status(orders, mapping, raw_values)
    cancelled = pl.col("status_canonical").eq_missing("cancelled")
    unmapped = pl.col("status").is_not_null() & pl.col("status_canonical").is_null()
    figures = [pl.len().cast(pl.Int64).alias("order_count")]
    figures += [pl.col("total").sum().alias("gross")] if "total" in names else []
    figures += [pl.col("placed_at").max().alias("last_order_at")] if "placed_at" in names else []
    currency = pl.col("currency").drop_nulls().unique() if "currency" in names else pl.lit(None, pl.String)
    figures.append(pl.when(currency.len() == 1).then(currency.first()).alias("currency"))
    value = orders.filter(~cancelled).group_by("customer_id").agg(figures)
    if "updated_at" in names:
        cancels = orders.filter(cancelled).group_by("customer_id").agg(pl.col("updated_at").max().alias("cancelled_at"))
        value = value.join(cancels, on="customer_id", how="full", coalesce=True)
    unknown = [orders.filter(unmapped).select("customer_id")]
    if returns is not None and "total" in names:
        returns = with_canonical_status(returns, return_map or {}, raw_return_values, RETURNS).join(
            orders.select("order_id", "customer_id"), on="order_id"
        )
        refunds = (
            returns.filter(pl.col("status_canonical") == "refunded")
            .group_by("customer_id")
            .agg(pl.col("amount").sum().alias("refunded"))
        )
        value = value.join(refunds, on="customer_id", how="full", coalesce=True)
        unknown.append(returns.filter(unmapped).select("customer_id"))
    else:
        value = value.with_columns(pl.lit(0, MONEY).alias("refunded"))
    unsure = pl.concat(unknown).unique().with_columns(pl.lit(True).alias("unmapped"))
    value = value.join(unsure, on="customer_id", how="full", coalesce=True)
    shaped = [pl.col("order_count").fill_null(0), pl.col("unmapped").fill_null(False)]
    if "total" in names:
        shaped.insert(0, (pl.col("gross").fill_null(0) - pl.col("refunded").fill_null(0)).alias("lifetime_value"))
    value_names = value.collect_schema().names()
    shaped += [pl.col(c) for c in ("last_order_at", "cancelled_at", "currency") if c in value_names]
    return value.select("customer_id", *shaped)


def orders_from_events(events: pl.LazyFrame) -> pl.LazyFrame:
    """Orders of a platform that keeps events, not orders. The status is the latest lifecycle event's
    metric (placed, fulfilled, cancelled); refund events make it `order_refunded` only once they add up to
    the whole order, since a partial refund leaves the order what it was."""
    placed, refunded = pl.col("metric") == "order_placed", pl.col("metric") == "order_refunded"
    stage = pl.col("metric").replace_strict(_EVENT_ORDER, default=0, return_dtype=pl.Int64)
    # Latest first by time, then by lifecycle stage: one sortable number per event, refunds left out.
    rank = pl.when(~refunded).then(pl.col("occurred_at").dt.epoch("us") * 4 + stage)
    orders = (
        events.filter(pl.col("order_id").is_not_null())
        .with_columns(rank.alias("_rank"))
        .group_by("order_id")
        .agg(
            pl.col("metric").get(pl.col("_rank").arg_max()).alias("status"),
            pl.col("value").filter(placed).first().alias("total"),
            pl.col("value").filter(refunded).sum().alias("_refunded"),
            refunded.any().alias("_any_refund"),
            pl.col("occurred_at").filter(placed).min().alias("placed_at"),
            pl.col("occurred_at").max().alias("updated_at"),
            pl.col("email").drop_nulls().first().alias("email"),
        )
    )
    whole = pl.col("_any_refund") & (pl.col("_refunded") >= pl.col("total"))
    return orders.with_columns(
        pl.when(whole).then(pl.lit("order_refunded")).otherwise(pl.col("status")).alias("status")
    ).drop("_refunded", "_any_refund")


# -- helpers shared by views and rules ----------------------------------------------------------------


def present(frame: pl.LazyFrame, columns: list[str]) -> list[str]:
    names = frame.collect_schema().names()
    return [c for c in columns if c in names]


def captured_at(scope: Scope, source: str | None, *entities: str) -> datetime | None:
    """When a source's snapshot of the first of `entities` it was snapshotted for was captured."""
    for entity in entities:
        if source is not None and (instant := scope.ctx.captured_at(source, entity)) is not None:
            return instant
    return None


def after(frame: pl.LazyFrame, columns: list[str], instant: datetime | None) -> pl.Expr:
    """Whether the latest of a record's `columns` (those the frame has) is past `instant`: what the record
    says could not be known to a snapshot captured then."""
    held = present(frame, columns)
    if instant is None or not held:
        return pl.lit(False)
    return (pl.max_horizontal(held) > instant).fill_null(False)


def with_time_bounds(
    frame: pl.LazyFrame, instant: datetime | None, *, since: list[str], changed: list[str]
) -> pl.LazyFrame:
    """Marks `_late` (the record began after `instant`, the other side's capture) and `_changed` (its values
    were set after it). Without a time of creation, a record changed since is late too: it may be new."""
    late = after(frame, since, instant) if present(frame, since) else after(frame, changed, instant)
    return frame.with_columns(late.alias(LATE), after(frame, changed, instant).alias(CHANGED))


def target_locations(scope: Scope) -> bool:
    """Whether the target keeps stock per location (else it publishes one figure, location "*")."""
    if scope.target_frame("inventory") is None:
        return False
    locations = scope.ctx.distinct(scope.target, "inventory", "location").collect()["location"]
    return bool((locations != ALL_LOCATIONS).any())


def raw_statuses(scope: Scope, source: str, entity: str = "orders") -> pl.LazyFrame:
    """The distinct raw statuses of a source's orders, returns or products (for orders of a platform keeping
    events: its event metrics)."""
    if scope.ctx.has(source, entity, "status"):
        return scope.ctx.distinct(source, entity, "status")
    if entity == "orders" and scope.ctx.has(source, "events"):
        return scope.ctx.distinct(source, "events", "metric").rename({"metric": "status"})
    return pl.LazyFrame(schema={"status": pl.String})


def source_returns(scope: Scope, source: str | None = None, *, needs: tuple[str, ...] = ()) -> pl.LazyFrame | None:
    """A source's returns (default: the system of record's) with `status_canonical`, the return state."""
    source = source or scope.source
    returns = scope.frame(source, "returns", needs=needs) if source else None
    if returns is None:
        return None
    mapping = scope.cfg.status_map(source, RETURNS)
    return with_canonical_status(returns, mapping, raw_statuses(scope, source, "returns"), RETURNS)


def _with_product_status(scope: Scope, source: str, products: pl.LazyFrame) -> pl.LazyFrame:
    """Products with `status` in canonical words (null where the source's word has no mapping)."""
    if "status" not in products.collect_schema().names():
        return products
    mapping = scope.cfg.status_map(source, PRODUCTS)
    raw = raw_statuses(scope, source, "products")
    return products.with_columns(map_statuses("status", mapping, raw, PRODUCTS).alias("status"))


def source_orders(scope: Scope) -> pl.LazyFrame | None:
    """The system of record's orders that the target is meant to receive, with `order_ref` to join on and
    `status_canonical` where the orders hold a status."""
    key = ("source_orders", scope.source, scope.channels(), scope.marketplace)
    stored = scope.ctx.materialize(key, lambda: _source_orders(scope))
    return None if stored is None else _with_refs(stored, _ref(scope), "order_id", [*_ORDER_COLUMNS, "order_id"])


def _ref(scope: Scope) -> str:
    """The column orders are matched on: a marketplace's own order id, which the ERP order carries too."""
    return "external_id" if scope.marketplace else "order_id"


def _with_refs(orders: pl.LazyFrame, ref: str, key: str, columns: list[str]) -> pl.LazyFrame:
    """A stored frame of orders with `order_ref` (the `ref` column) and `key` added as it is read.

    The ids are written to scratch once: `order_ref` and `key` are mostly the same ids again, and three copies
    of 10M ids cost more to write and read back than the rest of the order (the derived frames are written
    once and read a few times)."""
    orders = orders.with_columns(pl.col(ref).alias("order_ref"), pl.col(key).alias("key"))
    return orders.select(present(orders, columns))


def _source_orders(scope: Scope) -> pl.LazyFrame | None:
    channels = scope.channels()
    ref = _ref(scope)
    orders = scope.source_frame("orders", needs=(ref, "channel") if channels is not None else (ref,))
    if orders is None:
        return None
    if channels is not None:
        orders = orders.filter(pl.col("channel").is_in(channels))
    elif scope.holds(scope.source, "orders", "channel", instead="every order counts as meant for this target"):
        marketplace_channels = scope.cfg.marketplace_channels()
        orders = orders.filter(~pl.col("channel").is_in(marketplace_channels) | pl.col("channel").is_null())
    # Without statuses the view has no status field: the status check says so, the others need none.
    if scope.ctx.has(scope.source, "orders", "status"):
        orders = with_canonical_status(orders, scope.cfg.status_map(scope.source), raw_statuses(scope, scope.source))
    orders = orders.filter(pl.col(ref).is_not_null())
    return orders.select(present(orders, list(dict.fromkeys(["order_id", ref, *_ORDER_COLUMNS[2:]]))))


def target_orders(scope: Scope) -> pl.LazyFrame | None:
    """The target's orders (derived from its events where it keeps no orders), with `order_ref`."""
    key = ("target_orders", scope.target, scope.marketplace, scope.feeds_entity("orders"), scope.feeds_entity("events"))
    stored = scope.ctx.materialize(key, lambda: _target_orders(scope))
    return None if stored is None else _with_refs(stored, _ref(scope), _ref(scope), [*_ORDER_COLUMNS, "status"])


def _target_orders(scope: Scope) -> pl.LazyFrame | None:
    ref = _ref(scope)
    orders = scope.target_frame("orders", needs=(ref,))
    if orders is None:
        events = scope.target_frame("events", needs=("order_id", "metric", "occurred_at"))
        if events is None:
            return None
        orders = orders_from_events(events.with_columns(*_absent(events, {"value": MONEY, "email": pl.String})))
        if "value" not in events.collect_schema().names():
            orders = orders.drop("total")  # events without values: the platform holds no order totals
        with_status = True
    else:
        with_status = scope.ctx.has(scope.target, "orders", "status")  # sales data lines have none
    if with_status:
        orders = with_canonical_status(orders, scope.cfg.status_map(scope.target), raw_statuses(scope, scope.target))
    return orders.select(present(orders, [ref, *_ORDER_COLUMNS[2:], "status"]))


def _absent(frame: pl.LazyFrame, columns: dict[str, pl.DataType]) -> list[pl.Expr]:
    """Null columns for those a frame lacks, for a derivation that reads them where they exist."""
    names = frame.collect_schema().names()
    return [pl.lit(None, dtype).alias(c) for c, dtype in columns.items() if c not in names]


def order_ref_of_lines(scope: Scope, lines: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Lines with their order's `order_ref` (a marketplace's lines may carry its own order id or the ERP's)."""
    if not scope.marketplace:
        return lines.with_columns(pl.col("order_id").alias("order_ref"))
    refs = orders.select(pl.col("order_id").alias("_oid"), pl.col("external_id").alias("_ext"))
    by_ext = lines.join(refs.select("_ext").unique(), left_on="order_id", right_on="_ext", how="semi")
    by_oid = lines.join(refs.unique("_oid"), left_on="order_id", right_on="_oid", how="inner")
    return pl.concat(
        [
            by_ext.with_columns(pl.col("order_id").alias("order_ref")),
            by_oid.join(by_ext.select("order_id").unique(), on="order_id", how="anti")
            .with_columns(pl.col("_ext").alias("order_ref"))
            .drop("_ext"),
        ],
        how="diagonal_relaxed",
    )


def carrier_map(scope: Scope) -> dict[str, str]:
    """ERP carrier code -> the target's own code for it (`carrier_map` in the target's [sources] table)."""
    return dict(scope.cfg.source(scope.target).get("carrier_map", {})) if scope.target else {}


def carrier_codes(scope: Scope) -> pl.DataFrame | None:
    """Per ERP carrier code of the shipments the target should hold by its capture: the code it is sent as
    (after `carrier_map`), how many shipments carry it, one of their orders, how many of them the target
    lacks or shows under another carrier, and whether the target uses the code at all (`known`).

    The target's own shipments are the evidence of the codes it knows, so with none there is no answer
    (None). A code the target never uses is why its tracking is rejected or relabelled: unmapped_codes
    reports it once, and tracking_sync leaves its shipments alone."""
    key = ("carrier_codes", scope.source, scope.target, scope.channels(), scope.marketplace)
    return scope.ctx.memo(key, lambda: _carrier_codes(scope))


def _carrier_codes(scope: Scope) -> pl.DataFrame | None:
    copy = scope.target_frame("shipments", needs=("order_id", "tracking_number"))
    copy_orders = scope.target_frame("orders", needs=("external_id",) if scope.marketplace else ())
    shipments = scope.source_frame("shipments", needs=("order_id", "tracking_number", "shipped_at"))
    if shipments is None or copy is None or copy_orders is None:
        return None
    orders = source_orders(scope)
    if orders is None:
        return None
    if not scope.ctx.has(scope.source, "shipments", "carrier") or not scope.ctx.has(
        scope.target, "shipments", "carrier"
    ):
        return None
    used = sorted(scope.ctx.distinct(scope.target, "shipments", "carrier").collect()["carrier"].drop_nulls())
    if not used:
        return None
    captured = scope.ctx.captured_at(scope.target, "shipments")
    erp = (
        shipments.filter(
            pl.col("carrier").is_not_null()
            & pl.col("tracking_number").is_not_null()
            & (pl.col("shipped_at") <= captured)
        )
        .join(orders.select("order_id", "order_ref", "key"), on="order_id")
        .with_columns(pl.col("carrier").replace(carrier_map(scope)).alias("sent_as"))
    )
    posted = order_ref_of_lines(scope, copy, copy_orders).select(
        "order_ref", "tracking_number", pl.col("carrier").alias("posted")
    )
    shown = ", ".join(used[:6]) + (", ..." if len(used) > 6 else "")
    return (
        erp.join(posted, on=["order_ref", "tracking_number"], how="left")
        .group_by("carrier", "sent_as")
        .agg(
            pl.len().alias("shipments"),
            pl.col("key").min().alias("example"),
            pl.col("posted").is_null().sum().alias("missing"),
            pl.col("posted").ne(pl.col("sent_as")).sum().alias("relabelled"),
        )
        .with_columns(pl.col("sent_as").is_in(used).alias("known"), pl.lit(shown).alias("target_codes"))
        .sort("carrier")
        .collect()
    )


def source_customers(scope: Scope) -> pl.LazyFrame | None:
    """The system of record's customers, each with `customer_ref`: the ERP's id for it (a storefront
    stores the ERP id beside its own), which is also the finding's key."""
    require_email = scope.option("require_email")
    customers = scope.source_frame("customers", needs=("email",) if require_email else ())
    if customers is None:
        return None
    if require_email:
        customers = customers.filter(pl.col("email").is_not_null())
    names = customers.collect_schema().names()
    ref = pl.coalesce("erp_customer_id", "customer_id") if "erp_customer_id" in names else pl.col("customer_id")
    return customers.with_columns(ref.alias("customer_ref"), ref.alias("key"))


def target_profiles(scope: Scope) -> pl.LazyFrame | None:
    """Every target profile with the ERP customer it belongs to (`customer_ref`): the ERP id it stores,
    else the ERP customer with the same email. Where several ERP customers share the email, the survivor
    of a merge wins; where that leaves more than one, the profile is `ambiguous` and its customer_ref
    names them all ("C1/C2"): it is reported as such, never attached to one of them by guess."""
    profiles, truth = scope.target_frame("customers"), source_customers(scope)
    if profiles is None or truth is None:
        return None
    by_email = "profiles are matched by email"
    if not scope.holds(scope.target, "customers", "erp_customer_id", instead=by_email):
        profiles = profiles.with_columns(pl.lit(None, pl.String).alias("erp_customer_id"))
    elif _stored_ids_are_foreign(scope, profiles, truth):
        scope.note(scope.source, "customers", "degraded", "erp_customer_id", f"{scope.target} {by_email}")
        profiles = profiles.with_columns(pl.lit(None, pl.String).alias("erp_customer_id"))
    elif not _profiles_without_erp_id(scope):
        return profiles.with_columns(pl.col("erp_customer_id").alias("customer_ref"), pl.lit(False).alias("ambiguous"))
    # Profiles without the ERP id are matched by email: both sides must hold it.
    scope.target_frame("customers", needs=("email",))
    scope.source_frame("customers", needs=("email",))
    by_email = _customers_by_email(truth)
    return (
        profiles.join(by_email, on="email", how="left")
        .with_columns(
            pl.coalesce("erp_customer_id", "_by_email").alias("customer_ref"),
            (pl.col("erp_customer_id").is_null() & pl.col("_ambiguous").fill_null(False)).alias("ambiguous"),
        )
        .drop("_by_email", "_ambiguous")
        .filter(pl.col("customer_ref").is_not_null())
    )


def _stored_ids_are_foreign(scope: Scope, profiles: pl.LazyFrame, truth: pl.LazyFrame) -> bool:
    """Whether the ERP ids the profiles store belong to another system than this system of record: it holds
    no erp_customer_id (a storefront keyed by its own ids) and none of its ids is among them."""
    if scope.ctx.has(scope.source, "customers", "erp_customer_id"):
        return False

    def foreign() -> bool:
        stored = profiles.select(pl.col("erp_customer_id").drop_nulls().unique())
        return stored.join(truth.select(pl.col("customer_ref").alias("erp_customer_id")), on="erp_customer_id",
                           how="semi").select(pl.len()).collect().item() == 0  # fmt: skip

    return scope.ctx.memo(("foreign_ids", scope.source, scope.target), foreign)


def _customers_by_email(truth: pl.LazyFrame) -> pl.LazyFrame:
    """Per email: the one ERP customer it names (the survivor where the others were merged into another),
    or, when more than one remains, all of them joined with "/" and flagged `_ambiguous`."""
    merged = pl.col("merged_into").is_not_null() if "merged_into" in truth.collect_schema().names() else pl.lit(False)
    candidates = truth.filter(pl.col("email").is_not_null()).select("email", "customer_ref", merged.alias("_merged"))
    per_email = candidates.group_by("email").agg(
        pl.col("customer_ref").filter(~pl.col("_merged")).unique().sort().alias("_survivors"),
        pl.col("customer_ref").unique().sort().alias("_all"),
    )
    # Every one merged away (a merge into a customer with another email): the survivor is not here.
    remaining = pl.when(pl.col("_survivors").list.len() > 0).then("_survivors").otherwise("_all")
    return per_email.select(
        "email",
        remaining.list.join("/").alias("_by_email"),
        (remaining.list.len() > 1).alias("_ambiguous"),
    )


def _profiles_without_erp_id(scope: Scope) -> bool:
    def count() -> int:
        frame = scope.ctx.frame(scope.target, "customers")
        return frame.select(pl.col("erp_customer_id").null_count()).collect().item()

    return scope.ctx.memo(("profiles_without_erp_id", scope.target), count) > 0


# -- views named by check files ------------------------------------------------------------------------


@view
def source_ats(scope: Scope) -> pl.LazyFrame | None:
    """ERP available-to-sell as the target should publish it, with the price of what is at risk."""
    target = scope.target_frame("inventory", needs=("available",))
    if target is None:
        return None
    inventory = scope.source_frame("inventory", needs=("on_hand",), defaults={"allocated": 0, "safety_stock": 0})
    if inventory is None:
        return None
    by_location = target_locations(scope)
    locations = scope.feed.locations if scope.feed else None
    packs = scope.source_frame("pack_components", defaults={"qty": 1})
    ats = available_to_sell(inventory, packs, locations=locations, by_location=by_location)
    ats = ats.with_columns(pl.lit(True).alias("stocked"))
    products = scope.source_frame("products")
    if products is not None:
        priced = products.select(present(products, ["sku", "price", "currency"]))
        if by_location:
            ats = ats.join(priced, on="sku", how="left")
        else:
            # A SKU the ERP knows but holds no stock row for has nothing to sell, wherever it is published.
            ats = priced.join(ats, on="sku", how="left").with_columns(
                pl.col("available").fill_null(0), pl.col("stocked").fill_null(False)
            )
    return ats.with_columns(_listed_on_target(scope, pl.col("stocked")).alias("listed"))


def _listed_on_target(scope: Scope, otherwise: pl.Expr) -> pl.Expr:
    """Whether the target is meant to publish stock for the SKU: it lists the SKU in its catalogue (a SKU it
    does not list is catalogue_parity's finding, not one stock finding per location), or, for a target whose
    catalogue is not snapshotted, `otherwise`."""
    products = scope.target_frame("products")
    if products is None:
        return otherwise
    return pl.col("sku").is_in(scope.ctx.distinct(scope.target, "products", "sku").collect()["sku"].implode())


@view
def target_stock(scope: Scope) -> pl.LazyFrame | None:
    inventory = scope.target_frame("inventory", needs=("available",))
    if inventory is None:
        return None
    cols = ["sku", "location", "available"] if target_locations(scope) else ["sku", "available"]
    stock = inventory.select(*cols, *present(inventory, ["updated_at"]), _known_to_erp(scope).alias("known"))
    stock = with_time_bounds(stock, captured_at(scope, scope.source, "inventory"), since=[], changed=["updated_at"])
    return stock.drop(present(stock, ["updated_at"]))


def _known_to_erp(scope: Scope) -> pl.Expr:
    """Whether a SKU the target publishes stock for is one the ERP knows: one it does not know is
    catalogue_parity's finding wherever both catalogues are snapshotted."""
    if scope.source_frame("products") is None or scope.target_frame("products") is None:
        return pl.lit(True)
    return pl.col("sku").is_in(scope.ctx.distinct(scope.source, "products", "sku").collect()["sku"].implode())


@view
def source_stock_formula(scope: Scope) -> pl.LazyFrame | None:
    """What the ERP should publish as available at each location: max(0, on_hand − allocated −
    safety_stock), without on_order. Clamped at 0 like available-to-sell: a location short of stock
    publishes 0, not a negative figure."""
    inventory = scope.source_frame(
        "inventory", needs=("on_hand", "available"), defaults={"allocated": 0, "safety_stock": 0, "on_order": 0}
    )
    if inventory is None:
        return None
    return inventory.select(
        "sku", "location", free_stock().alias("available"), zero_if_null("on_order").alias("on_order")
    )


@view
def source_stock_published(scope: Scope) -> pl.LazyFrame | None:
    inventory = scope.source_frame("inventory", needs=("available",))
    return None if inventory is None else inventory.select("sku", "location", "available")


@view
def source_products(scope: Scope) -> pl.LazyFrame | None:
    products = scope.source_frame("products")
    if products is None or scope.target_frame("products") is None:
        return None
    products = products.select(present(products, ["sku", "status", "price", "currency", "name"]))
    products = _with_product_status(scope, scope.source, products)
    # Meant to be listed: active, or without any status (an ERP that keeps none); an unmapped status is
    # unmapped_codes' finding, not one per SKU.
    active = pl.col("status") == "active" if "status" in products.collect_schema().names() else pl.lit(True)
    return products.with_columns(active.fill_null(False).alias("active"))


@view
def target_products(scope: Scope) -> pl.LazyFrame | None:
    products = scope.target_frame("products")
    if products is None:
        return None
    products = products.select(present(products, ["sku", "status", "price", "currency", "updated_at"]))
    # A target listing changed after the ERP's capture may already carry what the ERP changed since.
    products = products.with_columns(
        after(products, ["updated_at"], captured_at(scope, scope.source, "products")).alias(CHANGED)
    )
    return _with_product_status(scope, scope.target, products.drop(present(products, ["updated_at"])))


def _target_orders_captured(scope: Scope) -> datetime | None:
    entity = "orders" if scope.target_frame("orders") is not None else "events"
    return captured_at(scope, scope.target, entity)


@view
def source_order_headers(scope: Scope) -> pl.LazyFrame | None:
    if target_orders(scope) is None:
        return None
    orders = source_orders(scope)
    if orders is None:
        return None
    orders = with_time_bounds(orders, _target_orders_captured(scope), since=["placed_at"], changed=["updated_at"])
    status = (
        [pl.col("status_canonical").alias("status")] if "status_canonical" in orders.collect_schema().names() else []
    )
    return orders.select(
        "order_ref", "key", *status, *present(orders, ["total", "currency", "placed_at"]), LATE, CHANGED
    )


@view
def target_order_headers(scope: Scope) -> pl.LazyFrame | None:
    orders = target_orders(scope)
    if orders is None:
        return None
    names = orders.collect_schema().names()
    status = (
        [pl.col("status_canonical").alias("status"), pl.col("status").alias("status_raw")] if "status" in names else []
    )
    captured = _target_orders_captured(scope)
    if "placed_at" not in names and _mentions(scope, "age_hours"):
        scope.note(scope.target, "orders", "not_compared", "placed_at", "the age of an order still placed")
    if "total" not in names and scope.target_frame("orders") is None and _mentions(scope, "total"):
        scope.note(scope.target, "events", "not_compared", "value", "the order total")
    placed = pl.col("placed_at") if "placed_at" in names else pl.lit(None, TIMESTAMP)
    age = ((pl.lit(captured) - placed).dt.total_minutes() / 60).alias("age_hours")
    orders = with_time_bounds(
        orders, captured_at(scope, scope.source, "orders"), since=["placed_at"], changed=["updated_at"]
    )
    return orders.select(*present(orders, ["order_ref", "key", "total", "currency"]), *status, age, LATE, CHANGED)


def _lines_of_common_orders(scope: Scope) -> tuple[pl.LazyFrame, pl.LazyFrame] | None:
    """Both sides' lines, only for orders both sides hold: a missing order is order_presence's finding,
    not one finding per line. A line is `_changed` when its order changed on either side after the other
    side's capture."""
    truth, copy = source_orders(scope), target_orders(scope)
    lines, target_lines = scope.source_frame("order_lines"), scope.target_frame("order_lines")
    if truth is None or copy is None or lines is None or target_lines is None:
        return None

    def common_orders() -> pl.LazyFrame:
        theirs = after(truth, ["updated_at"], _target_orders_captured(scope))
        ours = after(copy, ["updated_at"], captured_at(scope, scope.source, "orders"))
        # Stored with the ERP's order number once: the key is that number, and so is order_ref off a marketplace.
        refs = ["order_id", "order_ref"] if scope.marketplace else ["order_id"]
        return (
            truth.select(*refs, theirs.alias("_truth_changed"))
            .join(copy.select("order_ref", ours.alias("_copy_changed")).unique("order_ref"),
                  left_on=refs[-1], right_on="order_ref")
            .select(*refs, (pl.col("_truth_changed") | pl.col("_copy_changed")).alias(CHANGED))
        )  # fmt: skip

    stored = scope.ctx.materialize(
        ("common_orders", scope.source, scope.target, scope.channels(), scope.marketplace), common_orders
    )
    ref = "order_ref" if scope.marketplace else "order_id"
    common = _with_refs(stored, ref, "order_id", ["order_id", "order_ref", "key", CHANGED])
    if scope.marketplace:
        expected = lines.join(common, on="order_id")
    else:  # order_ref and key are the ERP order number itself
        expected = lines.join(common.select("order_id", CHANGED), on="order_id").with_columns(
            pl.col("order_id").alias("order_ref"), pl.col("order_id").alias("key")
        )
    actual = order_ref_of_lines(scope, target_lines, scope.target_frame("orders")).join(
        common.select("order_ref", "key", CHANGED), on="order_ref"
    )
    return expected, actual


@view
def source_order_lines(scope: Scope) -> pl.LazyFrame | None:
    both = _lines_of_common_orders(scope)
    return None if both is None else both[0]


@view
def target_order_lines(scope: Scope) -> pl.LazyFrame | None:
    both = _lines_of_common_orders(scope)
    return None if both is None else both[1]


@view
def source_customer_master(scope: Scope) -> pl.LazyFrame | None:
    """The ERP's customers; `ambiguous` where a target profile's email names this one among others."""
    customers, profiles = source_customers(scope), target_profiles(scope)
    if customers is None or profiles is None:
        return None
    shared_email = (
        target_customer_master(scope)
        .filter(pl.col("ambiguous"))
        .select(pl.col("customer_ref").str.split("/").explode().alias("customer_ref"))
    )
    customers = customers.with_columns(
        pl.lit(1, pl.Int64).alias("profiles"),
        pl.col("customer_ref").is_in(shared_email.collect()["customer_ref"].implode()).alias("ambiguous"),
    )
    captured = captured_at(scope, scope.target, "customers")
    customers = with_time_bounds(customers, captured, since=[], changed=["updated_at", "consent_updated_at"])
    return customers.drop(present(customers, ["updated_at", "consent_updated_at"]))


@view
def target_customer_master(scope: Scope) -> pl.LazyFrame | None:
    """One row per ERP customer: the most recently updated profile, how many profiles there are, and
    whether any of them is subscribed (one subscribed duplicate is enough to mail an opted-out person)."""
    key = (
        "customer_master",
        scope.source,
        scope.target,
        scope.feeds_entity("customers"),
        scope.option("require_email"),
    )
    master = scope.ctx.materialize(key, lambda: _customer_master(scope))
    if master is None:
        return None
    # The key is the ERP customer itself: added as the scratch file is read, not written twice.
    master = master.with_columns(pl.col("customer_ref").alias("key"))
    if _mentions(scope, "merged_into"):
        scope.holds(scope.target, "customers", "merged_into", instead="a profile kept for a merged customer is one")
    captured = captured_at(scope, scope.source, "customers")
    master = master.with_columns(after(master, ["updated_at", "consent_updated_at"], captured).alias(CHANGED))
    return master.drop(present(master, ["updated_at", "consent_updated_at"]))


def _mentions(scope: Scope, name: str) -> bool:
    """Whether the running check's comparisons use `name` (a field, or a column its rules read): only
    then does what a view lacks for it concern that check."""
    return any(name in repr(spec) for spec in scope.check.compares)


def _customer_master(scope: Scope) -> pl.LazyFrame | None:
    profiles = target_profiles(scope)
    if profiles is None:
        return None
    names = profiles.collect_schema().names()
    columns = ["email", "first_name", "last_name", "postcode", "country", "merged_into", "lifetime_value",
               "order_count", "last_order_at", "updated_at", "consent_updated_at"]  # fmt: skip
    cols = present(profiles, columns)
    # A profile with no update time still counts: it just loses to any that has one.
    newest = pl.col("updated_at").dt.epoch("us").fill_null(-(2**62)) if "updated_at" in names else pl.col("customer_id")
    consent = [pl.col(c).max() for c in present(profiles, ["email_consent", "sms_consent"])]
    profiles = profiles.with_row_index("_row")
    per_customer = profiles.group_by("customer_ref").agg(
        pl.col("_row").get(newest.arg_max()),
        *consent,
        pl.len().cast(pl.Int64).alias("profiles"),
        pl.col("ambiguous").any(),
    )
    master = per_customer.join(profiles.select("_row", *cols), on="_row").drop("_row")
    if "merged_into" not in cols:
        # A platform that cannot record a merge reflects it by no longer keeping the merged profile: one it
        # keeps is a separate profile still (said in a note by the check comparing merges).
        master = master.with_columns(pl.lit(None, pl.String).alias("merged_into"))
    return master


_VALUE_FIELDS = ("lifetime_value", "order_count", "last_order_at")


@view(derives=_VALUE_FIELDS)
def source_customer_value(scope: Scope) -> pl.LazyFrame | None:
    """The ERP's net lifetime value, order count and last order date per customer, as of the target's
    capture: orders placed and refunds processed after it are not counted (the target could not know
    them). A customer whose cancellation was recorded after it, or with an order or return of a status no
    mapping names (cancelled? refunded?), is `_changed`: not compared."""
    customers, profiles = source_customers(scope), target_profiles(scope)
    if customers is None or profiles is None:
        return None
    orders = scope.source_frame("orders", needs=("customer_id", "status"))
    if orders is None:
        return None
    captured = captured_at(scope, scope.target, "customers")
    returns = _refunds_known(scope, captured)
    held = orders.collect_schema().names()
    if "total" not in held:
        scope.note(scope.source, "orders", "not_compared", "total", "lifetime_value")
    if "placed_at" not in held:
        scope.note(scope.source, "orders", "not_compared", "placed_at", "last_order_at")
    # The same for every target captured at the same time: a pass over all the source's orders, made once.
    value = scope.ctx.materialize(
        ("customer_value", scope.source, captured, returns is None),
        lambda: net_lifetime_value(
            _known_by(orders, "placed_at", captured),
            returns,
            scope.cfg.status_map(scope.source),
            return_map=scope.cfg.status_map(scope.source, RETURNS),
            raw_values=raw_statuses(scope, scope.source),
            raw_return_values=raw_statuses(scope, scope.source, "returns"),
        ),
    )
    if returns is None and "total" in held and scope.ctx.snapshot(scope.source, "returns") is not None:
        value = value.drop("lifetime_value")  # refunds it cannot subtract: the figure would be wrong
    figures = present(value, list(_VALUE_FIELDS))
    value = customers.select("customer_id", "customer_ref", "key").join(value, on="customer_id", how="left")
    zeros = [pl.col(c).fill_null(0) for c in figures if c != "last_order_at"]  # no order: worth 0
    changed = (after(value, ["cancelled_at"], captured) | pl.col("unmapped").fill_null(False)).alias(CHANGED)
    currency = present(value, ["currency"])
    return value.select("customer_ref", "key", *figures, *currency, changed).with_columns(zeros)


def _known_by(frame: pl.LazyFrame, column: str, captured: datetime | None) -> pl.LazyFrame:
    """The records whose `column` is not after `captured` (all of them without the column or a capture)."""
    if captured is None or column not in frame.collect_schema().names():
        return frame
    return frame.filter(pl.col(column).is_null() | (pl.col(column) <= captured))


def _refunds_known(scope: Scope, captured: datetime | None) -> pl.LazyFrame | None:
    """The source's returns processed by `captured`, or None when it has none or they cannot be told
    refunded (no status, amount or order): a note then says lifetime value is not compared."""
    if scope.ctx.snapshot(scope.source, "returns") is None:
        return None
    for column in ("order_id", "status", "amount"):
        if not scope.holds(scope.source, "returns", column, compared="lifetime_value"):
            return None
    return _known_by(scope.source_frame("returns"), "processed_at", captured)


@view
def target_customer_value(scope: Scope) -> pl.LazyFrame | None:
    """What the target holds per customer; a profile without a value is missing, not 0."""
    master = target_customer_master(scope)
    if master is None:
        return None
    return master.select("customer_ref", "key", *present(master, list(_VALUE_FIELDS)), CHANGED)
