"""Crashes lose nothing: SIGKILL the collector's tasks, or Airflow's scheduler, in a real Airflow 3, then count Devo.

Harness, not provider: the end-to-end test (``tests/e2e/test_crashes.py``, scaled down: :data:`SMALL`) and a
fault-injection command at full size (:data:`FULL`) run these same cases, one function each, on one
:class:`CrashLab`: the emulators (MDCA, Entra ID, Devo's HTTP endpoint and TLS relay) in a child process and an
:class:`~tests.harness.airflow_stack.AirflowStack` (scheduler, dag-processor, triggerer, api-server, LocalExecutor)
running the collector's own DAG file, ``dags/mdca_collector.py``, configured through ``MDCA_COLLECTOR_CONFIG``.

Each case kills with SIGKILL, never a polite stop, and kills the way a machine or container that dies would:

=====================================  ===========================================================================
case (function)                        what is killed, and when
=====================================  ===========================================================================
``fetch`` (:func:`fetch_killed_mid_window`)
                                       activities' ``fetch`` while it pages through its window (the emulator counts
                                       the pages served; the MDCA connection paces the requests so it takes seconds)
``flatten`` (:func:`flatten_killed`)   alerts' ``flatten`` while its first part is half written (a temporary file in
                                       the window's ``flattened/`` stage, no manifest yet)
``ship-http`` (:func:`ship_killed_mid_batch_http`)
                                       entities' ``ship`` over Devo's HTTP API while a batch is in flight: Devo reads
                                       each request slowly, and the kill comes just after a batch was acknowledged
``ship-tls`` (:func:`ship_killed_mid_batch_tls`)
                                       subnets' ``ship`` over the TLS relay while a batch is half read by a slow relay
``scheduler`` (:func:`scheduler_killed_during_backfill`)
                                       the scheduler's process group (its LocalExecutor workers, which supervise the
                                       tasks) and the tasks it runs, during ``airflow backfill create`` of files; a new
                                       scheduler is started, as a restart policy would
=====================================  ===========================================================================

A task is found by its task instance's id, which Airflow 3 writes into the titles of its two processes: the
LocalExecutor worker that supervises it (``airflow worker -- LocalExecutor: <id>``, in the scheduler's process
group) and the task process itself (``airflow worker -- <id>``, a process group of its own). Both die, the
supervisor first, so nobody is left to report the task's end: the task instance stays ``running`` without
heartbeats until the scheduler's heartbeat-timeout detection fails it and schedules its retry (the ``heartbeat
timeout`` entry of Airflow's event log, which each task case requires). After the scheduler's crash the new
scheduler resets the tasks the dead one had queued or running once that one's job misses its heartbeats, and runs
them again. Nobody clears, marks or triggers anything: ``human_actions`` counts the entries of Airflow's audit log
made by a user after the kill, and must be 0.

Then Devo must hold every record of the case's windows exactly once. The one tolerated exception is the at-least-once
edge of a transport: a batch whose delivery the killed task never recorded (over TLS because the relay never
acknowledges, over HTTP because Devo stored the request whose answer the dead task never read) is sent again by the
retry, so its records arrive twice: at most one batch, a contiguous run of what was sent, counted apart
(``tls_edge_duplicates``, ``http_edge_duplicates``); anything beyond it is ``duplicated``, and must be 0 like ``lost``.

Airflow's detection is configured to notice a lost task in seconds rather than minutes: :data:`HEARTBEAT_SETTINGS`
names each setting the lab lowers, and why.

Linux only (processes are found in ``/proc``). Imports nothing from Airflow.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import yaml

from airflow_provider_mdca.pipeline import FETCHED, FLATTENED
from airflow_provider_mdca.services import SERVICES
from airflow_provider_mdca.staging import manifest_path, stage_dir, window_dir
from mdca_emulator import Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.harness.airflow_stack import AirflowStack, DagRun, StackError
from tests.harness.late_world import alert_event_counts

__all__ = [
    "CASES",
    "FULL",
    "HEARTBEAT_SETTINGS",
    "SMALL",
    "TASK_CASES",
    "CrashError",
    "CrashLab",
    "CrashResult",
    "Scale",
    "fetch_killed_mid_window",
    "flatten_killed",
    "format_table",
    "run_cases",
    "scheduler_killed_during_backfill",
    "ship_killed_mid_batch_http",
    "ship_killed_mid_batch_tls",
]

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"

#: What the lab lowers in Airflow's configuration, so that a lost task or scheduler is noticed in seconds:
HEARTBEAT_SETTINGS: dict[str, str] = {
    # [scheduler] task_instance_heartbeat_timeout (default 300 s): a running task whose supervisor has not
    # heartbeaten for this long is failed by the scheduler, and retried.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    # ... checked this often (default 10 s).
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    # [workers] min_heartbeat_interval (default 5 s): how often a task's supervisor heartbeats.
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    # [scheduler] scheduler_health_check_threshold (default 30 s): a scheduler silent for this long is dead, and
    # the tasks it had queued or running are reset by the scheduler that finds it so ...
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
    # ... which looks this often ([scheduler] orphaned_tasks_check_interval, default 300 s).
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}

# Audit-log events of a component starting: what a restart policy does after a crash, not a person.
_COMPONENT_STARTS = frozenset({"cli_scheduler", "cli_dag_processor", "cli_triggerer", "cli_api_server"})
# Windows long enough that no new one ends while the lab runs: only the planned windows ever run.
PERIOD = timedelta(hours=2)
_POLL = 0.05


class CrashError(RuntimeError):
    """A case could not be run as planned (the kill did not land where it should, the runs never healed...)."""


@dataclass(frozen=True)
class Scale:
    """How big each case is. The pytest test runs :data:`SMALL`, a fault-injection command :data:`FULL`."""

    #: Windows of each task case; the kill lands in the middle one.
    windows: int
    activities_per_window: int
    #: Activities per request (500 to 5,000): the pages the fetch case is killed among.
    activities_page_size: int
    #: The fetch case's MDCA connection paces its requests (the tenant's 30 a minute would take minutes).
    fetch_requests_per_minute: int
    alerts_per_window: int
    #: Entities (shipped over HTTP) and subnets (over TLS): each window ships the whole snapshot.
    snapshot_records: int
    #: The ship cases' Devo batches, in events.
    batch_events: int
    #: Devo's HTTP endpoint waits this long before reading each request, so that a batch is in flight a while.
    http_read_delay_s: float
    #: Devo's relay waits this long before each read (one TLS record, at most 16 KiB), so a batch is read slowly.
    relay_read_delay_s: float
    backfill_windows: int
    files_per_window: int
    #: How long the runs may take to heal before the case fails.
    heal_timeout_s: float = 240.0


SMALL = Scale(
    windows=1,
    activities_per_window=6_000,
    activities_page_size=500,
    fetch_requests_per_minute=120,
    alerts_per_window=20_000,
    snapshot_records=4_000,
    batch_events=400,
    http_read_delay_s=0.5,
    relay_read_delay_s=0.05,
    backfill_windows=2,
    files_per_window=3_000,
)

FULL = Scale(
    windows=3,
    activities_per_window=50_000,
    activities_page_size=5_000,
    fetch_requests_per_minute=30,
    alerts_per_window=50_000,
    snapshot_records=20_000,
    batch_events=2_000,
    http_read_delay_s=1.0,
    relay_read_delay_s=0.02,
    backfill_windows=6,
    files_per_window=5_000,
    heal_timeout_s=600.0,
)


@dataclass(frozen=True)
class CrashResult:
    """What one case measured. ``lost``, ``duplicated`` and ``human_actions`` must be 0."""

    case: str
    #: Windows (DAG runs) of the case; a snapshot service's window ships its whole snapshot.
    windows: int
    #: Records (flattened alerts: events) the windows hold, each due in Devo once.
    records: int
    lost: int
    #: Deliveries beyond the first, other than the transport's at-least-once edge below.
    duplicated: int
    #: Records delivered twice because the TLS relay had (part of) the batch the killed task never recorded.
    tls_edge_duplicates: int
    #: The same over HTTP: Devo stored the request whose answer the killed task never read.
    http_edge_duplicates: int
    #: Entries of Airflow's audit log made by a user after the kill (clear, mark, trigger, ...).
    human_actions: int
    #: From the kill to the moment the killed work's run (the scheduler case: the whole backfill) succeeded.
    seconds_to_heal: float
    #: What was killed, and how Airflow noticed.
    killed: str = ""
    detected: str = ""
    #: The largest delivery the edge may double: one batch (0 where the case kills no ship task).
    edge_allowance: int = 0
    #: SIGKILLs that landed (one per case), and the task tries Airflow started again because of them.
    faults: int = 1
    task_retries: int = 0
    #: The whole case, from unpausing its DAG (or creating its backfill) to counting Devo.
    wall_seconds: float | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the guarantee held: nothing lost or doubled beyond one edge batch, no human action, healed."""
        return not self.problems and not (self.lost or self.duplicated or self.human_actions)

    def failures(self) -> list[str]:
        """What broke the guarantee, in words (empty when :attr:`ok`)."""
        out = list(self.problems)
        for label in ("lost", "duplicated", "human_actions"):
            if getattr(self, label):
                out.append(f"{self.case}: {label} = {getattr(self, label)}")
        return out


