"""What the coverage view reads of Airflow: runs, their task states and the two XComs, as plain records.

:mod:`airflow_provider_mdca.coverage.airflow_db` fills them from the metadata database; the fetch operator pushes its
counts under :data:`STATS_KEY`. Imports nothing from Airflow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

__all__ = [
    "FETCH_TASK",
    "RETURN_KEY",
    "SHIP_TASK",
    "STATS_KEY",
    "RunRecord",
    "TaskRecord",
    "XComRecord",
    "assemble_runs",
]

#: The fetch task's XCom of counts (the fetch operator pushes it under this key).
STATS_KEY: Final = "mdca_stats"
FETCH_TASK: Final = "fetch"
SHIP_TASK: Final = "ship"
RETURN_KEY: Final = "return_value"


@dataclass(frozen=True)
class TaskRecord:
    """One task instance, as the metadata database holds it."""

    dag_id: str
    run_id: str
    task_id: str
    state: str | None


@dataclass(frozen=True)
class XComRecord:
    """One XCom of a run, its value already deserialised by Airflow."""

    dag_id: str
    run_id: str
    task_id: str
    key: str
    value: Any


@dataclass(frozen=True)
class RunRecord:
    """One DAG run with what coverage needs of its tasks and XComs.

    :param task_states: ``task_id -> state`` of its task instances.
    :param stats: the fetch's ``mdca_stats`` XCom (``fetched``, ``late``, ...), None when there is none.
    :param ship: the ship's return value (``staged``, ``delivered``, ...), None when there is none.
    """

    dag_id: str
    run_id: str
    state: str | None
    start: datetime | None
    end: datetime | None
    #: When the run began and finished (None while it has not).
    started_at: datetime | None = None
    finished_at: datetime | None = None
    task_states: Mapping[str, str | None] = field(default_factory=dict)
    stats: Mapping[str, Any] | None = None
    ship: Mapping[str, Any] | None = None


def assemble_runs(
    runs: Iterable[RunRecord], tasks: Iterable[TaskRecord], xcoms: Iterable[XComRecord]
) -> list[RunRecord]:
    """The runs with their task states and the two XComs attached (each table read once, joined here)."""
    states: dict[tuple[str, str], dict[str, str | None]] = {}
    for task in tasks:
        states.setdefault((task.dag_id, task.run_id), {})[task.task_id] = task.state
    stats: dict[tuple[str, str], Mapping[str, Any]] = {}
    ships: dict[tuple[str, str], Mapping[str, Any]] = {}
    for xcom in xcoms:
        if not isinstance(xcom.value, Mapping):
            continue  # e.g. the fetch's return value (a manifest's location): not a count
        key = (xcom.dag_id, xcom.run_id)
        if xcom.task_id == FETCH_TASK and xcom.key == STATS_KEY:
            stats[key] = xcom.value
        elif xcom.task_id == SHIP_TASK and xcom.key == RETURN_KEY:
            ships[key] = xcom.value
    return [
        dataclasses.replace(
            run,
            task_states=states.get(key, run.task_states),
            stats=stats.get(key, run.stats),
            ship=ships.get(key, run.ship),
        )
        for run, key in ((run, (run.dag_id, run.run_id)) for run in runs)
    ]
