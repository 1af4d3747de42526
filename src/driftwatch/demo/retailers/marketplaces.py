"""Retailer C, "Maison Arlo": BlueCherry owns everything; Emarsys and Ometria market it; two Mirakl marketplaces.

The shape
---------
A French brand on CGS BlueCherry, which is the system of record for products, packs, stock, customers,
orders and their lines, shipments, returns (return authorisations and credit memos) and journal entries.
Customers pay in GBP, EUR or USD (the web shop's price lists: GBP and USD are the EUR list converted);
the catalogue is EUR. 60 garments, a merino sock sold alone and in packs of 2 and 3 (and in a gift pack
with a scarf: three packs share the sock), 70 customers, about 150 orders. Warehouses: EU1 (the web DC),
FR1 and DE1, each shipping one marketplace.

    bluecherry -> emarsys    customers (contacts by email: no ERP id stored), web orders and lines
                             (sales data), products, inventory (EU1)
    bluecherry -> ometria    customers (with lifetime value, order count, last order), web and store
                             orders and lines, products, inventory (EU1)
    bluecherry -> mirakl_fr  channel MKP-FR from warehouse FR1: offers, stock, orders, lines, shipments,
                             payout lines (commission 15 %)
    bluecherry -> mirakl_de  channel MKP-DE from warehouse DE1: the same (commission 12 %)

Its own vocabulary: BlueCherry exports with this client's own headers (`Item Number`, `Whse`, `On Hand`,
`Avail To Sell`, ...: mapped in `[sources.bluecherry.column_map]`), ISO dates, product statuses A / S / D,
order statuses as codes (10, 20, 50, 60, 90, 95), returns as RA (authorised) and CM (credit memo issued);
Emarsys opt-in (field 31) as 1 / 2 and emails as typed in capitals; Ometria opt-in as EXPLICITLY_OPTEDIN /
EXPLICITLY_OPTEDOUT, order statuses pending / shipped / complete / cancelled, order times in Paris time
with their offset, amounts without trailing zeros (129, 49.9), and a stock export without a `location`
column;
Mirakl order states, carrier codes (the ERP names carriers by name: `carrier_map`).

What is not drift (in both twins)
---------------------------------
Packs whose ATS is the minimum over components of floor(component ATS / qty), per marketplace warehouse;
a location where on hand less allocated is negative (ATS 0 there, and the ERP shows 0); an active SKU the
ERP has no stock row for, listed at 0 everywhere; a customer merged into another that keeps the same
email (the platform's one contact for that email belongs to the survivor); Ometria `complete` against an
ERP order closed (Ometria cannot say closed); and, because the sources were captured at different times
(Emarsys 23:45, Ometria 01:10, mirakl_de 01:30, mirakl_fr 02:00, BlueCherry 02:30; pulled through the
connectors, the BlueCherry export lands an hour after the pulls): an order placed after a target's
capture, a marketplace order placed after its marketplace's capture and already imported, an order
cancelled, a refund and an opt-out recorded after a target's capture (the target's lifetime value, order
and consent are what the ERP said at that capture).

Decisions where DESIGN.md is silent
-----------------------------------
- A customer merged into another keeps no profile of their own and no orders; their survivor's profile
  carries the shared email.
- Lifetime value on Ometria is the ERP's net value as of Ometria's capture.
- Every marketplace order reaches the ERP in the clean twin, awaiting acceptance for a few hours at most.

Injected drift
--------------
stock_parity (oversell on mirakl_fr, a pack of 3 above its floor on mirakl_de, below ATS on ometria, in
stock on emarsys where ATS is 0), ats_inflation (Avail To Sell counting WIP at FR1), stock_staleness
(ometria 30 h, emarsys 50 h), catalogue_parity (a SKU missing on mirakl_de, an unknown SKU on ometria, a
discontinued SKU live on mirakl_fr, a price off on emarsys), order_presence (a web order missing on
ometria, an accepted order missing on mirakl_fr, a mirakl_de order the ERP lost), acceptance_sla (+
order_presence: a mirakl_fr order awaiting acceptance 60 h, not in the ERP), order_status_drift (shipped
on mirakl_de before the ERP dispatched, cancelled in the ERP but pending on ometria), order_value_drift
(ometria total, mirakl_fr unit price, emarsys quantity), unmapped_codes (ERP 85, mirakl_fr WAITING_REFUND,
ometria on_hold), tracking_sync (no tracking on mirakl_de, a wrong carrier on mirakl_fr), consent_parity
(subscribed on ometria while opted out, 2 on emarsys while opted in), customer_master_parity (ometria
last name, emarsys postcode, a merged customer still a separate contact on ometria), ltv_after_refunds
(ometria value ignoring a refund, an order count one too high), returns_sync (ometria and mirakl_de),
payout_matching (per marketplace: an order amount off, a commission at the wrong rate, a fee without a
journal entry).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
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
    net_value,
    pack_ats,
)
from driftwatch.demo.retailers._files import Export, Written, bare_number, canonical, local_time, upper

NAME = "marketplaces"
KINDS = {
    "bluecherry": "bluecherry",
    "emarsys": "emarsys",
    "ometria": "ometria",
    "mirakl_fr": "mirakl",
    "mirakl_de": "mirakl",
}
BASE = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DROP_CAPTURES = {
    "bluecherry": timedelta(0),
    "mirakl_fr": -45 * MINUTE,
    "mirakl_de": -60 * MINUTE,
    "ometria": -80 * MINUTE,
    "emarsys": -165 * MINUTE,
}
ERP_LANDS_AFTER_PULL = HOUR
MARKETPLACES = {  # source -> (ERP channel, warehouse, commission, order id prefix)
    "mirakl_fr": ("MKP-FR", "FR1", Decimal("0.15"), "FR"),
    "mirakl_de": ("MKP-DE", "DE1", Decimal("0.12"), "DE"),
}
WEB_LOCATIONS = ("EU1",)
LOCATIONS = ("EU1", "FR1", "DE1")
STYLES = (
    ("21001", "Wrap Dress", "129.00"),
    ("21002", "Silk Blouse", "98.00"),
    ("21003", "Wool Coat", "320.00"),
    ("21004", "Pleated Skirt", "85.00"),
    ("21005", "Cashmere Knit", "189.00"),
    ("21006", "Linen Trouser", "95.00"),
    ("21007", "Denim Jacket", "139.00"),
    ("21008", "Jersey Tee", "39.00"),
    ("21009", "Merino Scarf", "59.00"),
    ("21010", "Trench", "280.00"),
)
COLOURS = ("01", "12", "30", "44", "57", "63")
SIZES = ("S", "M", "L")
SOCK = "29001-01-OS"
SCARF_STYLE = "21009"
PACKS = (  # pack SKU, name, price, components (sku or scarf, qty)
    ("P2-29001", "Merino Sock 2-pack", "27.00", ((SOCK, 2),)),
    ("P3-29001", "Merino Sock 3-pack", "39.00", ((SOCK, 3),)),
    ("PGIFT-01", "Gift Box Sock and Scarf", "69.00", ((SOCK, 1), (SCARF_STYLE, 1))),
)
PRODUCT_STATUSES = {"A": "active", "S": "active", "D": "discontinued"}
RATES = {"EUR": Decimal("1"), "GBP": Decimal("0.86"), "USD": Decimal("1.08")}
ERP_STATUS = {"placed": "10", "accepted": "20", "shipped": "50", "delivered": "60", "cancelled": "90", "closed": "95"}
MIRAKL_STATUS = {
    "placed": "WAITING_ACCEPTANCE",
    "accepted": "SHIPPING",
    "shipped": "SHIPPED",
    "delivered": "RECEIVED",
    "closed": "CLOSED",
    "cancelled": "CANCELED",
}
OMETRIA_STATUS = {
    "placed": "pending",
    "accepted": "pending",
    "shipped": "shipped",
    "delivered": "complete",
    "closed": "complete",
    "cancelled": "cancelled",
}
RETURN_STATUSES = {"CM": "refunded", "RA": "authorised"}
CARRIERS = {"Colissimo": "COLISSIMO", "DHL Express": "DHL", "UPS": "UPS", "DPD": "DPD"}  # ERP name -> Mirakl code
UNMAPPED_CARRIER = "Chronopost"
NEW_WAREHOUSE = "EU2"  # opened in the ERP, not yet in any feed
SHIPPED = ("shipped", "delivered", "closed")
SUBSCRIPTION_FEE = Decimal("29.00")
ACCOUNTS = {"commission": "6100", "refund_commission": "6110", "fee": "6200"}
FIRST = ("Anne", "Bruno", "Claire", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jules", "Karl", "Lea")
LAST = ("Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Schmidt", "Weber", "Smith", "Jones", "Brown")
COUNTRIES = {"GB": "GBP", "FR": "EUR", "DE": "EUR", "US": "USD"}


def drop_captures(base: datetime = BASE) -> dict[str, datetime]:
    return {source: base + offset for source, offset in DROP_CAPTURES.items()}


def pull_captures(now: datetime) -> dict[str, datetime]:
    """Pulled through the APIs, every platform is captured at the pull; the ERP's nightly export lands an
    hour later (its manifest says so), holding what happened in that hour."""
    return {
        source: now + (ERP_LANDS_AFTER_PULL if kind == "bluecherry" else timedelta(0)) for source, kind in KINDS.items()
    }


def build(seed: int = 21, drift: bool = True, captures: dict[str, datetime] | None = None) -> Retailer:
    shop = _Marketplaces(seed, captures or drop_captures())
    shop.catalogue()
    shop.customers()
    shop.trade()
    shop.copies()
    shop.payout_lines()
    if drift:
        shop.drift()
    shop.payments()  # a payment is the sum of every other line of its document, drift included
    return shop.retailer


FEEDS = [
    {
        "source": "bluecherry",
        "target": "emarsys",
        "channels": ["web"],
        "locations": list(WEB_LOCATIONS),
        "entities": ["customers", "orders", "order_lines", "products", "inventory"],
    },
    {
        "source": "bluecherry",
        "target": "ometria",
        "channels": ["web", "store"],
        "locations": list(WEB_LOCATIONS),
        "entities": ["customers", "orders", "order_lines", "products", "inventory"],
    },
    *(
        {
            "source": "bluecherry",
            "target": source,
            "channels": [channel],
            "locations": [warehouse],
            "entities": ["products", "inventory", "orders", "order_lines", "shipments", "payout_lines"],
        }
        for source, (channel, warehouse, _, _) in MARKETPLACES.items()
    ),
]
COLUMN_MAP = {
    "products": {
        "Item Number": "sku",
        "Colour": "colour",
        "Description": "name",
        "Retail EUR": "price",
        "Item Status": "status",
        "Changed": "updated_at",
    },
    "inventory": {
        "Item Number": "sku",
        "Whse": "location",
        "On Hand": "on_hand",
        "Allocated": "allocated",
        "WIP Qty": "on_order",
        "Min Qty": "safety_stock",
        "Avail To Sell": "available",
        "As Of": "updated_at",
    },
}


def config(written: Written, connections: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The retailer's driftwatch.toml as tables; `connections` says how to reach each source."""
    sources: dict[str, dict[str, Any]] = {
        "bluecherry": {"column_map": COLUMN_MAP},
        **{source: {"kind": "mirakl", "carrier_map": CARRIERS} for source in MARKETPLACES},
    }
    for source, settings in (connections or {}).items():
        sources[source] = {**sources.get(source, {}), **settings}
    return {
        "store": {"path": "driftwatch.duckdb"},
        "audit": {"fail_on": "high"},
        "feeds": FEEDS,
        "sources": sources,
        "statuses": {
            "bluecherry": {
                **{code: state for state, code in ERP_STATUS.items()},
                "returns": RETURN_STATUSES,
                "products": PRODUCT_STATUSES,
            }
        },
        # Each marketplace is reconciled on its own, with its own channel and agreed commission.
        "payouts": {
            "erp": "bluecherry",
            "marketplaces": {
                source: {"channel": channel, "commission": {"default": str(rate)}}
                for source, (channel, _, rate, _) in MARKETPLACES.items()
            },
        },
    }


