"""End-to-end fixtures: the emulators in a child process and a real Airflow (:class:`AirflowStack`) in its own home.

The stack never uses the run's shared Airflow home (``tests/conftest.py``): each test module that asks for one gets a
fresh home under pytest's temporary folder, its own SQLite database (or its own database on the run's PostgreSQL,
:func:`postgres`) and, on Airflow 3, its own scheduler, dag-processor, triggerer and api-server, all stopped (and
checked gone) when the module ends.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from airflow_provider_mdca.transforms.flatten import flatten_alert
from mdca_emulator.data import TimeSeriesData
from mdca_emulator.process import EmulatorProcess
from mdca_emulator.state import TenantConfig
from tests.e2e.postgres import PostgresNotInstalled, PostgresServer, find_server_bin
from tests.harness.airflow_stack import AirflowStack

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Plan:
    """A backfilled range: ``windows`` adjacent windows of ``period`` from ``start``."""

    start: datetime
    period: timedelta
    windows: int

    @property
    def end(self) -> datetime:
        return self.start + self.period * self.windows

    @property
    def last_logical(self) -> datetime:
        """The logical date (window start) of the last window: the inclusive end of a backfill."""
        return self.end - self.period

    def boundaries_ms(self) -> list[int]:
        return [ms(self.start + self.period * k) for k in range(self.windows + 1)]


def recent_plan(period: timedelta, windows: int) -> Plan:
    """Windows that end a few seconds ago (backfill takes only ended windows) and start on a whole second.

    The next window ends a whole period from now, so the scheduler starts no run of its own during a short test.
    """
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return Plan(now - timedelta(seconds=5) - period * windows, period, windows)


def plan_defaults(plan: Plan) -> dict[str, Any]:
    """A test collector's ``defaults``: every service off, windows of the plan, no lag, one quick retry."""
    return {
        "enabled": False,
        "historic_date_utc": plan.start.isoformat().replace("+00:00", "Z"),
        "period": int(plan.period.total_seconds()),
        "lag": 0,
        "retries": 1,
        "retry_delay": 5,
        "max_active_runs": 2,
    }


def write_collector_config(path: Path, plan: Plan, services: Mapping[str, Mapping[str, Any]]) -> Path:
    """A collector config: only ``services`` enabled (with their overrides), windows of the plan, no lag."""
    config = {
        "defaults": plan_defaults(plan),
        "services": {name: {"enabled": True, **overrides} for name, overrides in services.items()},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class DevoAdmin:
    """What the Devo emulator received, from its admin API."""

    def __init__(self, devo: Mapping[str, Any]) -> None:
        self.url = str(devo["admin_url"]).rstrip("/")
        self.verify = str(devo["ca_bundle"])

    def _get(self, path: str) -> Any:
        response = requests.get(f"{self.url}/{path}", verify=self.verify, timeout=120)
        response.raise_for_status()
        return response.json()

    def ids(self, tag: str) -> list[str]:
        """``_id`` of every event of the tag, duplicates kept."""
        ids: list[str] = self._get(f"tags/{tag}/ids?key=_id")["ids"]
        return ids

    def events(self, tag: str) -> list[Any]:
        events: list[Any] = self._get(f"tags/{tag}/events")["events"]
        return events


def canonical(event: Mapping[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def expected_alert_events(
    tenant: TenantConfig, ids: set[str], start_ms: int, end_ms: int, max_events: int = 1000
) -> Counter[str]:
    """The flattened events of exactly the alerts ``ids`` (canonical JSON, with multiplicity).

    The alerts are rebuilt from the tenant's configuration, as the emulator builds them (a pure function of the seed
    and the record's position), and sent through JSON as the API sends them.
    """
    alerts = tenant.series("alerts")
    data = TimeSeriesData("alerts", tenant.seed, alerts.segments, alerts.late_every)
    events: Counter[str] = Counter()
    for entry in data.entries([(start_ms, end_ms)]):
        if entry[1] in ids:
            alert = json.loads(json.dumps(data.build(entry)))
            events.update(canonical(event) for event in flatten_alert(alert, max_events=max_events))
    return events


def exactly_once_report(expected: set[str], delivered: list[str]) -> str:
    """Empty when ``delivered`` holds every expected id once and nothing else; else what is wrong."""
    counts = Counter(delivered)
    doubled = {i: n for i, n in counts.items() if n > 1}
    missing = expected - set(counts)
    unexpected = set(counts) - expected
    if not (doubled or missing or unexpected):
        return ""
    return (
        f"{len(missing)} missing (e.g. {sorted(missing)[:5]}), {len(doubled)} delivered more than once "
        f"(e.g. {sorted(doubled.items())[:5]}), {len(unexpected)} not expected (e.g. {sorted(unexpected)[:5]})"
    )


@pytest.fixture(scope="module")
def start_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[TenantConfig], EmulatorProcess]]:
    """Start the emulators (MDCA, Entra ID, Devo) in a child process for one tenant; stopped at the module's end."""
    started: list[EmulatorProcess] = []

    def start(tenant: TenantConfig) -> EmulatorProcess:
        process = EmulatorProcess(tmp_path_factory.mktemp("emulator"), tenants=[tenant.to_dict()]).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def start_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., AirflowStack]]:
    """Start an :class:`AirflowStack` on a fresh home with the project's DAG file; stopped at the module's end."""
    stacks: list[AirflowStack] = []

    def start(env: Mapping[str, str], **kwargs: Any) -> AirflowStack:
        stack = AirflowStack(tmp_path_factory.mktemp("airflow-home"), DAGS_FOLDER, env, **kwargs)
        stacks.append(stack)
        return stack.start()

    yield start
    for stack in stacks:
        stack.stop()
        assert not stack.leftover_pids(), "the stack left processes behind"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server (Debian's binaries) on 127.0.0.1 for the test process; stopped, and checked gone, at the end.

    Started only in a process whose tests ask for it, each its own (``initdb`` and start take about a second: cheaper
    than sharing one server between xdist workers and agreeing on who stops it). No server installed fails the
    tests that need one, with what to install: they are never skipped.
    """
    try:
        server = PostgresServer(find_server_bin(), log=tmp_path_factory.mktemp("postgres") / "postgres.log")
    except PostgresNotInstalled as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    server.start()
    yield server
    server.stop()  # raises if a process of the server is left
