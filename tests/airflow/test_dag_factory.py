"""The collector's DAG file through real Airflow parsing (DagBag), on Airflow 3 and 2.11.

What an operator of the collector checks: the file parses without import errors into one DAG per service and the
retention DAG, parsing touches no connection, Variable or network, each DAG has the documented task graph and
settings, and every run — scheduled, manual or backfilled — reads a window exactly one period long, adjacent to the
next.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_mdca import _compat
from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.config import format_duration, parse_collector_config
from airflow_provider_mdca.dag_factory import RETENTION_DAG_ID, RETENTION_INTERVAL, build_dags, build_retention_dag
from airflow_provider_mdca.operators.cleanup import MdcaStagingCleanupOperator
from airflow_provider_mdca.staging import PartWriter, mark_window_delivered, window_dir
from tests.forbidden_calls import ForbiddenCalls
from tests.service_table import ALL, PERIODS, SERVICE_TABLE

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILE = DAGS / "mdca_collector.py"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
SERVICE_DAG_IDS = [f"mdca_{name}" for name in ALL]


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


def test_the_dag_file_parses_into_five_service_dags_and_the_retention_dag_without_import_errors(default_bag):
    assert default_bag.import_errors == {}
    assert sorted(default_bag.dag_ids) == sorted([*SERVICE_DAG_IDS, RETENTION_DAG_ID])


def test_parsing_touches_no_connection_variable_or_network(monkeypatch):
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable

    calls = ForbiddenCalls(monkeypatch, "DAG parsing")
    calls.forbid(_compat.BaseHook, "get_connection", "BaseHook.get_connection")
    calls.forbid(_compat.Variable, "get", "Variable.get")
    calls.forbid(Connection, "get_connection_from_secrets", "Connection.get_connection_from_secrets")
    calls.forbid(Variable, "get", "models.Variable.get")
    calls.forbid_network()
    monkeypatch.delenv("MDCA_COLLECTOR_CONFIG", raising=False)
    bag = dag_bag(DAGS)
    assert bag.import_errors == {}
    assert len(bag.dag_ids) == len(ALL) + 1  # and the retention DAG
    assert calls.touched == []


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
    assert sorted(bag.dag_ids) == sorted([*(f"mdca_{name}" for name in ALL if name != "files"), RETENTION_DAG_ID])
    # Nor any clean-up: the retention DAG cleans only the enabled services' staging.
    cleanups = {task.task_id for task in bag.dags[RETENTION_DAG_ID].tasks}
    assert cleanups == {f"cleanup_{name}" for name in ALL if name != "files"}


# -- the task graph and settings ------------------------------------------------------------------------------------

EDGES = {("fetch", "ship")}
ALERT_EDGES = {("fetch", "flatten"), ("flatten", "ship")}


def edges(dag: Any) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


@pytest.mark.parametrize("service", ALL)
def test_each_dag_fetches_after_the_lag_flattens_alerts_and_ships(default_bag, service):
    dag = default_bag.dags[f"mdca_{service}"]
    row = SERVICE_TABLE[service]
    assert edges(dag) == (ALERT_EDGES if row.flattened else EDGES)
    # The fetch waits for the lag itself (deferred) and retention is the retention DAG's: no other task.
    assert {task.task_id for task in dag.tasks} == (
        {"fetch", "flatten", "ship"} if row.flattened else {"fetch", "ship"}
    )
    fetch = dag.get_task("fetch")
    from airflow_provider_mdca.operators.mdca import fetch_operator

    assert type(fetch) is fetch_operator(service) and fetch.service_name == service
    assert fetch.pool == "mdca_api"
    assert fetch.lag == row.default_lag
    # A windowed service's runs overlap in a catch-up (the next fetch waits in the pool); a snapshot's do not.
    assert dag.max_active_runs == (4 if row.windowed else 1)


def test_alerts_without_flattening_ship_the_fetched_stage(configured_bag):
    bag = configured_bag({"defaults": {"historic_date_utc": "2026-11-01"}, "services": {"alerts": {"flatten": False}}})
    assert edges(bag.dags["mdca_alerts"]) == EDGES
    assert "flatten" not in bag.dags["mdca_alerts"].task_ids


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

    fetch, flatten, ship = (dag.get_task(t) for t in ("fetch", "flatten", "ship"))
    assert fetch.lag == timedelta(minutes=3)
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
    cleanup = bag.dags[RETENTION_DAG_ID].get_task("cleanup_alerts")
    assert cleanup.retention == timedelta(days=2) and cleanup.staging_url == "file:///srv/mdca"
    # The other tasks are not in the API pool: only fetching spends the tenant's request budget.
    assert {t.task_id for t in dag.tasks if t.pool == "mdca_slow"} == {"fetch"}


@pytest.mark.parametrize("service", ALL)
def test_every_task_has_an_execution_timeout_by_default(default_bag, service):
    # Issue 14, item 8: a fetch that hangs held the single mdca_api slot and stalled every DAG, never failing.
    dag = default_bag.dags[f"mdca_{service}"]
    limits = {task.task_id: task.execution_timeout for task in scheduler_view(dag).tasks}  # as the scheduler sees them
    assert all(isinstance(limit, timedelta) for limit in limits.values()), limits
    # Twice the period, within [30m, 12h], plus the lag a live window's fetch spends deferred.
    row = SERVICE_TABLE[service]
    assert (
        limits["fetch"]
        == min(max(2 * row.default_period, timedelta(minutes=30)), timedelta(hours=12)) + row.default_lag
    )
    if service == "activities":
        assert limits["fetch"] == timedelta(minutes=32)  # 5m windows: 30m + the 2m lag
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
    assert {t.task_id: t.execution_timeout for t in alerts.tasks} == dict.fromkeys(
        ["fetch", "flatten", "ship"], timedelta(minutes=20)
    )
    retention = bag.dags[RETENTION_DAG_ID]
    assert retention.get_task("cleanup_alerts").execution_timeout == timedelta(minutes=20)
    from airflow.configuration import conf

    airflow_default = conf.get("core", "default_task_execution_timeout", fallback="")
    expected = timedelta(seconds=int(airflow_default)) if airflow_default else None
    assert {t.execution_timeout for t in bag.dags["mdca_files"].tasks} == {expected}
    assert retention.get_task("cleanup_files").execution_timeout == expected


# -- the retention DAG ----------------------------------------------------------------------------------------------


def test_the_retention_dag_cleans_each_enabled_services_staging_every_hour(configured_bag):
    bag = configured_bag(
        {
            "defaults": {"historic_date_utc": "2026-11-01", "staging_url": "file:///srv/mdca", "retention": "2d"},
            "services": {
                "alerts": {"staging_url": "file:///srv/alerts", "retention": "6h", "historic_date_utc": "2026-10-01"},
                "entities": {"execution_timeout": "45m"},
                "files": {"enabled": False},
            },
        }
    )
    assert bag.import_errors == {}
    dag = bag.dags[RETENTION_DAG_ID]
    # No catchup: one sweep covers every hour the scheduler missed; one sweep at a time.
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.start_date == datetime(2026, 10, 1, tzinfo=timezone.utc)  # the earliest service's
    enabled = [name for name in ALL if name != "files"]
    assert {task.task_id for task in dag.tasks} == {f"cleanup_{name}" for name in enabled}
    assert edges(dag) == set()  # one service's refused window does not keep the others' staging from being cleaned
    for name in enabled:
        task = dag.get_task(f"cleanup_{name}")
        assert isinstance(task, MdcaStagingCleanupOperator) and task.service_name == name
        assert task.staging_url == ("file:///srv/alerts" if name == "alerts" else "file:///srv/mdca")
        assert task.retention == (timedelta(hours=6) if name == "alerts" else timedelta(days=2))
        assert task.execution_timeout == (timedelta(minutes=45) if name == "entities" else timedelta(minutes=30))
        assert task.retries == 3
        assert f"`cleanup_{name}`" in dag.doc_md
    # Hourly, as the scheduler runs it.
    from airflow.timetables.base import TimeRestriction

    timetable = scheduler_view(dag).timetable
    restriction = TimeRestriction(earliest=START, latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval, restriction=restriction)
    assert second.run_after - first.run_after == RETENTION_INTERVAL == timedelta(hours=1)


def staged_window(base: Path, service: str, days_ago: int, *, delivered: bool) -> Path:
    start = datetime.now(timezone.utc) - timedelta(days=days_ago)
    window = window_dir(base, service, start, start + timedelta(minutes=5))
    with PartWriter(window, stage="fetched") as writer:
        writer.write_all([{"_id": "a"}])
    if delivered:
        mark_window_delivered(window, {})
    return window


def test_the_retention_dag_removes_delivered_windows_and_keeps_undelivered_ones_however_old(tmp_path):
    # What the old per-window cleanup's trigger rule guaranteed (never clean up after a failed ship): a window that
    # was not delivered stays.
    base = tmp_path / "staging"
    config = parse_collector_config(
        {
            "defaults": {"historic_date_utc": "2026-11-01", "enabled": False},
            "services": {"alerts": {"enabled": True, "staging_url": base.as_uri(), "retention": "0s"}},
        }
    )
    shipped = staged_window(base, "alerts", 9, delivered=True)
    failed = staged_window(base, "alerts", 8, delivered=False)
    cleanup = build_dags(config)[RETENTION_DAG_ID].get_task("cleanup_alerts")
    assert cleanup.execute({}) == 1
    assert not shipped.exists() and failed.exists()


@pytest.mark.parametrize("dag_id", [*SERVICE_DAG_IDS, RETENTION_DAG_ID])
def test_every_dag_survives_serialization(default_bag, dag_id):
    dag = default_bag.dags[dag_id]
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
    dags = build_dags(config)
    assert list(dags) == ["mdca_activities", RETENTION_DAG_ID]
    assert [task.task_id for task in dags[RETENTION_DAG_ID].tasks] == ["cleanup_activities"]


def test_no_service_enabled_means_no_dag_at_all_not_even_the_retention_dag():
    config = parse_collector_config({"defaults": {"historic_date_utc": "2026-11-01", "enabled": False}})
    assert build_dags(config) == {}
    with pytest.raises(ValueError, match="at least one service"):
        build_retention_dag([])


def test_a_dag_can_take_another_id_for_a_second_collector():
    from airflow_provider_mdca.dag_factory import build_dag

    config = parse_collector_config({"defaults": {"historic_date_utc": "2026-11-01"}})
    dag = build_dag(config.services["alerts"], dag_id="mdca_alerts_tenant_b")
    assert dag.dag_id == "mdca_alerts_tenant_b" and "--dag-id mdca_alerts_tenant_b" in dag.doc_md


def test_every_task_rides_out_a_day_of_outage_with_backoff_and_reports_it(default_bag):
    # Issue 15: three fixed one-minute retries left a window undelivered after a few minutes of Devo outage.
    for dag in (default_bag.dags[dag_id] for dag_id in SERVICE_DAG_IDS):
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


def test_a_tenants_notifier_that_cannot_be_imported_names_the_tenants_entry(configured_bag):
    notify = [{"notifier": "no_such_module.SlackNotifier", "on": ["failure"]}]
    bag = configured_bag(
        {
            "defaults": {"historic_date_utc": "2026-11-01"},
            "tenants": {"contoso": {"mdca_conn_id": "m_c", "services": {"files": {"notify": notify}}}},
        }
    )
    (message,) = bag.import_errors.values()
    assert "tenants.contoso.services.files.notify[0].notifier: cannot import" in message


# -- many tenants --------------------------------------------------------------------------------------------------


def test_a_tenant_file_parses_into_a_dag_per_tenant_and_service_each_with_its_pool_connection_and_staging(
    configured_bag, tmp_path
):
    base = tmp_path / "staging"
    bag = configured_bag(
        {
            "defaults": {"historic_date_utc": "2026-11-01", "staging_url": base.as_uri()},
            "services": {"entities": {"enabled": False}, "data_enrichment": {"enabled": False}},
            "tenants": {
                "contoso": {"mdca_conn_id": "mdca_contoso", "extra_fields": {"customer": "contoso"}},
                "fabrikam": {"mdca_conn_id": "mdca_fabrikam", "dag_id_prefix": "fab_", "devo_conn_id": "devo_fab"},
            },
        }
    )
    assert bag.import_errors == {}
    windowed = ["activities", "alerts", "files"]
    expected = {f"contoso_mdca_{n}" for n in windowed} | {f"fab_mdca_{n}" for n in windowed} | {RETENTION_DAG_ID}
    assert set(bag.dags) == expected

    for prefix, tenant, mdca, devo in [
        ("contoso_", "contoso", "mdca_contoso", "devo_default"),
        ("fab_", "fabrikam", "mdca_fabrikam", "devo_fab"),
    ]:
        dag = bag.dags[f"{prefix}mdca_alerts"]
        fetch, flatten, ship = (dag.get_task(task_id) for task_id in ("fetch", "flatten", "ship"))
        assert fetch.pool == f"mdca_api_{tenant}" and fetch.mdca_conn_id == mdca
        assert ship.devo_conn_id == devo
        assert {fetch.tenant, flatten.tenant, ship.tenant} == {tenant}
        assert tenant in dag.tags
    assert bag.dags["contoso_mdca_alerts"].get_task("ship").extra_fields == {"customer": "contoso"}
    retention = bag.dags[RETENTION_DAG_ID]
    assert {task.task_id for task in retention.tasks} == {
        f"cleanup_{tenant}_{name}" for tenant in ("contoso", "fabrikam") for name in windowed
    }
    assert retention.get_task("cleanup_fabrikam_files").tenant == "fabrikam"


def test_a_tenants_windows_are_staged_and_cleaned_under_its_own_folder(tmp_path):
    from airflow_provider_mdca.operators._staging import staging_base

    base = tmp_path / "staging"
    config = parse_collector_config(
        {
            "defaults": {"historic_date_utc": "2026-11-01", "enabled": False, "staging_url": base.as_uri()},
            "services": {"alerts": {"enabled": True, "retention": "0s"}},
            "tenants": {"contoso": {"mdca_conn_id": "m_c"}, "fabrikam": {"mdca_conn_id": "m_f"}},
        }
    )
    contoso_base = Path(staging_base(base.as_uri(), None, "contoso").path)
    assert contoso_base == base / "tenants" / "contoso"
    contoso = staged_window(contoso_base, "alerts", 2, delivered=True)
    fabrikam = staged_window(base / "tenants" / "fabrikam", "alerts", 2, delivered=False)
    cleanup = build_dags(config)[RETENTION_DAG_ID].get_task("cleanup_contoso_alerts")
    assert cleanup.execute({}) == 1
    assert not contoso.exists() and fabrikam.exists()