# --- how each platform exports ------------------------------------------------------------------------


def _get(column: str):
    return lambda r: r.get(column)


def exports() -> dict[tuple[str, str], Export]:
    products = Export(
        [
            ("Item Number", _get("sku")),
            ("Style", _get("style")),
            ("Colour", _get("colour")),
            ("Size", _get("size")),
            ("Description", _get("name")),
            ("Retail EUR", _get("price")),
            ("Currency", _get("currency")),
            ("Item Status", _get("status")),
            ("Changed", _get("updated_at")),
        ],
        date_format="%Y-%m-%d",
    )
    inventory = Export(
        [
            ("Item Number", _get("sku")),
            ("Whse", _get("location")),
            ("On Hand", _get("on_hand")),
            ("Allocated", _get("allocated")),
            ("WIP Qty", _get("on_order")),
            ("Min Qty", _get("safety_stock")),
            ("Avail To Sell", _get("available")),
            ("As Of", _get("updated_at")),
        ],
        date_format="%Y-%m-%d",
    )

    def coded(column: str, codes: dict[Any, str]):
        return lambda r: codes[r[column]]

    contacts = ("customer_id", "email", "email_consent", "first_name", "last_name", "postcode", "country", "updated_at")
    ometria = (
        "customer_id",
        "erp_customer_id",
        "email",
        "email_consent",
        "sms_consent",
        "first_name",
        "last_name",
        "postcode",
        "country",
        "lifetime_value",
        "order_count",
        "last_order_at",
        "updated_at",
    )
    optin = {True: "EXPLICITLY_OPTEDIN", False: "EXPLICITLY_OPTEDOUT", None: "NOT_SPECIFIED"}
    emarsys_coded = {"email_consent": coded("email_consent", {True: "1", False: "2"}), "email": upper("email")}
    ometria_coded = {"email_consent": coded("email_consent", optin), "lifetime_value": bare_number("lifetime_value")}
    return {
        ("bluecherry", "products"): products,
        ("bluecherry", "inventory"): inventory,
        ("emarsys", "customers"): Export([(c, emarsys_coded.get(c, _get(c))) for c in contacts]),
        ("ometria", "customers"): Export([(c, ometria_coded.get(c, _get(c))) for c in ometria]),
        ("ometria", "orders"): Export(
            [
                (c, local_time(c, "Europe/Paris") if c.endswith("_at") else bare_number(c) if c == "total" else _get(c))
                for c in (
                    "order_id",
                    "external_id",
                    "channel",
                    "customer_id",
                    "email",
                    "status",
                    "placed_at",
                    "updated_at",
                    "total",
                    "currency",
                )
            ]
        ),
        ("ometria", "products"): Export(
            [
                (c, bare_number(c) if c == "price" else _get(c))
                for c in ("sku", "name", "price", "currency", "status", "updated_at")
            ]
        ),
        ("ometria", "inventory"): canonical("sku", "available", "updated_at"),  # no location column
    }


