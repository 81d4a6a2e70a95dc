"""The Compose deployment's CeleryExecutor cluster, for real on this machine: two workers, one of them killed.

The cluster is docker-compose.yaml's without Docker (:mod:`tests.harness.celery_cluster`): Airflow with the
CeleryExecutor and its settings from ``deploy/airflow-celery.env`` (Compose's ``env_file``), its metadata and Celery's
results in PostgreSQL, Redis as the broker (Debian's servers, started on 127.0.0.1), and two Celery workers, separate
process groups with their own Celery host names, homes and task-instance host names. Staging is Azure storage
(Azurite) through ``AIRFLOW__MDCA__STAGING_URL=abfs://…``, the setting Compose documents for workers on several
hosts: a window's fetch and ship may run on different workers, and do. Devo is the emulator's HTTP API, and the
worker is killed while it runs no ship, so exactly once is asserted strictly: neither transport's at-least-once edge
(a batch Devo stored, or the TLS relay stored part of, whose sender died before recording it, README "Delivery")
can arise. tests/e2e/test_crashes.py kills ships in flight.

The collector's own DAG file (``dags/mdca_collector.py``, configured through ``MDCA_COLLECTOR_CONFIG``) runs twelve
windows of activities and of alerts, then twelve more while one worker is SIGKILLed mid-run (its whole process group
and every task process it started: a host dying, not a stop). Airflow's own crash detection must then fail the dead
worker's running tasks (``[scheduler] task_instance_heartbeat_timeout``, 2.11: ``scheduler_zombie_task_threshold``,
lowered with the other timeouts of ``CRASH_DETECTION``) and retry them on the surviving worker. Either way Devo must
hold every record of the windows exactly once (alerts: their flattened events), under the services' own tags.

How each line runs the two rounds:

* Airflow 3: both are backfills (``POST /api/v2/backfills``, the UI's *Backfill*), run by the scheduler. The first
  covers the twelve windows that just ended, from ``historic_date_utc``; the second the twelve before them (a backfill
  may reach before the DAG's start): the scheduler's catch-up, which starts at ``historic_date_utc``, never creates
  a run of its own for them.
* Airflow 2.11: the first is ``airflow dags backfill`` (its tasks go through Celery to both workers); the second the
  scheduler's catch-up of the twelve windows after it, started by unpausing the DAGs. Not a second CLI backfill:
  2.11's scheduler detects dead tasks only among those it queued itself (``queued_by_job_id``), so a CLI backfill
  whose worker dies waits for that task forever, on any executor.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.services import SERVICES
from mdca_emulator import SnapshotConfig, TenantConfig
from mdca_emulator.process import EmulatorProcess
from tests.e2e.conftest import (
    DAGS_FOLDER,
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
from tests.e2e.test_backfill import edged_series
from tests.harness.airflow_stack import DagRun
from tests.harness.celery_cluster import CRASH_DETECTION, CeleryCluster, cluster_settings
from tests.harness.redis_server import RedisNotInstalled, RedisServer
from tests.integration.conftest import azurite
from tests.service_table import SNAPSHOTS

__all__ = ["azurite"]  # a fixture, imported for pytest

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("e2e-celery-cluster")]

WINDOWS = 12
# Long windows: the scheduler's next own run is a whole period away, so it starts none while the test runs.
PERIOD = timedelta(minutes=10)
RUN = ("activities", "alerts")
MAX_ACTIVE_RUNS = 4
DAG_IDS = tuple(f"mdca_{service}" for service in RUN)
WORKERS = ("worker-a", "worker-b")
SURVIVOR, VICTIM = WORKERS
# Tasks whose death the test can account for exactly: a ship killed after Devo stored a batch and before the ledger
# recorded it sends that batch again (the at-least-once edge of either transport), so the victim is killed while it
# runs only tasks of the window's other steps.
KILLABLE = frozenset({"fetch", "flatten"})
# How long each round may take before the test fails (here one and a half to four and a half minutes, on two cores
# that other test runs shared).
ROUND_TIMEOUT = 480.0


@dataclass(frozen=True)
class TaskTry:
    """A task instance (or one of its earlier tries), as the metadata database holds it."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    state: str | None
    hostname: str
    start: datetime | None = None
    end: datetime | None = None


