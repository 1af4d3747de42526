"""Derived figures and the named views that check files compare.

The derived figures are pinned by the design so that every part agrees on them:
- available-to-sell = Σ over the feeding locations of max(0, on_hand − allocated − safety_stock); a pack's
  is the minimum over its components of floor(component ATS / qty); on_order never counts;
- net lifetime value = Σ total of the customer's orders not cancelled − Σ amount of their refunded returns
  (canonical return state `refunded`), with order count and last order date over the same orders;
- canonical status = the raw status through the source's mapping (null when unmapped), for orders,
  returns and products alike.

A view takes a Scope (one check on one feed) and returns a lazy frame, or None when a side was not
snapshotted: a source that was not snapshotted for an entity is not compared on it.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from driftwatch.engine.context import Scope
from driftwatch.entities import TIMESTAMP
from driftwatch.statuses import ORDERS, PRODUCTS, RETURNS, map_statuses

View = Callable[[Scope], pl.LazyFrame | None]
VIEWS: dict[str, View] = {}

ALL_LOCATIONS = "*"
# What the order checks read of an order; derived order frames keep only these.
_ORDER_COLUMNS = ("order_ref", "key", "status_canonical", "total", "currency", "placed_at")
# When two events of one order share a timestamp, the later stage of the lifecycle wins.
_EVENT_ORDER = {"order_placed": 0, "order_fulfilled": 1, "order_cancelled": 2, "order_refunded": 3}


def view(fn: View) -> View:
    VIEWS[fn.__name__] = fn
    return fn


# -- derived figures ----------------------------------------------------------------------------------


def zero_if_null(col: str) -> pl.Expr:
    return pl.col(col).fill_null(0)


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
    free = pl.max_horizontal(
        pl.lit(0), zero_if_null("on_hand") - zero_if_null("allocated") - zero_if_null("safety_stock")
    )
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


def refunded_returns(
    returns: pl.LazyFrame, return_map: dict[str, str], raw_values: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The returns whose money went back (canonical return state `refunded`): the ERP's credit memos."""
    return with_canonical_status(returns, return_map, raw_values, RETURNS).filter(
        pl.col("status_canonical") == "refunded"
    )


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
    the currency of that value (null when the orders have none, or more than one)."""
    counted = with_canonical_status(orders, mapping, raw_values).filter(
        pl.col("status_canonical").ne_missing("cancelled")
    )
    has_currency = "currency" in orders.collect_schema().names()
    currency = pl.col("currency").drop_nulls().unique() if has_currency else pl.lit(None, pl.String)
    value = counted.group_by("customer_id").agg(
        pl.col("total").sum().alias("gross"),
        pl.len().cast(pl.Int64).alias("order_count"),
        pl.col("placed_at").max().alias("last_order_at"),
        pl.when(currency.len() == 1).then(currency.first()).alias("currency"),
    )
    if returns is None:
        return value.select(
            "customer_id", pl.col("gross").alias("lifetime_value"), "order_count", "last_order_at", "currency"
        )
    refunds = (
        refunded_returns(returns, return_map or {}, raw_return_values)
        .join(orders.select("order_id", "customer_id"), on="order_id")
        .group_by("customer_id")
        .agg(pl.col("amount").sum().alias("refunded"))
    )
    return value.join(refunds, on="customer_id", how="full", coalesce=True).select(
        "customer_id",
        (pl.col("gross").fill_null(0) - pl.col("refunded").fill_null(0)).alias("lifetime_value"),
        pl.col("order_count").fill_null(0),
        "last_order_at",
        "currency",
    )


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


def source_returns(scope: Scope, source: str | None = None) -> pl.LazyFrame | None:
    """A source's returns (default: the system of record's) with `status_canonical`, the return state."""
    source = source or scope.source
    returns = scope.ctx.frame(source, "returns") if source else None
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
    """The system of record's orders that the target is meant to receive, with `order_ref` to join on."""
    key = ("source_orders", scope.source, scope.channels(), scope.marketplace)
    return scope.ctx.materialize(key, lambda: _source_orders(scope))


def _source_orders(scope: Scope) -> pl.LazyFrame | None:
    orders = scope.source_frame("orders")
    if orders is None:
        return None
    channels = scope.channels()
    if channels is None:
        marketplace_channels = scope.cfg.marketplace_channels()
        orders = orders.filter(~pl.col("channel").is_in(marketplace_channels) | pl.col("channel").is_null())
    else:
        orders = orders.filter(pl.col("channel").is_in(channels))
    orders = with_canonical_status(orders, scope.cfg.status_map(scope.source), raw_statuses(scope, scope.source))
    ref = "external_id" if scope.marketplace else "order_id"
    orders = orders.filter(pl.col(ref).is_not_null()).with_columns(
        pl.col(ref).alias("order_ref"), pl.col("order_id").alias("key")
    )
    return orders.select(present(orders, [*_ORDER_COLUMNS, "order_id", "updated_at"]))


