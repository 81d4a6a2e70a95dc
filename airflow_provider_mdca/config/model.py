"""The collector configuration, typed: each service's effective settings, and the built-in defaults under them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal

from airflow_provider_mdca.config.durations import format_duration
from airflow_provider_mdca.config.schema import SETTINGS
from airflow_provider_mdca.config.timeouts import AUTO, TIMED_TASKS, default_timeouts
from airflow_provider_mdca.recovery import retries_to_cover, retry_span
from airflow_provider_mdca.services import SERVICES, ExpiredWindow
from airflow_provider_mdca.transforms.flatten import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS
from airflow_provider_mdca.transforms.obfuscate import ObfuscationRule

__all__ = ["BUILTIN_DEFAULTS", "FLATTEN_KEYS", "KEY_SOURCES", "CollectorConfig", "ServiceConfig", "TenantConfig"]

#: The default ``max_active_runs`` of a windowed service: enough runs for a fetch to wait in the pool while the one
#: before it fetches and others flatten and ship (bench/bench_catchup.py measures it).
CATCH_UP_RUNS: Final = 4
#: The settings only a flattened service (alerts) takes.
FLATTEN_KEYS: Final = ("flatten", "max_events_per_alert", "max_bytes_per_alert")
#: The two ways to name the obfuscation key: a service that names one replaces both of the defaults' pair.
KEY_SOURCES: Final = ("obfuscation_key_conn_id", "obfuscation_key_variable")


def _builtin_defaults(service: str) -> dict[str, Any]:
    """The built-in settings of one service, in the config's own (YAML) form."""
    return {
        "enabled": True,
        # Everything that differs between services is the registry's (services.py).
        "period": _seconds(SERVICES[service].default_period),
        "historic_date_utc": None,
        "lag": _seconds(SERVICES[service].default_lag),
        "page_size": None,
        "on_expired_window": "error",
        "flatten": SERVICES[service].flattened,
        "max_events_per_alert": DEFAULT_MAX_EVENTS,
        "max_bytes_per_alert": DEFAULT_MAX_BYTES,
        "obfuscation": [],
        "obfuscation_key_conn_id": None,
        "obfuscation_key_variable": None,
        "tag": None,
        "extra_fields": {},
        # Retried through an outage for recovery_horizon, backing off from retry_delay up to max_retry_delay.
        "retries": AUTO,
        "retry_delay": 60,
        "max_retry_delay": 900,
        "recovery_horizon": 86_400,
        "notify": [],
        # Each task's own bound, from the period and the request budget (config/timeouts.py).
        "execution_timeout": AUTO,
        # One pool for all the DAGs: they share one tenant's 30 requests a minute (the seed: no parallel pulls).
        "pool": "mdca_api",
        # Windows of one DAG overlap (the next one fetches while the last one ships; the pool still serialises the
        # fetches); a snapshot is read whole each time, so its runs go one after another.
        "max_active_runs": CATCH_UP_RUNS if SERVICES[service].windowed else 1,
        "staging_url": None,
        "staging_conn_id": None,
        "retention": 86_400,
        "mdca_conn_id": "mdca_default",
        "devo_conn_id": "devo_default",
        "tags": ["mdca", "devo"],
    }


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


#: Every service's built-in settings, before ``defaults`` and ``services.<name>`` override them.
BUILTIN_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {name: MappingProxyType(_builtin_defaults(name)) for name in SERVICES}
)


@dataclass(frozen=True)
class NotifierSpec:
    """One ``notify`` entry: an Airflow notifier (or any callable taking the task's context), built when the DAG is.

    ``notifier`` is its dotted import path (``airflow.providers.slack.notifications.slack.SlackNotifier``); ``args``
    its keyword arguments (a notifier's are templated, e.g. ``text: "{{ ti.dag_id }} ..."``); ``on`` the events
    that call it: ``retry`` (each failed try that will be retried) and ``failure`` (the run gives up).
    """

    notifier: str
    on: tuple[str, ...] = ("retry", "failure")
    args: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"notifier": self.notifier, "on": list(self.on), "args": dict(self.args)}