class MetadataDb:
    """Reads of Airflow's metadata database (PostgreSQL) that the REST API of both lines does not offer alike."""

    def __init__(self, postgres: PostgresServer, database: str) -> None:
        self.postgres, self.database = postgres, database
        self.date = "logical_date" if AIRFLOW_V3 else "execution_date"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.postgres.connect(self.database)) as db:
            db.autocommit = True  # every read sees what is committed now
            with db.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())

    def runs(self, dag_id: str, plan: Plan) -> list[DagRun]:
        """The runs of ``dag_id`` whose windows lie in ``plan``, oldest first."""
        rows = self.rows(
            f"SELECT run_id, state, {self.date}, run_type FROM dag_run WHERE dag_id = %s "
            f"AND {self.date} >= %s AND {self.date} <= %s ORDER BY {self.date}",
            (dag_id, plan.start, plan.last_logical),
        )
        return [DagRun(dag_id, run_id, state, date, run_type) for run_id, state, date, run_type in rows]

    def task_instances(self, plan: Plan) -> list[TaskTry]:
        """The current try of every task instance of the plan's runs."""
        return self._tries("task_instance", plan)

    def earlier_tries(self, plan: Plan) -> list[TaskTry]:
        """The tries before the current one (Airflow archives a try when it retries the task)."""
        return self._tries("task_instance_history", plan)

    def _tries(self, table: str, plan: Plan) -> list[TaskTry]:
        rows = self.rows(
            "SELECT t.dag_id, t.run_id, t.task_id, t.try_number, t.state, coalesce(t.hostname, ''), t.start_date, "
            f"t.end_date FROM {table} t "
            f"JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id WHERE t.dag_id = ANY(%s) "
            f"AND r.{self.date} >= %s AND r.{self.date} <= %s",
            (list(DAG_IDS), plan.start, plan.last_logical),
        )
        return [TaskTry(*row) for row in rows]

    def heartbeat_timeouts(self) -> list[tuple[str, str, str]]:
        """``(dag_id, run_id, task_id)`` of every task the scheduler failed for want of a heartbeat (its event log)."""
        rows = self.rows(
            "SELECT dag_id, run_id, task_id FROM log WHERE event = 'heartbeat timeout' AND dag_id = ANY(%s)",
            (list(DAG_IDS),),
        )
        return [(dag_id, run_id, task_id) for dag_id, run_id, task_id in rows]


@dataclass
class Cluster:
    cluster: CeleryCluster
    db: MetadataDb
    emulator: EmulatorProcess
    tenant: TenantConfig
    devo: DevoAdmin
    first: Plan
    second: Plan


def plans() -> tuple[Plan, Plan, datetime]:
    """The two rounds' windows and ``historic_date_utc`` (see the module's docstring for why in this order)."""
    recent = recent_plan(PERIOD, WINDOWS)
    before = Plan(recent.start - PERIOD * WINDOWS, PERIOD, WINDOWS)
    if AIRFLOW_V3:
        return recent, before, recent.start
    return before, recent, before.start


@pytest.fixture(scope="module")
def cluster(
    postgres: PostgresServer,
    azurite: Any,
    start_emulator: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The cluster, the emulators (MDCA and Entra ID, Devo's HTTP API) and Azurite, all on 127.0.0.1."""
    try:
        redis = RedisServer(log=tmp_path_factory.mktemp("redis") / "redis.log")
    except RedisNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)  # never skipped: `make test` installs it (make redis-server)
    redis.start()
    stack: CeleryCluster | None = None
    try:
        first, second, historic = plans()
        whole = Plan(min(first.start, second.start), PERIOD, 2 * WINDOWS)
        tenant = TenantConfig(
            "tenant-e2e-celery",
            seed=11,
            services={
                "activities": edged_series(whole, 1200, (1, 2, 5)),
                "alerts": edged_series(whole, 96, (1, 2)),
                **{name: SnapshotConfig(0) for name in SNAPSHOTS},
            },
            requests_per_minute=None,
            # Exact counts per window, records on the edges: each stored the instant it happens (test_backfill's).
            time_model="instant",
        )
        emulator = start_emulator(tenant)
        config = write_collector_config(
            tmp_path_factory.mktemp("collector") / "collector.yaml",
            Plan(historic, PERIOD, WINDOWS),
            {service: {"max_active_runs": MAX_ACTIVE_RUNS} for service in RUN},
        )
        devo = emulator.info["devo"]
        devo_conn = {
            "conn_type": "devo",
            "host": devo["http_url"],
            "password": devo["token"],
            "extra": {"transport": "http", "domain": devo["domain"], "verify": devo["ca_bundle"]},
        }
        # Paced at one request a second (MDCA allows 30 a minute): a fetch then runs long enough to be killed mid-run
        # (a fetch at full speed took under a second, and a window's fetch and flatten are the only killable tasks).
        mdca = emulator.connection(requests_per_minute=60, backoff_base=0.1, backoff_max=1, retry_after_default=1)
        staging = {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string()}}
        env = {
            "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(mdca),
            "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(devo_conn),
            # Compose's documented staging for workers on several hosts: an object store every worker reaches.
            "AIRFLOW_CONN_MDCA_STAGING": json.dumps(staging),
            "AIRFLOW__MDCA__STAGING_URL": "abfs://mdca_staging@mdca-staging/collector",
            "MDCA_COLLECTOR_CONFIG": str(config),
        }
        database = "airflow"  # Compose's name: its URLs are used as they are, addresses and password aside
        postgres.create_database(database)
        settings = cluster_settings(
            {"redis": f"127.0.0.1:{redis.port}", "postgres": f"127.0.0.1:{postgres.port}"},
            {"POSTGRES_PASSWORD": postgres.password},
        )
        stack = CeleryCluster(tmp_path_factory.mktemp("airflow-home"), DAGS_FOLDER, env, settings=settings)
        stack.start()
        yield Cluster(stack, MetadataDb(postgres, database), emulator, tenant, DevoAdmin(devo), first, second)
    finally:
        if stack is not None:
            stack.stop()
            assert not stack.leftover_pids(), "the cluster left processes behind"
        redis.stop()