def target_orders(scope: Scope) -> pl.LazyFrame | None:
    """The target's orders (derived from its events where it keeps no orders), with `order_ref`."""
    key = ("target_orders", scope.target, scope.marketplace, scope.feeds_entity("orders"), scope.feeds_entity("events"))
    return scope.ctx.materialize(key, lambda: _target_orders(scope))


def _target_orders(scope: Scope) -> pl.LazyFrame | None:
    orders = scope.target_frame("orders")
    if orders is None:
        events = scope.target_frame("events")
        if events is None:
            return None
        orders = orders_from_events(events)
    if "status" not in orders.collect_schema().names():
        orders = orders.with_columns(pl.lit(None, pl.String).alias("status"))  # e.g. sales data lines
    orders = with_canonical_status(orders, scope.cfg.status_map(scope.target), raw_statuses(scope, scope.target))
    ref = "external_id" if scope.marketplace else "order_id"
    orders = orders.with_columns(pl.col(ref).alias("order_ref"), pl.col(ref).alias("key"))
    return orders.select(present(orders, [*_ORDER_COLUMNS, "status"]))


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
    shipments, orders = scope.source_frame("shipments"), source_orders(scope)
    copy, copy_orders = scope.target_frame("shipments"), scope.target_frame("orders")
    if shipments is None or orders is None or copy is None or copy_orders is None:
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
    customers = scope.source_frame("customers")
    if customers is None:
        return None
    if scope.option("require_email"):
        customers = customers.filter(pl.col("email").is_not_null())
    names = customers.collect_schema().names()
    ref = pl.coalesce("erp_customer_id", "customer_id") if "erp_customer_id" in names else pl.col("customer_id")
    return customers.with_columns(ref.alias("customer_ref"), ref.alias("key"))