# --- the retailer --------------------------------------------------------------------------------------


class _Marketplaces(Shape):
    name, kinds = NAME, KINDS

    def __init__(self, seed: int, captures: dict[str, datetime]) -> None:
        super().__init__(seed, captures)
        self.last_target = max(c for s, c in captures.items() if s != "bluecherry")
        self.products: list[Record] = []
        self.components: list[Record] = []
        self.stock: list[Record] = []
        self.unknown_value: set[str] = set()  # customers with an order whose ERP status no mapping names

    # --- catalogue, packs and stock ---------------------------------------------------------------------
    def catalogue(self) -> None:
        rng = self.draw("catalogue")
        day = self.cap("bluecherry").replace(hour=0, minute=0, second=0, microsecond=0)
        for style, name, price in STYLES:
            for colour in rng.sample(COLOURS, 2):
                for size in SIZES:
                    self._product(f"{style}-{colour}-{size}", style, colour, size, f"{name} {colour}", price, day, rng)
        self._product(SOCK, "29001", "01", "OS", "Merino Sock", "15.00", day, rng)
        scarf = next(p["sku"] for p in self.products if p["style"] == SCARF_STYLE)
        for sku, name, price, parts in PACKS:
            self._product(sku, sku.split("-")[0], "00", "OS", name, price, day, rng)
            for part, qty in parts:
                self.components.append(
                    {"pack_sku": sku, "component_sku": scarf if part == SCARF_STYLE else part, "qty": qty}
                )
        self.picker.reserve("sku", [SOCK, scarf, *(p[0] for p in PACKS)])
        garments = [p for p in self.products if p["style"].startswith("21") and p["sku"] != scarf]
        for product in rng.sample(garments, 4):
            product["status"] = "D"
        for product in rng.sample([p for p in garments if p["status"] == "A"], 3):
            product["status"] = "S"  # end of season: still sold
        self._stock(rng, day)
        self.retailer.held["bluecherry", "products"] = self.products
        self.retailer.held["bluecherry", "pack_components"] = self.components
        self.retailer.held["bluecherry", "inventory"] = self.stock

    def _product(
        self, sku: str, style: str, colour: str, size: str, name: str, price: str, day: datetime, rng: Any
    ) -> None:
        self.products.append(
            {
                "sku": sku,
                "style": style,
                "colour": colour,
                "size": size,
                "name": name,
                "price": money(price),
                "currency": "EUR",
                "status": "A",
                "updated_at": day - rng.randint(3, 300) * DAY,
            }
        )

    def active(self) -> list[Record]:
        return [p for p in self.products if PRODUCT_STATUSES.get(p["status"]) == "active"]

    def is_pack(self, sku: str) -> bool:
        return any(c["pack_sku"] == sku for c in self.components)

    def _stock(self, rng: Any, day: datetime) -> None:
        reserved = self.picker.reserved("sku")
        unstocked = rng.choice([p for p in self.active() if p["style"].startswith("21") and p["sku"] not in reserved])
        self.unstocked = unstocked["sku"]  # a new arrival: listed everywhere at 0, no ERP stock row
        self.picker.reserve("sku", [self.unstocked])
        short = None
        for product in self.products:
            if self.is_pack(product["sku"]) or product["sku"] == self.unstocked:
                continue
            for location in LOCATIONS:
                if location != "EU1" and product["sku"] != SOCK and rng.random() < 0.3:
                    continue
                on_hand = 0 if rng.random() < 0.12 else rng.randint(1, 40 if location == "EU1" else 15)
                allocated = rng.randint(0, min(on_hand, 4))
                if location == "FR1" and short is None and product["sku"] != SOCK:
                    on_hand, allocated = 1, 3  # allocated beyond what is on the shelf: ATS 0, never -2
                    short = product["sku"]
                row = {
                    "sku": product["sku"],
                    "location": location,
                    "on_hand": on_hand,
                    "allocated": allocated,
                    "on_order": rng.randint(5, 30) if rng.random() < 0.3 else 0,
                    "safety_stock": rng.randint(0, 1) if location == "EU1" else 0,
                    "updated_at": day,
                }
                row["available"] = free_stock(row)
                self.stock.append(row)
        self.picker.reserve("sku", [short])

    def ats(self, locations: tuple[str, ...]) -> dict[str, int]:
        """Available-to-sell over `locations`, packs included."""
        ats = available_to_sell(self.stock, locations)
        return ats | pack_ats(ats, self.components)

    def target_ats(self, target: str) -> dict[str, int]:
        return self.ats((MARKETPLACES[target][1],) if target in MARKETPLACES else WEB_LOCATIONS)

    # --- customers ---------------------------------------------------------------------------------------
    def customers(self) -> None:
        rng = self.draw("customers")
        for n in range(70):
            u = rng.random()
            channel = "web" if u < 0.55 else "store" if u < 0.7 else rng.choice(list(MARKETPLACES))
            country = rng.choice(("GB", "GB", "FR", "FR", "DE", "DE", "US")) if channel == "web" else "FR"
            if channel in MARKETPLACES:
                country = "FR" if channel == "mirakl_fr" else "DE"
            first, last = rng.choice(FIRST), rng.choice(LAST)
            consent_at = self.quiet - rng.randint(5, 500) * DAY
            person = {
                "customer_id": f"C{10001 + n}",
                "channel": channel,
                "currency": COUNTRIES[country],
                "email": None if channel in MARKETPLACES else f"{first}.{last}.{10001 + n}@example.eu".lower(),
                "email_consent": None if channel in MARKETPLACES else rng.random() < 0.55,
                "sms_consent": None if channel in MARKETPLACES else rng.random() < 0.2,
                "consent_updated_at": consent_at,
                "first_name": first,
                "last_name": last,
                "postcode": f"{rng.randint(10000, 99999)}" if country != "GB" else f"EC{rng.randint(1, 4)}A 1BB",
                "country": country,
                "merged_into": None,
            }
            person["updated_at"] = max(consent_at, self.quiet - rng.randint(1, 60) * DAY)
            self.people.append(person)
        web = [p for p in self.people if p["channel"] == "web"]
        # Two merges: one pair keeps the same email on both accounts, the other does not.
        for (merged, survivor), same_email in zip((web[3:5], web[7:9]), (True, False), strict=True):
            merged["merged_into"] = survivor["customer_id"]
            if same_email:
                merged["email"] = survivor["email"]
            self.picker.reserve("customer", [merged["customer_id"], survivor["customer_id"]])
        self.merged_other = web[7]
        self._consent_trap()
        self.retailer.held["bluecherry", "customers"] = [
            {k: v for k, v in p.items() if k not in ("channel", "currency")} for p in self.people
        ]

    def _consent_trap(self) -> None:
        """An opt-out recorded after every target's capture but before the ERP's."""
        if self.cap("bluecherry") - self.last_target < 20 * MINUTE:
            return
        person = self.picker.one("customer", [p for p in self.marketing() if p["email_consent"]], "customer_id")
        when = self.last_target + 10 * MINUTE
        self.history[person["customer_id"]] = (
            when,
            {
                "email_consent": True,
                "consent_updated_at": person["consent_updated_at"],
                "updated_at": person["updated_at"],
            },
        )
        person.update(email_consent=False, consent_updated_at=when, updated_at=when)

    def marketing(self) -> list[Record]:
        """Customers a marketing platform holds: with an email, not merged into another."""
        return [p for p in self.people if p["email"] is not None and p["merged_into"] is None]

    # --- orders ------------------------------------------------------------------------------------------
    def trade(self) -> None:
        rng = self.draw("orders")
        for person in self.people:
            if person["merged_into"] is not None:
                continue
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
                self._order(rng, person, self._state(rng, person["channel"]))
        self._order_traps(rng)
        held = self.retailer.held
        held["bluecherry", "orders"] = [self._order_record(o) for o in self.orders]
        held["bluecherry", "order_lines"] = [line for o in self.orders for line in self._lines_as_of(o, None)]
        held["bluecherry", "shipments"] = [o["shipment"] for o in self.orders if o["shipment"]]
        held["bluecherry", "returns"] = [r for o in self.orders for r in o["returns"]]

    @staticmethod
    def _state(rng: Any, channel: str) -> str:
        shares = (("placed", 0.06), ("accepted", 0.13), ("cancelled", 0.24), ("shipped", 0.5), ("delivered", 0.75))
        if channel in MARKETPLACES:
            shares = (("placed", 0.08), ("accepted", 0.24), ("cancelled", 0.3), ("shipped", 0.55), ("delivered", 0.8))
        u = rng.random()
        return next((state for state, upto in shares if u < upto), "closed")

    def _order(self, rng: Any, person: Record, state: str, placed: datetime | None = None) -> Record:
        marketplace = person["channel"] in MARKETPLACES
        hours = {
            "placed": (1, 4 if marketplace else 14),
            "accepted": (2, 30),
            "cancelled": (48, 4000),
            "shipped": (72, 600),
            "delivered": (150, 1400),
            "closed": (960, 6000),
        }[state]
        placed = placed or self.quiet - timedelta(minutes=rng.randint(hours[0] * 60, hours[1] * 60))
        n = len(self.orders) + 1
        channel = MARKETPLACES[person["channel"]][0] if marketplace else person["channel"]
        order = {
            "order_id": f"SO{20000 + n}",
            "external_id": (
                f"{MARKETPLACES[person['channel']][3]}-{n:06d}-A"
                if marketplace
                else f"W{5000 + n}"
                if channel == "web"
                else None
            ),
            "channel": channel,
            "marketplace": person["channel"] if marketplace else None,
            "customer_id": person["customer_id"],
            "email": person["email"],
            "currency": "EUR" if marketplace else person["currency"],
            "state": state,
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
                days = (2, 4) if state == "delivered" else (20, 30)
                order["updated_at"] = order["shipped_at"] + timedelta(hours=rng.randint(days[0] * 24, days[1] * 24))
        self._lines(rng, order)
        if order["shipped_at"] is not None:
            carrier = rng.choice(sorted(CARRIERS))
            order["shipment"] = {
                "shipment_id": f"SH{20000 + n}",
                "order_id": order["order_id"],
                "carrier": carrier,
                "tracking_number": f"{CARRIERS[carrier][:3]}{rng.randint(10**9, 10**10 - 1)}",
                "shipped_at": order["shipped_at"],
            }
            if rng.random() < 0.2:
                self._return(rng, order)
        self.orders.append(order)
        return order

    def _lines(self, rng: Any, order: Record) -> None:
        sellable = self.active()
        order["lines"] = []
        for line_no in range(1, rng.choice((1, 1, 2, 2, 3)) + 1):
            product = rng.choice(sellable)
            unit = (product["price"] * RATES[order["currency"]]).quantize(Decimal("0.01"), ROUND_HALF_UP)
            order["lines"].append(
                {"line_no": line_no, "sku": product["sku"], "qty": 1 if rng.random() < 0.8 else 2, "unit": unit}
            )
        order["merchandise"] = sum(line["unit"] * line["qty"] for line in order["lines"])
        shipping = Decimal("3.90") if order["marketplace"] else Decimal("4.95")
        order["shipping"] = shipping if order["channel"] != "store" and order["merchandise"] < 60 else Decimal("0.00")
        order["total"] = order["merchandise"] + order["shipping"]

    def _return(self, rng: Any, order: Record) -> None:
        line = order["lines"][0]
        back = order["shipped_at"] + timedelta(hours=rng.randint(3 * 24, 12 * 24))
        refunded = back <= self.quiet - 2 * DAY
        order["returns"].append(
            {
                "return_id": f"RA{order['order_id'][2:]}",
                "order_id": order["order_id"],
                "sku": line["sku"],
                "qty": 1,
                "amount": line["unit"],
                "status": "CM" if refunded else "RA",
                "processed_at": back if refunded else order["shipped_at"] + DAY,
            }
        )

    def _order_traps(self, rng: Any) -> None:
        """What happened between the targets' captures and the ERP's: none of it is drift on a target."""
        emarsys, ometria, erp = self.cap("emarsys"), self.cap("ometria"), self.cap("bluecherry")
        late = self.last_target + 20 * MINUTE
        if erp - self.last_target >= 40 * MINUTE:
            web = [p for p in self.marketing() if p["channel"] == "web"]
            buyers = self.picker.pick("customer", web, "customer_id", 3)
            self._order(rng, buyers[0], "placed", late)  # after every target's capture
            cancelled = self._order(rng, buyers[1], "cancelled", self.quiet - 10 * HOUR)
            cancelled["cancelled_at"] = cancelled["updated_at"] = late
            refunded = self._order(rng, buyers[2], "delivered")
            refunded["returns"] = [
                {
                    "return_id": f"RA{refunded['order_id'][2:]}",
                    "order_id": refunded["order_id"],
                    "sku": refunded["lines"][0]["sku"],
                    "qty": 1,
                    "amount": refunded["lines"][0]["unit"],
                    "status": "CM",
                    "processed_at": late,
                }
            ]
            mirakl = self.picker.one("customer", [p for p in self.people if p["channel"] == "mirakl_de"], "customer_id")
            imported = self._order(rng, mirakl, "accepted", self.cap("mirakl_de") + 5 * MINUTE)  # after its capture
            imported["updated_at"] = imported["placed_at"] + 10 * MINUTE
            self.picker.reserve("order", [o["order_id"] for o in self.orders[-4:]])
        if ometria - emarsys >= HOUR:  # on ometria, after emarsys' capture
            buyer = self.picker.one("customer", [p for p in self.marketing() if p["channel"] == "web"], "customer_id")
            self._order(rng, buyer, "placed", emarsys + 40 * MINUTE)
            self.picker.reserve("order", [self.orders[-1]["order_id"]])

    def _order_record(self, order: Record) -> Record:
        return {
            "order_id": order["order_id"],
            "external_id": order["external_id"],
            "channel": order["channel"],
            "customer_id": order["customer_id"],
            "email": order["email"],
            "status": ERP_STATUS[order["state"]],
            "placed_at": order["placed_at"],
            "updated_at": order["updated_at"],
            "total": order["total"],
            "currency": order["currency"],
        }

    def state_at(self, order: Record, at: datetime | None) -> str:
        """The order's lifecycle state as the ERP would have said it at `at` (None: now)."""
        if at is None:
            return order["state"]
        if order["cancelled_at"] is not None and order["cancelled_at"] > at:
            return "placed"
        if order["shipped_at"] is not None and order["shipped_at"] > at:
            return "accepted"
        if order["state"] in ("delivered", "closed") and order["updated_at"] > at:
            return "shipped"
        return order["state"]

    def refunded(self, order: Record, at: datetime | None) -> list[Record]:
        return [r for r in order["returns"] if r["status"] == "CM" and (at is None or r["processed_at"] <= at)]

    def _lines_as_of(self, order: Record, at: datetime | None) -> list[Record]:
        state = self.state_at(order, at)
        back = {r["sku"]: r["qty"] for r in self.refunded(order, at)}
        return [
            {
                "order_id": order["order_id"],
                "line_no": line["line_no"],
                "sku": line["sku"],
                "qty_ordered": line["qty"],
                "qty_shipped": line["qty"] if state in SHIPPED else 0,
                "qty_cancelled": line["qty"] if state == "cancelled" else 0,
                "qty_returned": back.pop(line["sku"], 0),
                "unit_price": line["unit"],
            }
            for line in order["lines"]
        ]

    # --- what each target holds ----------------------------------------------------------------------
    def copies(self) -> None:
        self._catalogues()
        self._ometria_contacts()
        self._emarsys_contacts()
        self._web_orders()
        for source in MARKETPLACES:
            self._marketplace(source)

    def _catalogues(self) -> None:
        for target in ("emarsys", "ometria", *MARKETPLACES):
            rng = self.draw(f"copies.{target}")
            ats, captured = self.target_ats(target), self.cap(target)
            products = [
                {
                    "sku": p["sku"],
                    "name": p["name"],
                    "price": p["price"],
                    "currency": "EUR",
                    "status": "active",
                    **({} if target in MARKETPLACES else {"updated_at": p["updated_at"] + 5 * MINUTE}),
                }
                for p in self.active()
            ]
            stock = [
                {
                    "sku": p["sku"],
                    "location": "*",
                    "available": ats.get(p["sku"], 0),
                    **(
                        {}
                        if target in MARKETPLACES
                        else {"updated_at": captured - timedelta(minutes=rng.randint(20, 360))}
                    ),
                }
                for p in self.active()
            ]
            self.retailer.held[target, "products"] = products
            self.retailer.held[target, "inventory"] = stock

    def value_as_of(self, at: datetime) -> dict[str, tuple[Decimal, int, datetime | None]]:
        """Net lifetime value per customer over what the ERP held at `at`."""
        orders = [o for o in self.orders if o["placed_at"] <= at]
        refunds = [r for o in orders for r in self.refunded(o, at)]
        return net_value(orders, refunds, lambda o: self.state_at(o, at) == "cancelled")

    def _ometria_contacts(self) -> None:
        rng = self.draw("copies.ometria.contacts")
        captured = self.cap("ometria")
        value = self.value_as_of(captured)
        self.retailer.held["ometria", "customers"] = [
            self._contact(rng, p, captured, f"om-{p['customer_id'][1:]}", value) for p in self.marketing()
        ]

    def _contact(
        self,
        rng: Any,
        person: Record,
        at: datetime,
        contact_id: str,
        value: dict[str, tuple[Decimal, int, datetime | None]] | None,
    ) -> Record:
        seen = self.as_of(person, at)
        record = {
            "customer_id": contact_id,
            **({"erp_customer_id": person["customer_id"]} if value is not None else {}),
            "email": seen["email"],
            "email_consent": seen["email_consent"],
            **({"sms_consent": seen["sms_consent"]} if value is not None else {}),
            "first_name": seen["first_name"],
            "last_name": seen["last_name"],
            "postcode": seen["postcode"],
            "country": seen["country"],
            "updated_at": min(seen["updated_at"] + timedelta(minutes=rng.randint(1, 60)), at),
        }
        if value is not None:
            total, count, last = value.get(person["customer_id"], (Decimal("0.00"), 0, None))
            record.update(lifetime_value=total, order_count=count, last_order_at=last)
        return record

    def _emarsys_contacts(self) -> None:
        """Contacts keyed by email, no ERP id stored: the one contact of a shared email is the survivor's."""
        rng = self.draw("copies.emarsys.contacts")
        captured = self.cap("emarsys")
        self.retailer.held["emarsys", "customers"] = [
            self._contact(rng, p, captured, str(5_000_001 + n), None) for n, p in enumerate(self.marketing())
        ]

    def _web_orders(self) -> None:
        for target, channels in (("ometria", ("web", "store")), ("emarsys", ("web",))):
            captured = self.cap(target)
            sold = [o for o in self.orders if o["channel"] in channels and o["placed_at"] <= captured]
            heads, lines = [], []
            for order in sold:
                head = {
                    "order_id": order["order_id"],
                    "external_id": order["external_id"],
                    "channel": order["channel"],
                    **({"customer_id": order["customer_id"]} if target == "ometria" else {}),
                    "email": order["email"],
                    **({"status": OMETRIA_STATUS[self.state_at(order, captured)]} if target == "ometria" else {}),
                    "placed_at": order["placed_at"],
                    **({"updated_at": min(order["updated_at"], captured)} if target == "ometria" else {}),
                    "total": order["total"],
                    "currency": order["currency"],
                }
                heads.append(head)
                for line in self._lines_as_of(order, captured):
                    if target == "ometria":
                        lines.append(
                            {
                                k: line[k]
                                for k in ("order_id", "line_no", "sku", "qty_ordered", "qty_returned", "unit_price")
                            }
                        )
                    else:
                        lines.append({k: v for k, v in line.items() if k != "qty_shipped"})
            self.retailer.held[target, "orders"] = heads
            self.retailer.held[target, "order_lines"] = lines

    def _marketplace(self, source: str) -> None:
        captured = self.cap(source)
        mine = [o for o in self.orders if o["marketplace"] == source and o["placed_at"] <= captured]
        self.retailer.held[source, "orders"] = [
            {
                "order_id": o["order_id"],
                "external_id": o["external_id"],
                "channel": source,
                "status": MIRAKL_STATUS[self.state_at(o, captured)],
                "placed_at": o["placed_at"],
                "updated_at": min(o["updated_at"], captured),
                "total": o["total"],
                "currency": o["currency"],
            }
            for o in mine
        ]
        self.retailer.held[source, "order_lines"] = [line for o in mine for line in self._lines_as_of(o, captured)]
        self.retailer.held[source, "shipments"] = [
            {**o["shipment"], "carrier": CARRIERS[o["shipment"]["carrier"]]}
            for o in mine
            if o["shipment"] and o["shipped_at"] <= captured
        ]

    # --- payouts (per marketplace): ten-day documents, their lines and the ERP's journal entries -----------
    def payments(self) -> None:
        """One payment line per document: the sum of its other lines."""
        for source in MARKETPLACES:
            lines = self.retailer.rows(source, "payout_lines")
            documents: dict[str, tuple[Decimal, datetime]] = {}
            for line in lines:
                total, issued = documents.get(line["payout_id"], (Decimal(0), line["issued"]))
                documents[line["payout_id"]] = (total + line["amount"], max(issued, line["issued"]))
            for payout_id, (total, issued) in sorted(documents.items()):
                lines.append(
                    {
                        "line_id": f"TL-{payout_id}-PAY",
                        "payout_id": payout_id,
                        "external_id": None,
                        "line_type": "payment",
                        "amount": total,
                        "currency": "EUR",
                        "transaction_date": issued,
                        "issued": issued,
                    }
                )
            for line in lines:
                del line["issued"]

    def payout_lines(self) -> None:
        """Every issued document's order, shipping, commission, refund and fee lines (payments come last)."""
        for source, (_, _, rate, _) in MARKETPLACES.items():
            captured = self.cap(source)
            rows = self.retailer.rows(source, "payout_lines")
            journal = self.retailer.rows("bluecherry", "journal_entries")

            def add(
                ref: str,
                kind: str,
                line_type: str,
                amount: Decimal,
                when: datetime,
                order: Record | None,
                source: str = source,
                rows: list[Record] = rows,
                journal: list[Record] = journal,
                captured: datetime = captured,
            ) -> None:
                issued = _cycle_end(when)
                if issued > captured or amount == 0:
                    return
                payout_id = f"PO-{source.upper()}-{when:%Y%m}-{_cycle(when)}"
                line_id = f"TL-{ref}-{kind}"
                rows.append(
                    {
                        "line_id": line_id,
                        "payout_id": payout_id,
                        "external_id": order["external_id"] if order else None,
                        "line_type": line_type,
                        "amount": amount,
                        "currency": "EUR",
                        "transaction_date": when if order else issued,
                        "issued": issued,
                    }
                )
                if line_type in ACCOUNTS:
                    journal.append(
                        {
                            "entry_id": "JE" + line_id[2:],
                            "order_id": order["order_id"] if order else None,
                            "payout_id": payout_id,
                            "account": ACCOUNTS[line_type],
                            "amount": amount,
                            "currency": "EUR",
                            "posted_at": issued,
                        }
                    )

            for order in self.orders:
                if order["marketplace"] != source or order["state"] not in SHIPPED:
                    continue
                when = order["shipped_at"]
                add(order["external_id"], "OA", "order_amount", order["merchandise"], when, order)
                add(order["external_id"], "SH", "shipping", order["shipping"], when, order)
                add(order["external_id"], "CO", "commission", -_rate(order["merchandise"], rate), when, order)
                for ret in self.refunded(order, None):
                    add(ret["return_id"], "RF", "refund", -ret["amount"], ret["processed_at"], order)
                    add(
                        ret["return_id"],
                        "RC",
                        "refund_commission",
                        _rate(ret["amount"], rate),
                        ret["processed_at"],
                        order,
                    )
            for payout_id in sorted({r["payout_id"] for r in rows}):
                issued = max(r["issued"] for r in rows if r["payout_id"] == payout_id)
                add(payout_id, "FEE", "fee", -SUBSCRIPTION_FEE, issued - timedelta(seconds=1), None)

    # --- injected drift ------------------------------------------------------------------------------------
    def drift(self) -> None:
        self._stock_drift()
        self._catalogue_drift()
        self._order_drift()
        self._customer_drift()
        self._payout_drift()

    def _stock_drift(self) -> None:
        answer, pick = self.retailer.answer, self.picker.pick
        garments = [p for p in self.active() if p["style"].startswith("21")]
        fr, de, web = self.target_ats("mirakl_fr"), self.target_ats("mirakl_de"), self.target_ats("ometria")
        row = pick("sku", [p for p in garments if fr.get(p["sku"], 0) >= 1], "sku")[0]
        self.retailer.set("mirakl_fr", "inventory", {"sku": row["sku"]}, available=fr[row["sku"]] + 3)
        answer("stock_parity", "mirakl_fr", row["sku"], "available", "mirakl_fr offers 3 more than FR1 can sell")
        pack = "P3-29001"
        self.retailer.set("mirakl_de", "inventory", {"sku": pack}, available=de[SOCK] // 3 + 2)
        answer("stock_parity", "mirakl_de", pack, "available", "the 3-pack shows 2 more than floor(sock ATS / 3)")
        row = pick("sku", [p for p in garments if web.get(p["sku"], 0) >= 2], "sku")[0]
        self.retailer.set("ometria", "inventory", {"sku": row["sku"]}, available=web[row["sku"]] - 2)
        answer("stock_parity", "ometria", row["sku"], "available", "ometria shows 2 fewer than ATS")
        row = pick("sku", [p for p in garments if web.get(p["sku"], -1) == 0], "sku")[0]
        self.retailer.set("emarsys", "inventory", {"sku": row["sku"]}, available=2)
        answer("stock_parity", "emarsys", row["sku"], "available", "emarsys shows 2 where ATS is 0")
        inflatable = [
            s
            for s in self.stock
            if s["location"] == "FR1" and s["on_order"] > 0 and s["on_hand"] - s["allocated"] - s["safety_stock"] >= 0
        ]
        row = pick("sku", inflatable, "sku")[0]
        row["available"] = free_stock(row) + row["on_order"]
        answer("ats_inflation", "bluecherry", f"{row['sku']}/FR1", "available", "Avail To Sell counts the WIP")
        for sku in pick("sku", [p for p in garments if p["sku"] not in self.picker.reserved("sku")], "sku", 2):
            self.stock.append(
                {
                    "sku": sku["sku"],
                    "location": NEW_WAREHOUSE,
                    "on_hand": 12,
                    "allocated": 0,
                    "on_order": 0,
                    "safety_stock": 0,
                    "available": 12,
                    "updated_at": self.stock[0]["updated_at"],
                }
            )
        answer(
            "unmapped_codes",
            "bluecherry",
            NEW_WAREHOUSE,
            "location",
            "a warehouse no feed lists holds stock: it reaches no target",
        )
        for target, hours in (("ometria", 30), ("emarsys", 50)):
            row = pick(
                "sku", [r for r in self.retailer.rows(target, "inventory") if not self.is_pack(r["sku"])], "sku"
            )[0]
            row["updated_at"] = self.cap(target) - hours * HOUR
            answer("stock_staleness", target, row["sku"], "updated_at", f"{target} stock {hours} h old")

    def _catalogue_drift(self) -> None:
        answer, pick = self.retailer.answer, self.picker.pick
        garments = [p for p in self.active() if p["style"].startswith("21")]
        row = pick("sku", garments, "sku")[0]
        self.retailer.drop("mirakl_de", "products", sku=row["sku"])
        self.retailer.drop("mirakl_de", "inventory", sku=row["sku"])
        answer("catalogue_parity", "mirakl_de", row["sku"], "", "an active SKU has no offer on mirakl_de")
        unknown = "21099-99-M"
        self.retailer.rows("ometria", "products").append(
            {
                "sku": unknown,
                "name": "Sample Dress",
                "price": money("10.00"),
                "currency": "EUR",
                "status": "active",
                "updated_at": self.quiet,
            }
        )
        answer("catalogue_parity", "ometria", unknown, "", "ometria lists a SKU the ERP does not know")
        retired = [p for p in self.products if p["status"] == "D"]
        row = pick("sku", retired, "sku")[0]
        fr = self.target_ats("mirakl_fr")
        self.retailer.rows("mirakl_fr", "products").append(
            {"sku": row["sku"], "name": row["name"], "price": row["price"], "currency": "EUR", "status": "active"}
        )
        self.retailer.rows("mirakl_fr", "inventory").append(
            {"sku": row["sku"], "location": "*", "available": fr.get(row["sku"], 0)}
        )
        answer("catalogue_parity", "mirakl_fr", row["sku"], "status", "discontinued in the ERP, live on mirakl_fr")
        row = pick("sku", garments, "sku")[0]
        self.retailer.set("emarsys", "products", {"sku": row["sku"]}, price=row["price"] - 5)
        answer("catalogue_parity", "emarsys", row["sku"], "price", "emarsys price 5.00 below the ERP's")

    def _order_drift(self) -> None:
        answer, pick, ret = self.retailer.answer, self.picker.pick, self.retailer

        def settled(o: Record) -> bool:
            return o["state"] in SHIPPED and o["shipped_at"] <= self.quiet - 3 * DAY and not o["returns"]

        def on(source: str):
            channel = MARKETPLACES[source][0] if source in MARKETPLACES else source
            return lambda o: o["channel"] == channel

        order = pick("order", self.orders_where(settled, lambda o: o["channel"] in ("web", "store")), "order_id")[0]
        ret.drop("ometria", "orders", order_id=order["order_id"])
        ret.drop("ometria", "order_lines", order_id=order["order_id"])
        answer("order_presence", "ometria", order["order_id"], "", "ERP order never reached ometria")
        order = pick("order", self.orders_where(on("mirakl_fr"), lambda o: o["state"] == "accepted"), "order_id")[0]
        ret.drop("mirakl_fr", "orders", order_id=order["order_id"])
        ret.drop("mirakl_fr", "order_lines", order_id=order["order_id"])
        answer("order_presence", "mirakl_fr", order["order_id"], "", "accepted ERP order missing on mirakl_fr")
        order = pick("order", self.orders_where(on("mirakl_de"), lambda o: o["state"] == "accepted"), "order_id")[0]
        self._lost_by_erp(order)
        answer("order_presence", "mirakl_de", order["external_id"], "", "accepted on mirakl_de, never in the ERP")
        order = pick("order", self.orders_where(on("mirakl_fr"), lambda o: o["state"] == "placed"), "order_id")[0]
        self._lost_by_erp(order)
        waiting = self.cap("mirakl_fr") - 60 * HOUR
        ret.set("mirakl_fr", "orders", {"external_id": order["external_id"]}, placed_at=waiting, updated_at=waiting)
        note = "awaiting acceptance for 60 h (deadline 72 h) and absent from the ERP"
        answer("acceptance_sla", "mirakl_fr", order["external_id"], "", note)
        answer("order_presence", "mirakl_fr", order["external_id"], "", note)

        order = pick("order", self.orders_where(on("mirakl_de"), lambda o: o["state"] == "accepted"), "order_id")[0]
        ret.set("mirakl_de", "orders", {"order_id": order["order_id"]}, status="SHIPPED")
        answer("order_status_drift", "mirakl_de", order["order_id"], "status", "shipped on mirakl_de, not in the ERP")
        cancelled = self.orders_where(lambda o: o["channel"] in ("web", "store"), lambda o: o["state"] == "cancelled")
        order = pick("order", cancelled, "order_id")[0]
        ret.set("ometria", "orders", {"order_id": order["order_id"]}, status="pending")
        answer("order_status_drift", "ometria", order["order_id"], "status", "cancelled in the ERP, pending on ometria")

        order = pick("order", self.orders_where(settled, on("web")), "order_id")[0]
        ret.set("ometria", "orders", {"order_id": order["order_id"]}, total=order["total"] + 10)
        answer("order_value_drift", "ometria", order["order_id"], "total", "ometria total 10.00 above the ERP's")
        order = pick("order", self.orders_where(settled, on("mirakl_fr")), "order_id")[0]
        ret.set(
            "mirakl_fr",
            "order_lines",
            {"order_id": order["order_id"], "line_no": 1},
            unit_price=order["lines"][0]["unit"] - 1,
        )
        answer("order_value_drift", "mirakl_fr", order["order_id"], "unit_price", "line 1 unit price 1.00 below")
        order = pick("order", self.orders_where(settled, on("web")), "order_id")[0]
        ret.set(
            "emarsys",
            "order_lines",
            {"order_id": order["order_id"], "line_no": 1},
            qty_ordered=order["lines"][0]["qty"] + 1,
        )
        answer("order_value_drift", "emarsys", order["order_id"], "qty_ordered", "sales line 1 one unit too many")

        for source, code, channel in (
            ("bluecherry", "85", "store"),
            ("mirakl_fr", "WAITING_REFUND", "MKP-FR"),
            ("ometria", "on_hold", "web"),
        ):
            order = pick("order", self.orders_where(lambda o, c=channel: o["channel"] == c, settled), "order_id")[0]
            ret.set(source, "orders", {"order_id": order["order_id"]}, status=code)
            if source == "bluecherry":  # whether it is cancelled is unknown: its customer's value is not judged
                self.unknown_value.add(order["customer_id"])
            answer("unmapped_codes", source, code, "status", f"{source} order {order['order_id']} has status {code}")

        order = pick("order", self.orders_where(settled, on("mirakl_fr")), "order_id")[0]
        ret.set("bluecherry", "shipments", {"order_id": order["order_id"]}, carrier=UNMAPPED_CARRIER)
        ret.drop("mirakl_fr", "shipments", order_id=order["order_id"])  # the marketplace rejected its tracking
        answer(
            "unmapped_codes",
            "mirakl_fr",
            UNMAPPED_CARRIER,
            "carrier",
            "an ERP carrier no carrier_map names and mirakl_fr never uses: its tracking was rejected",
        )
        order = pick("order", self.orders_where(settled, on("mirakl_de")), "order_id")[0]
        ret.drop("mirakl_de", "shipments", order_id=order["order_id"])
        answer("tracking_sync", "mirakl_de", order["order_id"], "tracking_number", "ERP shipment, no tracking")
        order = pick("order", self.orders_where(settled, on("mirakl_fr")), "order_id")[0]
        wrong = "UPS" if order["shipment"]["carrier"] != "UPS" else "DHL"
        ret.set("mirakl_fr", "shipments", {"order_id": order["order_id"]}, carrier=wrong)
        answer("tracking_sync", "mirakl_fr", order["order_id"], "carrier", "another carrier on mirakl_fr")

        def refunded_long_ago(o: Record) -> bool:
            return any(r["status"] == "CM" and r["processed_at"] <= self.quiet - 2 * DAY for r in o["returns"])

        for target in ("ometria", "mirakl_de"):
            channels = ("web", "store") if target == "ometria" else (MARKETPLACES[target][0],)
            candidates = self.orders_where(refunded_long_ago, lambda o, c=channels: o["channel"] in c)
            order = pick("order", candidates, "order_id")[0]
            ret.set(target, "order_lines", {"order_id": order["order_id"], "line_no": 1}, qty_returned=0)
            answer("returns_sync", target, order["order_id"], "qty_returned", f"refunded return not on {target}")

    def _lost_by_erp(self, order: Record) -> None:
        """A marketplace order the ERP never imported: it goes by the marketplace's own id."""
        for entity in ("orders", "order_lines", "shipments", "returns"):
            if any(r.get("order_id") == order["order_id"] for r in self.retailer.rows("bluecherry", entity)):
                self.retailer.drop("bluecherry", entity, order_id=order["order_id"])
        for entity in ("orders", "order_lines"):
            self.retailer.set(
                order["marketplace"], entity, {"order_id": order["order_id"]}, order_id=order["external_id"]
            )

    def _customer_drift(self) -> None:
        answer, pick = self.retailer.answer, self.picker.pick
        contacts = {c["erp_customer_id"]: c for c in self.retailer.rows("ometria", "customers")}
        by_email = {c["email"]: c for c in self.retailer.rows("emarsys", "customers")}
        people = self.marketing()
        person = pick("customer", [p for p in people if not p["email_consent"]], "customer_id")[0]
        contacts[person["customer_id"]]["email_consent"] = True
        answer("consent_parity", "ometria", person["customer_id"], "email_consent", "opted out, subscribed on ometria")
        person = pick("customer", [p for p in people if p["email_consent"]], "customer_id")[0]
        by_email[person["email"]]["email_consent"] = False
        answer("consent_parity", "emarsys", person["customer_id"], "email_consent", "opted in, 2 on emarsys")
        person = pick("customer", people, "customer_id")[0]
        contacts[person["customer_id"]]["last_name"] = person["last_name"] + "-Roux"
        answer("customer_master_parity", "ometria", person["customer_id"], "last_name", "another last name")
        person = pick("customer", people, "customer_id")[0]
        by_email[person["email"]]["postcode"] = "00000"
        answer("customer_master_parity", "emarsys", person["customer_id"], "postcode", "another postcode")
        merged = self.merged_other
        rng = self.draw("drift.merged")
        self.retailer.rows("ometria", "customers").append(
            {
                **self._contact(
                    rng, {**merged, "merged_into": None}, self.cap("ometria"), f"om-{merged['customer_id'][1:]}", {}
                ),
                "merged_into": None,
            }
        )
        answer(
            "customer_master_parity",
            "ometria",
            merged["customer_id"],
            "merged_into",
            f"merged into {merged['merged_into']} in the ERP, still a contact of its own on ometria",
        )

        value = self.value_as_of(self.cap("ometria"))
        people = [p for p in people if p["customer_id"] not in self.unknown_value]
        with_refunds = [
            p
            for p in people
            if any(
                self.refunded(o, self.cap("ometria"))
                for o in self.orders
                if o["customer_id"] == p["customer_id"] and self.state_at(o, self.cap("ometria")) != "cancelled"
            )
        ]
        person = pick("customer", with_refunds, "customer_id")[0]
        refunds = sum(
            (
                r["amount"]
                for o in self.orders
                if o["customer_id"] == person["customer_id"]
                for r in self.refunded(o, self.cap("ometria"))
            ),
            Decimal(0),
        )
        contacts[person["customer_id"]]["lifetime_value"] = value[person["customer_id"]][0] + refunds
        answer("ltv_after_refunds", "ometria", person["customer_id"], "lifetime_value", "value ignores refunds")
        person = pick("customer", [p for p in people if value.get(p["customer_id"], (0, 0))[1] > 0], "customer_id")[0]
        contacts[person["customer_id"]]["order_count"] += 1
        answer("ltv_after_refunds", "ometria", person["customer_id"], "order_count", "one order too many")

    def _payout_drift(self) -> None:
        answer, pick = self.retailer.answer, self.picker.pick
        journal = self.retailer.rows("bluecherry", "journal_entries")
        for source, (_, _, rate, _) in MARKETPLACES.items():
            lines = self.retailer.rows(source, "payout_lines")
            paid = {r["external_id"] for r in lines if r["line_type"] == "order_amount"}
            off, overcharged = pick(
                "order", self.orders_where(lambda o, p=paid: o["external_id"] in p and not o["returns"]), "order_id", 2
            )
            line = next(r for r in lines if r["external_id"] == off["external_id"] and r["line_type"] == "order_amount")
            line["amount"] += 5
            answer("payout_matching", source, line["line_id"], "order_amount", "order amount 5.00 above the ERP's")
            line = next(
                r for r in lines if r["external_id"] == overcharged["external_id"] and r["line_type"] == "commission"
            )
            line["amount"] = -_rate(overcharged["merchandise"], rate + Decimal("0.03"))
            for entry in journal:
                if entry["entry_id"] == "JE" + line["line_id"][2:]:
                    entry["amount"] = line["amount"]
            answer("payout_matching", source, line["line_id"], "commission_rate", "commission 3 points over")
            fee = self.draw(f"drift.fee.{source}").choice([r for r in lines if r["line_type"] == "fee"])
            journal[:] = [e for e in journal if e["entry_id"] != "JE" + fee["line_id"][2:]]
            answer("payout_matching", source, fee["line_id"], "journal_entry", "a fee with no ERP journal entry")


def _rate(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _cycle(when: datetime) -> int:
    return 1 if when.day <= 10 else 2 if when.day <= 20 else 3


def _cycle_end(when: datetime) -> datetime:
    start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if _cycle(when) < 3:
        return start.replace(day=11 if _cycle(when) == 1 else 21)
    return (start + timedelta(days=32)).replace(day=1)
