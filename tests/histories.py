"""Generated nightly histories of a small retailer with a known cause of drift injected, audited for real.

BlueCherry feeds Mirakl (products, stock and its own channel's orders), Klaviyo (products and stock) and
Ometria (products and the other orders). Every night ERP stock moves on some SKUs and some orders move on;
healthy targets follow within the night. A cause, injected from a given night on, breaks exactly the
records it touches, so a test knows which findings an incident must cover:

- `drop_location`: a target's stock figure leaves out one ERP location (every SKU stocked there drifts);
- `unmapped_status`: the ERP starts using a new status code that the integration to a target does not map
  (driftwatch's own mapping knows it): orders moving to it stay as they were on that target;
- `stopped_job`: a target's stock stops changing at a given night (SKUs the ERP changes afterwards drift);
- `noise`: a few unrelated records drift on their own, one or two per check and target.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftwatch.auditing import audit
from driftwatch.config import parse_config
from driftwatch.store import Store
from tests.audit_helpers import snap

START = datetime(2026, 11, 1, 2, tzinfo=UTC)
LOCATIONS = ("WH-EU", "WH-UK", "WH-RET")
STATUS_CODES = {"10": "placed", "20": "accepted", "50": "shipped", "90": "cancelled", "91": "cancelled"}
TARGET_WORDS = {
    "ometria": {"placed": "pending", "accepted": "pending", "shipped": "shipped", "cancelled": "cancelled"},
    "mirakl": {"placed": "WAITING_ACCEPTANCE", "accepted": "SHIPPING", "shipped": "SHIPPED", "cancelled": "CANCELED"},
}
CHECKS = ["stock_parity", "order_status_drift"]


@dataclass
class History:
    seed: int = 1
    nights: int = 4
    styles: int = 30
    orders: int = 240
    drop_location: tuple[str, str, int] | None = None  # (target, location, from night)
    unmapped_status: tuple[str, str, int] | None = None  # (target, new ERP code, from night)
    stopped_job: tuple[str, int] | None = None  # (target, night from which its stock no longer changes)
    noise: bool = True
    fixed_on: int | None = None  # the night the cause is fixed (None: never)
    again_on: int | None = None  # the night it breaks again after the fix
    injected: set[tuple[str, str, str]] = field(default_factory=set)  # (check, target, key) the cause broke

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.rng = rng
        self.skus = [f"{100 + s:05d}-{c}-{size}" for s in range(self.styles) for c in ("010",) for size in "SML"]
        self.stock = {(sku, loc): rng.choice([0, 0, 2, 5, 9, 14]) for sku in self.skus for loc in LOCATIONS}
        self.stock_updated = {key: START - timedelta(days=3) for key in self.stock}
        self.order_status = {f"SO{i:06d}": rng.choice(["10", "20", "50", "50", "90"]) for i in range(self.orders)}
        self.channel = {o: ("mirakl" if i % 3 == 0 else "web") for i, o in enumerate(self.order_status)}
        self.frozen_stock: dict[str, dict] = {}  # target -> its figures from the night it stopped
        self.target_status: dict[str, dict[str, str]] = {}
        # Noise: two SKUs of different styles a little off on every stock target, one order per order target
        # in the wrong status, from the first night on.
        self.noisy_skus = [self.skus[4], self.skus[40]] if self.noise else []
        self.noisy_orders = {"mirakl": "SO000003", "ometria": "SO000004"} if self.noise else {}
        self.noisy: set[tuple[str, str, str]] = set()
        for sku in self.noisy_skus:  # never stocked in the location a test drops, so noise stays noise
            self.stock[(sku, "WH-RET")] = 0

    def config(self) -> dict:
        return {
            "feeds": [
                {"source": "bluecherry", "target": "mirakl", "entities": ["products", "inventory", "orders"]},
                {"source": "bluecherry", "target": "klaviyo", "entities": ["products", "inventory"]},
                {"source": "bluecherry", "target": "ometria", "entities": ["products", "orders"]},
            ],
            "statuses": {"bluecherry": dict(STATUS_CODES)},
        }

    def active(self, since: int, night: int) -> bool:
        """Whether a cause injected from night `since` is in force on `night`."""
        fixed = self.fixed_on is not None and self.fixed_on <= night
        again = self.again_on is not None and self.again_on <= night
        return since <= night and (not fixed or again)

    def captured(self, night: int) -> datetime:
        return START + timedelta(days=night)

    def night(self, night: int) -> list:
        """Move the ERP on, let the targets follow (or not), and return the night's snapshots. `injected`
        holds what the cause breaks that night."""
        at = self.captured(night)
        self.injected = set()
        if night:
            movable = sorted(k for k in self.stock if not (k[0] in self.noisy_skus and k[1] == "WH-RET"))
            for key in self.rng.sample(movable, k=len(self.stock) // 8):
                self.stock[key] = self.rng.choice([0, 3, 6, 11])
                self.stock_updated[key] = at - timedelta(hours=3)
            new_code = self.unmapped_status[1] if self.unmapped_status and night >= self.unmapped_status[2] else "90"
            for order in self.rng.sample(sorted(self.order_status), k=len(self.order_status) // 10):
                self.order_status[order] = self.rng.choice(["50", new_code])
        return [*self._erp(at), *self._stock_targets(night, at), *self._order_targets(night, at)]

    def _erp(self, at: datetime) -> list:
        products = dict(
            sku=self.skus,
            style=[s.split("-")[0] for s in self.skus],
            name=self.skus,
            price=["10.00"] * len(self.skus),
            currency=["EUR"] * len(self.skus),
            status=["A"] * len(self.skus),
        )
        keys = sorted(self.stock)
        inventory = dict(
            sku=[k[0] for k in keys],
            location=[k[1] for k in keys],
            on_hand=[self.stock[k] for k in keys],
            allocated=[0] * len(keys),
            safety_stock=[0] * len(keys),
            available=[self.stock[k] for k in keys],
            updated_at=[self.stock_updated[k].isoformat() for k in keys],
        )
        orders = sorted(self.order_status)
        order_rows = dict(
            order_id=orders,
            external_id=orders,
            channel=[self.channel[o] for o in orders],
            status=[self.order_status[o] for o in orders],
            placed_at=[(START - timedelta(days=5)).isoformat()] * len(orders),
            total=["20.00"] * len(orders),
            currency=["EUR"] * len(orders),
        )
        erp_products = {**products, "status": ["A"] * len(self.skus)}
        return [
            snap("bluecherry", "products", at, **erp_products),
            snap("bluecherry", "inventory", at, **inventory),
            snap("bluecherry", "orders", at, **order_rows),
        ]

    def _stock_targets(self, night: int, at: datetime) -> list:
        out = []
        for target in ("mirakl", "klaviyo"):
            figures = {}
            for sku in self.skus:
                locations = [loc for loc in LOCATIONS if not self._dropped(target, loc, night)]
                figures[sku] = (
                    sum(self.stock[(sku, loc)] for loc in locations),
                    max(self.stock_updated[(sku, loc)] for loc in LOCATIONS) + timedelta(minutes=30),
                )
            if self.stopped_job and self.stopped_job[0] == target and self.active(self.stopped_job[1], night):
                figures = self.frozen_stock.setdefault(target, figures)
            else:
                self.frozen_stock.pop(target, None)
            self._note_stock(target, figures)
            for sku in self.noisy_skus:
                figures = {**figures, sku: (figures[sku][0] + 1, figures[sku][1])}
                self.noisy.add(("stock_parity", target, sku))
            products = dict(
                sku=self.skus,
                name=self.skus,
                price=["10.00"] * len(self.skus),
                currency=["EUR"] * len(self.skus),
                status=["true"] * len(self.skus),
            )
            stock = dict(
                sku=self.skus,
                location=["*"] * len(self.skus),
                available=[figures[s][0] for s in self.skus],
                **({"updated_at": [figures[s][1].isoformat() for s in self.skus]} if target == "klaviyo" else {}),
            )
            out += [snap(target, "products", at, **products), snap(target, "inventory", at, **stock)]
        return out

    def _dropped(self, target: str, location: str, night: int) -> bool:
        drop = self.drop_location
        return drop is not None and drop[0] == target and drop[1] == location and self.active(drop[2], night)

    def _note_stock(self, target: str, figures: dict) -> None:
        for sku, (published, _) in figures.items():
            truth = sum(self.stock[(sku, loc)] for loc in LOCATIONS)
            if published != truth:
                self.injected.add(("stock_parity", target, sku))

    def _order_targets(self, night: int, at: datetime) -> list:
        out = []
        for target in ("mirakl", "ometria"):
            known = self.target_status.setdefault(target, {})
            mine = [o for o in sorted(self.order_status) if (self.channel[o] == "mirakl") == (target == "mirakl")]
            for order in mine:
                code = self.order_status[order]
                blocked = self.unmapped_status and self.unmapped_status[0] == target and code == self.unmapped_status[1]
                if not (blocked and self.active(self.unmapped_status[2], night) and order in known):
                    known[order] = STATUS_CODES[code]
            statuses = [TARGET_WORDS[target][known[o]] for o in mine]
            if target in self.noisy_orders:
                noisy = mine.index(self.noisy_orders[target])
                wrong = "shipped" if known[mine[noisy]] != "shipped" else "cancelled"
                statuses[noisy] = TARGET_WORDS[target][wrong]
                self.noisy.add(("order_status_drift", target, self.noisy_orders[target]))
            for order in mine:
                if order != self.noisy_orders.get(target) and known[order] != STATUS_CODES[self.order_status[order]]:
                    self.injected.add(("order_status_drift", target, order))
            out.append(
                snap(
                    target,
                    "orders",
                    at,
                    order_id=mine,
                    external_id=mine,
                    channel=[self.channel[o] for o in mine],
                    status=statuses,
                    placed_at=[(START - timedelta(days=5)).isoformat()] * len(mine),
                    total=["20.00"] * len(mine),
                    currency=["EUR"] * len(mine),
                )
            )
        return out


def audit_history(history: History, path: Path) -> Store:
    """Load and audit every night of the history into a store at `path` (returned open)."""
    store = Store(path)
    cfg = parse_config(history.config())
    for night in range(history.nights):
        store.ingest(history.night(night))
        audit(store, cfg, checks=CHECKS)
    return store


def open_keys(store: Store, run_id: str) -> set[tuple[str, str, str]]:
    rows = store.frame(
        "SELECT check_id, target, key FROM findings WHERE run_id = ? AND status <> 'resolved' "
        "AND check_id <> 'snapshot_health'",
        [run_id],
    )
    return set(rows.rows())
