"""The collector's metrics, named here and sent through Airflow's own ``Stats`` (StatsD or OpenTelemetry).

Every metric is per tenant and service, in its name, because plain StatsD drops tags:
``mdca.<tenant>.<service>.<metric>`` (tenant ``default`` in a single-tenant collector), with Airflow's
``[metrics] statsd_prefix`` (default ``airflow``) before it: ``airflow.mdca.default.alerts.records_delivered``. The
tenant and the service also go as the tags ``tenant`` and ``service`` to backends that keep tags.

==========================  =======  ==========================================================================
Metric                      Type     Meaning
==========================  =======  ==========================================================================
``records_fetched``         counter  records read from MDCA by a fetch (alerts: changed alerts read again included)
``records_late``            counter  of those, records that happened before their window (stored late; alerts:
                                     alerts of an earlier window that changed in this one)
``records_staged``          counter  records a fetch wrote to staging
``records_flattened``       counter  events out of the alerts' flatten step (one per entity combination)
``records_delivered``       counter  events Devo acknowledged, batch by batch (a failed try's included)
``requests``                counter  HTTP requests to MDCA, failed tries of the fetch included
``throttled``               counter  of those, answers 429 (rate limited), failed tries of the fetch included
``request_retries``         counter  requests the client sent again (a 429, a 5xx, a reset), inside a fetch
``task_retries``            counter  Airflow retries of the service's tasks (any task; tag ``task_id``)
``fetch_duration``          timer    how long a fetch took to read and stage its window
``flatten_duration``        timer    how long the flatten step took
``ship_duration``           timer    how long the ship step took to deliver its window
``window_freshness``        timer    when a window's ship succeeded, minus the window's end: how old the newest
                                     data of the window is when it reaches Devo (a backfill reports old windows)
==========================  =======  ==========================================================================

Airflow drops a name it finds invalid. Tenant and service names are letters, digits, ``_`` and ``-``, so only the
length can matter: StatsD allows 250 characters, OpenTelemetry 255 with the prefix on Airflow 3 but 63 on Airflow 2.11
(there, with the prefix ``airflow``, tenant names of at most 16 characters).

Counters are sent once per task try, at its end (request counters even when the try fails), except
``records_delivered``: it is sent as Devo acknowledges each batch, so a try that fails part-way has counted what Devo
holds and its retry counts only the rest. A counter of zero is sent too, so every series exists from the first
window. Timers are in milliseconds (StatsD ``|ms``).

Imports nothing from Airflow: the operators and callbacks hand :class:`ServiceMetrics` Airflow's ``Stats``
(:data:`airflow_provider_mdca._compat.Stats`); the tests hand it a recorder. Sending a metric never fails a task:
an error is logged as a warning and the task goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Protocol

from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.config.loading import SINGLE_TENANT
from airflow_provider_mdca.timestamps import parse_iso

__all__ = [
    "COUNTERS",
    "DEFAULT_TENANT",
    "NAMESPACE",
    "TIMERS",
    "ServiceMetrics",
    "StatsEmitter",
    "metric_name",
]

log = logging.getLogger(__name__)

#: The first segment of every metric's name (after Airflow's own prefix).
NAMESPACE: Final = "mdca"
#: The tenant segment of a single-tenant collector's metrics (the config refuses a tenant of that name).
DEFAULT_TENANT: Final = SINGLE_TENANT

RECORDS_FETCHED: Final = "records_fetched"
RECORDS_LATE: Final = "records_late"
RECORDS_STAGED: Final = "records_staged"
RECORDS_FLATTENED: Final = "records_flattened"
RECORDS_DELIVERED: Final = "records_delivered"
REQUESTS: Final = "requests"
THROTTLED: Final = "throttled"
REQUEST_RETRIES: Final = "request_retries"
TASK_RETRIES: Final = "task_retries"
FETCH_DURATION: Final = "fetch_duration"
FLATTEN_DURATION: Final = "flatten_duration"
SHIP_DURATION: Final = "ship_duration"
WINDOW_FRESHNESS: Final = "window_freshness"

#: Every counter's metric name (the last segment).
COUNTERS: Final = (
    RECORDS_FETCHED,
    RECORDS_LATE,
    RECORDS_STAGED,
    RECORDS_FLATTENED,
    RECORDS_DELIVERED,
    REQUESTS,
    THROTTLED,
    REQUEST_RETRIES,
    TASK_RETRIES,
)
#: Every timer's metric name (the last segment); values in milliseconds.
TIMERS: Final = (FETCH_DURATION, FLATTEN_DURATION, SHIP_DURATION, WINDOW_FRESHNESS)

# StatsD separates a name's segments with '.', and Airflow refuses a name with other characters than these: a tenant
# or service segment keeps only them, so that it stays one segment whatever an operator was given.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class StatsEmitter(Protocol):
    """What :class:`ServiceMetrics` needs of Airflow's ``Stats`` (both lines have these two methods)."""

    def incr(self, stat: str, count: int = ..., rate: float = ..., *, tags: Any = ...) -> None: ...

    def timing(self, stat: str, dt: Any, *, tags: Any = ...) -> None: ...


