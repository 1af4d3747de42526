"""Retailer B, "Harbour & Loom": the storefront owns customers and orders, BlueCherry owns products and stock.

The shape
---------
A UK knitwear brand selling in GBP through a commercetools storefront, which is the system of record for
customers, orders, their lines, shipments (deliveries with parcels) and returns. CGS BlueCherry owns the
catalogue and the stock, in three warehouses: DC1 (web fulfilment), DC2 (London store back room) and WHS
(wholesale, which feeds no consumer channel). 64 garments (8 styles x 2 colourways x 4 sizes) and 60
customers with about 120 orders.

    bluecherry    -> commercetools  products, inventory per supply channel (DC1, DC2)
    bluecherry    -> klaviyo        products, inventory (one figure: DC1 + DC2)
    bluecherry    -> emarsys        products, inventory (one figure: DC1 + DC2)
    commercetools -> klaviyo        customers (profiles), events (Placed/Fulfilled/Cancelled/Refunded Order)
    commercetools -> emarsys        customers (contacts), orders and lines (sales data)

Its own vocabulary, as each platform exports it:
- BlueCherry arrives as raw report exports: a StyleMaster export (`Style`, `Color #`, `Color Name`,
  `SIZES`, `Size Code`, `UPC Number`, `Style Name`, `Season`, ...) and an inventory-quantities report (a
  title line above the table, `Div`, `Style`, `Color #`, `Style Name`, `Size`, `Location`, `Total QOH`,
  `Total Pick`, `Avail QOH`, `Total Open`, `Total Ship To WIP`, ...), UTF-8 with a BOM, CRLF line ends,
  MM/DD/YYYY dates, thousands separators ("1,250.00", "1,240"), style codes with leading zeros, and
  product statuses in the client's own words (ACTIVE, CLOSEOUT, INACTIVE, DROPPED).
  The ERP's Avail QOH is on hand less open orders less safety stock, shown as 0 where that is negative.
- commercetools: orders as "orderState/shipmentState" (Open/Pending, Confirmed/Ready, Confirmed/Shipped,
  Confirmed/Delivered, Complete/Delivered, Cancelled, Cancelled/Canceled), return items as
  "shipmentState/paymentState" (Returned/Refunded, Advised/Initial); customers have no ERP behind them,
  so their own id is the identity every platform stores (Klaviyo `external_id`, an Emarsys custom field).
  Stock per supply channel; quantityOnStock = availableQuantity (no reservations).
- Klaviyo: consent as SUBSCRIBED / UNSUBSCRIBED / NEVER_SUBSCRIBED, metrics as "Placed Order" ... (event
  times exported in Paris time, with their offset),
  no lifetime-value properties on any profile (Klaviyo computes its own), one stock figure per catalogue
  variant and no `location` column; a few profiles carry no external_id (matched by email, typed with
  capitals or a trailing space) and a few newsletter-only profiles match no customer.
- Emarsys: opt-in (field 31) as 1 / 2, one stock figure per catalogue item with a blank `location`,
  sales data without a status column.

What is not drift (in the clean twin and the drifted one alike)
---------------------------------------------------------------
Representation (the export formats above, email case and spacing), the wholesale warehouse's stock, a
location where on hand less allocated is negative (ATS clamps at 0 there, and the ERP shows 0), an active
SKU the ERP has no stock row for listed at 0, a commercetools stock entry at 0 for a warehouse the ERP
has no row for, Complete/Delivered (closed) against a Klaviyo fulfilment (Klaviyo cannot say closed),
refunds of one unit (partial: the order stays fulfilled), returns advised but not back, and, in the file
drop, whose sources were captured at different times (Emarsys 23:45, Klaviyo 01:30, commercetools 02:00,
BlueCherry 02:30): orders placed, shipped or cancelled, and consent or name changes, after a target's
captured_at.

Decisions where DESIGN.md is silent
-----------------------------------
- A record changed in the system of record after a target's captured_at (an order shipped or cancelled,
  a name changed) is judged on what it was at that capture, like an order placed after it: the target
  cannot have known.
- Partial shipments are left out: Klaviyo has no event that says "partly fulfilled", so whether a
  partial dispatch owes a Fulfilled Order event is a choice of the integration, not a fact.
- An order a marketing platform holds that the storefront does not is not generated: DESIGN.md defines
  that extra only for marketplaces.

Injected drift, one answer-key row per finding
----------------------------------------------
stock_parity (commercetools below ATS at DC1, a missing DC2 entry; klaviyo over ATS; emarsys in stock
where ATS is 0), ats_inflation (Avail QOH counting WIP), stock_staleness (klaviyo 40 h, commercetools 55 h),
catalogue_parity (active SKU missing on emarsys, unknown SKU on emarsys, a discontinued SKU live on
klaviyo, a price off on commercetools), unmapped_codes (a product status word no mapping names),
order_presence (orders missing on emarsys, an order with no events on klaviyo), order_status_drift and
fulfilment_events (a shipment and a cancellation with no event), fulfilment_events (late, early and
missing refund events), order_value_drift (a Placed Order value, a sales-data quantity), returns_sync
(a refunded return not on emarsys), consent_parity (email on klaviyo and emarsys, SMS on klaviyo),
customer_master_parity (email, last name, postcode, a duplicate profile, a missing contact).
ltv_after_refunds has no target here: no platform of this retailer holds a lifetime value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from driftwatch.demo.retailers._base import (
    DAY,
    HOUR,
    Record,
    Retailer,
    Shape,
    available_to_sell,
    free_stock,
    money,
    sku_location,
)
from driftwatch.demo.retailers._files import Export, Written, canonical, local_time

NAME = "storefront"
KINDS = {"bluecherry": "bluecherry", "commercetools": "commercetools", "klaviyo": "klaviyo", "emarsys": "emarsys"}
BASE = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
# The file drop: each source exported at its own time of night.
DROP_CAPTURES = {
    "emarsys": timedelta(hours=-2, minutes=-15),
    "klaviyo": timedelta(minutes=-30),
    "commercetools": timedelta(0),
    "bluecherry": timedelta(minutes=30),
}
CURRENCY = "GBP"
STYLES = (
    ("04101", "Merino Crew", "89.50"),
    ("04102", "Cable Cardigan", "129.00"),
    ("04103", "Lambswool Scarf", "39.00"),
    ("04104", "Breton Tee", "49.90"),
    ("04105", "Fisherman Jumper", "159.00"),
    ("04106", "Cashmere Coat", "1250.00"),
    ("04107", "Cord Trouser", "79.00"),
    ("04108", "Linen Shirt", "59.00"),
)
COLOURS = {"001": "Black", "410": "Navy", "120": "Oat", "300": "Moss", "510": "Rust", "220": "Ecru"}
SIZES = ("S", "M", "L", "XL")
LOCATIONS = ("DC1", "DC2", "WHS")
WEB_LOCATIONS = ("DC1", "DC2")  # the warehouses that feed the storefront and the marketing catalogues
# BlueCherry product status words of this client, and what they mean.
PRODUCT_STATUSES = {"ACTIVE": "active", "CLOSEOUT": "active", "INACTIVE": "discontinued", "DROPPED": "discontinued"}
UNMAPPED_PRODUCT_STATUS = "HOLD"
CHANNEL = "uk-web"
CARRIERS = ("ROYAL_MAIL", "DPD", "EVRI")
SHIPPING, FREE_FROM = Decimal("3.95"), Decimal("50.00")
# commercetools "orderState/shipmentState" per lifecycle state the generator uses
ORDER_STATES = {
    "placed": "Open/Pending",
    "accepted": "Confirmed/Ready",
    "shipped": "Confirmed/Shipped",
    "delivered": "Confirmed/Delivered",
    "closed": "Complete/Delivered",
}
CANCELLED_STATES = ("Cancelled", "Cancelled/Canceled")
REFUNDED, ADVISED = "Returned/Refunded", "Advised/Initial"
SHIPPED = ("shipped", "delivered", "closed")
METRICS = {
    "order_placed": "Placed Order",
    "order_fulfilled": "Fulfilled Order",
    "order_cancelled": "Cancelled Order",
    "order_refunded": "Refunded Order",
}
FIRST = ("Ada", "Ben", "Cara", "Dev", "Elin", "Finn", "Gwen", "Hari", "Iona", "Jack", "Kit", "Lola", "Mo", "Nell")
LAST = ("Ashby", "Brook", "Carr", "Dale", "Ellis", "Frost", "Gale", "Hale", "Ives", "Judd", "Kerr", "Lowe")
FEEDS = [
    {
        "source": "bluecherry",
        "target": "commercetools",
        "entities": ["products", "inventory"],
        "locations": list(WEB_LOCATIONS),
    },
    {
        "source": "bluecherry",
        "target": "klaviyo",
        "entities": ["products", "inventory"],
        "locations": list(WEB_LOCATIONS),
    },
    {
        "source": "bluecherry",
        "target": "emarsys",
        "entities": ["products", "inventory"],
        "locations": list(WEB_LOCATIONS),
    },
    {"source": "commercetools", "target": "klaviyo", "entities": ["customers", "events"]},
    {"source": "commercetools", "target": "emarsys", "entities": ["customers", "orders", "order_lines"]},
]


def drop_captures(base: datetime = BASE) -> dict[str, datetime]:
    return {source: base + offset for source, offset in DROP_CAPTURES.items()}


def pull_captures(now: datetime) -> dict[str, datetime]:
    """Pulled through the APIs, every source is captured at the pull; the BlueCherry export lands with it."""
    return dict.fromkeys(KINDS, now)


def build(seed: int = 11, drift: bool = True, captures: dict[str, datetime] | None = None) -> Retailer:
    shop = _Storefront(seed, captures or drop_captures())
    shop.catalogue()
    shop.customers()
    shop.trade()
    shop.copies()
    if drift:
        shop.drift()
    return shop.retailer


def config(written: Written, connections: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The retailer's driftwatch.toml as tables; `connections` says how to reach each source."""
    sources: dict[str, dict[str, Any]] = {}
    for source, settings in (connections or {}).items():
        sources[source] = {**sources.get(source, {}), **settings}
    return {
        "store": {"path": "driftwatch.duckdb"},
        "audit": {"fail_on": "high"},
        "feeds": FEEDS,
        "sources": sources,
        "statuses": {"bluecherry": {"products": PRODUCT_STATUSES}},
        # The wholesale warehouse feeds no consumer channel, on purpose.
        "checks": {"unmapped_codes": {"unfed_locations": ["WHS"]}},
    }


