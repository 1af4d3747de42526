"""An incident in words: its probable cause as one sentence, and why its findings were grouped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from driftwatch.incidents.grouping import Cause

NOUNS = {
    "inventory": "stock figures",
    "products": "products",
    "orders": "orders",
    "order_lines": "orders",
    "shipments": "orders",
    "returns": "orders",
    "events": "orders",
    "customers": "customers",
    "payout_lines": "payout lines",
}
LABELS = {
    "location": "location",
    "division": "division",
    "channel": "channel",
    "status": "ERP status",
    "target_status": "status on the target",
    "carrier": "carrier",
    "style": "style",
    "sku_prefix": "SKU prefix",
    "line_type": "payout line type",
    "payout_id": "payout",
    "stalled": "ERP change after the target's last update",
    "country": "country",
    "currency": "currency",
    "first_run": "run in which the findings first appeared",
}


@dataclass(frozen=True)
class Context:
    """What the sentence needs to know beyond the cause: where the records live and what words mean."""

    target: str
    entity: str
    feeds_location: bool | None = None  # whether the value (a location) feeds the target in the ERP
    absent_on_target: bool = False  # the target keeps stock per location and lists none for it
    status_word: str | None = None  # the canonical word of an ERP status code ("" when none maps it)
    run_started: datetime | None = None  # for first_run: when that run started


def cause_sentence(cause: Cause, ctx: Context) -> str:
    k, n, v = cause.size, cause.findings, cause.value
    noun = NOUNS.get(ctx.entity, "records")
    of = f"{k} of {n} {noun}"
    match cause.attribute:
        case "location":
            text = f"{of} are in location {v}"
            if ctx.feeds_location:
                text += f", which feeds {ctx.target} in the ERP"
                text += " but is absent there" if ctx.absent_on_target else ""
            return text
        case "status":
            word = f" ({ctx.status_word})" if ctx.status_word else " (a code no status mapping names)"
            return f"{of} have status {v}{word} in the ERP"
        case "target_status":
            return f"{of} are {v} on {ctx.target}"
        case "carrier":
            return f"{of} ship with carrier {v}"
        case "style":
            return f"{of} are of style {v}"
        case "sku_prefix":
            return f"{of} have SKUs starting {v}"
        case "line_type":
            return f"{of} are {v} lines"
        case "payout_id":
            return f"{of} belong to payout {v}"
        case "currency":
            return f"{of} are in {v}"
        case "stalled":
            every = f"every {ctx.target} {noun.removesuffix('s')} stopped changing after {v}"
            return f"{every}: {of} are records the ERP changed since"
        case "first_run":
            when = f"{ctx.run_started:%Y-%m-%d %H:%M}" if ctx.run_started else v
            return f"{of} first appeared in the run of {when}"
        case attribute:
            return f"{of} share {LABELS.get(attribute, attribute)} {v}"


def explanation(cause: Cause) -> str:
    """Why these findings are one incident: the attribute, its share, and what the others look like."""
    label = LABELS.get(cause.attribute, cause.attribute)
    text = f"Grouped by {label} {cause.value}: {cause.size} of {cause.findings} open findings ({_pct(cause.share)})."
    if cause.attribute == "first_run":
        text += (
            f" {cause.drifting_with} findings arrived in that run; {cause.drifting_without} in the "
            f"{cause.records_without} earlier run(s) that audited the target."
        )
    else:
        text += (
            f" Records with it: {cause.drifting_with} of {cause.records_with} drift "
            f"({_pct(cause.drifting_with / cause.records_with)}). Records without it: {cause.drifting_without} of "
            f"{cause.records_without} drift ({_pct(cause.drifting_without / cause.records_without)})."
        )
    if cause.also:
        shared = ", ".join(f"{LABELS.get(a, a)} {v} ({n})" for a, v, n in cause.also)
        text += f" Also shared by most of them: {shared}."
    return text


def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.1%}"
