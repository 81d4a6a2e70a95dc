"""A Devo outage through a live Airflow 3 scheduler: one service heals by itself, one fails past its horizon.

The scenario behind tests/e2e/test_outage_recovery.py and the outage row of ``make faults`` (bench/faults.py): the
collector's own DAG file runs activities and files in one-minute windows; from a window's end the Devo relay refuses
every connection for a minute or more (until files' window has failed). activities (``recovery_horizon`` 6 minutes)
rides it out by retries and catches up in order by itself; files (20 s) fails past its horizon, and
``mdca-collector undelivered --deliver`` has it run again. Airflow 3 only (it needs a live scheduler).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
import yaml

from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.harness.airflow_stack import AirflowStack, DagRun
from tests.harness.late_world import stored_in
from tests.service_table import SNAPSHOTS

__all__ = ["OutageRun", "OutageRow", "run_devo_outage"]

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class OutageRow:
    """One row of the fault matrix (the fields of ``make faults``'s table)."""

    case: str
    windows: int
    records: int
    lost: int
    duplicated: int
    tls_edge_duplicates: int
    human_actions: int
    seconds_to_heal: float


@dataclass
class OutageRun:
    """What the scenario left: the live stack and emulator (stop them with :meth:`stop`), and what happened."""

    tenant: TenantConfig
    emulator: EmulatorProcess
    stack: AirflowStack
    config: Path
    runs: dict[str, list[DagRun]]
    outage: tuple[datetime, datetime]
    healed: datetime
    listed: subprocess.CompletedProcess[str]
    delivered: subprocess.CompletedProcess[str]
    counts: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def delivered_once(self, service: str) -> tuple[int, int, int]:
        """(records stored in the windows that ran, lost, doubled) of one service, printed."""
        expected = stored_in(self.emulator, service, windows_of(self.runs[f"mdca_{service}"]))
        devo = self.emulator.info["devo"]
        answer = requests.get(
            f"{str(devo['admin_url']).rstrip('/')}/tags/{SERVICES[service].devo_table}/ids?key=_id",
            verify=str(devo["ca_bundle"]),
            timeout=120,
        )
        answer.raise_for_status()
        delivered = Counter(answer.json()["ids"])
        lost, doubled = sum((expected - delivered).values()), sum((delivered - expected).values())
        records = sum(expected.values())
        print(f"{service}: {records} expected, {sum(delivered.values())} in Devo, {lost} lost, {doubled} doubled")
        self.counts[service] = (records, lost, doubled)
        return records, lost, doubled

    def rows(self) -> list[OutageRow]:
        """The fault-matrix row: the outage within the horizon, healed with nobody touching Airflow."""
        records, lost, doubled = self.delivered_once("activities")
        heal = (self.healed - self.outage[0]).total_seconds()
        down = (self.outage[1] - self.outage[0]).total_seconds()
        case = f"Devo relay down {down:.0f} s, live scheduler, within recovery_horizon"
        return [OutageRow(case, len(self.runs["mdca_activities"]), records, lost, doubled, 0, 0, round(heal, 1))]

    def stop(self) -> None:
        self.stack.stop()
        self.emulator.stop()


PERIOD = timedelta(minutes=1)
OUTAGE = timedelta(seconds=60)  # at least; longer until files' window has failed past its horizon
MAX_OUTAGE = timedelta(minutes=4)
#: activities rides the outage out; files' horizon is shorter than the outage, so its window fails past it.
HORIZONS = {"activities": "6m", "files": "20s"}


def run_devo_outage(workdir: Path) -> OutageRun:
    """Run the scenario in ``workdir`` (an empty folder); the caller stops what it returns."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    tenant = tenant_config(ms(now - timedelta(days=1)))
    emulator = EmulatorProcess(workdir / "emulator", tenants=[tenant.to_dict()]).start()
    stack: AirflowStack | None = None
    try:
        devo = emulator.devo_connection()
        # The sender's own retries short, so that the outage outlasts them and Airflow's retries carry the window.
        devo["extra"].update({"max_retries": 2, "backoff_base": 1, "backoff_max": 2, "timeout": 10})
        (workdir / "collector").mkdir(parents=True, exist_ok=True)
        config = collector_config(workdir / "collector" / "collector.yaml", now - 2 * PERIOD)
        env = {
            "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(emulator.connection()),
            "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(devo),
            "MDCA_COLLECTOR_CONFIG": str(config),
        }
        stack = AirflowStack(workdir / "airflow-home", DAGS_FOLDER, env, parallelism=4).start()
        dag_ids = [f"mdca_{name}" for name in HORIZONS]
        stack.wait_for_dags(dag_ids)
        stack.unpause(*dag_ids)
        time.sleep(-time.time() % PERIOD.total_seconds() + 1)  # from a window's end: its runs start 5 s (lag) later
        began = datetime.now(timezone.utc)
        devo_faults(emulator, refuse_connections=1_000_000)
        time.sleep(OUTAGE.total_seconds())
        # Down until files has failed past its horizon: on a busy machine its window's ship may start late.
        wait_for_failed_run(stack, "mdca_files", timeout=MAX_OUTAGE.total_seconds() - OUTAGE.total_seconds())
        devo_faults(emulator, refuse_connections=0)
        ended = datetime.now(timezone.utc)
        caught_up(stack, "mdca_activities", ended, timeout=300)  # by itself: nobody clears anything
        healed = datetime.now(timezone.utc)
        listed = collector_cli(stack, "undelivered")
        delivered = collector_cli(stack, "undelivered", "--deliver")
        runs = settle(stack, dag_ids)
        return OutageRun(tenant, emulator, stack, config, runs, (began, ended), healed, listed, delivered)
    except BaseException:
        if stack is not None:
            stack.stop()
        emulator.stop()
        raise


def tenant_config(history_ms: int) -> TenantConfig:
    return TenantConfig(
        "tenant-e2e-outage",
        seed=7,
        time_model="instant",  # the outage, not late records, is under test here (test_late_world has those)
        services={
            "activities": TimeSeriesConfig(segments=[Rate(3_000, (1, 2, 1), history_ms)]),
            "files": TimeSeriesConfig(segments=[Rate(600, (1, 1), history_ms)]),
            "alerts": TimeSeriesConfig(segments=[]),
            **{name: SnapshotConfig(0) for name in SNAPSHOTS},
        },
        requests_per_minute=None,
    )


def collector_config(path: Path, first_window: datetime) -> Path:
    """activities and files in one-minute windows, retried from 5 s up to 15 s for their horizons."""
    config: dict[str, Any] = {
        "defaults": {
            "enabled": False,
            "historic_date_utc": first_window.isoformat().replace("+00:00", "Z"),
            "period": int(PERIOD.total_seconds()),
            "lag": 5,
            "retry_delay": "5s",
            "max_retry_delay": "15s",
            "max_active_runs": 1,
        },
        "services": {name: {"enabled": True, "recovery_horizon": horizon} for name, horizon in HORIZONS.items()},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def collector_cli(stack: AirflowStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``mdca-collector <args>`` in the stack's environment, as an operator on that machine runs it."""
    command = [str(Path(sys.executable).with_name("mdca-collector")), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=stack.env, cwd=stack.home, timeout=600)
    stack.note(f"mdca-collector {' '.join(args)} -> {result.returncode}")
    return result


def devo_faults(emulator: EmulatorProcess, **knobs: Any) -> None:
    devo = emulator.info["devo"]
    url = f"{str(devo['admin_url']).rstrip('/')}/faults"
    requests.patch(url, json=knobs, verify=str(devo["ca_bundle"]), timeout=60).raise_for_status()


def wait_for_failed_run(stack: AirflowStack, dag_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(run.state == "failed" for run in stack.dag_runs(dag_id)):
            return
        time.sleep(3)
    raise AssertionError(f"{dag_id}: no run failed within {timeout:.0f} s although its horizon is shorter")


def caught_up(stack: AirflowStack, dag_id: str, since: datetime, timeout: float) -> None:
    """Wait until the DAG has delivered every window up to ``since`` and has nothing in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = stack.dag_runs(dag_id)
        newest = max((run.logical_date for run in runs if run.logical_date), default=None)
        if newest and newest + PERIOD >= since and all(run.state == "success" for run in runs):
            return
        time.sleep(3)
    states = Counter(run.state for run in stack.dag_runs(dag_id))
    raise AssertionError(f"{dag_id} did not catch up by itself within {timeout:.0f} s of the outage's end: {states}")


def settle(stack: AirflowStack, dag_ids: list[str], timeout: float = 420.0) -> dict[str, list[DagRun]]:
    """Every run, at a moment none is in flight and none failed (the cleared one ran again), with the DAGs paused."""
    deadline = time.monotonic() + timeout
    runs: dict[str, list[DagRun]] = {}
    while time.monotonic() < deadline:
        runs = {dag_id: stack.dag_runs(dag_id) for dag_id in dag_ids}
        if all(run.finished and run.state == "success" for r in runs.values() for run in r):
            stack.pause(*dag_ids)
            runs = {dag_id: stack.dag_runs(dag_id) for dag_id in dag_ids}
            if all(run.finished for r in runs.values() for run in r):
                return runs
            stack.unpause(*dag_ids)
        time.sleep(2)
    states = {d: Counter(run.state for run in r) for d, r in runs.items()}
    raise AssertionError(f"the runs did not all succeed within {timeout:.0f} s: {states}")


def windows_of(runs: list[DagRun]) -> list[tuple[int, int]]:
    return [(ms(run.logical_date), ms(run.logical_date + PERIOD)) for run in runs if run.logical_date]
