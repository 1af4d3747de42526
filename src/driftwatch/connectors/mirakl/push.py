"""Repairs pushed to a Mirakl shop: stock through STO01, whole offers through OF24, tracking, shipment and
acceptance through OR23, OR24 and OR21.

Mirakl specifics this module owns:
- STO01 and OF24 are asynchronous imports that Mirakl allows once a minute, so a batch becomes at most one
  stock import and one offer import. Each is polled (STO02 / OF02) until Mirakl has processed it, and the
  lines it rejected are read from its error report (STO03 / OF03) and reported in Mirakl's own words.
- OF24 resets every field an offer line leaves out (quantity to 0, descriptions and dates deleted), so each
  line is the whole offer: what OF21 holds now (or, for a new offer, the ERP's product), with the repaired
  fields changed. Several actions on one SKU become one line, so that none undoes another.
- An import still unprocessed when `import_timeout` runs out stops the apply with its actions in doubt: the
  next apply reads the offers and settles them instead of importing again.
- A submission retried after its answer was lost is a second, identical import: OF24 answers a duplicate of
  a pending import with that import's id, and a stock line sets the same absolute quantity again. An order
  call (OR21, OR23, OR24) is not repeatable that way (a second OR24 fails, a second OR23 may notify the
  customer again): it is sent once, and one whose answer was lost leaves its action in doubt.

What each repair action does:
- set_stock (key "SKU", or "SKU/warehouse"): a STO01 line with the ERP's available-to-sell.
- update_price / set_offer_status / create_offer / deactivate_offer: an OF24 line. Discontinued means out
  of its availability period (`available_ended` now); active clears the period. An offer the ERP does not
  know is deleted (`update_delete` "delete"), which is what takes it off the listing. A created offer has
  quantity 0 until a stock repair publishes it.
- post_tracking: OR23 with the carrier code and tracking number, then OR24 to confirm the shipment when the
  order is still in SHIPPING (the ERP has dispatched it). The order is found by the ERP number stored on it
  (`order_reference_for_seller`), or by Mirakl's id when the plan's truth row names it.
- accept_order: OR21 accepting every line of an order still in WAITING_ACCEPTANCE.

Settings, besides the connector's (`[sources.mirakl]`): `import_timeout` (seconds, default 1800),
`product_id_type` (how a created offer names its product, default "SHOP_SKU"), `state_code` (the offer
condition of a created offer, default "11"). `call_limits` also takes OF24, STO01, OF02, OF03, STO02, STO03.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import polars as pl

from driftwatch.connectors._http import error_excerpt
from driftwatch.connectors.mirakl import mapping
from driftwatch.connectors.mirakl.client import OFFSET_PAGE_SIZE, MiraklClient, call_limiters, error_text
from driftwatch.connectors.mirakl.connector import Connector
from driftwatch.errors import IncompleteError
from driftwatch.push import Action, PushOutcome

Record = dict[str, Any]

# Documented maximum call frequencies of the write side (calls, seconds).
WRITE_CALL_LIMITS: dict[str, list[tuple[int, float]]] = {
    "OF24": [(1, 60.0)],
    "STO01": [(1, 60.0)],
    "OF02": [(1, 60.0)],
    "OF03": [(1, 60.0)],
    "STO02": [(1, 15.0)],
    "STO03": [(1, 60.0)],
}
STOCK_COLUMNS = ("offer-sku", "quantity", "warehouse-code", "update-delete")
# OF21 fields an OF24 line carries under the same name: OF24 resets each one that a line leaves out.
SAME_FIELDS = (
    "price",
    "quantity",
    "state_code",
    "description",
    "internal_description",
    "leadtime_to_ship",
    "min_quantity_alert",
    "min_order_quantity",
    "max_order_quantity",
    "package_quantity",
    "price_additional_info",
    "product_tax_code",
    "allow_quote_requests",
    "msrp",
    "eco_contributions",
    "offer_additional_fields",
)
RENAMED_FIELDS = {"available_start_date": "available_started", "available_end_date": "available_ended"}
_PRICE_KEYS = ("channel_code", "discount_start_date", "discount_end_date", "unit_discount_price", "unit_origin_price")
_VOLUME_KEYS = ("quantity_threshold", "unit_discount_price", "unit_origin_price")
PRODUCT_FIELDS = ("style", "colour", "size")  # the offer's custom fields that carry the ERP's product codes
AWAITING_ACCEPTANCE = "WAITING_ACCEPTANCE"
NOT_ACCEPTED = frozenset({AWAITING_ACCEPTANCE, "STAGING", "REFUSED", "CANCELED"})
STOCK_ACTIONS = frozenset({"set_stock"})
OFFER_ACTIONS = frozenset({"create_offer", "update_price", "set_offer_status", "deactivate_offer"})
ORDER_ACTIONS = frozenset({"post_tracking", "accept_order"})
PRESENT, ABSENT = "present", "absent"  # what a missing / extra catalogue finding expects


@dataclass(frozen=True)
class ImportResult:
    """What Mirakl made of an import: the lines it rejected, in its own words, or why it failed whole."""

    detail: str  # names the import
    rejected: dict[str, str]  # sku -> reason
    failure: str | None = None

    def outcome(self, sku: str) -> PushOutcome:
        if self.failure is not None:
            return PushOutcome(False, self.failure)
        if sku in self.rejected:
            return PushOutcome(False, self.rejected[sku])
        return PushOutcome(True, self.detail)


@dataclass(frozen=True)
class ImportApi:
    """One of Mirakl's asynchronous imports: where it is submitted, polled and reports its rejected lines."""

    name: str
    submit: str  # operation codes, which are also the call-ceiling buckets
    status: str
    report: str
    submit_path: str
    status_path: str
    report_path: str
    sku_column: str  # the error report's column naming the offer


