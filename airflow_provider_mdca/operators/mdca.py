"""Fetch operators: one Airflow data interval of an MDCA service into staging."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from airflow_provider_mdca._compat import BaseOperator, Context, Stats
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.coverage.records import STATS_KEY
from airflow_provider_mdca.hooks.mdca import MdcaHook
from airflow_provider_mdca.metrics import ServiceMetrics
from airflow_provider_mdca.operators._staging import peak_memory_mb, staging_base
from airflow_provider_mdca.pipeline import fetch_to_stage
from airflow_provider_mdca.request_budget import SharedRequestBudget, tenant_key
from airflow_provider_mdca.services import ExpiredWindow, get_service
from airflow_provider_mdca.staging import DEFAULT_MAX_PART_BYTES, window_dir

__all__ = [
    "FETCH_OPERATORS",
    "STATS_XCOM_KEY",
    "MdcaActivitiesOperator",
    "MdcaAlertsOperator",
    "MdcaDataEnrichmentOperator",
    "MdcaEntitiesOperator",
    "MdcaFetchOperator",
    "MdcaFilesOperator",
    "fetch_operator",
]


#: The XCom key of a fetch's counts (:func:`window_counts`): numbers only, never a record. The coverage view reads it.
STATS_XCOM_KEY = STATS_KEY


def window_counts(records: int, stats: FetchStats) -> dict[str, int]:
    """What the coverage view keeps of a fetch: records staged, late records caught, requests, 429s, retries."""
    return {
        "fetched": records,
        "late": stats.late,
        "requests": stats.requests,
        "throttled": stats.throttled,
        "retries": stats.retries,
    }


#: The fetch operator of each service, by service name: its own subclass where it has one (filled in as each
#: subclass is defined), else :class:`MdcaFetchOperator` itself with ``service=``. See :func:`fetch_operator`.
FETCH_OPERATORS: dict[str, type[MdcaFetchOperator]] = {}


class MdcaFetchOperator(BaseOperator):
    """Fetch ``[data_interval_start, data_interval_end)`` of an MDCA service into staging.

    Records stream from :class:`~airflow_provider_mdca.hooks.mdca.MdcaHook` into gzip'd JSON-lines parts of at most
    ``max_part_bytes`` (uncompressed) under ``<staging>/<service>/<start>_<end>/fetched/``, committed by a manifest
    (counts, the API's total, request statistics, part checksums). The task returns the manifest's location: XCom
    never holds records. An empty window is a valid window. ``entities`` and ``data_enrichment`` are snapshots taken
    at run time and staged under the run's window.

    :param service: the MDCA service (the subclasses set it).
    :param mdca_conn_id: the ``mdca`` connection.
    :param staging_url: the staging base URL; default ``[mdca] staging_url``, else ``file://$AIRFLOW_HOME/mdca/staging``.
    :param staging_conn_id: the connection of an object store used as staging (e.g. ADLS for ``abfs://``).
    :param page_size: records per request (the service's default when None).
    :param on_expired_window: a window older than MDCA keeps (activities: about 30 days) is an error naming the limit
        (``error``), or a warning and whatever the API still has (``warn``).
    :param max_part_bytes: the size bound of one staged part, uncompressed.
    :param lag: read the window no sooner than its end + ``lag`` (MDCA stores records a little late). A live window's
        fetch defers itself until then: it waits in the triggerer, holding no worker and no pool slot, and resumes
        by itself. A window that ended long enough ago (a catch-up, a backfill, a rerun) is read at once.
    :param tenant: the tenant this fetch collects for, in a multi-tenant collector: its windows are staged under
        ``<staging>/tenants/<tenant>/`` (flatten, ship and cleanup take the same ``tenant``), and its metrics carry it.

    Besides the manifest's location (the return value), the task pushes the XCom ``mdca_stats``: the window's counts
    (``fetched``, ``late``, ``requests``, ``throttled``, ``retries``), which the coverage view and
    ``mdca-collector status`` read.
    """

    template_fields: Sequence[str] = ("mdca_conn_id", "staging_url", "staging_conn_id")
    ui_color = "#d4e7fb"
    service: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.service is not None:  # a per-service operator: the DAG factory uses it for that service
            FETCH_OPERATORS[get_service(cls.service).name] = cls

    def __init__(
        self,
        *,
        service: str | None = None,
        mdca_conn_id: str = MdcaHook.default_conn_name,
        staging_url: str | None = None,
        staging_conn_id: str | None = None,
        page_size: int | None = None,
        on_expired_window: ExpiredWindow = "error",
        max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
        lag: timedelta = timedelta(0),
        tenant: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        chosen = service or type(self).service
        if chosen is None:
            raise ValueError(f"{type(self).__name__} needs service=, one of activities, alerts, entities, ...")
        if service is not None and type(self).service not in (None, service):
            raise ValueError(f"{type(self).__name__} fetches {type(self).service}, not {service}")
        self.service_name = get_service(chosen).name
        self.mdca_conn_id = mdca_conn_id
        self.staging_url = staging_url
        self.staging_conn_id = staging_conn_id
        self.page_size = page_size
        if on_expired_window not in ("error", "warn"):
            raise ValueError(f"on_expired_window must be 'error' or 'warn', got {on_expired_window!r}")
        self.on_expired_window: ExpiredWindow = on_expired_window
        self.max_part_bytes = max_part_bytes
        if lag < timedelta(0):
            raise ValueError(f"lag must not be negative, got {lag}")
        self.lag = lag
        self.tenant = tenant

    def execute(self, context: Context) -> str:
        """Stage the window (once its end + ``lag`` has passed: until then the task defers); return the manifest."""
        _, end = self._window(context)
        ready_at = end + self.lag
        if datetime.now(timezone.utc) < ready_at:
            self._defer_until(ready_at)
        return self.fetch_window(context)

    def execute_after_lag(self, context: Context, event: Any = None) -> str:
        """Resumed by the triggerer at the window's end + ``lag``: stage the window."""
        return self.fetch_window(context)

    def _defer_until(self, moment: datetime) -> None:
        # Imported here: the trigger's module is needed only by a live window, not to parse the DAG file.
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        self.log.info("Window still open to late records: deferring until its end + %s, %s", self.lag, moment)
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_lag")

    def _window(self, context: Context) -> tuple[datetime, datetime]:
        start, end = context["data_interval_start"], context["data_interval_end"]
        if start is None or end is None:
            raise ValueError(f"{self.service_name}: the run has no data interval; use an interval timetable")
        return start, end

    def fetch_window(self, context: Context) -> str:
        """Stage the run's data interval now, whatever the lag; return the manifest's location."""
        start, end = self._window(context)
        base = staging_base(self.staging_url, self.staging_conn_id, self.tenant)
        window = window_dir(base, self.service_name, start, end)
        hook = MdcaHook(mdca_conn_id=self.mdca_conn_id)
        client = hook.get_conn()
        # The tenant's 30 requests a minute are shared with the fetch that ran before this one (any service).
        budget = SharedRequestBudget(base, tenant_key(client.config.base_url, client.config.tenant_id))
        client.limiter.take_over(budget.load())
        self.log.info("Fetching %s for the window [%s, %s) into %s", self.service_name, start, end, window)
        metrics = ServiceMetrics(Stats, tenant=self.tenant, service=self.service_name)
        records = None
        try:
            records = hook.fetch(
                self.service_name, start, end, page_size=self.page_size, on_expired_window=self.on_expired_window
            )
            manifest, summary = fetch_to_stage(
                records,
                window,
                service=self.service_name,
                start=start,
                end=end,
                stats=records.stats,
                max_part_bytes=self.max_part_bytes,
            )
        finally:
            budget.save(client.limiter.hand_over())
            if records is not None:  # a failed try's requests and 429s count too: they are an outage's signs
                metrics.fetch_requests(records.stats)
        stats = records.stats
        metrics.fetched(stats, staged=summary.records, elapsed_seconds=summary.elapsed_seconds)
        self.log.info("%s", stats.summary())
        self.log.info(
            "Statistics: service=%s window=[%s, %s) records_fetched=%d api_total=%s requests=%d retries=%d "
            "throttled=%d parts=%d bytes_staged=%d elapsed=%.3fs peak_memory=%.1fMiB",
            self.service_name,
            start,
            end,
            summary.records,
            stats.api_total,
            stats.requests,
            stats.retries,
            stats.throttled,
            summary.parts,
            summary.bytes,
            summary.elapsed_seconds,
            peak_memory_mb(),
        )
        context["ti"].xcom_push(key=STATS_XCOM_KEY, value=window_counts(summary.records, stats))
        return str(manifest)


class MdcaActivitiesOperator(MdcaFetchOperator):
    """Fetch MDCA activities (scan paging) of the task's data interval into staging."""

    service = "activities"


class MdcaAlertsOperator(MdcaFetchOperator):
    """Fetch MDCA alerts of the task's data interval into staging."""

    service = "alerts"


class MdcaEntitiesOperator(MdcaFetchOperator):
    """Fetch a snapshot of MDCA entities into the task's window of staging."""

    service = "entities"


class MdcaDataEnrichmentOperator(MdcaFetchOperator):
    """Fetch a snapshot of MDCA data enrichment (subnets) into the task's window of staging."""

    service = "data_enrichment"


class MdcaFilesOperator(MdcaFetchOperator):
    """Fetch MDCA files modified in the task's data interval into staging (legacy API token)."""

    service = "files"


def fetch_operator(service: str) -> type[MdcaFetchOperator]:
    """The operator class that fetches ``service`` (a registry name): a service needs no subclass of its own."""
    return FETCH_OPERATORS.get(get_service(service).name, MdcaFetchOperator)
