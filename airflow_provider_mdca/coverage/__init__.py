"""The coverage view (issue 17): is every service collecting, is anything missing or late, how much came in.

- :mod:`.model` — windows and their states, totals and freshness, the JSON document: pure functions of plain run,
  task and XCom records;
- :mod:`.render` — the terminal view (``mdca-collector status``) and the HTML page;
- :mod:`.airflow_db` — the Airflow adapter: reads those records from the metadata database (Airflow 3 and 2.11);
- :mod:`airflow_provider_mdca.plugins.coverage` — the Airflow 3 UI plugin (``/mdca/coverage``, ``/mdca/coverage.json``).

This package and its pure modules import nothing from Airflow; only :mod:`.airflow_db` does.
"""

from __future__ import annotations

from airflow_provider_mdca.config import ServiceConfig
from airflow_provider_mdca.coverage.model import (
    Coverage,
    RunRecord,
    ServiceCoverage,
    ServiceWindows,
    TaskRecord,
    Window,
    WindowState,
    XComRecord,
    assemble_runs,
    build_coverage,
    service_coverage,
)
from airflow_provider_mdca.coverage.render import render_html, render_text
from airflow_provider_mdca.services import SERVICES

__all__ = [
    "DEFAULT_DAYS",
    "Coverage",
    "RunRecord",
    "ServiceCoverage",
    "ServiceWindows",
    "TaskRecord",
    "Window",
    "WindowState",
    "XComRecord",
    "assemble_runs",
    "build_coverage",
    "render_html",
    "render_text",
    "service_coverage",
    "service_windows",
]

#: Days the view covers unless asked otherwise: a week of mornings.
DEFAULT_DAYS = 7


def service_windows(service: ServiceConfig) -> ServiceWindows:
    """What coverage needs of one DAG's settings: its windows, lag and what MDCA keeps of the service."""
    if service.historic_date_utc is None:  # the config requires it of every enabled service
        raise ValueError(f"{service.label}: historic_date_utc is required")
    registered = SERVICES[service.name]
    return ServiceWindows(
        tenant=service.tenant,
        service=service.name,
        label=service.label,
        dag_id=service.dag_id,
        period=service.period,
        first_start=service.historic_date_utc,
        lag=service.lag,
        retention=registered.retention,
        windowed=registered.windowed,
    )
