"""Backfill of the collector's own DAGs (``dags/mdca_collector.py``) through a real Airflow, against the emulators.

Six adjacent windows of activities and of alerts, with records clustered on every window edge (the last millisecond
of a window, the first of the next) and records just outside the range on both sides. Airflow 3 backfills with
``airflow backfill create`` (scheduler, dag-processor, triggerer and api-server running, LocalExecutor);
Airflow 2.11 with ``airflow dags backfill -s … -e …`` in-process. Either way the Devo emulator must then hold every
record of the range exactly once (alerts: the flattened events of exactly the range's alerts) and nothing else.

Each line runs it twice: with Airflow's metadata in SQLite (the embedded default, the demo's) and in PostgreSQL
(Debian's server, started by the test: ``tests/e2e/postgres.py``), as production runs it. On Airflow 3 and
PostgreSQL the backfill is then operated as a SOC engineer would in the UI, through the scheduler: a delivered
window cleared (*Clear Run*) runs again and delivers nothing twice, and another re-run with ``reship: true`` (a
backfill of that window reprocessing completed runs, with the run conf) delivers its window once more.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.e2e.conftest import (
    DevoAdmin,
    Plan,
    canonical,
    exactly_once_report,
    expected_alert_events,
    ms,
    recent_plan,
    write_collector_config,
)
from tests.e2e.postgres import PostgresServer
from tests.harness.airflow_stack import AirflowStack, DagRun
from tests.service_table import SNAPSHOTS

pytestmark = [pytest.mark.airflow]

WINDOWS = 6
# Each database its own xdist group: the two backfills may run side by side on two workers.
DATABASES = [
    pytest.param(name, marks=pytest.mark.xdist_group(f"e2e-backfill-{name}")) for name in ("sqlite", "postgresql")
]
# The clear-and-rerun and reship checks run on one variant, enough for what they prove: PostgreSQL, as production.
RERUN_ON = "postgresql"
CLEARED, RESHIPPED = 1, 4  # window indexes: a window of alerts cleared, one of activities reshipped
# Long windows: the next one ends a whole period after the backfilled range, so the scheduler (catchup is on)
# starts no run of its own while the test runs. The data, not the clock, sets the work: ~500 activities a window.
PERIOD = timedelta(minutes=10)
BACKFILLED = ("activities", "alerts")
COMMAND = "airflow backfill create" if AIRFLOW_V3 else "airflow dags backfill"


def edged_series(plan: Plan, count: int, clusters: tuple[int, ...]) -> TimeSeriesConfig:
    """``count`` records over the range in same-millisecond clusters, plus clusters on every window edge.

    On each boundary: 3 records in the last millisecond of the window before it and 4 in its first millisecond. The
    first range boundary's "before" records and the last boundary's "at" records lie outside the range; so do 20
    records in the minute before it and 20 in the minute after it.
    """
    start, end = ms(plan.start), ms(plan.end)
    segments = [Segment(start - 60_000, start, 20, (1, 3)), Segment(start, end, count, clusters)]
    for boundary in plan.boundaries_ms():
        segments += [Segment(boundary - 1, boundary, 3, (3,)), Segment(boundary, boundary + 1, 4, (4,))]
    segments.append(Segment(end + 1, end + 60_000, 20, (2,)))
    return TimeSeriesConfig(segments=segments)


@dataclass
class Backfilled:
    database: str
    plan: Plan
    tenant: TenantConfig
    emulator: EmulatorProcess
    stack: AirflowStack
    devo: DevoAdmin
    runs: dict[str, list[DagRun]]
    elapsed: float

    def failures(self) -> str:
        return "\n".join(self.stack.failure_report(dag_id, runs) for dag_id, runs in self.runs.items()).strip()


@pytest.fixture(scope="module", params=DATABASES)
def backfilled(
    request: pytest.FixtureRequest, start_emulator: Any, start_stack: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backfilled]:
    """Backfill six windows of activities and alerts through the running Airflow line, with its metadata in the
    database of the parameter; the outcome to check. Its stack and emulator stop once its tests are done.
    """
    database: str = request.param
    sql_alchemy_conn = None  # SQLite in the stack's home
    if database == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        sql_alchemy_conn = postgres.create_database("airflow_backfill")
    plan = recent_plan(PERIOD, WINDOWS)
    tenant = TenantConfig(
        "tenant-e2e-backfill",
        seed=7,
        services={
            "activities": edged_series(plan, 3000, (1, 2, 7)),
            "alerts": edged_series(plan, 120, (1, 2)),
            **{name: SnapshotConfig(0) for name in SNAPSHOTS},
        },
        requests_per_minute=None,
        # Records on exact instants (edges, clusters) and exact counts per window: each stored the instant it happens.
        # MDCA's late world through a real scheduler is test_late_world.py's.
        time_model="instant",
    )
    emulator = start_emulator(tenant)
    config = write_collector_config(
        tmp_path_factory.mktemp("collector") / "collector.yaml",
        plan,
        # Small pages: several pages per window, so page boundaries fall inside windows as well as on their edges.
        {"activities": {"page_size": 500}, "alerts": {"page_size": 7}},
    )
    mdca = emulator.connection(requests_per_minute=100_000, backoff_base=0.1, backoff_max=1, retry_after_default=1)
    env = {
        "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(mdca),
        "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(emulator.devo_connection()),
        "MDCA_COLLECTOR_CONFIG": str(config),
    }
    began = time.monotonic()
    # 2.11: DebugExecutor runs each task inside the backfill process; SequentialExecutor would start an interpreter
    # per task (~7 s each here, some 7 minutes for these 54 tasks) for the same task code and database. So does
    # LocalExecutor, which 2.11 allows on PostgreSQL: the same cost, in parallel on a machine of two cores.
    stack = start_stack(env, executor=None if AIRFLOW_V3 else "DebugExecutor", sql_alchemy_conn=sql_alchemy_conn)
    dag_ids = [f"mdca_{service}" for service in BACKFILLED]
    runs = stack.backfill_all(dag_ids, plan.start, plan.last_logical, expected=WINDOWS)
    devo = DevoAdmin(emulator.info["devo"])
    yield Backfilled(database, plan, tenant, emulator, stack, devo, runs, time.monotonic() - began)
    stack.stop()  # not at the module's end: the other database's stack may run next on this worker
    emulator.stop()


def check_backfill(backfilled: Backfilled) -> list[str]:
    """Every problem with the outcome: failed or missing runs, records missing, doubled or outside the range."""
    problems = []
    failures = backfilled.failures()
    if failures:
        problems.append(f"{COMMAND} left failed runs:\n{failures}")
    plan = backfilled.plan
    for dag_id, runs in backfilled.runs.items():
        starts = [run.logical_date for run in runs]
        if starts != [plan.start + plan.period * k for k in range(WINDOWS)]:
            problems.append(f"{dag_id}: not one run per window: {runs}")
        if not all(run.state == "success" and run.run_type == "backfill" for run in runs):
            problems.append(f"{dag_id}: runs not all successful backfill runs: {runs}")

    start_ms, end_ms = ms(plan.start), ms(plan.end)
    truth = set(backfilled.emulator.truth("activities", start_ms, end_ms))
    assert len(truth) == 3000 + WINDOWS * (3 + 4), "the emulator's data is not what the test planned"
    problem = exactly_once_report(truth, backfilled.devo.ids(SERVICES["activities"].devo_table))
    if problem:
        problems.append(f"activities: {problem}")

    problem = alert_events_report(backfilled)
    if problem:
        problems.append(f"alerts: {problem}")
    return problems


def alert_events_report(backfilled: Backfilled) -> str:
    """Empty when Devo holds the flattened events of exactly the range's alerts, each once; else what is wrong."""
    start_ms, end_ms = ms(backfilled.plan.start), ms(backfilled.plan.end)
    alerts = set(backfilled.emulator.truth("alerts", start_ms, end_ms))
    expected = expected_alert_events(backfilled.tenant, alerts, start_ms, end_ms)
    assert sum(expected.values()) > len(alerts), "the alerts should flatten into more events than alerts"
    tag = SERVICES["alerts"].devo_table
    if set(backfilled.devo.ids(tag)) != alerts:
        return "the events in Devo are not of exactly the range's alerts"
    got = Counter(canonical(event) for event in backfilled.devo.events(tag))
    missing, extra = expected - got, got - expected
    if missing or extra:
        return (
            f"{sum(missing.values())} events missing, {sum(extra.values())} extra or doubled; "
            f"e.g. missing {list(missing)[:1]}, extra {list(extra)[:1]}"
        )
    return ""


