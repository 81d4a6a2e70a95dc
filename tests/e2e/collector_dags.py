"""Build one collector DAG from the provider's operators, and run one window of it with ``dag.test()``.

The DAG has the shape the DAG factory gives every service (wait for the lag → fetch → flatten for alerts → ship →
clean up), with the knobs a test needs: its own connections, tag and staging folder, a short retry delay.

Airflow 3 runs only DAGs that its DAG bundle holds, as users' DAGs are: each DAG is written as a JSON spec beside
a small DAG file in the run's dags folder (``e2e_collector_dags.py`` rebuilds every spec when Airflow parses it), and
the in-memory DAG the test runs is built from the same spec.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.timetables.interval import DeltaDataIntervalTimetable

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.operators.cleanup import MdcaStagingCleanupOperator
from airflow_provider_mdca.operators.devo import DevoShipOperator
from airflow_provider_mdca.operators.flatten import MdcaFlattenAlertsOperator
from airflow_provider_mdca.operators.mdca import FETCH_OPERATORS

if AIRFLOW_V3:
    from airflow.sdk import DAG, Param
else:  # pragma: no cover - the Airflow 2.11 run
    from airflow import DAG  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.models.param import Param  # type: ignore[no-redef,unused-ignore]

_dag_numbers = iter(range(1_000_000))


_DAG_FILE = """# Written by tests/e2e/collector_dags.py: one test airflow DAG per JSON spec beside this file.
from tests.e2e.collector_dags import dags_from_specs

globals().update(dags_from_specs(__file__))
"""


def _specs_dir() -> Path:
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    specs = dags / "e2e_specs"
    specs.mkdir(parents=True, exist_ok=True)
    dag_file = dags / "e2e_collector_dags.py"
    if not dag_file.exists():
        temp = dag_file.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(_DAG_FILE)
        temp.replace(dag_file)
    return specs


def dags_from_specs(dag_file: str) -> dict[str, Any]:
    """Every DAG of the specs beside ``dag_file`` (what the DAG file exposes to Airflow)."""
    dags = {}
    for spec in sorted((Path(dag_file).parent / "e2e_specs").glob("*.json")):
        built = _build(**json.loads(spec.read_text()))
        dags[built.dag_id] = built
    return dags


def collector_dag(
    service: str,
    *,
    mdca_conn_id: str,
    devo_conn_id: str,
    tag: str,
    staging: Path,
    period: timedelta = timedelta(minutes=5),
    lag: timedelta = timedelta(seconds=0),
    retries: int = 0,
    flatten: bool = True,
) -> Any:
    """A collector DAG for ``service`` with a unique id (the tests share one database), known to Airflow."""
    spec = {
        "dag_id": f"e2e_{service}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{next(_dag_numbers)}_{os.getpid()}",
        "service": service,
        "mdca_conn_id": mdca_conn_id,
        "devo_conn_id": devo_conn_id,
        "tag": tag,
        "staging": str(staging),
        "period_s": period.total_seconds(),
        "lag_s": lag.total_seconds(),
        "retries": retries,
        "flatten": flatten,
    }
    specs = _specs_dir()
    temp = specs / f".{spec['dag_id']}.tmp"
    temp.write_text(json.dumps(spec))
    temp.replace(specs / f"{spec['dag_id']}.json")
    return _build(**spec)  # type: ignore[arg-type]


def _build(
    *,
    dag_id: str,
    service: str,
    mdca_conn_id: str,
    devo_conn_id: str,
    tag: str,
    staging: str,
    period_s: float,
    lag_s: float,
    retries: int,
    flatten: bool,
) -> Any:
    period, lag = timedelta(seconds=period_s), timedelta(seconds=lag_s)
    dag = DAG(
        dag_id=dag_id,
        schedule=DeltaDataIntervalTimetable(period),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        params={"reship": Param(False, type="boolean")},
        default_args={"retries": retries, "retry_delay": timedelta(seconds=1)},
    )
    with dag:
        wait = TimeDeltaSensor(task_id="wait_for_lag", delta=lag, deferrable=True, poke_interval=1)
        fetch = FETCH_OPERATORS[service](
            task_id="fetch", mdca_conn_id=mdca_conn_id, staging_url=staging, max_part_bytes=64 * 1024
        )
        last: Any = fetch
        manifest = "{{ ti.xcom_pull(task_ids='fetch') }}"
        if service == "alerts" and flatten:
            last = MdcaFlattenAlertsOperator(task_id="flatten", manifest=manifest, max_part_bytes=64 * 1024)
            manifest = "{{ ti.xcom_pull(task_ids='flatten') }}"
            fetch >> last
        ship = DevoShipOperator(
            task_id="ship",
            service=service,
            manifest=manifest,
            devo_conn_id=devo_conn_id,
            tag=tag,
            extra_fields={"environment": "e2e"},
        )
        cleanup = MdcaStagingCleanupOperator(task_id="cleanup", service=service, staging_url=staging)
        wait >> fetch
        last >> ship >> cleanup
    return dag


def run_window(dag: Any, end: datetime, *, conf: dict[str, Any] | None = None) -> Any:
    """Run the window that ends at ``end`` (a manual run's interval ends at its logical date) and return the run."""
    if AIRFLOW_V3:
        return dag.test(logical_date=end, run_conf=conf)
    # 2.11's dag.test deletes an earlier run of the same date; its note table points at FAB's user table, which
    # SQLAlchemy must know to order the delete (the webserver imports it; a bare test process does not).
    import airflow.providers.fab.auth_manager.models  # noqa: F401

    # As the 2.11 scheduler does when it parses the file: register the DAG and its datasets (outlets), so that the
    # ship task's dataset event is recorded.
    dag.sync_to_db()
    return dag.test(execution_date=end, run_conf=conf)
