"""The collector's DAG file through real Airflow parsing (DagBag), on Airflow 3 and 2.11.

What an operator of the collector checks: the file parses without import errors into one DAG per service, parsing
touches no connection, Variable or network, each DAG has the documented task graph and settings, and every run —
scheduled, manual or backfilled — reads a window exactly one period long, adjacent to the next.
"""

from __future__ import annotations

import itertools
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_mdca import _compat
from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.config import format_duration, parse_collector_config
from airflow_provider_mdca.dag_factory import build_dags
from tests.service_table import ALL, PERIODS, SERVICE_TABLE

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILE = DAGS / "mdca_collector.py"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def dag_bag(folder: Path) -> Any:
    """Airflow's own parser, as the dag-processor (3.x) or scheduler (2.11) runs it."""
    if AIRFLOW_V3:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(folder))
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(dag_folder=str(folder), include_examples=False)


def scheduler_view(dag: Any) -> Any:
    """The DAG as the scheduler sees it: serialized and deserialized (its timetable is the scheduler's class)."""
    if AIRFLOW_V3:
        from airflow.serialization.serialized_objects import DagSerialization

        return DagSerialization.from_dict(DagSerialization.to_dict(dag))
    from airflow.serialization.serialized_objects import SerializedDAG

    return SerializedDAG.from_dict(SerializedDAG.to_dict(dag))


