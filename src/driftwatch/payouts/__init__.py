"""Month-end marketplace payout reconciliation.

For every accounting document of a period: its lines must sum to its payment line; order amounts and
shipping match the ERP order carrying the marketplace order id; refunds match the ERP's credit memos;
commissions are charged at the agreed rate. Unmatched lines on both sides, amounts off by more than the
tolerance, duplicates and orders delivered but not yet paid are reported, and the commissions, fees,
refunds and adjustments the ERP has not journalled yet are proposed as balanced journal entries.
Money is Decimal and never summed across currencies.
"""

from driftwatch.payouts.closes import lock
from driftwatch.payouts.output import write_outputs
from driftwatch.payouts.period import Period, parse_period
from driftwatch.payouts.reconcile import reconcile
from driftwatch.payouts.result import Reconciliation

__all__ = ["Period", "Reconciliation", "lock", "parse_period", "reconcile", "write_outputs"]