# -- the rounds ----------------------------------------------------------------------------------------------------


def wait_for_runs(env: Cluster, plan: Plan, timeout: float = ROUND_TIMEOUT) -> dict[str, list[DagRun]]:
    """Wait until every window of ``plan`` has a finished run of each DAG; the runs. AssertionError on timeout,
    StackError when a component or a worker (but the one killed) exited."""
    deadline = time.monotonic() + timeout
    while True:
        env.cluster.check_alive()
        runs = {dag_id: env.db.runs(dag_id, plan) for dag_id in DAG_IDS}
        if all(len(found) == WINDOWS and all(run.finished for run in found) for found in runs.values()):
            return runs
        if time.monotonic() > deadline:
            states = {dag_id: Counter(run.state for run in found) for dag_id, found in runs.items()}
            raise AssertionError(f"runs of {plan.start}..{plan.end} not finished after {timeout:.0f}s: {states}")
        time.sleep(1)


def start_round(env: Cluster, plan: Plan, *, first: bool) -> None:
    """Start the windows of ``plan`` on this line (see the module's docstring); returns at once except 2.11's CLI."""
    stack = env.cluster
    if stack.v3:
        stack.wait_for_dags(DAG_IDS)
        for dag_id in DAG_IDS:
            complete_backfills(env, dag_id)
            # The DAGs' own max_active_runs (a backfill's default is 10): the first windows' fetches, which the pool
            # runs one at a time, start while the later windows wait, rather than after every window's first task.
            stack.create_backfill(dag_id, plan.start, plan.last_logical, max_active_runs=MAX_ACTIVE_RUNS)
        if first:
            stack.unpause(*DAG_IDS)  # created while paused: the scheduler then finds every window's run there
    elif first:
        # One after the other: 2.11's backfills each check the pool's free slots before queuing, so two at once
        # could both take the pool's one slot. The DAGs stay paused: the scheduler starts no run of its own.
        for dag_id in DAG_IDS:
            stack.backfill(dag_id, plan.start, plan.last_logical, timeout=ROUND_TIMEOUT)
    else:
        # The scheduler catches up every window since the first round's. Both DAGs in one command (each costs an
        # interpreter loading Airflow).
        stack.cli("dags", "unpause", "--treat-dag-id-as-regex", "--yes", "^(" + "|".join(DAG_IDS) + ")$")


def complete_backfills(env: Cluster, dag_id: str) -> None:
    """Complete the DAG's finished backfill, so that it takes the next one (Airflow 3 allows one at a time).

    The scheduler marks a backfill completed up to 30 s after its last run; cancelling one whose runs are all
    finished (the UI's *Cancel*) completes it at once and changes nothing else: it would fail only queued runs.
    """
    for backfill in env.cluster.api("GET", "/api/v2/backfills", params={"dag_id": dag_id})["backfills"]:
        if backfill.get("completed_at") is None:
            runs = env.db.rows(
                "SELECT r.state FROM dag_run r JOIN backfill_dag_run b ON b.dag_run_id = r.id WHERE b.backfill_id = %s",
                (backfill["id"],),
            )
            assert runs and all(state in ("success", "failed") for (state,) in runs), f"backfill {backfill} runs"
            env.cluster.api("PUT", f"/api/v2/backfills/{backfill['id']}/cancel")


