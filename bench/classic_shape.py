"""The collector's DAG shape before issue 16, rebuilt from the provider's operators: the benchmark's comparison.

    wait_for_lag -> fetch -> [flatten] -> ship -> cleanup        one run at a time per DAG (max_active_runs 1)

Five task instances a window (four without flatten): a deferrable lag sensor, the fetch, flatten for alerts, the
ship and a retention sweep. The benchmark gives it a connection that shares no Entra ID token across tasks, as
the provider did then. A tool of the repository, never shipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor

from airflow_provider_mdca import dag_factory
from airflow_provider_mdca._compat import DAG, DeltaDataIntervalTimetable, Param
from airflow_provider_mdca.config import CollectorConfig, ServiceConfig
from airflow_provider_mdca.operators.cleanup import MdcaStagingCleanupOperator


def build_classic_dags(config: CollectorConfig) -> dict[str, DAG]:
    """The enabled services' DAGs in the classic shape, by DAG id."""
    return {service.dag_id: _classic_dag(service) for service in config.enabled.values()}


def _classic_dag(service: ServiceConfig) -> DAG:
    with DAG(
        dag_id=service.dag_id,
        schedule=DeltaDataIntervalTimetable(service.period),
        start_date=service.historic_date_utc,
        catchup=True,
        max_active_runs=1,
        params={"reship": Param(False, type="boolean")},
        default_args=dag_factory._retry_args(service),
    ) as dag:
        wait = TimeDeltaSensor(
            task_id="wait_for_lag",
            delta=service.lag,
            deferrable=True,
            timeout=(service.lag + timedelta(hours=1)).total_seconds(),
            poke_interval=30,
        )
        fetch = dag_factory._fetch_task(service)
        wait >> fetch
        staged: Any = fetch
        if service.flatten:
            staged = dag_factory._flatten_task(service, fetch.output)
        ship = dag_factory._ship_task(service, staged.output)
        cleanup = MdcaStagingCleanupOperator(
            task_id="cleanup",
            service=service.name,
            staging_url=service.staging_url,
            staging_conn_id=service.staging_conn_id,
            retention=service.retention,
        )
        staged >> ship >> cleanup
    return dag
