"""Incidents: a run's open findings grouped by the probable cause their records share, followed across runs.

from driftwatch.incidents import record_incidents, run_incidents
record_incidents(store, cfg, run_id)     # after an audit: group, store, lifecycle
run_incidents(store, run_id)             # the run's incidents, most urgent first
acknowledge_incident(store, incident_id) # acknowledge (or mute) every finding of an open incident
"""

from driftwatch.incidents.grouping import LIFT, MIN_SHARE, MIN_SIZE, Cause, group
from driftwatch.incidents.lifecycle import acknowledge_incident, incident_members, record_incidents, run_incidents

__all__ = [
    "LIFT",
    "MIN_SHARE",
    "MIN_SIZE",
    "Cause",
    "acknowledge_incident",
    "group",
    "incident_members",
    "record_incidents",
    "run_incidents",
]