@dataclass(frozen=True)
class Kill:
    """What was running on the victim when it was killed, and its processes."""

    running: tuple[TaskTry, ...]
    pids: tuple[int, ...]
    seconds_in: float


def kill_mid_run(env: Cluster, plan: Plan, began: float, timeout: float = 180.0) -> Kill:
    """SIGKILL the victim mid-run, while it runs tasks of the round, none of them a ship; what it was running.

    Mid-run: some windows of the round are delivered already. Waits for a moment when the victim runs a fetch or
    flatten (the steps that stage data), or failing that, after half the timeout, any task but a ship.
    AssertionError if the round ends first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tries = env.db.task_instances(plan)
        # Running for a second at least: a task seen in its last instant may finish before the kill lands.
        settled = datetime.now(timezone.utc) - timedelta(seconds=1)
        running = tuple(
            t for t in tries if t.state == "running" and t.hostname == VICTIM and t.start and t.start <= settled
        )
        tasks = {t.task_id for t in running}
        delivered = sum(t.task_id == "ship" and t.state == "success" for t in tries)
        patient = time.monotonic() < deadline - timeout / 2
        if running and delivered >= 2 and tasks <= KILLABLE and (tasks & {"fetch", "flatten"} or not patient):
            pids = env.cluster.kill_worker(VICTIM)
            return Kill(running, tuple(pids), time.monotonic() - began)  # seconds into the round
        if tries and all(t.state in ("success", "failed", "upstream_failed", "skipped") for t in tries):
            break
        time.sleep(0.2)
    raise AssertionError(f"{VICTIM} never ran a task other than ship while the round ran (killed nothing)")


# -- the checks ----------------------------------------------------------------------------------------------------


def run_problems(env: Cluster, runs: dict[str, list[DagRun]], plan: Plan, run_type: str) -> list[str]:
    """Failed or missing runs, with the failed tasks' logs."""
    problems = []
    starts = [plan.start + plan.period * k for k in range(WINDOWS)]
    for dag_id, found in runs.items():
        if [run.logical_date for run in found] != starts:
            problems.append(f"{dag_id}: not one run per window: {found}")
        bad = [run for run in found if run.state != "success" or run.run_type != run_type]
        if bad:
            problems.append(f"{dag_id}: runs not all successful {run_type} runs: {bad}")
            problems.append(env.cluster.failure_report(dag_id, bad))
    return problems


def delivery_problems(env: Cluster, plans: Sequence[Plan]) -> list[str]:
    """Devo against the emulator's truth for the windows of ``plans``: every record once, under its tag, nothing else.

    Activities by ``_id``; alerts as the flattened events of exactly those windows' alerts (canonical JSON, counted).
    """
    problems = []
    windows = [(ms(plan.start), ms(plan.end)) for plan in plans]
    activities = {i for start, end in windows for i in env.emulator.truth("activities", start, end)}
    problem = exactly_once_report(activities, env.devo.ids(SERVICES["activities"].devo_table))
    if problem:
        problems.append(f"activities: {problem}")

    expected: Counter[str] = Counter()
    alerts: set[str] = set()
    for start, end in windows:
        ids = set(env.emulator.truth("alerts", start, end))
        alerts |= ids
        expected += expected_alert_events(env.tenant, ids, start, end)
    assert sum(expected.values()) > len(alerts) > 0, "the alerts should flatten into more events than alerts"
    tag = SERVICES["alerts"].devo_table
    got = Counter(canonical(event) for event in env.devo.events(tag))
    missing, extra = expected - got, got - expected
    if missing or extra:
        problems.append(f"alerts: {sum(missing.values())} events missing, {sum(extra.values())} extra or doubled")

    tags = requests.get(f"{env.devo.url}/tags", verify=env.devo.verify, timeout=60).json()["tags"]
    wanted = {SERVICES[service].devo_table for service in RUN}
    if set(tags) != wanted:
        problems.append(f"Devo tags {sorted(tags)}, expected exactly {sorted(wanted)}")
    return problems


