"""MDCA's late world through a real Airflow 3 scheduler: consecutive scheduled windows, an outage, exactly once.

The collector's own DAG file runs activities, alerts and files in one-minute windows, live: the scheduler starts each
run when its window has passed, catchup included, on a LocalExecutor. The emulated tenant runs MDCA's time model with
its hours compressed into seconds (a day of MDCA time is a minute here, so "stored 72 hours late" is three minutes):
activities stored from a second to three minutes after they happen, files at the next scan of their app every 45 s,
alerts resolved 10 s to 2.5 min after they are raised. From the first window's end a minute and a half in, MDCA
answers every request with a 5xx for 45 s, longer than the connection's own retries; the runs caught in it fail, are
retried by Airflow and deliver when it is back. Then Devo must hold every record stored in the windows that ran
exactly once (late ones included), every alert once as raised and once more per resolution, and the test prints how
many records were lost, doubled and delivered late.

Airflow 3 only: Airflow 2.11's harness runs backfills in-process, without a live scheduler (its line keeps the
scheduled-DAG checks of test_dag_runs.py and test_backfill.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.e2e.conftest import DevoAdmin, ms
from tests.harness.airflow_stack import AirflowStack, DagRun
from tests.harness.late_world import alert_event_counts, alert_reads, stored_in
from tests.service_table import SNAPSHOTS

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("e2e-late-world"), pytest.mark.timeout(1200)]

PERIOD = timedelta(minutes=1)
SERVICES_RUN = ("activities", "alerts", "files")
LIVE = timedelta(minutes=4, seconds=30)  # how long the DAGs run live
OUTAGE_AT, OUTAGE_FOR = timedelta(minutes=1, seconds=30), timedelta(seconds=45)
MAX_EVENTS = 100
SECOND = 1_000


def late_tenant(history_ms: int) -> TenantConfig:
    """A tenant whose storage delays and changes are MDCA's, a day to the minute (72 h late is 3 minutes late)."""
    delays = [
        {"fraction": 0.90, "min_ms": 500, "max_ms": 2 * SECOND},
        {"fraction": 0.06, "min_ms": 2 * SECOND, "max_ms": 20 * SECOND},
        {"fraction": 0.03, "min_ms": 20 * SECOND, "max_ms": 90 * SECOND},
        {"fraction": 0.01, "min_ms": 90 * SECOND, "max_ms": 180 * SECOND},
    ]
    config = TenantConfig(
        "tenant-e2e-late",
        seed=11,
        services={
            "activities": TimeSeriesConfig(segments=[Rate(6_000, (1, 2, 1), history_ms)]),
            "alerts": TimeSeriesConfig(segments=[Rate(240, (1,), history_ms)]),
            "files": TimeSeriesConfig(segments=[Rate(600, (1, 1, 2), history_ms)]),
            **{name: SnapshotConfig(0) for name in SNAPSHOTS},
        },
        requests_per_minute=30,
    )
    return config.with_changes(
        {
            "activities": {"delays": delays},
            "files": {"scan_interval_ms": 45 * SECOND},
            "alerts": {
                "changes": {
                    "changed_fraction": 0.6,
                    "in_progress_fraction": 0.3,
                    "min_delay_ms": 10 * SECOND,
                    "max_delay_ms": 150 * SECOND,
                }
            },
        }
    )


def collector_config(path: Any, first_window: datetime) -> Any:
    """The collector's YAML: the three services in one-minute windows from ``first_window``, 5 s of lag."""
    config = {
        "defaults": {
            "enabled": False,
            "historic_date_utc": first_window.isoformat().replace("+00:00", "Z"),
            "period": int(PERIOD.total_seconds()),
            "lag": 5,
            "retries": 8,
            "retry_delay": 10,
            "max_active_runs": 1,
        },
        "services": {name: {"enabled": True} for name in SERVICES_RUN},
    }
    config["services"]["alerts"]["max_events_per_alert"] = MAX_EVENTS
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class LiveRun:
    tenant: TenantConfig
    emulator: EmulatorProcess
    stack: AirflowStack
    runs: dict[str, list[DagRun]]
    outage: tuple[float, float]


