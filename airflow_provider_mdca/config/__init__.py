"""The collector configuration: a YAML file, validated against a JSON schema, turned into typed frozen dataclasses.

One file configures every service's DAG. A ``defaults`` section applies to every service; ``services.<name>``
overrides it; anything left unset takes the built-in default of that service (:data:`BUILTIN_DEFAULTS`, from the
service registry)::

    defaults:
      historic_date_utc: 2026-01-01T00:00:00Z   # the first window: every DAG's start date
      obfuscation_key_variable: mdca_obfuscation_secret
    services:
      alerts: {period: 10m, max_events_per_alert: 500}
      files: {enabled: false}

A managed security provider collects several MDCA tenants from one file: ``tenants.<name>`` gives each its ``mdca``
(and ``devo``) connection and anything else it changes, over the file's ``defaults`` and ``services``; each tenant
gets a DAG per enabled service (``<tenant>_mdca_<service>``) and its own pool (each tenant has its own request
budget)::

    tenants:
      contoso: {mdca_conn_id: mdca_contoso, extra_fields: {customer: contoso}}
      fabrikam: {mdca_conn_id: mdca_fabrikam, services: {files: {enabled: false}}}

Errors are :class:`~airflow_provider_mdca.errors.InitVariablesError`, as in Devo's collector: code 3 when the file
is structurally invalid (unreadable, a YAML syntax error with its line, a section that is not a mapping), code 1
for a wrong value, type or unknown key. Either names the file, every offending key path (``services.alerts.period``)
and why, all problems at once. The file holds no secret: the obfuscation key and the credentials live in Airflow
connections or Variables, referenced by id.

- :mod:`.durations` — ``"5m"``, ``"1h30m"``, ``"PT5M"`` and seconds, both ways;
- :mod:`.schema` — the JSON schema (``mdca-collector schema``) and its errors in words;
- :mod:`.model` — :class:`ServiceConfig`, :class:`CollectorConfig` and the built-in defaults;
- :mod:`.loading` — YAML in, merged and typed.

Imports nothing from Airflow: the DAG file parses it, and so does ``mdca-collector validate``.
"""

from __future__ import annotations

from airflow_provider_mdca.config.durations import format_duration, parse_duration
from airflow_provider_mdca.config.loading import load_collector_config, parse_collector_config
from airflow_provider_mdca.config.model import BUILTIN_DEFAULTS, CollectorConfig, ServiceConfig, TenantConfig
from airflow_provider_mdca.config.schema import SCHEMA

__all__ = [
    "BUILTIN_DEFAULTS",
    "SCHEMA",
    "CollectorConfig",
    "ServiceConfig",
    "TenantConfig",
    "format_duration",
    "load_collector_config",
    "parse_collector_config",
    "parse_duration",
]