@dataclass(frozen=True)
class ServiceConfig:
    """The effective settings of one service: built-in defaults, then ``defaults``, then ``services.<name>``.

    Durations are ``timedelta``, ``historic_date_utc`` an aware UTC ``datetime`` (None only when the service is
    disabled and no date was given).
    """

    name: str
    enabled: bool
    #: The window length (the seed's ``request_period_in_seconds``); the DAG's schedule.
    period: timedelta
    #: The start of the first window; the DAG's start date. Move it earlier and backfill to re-ingest history.
    historic_date_utc: datetime | None
    #: How long after a window's end to wait before fetching it (late records).
    lag: timedelta
    #: Records per request; None: the service's default (5000 for activities' scan, 100 for the others).
    page_size: int | None
    #: A window that starts before what MDCA keeps (activities: about 30 days): ``error`` refuses it naming the
    #: limit, ``warn`` logs it and reads what is left. Never a silent empty window.
    on_expired_window: ExpiredWindow
    #: Alerts only: one event per combination of related entities. Always False for the other services.
    flatten: bool
    #: Alerts only: an alert with more combinations, or whose events would take more bytes, is sent once, unexpanded.
    max_events_per_alert: int
    max_bytes_per_alert: int
    obfuscation: tuple[ObfuscationRule, ...]
    obfuscation_key_conn_id: str | None
    obfuscation_key_variable: str | None
    #: The Devo table the events go to.
    tag: str
    #: Static fields added to every event (the seed's ``environment`` property).
    extra_fields: Mapping[str, Any]
    #: Airflow retries of every task; ``"auto"``: as many as span :attr:`recovery_horizon` (see :attr:`task_retries`).
    retries: int | Literal["auto"]
    #: The wait before the first retry; each next one waits twice as long, up to :attr:`max_retry_delay`.
    retry_delay: timedelta
    max_retry_delay: timedelta
    #: How long an outage (MDCA, Entra ID, Devo, staging) is ridden out by retries before a run fails.
    recovery_horizon: timedelta
    #: Airflow notifiers called when a task is retried or fails (``mdca-collector`` docs: "When things break").
    notify: tuple[NotifierSpec, ...]
    #: ``"auto"``: each task's own bound (:attr:`task_timeouts`); a duration for every task; None: Airflow's default.
    execution_timeout: timedelta | Literal["auto"] | None
    #: The Airflow pool of the fetch task.
    pool: str
    max_active_runs: int
    #: The staging base URL; None: the operators use ``[mdca] staging_url``, else under ``$AIRFLOW_HOME``.
    staging_url: str | None
    #: The Airflow connection of an object store used as staging (e.g. for ``abfs://``), if any.
    staging_conn_id: str | None
    #: How long delivered windows stay staged (so a rerun needs no new fetch).
    retention: timedelta
    mdca_conn_id: str
    devo_conn_id: str
    #: The DAG's tags (the service's name always among them).
    tags: tuple[str, ...]
    #: The tenant (``tenants.<name>`` in the config) this service collects for; None in a single-tenant file.
    tenant: str | None = None
    #: Put before ``mdca_<service>`` in the DAG id (a tenant's, ``<tenant>_`` unless set).
    dag_id_prefix: str = ""

    @property
    def dag_id(self) -> str:
        """The DAG id of this service: ``<dag_id_prefix>mdca_<service>`` (no prefix in a single-tenant file)."""
        return f"{self.dag_id_prefix}mdca_{self.name}"

    @property
    def label(self) -> str:
        """How messages name this service: ``alerts``, or ``contoso/alerts`` for a tenant's."""
        return self.name if self.tenant is None else f"{self.tenant}/{self.name}"

    @property
    def task_timeouts(self) -> dict[str, timedelta | None]:
        """The ``execution_timeout`` of the fetch, flatten, ship and cleanup tasks (None: Airflow's default)."""
        if self.execution_timeout == AUTO:
            per_record = self.max_events_per_alert if self.flatten else 1
            timeouts = default_timeouts(
                self.name, self.period, page_size=self.page_size, events_per_record=per_record, lag=self.lag
            )
            return dict(timeouts)
        assert not isinstance(self.execution_timeout, str)
        return dict.fromkeys(TIMED_TASKS, self.execution_timeout)

    @property
    def task_retries(self) -> int:
        """The ``retries`` every task gets: the configured number, or enough to span ``recovery_horizon``."""
        if isinstance(self.retries, int):
            return self.retries
        return retries_to_cover(self.recovery_horizon, self.retry_delay, self.max_retry_delay)

    @property
    def retry_span(self) -> timedelta:
        """How long the retries last at least: ``recovery_horizon``, or what an explicit ``retries`` spans."""
        if self.retries == AUTO:
            return self.recovery_horizon
        return retry_span(self.task_retries, self.retry_delay, self.max_retry_delay)

    @property
    def obfuscation_config(self) -> list[dict[str, str]]:
        """The obfuscation rules as plain ``{path, method}`` mappings (what the ship operator takes)."""
        return [{"path": rule.path, "method": rule.method} for rule in self.obfuscation]

    def as_dict(self) -> dict[str, Any]:
        """The settings in the config file's own form (durations as ``"5m"``, dates as ISO text)."""
        out: dict[str, Any] = {}
        for key in SETTINGS["properties"]:
            if key in FLATTEN_KEYS and not SERVICES[self.name].flattened:
                continue  # refused on other services: show-config's output must load again
            value = getattr(self, key)
            if isinstance(value, timedelta):
                value = format_duration(value)
            elif isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif key == "obfuscation":
                value = self.obfuscation_config
            elif key == "notify":
                value = [spec.as_dict() for spec in self.notify]
            elif isinstance(value, (tuple, Mapping)):
                value = list(value) if isinstance(value, tuple) else dict(value)
            out[key] = value
        return out