@pytest.fixture(scope="module")
def live(start_emulator: Any, start_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """The three DAGs scheduled live for six minutes through an MDCA outage, then paused and settled."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    tenant = late_tenant(ms(now - timedelta(days=1)))
    emulator = start_emulator(tenant)
    # The connection's own retries are short, so that a minute's outage outlasts them: Airflow's task retries
    # (every 10 s) carry each window through it, as they would a real one.
    mdca = emulator.connection(max_retries=2, backoff_base=1, backoff_max=2, retry_after_default=2)
    config = collector_config(tmp_path_factory.mktemp("collector") / "collector.yaml", now - 2 * PERIOD)
    env = {
        "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(mdca),
        "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(emulator.devo_connection()),
        "MDCA_COLLECTOR_CONFIG": str(config),
    }
    stack = start_stack(env, parallelism=4)
    dag_ids = [f"mdca_{name}" for name in SERVICES_RUN]
    stack.wait_for_dags(dag_ids)
    stack.unpause(*dag_ids)
    began = time.monotonic()
    outage = mdca_outage(emulator, tenant, began + OUTAGE_AT.total_seconds())
    time.sleep(max(0.0, max(began + LIVE.total_seconds(), outage[1] + 2 * PERIOD.total_seconds()) - time.monotonic()))
    runs = quiet_and_paused(stack, dag_ids)
    yield LiveRun(tenant, emulator, stack, runs, outage)
    stack.stop()


def mdca_outage(emulator: EmulatorProcess, tenant: TenantConfig, not_before: float) -> tuple[float, float]:
    """MDCA answering every request with a 5xx for OUTAGE_FOR, from the first window's end after ``not_before``.

    The runs of a window start 5 s (its lag) after it ends and take seconds, so the outage starts on a minute to
    catch them, rather than in the idle part of a minute where it would reach nothing; it lasts until it has
    answered at least one request (the test asserts so), at most two windows more.
    """
    start = max(not_before, time.monotonic())
    wall_clock_at_start = time.time() + (start - time.monotonic())
    start += -wall_clock_at_start % PERIOD.total_seconds()  # on to the next window's end
    time.sleep(max(0.0, start - time.monotonic()))
    emulator.admin("PATCH", f"tenants/{tenant.tenant_id}", {"error_rate": 1.0})
    began = time.monotonic()
    time.sleep(OUTAGE_FOR.total_seconds())
    deadline = began + OUTAGE_FOR.total_seconds() + 2 * PERIOD.total_seconds()
    while faults_injected(emulator, tenant) == 0 and time.monotonic() < deadline:
        time.sleep(1)
    emulator.admin("PATCH", f"tenants/{tenant.tenant_id}", {"error_rate": 0.0})
    return began, time.monotonic()


def faults_injected(emulator: EmulatorProcess, tenant: TenantConfig) -> int:
    return int(emulator.admin("GET", f"tenants/{tenant.tenant_id}/stats")["faults_injected"])


def quiet_and_paused(stack: AirflowStack, dag_ids: list[str], timeout: float = 420.0) -> dict[str, list[DagRun]]:
    """Every run of the DAGs, paused at a moment when none is in flight (a paused DAG's running run would stall).

    Windows end on the minute for all three DAGs, so they run together and are all finished for a while before the
    next window ends; the DAGs are paused in such a moment, and unpaused again if a run slipped in meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(run.finished for dag_id in dag_ids for run in stack.dag_runs(dag_id)):
            stack.pause(*dag_ids)
            runs = {dag_id: stack.dag_runs(dag_id) for dag_id in dag_ids}
            if all(run.finished for dag_runs in runs.values() for run in dag_runs):
                return runs
            stack.unpause(*dag_ids)
        time.sleep(2)
    raise AssertionError(f"the DAGs never had all their runs finished at once within {timeout:.0f} s")


def windows_of(runs: list[DagRun]) -> list[tuple[int, int]]:
    return [(ms(run.logical_date), ms(run.logical_date + PERIOD)) for run in runs if run.logical_date]


def report(name: str, expected: Counter[str], delivered: Counter[str]) -> tuple[int, int, int]:
    lost = sum((expected - delivered).values())
    doubled = sum((delivered - expected).values())
    unexpected = sum(n for key, n in delivered.items() if key not in expected)
    print(
        f"{name}: {sum(expected.values())} expected, {sum(delivered.values())} in Devo, {lost} lost, {doubled} doubled"
    )
    return lost, doubled, unexpected


if AIRFLOW_V3:

    def test_scheduled_windows_through_an_outage_deliver_every_late_record_once(live: LiveRun) -> None:
        devo = DevoAdmin(live.emulator.info["devo"])
        failures = "\n".join(
            live.stack.failure_report(dag_id, [r for r in runs if r.state != "success"])
            for dag_id, runs in live.runs.items()
            if any(r.state != "success" for r in runs)
        )
        assert not failures, f"runs failed and were not carried through the outage:\n{failures}"
        assert all(len(runs) >= 6 for runs in live.runs.values()), {d: len(r) for d, r in live.runs.items()}
        problems = []
        for service in ("activities", "files"):
            windows = windows_of(live.runs[f"mdca_{service}"])
            expected = stored_in(live.emulator, service, windows)
            delivered = Counter(devo.ids(SERVICES[service].devo_table))
            if any(report(service, expected, delivered)):
                problems.append(service)
        windows = windows_of(live.runs["mdca_alerts"])
        reads = alert_reads(live.emulator, windows)
        expected = alert_event_counts(live.tenant, reads, windows, MAX_EVENTS)
        if any(report("alerts (events by alert)", expected, Counter(devo.ids(SERVICES["alerts"].devo_table)))):
            problems.append("alerts")
        activities = devo.events(SERVICES["activities"].devo_table)
        late_minutes = sum(1 for e in activities if e["created"] - e["timestamp"] > 60 * SECOND)
        print(f"activities delivered late: {late_minutes} of {len(activities)} stored over a minute (an MDCA day) late")
        faults = faults_injected(live.emulator, live.tenant)
        print(f"MDCA answered {faults} requests with a 5xx during the outage")
        assert faults > 0, "the outage reached no request: it was not exercised"
        assert not problems, f"not exactly once: {problems} (see the printed counts)"
        assert late_minutes > 0, "no record stored a day (a minute here) late reached Devo: the late world was not run"
        resolved_again = sum(1 for n in reads.values() if n > 1)
        assert resolved_again > 0, "no alert was resolved in a later window: changes were not exercised"