def target_profiles(scope: Scope) -> pl.LazyFrame | None:
    """Every target profile with the ERP customer it belongs to (`customer_ref`): the ERP id it stores,
    else the ERP customer with the same email."""
    profiles, truth = scope.target_frame("customers"), source_customers(scope)
    if profiles is None or truth is None:
        return None
    if not scope.ctx.has(scope.target, "customers", "erp_customer_id"):
        profiles = profiles.with_columns(pl.lit(None, pl.String).alias("erp_customer_id"))
    elif not _profiles_without_erp_id(scope):
        return profiles.with_columns(pl.col("erp_customer_id").alias("customer_ref"))
    by_email = (
        truth.filter(pl.col("email").is_not_null())
        .group_by("email")
        .agg(pl.col("customer_ref").min().alias("_by_email"))
    )
    return (
        profiles.join(by_email, on="email", how="left")
        .with_columns(pl.coalesce("erp_customer_id", "_by_email").alias("customer_ref"))
        .drop("_by_email")
        .filter(pl.col("customer_ref").is_not_null())
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
    inventory = scope.source_frame("inventory")
    if inventory is None or scope.target_frame("inventory") is None:
        return None
    by_location = target_locations(scope)
    locations = scope.feed.locations if scope.feed else None
    ats = available_to_sell(
        inventory, scope.source_frame("pack_components"), locations=locations, by_location=by_location
    )
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
    inventory = scope.target_frame("inventory")
    if inventory is None:
        return None
    cols = ["sku", "location", "available"] if target_locations(scope) else ["sku", "available"]
    return inventory.select(*cols, _known_to_erp(scope).alias("known"))


def _known_to_erp(scope: Scope) -> pl.Expr:
    """Whether a SKU the target publishes stock for is one the ERP knows: one it does not know is
    catalogue_parity's finding wherever both catalogues are snapshotted."""
    if scope.source_frame("products") is None or scope.target_frame("products") is None:
        return pl.lit(True)
    return pl.col("sku").is_in(scope.ctx.distinct(scope.source, "products", "sku").collect()["sku"].implode())


@view
def source_stock_formula(scope: Scope) -> pl.LazyFrame | None:
    """What the ERP should publish as available: on_hand − allocated − safety_stock, without on_order."""
    inventory = scope.ctx.frame(scope.source, "inventory")
    if inventory is None or not scope.ctx.has(scope.source, "inventory", "available"):
        return None
    formula = zero_if_null("on_hand") - zero_if_null("allocated") - zero_if_null("safety_stock")
    return inventory.select("sku", "location", formula.alias("available"), zero_if_null("on_order").alias("on_order"))


@view
def source_stock_published(scope: Scope) -> pl.LazyFrame | None:
    inventory = scope.ctx.frame(scope.source, "inventory")
    return None if inventory is None else inventory.select("sku", "location", "available")


@view
def source_products(scope: Scope) -> pl.LazyFrame | None:
    products = scope.source_frame("products")
    if products is None or scope.target_frame("products") is None:
        return None
    products = products.select(present(products, ["sku", "status", "price", "currency", "name"]))
    return _with_product_status(scope, scope.source, products)


@view
def target_products(scope: Scope) -> pl.LazyFrame | None:
    products = scope.target_frame("products")
    if products is None:
        return None
    products = products.select(present(products, ["sku", "status", "price", "currency"]))
    return _with_product_status(scope, scope.target, products)


@view
def source_order_headers(scope: Scope) -> pl.LazyFrame | None:
    if target_orders(scope) is None:
        return None
    orders = source_orders(scope)
    return (
        None
        if orders is None
        else orders.select(
            "order_ref", "key", pl.col("status_canonical").alias("status"), "total", "currency", "placed_at"
        )
    )


@view
def target_order_headers(scope: Scope) -> pl.LazyFrame | None:
    orders = target_orders(scope)
    if orders is None:
        return None
    status = [pl.col("status_canonical").alias("status"), pl.col("status").alias("status_raw")]
    captured = scope.ctx.captured_at(scope.target, "orders" if scope.target_frame("orders") is not None else "events")
    placed = pl.col("placed_at") if "placed_at" in orders.collect_schema().names() else pl.lit(None, TIMESTAMP)
    age = ((pl.lit(captured) - placed).dt.total_minutes() / 60).alias("age_hours")
    return orders.select(*present(orders, ["order_ref", "key", "total", "currency"]), *status, age)


def _lines_of_common_orders(scope: Scope) -> tuple[pl.LazyFrame, pl.LazyFrame] | None:
    """Both sides' lines, only for orders both sides hold: a missing order is order_presence's finding,
    not one finding per line."""
    truth, copy = source_orders(scope), target_orders(scope)
    lines, target_lines = scope.source_frame("order_lines"), scope.target_frame("order_lines")
    if truth is None or copy is None or lines is None or target_lines is None:
        return None
    common = scope.ctx.materialize(
        ("common_orders", scope.source, scope.target, scope.channels(), scope.marketplace),
        lambda: truth.select("order_id", "order_ref", "key").join(copy.select("order_ref"), on="order_ref", how="semi"),
    )
    if scope.marketplace:
        expected = lines.join(common, on="order_id")
    else:  # order_ref and key are the ERP order number itself
        expected = lines.join(common.select("order_id"), on="order_id", how="semi").with_columns(
            pl.col("order_id").alias("order_ref"), pl.col("order_id").alias("key")
        )
    actual = order_ref_of_lines(scope, target_lines, scope.target_frame("orders")).join(
        common.select("order_ref", "key"), on="order_ref"
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
    customers = source_customers(scope)
    if customers is None or target_profiles(scope) is None:
        return None
    return customers.with_columns(pl.lit(1, pl.Int64).alias("profiles"))


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
    return scope.ctx.materialize(key, lambda: _customer_master(scope))


def _customer_master(scope: Scope) -> pl.LazyFrame | None:
    profiles = target_profiles(scope)
    if profiles is None:
        return None
    names = profiles.collect_schema().names()
    columns = ["email", "first_name", "last_name", "postcode", "country", "merged_into", "lifetime_value",
               "order_count", "last_order_at"]  # fmt: skip
    cols = present(profiles, columns)
    # A profile with no update time still counts: it just loses to any that has one.
    newest = pl.col("updated_at").dt.epoch("us").fill_null(-(2**62)) if "updated_at" in names else pl.col("customer_id")
    consent = [pl.col(c).max() for c in present(profiles, ["email_consent", "sms_consent"])]
    profiles = profiles.with_row_index("_row")
    per_customer = profiles.group_by("customer_ref").agg(
        pl.col("_row").get(newest.arg_max()), *consent, pl.len().cast(pl.Int64).alias("profiles")
    )
    master = per_customer.join(profiles.select("_row", *cols), on="_row").drop("_row")
    if "merged_into" not in cols:
        # A platform that cannot record a merge reflects it by no longer keeping the merged profile.
        master = master.with_columns(pl.lit(None, pl.String).alias("merged_into"))
    return master.with_columns(pl.col("customer_ref").alias("key"))


@view
def source_customer_value(scope: Scope) -> pl.LazyFrame | None:
    customers, orders = source_customers(scope), scope.source_frame("orders")
    if customers is None or orders is None or target_profiles(scope) is None:
        return None
    if "customer_id" not in orders.collect_schema().names():
        return None
    # The same for every target the source feeds: a pass over all its orders, made once.
    value = scope.ctx.materialize(
        ("customer_value", scope.source),
        lambda: net_lifetime_value(
            orders,
            scope.source_frame("returns"),
            scope.cfg.status_map(scope.source),
            return_map=scope.cfg.status_map(scope.source, RETURNS),
            raw_values=raw_statuses(scope, scope.source),
            raw_return_values=raw_statuses(scope, scope.source, "returns"),
        ),
    )
    return (
        customers.select("customer_id", "customer_ref", "key")
        .join(value, on="customer_id", how="left")
        .select(
            "customer_ref",
            "key",
            pl.col("lifetime_value").fill_null(0),
            pl.col("order_count").fill_null(0),
            "last_order_at",
            "currency",
        )
    )


@view
def target_customer_value(scope: Scope) -> pl.LazyFrame | None:
    master = target_customer_master(scope)
    if master is None:
        return None
    cols = present(master, ["lifetime_value", "order_count", "last_order_at"])
    fills = [pl.col(c).fill_null(0) for c in cols if c != "last_order_at"]
    return master.select("customer_ref", "key", *cols).with_columns(fills)
