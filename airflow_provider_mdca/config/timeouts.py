"""Each collector task's default ``execution_timeout``, derived from the service's period and the request budget.

A task without a timeout that hangs (a socket that never answers, a stuck object store) never fails: a stuck fetch
would hold the single ``mdca_api`` pool slot and stall every service's DAG. So every task gets a bound generous
enough for any window the collector can keep up with, and no more:

- ``fetch``: a window whose records the collector can keep up with needs at most the tenant's request budget over
  one period (30 requests a minute for all endpoints together); made at that rate they take one period. Twice the
  period (throttling, retries, a slow page), at least :data:`MIN_TIMEOUT` (one request may take its 120 s timeout
  six times, with backoff in between), at most :data:`MAX_TIMEOUT`; plus the lag, which a live window's fetch spends
  deferred (Airflow 2.11 counts a deferred task's wait against its ``execution_timeout``).
- ``flatten`` and ``ship``: from a size bound, the most the fetch could stage before its own timeout (30 requests a
  minute of the largest pages), each alert counted at ``max_events_per_alert`` events, handled at
  :data:`EVENTS_PER_SECOND`, a tenth of what ``make bench`` measures on a 2-core machine; clamped the same way.
- ``cleanup`` (the retention DAG's, one per service): :data:`MIN_TIMEOUT`.

``execution_timeout`` in the collector
configuration replaces these: a duration for every task, or null for Airflow's own default
(``[core] default_task_execution_timeout``, none unless set).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from airflow_provider_mdca.services import SERVICES

__all__ = [
    "AUTO",
    "EVENTS_PER_SECOND",
    "FETCH_FACTOR",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "REQUESTS_PER_MINUTE",
    "TIMED_TASKS",
    "default_timeouts",
]

#: The configuration's value for "derive each task's timeout" (the built-in default).
AUTO: Final = "auto"
#: The tenant's request budget, for all endpoints together (MDCA's documented limit).
REQUESTS_PER_MINUTE: Final = 30
#: The fetch's bound, in periods: a window at full budget takes one period; the rest is for throttling and retries.
FETCH_FACTOR: Final = 2
#: No task is bounded tighter than this.
MIN_TIMEOUT: Final = timedelta(minutes=30)
#: Nor looser: a stuck task must fail within the day (and free the pool slot).
MAX_TIMEOUT: Final = timedelta(hours=12)
#: Events a second flatten and ship are assumed to handle at worst (make bench: 36,000 to 60,000 on 2 cores).
EVENTS_PER_SECOND: Final = 5_000
#: The tasks :func:`default_timeouts` bounds.
TIMED_TASKS: Final = ("fetch", "flatten", "ship", "cleanup")


def default_timeouts(
    service: str,
    period: timedelta,
    *,
    page_size: int | None = None,
    events_per_record: int = 1,
    lag: timedelta = timedelta(0),
) -> dict[str, timedelta]:
    """Each task's default ``execution_timeout`` for ``service`` with windows of ``period``.

    :param page_size: records per request (None: the service's largest page, its default).
    :param events_per_record: the events one staged record may become (alerts: ``max_events_per_alert``).
    :param lag: the service's lag (the fetch of a live window waits for it, deferred).

    >>> timeouts = default_timeouts("activities", timedelta(minutes=5))
    >>> {task: str(limit) for task, limit in timeouts.items()}
    {'fetch': '0:30:00', 'flatten': '0:30:00', 'ship': '0:30:00', 'cleanup': '0:30:00'}
    >>> str(default_timeouts("alerts", timedelta(hours=1), events_per_record=1000)["ship"])
    '12:00:00'
    """
    fetch = _clamp(period * FETCH_FACTOR)
    size = page_size or SERVICES[service].paging.max_page_size
    # The most a fetch can stage before its own timeout, and the events it may become.
    records = REQUESTS_PER_MINUTE * math.ceil(fetch.total_seconds() / 60) * size
    handle = _clamp(timedelta(seconds=math.ceil(records * max(1, events_per_record) / EVENTS_PER_SECOND)))
    return {"fetch": fetch + lag, "flatten": handle, "ship": handle, "cleanup": MIN_TIMEOUT}


def _clamp(limit: timedelta) -> timedelta:
    return min(max(limit, MIN_TIMEOUT), MAX_TIMEOUT)