def backfill_intervals(dag: Any, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The data intervals a backfill from ``start`` to ``end`` creates, computed by Airflow's own backfill code."""
    if AIRFLOW_V3:
        from airflow.models.backfill import _get_info_list  # what `airflow backfill create` calls

        infos = _get_info_list(from_date=start, to_date=end, reverse=False, dag=scheduler_view(dag))
    else:
        infos = dag.iter_dagrun_infos_between(start, end)  # what `airflow dags backfill` calls
    return [(info.data_interval.start, info.data_interval.end) for info in infos]


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def default_bag(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("MDCA_COLLECTOR_CONFIG", raising=False)
    return dag_bag(DAGS)


@pytest.fixture
def configured_bag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Parse the DAG file with a given config (through ``MDCA_COLLECTOR_CONFIG``, as a deployment would)."""

    def parse(data: dict[str, Any]) -> Any:
        monkeypatch.setenv("MDCA_COLLECTOR_CONFIG", str(write_config(tmp_path, data)))
        return dag_bag(DAGS)

    return parse


# -- parsing -------------------------------------------------------------------------------------------------------


def test_the_dag_file_parses_into_five_dags_without_import_errors(default_bag):
    assert default_bag.import_errors == {}
    assert sorted(default_bag.dag_ids) == [f"mdca_{name}" for name in ALL]


def test_parsing_touches_no_connection_variable_or_network(monkeypatch):
    touched: list[str] = []

    def forbidden(what: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            touched.append(what)
            raise AssertionError(f"DAG parsing must not use {what}")

        return record

    from airflow.models.connection import Connection
    from airflow.models.variable import Variable

    monkeypatch.setattr(_compat.BaseHook, "get_connection", forbidden("BaseHook.get_connection"))
    monkeypatch.setattr(_compat.Variable, "get", forbidden("Variable.get"))
    monkeypatch.setattr(Connection, "get_connection_from_secrets", forbidden("Connection.get_connection_from_secrets"))
    monkeypatch.setattr(Variable, "get", forbidden("models.Variable.get"))
    monkeypatch.setattr(socket.socket, "connect", forbidden("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", forbidden("socket.create_connection"))
    monkeypatch.delenv("MDCA_COLLECTOR_CONFIG", raising=False)
    bag = dag_bag(DAGS)
    assert bag.import_errors == {}
    assert len(bag.dag_ids) == len(ALL)
    assert touched == []


def test_an_invalid_config_is_an_import_error_naming_the_key(configured_bag):
    bag = configured_bag({"defaults": {"historic_date_utc": "2026-11-01"}, "services": {"alerts": {"period": "5x"}}})
    assert list(bag.dag_ids) == []
    assert len(bag.import_errors) == 1
    (path, message), *_ = bag.import_errors.items()
    assert Path(path).name == "mdca_collector.py"
    assert "InitVariablesError 1" in message and "services.alerts.period" in message


def test_disabled_services_have_no_dag(configured_bag):
    bag = configured_bag({"defaults": {"historic_date_utc": "2026-11-01"}, "services": {"files": {"enabled": False}}})
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [f"mdca_{name}" for name in ALL if name != "files"]


# -- the task graph and settings ------------------------------------------------------------------------------------

EDGES = {
    ("wait_for_lag", "fetch"),
    ("fetch", "ship"),
    ("ship", "cleanup"),
}
ALERT_EDGES = {("wait_for_lag", "fetch"), ("fetch", "flatten"), ("flatten", "ship"), ("ship", "cleanup")}


def edges(dag: Any) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


@pytest.mark.parametrize("service", ALL)
def test_each_dag_waits_fetches_flattens_alerts_ships_and_cleans_up(default_bag, service):
    dag = default_bag.dags[f"mdca_{service}"]
    assert edges(dag) == (ALERT_EDGES if SERVICE_TABLE[service].flattened else EDGES)
    fetch = dag.get_task("fetch")
    from airflow_provider_mdca.operators.mdca import fetch_operator

    assert type(fetch) is fetch_operator(service) and fetch.service_name == service
    assert fetch.pool == "mdca_api"
    assert dag.get_task("cleanup").trigger_rule == "all_success"  # never clean up after a failed ship


def test_alerts_without_flattening_ship_the_fetched_stage(configured_bag):
    bag = configured_bag({"defaults": {"historic_date_utc": "2026-11-01"}, "services": {"alerts": {"flatten": False}}})
    assert edges(bag.dags["mdca_alerts"]) == EDGES


def test_the_configuration_reaches_the_dag_and_its_tasks(configured_bag):
    bag = configured_bag(
        {
            "defaults": {
                "historic_date_utc": "2026-11-01T06:00:00+02:00",
                "retries": 5,
                "retry_delay": "90s",
                "pool": "mdca_slow",
                "max_active_runs": 2,
                "staging_url": "file:///srv/mdca",
                "retention": "2d",
                "mdca_conn_id": "mdca_prod",
                "devo_conn_id": "devo_prod",
                "tags": ["soc"],
                "extra_fields": {"environment": "prod"},
                "obfuscation_key_variable": "mdca_key",
            },
            "services": {
                "alerts": {
                    "period": "10m",
                    "lag": "3m",
                    "page_size": 50,
                    "max_events_per_alert": 20,
                    "max_bytes_per_alert": 2_000_000,
                    "tag": "my.app.mdca.alerts",
                    "obfuscation": ["user.userName", {"path": "entities[].label", "method": "mask"}],
                }
            },
        }
    )
    assert bag.import_errors == {}
    dag = bag.dags["mdca_alerts"]
    assert dag.start_date == datetime(2026, 11, 1, 4, tzinfo=timezone.utc)
    assert dag.catchup is True and dag.max_active_runs == 2
    assert set(dag.tags) == {"soc", "alerts"}
    assert dag.default_args["retries"] == 5 and dag.default_args["retry_delay"] == timedelta(seconds=90)
    reship = dag.params.get_param("reship")
    assert reship.value is False and reship.schema["type"] == "boolean"
    assert "my.app.mdca.alerts" in dag.doc_md and "reship" in dag.doc_md

    wait, fetch, flatten, ship, cleanup = (
        dag.get_task(t) for t in ("wait_for_lag", "fetch", "flatten", "ship", "cleanup")
    )
    assert wait.delta == timedelta(minutes=3) and wait.deferrable is True
    assert wait.timeout >= timedelta(minutes=3).total_seconds()
    assert (fetch.pool, fetch.mdca_conn_id, fetch.page_size, fetch.staging_url) == (
        "mdca_slow",
        "mdca_prod",
        50,
        "file:///srv/mdca",
    )
    assert fetch.retries == 5 and fetch.retry_delay == timedelta(seconds=90)
    assert flatten.max_events_per_alert == 20 and flatten.max_bytes_per_alert == 2_000_000
    assert (ship.tag, ship.devo_conn_id, ship.obfuscation_key_variable) == (
        "my.app.mdca.alerts",
        "devo_prod",
        "mdca_key",
    )
    rules = [{"path": "user.userName", "method": "hmac"}, {"path": "entities[].label", "method": "mask"}]
    # Alerts are obfuscated before flattening (paths are the alert's own); ship skips the rules applied there.
    assert flatten.obfuscation == ship.obfuscation == rules
    assert flatten.obfuscation_key_variable == ship.obfuscation_key_variable == "mdca_key"
    assert ship.extra_fields == {"environment": "prod"}
    assert [outlet.uri.rstrip("/") for outlet in ship.outlets] == ["devo://my.app.mdca.alerts"]
    assert cleanup.retention == timedelta(days=2) and cleanup.staging_url == "file:///srv/mdca"
    # The other tasks are not in the API pool: only fetching spends the tenant's request budget.
    assert {t.task_id for t in dag.tasks if t.pool == "mdca_slow"} == {"fetch"}


@pytest.mark.parametrize("service", ALL)
def test_every_task_has_an_execution_timeout_by_default(default_bag, service):
    # Issue 14, item 8: a fetch that hangs held the single mdca_api slot and stalled every DAG, never failing.
    dag = default_bag.dags[f"mdca_{service}"]
    limits = {task.task_id: task.execution_timeout for task in scheduler_view(dag).tasks}  # as the scheduler sees them
    assert all(isinstance(limit, timedelta) for limit in limits.values()), limits
    assert timedelta(minutes=30) <= limits["fetch"] <= timedelta(hours=12)
    assert limits["wait_for_lag"] == timedelta(seconds=dag.get_task("wait_for_lag").timeout)
    assert "**Bounds**" in dag.doc_md and f"`fetch` {format_duration(limits['fetch'])}" in dag.doc_md


def test_the_configured_execution_timeout_reaches_every_task_and_null_leaves_airflows_default(configured_bag):
    bag = configured_bag(
        {
            "defaults": {"historic_date_utc": "2026-11-01", "execution_timeout": "20m"},
            "services": {"files": {"execution_timeout": None}},
        }
    )
    assert bag.import_errors == {}
    alerts = bag.dags["mdca_alerts"]
    assert {t.task_id: t.execution_timeout for t in alerts.tasks if t.task_id != "wait_for_lag"} == dict.fromkeys(
        ["fetch", "flatten", "ship", "cleanup"], timedelta(minutes=20)
    )
    from airflow.configuration import conf

    airflow_default = conf.get("core", "default_task_execution_timeout", fallback="")
    expected = timedelta(seconds=int(airflow_default)) if airflow_default else None
    assert {t.execution_timeout for t in bag.dags["mdca_files"].tasks} == {expected}


@pytest.mark.parametrize("service", ALL)
def test_every_dag_survives_serialization(default_bag, service):
    dag = default_bag.dags[f"mdca_{service}"]
    served = scheduler_view(dag)
    assert served.dag_id == dag.dag_id
    assert {t.task_id for t in served.tasks} == {t.task_id for t in dag.tasks}


# -- windows -------------------------------------------------------------------------------------------------------


@pytest.fixture
def start_bag(configured_bag):
    return configured_bag({"defaults": {"historic_date_utc": START.isoformat()}})


@pytest.mark.parametrize("service", ALL)
def test_scheduled_runs_read_adjacent_windows_one_period_long(start_bag, service):
    from airflow.timetables.base import TimeRestriction

    timetable = scheduler_view(start_bag.dags[f"mdca_{service}"]).timetable
    restriction = TimeRestriction(earliest=START, latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval, restriction=restriction)
    period = PERIODS[service]
    assert (first.data_interval.start, first.data_interval.end) == (START, START + period)
    assert (second.data_interval.start, second.data_interval.end) == (START + period, START + 2 * period)
    assert second.run_after == second.data_interval.end  # a window runs once it has ended


@pytest.mark.parametrize("service", ALL)
def test_a_manual_run_reads_the_period_that_ends_at_its_date(start_bag, service):
    timetable = scheduler_view(start_bag.dags[f"mdca_{service}"]).timetable
    run_after = datetime(2026, 11, 20, 13, 7, 30, tzinfo=timezone.utc)
    interval = timetable.infer_manual_data_interval(run_after=run_after)
    assert interval.end == run_after
    assert interval.end - interval.start == PERIODS[service]


@pytest.mark.parametrize("service", ALL)
def test_a_backfill_covers_its_range_with_windows_one_period_long(start_bag, service):
    period = PERIODS[service]
    begin = START + 3 * period
    intervals = backfill_intervals(start_bag.dags[f"mdca_{service}"], begin, begin + 5 * period)
    assert len(intervals) == 6
    assert intervals[0][0] == begin
    assert all(end - start == period for start, end in intervals)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(intervals))  # no gap, no overlap


def test_build_dags_builds_only_what_the_config_enables():
    config = parse_collector_config(
        {
            "defaults": {"historic_date_utc": "2026-11-01", "enabled": False},
            "services": {"activities": {"enabled": True}},
        }
    )
    assert list(build_dags(config)) == ["mdca_activities"]


def test_a_dag_can_take_another_id_for_a_second_collector():
    from airflow_provider_mdca.dag_factory import build_dag

    config = parse_collector_config({"defaults": {"historic_date_utc": "2026-11-01"}})
    dag = build_dag(config.services["alerts"], dag_id="mdca_alerts_tenant_b")
    assert dag.dag_id == "mdca_alerts_tenant_b" and "--dag-id mdca_alerts_tenant_b" in dag.doc_md


def test_every_task_rides_out_a_day_of_outage_with_backoff_and_reports_it(default_bag):
    # Issue 15: three fixed one-minute retries left a window undelivered after a few minutes of Devo outage.
    for dag in default_bag.dags.values():
        for task in scheduler_view(dag).tasks:
            assert task.retries == 99, (dag.dag_id, task.task_id, task.retries)
            assert task.retry_delay == timedelta(minutes=1) and task.max_retry_delay == timedelta(minutes=15)
            assert task.retry_exponential_backoff == _compat.EXPONENTIAL_BACKOFF
        ship = dag.get_task("ship")
        assert ship.on_retry_callback and ship.on_failure_callback and ship.on_success_callback


def test_a_notifier_that_cannot_be_imported_is_an_import_error_naming_its_entry(configured_bag):
    bag = configured_bag(
        {
            "defaults": {"historic_date_utc": "2026-11-01"},
            "services": {"files": {"notify": [{"notifier": "no_such_module.SlackNotifier", "on": ["failure"]}]}},
        }
    )
    (message,) = bag.import_errors.values()
    assert "services.files.notify[0].notifier: cannot import 'no_such_module.SlackNotifier'" in message
