"""What Devo should hold after a set of windows ran, against what it holds: the demo's and the benchmarks' check.

Per service, the emulator's ground truth over the windows of the successful runs (:mod:`tests.harness.late_world`
for alerts, which are read once raised and once more resolved) is compared with the ids the Devo emulator stored:
duplicates, missing and unexpected records. Imports nothing from Airflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

from airflow_provider_mdca.services import SERVICES
from mdca_emulator import TenantConfig
from mdca_emulator.process import EmulatorProcess
from tests.harness.airflow_stack import DagRun
from tests.harness.late_world import alert_event_counts, alert_reads

__all__ = ["DevoAdmin", "Row", "build_row", "ms", "run_windows"]


def ms(moment: datetime | None) -> int:
    """Epoch milliseconds of an aware datetime."""
    assert moment is not None
    return int(moment.timestamp() * 1000)


@dataclass
class Row:
    """One service's line of a report: what MDCA stored in the windows run, what Devo received."""

    tag: str
    runs: int = 0
    failed_runs: int = 0
    expected: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def duplicates(self) -> int:
        return sum(max(0, n - self.expected[key]) for key, n in self.delivered.items() if key in self.expected)

    @property
    def missing(self) -> int:
        return sum(max(0, n - self.delivered[key]) for key, n in self.expected.items())

    @property
    def unexpected(self) -> int:
        return sum(n for key, n in self.delivered.items() if key not in self.expected)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.failed_runs)


class DevoAdmin:
    """The Devo emulator's admin API (``emulator.info["devo"]``)."""

    def __init__(self, devo: dict[str, Any]) -> None:
        self.url, self.verify = str(devo["admin_url"]).rstrip("/"), str(devo["ca_bundle"])

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}/{path}", verify=self.verify, timeout=120)
        response.raise_for_status()
        return response.json()

    def ids(self, tag: str) -> Counter[str]:
        """How many times Devo received each record ``_id`` under ``tag``."""
        return Counter(self.get(f"tags/{tag}/ids?key=_id")["ids"])


def run_windows(runs: Iterable[DagRun], period: timedelta) -> list[tuple[int, int]]:
    """The windows ``[start, end)`` (epoch ms) of runs, from their logical dates (an interval timetable's start)."""
    width = int(period.total_seconds() * 1000)
    return [(ms(run.logical_date), ms(run.logical_date) + width) for run in runs]


def build_row(
    service: str,
    runs: list[DagRun],
    period: timedelta,
    emulator: EmulatorProcess,
    tenant: TenantConfig,
    devo: DevoAdmin,
    *,
    max_events_per_alert: int,
    began: float = 0.0,
) -> Row:
    """Expected vs delivered for one service, over the windows of its successful runs.

    :param began: the epoch time the runs were let go (``elapsed`` is the last successful run's end after it).
    """
    tag = SERVICES[service].devo_table
    row = Row(tag, runs=len(runs), failed_runs=sum(run.state != "success" for run in runs))
    done = [run for run in runs if run.state == "success"]
    ends = [run.end_date.timestamp() for run in done if run.end_date]
    row.elapsed = max(ends) - began if ends and began else 0.0
    windows = run_windows(done, period)
    if service == "alerts" and windows:
        reads = alert_reads(emulator, windows)
        row.expected.update(alert_event_counts(tenant, reads, windows, max_events_per_alert))
    elif service != "alerts":
        for start, end in windows:
            # A snapshot's truth ignores the window: every run delivers the whole collection once.
            row.expected.update(emulator.truth(service, start, end))
    row.delivered.update(devo.ids(tag))
    return row
