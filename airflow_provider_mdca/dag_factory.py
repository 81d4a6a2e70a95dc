"""Build the collector's DAGs, one per enabled service, from a :class:`~airflow_provider_mdca.config.CollectorConfig`.

Each DAG reads one service window after window; the data interval is the window, so Airflow's run history is the
collector's persistence::

    fetch -> [flatten, alerts only] -> ship

- ``schedule``: :class:`DeltaDataIntervalTimetable` of the service's period. An interval timetable, because Airflow 3's
  plain timedelta and cron schedules give ``data_interval_start == data_interval_end``: an empty window.
- ``start_date`` is ``historic_date_utc`` and catchup is on: a scheduler that was down catches up every missed window,
  and moving the date earlier then backfilling re-ingests history (the seed collector's persistence reset).
- ``fetch`` reads the window no sooner than its end + ``lag`` (records reach MDCA a little late): a live window's
  fetch defers itself to the triggerer until then; an old window's is read at once, so catch-ups and backfills do not
  wait. It runs in the shared pool (default ``mdca_api``): every service's DAG shares one tenant's request budget.
- ``ship`` delivers each record of the window once; the run param ``reship`` delivers the window again.
- ``max_active_runs`` (default 4 for a windowed service): during a catch-up the next window's fetch waits in the pool
  while the one before it fetches and earlier windows flatten and ship, so MDCA's 30 requests a minute, not Airflow's
  per-task overhead, set the pace.
- Every task has an ``execution_timeout`` (``execution_timeout`` in the config; by default each task's own bound,
  :mod:`airflow_provider_mdca.config.timeouts`): a task that hangs fails, and a stuck fetch frees the pool slot.

Retention is one periodic DAG for all services (:func:`build_retention_dag`, ``mdca_staging_retention``, hourly):
removing delivered windows older than ``retention`` is not a window's work, and a task per window would cost each
window a task instance.

Building a DAG touches no connection, Variable or network: the operators read their connections when they run.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from airflow_provider_mdca._compat import DAG, EXPONENTIAL_BACKOFF, DeltaDataIntervalTimetable, Param
from airflow_provider_mdca.callbacks import OutageCallbacks, build_notifiers
from airflow_provider_mdca.config import CollectorConfig, ServiceConfig, format_duration
from airflow_provider_mdca.operators._staging import staging_base
from airflow_provider_mdca.operators.cleanup import MdcaStagingCleanupOperator
from airflow_provider_mdca.operators.devo import DevoShipOperator
from airflow_provider_mdca.operators.flatten import MdcaFlattenAlertsOperator
from airflow_provider_mdca.operators.mdca import MdcaFetchOperator, fetch_operator
from airflow_provider_mdca.services import SERVICES

__all__ = [
    "RETENTION_DAG_ID",
    "RETENTION_INTERVAL",
    "build_dag",
    "build_dags",
    "build_retention_dag",
    "cleanup_task_id",
]

#: The DAG that removes delivered windows older than each service's ``retention`` from staging.
RETENTION_DAG_ID = "mdca_staging_retention"
#: How often it runs: staging holds at most an hour more than the retention.
RETENTION_INTERVAL = timedelta(hours=1)
_RETENTION_RETRIES = 3

_RESHIP_HELP = (
    "Deliver this window to Devo again, even the records a previous run already delivered. Leave off for a "
    "normal rerun (clearing a run ships only what was not delivered before)."
)


def build_dags(config: CollectorConfig) -> dict[str, DAG]:
    """The DAGs of the enabled services (``mdca_<service>``) and the retention DAG, by DAG id.

    A multi-tenant config has a DAG per tenant and enabled service (``<tenant>_mdca_<service>``, or the tenant's
    ``dag_id_prefix``), and one retention DAG for all. The DAG file does ``globals().update(build_dags(config))`` so
    that Airflow finds them.
    """
    services = config.dag_configs
    dags = {service.dag_id: build_dag(service) for service in services}
    if services:
        dags[RETENTION_DAG_ID] = build_retention_dag(services)
    return dags


def build_dag(service: ServiceConfig, *, dag_id: str | None = None) -> DAG:
    """The DAG of one service: fetch (after the lag), flatten (alerts), ship.

    :param dag_id: default ``mdca_<service>``; another id lets one Airflow run several collectors (e.g. tenants).
    """
    if service.historic_date_utc is None:  # the config refuses this for enabled services; guard direct callers
        raise ValueError(f"{service.name}: historic_date_utc is required to build its DAG")
    dag_id = dag_id or service.dag_id
    with DAG(
        dag_id=dag_id,
        description=_description(service),
        doc_md=_doc_md(service, dag_id),
        schedule=DeltaDataIntervalTimetable(service.period),
        start_date=service.historic_date_utc,
        catchup=True,
        max_active_runs=service.max_active_runs,
        params={"reship": Param(False, type="boolean", description=_RESHIP_HELP)},
        tags=list(service.tags),
        default_args=_retry_args(service),
    ) as dag:
        timeouts = _timeouts(service)
        fetch = _fetch_task(service, **timeouts["fetch"])
        # XCom carries only the manifest's location; the XComArg also sets the upstream.
        staged: Any = fetch
        if service.flatten:
            staged = _flatten_task(service, fetch.output, **timeouts["flatten"])
        _ship_task(service, staged.output, **timeouts["ship"])
    return dag


def build_retention_dag(services: list[ServiceConfig], *, dag_id: str = RETENTION_DAG_ID) -> DAG:
    """Every ``RETENTION_INTERVAL``, remove each service's delivered windows older than its ``retention``.

    One task per service (``cleanup_<service>``; a tenant's ``cleanup_<tenant>_<service>``), each on that service's
    staging. Undelivered windows stay however old. No catchup: one sweep covers every hour the scheduler missed.
    """
    if not services:
        raise ValueError("the retention DAG needs at least one service")
    starts = [service.historic_date_utc for service in services if service.historic_date_utc is not None]
    with DAG(
        dag_id=dag_id,
        description="Removes delivered windows older than each service's retention from staging",
        doc_md=_retention_doc_md(services),
        schedule=RETENTION_INTERVAL,
        start_date=min(starts),
        catchup=False,
        max_active_runs=1,
        tags=sorted({"mdca", "maintenance", *(tag for service in services for tag in service.tags)}),
        default_args={"retries": _RETENTION_RETRIES, "retry_delay": RETENTION_INTERVAL / 12},
    ) as dag:
        for service in services:
            _cleanup_task(service, **_timeouts(service)["cleanup"])
    return dag


def _retry_args(service: ServiceConfig) -> dict[str, Any]:
    """Every task's retries: with exponential backoff for ``recovery_horizon``, and the outage callbacks.

    An outage of MDCA, Entra ID, Devo or staging is ridden out by retrying the window's failed task, waiting twice
    as long each time up to ``max_retry_delay``; the runs behind it wait (``max_active_runs``) and follow in order
    once it is delivered (:mod:`airflow_provider_mdca.recovery` says why retries rather than a sweep).
    """
    callbacks = OutageCallbacks(
        service=service.name,
        tenant=service.tenant,
        dag_id=service.dag_id,
        staging_base=functools.partial(staging_base, service.staging_url, service.staging_conn_id, service.tenant),
        retry_span=service.retry_span,
        notifiers=build_notifiers(service.notify, where=_config_path(service, "notify")),
    )
    return {
        "retries": service.task_retries,
        "retry_delay": service.retry_delay,
        "retry_exponential_backoff": EXPONENTIAL_BACKOFF,
        "max_retry_delay": service.max_retry_delay,
        "on_retry_callback": callbacks.on_retry,
        "on_failure_callback": callbacks.on_failure,
        "on_success_callback": callbacks.on_success,
    }


def _timeouts(service: ServiceConfig) -> dict[str, dict[str, Any]]:
    """Each task's ``execution_timeout`` keyword: none at all when the config leaves it to Airflow's default.

    Passing ``execution_timeout=None`` would override ``[core] default_task_execution_timeout``: leave it out instead.
    """
    return {
        task: {} if limit is None else {"execution_timeout": limit} for task, limit in service.task_timeouts.items()
    }


def _config_path(service: ServiceConfig, key: str) -> str:
    """Where ``key`` of this DAG's service is set in the collector YAML (a tenant's, or the file's own)."""
    if service.tenant:
        return f"tenants.{service.tenant}.services.{service.name}.{key}"
    return f"services.{service.name}.{key}"


def _fetch_task(service: ServiceConfig, **kwargs: Any) -> MdcaFetchOperator:
    return fetch_operator(service.name)(
        task_id="fetch",
        service=service.name,
        mdca_conn_id=service.mdca_conn_id,
        staging_url=service.staging_url,
        staging_conn_id=service.staging_conn_id,
        tenant=service.tenant,
        page_size=service.page_size,
        on_expired_window=service.on_expired_window,
        lag=service.lag,
        pool=service.pool,  # only fetching spends the tenant's request budget
        **kwargs,
    )


def _flatten_task(service: ServiceConfig, manifest: Any, **kwargs: Any) -> MdcaFlattenAlertsOperator:
    return MdcaFlattenAlertsOperator(
        task_id="flatten",
        manifest=manifest,
        max_events_per_alert=service.max_events_per_alert,
        max_bytes_per_alert=service.max_bytes_per_alert,
        # Before flattening, so that paths are the alert's own (entities[].label); ship skips the rules applied here.
        obfuscation=service.obfuscation_config or None,
        obfuscation_key_conn_id=service.obfuscation_key_conn_id,
        obfuscation_key_variable=service.obfuscation_key_variable,
        staging_url=service.staging_url,
        staging_conn_id=service.staging_conn_id,
        tenant=service.tenant,
        **kwargs,
    )


def _ship_task(service: ServiceConfig, manifest: Any, **kwargs: Any) -> DevoShipOperator:
    return DevoShipOperator(
        task_id="ship",
        service=service.name,
        manifest=manifest,
        devo_conn_id=service.devo_conn_id,
        tag=service.tag,
        obfuscation=service.obfuscation_config or None,
        obfuscation_key_conn_id=service.obfuscation_key_conn_id,
        obfuscation_key_variable=service.obfuscation_key_variable,
        extra_fields=dict(service.extra_fields) or None,
        staging_url=service.staging_url,
        staging_conn_id=service.staging_conn_id,
        tenant=service.tenant,
        **kwargs,
    )


def _cleanup_task(service: ServiceConfig, **kwargs: Any) -> MdcaStagingCleanupOperator:
    # Only delivered windows are removed (the operator checks each window's delivery marker).
    return MdcaStagingCleanupOperator(
        task_id=cleanup_task_id(service),
        service=service.name,
        staging_url=service.staging_url,
        staging_conn_id=service.staging_conn_id,
        retention=service.retention,
        tenant=service.tenant,
        **kwargs,
    )


def cleanup_task_id(service: ServiceConfig) -> str:
    """The retention DAG's task for ``service``: ``cleanup_<service>``, or ``cleanup_<tenant>_<service>``."""
    return f"cleanup_{service.name}" if service.tenant is None else f"cleanup_{service.tenant}_{service.name}"


def _description(service: ServiceConfig) -> str:
    tenant = "" if service.tenant is None else f" (tenant {service.tenant})"
    return f"MDCA {service.name}{tenant} -> Devo {service.tag}, one window every {format_duration(service.period)}"


def _doc_md(service: ServiceConfig, dag_id: str) -> str:
    """The DAG's documentation in the UI: what it reads, where it goes, and how to operate it."""
    info = SERVICES[service.name]
    period = format_duration(service.period)
    if info.windowed:
        window = (
            f"Each run reads the records whose `{info.filter_field}` falls in its data interval "
            f"`[data_interval_start, data_interval_end)`: windows of **{period}**, adjacent, never overlapping."
        )
    else:
        window = (
            f"`{service.name}` is a snapshot: each run (every **{period}**) reads the whole collection as it is "
            "when the run starts, and stages it under the run's data interval."
        )
    flatten = (
        f"`flatten` turns each alert into one event per combination of its related entities (at most "
        f"{service.max_events_per_alert} per alert and {service.max_bytes_per_alert:,} bytes together; beyond that the "
        "alert is sent once, unexpanded). "
        if service.flatten
        else ""
    )
    bounds = ", ".join(
        f"`{task}` {format_duration(limit) if limit is not None else 'Airflow default'}"
        for task, limit in service.task_timeouts.items()
        if task != "flatten" or service.flatten
    )
    assert service.historic_date_utc is not None
    tenant = "" if service.tenant is None else f" (tenant `{service.tenant}`)"
    return f"""\
### Microsoft Defender for Cloud Apps {service.name} → Devo{tenant}

Reads MDCA `/{info.endpoint}` and delivers to the Devo table `{service.tag}`.

{window}

**Tasks.** `fetch` stages the window's records (pool `{service.pool}`, connection `{service.mdca_conn_id}`) once
the window's end + {format_duration(service.lag)} has passed (late records): a live window's fetch waits deferred,
an old window's reads at once → {flatten}`ship` delivers them through connection `{service.devo_conn_id}`, each
record once. Up to {service.max_active_runs} windows run at once (`max_active_runs`): in a catch-up the next fetch
waits in the pool while earlier windows ship. The DAG `{RETENTION_DAG_ID}` removes delivered windows older than
{format_duration(service.retention)} from staging every hour.

**Bounds** (`execution_timeout`; a task that hangs fails and is retried): {bounds}.

**First window:** {service.historic_date_utc.isoformat()} (`historic_date_utc`); catchup is on, so missed windows
are caught up.

**Outages.** Every task is retried with backoff for {format_duration(service.retry_span)} (`recovery_horizon`):
an outage of MDCA, Entra ID, Devo or staging that short heals by itself, in order. Each failed try logs what is down
and since when.

**Operate.**
- *A window failed past the horizon*: `mdca-collector undelivered` lists it; `mdca-collector undelivered --deliver`
  runs it again (each record still arrives once).
- *Rerun a window*: clear its run; records already delivered are not sent again.
- *Deliver again* (even what was delivered before): backfill the windows again with the param `reship: true`,
  `airflow backfill create --dag-id {dag_id} --from-date … --to-date … --reprocess-behavior completed
  --dag-run-conf '{{"reship": true}}'` (Airflow 3) or
  `airflow dags backfill -s … -e … --reset-dagruns -c '{{"reship": true}}' {dag_id}` (Airflow 2.11).
- *Re-ingest history*: move `historic_date_utc` earlier in the collector config, then backfill, e.g.
  `airflow backfill create --dag-id {dag_id} --from-date … --to-date …` (Airflow 3) or
  `airflow dags backfill -s … -e … {dag_id}` (Airflow 2.11).
- *Check the setup*: `mdca-collector validate` tests the configuration and every connection without pulling data.

Configured in the collector config (`dags/mdca_collector.yaml`, or the file named by `MDCA_COLLECTOR_CONFIG`).
"""


def _retention_doc_md(services: list[ServiceConfig]) -> str:
    lines = "\n".join(
        f"- `{cleanup_task_id(service)}`: windows delivered more than {format_duration(service.retention)} ago"
        for service in services
    )
    return f"""\
### MDCA staging retention

Every hour, removes from staging the windows each service delivered longer ago than its retention; a window that was
not delivered stays, however old (`mdca-collector undelivered` lists those). A removed window's ledger goes with it:
rerunning it afterwards fetches and ships it again.

{lines}
"""