def spread_problems(tries: Sequence[TaskTry]) -> list[str]:
    """Whether both workers ran tasks, and some window's fetch and ship ran on different workers."""
    problems = []
    hosts = Counter(t.hostname for t in tries if t.state == "success")
    if set(hosts) != set(WORKERS):
        problems.append(f"tasks ran on {dict(hosts)}, not on both workers {WORKERS}")
    where = {(t.dag_id, t.run_id, t.task_id): t.hostname for t in tries}
    crossed = [
        key for key in {(t.dag_id, t.run_id) for t in tries} if where.get((*key, "fetch")) != where.get((*key, "ship"))
    ]
    if not crossed:
        problems.append("no window had its fetch and ship on different workers: staging was never shared")
    return problems


def pool_problems(tries: Sequence[TaskTry]) -> list[str]:
    """Whether the pool ``mdca_api`` (one slot: one tenant's request budget) held across workers: no two fetches, of
    any DAG on any worker, ran at the same time."""
    fetches = sorted((t for t in tries if t.task_id == "fetch" and t.start and t.end), key=lambda t: t.start)
    overlaps = [(a, b) for a, b in itertools.pairwise(fetches) if b.start < a.end]
    if len(fetches) != len(DAG_IDS) * WINDOWS:
        return [f"{len(fetches)} fetches with start and end, expected {len(DAG_IDS) * WINDOWS}"]
    return [f"fetches overlapped: {a} and {b}" for a, b in overlaps[:3]]


def recovery_problems(env: Cluster, kill: Kill) -> list[str]:
    """Every task the victim was running failed for want of a heartbeat, then succeeded on the survivor."""
    problems = []
    now = {(t.dag_id, t.run_id, t.task_id): t for t in env.db.task_instances(env.second)}
    earlier = {(t.dag_id, t.run_id, t.task_id, t.try_number): t for t in env.db.earlier_tries(env.second)}
    detected = set(env.db.heartbeat_timeouts())
    for killed in kill.running:
        key = (killed.dag_id, killed.run_id, killed.task_id)
        final = now[key]
        if (final.try_number, final.hostname, final.state) == (killed.try_number, VICTIM, "success"):
            # Seen running, it finished in the instant before the kill (a fetch takes under a second): not killed.
            print(f"{key}: finished on {VICTIM} just before the kill")
            continue
        if (final.state, final.hostname) != ("success", SURVIVOR) or final.try_number <= killed.try_number:
            problems.append(f"{key}: killed in try {killed.try_number}, now {final} (not retried on {SURVIVOR})")
        archived = earlier.get((*key, killed.try_number))
        if archived is None or archived.hostname != VICTIM or archived.state not in ("failed", "up_for_retry"):
            problems.append(f"{key}: the killed try {killed.try_number} is not recorded as failed on {VICTIM}")
        if key not in detected:
            problems.append(f"{key}: no heartbeat-timeout event in Airflow's log")
    return problems


@pytest.mark.timeout(1200)  # the cluster's start and two rounds; CI's budget is the suite's, not 600 s a test
def test_a_celery_cluster_delivers_every_record_once_even_when_a_worker_dies(cluster: Cluster) -> None:
    env = cluster
    began = time.monotonic()
    start_round(env, env.first, first=True)
    runs = wait_for_runs(env, env.first)
    first_round = time.monotonic() - began
    problems = run_problems(env, runs, env.first, "backfill")
    problems += delivery_problems(env, [env.first])
    problems += spread_problems(env.db.task_instances(env.first))
    problems += pool_problems(env.db.task_instances(env.first))
    assert not problems, "first round (both workers):\n" + "\n".join(problems)

    began = time.monotonic()
    start_round(env, env.second, first=False)
    kill = kill_mid_run(env, env.second, began)
    runs = wait_for_runs(env, env.second)
    second_round = time.monotonic() - began
    problems = run_problems(env, runs, env.second, "backfill" if AIRFLOW_V3 else "scheduled")
    problems += recovery_problems(env, kill)
    problems += delivery_problems(env, [env.first, env.second])
    after = Counter(t.hostname for t in env.db.task_instances(env.second) if t.state == "success")
    assert not problems, f"second round ({VICTIM} killed at {kill.seconds_in:.0f}s):\n" + "\n".join(problems)
    killed = ", ".join(f"{t.dag_id}.{t.task_id} try {t.try_number}" for t in kill.running)
    env.cluster.note(
        f"first round {first_round:.0f}s; second round {second_round:.0f}s, {VICTIM} killed at {kill.seconds_in:.0f}s "
        f"({len(kill.pids)} processes) running {killed}; second round's tasks by host: {dict(after)}; "
        f"crash detection: {CRASH_DETECTION}"
    )
    print(f"\nfirst round {first_round:.0f}s, second round {second_round:.0f}s; killed {VICTIM} running {killed}")