def rerun_and_reship(backfilled: Backfilled) -> list[str]:
    """Re-run delivered windows through the scheduler as the UI does, after the backfill; every problem found.

    A window of alerts is cleared (*Clear Run*: ``POST …/dagRuns/{run_id}/clear``): it runs again, flatten
    included, and delivers nothing twice. A window of activities is backfilled again with the run conf
    ``{"reship": true}``, reprocessing completed runs (the UI's *Backfill* dialog, ``POST /api/v2/backfills``): it
    delivers the window once more. (A manual trigger cannot re-run a past window: the logical date that gives its
    interval is the next window's, taken.) The two run side by side; both runs must succeed with their ``ship`` run
    again.
    """
    stack, plan = backfilled.stack, backfilled.plan
    cleared = backfilled.runs["mdca_alerts"][CLEARED]
    reshipped = backfilled.runs["mdca_activities"][RESHIPPED]
    tries = {run.dag_id: stack.task_states(run)["ship"][1] for run in (cleared, reshipped)}

    problems = []
    began = time.monotonic()
    state = stack.clear_run(cleared)
    if state != "queued":
        problems.append(f"{cleared.run_id}: {state} after Clear Run, not queued")
    # The scheduler marks a backfill completed up to 30 s after its last run; until then the DAG takes no other.
    stack.wait_for_backfills(reshipped.dag_id)
    assert reshipped.logical_date is not None
    stack.create_backfill(
        reshipped.dag_id,
        reshipped.logical_date,
        reshipped.logical_date,
        conf={"reship": True},
        reprocess_behavior="completed",
    )
    for run in (cleared, reshipped):
        after = stack.wait_for_runs(run.dag_id, plan.start, plan.last_logical, expected=WINDOWS, timeout=300)
        failures = stack.failure_report(run.dag_id, after)
        if failures:
            problems.append(f"the re-runs failed:\n{failures}")
        ship = stack.task_states(run)["ship"]
        if ship[1] <= tries[run.dag_id]:
            problems.append(f"{run.run_id}: ship did not run again (try {ship[1]}, before {tries[run.dag_id]})")
    stack.note(f"clear and reship: {time.monotonic() - began:.1f}s")

    problem = alert_events_report(backfilled)
    if problem:
        problems.append(f"alerts after {cleared.run_id} was cleared and ran again: {problem}")
    window = set(
        backfilled.emulator.truth("activities", ms(reshipped.logical_date), ms(reshipped.logical_date + plan.period))
    )
    truth = backfilled.emulator.truth("activities", ms(plan.start), ms(plan.end))
    expected = Counter({record_id: 2 if record_id in window else 1 for record_id in truth})
    delivered = Counter(backfilled.devo.ids(SERVICES["activities"].devo_table))
    if delivered != expected:
        problems.append(
            f"activities after {reshipped.run_id} re-ran with reship: {sum((expected - delivered).values())} "
            f"deliveries missing, {sum((delivered - expected).values())} extra (its window holds {len(window)} records)"
        )
    return problems


# One test per Airflow line and database, each defined only on its own line. One test, not one per check: pytest 9.2
# ignores the node id suffix that pytest-xdist 3.8 uses for ``xdist_group``, so tests of one group may land on two
# workers, and each would then run the whole backfill.
if AIRFLOW_V3:

    def test_backfill_create_delivers_every_record_of_six_windows_exactly_once(backfilled: Backfilled) -> None:
        problems = check_backfill(backfilled)
        assert not problems, "\n".join(problems)
        if backfilled.database == RERUN_ON:
            problems = rerun_and_reship(backfilled)
            assert not problems, "\n".join(problems)

else:

    def test_dags_backfill_delivers_every_record_of_six_windows_exactly_once(backfilled: Backfilled) -> None:
        problems = check_backfill(backfilled)
        assert not problems, "\n".join(problems)