def metric_name(tenant: str | None, service: str, metric: str) -> str:
    """The full name of ``metric`` for a tenant's service: ``mdca.<tenant>.<service>.<metric>``.

    ``tenant`` None is a single-tenant collector's (``default``). Characters other than letters, digits, ``_`` and
    ``-`` become ``_`` (a ``.`` would split the segment in two).

    >>> metric_name(None, "alerts", "records_delivered")
    'mdca.default.alerts.records_delivered'
    >>> metric_name("contoso-eu", "data_enrichment", "requests")
    'mdca.contoso-eu.data_enrichment.requests'
    """
    return ".".join((NAMESPACE, _segment(tenant or DEFAULT_TENANT), _segment(service), metric))


def _moment(value: object) -> datetime | None:
    """An aware datetime (naive: UTC) from a datetime or ISO 8601 text; None when it is neither."""
    if isinstance(value, str):
        try:
            value = parse_iso(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _segment(value: str) -> str:
    return _UNSAFE.sub("_", value) or "_"


class ServiceMetrics:
    """The metrics of one tenant's service, sent through ``emitter`` (Airflow's ``Stats``).

    Each method sends the metrics of one task's end; none raises.

    :param emitter: Airflow's ``Stats``, or anything with its ``incr`` and ``timing``.
    :param tenant: the tenant (None: a single-tenant collector, ``default`` in the names).
    :param service: the MDCA service's name.
    """

    def __init__(self, emitter: StatsEmitter, *, tenant: str | None, service: str) -> None:
        self.emitter = emitter
        self.tenant = tenant
        self.service = service
        self.tags = {"tenant": tenant or DEFAULT_TENANT, "service": service}

    def name(self, metric: str) -> str:
        """The full name of one of this service's metrics."""
        return metric_name(self.tenant, self.service, metric)

    def fetch_requests(self, stats: FetchStats) -> None:
        """A fetch's request counters: sent whether its try succeeded or not (an outage's 429s count)."""
        self._counts({REQUESTS: stats.requests, THROTTLED: stats.throttled, REQUEST_RETRIES: stats.retries})

    def fetched(self, stats: FetchStats, *, staged: int, elapsed_seconds: float) -> None:
        """A fetch that staged its window: its record counters and its duration."""
        self._counts({RECORDS_FETCHED: stats.records, RECORDS_LATE: stats.late, RECORDS_STAGED: staged})
        self._time(FETCH_DURATION, timedelta(seconds=elapsed_seconds))

    def flattened(self, *, events: int, elapsed_seconds: float) -> None:
        """A flatten step that staged ``events`` events: their count and its duration."""
        self._counts({RECORDS_FLATTENED: events})
        self._time(FLATTEN_DURATION, timedelta(seconds=elapsed_seconds))

    def delivered(self, events: int) -> None:
        """Devo acknowledged a batch of ``events`` (sent as it happens: a try that fails later delivered them too)."""
        self._counts({RECORDS_DELIVERED: events})

    def shipped(self, *, elapsed_seconds: float, window_end: datetime | str, now: datetime | None = None) -> None:
        """A ship step that succeeded: its duration, and the window's freshness at ``now``.

        Its events were counted batch by batch (:meth:`delivered`); a zero here makes the series exist from the first
        window, as every counter's.

        :param window_end: the window's end: an aware datetime, or ISO 8601 text as a manifest holds it.
        """
        self._counts({RECORDS_DELIVERED: 0})
        self._time(SHIP_DURATION, timedelta(seconds=elapsed_seconds))
        end = _moment(window_end)
        if end is None:
            log.warning(
                "The metric %s was not sent: the window's end %r is not a time", self.name(WINDOW_FRESHNESS), window_end
            )
            return
        self._time(WINDOW_FRESHNESS, (now or datetime.now(timezone.utc)) - end)

    def task_retried(self, task_id: str | None = None) -> None:
        """A try of one of the service's tasks failed and Airflow will retry it."""
        tags = dict(self.tags, task_id=task_id) if task_id else self.tags
        self._send("incr", TASK_RETRIES, 1, tags)

    def _counts(self, counts: Mapping[str, int]) -> None:
        for metric, value in counts.items():
            self._send("incr", metric, int(value), self.tags)

    def _time(self, metric: str, duration: timedelta) -> None:
        self._send("timing", metric, duration, self.tags)

    def _send(self, method: str, metric: str, value: Any, tags: Mapping[str, str]) -> None:
        name = self.name(metric)
        try:
            getattr(self.emitter, method)(name, value, tags=dict(tags))
        except Exception as exc:  # a metric is a report, never a reason for a task to fail
            log.warning("The metric %s was not sent: %s: %s", name, type(exc).__name__, exc)
