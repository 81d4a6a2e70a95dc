"""The collector's metrics reach a StatsD server through Airflow's own ``Stats``, with a real Airflow running its DAGs.

Airflow is configured as a deployment enables StatsD (``[metrics] statsd_on``, ``statsd_host``, ``statsd_port``),
pointed at a listener on 127.0.0.1 (:mod:`tests.harness.statsd`), and runs two windows of activities and of alerts
(``dags/mdca_collector.py``; Airflow 3: ``airflow backfill create`` with the scheduler, LocalExecutor; Airflow 2.11:
``airflow dags backfill``) against the emulators. MDCA answers the first activities requests with a 429 and then
more 5xx than the connection retries: the first fetch of activities fails and Airflow retries it.

What an operator's dashboard would show is then checked against the emulators' ground truth: records fetched,
staged, flattened and delivered per service; requests, the one 429 (counted although its try failed), the request
retries and the one Airflow retry; each window's freshness and each step's duration as timers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_mdca.metrics import COUNTERS
from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.e2e.conftest import DevoAdmin, Plan, expected_alert_events, ms, recent_plan, write_collector_config
from tests.harness.airflow_stack import AirflowStack, DagRun
from tests.harness.statsd import StatsdListener
from tests.service_table import SNAPSHOTS

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("e2e-metrics"), pytest.mark.timeout(1200)]

WINDOWS = 2
PERIOD = timedelta(minutes=10)  # the next window ends a period after the range: the scheduler starts no run of its own
SERVICES_RUN = ("activities", "alerts")
PREFIX = "airflow.mdca.default"  # Airflow's statsd_prefix, then the collector's namespace and a single tenant's name
# The first activities requests: one 429 (retried after its Retry-After), then 5xx past the connection's 2 retries.
FAULTS = ["429", "500", "500", "500"]
MAX_RETRIES = 2
ACTIVITIES, ALERTS = 1_400, 240  # records over the two windows


@dataclass
class Collected:
    plan: Plan
    tenant: TenantConfig
    emulator: EmulatorProcess
    stack: AirflowStack
    statsd: StatsdListener
    runs: dict[str, list[DagRun]]
    finished_at: datetime

    def name(self, service: str, metric: str) -> str:
        return f"{PREFIX}.{service}.{metric}"

    def counter(self, service: str, metric: str) -> float:
        return self.statsd.counter(self.name(service, metric))

    def truth(self, service: str) -> list[str]:
        return self.emulator.truth(service, ms(self.plan.start), ms(self.plan.end))


@pytest.fixture(scope="module")
def collected(start_emulator: Any, start_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collected]:
    """Two windows of activities and alerts through the running Airflow line, its metrics sent to a StatsD listener."""
    plan = recent_plan(PERIOD, WINDOWS)

    def series(count: int) -> TimeSeriesConfig:
        return TimeSeriesConfig(segments=[Segment(ms(plan.start), ms(plan.end), count, (1, 2))])

    tenant = TenantConfig(
        "tenant-e2e-metrics",
        seed=11,
        services={
            "activities": series(ACTIVITIES),
            "alerts": series(ALERTS),
            **{name: SnapshotConfig(0) for name in SNAPSHOTS},
        },
        requests_per_minute=None,
        fault_queue=list(FAULTS),
        fault_services=["activities"],
        time_model="instant",  # exact counts per window: each record is stored the instant it happens
    )
    emulator = start_emulator(tenant)
    config = write_collector_config(
        tmp_path_factory.mktemp("collector") / "collector.yaml",
        plan,
        {"activities": {"page_size": 500}, "alerts": {"page_size": 50}},  # several pages a window
    )
    mdca = emulator.connection(
        requests_per_minute=100_000, max_retries=MAX_RETRIES, backoff_base=0.1, backoff_max=1, retry_after_default=1
    )
    statsd = StatsdListener().start()
    env = {
        "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(mdca),
        "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(emulator.devo_connection()),
        "MDCA_COLLECTOR_CONFIG": str(config),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    try:
        # The stack's default executor: on 2.11 SequentialExecutor, a process per task as in a deployment (the
        # DebugExecutor of test_backfill.py fails a task instead of retrying it).
        stack = start_stack(env)
        dag_ids = [f"mdca_{service}" for service in SERVICES_RUN]
        runs = stack.backfill_all(dag_ids, plan.start, plan.last_logical, expected=WINDOWS)
        finished_at = datetime.now(timezone.utc)
        # A task sends its datagrams before it ends; give the listener's thread a moment to read the last ones.
        statsd.wait_for(lambda s: len(s.timings(f"{PREFIX}.alerts.window_freshness")) >= WINDOWS, timeout=10)
        yield Collected(plan, tenant, emulator, stack, statsd, runs, finished_at)
        stack.stop()
        emulator.stop()
    finally:
        statsd.stop()


def test_the_runs_succeeded_after_airflow_retried_the_failed_fetch(collected: Collected) -> None:
    for dag_id, runs in collected.runs.items():
        assert [run.state for run in runs] == ["success"] * WINDOWS, collected.stack.failure_report(dag_id, runs)
    assert collected.counter("activities", "task_retries") == 1
    assert collected.counter("alerts", "task_retries") == 0


def test_every_metric_is_named_by_tenant_and_service(collected: Collected) -> None:
    for service in SERVICES_RUN:
        counters = {collected.name(service, metric) for metric in COUNTERS}
        timers = {collected.name(service, metric) for metric in ("fetch_duration", "ship_duration", "window_freshness")}
        if service == "alerts":
            timers.add(collected.name(service, "flatten_duration"))
        else:
            counters.discard(collected.name(service, "records_flattened"))
        if service == "alerts":  # no alerts task failed: task_retries is sent only when Airflow retries a task
            counters.discard(collected.name(service, "task_retries"))
        received = collected.statsd.samples(f"{PREFIX}.{service}.")
        assert {s.name for s in received if s.kind == "c"} == counters
        assert {s.name for s in received if s.kind == "ms"} == timers


def test_records_fetched_staged_and_delivered_match_the_emulators_ground_truth(collected: Collected) -> None:
    activities = len(collected.truth("activities"))
    assert activities == ACTIVITIES
    for metric in ("records_fetched", "records_staged", "records_delivered"):
        assert collected.counter("activities", metric) == activities, metric
    devo = DevoAdmin(collected.emulator.info["devo"])
    assert len(devo.ids(SERVICES["activities"].devo_table)) == activities

    alerts = collected.truth("alerts")
    events = sum(
        expected_alert_events(collected.tenant, set(alerts), ms(collected.plan.start), ms(collected.plan.end)).values()
    )
    assert events > len(alerts) == ALERTS
    assert collected.counter("alerts", "records_fetched") == collected.counter("alerts", "records_staged") == ALERTS
    assert collected.counter("alerts", "records_flattened") == events
    assert collected.counter("alerts", "records_delivered") == events
    assert len(devo.ids(SERVICES["alerts"].devo_table)) == events
    for service in SERVICES_RUN:
        assert collected.counter(service, "records_late") == 0  # each record stored the instant it happened


def test_requests_the_429_and_the_retries_are_counted_failed_try_included(collected: Collected) -> None:
    # Pages of 500 and 50: at least 2 requests a window; the failed try's requests (FAULTS) come on top.
    assert collected.counter("alerts", "requests") >= WINDOWS * 2
    assert collected.counter("activities", "requests") >= WINDOWS * 2 + len(FAULTS)
    assert collected.counter("activities", "throttled") == 1
    assert collected.counter("alerts", "throttled") == 0
    assert collected.counter("activities", "request_retries") >= 1 + MAX_RETRIES
    assert collected.counter("alerts", "request_retries") == 0


def test_each_window_reports_its_freshness_and_each_step_its_duration_in_milliseconds(collected: Collected) -> None:
    oldest = (collected.finished_at - collected.plan.start).total_seconds() * 1000
    for service in SERVICES_RUN:
        freshness = collected.statsd.timings(collected.name(service, "window_freshness"))
        assert len(freshness) == WINDOWS, service
        # Shipped after its window ended, and before the test saw the runs finish.
        assert all(0 < value < oldest for value in freshness), (service, freshness)
        for step in ("fetch_duration", "ship_duration"):
            durations = collected.statsd.timings(collected.name(service, step))
            assert len(durations) == WINDOWS and all(value >= 0 for value in durations), (service, step)
    assert len(collected.statsd.timings(collected.name("alerts", "flatten_duration"))) == WINDOWS