@dataclass(frozen=True)
class TenantConfig:
    """One tenant of a multi-tenant file (``tenants.<name>``): its services' effective settings."""

    name: str
    #: Every service by name, enabled or not, with the tenant's settings applied.
    services: dict[str, ServiceConfig]

    @property
    def enabled(self) -> dict[str, ServiceConfig]:
        """The tenant's enabled services by name."""
        return {name: service for name, service in self.services.items() if service.enabled}

    @property
    def dag_id_prefix(self) -> str:
        """The prefix of the tenant's DAG ids."""
        return next(iter(self.services.values())).dag_id_prefix

    def as_dict(self) -> dict[str, Any]:
        """The tenant's effective settings: its DAG id prefix and every service spelled out."""
        services = {name: service.as_dict() for name, service in self.services.items()}
        return {"dag_id_prefix": self.dag_id_prefix, "services": services}


@dataclass(frozen=True)
class CollectorConfig:
    """The whole collector configuration: every service's settings, enabled or not, and its tenants if it has any.

    A single-tenant file has :attr:`services` and no :attr:`tenants`. A multi-tenant file (``tenants:``) has a
    :class:`TenantConfig` per tenant; its :attr:`services` are then the settings shared by every tenant (``defaults``
    and ``services`` of the file), which no DAG runs on their own.
    """

    #: Every service by name, in the registry's (sorted) order.
    services: dict[str, ServiceConfig]
    #: Where the configuration came from (a path, or ``<config>``), for messages.
    source: str = field(default="<config>", compare=False)
    #: The tenants by name, in the file's order; empty in a single-tenant file.
    tenants: dict[str, TenantConfig] = field(default_factory=dict)

    @property
    def enabled(self) -> dict[str, ServiceConfig]:
        """The enabled services by name (the file's own: in a multi-tenant file, what tenants start from)."""
        return {name: service for name, service in self.services.items() if service.enabled}

    @property
    def dag_configs(self) -> list[ServiceConfig]:
        """The settings of every DAG the file defines: each enabled service, of each tenant when it has tenants."""
        if self.tenants:
            return [service for tenant in self.tenants.values() for service in tenant.enabled.values()]
        return list(self.enabled.values())

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration in the file's form, every key of every service spelled out."""
        if self.tenants:
            return {"tenants": {name: tenant.as_dict() for name, tenant in self.tenants.items()}}
        return {"services": {name: service.as_dict() for name, service in self.services.items()}}
