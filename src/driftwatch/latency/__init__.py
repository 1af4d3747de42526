"""Sync latency per integration: how long the ERP's changes take to appear on each target, measured from the
snapshot history, with objectives per target and entity (`[slo]`).

from driftwatch.latency import record_latency, run_latency
record_latency(store, cfg, run_id)   # after an audit: measure and store p50/p95/pending per feed and entity
"""

from driftwatch.latency.estimate import events, percentile
from driftwatch.latency.record import TRACKED, latency_history, previous_latency, record_latency, run_latency
from driftwatch.latency.slo import Objective, format_duration, slo_settings

__all__ = [
    "TRACKED",
    "Objective",
    "events",
    "format_duration",
    "latency_history",
    "percentile",
    "previous_latency",
    "record_latency",
    "run_latency",
    "slo_settings",
]
