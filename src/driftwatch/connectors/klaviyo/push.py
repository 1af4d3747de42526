"""Repairs pushed to Klaviyo, each through the write Klaviyo documents for it.

- `set_stock`: one catalog variant bulk update job per batch (at most 100 variants a job), polled until it
  is complete; the rows the job lists in `errors[]` fail with Klaviyo's words. A job sent twice is applied
  twice, so its POST is never repeated after it may have arrived.
- `update_consent`: a profile PATCH never changes consent, so email opt-in goes through the subscription
  bulk jobs: subscribe (at most 1000 profiles a job) or unsubscribe (at most 100; with no list named, a
  global unsubscribe, which is what an ERP opt-out means). These jobs answer 202 with nothing to poll, so
  the push reads the profiles back until they show the change (a double opt-in list leaves them waiting
  for the person's confirmation: that action fails and says so). Every profile of the ERP customer is
  written: one subscribed duplicate would still mail someone who opted out. SMS consent needs the
  person's phone number, which the canonical customer does not carry: those actions fail with that reason.
- `upsert_contact`: a field of an existing profile is PATCHed on every profile of the customer; a customer
  Klaviyo lacks is created through `POST /api/profile-import` (an upsert keyed on external id and email),
  then subscribed if the ERP says they opted in (an import cannot set consent).
- `send_event`: a missing Fulfilled / Cancelled / Refunded Order event, at the ERP's time, on the profile
  of the order's other events, with the order id as `unique_id`: Klaviyo keeps only the first event with
  that id for a profile and metric, so a resend after a crash is dropped by Klaviyo itself.

Profiles of an ERP customer are those storing its id as `external_id`, else those with its email.
`read` pulls the current state through the connector, as an audit would see it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import polars as pl

from driftwatch.connectors._http import error_excerpt
from driftwatch.connectors._push import profiles_of
from driftwatch.connectors.klaviyo import mapping
from driftwatch.connectors.klaviyo.client import MEDIA_TYPE, error_text
from driftwatch.connectors.klaviyo.connector import Connector
from driftwatch.errors import IncompleteError
from driftwatch.push import Action, PushOutcome

VARIANTS_PER_JOB = 100
SUBSCRIBE_PER_JOB = 1000
UNSUBSCRIBE_PER_JOB = 100
PROFILES_PER_PAGE = 100
# Documented limits of the writes (x-klaviyo-ratelimit): catalog bulk jobs and their status share one
# bucket here, and subscription jobs have their own; profile writes and event creation share the read
# buckets of their resource.
WRITE_RATE_LIMITS: dict[str, list[tuple[int, float]]] = {
    "catalog_jobs": [(75, 1.0), (750, 60.0)],
    "subscriptions": [(75, 1.0), (750, 60.0)],
}
WRITE_BUCKETS = {
    "/api/catalog-variant-bulk-update-jobs": "catalog_jobs",
    "/api/profile-subscription-bulk-create-jobs": "subscriptions",
    "/api/profile-subscription-bulk-delete-jobs": "subscriptions",
    "/api/profile-import": "profiles",
}
POLL_SECONDS = 1.0
JOB_TIMEOUT = 300.0
PRESENT, ABSENT = "present", "absent"
FINISHED = frozenset({"complete", "cancelled"})
ROW_POINTER = re.compile(r"^/data/attributes/variants/data/(\d+)")

# canonical column -> where it lives on a profile (custom properties are added from the settings)
PROFILE_ATTRIBUTES = {"email": ("email",), "first_name": ("first_name",), "last_name": ("last_name",)}
PROFILE_ATTRIBUTES |= {"postcode": ("location", "zip"), "country": ("location", "country")}
PROPERTY_TYPES = {"lifetime_value": Decimal, "order_count": int}

Json = dict[str, Any]


class Pusher:
    """Settings: those of the connector, and `poll_seconds` (between two looks at a job, default 1),
    `job_timeout` (seconds a job may take before the push gives up and leaves it in doubt, default 300),
    `subscribe_list_id` (the list a subscribe job names; default none: the account's opt-in setting),
    `backfill_events` (sent events do not trigger flows; default false: a missing dispatch or refund
    email is part of the drift being repaired)."""

    target = "klaviyo"
    batch_size = min(VARIANTS_PER_JOB, UNSUBSCRIBE_PER_JOB)
    actions = frozenset({"set_stock", "update_consent", "upsert_contact", "send_event"})
    settings_keys = frozenset({"poll_seconds", "job_timeout", "subscribe_list_id", "backfill_events"})

    def __init__(
        self, settings: Mapping[str, Any], *, source: str | None = None, env: Mapping[str, str] = os.environ, **_: Any
    ):
        limits = {**WRITE_RATE_LIMITS, **settings.get("rate_limits", {})}
        self._connector = Connector({**settings, "rate_limits": limits}, source=source, env=env)
        self.target = self._connector.source
        self._http = self._connector.client.http
        self._poll = float(settings.get("poll_seconds", POLL_SECONDS))
        self._timeout = float(settings.get("job_timeout", JOB_TIMEOUT))
        self._list_id = settings.get("subscribe_list_id")
        self._backfill = bool(settings.get("backfill_events", False))
        self._metric_names = {canonical: name for name, canonical in self._connector.metrics.items()}
        # Read once per apply; the pushes keep them up to date with what they changed.
        self._profiles: pl.DataFrame | None = None
        self._events: pl.DataFrame | None = None

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        outcomes: dict[str, PushOutcome] = {}
        for kind, write in (
            ("set_stock", self._set_stock),
            ("update_consent", self._update_consent),
            ("upsert_contact", self._upsert_contacts),
            ("send_event", self._send_events),
        ):
            actions = [a for a in batch if a.action == kind]
            if actions:
                outcomes |= write(actions)
        return outcomes

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        held = self._connector.pull(sorted({_entity(a) for a in batch})).frames
        return {a.action_id: _current(a, held[_entity(a)]) for a in batch}

    # --- stock --------------------------------------------------------------------------------------------

    def _set_stock(self, actions: list[Action]) -> dict[str, PushOutcome]:
        outcomes, rows = {}, []
        for action in actions:
            quantity = _quantity(action.after)
            if quantity is None:
                outcomes[action.action_id] = PushOutcome(False, f"not a stock quantity: {action.after!r}")
                continue
            variant_id = f"{mapping.VARIANT_PREFIX}{_sku(action)}"
            rows.append(
                (action, {"type": "catalog-variant", "id": variant_id, "attributes": {"inventory_quantity": quantity}})
            )
        for start in range(0, len(rows), VARIANTS_PER_JOB):
            chunk = rows[start : start + VARIANTS_PER_JOB]
            body = {
                "data": {
                    "type": "catalog-variant-bulk-update-job",
                    "attributes": {"variants": {"data": [variant for _, variant in chunk]}},
                }
            }
            job = self._post("/api/catalog-variant-bulk-update-jobs", body, once=True)
            outcomes |= self._job_outcomes(job["data"]["id"], [a for a, _ in chunk])
        return outcomes

    def _job_outcomes(self, job_id: str, actions: list[Action]) -> dict[str, PushOutcome]:
        """Wait for a catalog job to finish; each row fails with the error that points at it."""
        attributes = self._finished_job(job_id)
        problems: dict[int, str] = {}
        for error in attributes.get("errors") or []:
            words = f"{error.get('code')}: {error.get('detail') or error.get('title')}"
            found = ROW_POINTER.match((error.get("source") or {}).get("pointer") or "")
            for row in [int(found.group(1))] if found else range(len(actions)):  # unnamed: any row of the job
                problems.setdefault(row, words)
        if attributes["status"] == "cancelled":
            problems = {row: problems.get(row, f"Klaviyo cancelled job {job_id}") for row in range(len(actions))}
        return {
            a.action_id: PushOutcome(False, problems[row]) if row in problems else PushOutcome(True, f"job {job_id}")
            for row, a in enumerate(actions)
        }

    def _finished_job(self, job_id: str) -> Json:
        deadline = time.monotonic() + self._timeout
        while True:
            body = self._http.request_json(
                "GET", f"/api/catalog-variant-bulk-update-jobs/{job_id}", bucket="catalog_jobs"
            )
            attributes = body["data"]["attributes"]
            if attributes["status"] in FINISHED:
                return attributes
            if time.monotonic() > deadline:
                raise IncompleteError(
                    f"klaviyo: catalog variant job {job_id} still {attributes['status']} after {self._timeout:g}s; "
                    "apply again later to settle it"
                )
            time.sleep(self._poll)

    # --- consent ------------------------------------------------------------------------------------------

    def _update_consent(self, actions: list[Action]) -> dict[str, PushOutcome]:
        profiles = self._profiles_held()
        outcomes: dict[str, PushOutcome] = {}
        targets: dict[str, list[Json]] = {"true": [], "false": []}  # wanted opt-in -> its profiles
        sent_for: dict[str, list[str]] = {}
        for action in actions:
            wanted = (action.after or "").strip().lower()
            if action.field != "email_consent":
                reason = "Klaviyo takes SMS consent by phone number, which the ERP's customer does not carry"
                outcomes[action.action_id] = PushOutcome(False, f"{reason}: not pushed")
            elif wanted not in targets:
                outcomes[action.action_id] = PushOutcome(False, f"not an opt-in: {action.after!r}")
            elif not (mine := profiles_of(action, profiles).filter(pl.col("email").is_not_null()).to_dicts()):
                outcomes[action.action_id] = PushOutcome(
                    False, f"Klaviyo has no profile with an email for {action.key}"
                )
            else:
                targets[wanted] += mine
                sent_for[action.action_id] = [p["customer_id"] for p in mine]
        self._subscribe([p for p in targets["true"] if p["email_consent"] != "true"])
        self._unsubscribe([p for p in targets["false"] if p["email_consent"] != "false"])
        if not sent_for:
            return outcomes
        wanted_of = {p["customer_id"]: wanted for wanted, chosen in targets.items() for p in chosen}
        waiting = self._await_consent(wanted_of)
        for action_id, ids in sent_for.items():
            late = sorted(set(ids) & waiting)
            outcomes[action_id] = (
                PushOutcome(True, "subscription job applied")
                if not late
                else PushOutcome(
                    False,
                    f"Klaviyo accepted the subscription job, but profile {', '.join(late)} did not change within "
                    f"{self._timeout:g}s (a double opt-in list waits for the person's confirmation)",
                )
            )
        return outcomes

    def _subscribe(self, profiles: list[Json]) -> None:
        for start in range(0, len(profiles), SUBSCRIBE_PER_JOB):
            chunk = profiles[start : start + SUBSCRIBE_PER_JOB]
            data: Json = {
                "type": "profile-subscription-bulk-create-job",
                "attributes": {
                    "custom_source": "driftwatch repair",
                    "profiles": {"data": _consents(chunk, "SUBSCRIBED")},
                },
            }
            if self._list_id:
                data["relationships"] = {"list": {"data": {"type": "list", "id": self._list_id}}}
            # A second subscribe to a double opt-in list sends the person a second confirmation.
            self._post("/api/profile-subscription-bulk-create-jobs", {"data": data}, once=True)

    def _unsubscribe(self, profiles: list[Json]) -> None:
        for start in range(0, len(profiles), UNSUBSCRIBE_PER_JOB):
            chunk = profiles[start : start + UNSUBSCRIBE_PER_JOB]
            data = {
                "type": "profile-subscription-bulk-delete-job",
                "attributes": {"profiles": {"data": _consents(chunk, "UNSUBSCRIBED")}},
            }
            self._post("/api/profile-subscription-bulk-delete-jobs", {"data": data})  # the same state if sent twice

    def _await_consent(self, wanted_of: Mapping[str, str]) -> set[str]:
        """Read the profiles until each shows the opt-in it was sent; the ids that never did."""
        deadline = time.monotonic() + self._timeout
        waiting = set(wanted_of)
        while True:
            held = self._consents(sorted(waiting))
            waiting = {pid for pid in waiting if held.get(pid) != wanted_of[pid]}
            if not waiting or time.monotonic() > deadline:
                self._remember_consents({pid: wanted for pid, wanted in wanted_of.items() if pid not in waiting})
                return waiting
            time.sleep(self._poll)

    def _consents(self, ids: list[str]) -> dict[str, str | None]:
        """Email opt-in of these profiles now, read by id, a page of 100 at a time."""
        client, held = self._connector.client, {}
        for start in range(0, len(ids), PROFILES_PER_PAGE):
            chosen = json.dumps(ids[start : start + PROFILES_PER_PAGE], separators=(",", ":"))
            params = {"additional-fields[profile]": "subscriptions", "filter": f"any(id,{chosen})"}
            body, _ = client.page("/api/profiles", client.first_page_params("profiles", **params))
            for profile in body["data"]:
                row = mapping.profile_to_customer(profile)
                held[row["customer_id"]] = row["email_consent"]
        return held

    # --- profiles -----------------------------------------------------------------------------------------

    def _upsert_contacts(self, actions: list[Action]) -> dict[str, PushOutcome]:
        profiles = self._profiles_held()
        outcomes = {a.action_id: self._upsert_contact(a, profiles) for a in actions}
        # An import cannot set consent: a new profile of an opted-in customer is subscribed after it.
        opted_in = [
            replace(a, field="email_consent", after="true")
            for a in actions
            if a.field == "" and outcomes[a.action_id].ok and (a.truth.get("email_consent") or "").lower() == "true"
        ]
        for action_id, outcome in (self._update_consent(opted_in) if opted_in else {}).items():
            if not outcome.ok:
                outcomes[action_id] = PushOutcome(False, f"{outcomes[action_id].detail}; {outcome.detail}")
        return outcomes

    def _upsert_contact(self, action: Action, profiles: pl.DataFrame) -> PushOutcome:
        if action.field == "" and action.after == PRESENT:
            return self._import_profile(action)
        attributes = self._profile_attributes(action.field, action.after)
        if attributes is None:
            return PushOutcome(False, f"klaviyo: {action.field!r} of a profile is not pushed by upsert_contact")
        ids = sorted(profiles_of(action, profiles)["customer_id"])
        if not ids:
            return PushOutcome(False, f"Klaviyo has no profile for customer {action.key}")
        for profile_id in ids:
            body = {"data": {"type": "profile", "id": profile_id, "attributes": attributes}}
            response = self._send("PATCH", f"/api/profiles/{profile_id}", body, bucket="profiles")
            if response.status_code >= 400:
                return PushOutcome(False, error_excerpt(response, error_text))
        return PushOutcome(True, f"profile {', '.join(ids)} updated")

    def _import_profile(self, action: Action) -> PushOutcome:
        truth = action.truth
        attributes: Json = {"external_id": action.key}
        for column in (*PROFILE_ATTRIBUTES, *self._connector.properties):
            if truth.get(column) is not None:
                _merge(attributes, self._profile_attributes(column, truth[column]) or {})
        response = self._send("POST", "/api/profile-import", {"data": {"type": "profile", "attributes": attributes}})
        if response.status_code >= 400:
            return PushOutcome(False, error_excerpt(response, error_text))
        profile = response.json()["data"]
        self._remember_profile(profile)  # its id is Klaviyo's: a subscribe that follows needs it
        return PushOutcome(True, f"profile {profile['id']} imported")

    def _profile_attributes(self, column: str, value: str | None) -> Json | None:
        if column in PROFILE_ATTRIBUTES:
            *parents, leaf = PROFILE_ATTRIBUTES[column]
            attributes: Json = {leaf: value}
            for parent in reversed(parents):
                attributes = {parent: attributes}
            return attributes
        if column in self._connector.properties:
            kind = PROPERTY_TYPES.get(column, str)
            return {"properties": {self._connector.properties[column]: None if value is None else kind(value)}}
        return None

    def _remember_consents(self, consents: Mapping[str, str]) -> None:
        ids = pl.col("customer_id")
        self._profiles = self._profiles_held().with_columns(
            pl.when(ids.is_in(list(consents)))
            .then(ids.replace(consents))
            .otherwise("email_consent")
            .alias("email_consent")
        )

    def _remember_profile(self, profile: Json) -> None:
        row = mapping.profile_to_customer(profile, self._connector.properties)
        held = self._profiles_held()
        self._profiles = pl.concat([held, pl.DataFrame([row], schema=held.schema)])

    def _profiles_held(self) -> pl.DataFrame:
        if self._profiles is None:
            self._profiles = self._connector.pull(["customers"]).frames["customers"]
        return self._profiles

    # --- events -------------------------------------------------------------------------------------------

    def _send_events(self, actions: list[Action]) -> dict[str, PushOutcome]:
        if self._events is None:
            self._events = self._connector.pull(["events"]).frames["events"]
        return {a.action_id: self._send_event(a, self._events) for a in actions}

    def _send_event(self, action: Action, events: pl.DataFrame) -> PushOutcome:
        name = self._metric_names.get(action.field)
        occurred = _moment(action.after)
        if name is None or occurred is None:
            return PushOutcome(False, f"klaviyo: cannot send a {action.field!r} event at {action.after!r}")
        order = events.filter((pl.col("order_id") == action.key) & pl.col("email").is_not_null())
        placed = order.filter(pl.col("metric") == "order_placed")
        if not order.height:
            return PushOutcome(False, f"no Klaviyo event of order {action.key} names its customer's profile")
        attributes: Json = {
            "metric": {"data": {"type": "metric", "attributes": {"name": name}}},
            "profile": {
                "data": {"type": "profile", "attributes": {"email": (placed if placed.height else order)["email"][0]}}
            },
            "properties": {mapping.ORDER_ID_PROPERTY: action.key, "$event_id": action.key},
            "time": occurred.isoformat(),
            "unique_id": action.key,  # as Klaviyo's own integrations do: one event per order and metric
            "backfill": self._backfill,
        }
        if action.field != "order_refunded" and placed.height and placed["value"][0] is not None:
            attributes["value"] = Decimal(placed["value"][0])  # a refund's amount is not the order's
        response = self._send(
            "POST", "/api/events", {"data": {"type": "event", "attributes": attributes}}, bucket="events"
        )
        if response.status_code >= 400:
            return PushOutcome(False, error_excerpt(response, error_text))
        return PushOutcome(True, f"event {name} {action.key} accepted")

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _post(self, path: str, body: Json, *, once: bool = False) -> Json:
        """A bulk job submission: any refusal is the whole job's, so it stops the push."""
        return self._http.request_json("POST", path, bucket=WRITE_BUCKETS.get(path), once=once, **_body(body))

    def _send(self, method: str, path: str, body: Json, *, bucket: str | None = None) -> httpx.Response:
        """A single-record write; a 4xx about the record comes back for its action to fail with."""
        return self._http.request(
            method, path, bucket=bucket or WRITE_BUCKETS.get(path), expect=(400, 404, 409), **_body(body)
        )


def _body(body: Json) -> Json:
    """A JSON:API request body; amounts go out as JSON numbers."""
    return {"content": json.dumps(body, default=_number), "headers": {"Content-Type": MEDIA_TYPE}}


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _consents(profiles: list[Json], consent: str) -> list[Json]:
    subscriptions = {"email": {"marketing": {"consent": consent}}}
    return [{"type": "profile", "attributes": {"email": p["email"], "subscriptions": subscriptions}} for p in profiles]


def _merge(into: Json, more: Json) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# --- what Klaviyo holds for one action --------------------------------------------------------------------


def _entity(action: Action) -> str:
    return {"set_stock": "inventory", "send_event": "events"}.get(action.action, "customers")


def _current(action: Action, held: pl.DataFrame) -> str | None:
    if action.action == "set_stock":
        values = held.filter(pl.col("sku") == _sku(action))["available"].to_list()
    elif action.action == "send_event":
        mine = held.filter((pl.col("order_id") == action.key) & (pl.col("metric") == action.field))
        values = sorted(mine["occurred_at"].drop_nulls().to_list(), key=_moment)[:1]
    else:
        mine = profiles_of(action, held)
        if action.field == "":
            return PRESENT if mine.height else ABSENT
        values = mine[action.field].drop_nulls().unique().to_list() if action.field in mine.columns else []
        if action.field == "email_consent" and len(values) > 1:
            return "true"  # one subscribed profile is enough to mail the person
    return _spelled_as(values[0], action.after) if len(values) == 1 else None


def _spelled_as(held: str, wanted: str | None) -> str:
    """The held value, in the plan's spelling when it is the same instant (Klaviyo writes times its own way)."""
    moment, other = _moment(held), _moment(wanted)
    return wanted if moment is not None and wanted is not None and moment == other else held


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _quantity(value: str | None) -> int | None:
    try:
        quantity = Decimal(value or "")
    except InvalidOperation:
        return None
    return int(quantity) if quantity == quantity.to_integral_value() else None


def _sku(action: Action) -> str:
    return action.key.split("/")[0]  # a stock key may name the location: Klaviyo keeps one figure ("*")
