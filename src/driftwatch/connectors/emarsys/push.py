"""Repairs pushed to Emarsys: contact upserts (1,000 a call) and the regenerated product catalogue file.

Contacts: `PUT contact/?create_if_not_exists=1` changes only the fields sent, so an action sends its
contact's key (the ERP id the integration stores) and the one field it repairs (a missing profile: every
field of the ERP row that Emarsys has a field for). The opt-in (field 31) is written as 1 or 2, never as a
boolean. Emarsys reports a refused call inside HTTP 200 (`replyCode`: the client raises it, since the whole
call is wrong) and a refused contact in `data.errors`, keyed by its key value: that contact's actions fail
with Emarsys' own words. A creation that loses the documented upsert race (2006 "already exists", nothing
created) is sent once more. A contact that stores no ERP id was matched by email in the audit: it is
updated through its Emarsys id (and given the ERP id), never duplicated.

Catalogue: Emarsys imports the whole file from the retailer's host (`catalog_url`) and drops every product
the file leaves out, so a repair rewrites that file whole: the file as served now, with the batch's changes
(a missing product added, using `link_template` for its page, e.g. "https://shop.example/{sku}"; a price,
an availability or a stock figure changed; a product the ERP does not know left out), written to
`catalog_file` (where the host serves it from) under a temporary name and renamed into place, so the host
never serves half a file. Emarsys sees it on its next import.

Not pushed: sales-data corrections (`upsert_order`; a plan holding one for Emarsys is refused before anything
is sent). Uploads add up and are never de-duplicated, an ordered quantity is the sum of the positive lines
(a negative line reads as a cancellation or return, never as a smaller order), and a missing order's action
carries its header but not its lines: no correction line can express those repairs faithfully.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from driftwatch.connectors.emarsys.client import BASE_URL, BATCH, EmarsysClient
from driftwatch.connectors.emarsys.connector import Connector
from driftwatch.connectors.emarsys.mapping import CATALOGUE_PRODUCT, OPT_IN, OPT_IN_VALUES, catalogue_to_frames, text
from driftwatch.files import atomic_path
from driftwatch.push import Action, PushOutcome

PRESENT, ABSENT = "present", "absent"  # what a finding about a missing profile expects and found
EMAIL = "email"
UPSERT_RACE = "2006"  # "Contact with the external id already exists": Emarsys asks for the call to be repeated
CONTACT_ACTIONS = frozenset({"upsert_contact", "update_consent"})
CATALOGUE_ACTIONS = frozenset({"create_offer", "update_price", "set_offer_status", "deactivate_offer", "set_stock"})
# what `read` answers for an action that changes a product: (canonical frame, column)
READ_AS = {
    "update_price": ("products", "price"),
    "set_offer_status": ("products", "status"),
    "set_stock": ("inventory", "available"),
}


class Pusher:
    target = "emarsys"
    batch_size = BATCH
    actions = CONTACT_ACTIONS | CATALOGUE_ACTIONS
    settings_keys = frozenset({"catalog_file", "link_template"})

    def __init__(
        self, settings: Mapping[str, Any], *, source: str | None = None, env: Mapping[str, str] = os.environ, **_: Any
    ):
        # Settings, field ids and credentials, checked once.
        self._connector = Connector(dict(settings), source=source, env=env)
        self.target = self._connector.source
        self.fields = self._connector.fields
        self.key_field = self.fields["erp_customer_id"]
        self.client = self._new_client()  # one client for every batch: one rate limiter, one OAuth token

    def push(self, batch: list[Action]) -> dict[str, PushOutcome]:
        contacts = [a for a in batch if a.action in CONTACT_ACTIONS]
        products = [a for a in batch if a.action in CATALOGUE_ACTIONS]
        return {**self._push_contacts(contacts), **self._push_catalogue(products)}

    def read(self, batch: list[Action]) -> dict[str, str | None]:
        contacts = [a for a in batch if a.action in CONTACT_ACTIONS]
        products = [a for a in batch if a.action in CATALOGUE_ACTIONS]
        return {**self._read_contacts(contacts), **self._read_catalogue(products)}

    # --- contacts -----------------------------------------------------------------------------------------

    def _push_contacts(self, batch: list[Action]) -> dict[str, PushOutcome]:
        if not batch:
            return {}
        outcomes: dict[str, PushOutcome] = {}
        contacts: dict[str, dict[str, Any]] = {}  # ERP id -> the fields to write
        for action in batch:
            fields = self._fields_of(action)
            if isinstance(fields, PushOutcome):
                outcomes[action.action_id] = fields
            else:
                contacts.setdefault(action.key, {self.key_field: action.key}).update(fields)
        by_email = self._matched_by_email(batch, contacts)
        errors = self._upsert(contacts, by_email)
        for action in batch:
            if action.action_id not in outcomes:
                error = errors.get(action.key)
                outcomes[action.action_id] = PushOutcome(error is None, error or "upserted")
        return outcomes

    def _read_contacts(self, batch: list[Action]) -> dict[str, str | None]:
        if not batch:
            return {}
        wanted = sorted({self.fields[a.field] for a in batch if a.field in self.fields} | {self.fields[EMAIL]})
        found = self._getdata(self.key_field, sorted({a.key for a in batch}), wanted)
        missing = {_email(a): a.key for a in batch if a.key not in found and _email(a)}
        for email, contact in self._by_email(sorted(missing), wanted).items():
            found[missing[email]] = contact
        return {a.action_id: self._value(found.get(a.key), a.field) for a in batch}

    def _fields_of(self, action: Action) -> dict[str, Any] | PushOutcome:
        """The Emarsys fields an action writes, or why it cannot be written."""
        if action.field == "" and action.after == PRESENT:
            row = {**action.truth, "erp_customer_id": action.key}
            return {fid: _value_to_write(col, row[col]) for col, fid in self.fields.items() if row.get(col) is not None}
        if action.field not in self.fields:
            return PushOutcome(
                False, f"emarsys keeps no field for {action.field!r}: map it in sources.{self.target}.field_ids"
            )
        return {self.fields[action.field]: _value_to_write(action.field, action.after)}

    def _matched_by_email(self, batch: list[Action], contacts: dict[str, dict[str, Any]]) -> dict[str, str]:
        """ERP id -> Emarsys id of the contacts that store no ERP id yet but carry the ERP customer's email."""
        by_key = self._getdata(self.key_field, sorted(contacts), [])
        emails = {_email(a): a.key for a in batch if a.key in contacts and a.key not in by_key and _email(a)}
        found = self._by_email(sorted(emails), [])
        return {emails[email]: str(contact["id"]) for email, contact in found.items()}

    def _upsert(self, contacts: dict[str, dict[str, Any]], by_email: dict[str, str]) -> dict[str, str]:
        """Write the contacts; ERP id -> Emarsys' error for each contact it refused."""
        errors: dict[str, str] = {}
        keyed_by_id = [{**fields, "id": by_email[key]} for key, fields in contacts.items() if key in by_email]
        keyed_by_erp_id = [fields for key, fields in contacts.items() if key not in by_email]
        erp_id_of = {contact_id: key for key, contact_id in by_email.items()}
        for contact_id, error in self._put("id", keyed_by_id).items():
            errors[erp_id_of[contact_id]] = error
        raced = {}
        for key, error in self._put(self.key_field, keyed_by_erp_id).items():
            (raced if error.startswith(UPSERT_RACE) else errors)[key] = error
        if raced:
            errors.update(self._put(self.key_field, [contacts[key] for key in raced]))
        return errors

    def _put(self, key_id: str, contacts: list[dict[str, Any]]) -> dict[str, str]:
        if not contacts:
            return {}
        body = {"key_id": key_id, "contacts": contacts}
        data = self.client.http.request_json(
            "PUT", f"{self.client.api_path}/contact/", params={"create_if_not_exists": 1}, json=body, bucket="api"
        )["data"]
        refused = (data or {}).get("errors") or {}
        return {str(key): "; ".join(f"{code}: {msg}" for code, msg in codes.items()) for key, codes in refused.items()}

    def _by_email(self, emails: list[str], fields: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Email -> the contact with that email that stores no ERP id (one storing another is someone else)."""
        found = self._getdata(self.fields[EMAIL], emails, fields)
        return {email: contact for email, contact in found.items() if not contact.get(self.key_field)}

    def _getdata(self, key_id: str, values: list[str], fields: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Key value -> the one contact holding it (a key held by several contacts is left out)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(values), BATCH):
            chunk = values[start : start + BATCH]
            data = self.client.http.request_json(
                "POST",
                f"{self.client.api_path}/contact/getdata",
                json={"keyId": key_id, "keyValues": chunk, "fields": sorted({*fields, key_id, self.key_field})},
                bucket="api",
            )["data"]
            for contact in (data or {}).get("result") or []:
                found[self._norm(key_id, contact.get(key_id))] = contact
        return found

    def _norm(self, key_id: str, value: Any) -> str:
        """A key value as compared: emails trimmed and lower-cased, as the audit matched them."""
        return str(value).strip().lower() if key_id == self.fields[EMAIL] else str(value)

    def _value(self, contact: dict[str, Any] | None, field: str) -> str | None:
        if field == "":
            return PRESENT if contact else ABSENT
        if contact is None or field not in self.fields:
            return None
        value = text(contact.get(self.fields[field]))
        return OPT_IN.get(value, value) if field == "email_consent" and value is not None else value

    # --- catalogue ----------------------------------------------------------------------------------------

    def _push_catalogue(self, batch: list[Action]) -> dict[str, PushOutcome]:
        if not batch:
            return {}
        target = self._connector.setting("catalog_file", None)
        if target is None:
            refusal = PushOutcome(
                False, f"set sources.{self.target}.catalog_file: the file the host of catalog_url serves"
            )
            return dict.fromkeys((a.action_id for a in batch), refusal)
        catalogue = self._catalogue()
        rows = {row["item"]: row for row in catalogue.to_dicts()}
        outcomes = {action.action_id: self._change(rows, action) for action in batch}
        columns = dict.fromkeys([*catalogue.columns, *(column for row in rows.values() for column in row)], pl.String)
        _write_whole(Path(target), pl.DataFrame(list(rows.values()), schema=columns))
        return outcomes

    def _change(self, rows: dict[str, dict[str, str | None]], action: Action) -> PushOutcome:
        """Apply one action to the catalogue's rows (item -> row)."""
        sku = _sku(action)
        if action.action == "deactivate_offer":
            rows.pop(sku, None)  # a product the file leaves out drops out of Emarsys
            return PushOutcome(True, "left out of the catalogue file")
        if action.action == "create_offer":
            template = self._connector.setting("link_template", None)
            if template is None:
                return PushOutcome(
                    False, f"set sources.{self.target}.link_template: a new product needs its page's link"
                )
            truth = action.truth
            row = {column: truth.get(field) for column, field in CATALOGUE_PRODUCT.items() if column != "item"}
            rows[sku] = {**row, "item": sku, "link": template.format(sku=sku), "available": _available(truth)}
            return PushOutcome(True, "added to the catalogue file")
        if sku not in rows:
            return PushOutcome(False, f"{sku} is not in the catalogue file")
        if action.action == "set_stock":
            rows[sku].update(c_stock=action.after, c_stock_updated_at=datetime.now(UTC).isoformat())
        elif action.action == "update_price":
            rows[sku]["price"] = action.after
        else:
            rows[sku]["available"] = _available({"status": action.after})
        return PushOutcome(True, "catalogue file rewritten")

    def _read_catalogue(self, batch: list[Action]) -> dict[str, str | None]:
        if not batch:
            return {}
        products, inventory = catalogue_to_frames(self._catalogue(), None)
        frames = {"products": products, "inventory": inventory}
        values: dict[str, str | None] = {}
        for action in batch:
            sku = _sku(action)
            if action.action in ("create_offer", "deactivate_offer"):
                values[action.action_id] = PRESENT if (products["sku"] == sku).any() else ABSENT
                continue
            frame, column = READ_AS[action.action]
            found = frames[frame].filter(pl.col("sku") == sku)
            values[action.action_id] = found[column][0] if found.height and column in found.columns else None
        return values

    def _catalogue(self) -> pl.DataFrame:
        """The catalogue file as the retailer's host serves it to Emarsys, every column as text."""
        served = self.client.get_text(self._connector.setting("catalog_url"))
        return pl.read_csv(io.StringIO(served), infer_schema=False)

    def _new_client(self) -> EmarsysClient:
        c = self._connector
        return EmarsysClient(
            c.setting("base_url", BASE_URL),
            c._auth,
            api_path=c._api_path,
            secrets=c._secrets,
            settings=c.settings,
            http_settings=c.http_settings,
        )


def _value_to_write(column: str, value: str | None) -> str | int | None:
    if column == "email_consent" and value is not None:
        return int(OPT_IN_VALUES[value.strip().lower()])
    return value


def _email(action: Action) -> str | None:
    email = action.truth.get(EMAIL)
    return email.strip().lower() if email else None


def _sku(action: Action) -> str:
    return action.key.split("/")[0]  # stock is keyed SKU/location; the catalogue has one figure per SKU


def _available(truth: Mapping[str, Any]) -> str:
    return "false" if truth.get("status") == "discontinued" else "true"


def _write_whole(path: Path, catalogue: pl.DataFrame) -> None:
    """Write under a temporary name, then rename: the host serves the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        catalogue.write_csv(tmp)