STOCK_IMPORT = ImportApi(
    "stock import",
    "STO01",
    "STO02",
    "STO03",
    "/api/offers/stock/imports",
    "/api/offers/stock/imports/{}/status",
    "/api/offers/stock/imports/{}/error_report",
    "offer-sku",
)
OFFER_IMPORT = ImportApi(
    "offer import",
    "OF24",
    "OF02",
    "OF03",
    "/api/offers",
    "/api/offers/imports/{}",
    "/api/offers/imports/{}/error_report",
    "sku",
)


class Pusher(Connector):
    """The push side of the Mirakl connector: same settings, credentials, client and call ceilings."""

    target = "mirakl"
    # One batch is one import of each kind, and each import costs a minute: Mirakl documents no line limit.
    batch_size = 10_000
    actions = STOCK_ACTIONS | OFFER_ACTIONS | ORDER_ACTIONS
    settings_keys = frozenset({"import_timeout", "product_id_type", "state_code"})

    def __init__(
        self, settings: Mapping[str, Any], *, source: str | None = None, env: Mapping[str, str] = os.environ, **_: Any
    ):
        super().__init__(settings, source=source, env=env)
        self.target = self.source
        self._limiters = call_limiters({**WRITE_CALL_LIMITS, **self.setting("call_limits", {})})
        self._import_timeout = float(self.setting("import_timeout", 1800.0))
        self._shop = {"shop_id": self.setting("shop_id")} if self.setting("shop_id", None) else {}

    # --- the Pusher protocol ----------------------------------------------------------------------------

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        outcomes: dict[str, PushOutcome] = {}
        with self._client() as client:
            stock = [a for a in batch if a.action in STOCK_ACTIONS]
            published = self._push_stock(client, stock, outcomes) if stock else {}
            offers = [a for a in batch if a.action in OFFER_ACTIONS]
            if offers:
                self._push_offers(client, offers, published, outcomes)
            orders = [a for a in batch if a.action in ORDER_ACTIONS]
            if orders:
                self._push_orders(client, orders, outcomes)
        return outcomes

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        with self._client() as client:
            skus = [_sku(a) for a in batch if a.action not in ORDER_ACTIONS]
            offers = self._current_offers(client, skus) if skus else {}
            orders = [a for a in batch if a.action in ORDER_ACTIONS]
            found = self._find_orders(client, orders) if orders else {}
        current: dict[str, str | None] = {}
        for a in batch:
            if a.action in ORDER_ACTIONS:
                current[a.action_id] = _order_value(a, found.get(a.action_id))
            else:
                current[a.action_id] = _offer_value(a, offers.get(_sku(a)))
        return current

    # --- stock: one STO01 import ------------------------------------------------------------------------

    def _push_stock(self, client: MiraklClient, actions: list[Action], outcomes: dict[str, PushOutcome]) -> dict:
        """Import the stock lines; returns the quantity now published per SKU (for the offer lines that follow)."""
        lines: dict[tuple[str, str], str | None] = {}
        for a in actions:
            sku, _, warehouse = a.key.partition("/")
            if sku == "*":
                outcomes[a.action_id] = PushOutcome(
                    False, "the whole stock feed is stale: each offer's stock_parity action repairs it"
                )
                continue
            lines[(sku, "" if warehouse in ("", mapping.ALL_STOCK_LOCATIONS) else warehouse)] = a.after
        if not lines:
            return {}
        frame = pl.DataFrame(
            [(sku, quantity, warehouse, "update") for (sku, warehouse), quantity in lines.items()],
            schema=dict.fromkeys(STOCK_COLUMNS, pl.String),
            orient="row",
        )
        csv = frame.write_csv(separator=";", quote_style="always").encode()
        result = self._run_import(client, STOCK_IMPORT, files={"file": ("stock.csv", csv, "text/csv")})
        for a in actions:
            outcomes.setdefault(a.action_id, result.outcome(_sku(a)))
        return {
            sku: quantity for (sku, warehouse), quantity in lines.items() if not warehouse and result.outcome(sku).ok
        }

    # --- offers: one OF24 import of whole offers --------------------------------------------------------

    def _push_offers(
        self,
        client: MiraklClient,
        actions: list[Action],
        published: Mapping[str, str | None],
        outcomes: dict[str, PushOutcome],
    ) -> None:
        by_sku: dict[str, list[Action]] = defaultdict(list)
        for a in actions:
            by_sku[_sku(a)].append(a)
        current = self._current_offers(client, list(by_sku))
        lines = []
        for sku, sku_actions in by_sku.items():
            offer = current.get(sku)
            line = self._offer_line(sku, sku_actions, offer)
            if line is None:
                outcomes.update({a.action_id: _nothing_to_send(a, offer) for a in sku_actions})
                continue
            if sku in published and line["update_delete"] != "delete":
                line["quantity"] = int(published[sku] or 0)  # the stock just imported, not what OF21 showed before
            lines.append(line)
        if not lines:
            return
        result = self._run_import(
            client, OFFER_IMPORT, content=_json({"offers": lines}), headers={"Content-Type": "application/json"}
        )
        for a in actions:
            outcomes.setdefault(a.action_id, result.outcome(_sku(a)))

    def _offer_line(self, sku: str, actions: list[Action], offer: Record | None) -> Record | None:
        """The whole OF24 line for one SKU: the offer as Mirakl holds it (or the ERP's product, for an offer
        to create), with every action's change applied; None when there is nothing to send."""
        creating = next((a for a in actions if a.action == "create_offer"), None)
        if offer is None:
            # Only a missing offer is created: an update or a deletion of an offer that is gone has no line.
            return None if creating is None else self._new_offer(sku, creating.truth)
        changes = [a for a in actions if a.action != "create_offer"]
        if not changes:
            return None
        line = whole_offer(offer)
        for a in changes:
            _apply(line, a)
        return line

    def _new_offer(self, sku: str, truth: Mapping[str, Any]) -> Record:
        line: Record = {
            "shop_sku": sku,
            "product_id": sku,
            "product_id_type": self.setting("product_id_type", "SHOP_SKU"),
            "state_code": self.setting("state_code", "11"),
            "price": _money(truth.get("price")),
            "quantity": 0,
            "update_delete": "update",
            "offer_additional_fields": [
                {"code": code, "type": "STRING", "value": truth[code]} for code in PRODUCT_FIELDS if truth.get(code)
            ],
        }
        if truth.get("status") == "discontinued":
            line["available_ended"] = mapping.iso(datetime.now(UTC))
        return line

    # --- orders: OR23 + OR24, OR21, one call per order --------------------------------------------------

    def _push_orders(self, client: MiraklClient, actions: list[Action], outcomes: dict[str, PushOutcome]) -> None:
        found = self._find_orders(client, actions)
        grouped: dict[tuple[str, str], list[Action]] = defaultdict(list)
        for a in actions:
            order = found.get(a.action_id)
            if order is None:
                outcomes[a.action_id] = PushOutcome(False, f"order {a.key} was not found on mirakl")
            else:
                grouped[(order["order_id"], a.action)].append(a)
        for (_, action), order_actions in grouped.items():
            order = found[order_actions[0].action_id]
            if action == "accept_order":
                outcome = self._accept(client, order)
            else:
                outcome = self._post_tracking(client, order, order_actions)
            outcomes.update(dict.fromkeys((a.action_id for a in order_actions), outcome))

    def _accept(self, client: MiraklClient, order: Record) -> PushOutcome:
        state = order.get("order_state")
        if state != AWAITING_ACCEPTANCE:
            if state in NOT_ACCEPTED:
                return PushOutcome(False, f"order {order['order_id']} is {state}: it can no longer be accepted")
            return PushOutcome(True, f"order {order['order_id']} was already accepted ({state})")
        decisions = [{"id": line["order_line_id"], "accepted": True} for line in order.get("order_lines") or ()]
        return self._order_call(client, "OR21", order, "accept", {"order_lines": decisions})

    def _post_tracking(self, client: MiraklClient, order: Record, actions: list[Action]) -> PushOutcome:
        wanted = {a.field: a.after for a in actions}
        truth = {k: v for a in actions for k, v in a.truth.items() if v is not None}
        tracking = wanted.get("tracking_number") or truth.get("tracking_number") or order.get("shipping_tracking")
        carrier = wanted.get("carrier") or truth.get("carrier") or order.get("shipping_carrier_code")
        if not carrier:
            return PushOutcome(
                False,
                f"order {order['order_id']}: no carrier code to post tracking {tracking} with "
                "(the plan carries no ERP shipment and mirakl holds no carrier)",
            )
        posted = self._order_call(
            client, "OR23", order, "tracking", {"carrier_code": carrier, "tracking_number": tracking}
        )
        if not posted.ok or order.get("order_state") != "SHIPPING":
            return posted
        shipped = self._order_call(client, "OR24", order, "ship", None)
        if not shipped.ok:
            return PushOutcome(False, f"tracking posted, but the shipment was not confirmed: {shipped.detail}")
        return PushOutcome(True, f"order {order['order_id']}: tracking posted (OR23), shipment confirmed (OR24)")

    def _order_call(
        self, client: MiraklClient, operation: str, order: Record, verb: str, body: Record | None
    ) -> PushOutcome:
        path = f"/api/orders/{order['order_id']}/{verb}"
        # A refusal of this one order is its action's failure, not the batch's. An order call is sent once:
        # after a timeout or a 5xx it may have been applied (a shipment confirmed, an order accepted), so the
        # apply stops with the action in doubt, and the next apply reads the order before sending anything.
        response = client.http.request("PUT", path, params=self._shop, json=body, expect=(400, 404, 409), once=True)
        if response.is_success:
            return PushOutcome(True, f"order {order['order_id']}: {operation}")
        return PushOutcome(False, f"{operation} {response.status_code}: {error_excerpt(response, error_text)}")

    # --- reading what Mirakl holds ----------------------------------------------------------------------

    def _current_offers(self, client: MiraklClient, skus: Iterable[str]) -> dict[str, Record]:
        """The OF21 offers of these SKUs: pages of the whole listing while that is the cheaper way to see them
        all, then one filtered call per SKU still unseen (also catching an offer that moved while paging)."""
        wanted, found = set(skus), {}
        offset, page_size = 0, int(self.setting("offset_page_size", OFFSET_PAGE_SIZE))
        while True:
            page, total = client.offset_page("/api/offers", "offers", {}, offset)
            found.update({o["shop_sku"]: o for o in page if o["shop_sku"] in wanted})
            offset += len(page)
            pages_left = -(-(total - offset) // page_size)
            if not page or offset >= total or len(wanted - found.keys()) <= pages_left:
                break
        for sku in sorted(wanted - found.keys()):
            offers, _ = client.offset_page("/api/offers", "offers", {"sku": sku}, 0)
            found.update({o["shop_sku"]: o for o in offers if o["shop_sku"] == sku})
        return found

    def _find_orders(self, client: MiraklClient, actions: list[Action]) -> dict[str, Record | None]:
        """Each action's Mirakl order: by the Mirakl id its truth row names, else by the ERP number stored on
        the order, else by its key as a Mirakl id."""
        refs = {a.key for a in actions if not a.truth.get("external_id")}
        by_ref = {mapping.order_key(o): o for o in self._list_orders(client, "order_references_for_seller", refs)}
        ids = {a.action_id: a.truth.get("external_id") or a.key for a in actions if a.key not in by_ref}
        by_id = {o["order_id"]: o for o in self._list_orders(client, "order_ids", set(ids.values()))}
        return {a.action_id: by_id.get(ids[a.action_id]) if a.action_id in ids else by_ref.get(a.key) for a in actions}

    def _list_orders(self, client: MiraklClient, filter_name: str, values: set[str]) -> list[Record]:
        orders: list[Record] = []
        chosen = sorted(values)
        for start in range(0, len(chosen), OFFSET_PAGE_SIZE):
            params = {filter_name: ",".join(chosen[start : start + OFFSET_PAGE_SIZE])}
            offset = 0
            while True:
                page, total = client.offset_page("/api/orders", "orders", params, offset, listing="OR11")
                orders += page
                offset += len(page)
                if not page or offset >= total:
                    break
        return orders

    # --- imports ----------------------------------------------------------------------------------------

    def _run_import(self, client: MiraklClient, api: ImportApi, **request: Any) -> ImportResult:
        """Submit an import, wait until Mirakl has processed it, and read the lines it rejected."""
        submitted = client.http.request_json("POST", api.submit_path, params=self._shop, bucket=api.submit, **request)
        import_id = submitted["import_id"]
        status = self._await(client, api, import_id)
        detail = f"{api.name} {import_id}"
        if status["status"] == "FAILED":
            return ImportResult(detail, {}, f"{detail} failed: {status.get('reason_status') or 'no reason given'}")
        if not status.get("has_error_report"):
            return ImportResult(detail, {})
        report = client.http.request("GET", api.report_path.format(import_id), params=self._shop, bucket=api.report)
        return ImportResult(detail, _report_errors(report, api.sku_column))

    def _await(self, client: MiraklClient, api: ImportApi, import_id: Any) -> Record:
        # The status call has its own ceiling, and its limiter paces the polling.
        deadline = time.monotonic() + self._import_timeout
        while True:
            status = client.get(api.status_path.format(import_id), limited_as=api.status)
            if status["status"] in ("COMPLETE", "FAILED"):
                return status
            if time.monotonic() > deadline:
                raise IncompleteError(
                    f"mirakl: {api.name} {import_id} is still {status['status']} after {self._import_timeout:g}s; "
                    "run the apply again later: it reads what Mirakl holds before pushing anything again"
                )


def whole_offer(offer: Record) -> Record:
    """An OF24 line that keeps everything an OF21 offer holds (OF24 resets whatever a line leaves out)."""
    line: Record = {
        "shop_sku": offer["shop_sku"],
        "product_id": offer.get("product_sku") or offer["shop_sku"],
        "product_id_type": "SKU",
        "update_delete": "update",
    }
    line.update({f: offer[f] for f in SAME_FIELDS if offer.get(f) is not None})
    line.update({new: offer[old] for old, new in RENAMED_FIELDS.items() if offer.get(old) is not None})
    if offer.get("logistic_class"):
        line["logistic_class"] = offer["logistic_class"]["code"]
    if offer.get("discount"):
        discount = offer["discount"]
        line["discount"] = {
            "price": discount.get("discount_price"),
            "start_date": discount.get("start_date"),
            "end_date": discount.get("end_date"),
            "ranges": discount.get("ranges") or [],
        }
    if offer.get("all_prices"):
        line["all_prices"] = [
            {
                **{k: p.get(k) for k in _PRICE_KEYS},
                "volume_prices": [{k: v.get(k) for k in _VOLUME_KEYS} for v in p.get("volume_prices") or ()],
            }
            for p in offer["all_prices"]
        ]
    return line


def _apply(line: Record, action: Action) -> None:
    """Change an OF24 line as one action says."""
    if action.action == "deactivate_offer":
        line["update_delete"] = "delete"
    elif action.action == "update_price":
        price = _money(action.after)
        line["price"] = price
        for prices in line.get("all_prices") or ():
            if prices.get("channel_code") is None:  # the default price, which would otherwise win over `price`
                prices["unit_origin_price"] = price
    elif action.action == "set_offer_status":
        if action.after == "discontinued":
            line["available_ended"] = mapping.iso(datetime.now(UTC))
        else:
            line.pop("available_ended", None)
            line.pop("available_started", None)


def _nothing_to_send(action: Action, offer: Record | None) -> PushOutcome:
    sku = _sku(action)
    if offer is None and action.action != "deactivate_offer":
        return PushOutcome(
            False, f"offer {sku} is not on mirakl: there is nothing to {action.action.replace('_', ' ')}"
        )
    return PushOutcome(True, f"offer {sku} is already {PRESENT if offer is not None else ABSENT}")


def _offer_value(action: Action, offer: Record | None) -> str | None:
    if action.action in ("create_offer", "deactivate_offer"):
        return PRESENT if offer is not None else ABSENT
    if offer is None:
        return None
    if action.action == "set_stock":
        return None if offer.get("quantity") is None else str(offer["quantity"])
    return mapping.offer_to_product(offer).get(action.field)


def _order_value(action: Action, order: Record | None) -> str | None:
    if order is None:
        return None
    state = order.get("order_state")
    if action.action == "accept_order":
        # The finding expects acceptance before its deadline (its `after`): met once the order is accepted.
        return action.after if state not in NOT_ACCEPTED else state
    if state == "SHIPPING":
        return None  # the ERP shipped it: until OR24 confirms the shipment here, the repair is not done
    if action.field == "carrier":
        return order.get("shipping_carrier_code") or order.get("shipping_company")
    return order.get("shipping_tracking")


def _report_errors(response: httpx.Response, sku_column: str) -> dict[str, str]:
    """{sku: reason} from an error report: the reason is its second column (the first is the line number)."""
    report = pl.read_csv(io.BytesIO(response.content), separator=";", infer_schema=False)
    if report.is_empty() or sku_column not in report.columns:
        return {}
    reason = report.columns[1]
    return dict(zip(report[sku_column], report[reason], strict=True))


def _sku(action: Action) -> str:
    return action.key.partition("/")[0]


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _json(body: Any) -> bytes:
    # Money goes out as a JSON number; float() of a Decimal with a few decimals prints back the same digits.
    return json.dumps(body, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)).encode()
