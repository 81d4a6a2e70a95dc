"""What a correct collector must have delivered from the emulator's late world, for the demo and the e2e tests.

Per window of a run, the emulator's ground truth by the service's window field (activities by ``created``, files by
``snapshotLastModifiedDate``); for alerts, each alert raised in a window once, and once more for each window it was
resolved in (unless raised in that same window: then its first read shows it resolved already), each read flattened
into one event per combination of its entities. Imports nothing from Airflow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from airflow_provider_mdca.transforms.flatten import flatten_alert
from mdca_emulator.data import HOUR_MS, TimeSeriesData
from mdca_emulator.process import EmulatorProcess
from mdca_emulator.state import TenantConfig, TenantState

__all__ = ["alert_event_counts", "alert_reads", "late_share", "stored_in"]

#: How long after it is raised an alert may be resolved, at most (the emulator's default bound, plus a day).
RESOLUTION_REACH_MS = 8 * 24 * HOUR_MS

Window = tuple[int, int]


def stored_in(emulator: EmulatorProcess, service: str, windows: Iterable[Window]) -> Counter[str]:
    """The ids of the records stored in each window (the registry's window field), counted across the windows."""
    ids: Counter[str] = Counter()
    for start, end in windows:
        ids.update(emulator.truth(service, start, end))
    return ids


def alert_reads(emulator: EmulatorProcess, windows: Iterable[Window]) -> Counter[str]:
    """How many times each alert must be read: once raised, once more per later window it was resolved in."""
    reads: Counter[str] = Counter()
    for start, end in windows:
        raised = set(emulator.truth("alerts", start, end, by="date"))
        resolved = set(emulator.truth("alerts", start, end, by="resolutionDate"))
        reads.update(raised)
        reads.update(resolved - raised)
    return reads


def alert_event_counts(
    tenant: TenantConfig, reads: Counter[str], windows: Iterable[Window], max_events: int
) -> Counter[str]:
    """Events per alert ``_id`` in Devo: its reads times the events it flattens into (whatever its state)."""
    spans = list(windows)
    data = TenantState(tenant).data("alerts")
    assert isinstance(data, TimeSeriesData)
    earliest, latest = min(start for start, _ in spans), max(end for _, end in spans)
    events: Counter[str] = Counter()
    for entry in data.entries([(earliest - RESOLUTION_REACH_MS, latest)]):
        if entry[1] in reads:
            alert = json.loads(json.dumps(data.build(entry)))
            events[entry[1]] = len(flatten_alert(alert, max_events=max_events)) * reads[entry[1]]
    return events


def late_share(events: Iterable[dict[str, object]], time_field: str, stored_field: str) -> tuple[int, int, float]:
    """Of ``events``: how many, how many stored more than an hour after they happened, and the latest delay (h)."""
    delays = [int(e[stored_field]) - int(e[time_field]) for e in events]  # type: ignore[call-overload]
    late = [delay for delay in delays if delay > HOUR_MS]
    return len(delays), len(late), max(delays, default=0) / HOUR_MS