# --- how each platform exports ------------------------------------------------------------------------


def _date(column: str):
    return lambda r: r[column]


def exports() -> dict[tuple[str, str], Export]:
    stylemaster = Export(
        [
            ("Style", lambda r: r["style"]),
            ("Color #", lambda r: r["colour"]),
            ("Color Name", lambda r: COLOURS[r["colour"]]),
            ("SIZES", lambda r: r["size"]),
            ("Size Code", lambda r: "A"),
            ("UPC Number", lambda r: r["upc"]),
            ("Style Name", lambda r: r["name"]),
            ("Season", lambda r: "AW26"),
            ("Retail Price", lambda r: r["price"]),
            ("Currency", lambda r: r["currency"]),
            ("Status", lambda r: r["status"]),
            ("Last Modified", _date("updated_at")),
        ],
        date_format="%m/%d/%Y",
        thousands=frozenset({"Retail Price"}),
        bom=True,
        crlf=True,
    )
    inventory = Export(
        [
            ("Div", lambda r: "HL"),
            ("Style", lambda r: r["style"]),
            ("Color #", lambda r: r["colour"]),
            ("Style Name", lambda r: r["style_name"]),
            ("Color Name", lambda r: COLOURS[r["colour"]]),
            ("Size", lambda r: r["size"]),
            ("UPC Number", lambda r: r["upc"]),
            ("Location", lambda r: r["location"]),
            ("Total QOH", lambda r: r["on_hand"]),
            ("Total Pick", lambda r: r["picked"]),
            ("Avail QOH", lambda r: r["available"]),
            ("Total Open", lambda r: r["allocated"]),
            ("Total Ship To WIP", lambda r: r["on_order"]),
            ("Safety Stock", lambda r: r["safety_stock"]),
            ("Loc Curr", lambda r: CURRENCY),
            ("Last Modified", _date("updated_at")),
        ],
        title=("Harbour & Loom Ltd - Inventory Quantities by Location",),
        date_format="%m/%d/%Y",
        thousands=frozenset({"Total QOH", "Total Pick", "Avail QOH", "Total Open", "Total Ship To WIP"}),
        bom=True,
        crlf=True,
    )

    def klaviyo_consent(column: str):
        return lambda r: {True: "SUBSCRIBED", False: "UNSUBSCRIBED", None: "NEVER_SUBSCRIBED"}[r[column]]

    profile_columns = (
        "customer_id",
        "erp_customer_id",
        "email",
        "email_consent",
        "sms_consent",
        "consent_updated_at",
        "first_name",
        "last_name",
        "postcode",
        "country",
        "updated_at",
    )
    return {
        ("bluecherry", "products"): stylemaster,
        ("bluecherry", "inventory"): inventory,
        ("klaviyo", "customers"): Export(
            [(c, klaviyo_consent(c) if c.endswith("_consent") else (lambda r, c=c: r.get(c))) for c in profile_columns]
        ),
        ("klaviyo", "events"): Export(
            [
                ("event_id", lambda r: r["event_id"]),
                ("metric", lambda r: METRICS[r["metric"]]),
                ("order_id", lambda r: r["order_id"]),
                ("email", lambda r: r["email"]),
                ("occurred_at", local_time("occurred_at", "Europe/Paris")),  # the export's zone, same instants
                ("value", lambda r: r["value"]),
            ]
        ),
        ("klaviyo", "inventory"): canonical("sku", "available", "updated_at"),  # one figure: no location column
        ("emarsys", "customers"): Export(
            [
                (c, (lambda r: {True: "1", False: "2"}[r["email_consent"]]) if c == "email_consent" else _get(c))
                for c in (
                    "customer_id",
                    "erp_customer_id",
                    "email",
                    "email_consent",
                    "first_name",
                    "last_name",
                    "postcode",
                    "country",
                    "updated_at",
                )
            ]
        ),
        ("emarsys", "inventory"): Export(
            [
                ("sku", _get("sku")),
                ("location", lambda r: ""),
                ("available", _get("available")),
                ("updated_at", _get("updated_at")),
            ]
        ),
    }