def format_table(results: Sequence[CrashResult]) -> str:
    """One row per case, as ``make faults`` prints it (the fault matrix's table)."""
    from tests.harness.fault_matrix import as_fault_row
    from tests.harness.fault_matrix import format_table as fault_table

    return fault_table([as_fault_row(result) for result in results])


# -- the lab -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """``windows`` adjacent windows of :data:`PERIOD` from ``start``, all ended."""

    start: datetime
    windows: int

    def window(self, index: int) -> tuple[datetime, datetime]:
        begin = self.start + PERIOD * index
        return begin, begin + PERIOD

    @property
    def end(self) -> datetime:
        return self.start + PERIOD * self.windows

    @property
    def last_logical(self) -> datetime:
        return self.end - PERIOD


@dataclass(frozen=True)
class CaseSpec:
    """One case's DAG: its service, windows and transport."""

    case: str
    service: str
    plan: Plan
    #: How its DAG ships (the connections ``devo_default``, ``devo_http_batches`` or ``devo_tls_batches``).
    transport: str = "http"

    @property
    def dag_id(self) -> str:
        return f"mdca_{self.service}"

    @property
    def tag(self) -> str:
        return SERVICES[self.service].devo_table

    @property
    def kill_window(self) -> int:
        """The window (index) the kill lands in: the middle one."""
        return self.plan.windows // 2


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _recent_plan(windows: int) -> Plan:
    """Windows that ended a few seconds ago, on a whole second (the next one ends a :data:`PERIOD` from now)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return Plan(now - timedelta(seconds=5) - PERIOD * windows, windows)


class CrashLab:
    """The emulators and one Airflow 3 with the collector's DAG file, set up for every case; stopped on exit.

    Every case has its own DAG (one service each, see the module docstring), connections and Devo table, so the
    four task cases may run at once (:func:`run_cases`); the scheduler case runs alone.

    :param workdir: an empty folder for the emulators' state, the Airflow home, staging and the configuration.
    :param scale: the size of the cases.
    """

    def __init__(self, workdir: Path, scale: Scale = SMALL) -> None:
        self.workdir = Path(workdir)
        self.scale = scale
        self.staging = self.workdir / "staging"
        task_plan = _recent_plan(scale.windows)
        self.specs: dict[str, CaseSpec] = {
            "fetch": CaseSpec("fetch", "activities", task_plan),
            "flatten": CaseSpec("flatten", "alerts", task_plan),
            "ship-http": CaseSpec("ship-http", "entities", task_plan),
            "ship-tls": CaseSpec("ship-tls", "data_enrichment", task_plan, "tls"),
            "scheduler": CaseSpec("scheduler", "files", _recent_plan(scale.backfill_windows)),
        }
        self.tenant = self._tenant()
        self.emulator: EmulatorProcess | None = None
        self.stack: AirflowStack | None = None
        self._backfill_lock = threading.Lock()
        self._backfill_created = False

    # -- set-up ----------------------------------------------------------------------------------------------

    def _tenant(self) -> TenantConfig:
        scale, specs = self.scale, self.specs

        def series(spec: CaseSpec, per_window: int) -> TimeSeriesConfig:
            plan = spec.plan
            return TimeSeriesConfig(
                segments=[Segment(_ms(plan.start), _ms(plan.end), per_window * plan.windows, (1, 2, 3))]
            )

        return TenantConfig(
            "tenant-crashes",
            seed=15,
            services={
                "activities": series(specs["fetch"], scale.activities_per_window),
                "alerts": series(specs["flatten"], scale.alerts_per_window),
                "files": series(specs["scheduler"], scale.files_per_window),
                "entities": SnapshotConfig(scale.snapshot_records),
                "data_enrichment": SnapshotConfig(scale.snapshot_records),
            },
            requests_per_minute=None,  # the fetch case paces itself (its connection), the others run flat out
            time_model="instant",  # exact counts per window: every record stored the instant it happens
        )

    def _collector_config(self) -> Path:
        scale, specs = self.scale, self.specs
        services: dict[str, dict[str, Any]] = {
            spec.service: {"enabled": True, "historic_date_utc": _iso(spec.plan.start)} for spec in specs.values()
        }
        services["activities"].update(page_size=scale.activities_page_size, mdca_conn_id="mdca_paced")
        services["entities"]["devo_conn_id"] = "devo_http_batches"
        services["data_enrichment"]["devo_conn_id"] = "devo_tls_batches"
        services["files"]["devo_conn_id"] = "devo_http_batches"
        config = {
            "defaults": {
                "enabled": False,
                "period": int(PERIOD.total_seconds()),
                "lag": 0,
                "retries": 3,
                "retry_delay": 1,
                "max_retry_delay": 5,
                "max_active_runs": 1,
                "staging_url": self.staging.as_uri(),
            },
            "services": services,
        }
        path = self.workdir / "mdca_collector.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def _connections(self, emulator: EmulatorProcess) -> dict[str, str]:
        devo = emulator.info["devo"]
        quick: dict[str, Any] = {
            "requests_per_minute": 100_000,
            "backoff_base": 0.1,
            "backoff_max": 1,
            "retry_after_default": 1,
        }
        batches = {"batch_events": self.scale.batch_events, "backoff_base": 0.2, "backoff_max": 1}
        http = {
            "conn_type": "devo",
            "host": devo["http_url"],
            "password": devo["token"],
            "extra": {"transport": "http", "domain": devo["domain"], "verify": devo["ca_bundle"]},
        }
        tls = {
            "conn_type": "devo",
            "host": devo["relay_host"],
            "port": devo["relay_port"],
            "extra": {
                "transport": "tls",
                "cert": devo["client_cert"],
                "private_key": devo["client_key"],
                "chain": devo["ca_bundle"],
            },
        }
        connections: dict[str, Any] = {
            "mdca_default": emulator.connection(None, **quick),
            "mdca_paced": emulator.connection(
                None, **{**quick, "requests_per_minute": self.scale.fetch_requests_per_minute}
            ),
            "devo_default": http,
            "devo_http_batches": {**http, "extra": {**http["extra"], **batches}},
            "devo_tls_batches": {**tls, "extra": {**tls["extra"], **batches}},
        }
        return {f"AIRFLOW_CONN_{name.upper()}": json.dumps(value) for name, value in connections.items()}

    def start(self) -> CrashLab:
        """Start the emulators and Airflow, wait for every case's DAG; the DAGs stay paused until their case runs."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.emulator = EmulatorProcess(self.workdir / "emulator", tenants=[self.tenant.to_dict()]).start()
            self.devo_faults(http_read_delay_s=self.scale.http_read_delay_s, read_delay_s=self.scale.relay_read_delay_s)
            env = {
                **self._connections(self.emulator),
                "MDCA_COLLECTOR_CONFIG": str(self._collector_config()),
                **HEARTBEAT_SETTINGS,
            }
            # The four task cases run at once: a pool slot each, or the paced fetch would hold up the others.
            self.stack = AirflowStack(
                self.workdir / "airflow-home", DAGS_FOLDER, env, parallelism=6, pools={"mdca_api": 4}
            ).start()
            self.stack.wait_for_dags([spec.dag_id for spec in self.specs.values()])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Airflow (checking that no process is left) and the emulators."""
        try:
            if self.stack is not None:
                self.stack.stop()
        finally:
            if self.emulator is not None:
                self.emulator.stop()

    def __enter__(self) -> CrashLab:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the emulators ---------------------------------------------------------------------------------------

    @property
    def airflow(self) -> AirflowStack:
        if self.stack is None:
            raise CrashError("the lab is not started")
        return self.stack

    @property
    def mdca(self) -> EmulatorProcess:
        if self.emulator is None:
            raise CrashError("the lab is not started")
        return self.emulator

    def _devo(self, method: str, path: str, body: Any = None) -> Any:
        devo = self.mdca.info["devo"]
        response = requests.request(
            method, f"{devo['admin_url'].rstrip('/')}/{path}", json=body, verify=devo["ca_bundle"], timeout=120
        )
        response.raise_for_status()
        return response.json()

    def devo_faults(self, **knobs: Any) -> None:
        """Change the Devo emulators' fault knobs (``http_read_delay_s``, ``read_delay_s``, ...)."""
        self._devo("PATCH", "faults", knobs)

    def devo_count(self, tag: str) -> int:
        """Events Devo holds under ``tag``."""
        count: int = self._devo("GET", "tags").get("tags", {}).get(tag, 0)
        return count

    def devo_ids(self, tag: str) -> list[str]:
        """The ``_id`` of every event of ``tag``, in arrival order, duplicates kept."""
        ids: list[str] = self._devo("GET", f"tags/{tag}/ids?key=_id")["ids"]
        return ids

    def mdca_requests(self, service: str) -> int:
        """Requests the MDCA emulator answered for ``service`` so far."""
        stats = self.mdca.admin("GET", f"tenants/{self.tenant.tenant_id}/stats")
        return int(stats["requests"][service])

    def expected(self, spec: CaseSpec) -> Counter[str]:
        """How many times each ``_id`` is due in Devo for the case's windows (alerts: once per flattened event)."""
        windows = [spec.plan.window(k) for k in range(spec.plan.windows)]
        if spec.service in ("entities", "data_enrichment"):
            ids = self.mdca.truth(spec.service, 0, 1)  # a snapshot: the range is ignored
            return Counter({record_id: spec.plan.windows for record_id in ids})
        spans = [(_ms(start), _ms(end)) for start, end in windows]
        stored: Counter[str] = Counter()
        for start_ms, end_ms in spans:
            stored.update(self.mdca.truth(spec.service, start_ms, end_ms))
        if spec.service == "alerts":
            return alert_event_counts(self.tenant, stored, spans, max_events=1000)
        return stored

    # -- Airflow ---------------------------------------------------------------------------------------------

    def create_backfill(self) -> None:
        """``airflow backfill create`` over the scheduler case's windows, its DAG paused (once; thread-safe).

        One window at a time (a backfill runs up to ten at once by default): one ship in flight when the kill lands.
        :func:`run_cases` creates it while the task cases run; the scheduler case does when it was not.
        """
        spec = self.specs["scheduler"]
        with self._backfill_lock:
            if not self._backfill_created:
                self.airflow.backfill(spec.dag_id, spec.plan.start, spec.plan.last_logical, max_active_runs=1)
                self._backfill_created = True

    def task_instance(self, run: DagRun, task_id: str) -> dict[str, Any]:
        """The task instance of one run as the REST API shows it (its ``id`` names its processes)."""
        answer = self.airflow.api("GET", f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{task_id}")
        ti: dict[str, Any] = answer
        return ti

    def run_of(self, spec: CaseSpec, index: int) -> DagRun | None:
        """The run of window ``index`` of the case, once it exists."""
        start, _ = spec.plan.window(index)
        return next((run for run in self.airflow.dag_runs(spec.dag_id) if run.logical_date == start), None)

    def window_dir(self, spec: CaseSpec, index: int) -> Path:
        """The window's staging folder (``<staging>/<service>/<start>_<end>``)."""
        return window_dir(self.staging, spec.service, *spec.plan.window(index))

    def human_actions(self, spec: CaseSpec, since: datetime) -> list[dict[str, Any]]:
        """What people did to the case's DAG (or to Airflow as a whole) after ``since``, from Airflow's audit log.

        Every entry by a user (the UI's or REST API's ``admin``, a CLI's OS user) rather than by Airflow itself,
        except the start of a component (``cli_scheduler``...): a restart policy's job, not a person's. Entries
        about other DAGs (the other cases') do not count.
        """
        answer = self.airflow.api("GET", "/api/v2/eventLogs", params={"after": since.isoformat(), "limit": 1000})
        return [
            entry
            for entry in answer["event_logs"]
            if entry.get("owner") not in (None, "airflow")
            and entry.get("event") not in _COMPONENT_STARTS
            and entry.get("dag_id") in (None, spec.dag_id)
        ]

    def heartbeat_timeouts(self, spec: CaseSpec, task_id: str, run: DagRun) -> list[dict[str, Any]]:
        """The ``heartbeat timeout`` entries Airflow's scheduler logged for one task of one run."""
        params = {"dag_id": spec.dag_id, "task_id": task_id, "run_id": run.run_id, "event": "heartbeat timeout"}
        entries: list[dict[str, Any]] = self.airflow.api("GET", "/api/v2/eventLogs", params=params)["event_logs"]
        return entries


# -- processes -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One live process, from ``/proc``."""

    pid: int
    ppid: int
    pgid: int
    title: str
    #: Whether its environment carries the stack's marker (a process that retitled itself may have lost it).
    marked: bool


def _processes(marker: str) -> list[Proc]:
    needle = f"MDCA_AIRFLOW_STACK_ID={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z":
            found.append(Proc(int(entry.name), int(fields[1]), int(fields[2]), title, needle in environ.split(b"\0")))
    return found


@dataclass(frozen=True)
class SchedulerFamily:
    """The scheduler, its process group (it and its LocalExecutor workers, each supervising a task) and the task
    processes those run, each in a group of its own.

    Found from the scheduler (the stack's ``airflow scheduler``, which keeps its environment) rather than by the
    stack's marker: setproctitle writes a worker's title over its environment.
    """

    scheduler: Proc
    group: list[Proc]
    tasks: list[Proc]

    @classmethod
    def of(cls, stack: AirflowStack) -> SchedulerFamily:
        processes = _processes(stack.marker)
        scheduler = next(
            (p for p in processes if p.marked and p.pid == p.pgid and p.title.endswith("airflow scheduler")), None
        )
        if scheduler is None:
            raise CrashError("the stack's scheduler is not running")
        group = [p for p in processes if p.pgid == scheduler.pgid]
        members = {p.pid for p in group}
        tasks = [p for p in processes if p.ppid in members and p.pgid != scheduler.pgid]
        return cls(scheduler, group, tasks)


def _gone(pids: Sequence[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        if not alive:
            return
        time.sleep(_POLL)
    raise CrashError(f"processes {alive} survived SIGKILL")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def kill_task(stack: AirflowStack, ti_id: str) -> str:
    """SIGKILL a running task as a dead worker machine would lose it: its supervisor, then its process group.

    The supervisor (the LocalExecutor worker that runs the task, ``airflow worker -- LocalExecutor: <id>``) goes
    first, so that nothing reports the task's end to Airflow; then the task's own process group
    (``airflow worker -- <id>``). Returns what was killed.
    """
    family = SchedulerFamily.of(stack)
    supervisors = [p for p in family.group if f"LocalExecutor: {ti_id}" in p.title]
    tasks = [p for p in family.tasks if p.title.endswith(f"-- {ti_id}")]
    if len(supervisors) != 1 or len(tasks) != 1 or tasks[0].ppid != supervisors[0].pid:
        raise CrashError(f"task instance {ti_id}: supervisor {supervisors}, task process {tasks}: not one of each")
    supervisor, task = supervisors[0], tasks[0]
    os.kill(supervisor.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(task.pgid, signal.SIGKILL)
    _gone([supervisor.pid, task.pid])
    stack.note(f"SIGKILL: supervisor {supervisor.pid}, task process group {task.pgid} of task instance {ti_id}")
    return f"supervisor pid {supervisor.pid} + task process group {task.pgid}"


def kill_scheduler(stack: AirflowStack) -> str:
    """SIGKILL the scheduler's process group (the scheduler and its LocalExecutor workers, which supervise the
    tasks), then the process group of each task it was running, as the loss of their machine would."""
    family = SchedulerFamily.of(stack)
    stack.crash("scheduler")
    groups = sorted({task.pgid for task in family.tasks})
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    _gone([p.pid for p in family.group + family.tasks])
    stack.note(f"SIGKILL: scheduler process group {family.scheduler.pgid}, task process groups {groups}")
    return (
        f"scheduler process group {family.scheduler.pgid} ({len(family.group)} processes) "
        f"+ {len(groups)} task process groups"
    )


# -- the cases -----------------------------------------------------------------------------------------------------


def _wait(what: str, timeout: float, check: Callable[[], Any]) -> Any:
    """Poll ``check`` until it returns something truthy; CrashError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(_POLL)
    raise CrashError(f"timed out after {timeout:.0f}s waiting for {what}")


def _running_ti(lab: CrashLab, spec: CaseSpec, task_id: str) -> Callable[[], tuple[DagRun, dict[str, Any]] | None]:
    """A check: the run of the kill window and its ``task_id`` instance, once that is running."""
    last = [0.0]

    def check() -> tuple[DagRun, dict[str, Any]] | None:
        if time.monotonic() - last[0] < 0.5:  # the REST API is not polled as fast as the emulators
            return None
        last[0] = time.monotonic()
        run = lab.run_of(spec, spec.kill_window)
        if run is None:
            return None
        if run.finished:
            raise CrashError(f"{spec.case}: the run {run.run_id} finished before {task_id} could be caught running")
        ti = lab.task_instance(run, task_id)
        return (run, ti) if ti.get("state") == "running" else None

    return check


def _task_case(
    lab: CrashLab,
    case: str,
    task_id: str,
    midway: Callable[[CaseSpec, DagRun, dict[str, Any]], bool],
    edge: bool = False,
) -> CrashResult:
    """Run a task case: unpause its DAG, kill ``task_id`` of the kill window when ``midway`` says so, count Devo."""
    spec, scale = lab.specs[case], lab.scale
    began = time.monotonic()
    lab.airflow.unpause(spec.dag_id)
    run, ti = _wait(f"{spec.dag_id} {task_id} running", scale.heal_timeout_s, _running_ti(lab, spec, task_id))
    _wait(f"{spec.dag_id} {task_id} midway", scale.heal_timeout_s, lambda: midway(spec, run, ti))
    killed_at = datetime.now(timezone.utc)
    killed = kill_task(lab.airflow, str(ti["id"]))
    runs = lab.airflow.wait_for_runs(
        spec.dag_id, spec.plan.start, spec.plan.last_logical, expected=spec.plan.windows, timeout=scale.heal_timeout_s
    )
    problems = _run_problems(lab, spec, runs)
    healed = next(r for r in runs if r.run_id == run.run_id)
    retries = _tries_after(lab, healed, ti, problems)
    timeouts = lab.heartbeat_timeouts(spec, task_id, healed)
    if not timeouts:
        problems.append(f"{case}: Airflow logged no heartbeat timeout for {task_id} of {run.run_id}")
    kill = Kill(
        at=killed_at,
        what=f"{task_id} of window {spec.kill_window + 1}/{spec.plan.windows} ({killed})",
        detected=_detection_text(timeouts, killed_at),
        retries=retries,
        on_ship=edge,
    )
    return _outcome(lab, spec, kill, [healed], began, problems)


def _tries_after(lab: CrashLab, run: DagRun, killed: dict[str, Any], problems: list[str]) -> int:
    """How many more tries the killed task instance had (1: Airflow ran it again once); a problem when none."""
    after = lab.task_instance(run, str(killed["task_id"]))
    more = int(after.get("try_number") or 0) - int(killed.get("try_number") or 0)
    if more < 1:
        problems.append(f"{killed['task_id']} of {run.run_id} did not run again after the kill")
    return max(more, 0)


def _detection_text(timeouts: list[dict[str, Any]], killed_at: datetime) -> str:
    if not timeouts:
        return "no heartbeat timeout logged"
    when = min(_parse_time(entry["when"]) for entry in timeouts)
    return f"heartbeat timeout logged {(when - killed_at).total_seconds():.1f}s after the kill, retried"


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _heal_seconds(killed_at: datetime, runs: Sequence[DagRun]) -> float:
    ends = [run.end_date for run in runs if run.end_date is not None]
    return max((end - killed_at).total_seconds() for end in ends) if ends else math.nan


def _run_problems(lab: CrashLab, spec: CaseSpec, runs: Sequence[DagRun]) -> list[str]:
    problems = []
    failed = [run for run in runs if run.state != "success"]
    if failed:
        problems.append(f"{spec.case}: runs did not succeed:\n{lab.airflow.failure_report(spec.dag_id, failed)}")
    starts = [run.logical_date for run in runs]
    if starts != [spec.plan.window(k)[0] for k in range(spec.plan.windows)]:
        problems.append(f"{spec.case}: not one run per window: {runs}")
    return problems


@dataclass(frozen=True)
class Kill:
    """One SIGKILL that landed: when, on what, how Airflow noticed, how many tries it took to heal."""

    at: datetime
    what: str
    detected: str
    #: Task tries Airflow started again after the kill (no human involved).
    retries: int
    #: It hit a ship task with a batch in flight: that batch may arrive twice (the transport's edge).
    on_ship: bool


def _outcome(
    lab: CrashLab, spec: CaseSpec, kill: Kill, healed: Sequence[DagRun], began: float, problems: list[str]
) -> CrashResult:
    """Count what Devo holds against what the windows hold; split the doubled records between edge and beyond."""
    expected = lab.expected(spec)
    arrivals = lab.devo_ids(spec.tag)
    delivered = Counter(arrivals)
    lost = sum((expected - delivered).values())
    strangers = sorted(set(delivered) - set(expected))
    if strangers:
        problems.append(f"{spec.case}: {len(strangers)} records in Devo are not of the windows: {strangers[:5]}")
    extra = Counter({key: n for key, n in (delivered - expected).items() if key in expected})
    allowance = lab.scale.batch_events if kill.on_ship else 0
    on_edge = _edge_duplicates(arrivals, extra, allowance)
    return CrashResult(
        case=spec.case,
        windows=spec.plan.windows,
        records=sum(expected.values()),
        lost=lost,
        duplicated=sum(extra.values()) - on_edge,
        tls_edge_duplicates=on_edge if spec.transport == "tls" else 0,
        http_edge_duplicates=on_edge if spec.transport == "http" else 0,
        human_actions=len(lab.human_actions(spec, kill.at)),
        seconds_to_heal=_heal_seconds(kill.at, healed),
        killed=kill.what,
        detected=kill.detected,
        edge_allowance=allowance,
        task_retries=kill.retries,
        wall_seconds=round(time.monotonic() - began, 1),
        problems=tuple(problems),
    )


def _edge_duplicates(arrivals: list[str], extra: Counter[str], allowance: int) -> int:
    """How many of the ``extra`` deliveries the transport's edge explains: one batch sent again, at most.

    They must be at most ``allowance`` (one batch), each record delivered at most once too often, and a contiguous
    run of the first delivery's order (one batch of the stream, not records picked here and there); otherwise none
    is explained and all of them count as duplicated.
    """
    total = sum(extra.values())
    if not total or total > allowance or any(n > 1 for n in extra.values()):
        return 0
    first: dict[str, int] = {}
    for position, record_id in enumerate(dict.fromkeys(arrivals)):
        first[record_id] = position
    positions = sorted(first[record_id] for record_id in extra)
    if positions[-1] - positions[0] + 1 != len(positions):
        return 0
    return total


def fetch_killed_mid_window(lab: CrashLab) -> CrashResult:
    """Activities: ``fetch`` killed while it pages through its window (a third of its pages served, no manifest)."""
    spec = lab.specs["fetch"]
    pages = math.ceil(lab.scale.activities_per_window / lab.scale.activities_page_size)
    # Only this case reads activities: the window's pages are what the emulator served beyond what it had before
    # and what the earlier windows' fetches requested (their manifests say).
    before = lab.mdca_requests("activities")

    def midway(spec: CaseSpec, run: DagRun, ti: dict[str, Any]) -> bool:
        if manifest_path(lab.window_dir(spec, spec.kill_window), FETCHED).exists():
            raise CrashError("fetch: the window was staged before the kill could land mid-window")
        earlier = sum(
            int(json.loads(path.read_text(encoding="utf-8"))["request_stats"]["requests"])
            for path in (manifest_path(lab.window_dir(spec, k), FETCHED) for k in range(spec.kill_window))
        )
        return lab.mdca_requests("activities") - before - earlier >= max(2, pages // 3)

    return _task_case(lab, spec.case, "fetch", midway)


def flatten_killed(lab: CrashLab) -> CrashResult:
    """Alerts: ``flatten`` killed while its part is half written (a temporary file in ``flattened/``, no manifest)."""

    def midway(spec: CaseSpec, run: DagRun, ti: dict[str, Any]) -> bool:
        window = lab.window_dir(spec, spec.kill_window)
        stage = stage_dir(window, FLATTENED)
        if manifest_path(window, FLATTENED).exists():
            raise CrashError("flatten: the stage was committed before the kill could land mid-way")
        return stage.is_dir() and any(path.name.endswith(".tmp") for path in stage.iterdir())

    return _task_case(lab, "flatten", "flatten", midway)


def _mid_batch(lab: CrashLab, tag: str, before: int, window: int, wait_after_ack: float) -> Callable[[], bool]:
    """A check: a third of a window's batches are in Devo, and a batch is on its way.

    ``before``: what Devo holds of the earlier windows; ``window``: the window's records. On its way: Devo's count
    has stayed put for ``wait_after_ack`` seconds since it last grew (0: a count that grows, a batch half read).
    """
    batch = lab.scale.batch_events
    state: dict[str, float] = {}

    def midway() -> bool:
        count = lab.devo_count(tag)
        if count >= before + window:
            raise CrashError(f"{tag}: the window was delivered before the kill could land mid-batch")
        if count - before < max(1, window // batch // 3) * batch:
            return False
        if state.get("count") != count:
            state.update(count=count, since=time.monotonic())
            return wait_after_ack <= 0
        return time.monotonic() - state["since"] >= wait_after_ack

    return midway


def _snapshot_mid_batch(lab: CrashLab, wait_after_ack: float) -> Callable[[CaseSpec, DagRun, dict[str, Any]], bool]:
    records = lab.scale.snapshot_records
    checks: dict[str, Callable[[], bool]] = {}

    def midway(spec: CaseSpec, run: DagRun, ti: dict[str, Any]) -> bool:
        if spec.case not in checks:
            checks[spec.case] = _mid_batch(lab, spec.tag, records * spec.kill_window, records, wait_after_ack)
        return checks[spec.case]()

    return midway


def ship_killed_mid_batch_http(lab: CrashLab) -> CrashResult:
    """Entities over HTTP: ``ship`` killed while a batch's request waits for Devo's answer (Devo reads it slowly)."""
    # Devo's count grows when it stores a batch; the next request follows in milliseconds and waits there.
    wait = lab.scale.http_read_delay_s * 0.3
    return _task_case(lab, "ship-http", "ship", _snapshot_mid_batch(lab, wait), edge=True)


def ship_killed_mid_batch_tls(lab: CrashLab) -> CrashResult:
    """Subnets over the TLS relay: ``ship`` killed while a batch is being read (part of it stored) by a slow relay."""
    # The relay stores the lines of each read as they come: a count that grows means a batch half read.
    return _task_case(lab, "ship-tls", "ship", _snapshot_mid_batch(lab, 0.0), edge=True)


def scheduler_killed_during_backfill(lab: CrashLab) -> CrashResult:
    """Files: the scheduler (its process group and the tasks it runs) killed during ``airflow backfill create``.

    The backfill's windows run one at a time; the kill lands once a window is delivered, while the next one's
    ``ship`` has a batch on its way to Devo's HTTP API. A new scheduler is started at once, as a restart policy
    would. The backfill must complete with every record once (but for the HTTP edge: that batch, sent again).
    """
    spec, scale, stack = lab.specs["scheduler"], lab.scale, lab.airflow
    plan = spec.plan
    began = time.monotonic()
    per_window = [len(lab.mdca.truth(spec.service, _ms(a), _ms(b))) for a, b in map(plan.window, range(plan.windows))]
    lab.create_backfill()
    stack.unpause(spec.dag_id)
    last = [0.0]

    def shipping() -> tuple[int, DagRun, dict[str, Any]] | None:
        if time.monotonic() - last[0] < 0.5:
            return None
        last[0] = time.monotonic()
        runs = stack.dag_runs(spec.dag_id, plan.start, plan.last_logical)
        if len(runs) == plan.windows and all(run.finished for run in runs):
            raise CrashError("scheduler: the backfill finished before the kill could land during it")
        for run in runs:
            assert run.logical_date is not None
            index = int((run.logical_date - plan.start) / PERIOD)
            if index >= 1 and run.state == "running":
                ti = lab.task_instance(run, "ship")
                if ti.get("state") == "running":
                    return index, run, ti
        return None

    index, run, ti = _wait("a backfill window delivered and the next one shipping", scale.heal_timeout_s, shipping)
    midway = _mid_batch(lab, spec.tag, sum(per_window[:index]), per_window[index], scale.http_read_delay_s * 0.3)
    _wait(f"{spec.dag_id} ship mid-batch", scale.heal_timeout_s, midway)
    killed_at = datetime.now(timezone.utc)
    killed = kill_scheduler(stack)
    stack.launch("scheduler")
    runs = stack.wait_for_runs(
        spec.dag_id, plan.start, plan.last_logical, expected=plan.windows, timeout=scale.heal_timeout_s
    )
    problems = _run_problems(lab, spec, runs)
    if not all(r.run_type == "backfill" for r in runs):
        problems.append(f"scheduler: not all runs are the backfill's: {runs}")
    try:
        stack.wait_for_backfills(spec.dag_id, timeout=120)
    except StackError as exc:
        problems.append(f"scheduler: the backfill was not marked completed: {exc}")
    healed = next(r for r in runs if r.run_id == run.run_id)
    retries = _tries_after(lab, healed, ti, problems)
    kill = Kill(
        at=killed_at,
        what=f"{killed}, ship of window {index + 1}/{plan.windows} mid-batch",
        detected=f"the new scheduler reset the dead one's ship and ran it again ({retries} more try)",
        retries=retries,
        on_ship=True,
    )
    return _outcome(lab, spec, kill, runs, began, problems)


#: The cases that kill one task: independent of one another, they may run at once.
TASK_CASES: dict[str, Callable[[CrashLab], CrashResult]] = {
    "fetch": fetch_killed_mid_window,
    "flatten": flatten_killed,
    "ship-http": ship_killed_mid_batch_http,
    "ship-tls": ship_killed_mid_batch_tls,
}
#: Every case, by name, in the order of the table.
CASES: dict[str, Callable[[CrashLab], CrashResult]] = {**TASK_CASES, "scheduler": scheduler_killed_during_backfill}


def run_cases(lab: CrashLab, *, concurrently: bool = True) -> list[CrashResult]:
    """Every case on ``lab``: the task cases at once (or one after the other), then the scheduler case alone."""
    if concurrently:
        with ThreadPoolExecutor(max_workers=len(TASK_CASES) + 1, thread_name_prefix="crash") as pool:
            futures = [pool.submit(case, lab) for case in TASK_CASES.values()]
            backfill = pool.submit(lab.create_backfill)  # the scheduler case's, meanwhile (its DAG stays paused)
            results = [future.result() for future in futures]
            backfill.result()
    else:
        results = [case(lab) for case in TASK_CASES.values()]
    results.append(scheduler_killed_during_backfill(lab))
    return results
