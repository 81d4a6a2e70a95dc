"""Build one collector DAG from the provider's operators, and run one window of it with ``dag.test()``.

The DAG is the product's: the DAG factory builds it from a collector configuration of one service (wait for the lag
→ fetch → flatten for alerts → ship → clean up), with the knobs a test needs: its own connections, tag and staging
folder, a short retry delay.

Airflow 3 runs only DAGs that its DAG bundle holds, as users' DAGs are: each DAG is written as a JSON spec beside
a small DAG file in the run's dags folder (``e2e_collector_dags.py`` rebuilds every spec when Airflow parses it), and
the in-memory DAG the test runs is built from the same spec.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.config import parse_collector_config
from airflow_provider_mdca.dag_factory import build_dag

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
    staging: Path | str,
    period: timedelta = timedelta(minutes=5),
    lag: timedelta = timedelta(seconds=0),
    retries: int = 0,
    flatten: bool = True,
    tenant: str | None = None,
) -> Any:
    """A collector DAG for ``service`` with a unique id (the tests share one database), known to Airflow.

    ``tenant``: the DAG of that tenant in a multi-tenant config (the connections are the tenant's; its events carry
    ``customer: <tenant>``).
    """
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
        "tenant": tenant,
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
    tenant: str | None = None,
) -> Any:
    """The product's DAG: a collector configuration of one service, built by the DAG factory."""
    settings: dict[str, Any] = {
        "period": int(period_s),
        "lag": int(lag_s),
        "tag": tag,
        "staging_url": staging,
        "mdca_conn_id": mdca_conn_id,
        "devo_conn_id": devo_conn_id,
        "retries": retries,
        "retry_delay": "1s",
        "extra_fields": {"environment": "e2e"},
    }
    if service == "alerts":
        settings["flatten"] = flatten
    data: dict[str, Any] = {"defaults": {"historic_date_utc": "2026-01-01T00:00:00Z"}, "services": {service: settings}}
    if tenant is not None:
        data["tenants"] = {tenant: {"mdca_conn_id": mdca_conn_id, "extra_fields": {"customer": tenant}}}
    config = parse_collector_config(data, source=f"e2e spec {dag_id}")
    if tenant is not None:
        return build_dag(config.tenants[tenant].services[service], dag_id=dag_id)
    return build_dag(config.services[service], dag_id=dag_id)


def run_window(dag: Any, end: datetime, *, conf: dict[str, Any] | None = None) -> Any:
    """Run the window that ends at ``end`` (a manual run's interval ends at its logical date) and return the run."""
    with _one_dag_test_at_a_time():
        if AIRFLOW_V3:
            return dag.test(logical_date=end, run_conf=conf)
        # 2.11's dag.test deletes an earlier run of the same date; its note table points at FAB's user table, which
        # SQLAlchemy must know to order the delete (the webserver imports it; a bare test process does not).
        import airflow.providers.fab.auth_manager.models  # noqa: F401

        # As the 2.11 scheduler does when it parses the file: register the DAG and its datasets (outlets), so that the
        # ship task's dataset event is recorded.
        dag.sync_to_db()
        return dag.test(execution_date=end, run_conf=conf)


@contextlib.contextmanager
def _one_dag_test_at_a_time() -> Iterator[None]:
    """Hold the run's lock on ``dag.test()``: one at a time across the xdist workers that share the database.

    Airflow 3's ``dag.test()`` first writes every DAG of the dags folder to the database, the other workers' DAGs and
    their Assets included; two of them writing the same new Asset at once fail on its unique constraint (only one
    dag-processor writes in a real deployment). The ``xdist_group`` marks do not keep these tests on one worker with
    pytest 9.2 and pytest-xdist 3.8 (see test_backfill.py), so a lock in the run's Airflow home does.
    """
    with open(Path(os.environ["AIRFLOW_HOME"]) / "dag-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