def _get(column: str):
    return lambda r: r.get(column)


# --- the retailer --------------------------------------------------------------------------------------


class _Storefront(Shape):
    name, kinds = NAME, KINDS

    def __init__(self, seed: int, captures: dict[str, datetime]) -> None:
        super().__init__(seed, captures)
        self.products: list[Record] = []
        self.stock: list[Record] = []

    # --- catalogue and stock (BlueCherry) ---------------------------------------------------------------
    def catalogue(self) -> None:
        rng = self.draw("catalogue")
        day = self.cap("bluecherry").replace(hour=0, minute=0, second=0, microsecond=0)
        for n, (style, name, price) in enumerate(STYLES):
            for colour in rng.sample(sorted(COLOURS), 2):
                for size in SIZES:
                    self.products.append(
                        {
                            "sku": f"{style}-{colour}-{size}",
                            "style": style,
                            "colour": colour,
                            "size": size,
                            "name": f"{name} {COLOURS[colour]}",
                            "price": money(price),
                            "currency": CURRENCY,
                            "status": "ACTIVE",
                            "updated_at": day - rng.randint(3, 300) * DAY,
                            "upc": f"50{n:02d}{len(self.products):08d}",
                            "style_name": name,
                        }
                    )
        # One colourway on clearance (still sellable), one retired, one retired SKU on its own.
        by_colourway = sorted({(p["style"], p["colour"]) for p in self.products})
        closeout, inactive = rng.sample(by_colourway, 2)
        for product in self.products:
            if (product["style"], product["colour"]) == closeout:
                product["status"] = "CLOSEOUT"
            elif (product["style"], product["colour"]) == inactive:
                product["status"] = "INACTIVE"
        rng.choice(self.active_products())["status"] = "DROPPED"
        self._stock(rng, day)
        self.retailer.held["bluecherry", "products"] = self.products
        self.retailer.held["bluecherry", "inventory"] = self.stock

    def active_products(self) -> list[Record]:
        return [p for p in self.products if PRODUCT_STATUSES.get(p["status"]) == "active"]

    def _stock(self, rng: Any, day: datetime) -> None:
        active = self.active_products()
        unstocked = rng.choice(active)["sku"]  # a new arrival: listed, never received anywhere
        self.picker.reserve("sku", [unstocked])
        for product in self.products:
            if product["sku"] == unstocked:
                continue
            retired = PRODUCT_STATUSES.get(product["status"]) != "active"
            for location in LOCATIONS:
                if retired and location != "WHS":
                    continue
                if location == "DC2" and rng.random() < 0.3:
                    continue  # not every SKU is kept in the store's back room
                self.stock.append(self._stock_row(rng, product, location, day))

    def _stock_row(self, rng: Any, product: Record, location: str, day: datetime) -> Record:
        if location == "WHS":
            on_hand = rng.randint(1000, 2500) if rng.random() < 0.1 else rng.randint(0, 300)
            allocated, safety = rng.randint(0, min(on_hand, 40)), 0
        elif location == "DC1":
            on_hand = 0 if rng.random() < 0.15 else rng.randint(1, 45)
            allocated, safety = rng.randint(0, min(on_hand, 5)), rng.randint(0, 2)
        else:
            on_hand = rng.randint(0, 12)
            allocated, safety = rng.randint(0, min(on_hand, 3)), 0
            if rng.random() < 0.12:  # orders allocated beyond what is on the shelf
                on_hand, allocated = 1, 3
        row = {
            "sku": product["sku"],
            "style": product["style"],
            "colour": product["colour"],
            "size": product["size"],
            "location": location,
            "on_hand": on_hand,
            "allocated": allocated,
            "picked": rng.randint(0, allocated),
            "on_order": rng.randint(5, 60) if rng.random() < 0.3 else 0,
            "safety_stock": safety,
            "updated_at": day,
            "upc": product["upc"],
            "style_name": product["style_name"],
        }
        row["available"] = free_stock(row)  # the ERP's Avail QOH never shows a negative quantity
        return row

    def ats(self) -> dict[str, int]:
        return available_to_sell(self.stock, WEB_LOCATIONS)

    # --- customers and orders (commercetools) -----------------------------------------------------------
    def customers(self) -> None:
        rng = self.draw("customers")
        for n in range(60):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            consent_at = self.quiet - rng.randint(5, 600) * DAY - self.draw.minutes("consent_at", 0, 600)
            person = {
                "customer_id": self.draw.uuid("customer_id"),
                "email": f"{first}.{last}{n + 1}@example.co.uk".lower(),
                "email_consent": rng.random() < 0.6,
                "sms_consent": rng.random() < 0.25,
                "consent_updated_at": consent_at,
                "first_name": first,
                "last_name": last,
                "postcode": f"{rng.choice(('SW', 'NW', 'EH', 'BS', 'LS'))}{rng.randint(1, 19)} "
                f"{rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
                "country": "GB",
            }
            person["updated_at"] = max(consent_at, self.quiet - rng.randint(1, 90) * DAY)
            self.people.append(person)
        self._customer_traps()
        self.retailer.held["commercetools", "customers"] = self.people

    def _customer_traps(self) -> None:
        """Changes made in the storefront after Emarsys was captured: Emarsys still shows what was true then."""
        emarsys, klaviyo = self.cap("emarsys"), self.cap("klaviyo")
        if klaviyo - emarsys < HOUR:
            return
        opted, renamed = self.picker.pick("customer", [p for p in self.people if p["email_consent"]], "customer_id", 2)
        when = emarsys + 30 * timedelta(minutes=1)
        self.history[opted["customer_id"]] = (when, {"email_consent": True, "updated_at": opted["updated_at"]})
        opted.update(email_consent=False, consent_updated_at=when, updated_at=when)
        self.history[renamed["customer_id"]] = (
            when,
            {"last_name": renamed["last_name"], "updated_at": renamed["updated_at"]},
        )
        renamed.update(last_name=renamed["last_name"] + "-Price", updated_at=when)

    def trade(self) -> None:
        rng = self.draw("orders")
        for person in self.people:
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
                self._order(rng, person, self._state(rng))
        self._order_traps(rng)
        ct = self.retailer
        ct.held["commercetools", "orders"] = [self._order_record(o) for o in self.orders]
        ct.held["commercetools", "order_lines"] = [line for o in self.orders for line in self._line_records(o)]
        ct.held["commercetools", "returns"] = [r for o in self.orders for r in o["returns"]]
        ct.held["commercetools", "shipments"] = [o["shipment"] for o in self.orders if o["shipment"]]

    @staticmethod
    def _state(rng: Any) -> str:
        u = rng.random()
        for state, upto in (
            ("placed", 0.08),
            ("accepted", 0.16),
            ("cancelled", 0.28),
            ("shipped", 0.52),
            ("delivered", 0.72),
            ("closed", 1.0),
        ):
            if u < upto:
                return state
        return "closed"

    def _order(self, rng: Any, person: Record, state: str, placed: datetime | None = None) -> Record:
        ages = {
            "placed": (1, 14),
            "accepted": (2, 30),
            "cancelled": (48, 4800),
            "shipped": (72, 600),
            "delivered": (150, 1400),
            "closed": (960, 7200),
        }  # hours before the quiet time
        low, high = ages[state]
        placed = placed or self.quiet - timedelta(minutes=rng.randint(low * 60, high * 60))
        order = {
            "order_id": f"HL{100001 + len(self.orders)}",
            "customer_id": person["customer_id"],
            "email": person["email"],
            "state": state,
            "status": ORDER_STATES.get(state) or rng.choice(CANCELLED_STATES),
            "placed_at": placed,
            "shipped_at": None,
            "cancelled_at": None,
            "returns": [],
            "shipment": None,
        }
        order["updated_at"] = placed
        if state == "accepted":
            order["updated_at"] = placed + timedelta(minutes=rng.randint(10, 90))
        elif state == "cancelled":
            order["cancelled_at"] = order["updated_at"] = placed + timedelta(minutes=rng.randint(30, 1200))
        elif state in SHIPPED:
            order["shipped_at"] = order["updated_at"] = placed + timedelta(minutes=rng.randint(8 * 60, 36 * 60))
            if state != "shipped":
                after = (2, 4) if state == "delivered" else (20, 30)
                order["updated_at"] = order["shipped_at"] + timedelta(hours=rng.randint(after[0] * 24, after[1] * 24))
        self._lines(rng, order)
        if order["shipped_at"] is not None:
            carrier = rng.choice(CARRIERS)
            order["shipment"] = {
                "shipment_id": f"DL-{order['order_id']}",
                "order_id": order["order_id"],
                "carrier": carrier,
                "tracking_number": f"{carrier[:2]}{rng.randint(10**9, 10**10 - 1)}GB",
                "shipped_at": order["shipped_at"],
            }
            if rng.random() < 0.18:
                self._return(rng, order)
        self.orders.append(order)
        return order

    def _lines(self, rng: Any, order: Record) -> None:
        active = self.active_products()
        order["lines"] = []
        for line_no in range(1, rng.choice((1, 1, 2, 2, 3)) + 1):
            product = rng.choice(active if rng.random() < 0.9 else self.products)
            qty = 1 if rng.random() < 0.8 else 2
            order["lines"].append({"line_no": line_no, "sku": product["sku"], "qty": qty, "unit": product["price"]})
        merchandise = sum(line["unit"] * line["qty"] for line in order["lines"])
        order["total"] = merchandise + (SHIPPING if merchandise < FREE_FROM else Decimal("0.00"))

    def _return(self, rng: Any, order: Record) -> None:
        line = order["lines"][0]
        back = order["shipped_at"] + timedelta(hours=rng.randint(3 * 24, 12 * 24))
        refunded = back <= self.quiet - 2 * DAY
        order["returns"].append(
            {
                "return_id": f"RI-{order['order_id']}-1",
                "order_id": order["order_id"],
                "sku": line["sku"],
                "qty": 1,
                "amount": line["unit"],
                "status": REFUNDED if refunded else ADVISED,
                "processed_at": back if refunded else order["shipped_at"] + DAY,
            }
        )

    def _order_traps(self, rng: Any) -> None:
        """Orders placed, shipped or cancelled between the captures: later than what a target could know."""
        emarsys, klaviyo, storefront = self.cap("emarsys"), self.cap("klaviyo"), self.cap("commercetools")
        if klaviyo - emarsys < HOUR or storefront - klaviyo < 20 * timedelta(minutes=1):
            return
        people = self.picker.pick("customer", self.people, "customer_id", 5)
        for person, placed in zip(people[:2], (emarsys + 25 * timedelta(minutes=1), emarsys + HOUR), strict=True):
            self._order(rng, person, "placed", placed)  # on Klaviyo, after Emarsys' capture
        self._order(rng, people[2], "placed", klaviyo + 10 * timedelta(minutes=1))  # after both
        shipped = self._order(rng, people[3], "shipped")
        shipped["shipped_at"] = shipped["updated_at"] = shipped["shipment"]["shipped_at"] = klaviyo + 15 * timedelta(
            minutes=1
        )
        shipped["returns"] = []
        cancelled = self._order(rng, people[4], "cancelled")
        cancelled["status"] = CANCELLED_STATES[1]
        cancelled["cancelled_at"] = cancelled["updated_at"] = klaviyo + 5 * timedelta(minutes=1)
        self.picker.reserve("order", [o["order_id"] for o in self.orders[-5:]])

    def _order_record(self, order: Record) -> Record:
        return {
            "order_id": order["order_id"],
            "external_id": order["order_id"],
            "channel": CHANNEL,
            "customer_id": order["customer_id"],
            "email": order["email"],
            "status": order["status"],
            "placed_at": order["placed_at"],
            "updated_at": order["updated_at"],
            "total": order["total"],
            "currency": CURRENCY,
        }

    def _line_records(self, order: Record, *, at: datetime | None = None) -> list[Record]:
        """The order's lines as the storefront holds them (or, with `at`, as they stood at that moment)."""
        at = at or self.cap("commercetools")
        shipped = order["shipped_at"] is not None and order["shipped_at"] <= at
        cancelled = order["cancelled_at"] is not None and order["cancelled_at"] <= at
        back = {r["sku"]: r["qty"] for r in order["returns"] if r["status"] == REFUNDED and r["processed_at"] <= at}
        return [
            {
                "order_id": order["order_id"],
                "line_no": line["line_no"],
                "sku": line["sku"],
                "qty_ordered": line["qty"],
                "qty_shipped": line["qty"] if shipped else 0,
                "qty_cancelled": line["qty"] if cancelled else 0,
                "qty_returned": back.pop(line["sku"], 0),
                "unit_price": line["unit"],
            }
            for line in order["lines"]
        ]

    # --- what each target holds (the clean copies) --------------------------------------------------------
    def copies(self) -> None:
        self._catalogue_copies()
        self._profiles()
        self._contacts()
        self._events()
        self._sales_data()

    def _catalogue_copies(self) -> None:
        ats = self.ats()
        active = self.active_products()
        for target in ("commercetools", "klaviyo", "emarsys"):
            rng = self.draw(f"copies.{target}")
            captured = self.cap(target)
            self.retailer.held[target, "products"] = [
                {
                    "sku": p["sku"],
                    **(
                        {"style": p["style"], "colour": p["colour"], "size": p["size"]}
                        if target == "commercetools"
                        else {}
                    ),
                    "name": p["name"],
                    "price": p["price"],
                    "currency": CURRENCY,
                    "status": "active",
                    "updated_at": p["updated_at"] + timedelta(minutes=rng.randint(5, 120)),
                }
                for p in active
            ]
            fresh = [captured - timedelta(minutes=rng.randint(20, 360)) for _ in range(len(self.stock) + len(active))]
            if target == "commercetools":
                listed = {p["sku"] for p in active}
                rows = [
                    {
                        "sku": s["sku"],
                        "location": s["location"],
                        "on_hand": free_stock(s),
                        "available": free_stock(s),
                        "updated_at": fresh.pop(),
                    }
                    for s in self.stock
                    if s["sku"] in listed and s["location"] in WEB_LOCATIONS
                ]
                # A stock entry at 0 for a warehouse the ERP keeps no row for: 0 either way.
                stocked_dc2 = {s["sku"] for s in self.stock if s["location"] == "DC2"}
                empty = next(p["sku"] for p in active if p["sku"] not in stocked_dc2 and p["sku"] in ats)
                self.picker.reserve("sku", [empty])
                rows.append({"sku": empty, "location": "DC2", "on_hand": 0, "available": 0, "updated_at": fresh.pop()})
            else:
                rows = [
                    {"sku": p["sku"], "location": "*", "available": ats.get(p["sku"], 0), "updated_at": fresh.pop()}
                    for p in active
                ]
            self.retailer.held[target, "inventory"] = rows

    def _profiles(self) -> None:
        rng = self.draw("copies.klaviyo.profiles")
        captured = self.cap("klaviyo")
        profiles = []
        for person in self.people:
            seen = self.as_of(person, captured)
            typed = rng.random()
            email = seen["email"]
            if typed < 0.1:
                email = email.title()
            elif typed < 0.15:
                email = email + " "
            profiles.append(
                {
                    "customer_id": "01H" + "".join(rng.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(23)),
                    # signed up before they had an account: no external_id, matched by email
                    "erp_customer_id": None if rng.random() < 0.1 else person["customer_id"],
                    "email": email,
                    "email_consent": seen["email_consent"],
                    "sms_consent": seen["sms_consent"],
                    "consent_updated_at": seen["consent_updated_at"],
                    "first_name": seen["first_name"],
                    "last_name": seen["last_name"],
                    "postcode": seen["postcode"],
                    "country": seen["country"],
                    "updated_at": min(seen["updated_at"] + timedelta(minutes=rng.randint(1, 60)), captured),
                }
            )
        for n in range(4):  # newsletter sign-ups who never bought: no customer behind them
            profiles.append(
                {
                    "customer_id": "01J" + "".join(rng.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(23)),
                    "erp_customer_id": None,
                    "email": f"reader{n + 1}@example.org",
                    "email_consent": True,
                    "sms_consent": None,
                    "consent_updated_at": self.quiet - (n + 3) * DAY,
                    "first_name": None,
                    "last_name": None,
                    "postcode": None,
                    "country": None,
                    "updated_at": self.quiet - (n + 3) * DAY,
                }
            )
        self.retailer.held["klaviyo", "customers"] = profiles

    def _contacts(self) -> None:
        rng = self.draw("copies.emarsys.contacts")
        captured = self.cap("emarsys")
        contacts = []
        for n, person in enumerate(self.people):
            seen = self.as_of(person, captured)
            contacts.append(
                {
                    "customer_id": str(70_000_001 + n),
                    "erp_customer_id": person["customer_id"],
                    "email": seen["email"],
                    "email_consent": seen["email_consent"],
                    "first_name": seen["first_name"],
                    "last_name": seen["last_name"],
                    "postcode": seen["postcode"],
                    "country": seen["country"],
                    "updated_at": min(seen["updated_at"] + timedelta(minutes=rng.randint(1, 60)), captured),
                }
            )
        self.retailer.held["emarsys", "customers"] = contacts

    def _events(self) -> None:
        """Klaviyo's order metrics, each sent minutes after the storefront's change; none after capture."""
        rng = self.draw("copies.klaviyo.events")
        captured = self.cap("klaviyo")
        events = []

        def event(order: Record, metric: str, at: datetime, value: Decimal, suffix: str = "") -> None:
            if at <= captured:
                events.append(
                    {
                        "event_id": f"EV-{order['order_id']}-{metric.removeprefix('order_')}{suffix}",
                        "metric": metric,
                        "order_id": order["order_id"],
                        "email": order["email"],
                        "occurred_at": at,
                        "value": value,
                    }
                )

        for order in self.orders:
            event(order, "order_placed", order["placed_at"] + timedelta(minutes=rng.randint(1, 5)), order["total"])
            if order["shipped_at"] is not None:
                lag = timedelta(minutes=rng.randint(10, 180))
                event(order, "order_fulfilled", order["shipped_at"] + lag, order["total"])
            if order["cancelled_at"] is not None:
                lag = timedelta(minutes=rng.randint(1, 30))
                event(order, "order_cancelled", order["cancelled_at"] + lag, order["total"])
            for n, ret in enumerate(order["returns"], start=1):
                if ret["status"] == REFUNDED:
                    lag = timedelta(minutes=rng.randint(10, 180))
                    event(order, "order_refunded", ret["processed_at"] + lag, ret["amount"], f"-{n}")
        self.retailer.held["klaviyo", "events"] = events

    def _sales_data(self) -> None:
        """Emarsys sales data: the orders placed before its capture, taken-back quantities as of then."""
        captured = self.cap("emarsys")
        sold = [o for o in self.orders if o["placed_at"] <= captured]
        self.retailer.held["emarsys", "orders"] = [
            {
                "order_id": o["order_id"],
                "external_id": o["order_id"],
                "channel": CHANNEL,
                "email": o["email"],
                "placed_at": o["placed_at"],
                "total": o["total"],
                "currency": CURRENCY,
            }
            for o in sold
        ]
        self.retailer.held["emarsys", "order_lines"] = [
            {k: v for k, v in line.items() if k != "qty_shipped"}
            for o in sold
            for line in self._line_records(o, at=captured)
        ]

    # --- injected drift ----------------------------------------------------------------------------------
    def drift(self) -> None:
        self._stock_drift()
        self._catalogue_drift()
        self._order_drift()
        self._customer_drift()

    def _stock_drift(self) -> None:
        answer, pick, ats = self.retailer.answer, self.picker.pick, self.ats()
        active = {p["sku"] for p in self.active_products()}
        web = [s for s in self.stock if s["sku"] in active and s["location"] in WEB_LOCATIONS]
        row = pick("sku", [s for s in web if s["location"] == "DC1" and free_stock(s) >= 3], "sku")[0]
        self.retailer.set(
            "commercetools",
            "inventory",
            {"sku": row["sku"], "location": "DC1"},
            on_hand=free_stock(row) - 3,
            available=free_stock(row) - 3,
        )
        answer(
            "stock_parity",
            "commercetools",
            sku_location(row["sku"], "DC1"),
            "available",
            "commercetools DC1 holds 3 fewer than ERP available-to-sell there",
        )
        row = pick("sku", [s for s in web if s["location"] == "DC2" and free_stock(s) > 0], "sku")[0]
        self.retailer.drop("commercetools", "inventory", sku=row["sku"], location="DC2")
        answer(
            "stock_parity",
            "commercetools",
            sku_location(row["sku"], "DC2"),
            "available",
            "no commercetools stock entry at DC2 where the ERP has stock to sell",
        )
        candidates = [{"sku": s, "ats": a} for s, a in ats.items() if s in active]
        row = pick("sku", [c for c in candidates if c["ats"] >= 1], "sku")[0]
        self.retailer.set("klaviyo", "inventory", {"sku": row["sku"]}, available=row["ats"] + 4)
        answer("stock_parity", "klaviyo", row["sku"], "available", "klaviyo shows 4 more than ATS: oversell risk")
        zero = [{"sku": p["sku"]} for p in self.active_products() if ats.get(p["sku"], 0) == 0 and p["sku"] in ats]
        row = pick("sku", zero, "sku")[0]
        self.retailer.set("emarsys", "inventory", {"sku": row["sku"]}, available=5)
        answer("stock_parity", "emarsys", row["sku"], "available", "emarsys shows 5 in stock, ERP ATS is 0")

        inflatable = [
            s for s in self.stock if s["on_order"] > 0 and s["on_hand"] - s["allocated"] - s["safety_stock"] >= 0
        ]
        row = pick("sku", inflatable, "sku")[0]
        row["available"] = free_stock(row) + row["on_order"]
        answer(
            "ats_inflation",
            "bluecherry",
            sku_location(row["sku"], row["location"]),
            "available",
            "Avail QOH counts the open work orders (Total Ship To WIP)",
        )

        for target, hours in (("klaviyo", 40), ("commercetools", 55)):
            rows = [r for r in self.retailer.rows(target, "inventory") if r["sku"] in active]
            row = pick("sku", rows, "sku")[0]
            row["updated_at"] = self.cap(target) - hours * HOUR
            key = sku_location(row["sku"], row["location"]) if target == "commercetools" else row["sku"]
            answer(
                "stock_staleness", target, key, "updated_at", f"{target} stock last updated {hours} h before capture"
            )

    def _catalogue_drift(self) -> None:
        answer, pick, ats = self.retailer.answer, self.picker.pick, self.ats()
        row = pick("sku", self.active_products(), "sku")[0]
        self.retailer.drop("emarsys", "products", sku=row["sku"])
        self.retailer.drop("emarsys", "inventory", sku=row["sku"])
        answer("catalogue_parity", "emarsys", row["sku"], "", "active ERP SKU missing from the emarsys catalogue")
        unknown = "04199-999-OS"
        self.retailer.rows("emarsys", "products").append(
            {
                "sku": unknown,
                "name": "Sample Beanie",
                "price": money("25.00"),
                "currency": CURRENCY,
                "status": "active",
                "updated_at": self.quiet,
            }
        )
        self.retailer.rows("emarsys", "inventory").append(
            {"sku": unknown, "location": "*", "available": 3, "updated_at": self.cap("emarsys") - HOUR}
        )
        answer("catalogue_parity", "emarsys", unknown, "", "emarsys lists a SKU the ERP does not know")
        retired = [p for p in self.products if PRODUCT_STATUSES[p["status"]] == "discontinued"]
        row = pick("sku", retired, "sku")[0]
        self.retailer.rows("klaviyo", "products").append(
            {
                "sku": row["sku"],
                "name": row["name"],
                "price": row["price"],
                "currency": CURRENCY,
                "status": "active",
                "updated_at": self.quiet,
            }
        )
        self.retailer.rows("klaviyo", "inventory").append(
            {
                "sku": row["sku"],
                "location": "*",
                "available": ats.get(row["sku"], 0),
                "updated_at": self.cap("klaviyo") - HOUR,
            }
        )
        answer("catalogue_parity", "klaviyo", row["sku"], "status", "retired in the ERP, still live on klaviyo")
        row = pick("sku", self.active_products(), "sku")[0]
        self.retailer.set("commercetools", "products", {"sku": row["sku"]}, price=row["price"] + 10)
        answer("catalogue_parity", "commercetools", row["sku"], "price", "commercetools price 10.00 above the ERP")
        row = pick("sku", [p for p in self.active_products() if p["status"] == "ACTIVE"], "sku")[0]
        row["status"] = UNMAPPED_PRODUCT_STATUS
        answer(
            "unmapped_codes", "bluecherry", UNMAPPED_PRODUCT_STATUS, "status", "a product status word no mapping names"
        )

    def _order_drift(self) -> None:
        answer, pick = self.retailer.answer, self.picker.pick
        klaviyo, emarsys = self.cap("klaviyo"), self.cap("emarsys")

        def settled(order: Record) -> bool:  # shipped three days before any capture, 8 h or more after placing
            return (
                order["state"] in SHIPPED
                and order["shipped_at"] <= self.quiet - 3 * DAY
                and order["shipped_at"] - order["placed_at"] >= 8 * HOUR
                and not order["returns"]
            )

        for order in pick("order", self.orders_where(settled), "order_id", 2):
            self.retailer.drop("emarsys", "orders", order_id=order["order_id"])
            self.retailer.drop("emarsys", "order_lines", order_id=order["order_id"])
            answer("order_presence", "emarsys", order["order_id"], "", "storefront order never reached emarsys")
        order = pick("order", self.orders_where(lambda o: o["state"] == "accepted"), "order_id")[0]
        self.retailer.drop("klaviyo", "events", order_id=order["order_id"])
        answer("order_presence", "klaviyo", order["order_id"], "", "no event of this order reached klaviyo")

        order = pick("order", self.orders_where(settled), "order_id")[0]
        self.retailer.drop("klaviyo", "events", order_id=order["order_id"], metric="order_fulfilled")
        note = "shipped in the storefront, no Fulfilled Order event on klaviyo"
        answer("fulfilment_events", "klaviyo", order["order_id"], "order_fulfilled", note)
        answer("order_status_drift", "klaviyo", order["order_id"], "status", note + ": the derived order stays placed")
        for hours, order in zip((30, -3), pick("order", self.orders_where(settled), "order_id", 2), strict=True):
            self.retailer.set(
                "klaviyo",
                "events",
                {"order_id": order["order_id"], "metric": "order_fulfilled"},
                occurred_at=order["shipped_at"] + hours * HOUR,
            )
            answer(
                "fulfilment_events",
                "klaviyo",
                order["order_id"],
                "order_fulfilled",
                f"Fulfilled Order sent {abs(hours)} h {'after' if hours > 0 else 'before'} the shipment",
            )
        cancelled = self.orders_where(lambda o: o["state"] == "cancelled", lambda o: o["cancelled_at"] <= self.quiet)
        order = pick("order", cancelled, "order_id")[0]
        self.retailer.drop("klaviyo", "events", order_id=order["order_id"], metric="order_cancelled")
        note = "cancelled in the storefront, no Cancelled Order event on klaviyo"
        answer("fulfilment_events", "klaviyo", order["order_id"], "order_cancelled", note)
        answer("order_status_drift", "klaviyo", order["order_id"], "status", note + ": klaviyo still shows it placed")
        refunded = self.orders_where(lambda o: any(r["status"] == REFUNDED for r in o["returns"]))
        order = pick("order", refunded, "order_id")[0]
        self.retailer.drop("klaviyo", "events", order_id=order["order_id"], metric="order_refunded")
        answer(
            "fulfilment_events",
            "klaviyo",
            order["order_id"],
            "order_refunded",
            "a refunded return (Returned/Refunded) with no Refunded Order event",
        )

        order = pick("order", self.orders_where(settled, lambda o: o["placed_at"] <= klaviyo), "order_id")[0]
        self.retailer.set(
            "klaviyo", "events", {"order_id": order["order_id"], "metric": "order_placed"}, value=order["total"] + 5
        )
        answer("order_value_drift", "klaviyo", order["order_id"], "total", "Placed Order value 5.00 above the total")
        order = pick("order", self.orders_where(settled), "order_id")[0]
        self.retailer.set(
            "emarsys",
            "order_lines",
            {"order_id": order["order_id"], "line_no": 1},
            qty_ordered=order["lines"][0]["qty"] + 1,
        )
        answer("order_value_drift", "emarsys", order["order_id"], "qty_ordered", "sales line 1 has one unit too many")

        def refunded_before(at: datetime):
            return lambda o: any(r["status"] == REFUNDED and r["processed_at"] <= at - 2 * DAY for r in o["returns"])

        order = pick("order", self.orders_where(refunded_before(emarsys)), "order_id")[0]
        self.retailer.set("emarsys", "order_lines", {"order_id": order["order_id"], "line_no": 1}, qty_returned=0)
        answer("returns_sync", "emarsys", order["order_id"], "qty_returned", "refunded return not on emarsys")

    def _customer_drift(self) -> None:
        answer, pick = self.retailer.answer, self.picker.pick
        profiles = {p["erp_customer_id"]: p for p in self.retailer.rows("klaviyo", "customers") if p["erp_customer_id"]}
        contacts = {c["erp_customer_id"]: c for c in self.retailer.rows("emarsys", "customers")}
        on_klaviyo = [p for p in self.people if p["customer_id"] in profiles]

        person = pick("customer", [p for p in on_klaviyo if not p["email_consent"]], "customer_id")[0]
        profiles[person["customer_id"]]["email_consent"] = True
        answer(
            "consent_parity",
            "klaviyo",
            person["customer_id"],
            "email_consent",
            "opted out in the storefront, subscribed on klaviyo",
        )
        person = pick("customer", [p for p in on_klaviyo if not p["sms_consent"]], "customer_id")[0]
        profiles[person["customer_id"]]["sms_consent"] = True
        answer("consent_parity", "klaviyo", person["customer_id"], "sms_consent", "SMS subscribed on klaviyo only")
        person = pick("customer", [p for p in self.people if p["email_consent"]], "customer_id")[0]
        contacts[person["customer_id"]]["email_consent"] = False
        answer("consent_parity", "emarsys", person["customer_id"], "email_consent", "opted in, 2 (out) on emarsys")

        person = pick("customer", self.people, "customer_id")[0]
        contacts[person["customer_id"]]["email"] = "old." + person["email"]
        answer("customer_master_parity", "emarsys", person["customer_id"], "email", "emarsys keeps an old email")
        person = pick("customer", on_klaviyo, "customer_id")[0]
        profiles[person["customer_id"]]["last_name"] = person["last_name"] + "-Hart"
        answer("customer_master_parity", "klaviyo", person["customer_id"], "last_name", "another last name")
        person = pick("customer", on_klaviyo, "customer_id")[0]
        profiles[person["customer_id"]]["postcode"] = "ZZ9 9ZZ"
        answer("customer_master_parity", "klaviyo", person["customer_id"], "postcode", "another postcode")
        person = pick("customer", on_klaviyo, "customer_id")[0]
        original = profiles[person["customer_id"]]
        self.retailer.rows("klaviyo", "customers").append(
            {
                **original,
                "customer_id": "01K" + original["customer_id"][3:],
                "email": "old." + person["email"],
                "email_consent": False,
                "sms_consent": False,
                "updated_at": original["updated_at"] - 30 * DAY,
            }
        )
        answer("customer_master_parity", "klaviyo", person["customer_id"], "profiles", "two profiles, one customer")
        person = pick("customer", self.people, "customer_id")[0]
        self.retailer.drop("emarsys", "customers", erp_customer_id=person["customer_id"])
        answer("customer_master_parity", "emarsys", person["customer_id"], "", "no emarsys contact for the customer")
