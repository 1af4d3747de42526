"""Rule functions: the checks that are not a plain field-by-field comparison.

A check file names its rule (`rule = "..."`). Each family of rules has its own module and registers its
rules with `@rule`; a rule takes a Scope and returns findings as a lazy frame (FINDING_COLUMNS), or None
when the data it needs was not snapshotted. Every time-based rule measures against the snapshot's
captured_at, never the wall clock, so auditing the same snapshots always gives the same findings.
"""

from driftwatch.engine.rules import codes, fulfilment, marketplace, payouts, returns, snapshots, stock
from driftwatch.engine.rules._base import RULES, Rule, findings_from, rule

__all__ = [
    "RULES",
    "Rule",
    "codes",
    "findings_from",
    "fulfilment",
    "marketplace",
    "payouts",
    "returns",
    "rule",
    "snapshots",
    "stock",
]
