"""The coverage model: per tenant and service, the state of each window of the last days, and the totals.

A window ``[historic_date_utc + k*period, historic_date_utc + (k+1)*period)`` is one DAG run's data interval. Its
state comes from the runs Airflow has for it, their task instances and the two XComs of the run (the fetch's
``mdca_stats`` and the ship's return value):

==============  =============================================================================================
state           meaning
==============  =============================================================================================
``delivered``   a run of the window succeeded: every record reached Devo
``failed``      its run failed (past ``recovery_horizon``, or an error no retry cures)
``retrying``    a task of its run waits for its next try (``up_for_retry``): an outage being ridden out
``running``     its run is queued or running (a live window's fetch waiting, deferred, for its lag)
``not_run``     due (its end + ``lag`` passed) and no run yet: the scheduler is behind, or the DAG paused
``expired``     not delivered and it starts before what MDCA keeps (the service's ``retention``, activities 30
                days): it can no longer be read whole. Takes precedence over ``failed`` and ``not_run``
==============  =============================================================================================

Windows not yet due and without a run are not listed. Everything here is a pure function of plain records (no
Airflow import): :mod:`airflow_provider_mdca.coverage.airflow_db` reads them from Airflow's metadata database.

The JSON form (:meth:`Coverage.as_dict`) is for scripts and stable: keys are only ever added::

    {"generated_at": "2026-12-06T08:00:00Z", "days": 7, "since": "2026-11-29T08:00:00Z",
     "states": ["delivered", "failed", "retrying", "running", "not_run", "expired"],
     "services": [
       {"tenant": null, "service": "activities", "label": "activities", "dag_id": "mdca_activities",
        "windowed": true, "period_seconds": 300, "lag_seconds": 120, "retention_seconds": 2592000,
        "totals": {"windows": {"delivered": 2010, "failed": 1, "retrying": 0, "running": 1, "not_run": 4,
                               "expired": 0},
                   "fetched": 812345, "late": 1234, "delivered": 812345,
                   "newest_delivered": {"start": "...", "end": "...", "run_id": "...",
                                        "delivered_at": "...", "freshness_seconds": 250.0} | null},
        "windows": [{"start": "...", "end": "...", "state": "delivered", "run_id": "...", "url": "...",
                     "fetched": 403, "late": 2, "delivered": 403}, ...]}]}

A window's ``delivered`` is its events in Devo: the ship's ``delivered`` plus, for a rerun, the events an earlier run
had delivered (``skipped_delivered_before``), so it equals ``fetched`` once a window is complete (alerts: its
flattened events). ``fetched``, ``late`` and ``delivered`` are null when the run pushed no such XCom (not run, failed
before, or a run of an older collector); the totals add the known ones. Times are ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from airflow_provider_mdca.coverage.records import (
    FETCH_TASK,
    RETURN_KEY,
    SHIP_TASK,
    STATS_KEY,
    RunRecord,
    TaskRecord,
    XComRecord,
    assemble_runs,
)
from airflow_provider_mdca.timestamps import format_iso as iso

__all__ = [
    "FETCH_TASK",
    "RETURN_KEY",
    "SHIP_TASK",
    "STATS_KEY",
    "Coverage",
    "NewestDelivered",
    "RunRecord",
    "ServiceCoverage",
    "ServiceWindows",
    "TaskRecord",
    "Totals",
    "Window",
    "WindowState",
    "XComRecord",
    "assemble_runs",
    "build_coverage",
    "iso",
    "service_coverage",
]

#: The most days a view covers: a little more than what MDCA keeps of activities, so expired windows show.
MAX_DAYS: Final = 90


class WindowState(str, enum.Enum):
    """A window's state (the table in the module's docstring)."""

    DELIVERED = "delivered"
    FAILED = "failed"
    RETRYING = "retrying"
    RUNNING = "running"
    NOT_RUN = "not_run"
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value


#: Run states that mean the run is not finished.
_LIVE_RUN_STATES: Final = frozenset({"queued", "running"})


@dataclass(frozen=True)
class ServiceWindows:
    """What coverage needs of one DAG's configuration, as plain values.

    From a :class:`~airflow_provider_mdca.config.ServiceConfig` and its service's registry entry
    (:func:`airflow_provider_mdca.coverage.service_windows`).
    """

    tenant: str | None
    service: str
    label: str
    dag_id: str
    period: timedelta
    first_start: datetime
    lag: timedelta = timedelta(0)
    #: How far back MDCA keeps the service's records; None: no limit.
    retention: timedelta | None = None
    windowed: bool = True


@dataclass(frozen=True)
class Window:
    """One window of a service and what became of it."""

    start: datetime
    end: datetime
    state: WindowState
    run_id: str | None = None
    url: str | None = None
    fetched: int | None = None
    late: int | None = None
    delivered: int | None = None
    #: When its run finished (delivered or failed).
    finished_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The window's JSON form."""
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "state": self.state.value,
            "run_id": self.run_id,
            "url": self.url,
            "fetched": self.fetched,
            "late": self.late,
            "delivered": self.delivered,
        }


@dataclass(frozen=True)
class NewestDelivered:
    """The newest delivered window of a service and how fresh it is."""

    start: datetime
    end: datetime
    run_id: str
    delivered_at: datetime | None
    #: Now minus the window's end: how old the newest data in Devo is, at most.
    freshness_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "run_id": self.run_id,
            "delivered_at": iso(self.delivered_at) if self.delivered_at else None,
            "freshness_seconds": round(self.freshness_seconds, 3),
        }


@dataclass(frozen=True)
class Totals:
    """A service's windows per state and its records over the view."""

    windows: Mapping[WindowState, int]
    fetched: int
    late: int
    delivered: int
    newest_delivered: NewestDelivered | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": {state.value: self.windows.get(state, 0) for state in WindowState},
            "fetched": self.fetched,
            "late": self.late,
            "delivered": self.delivered,
            "newest_delivered": self.newest_delivered.as_dict() if self.newest_delivered else None,
        }


@dataclass(frozen=True)
class ServiceCoverage:
    """One DAG's strip of windows, oldest first, and its totals."""

    config: ServiceWindows
    windows: tuple[Window, ...]
    totals: Totals

    @property
    def problems(self) -> int:
        """Windows failed or expired: what ``mdca-collector status`` exits 1 for."""
        return self.totals.windows.get(WindowState.FAILED, 0) + self.totals.windows.get(WindowState.EXPIRED, 0)

    def as_dict(self) -> dict[str, Any]:
        config = self.config
        return {
            "tenant": config.tenant,
            "service": config.service,
            "label": config.label,
            "dag_id": config.dag_id,
            "windowed": config.windowed,
            "period_seconds": _seconds(config.period),
            "lag_seconds": _seconds(config.lag),
            "retention_seconds": _seconds(config.retention) if config.retention is not None else None,
            "totals": self.totals.as_dict(),
            "windows": [window.as_dict() for window in self.windows],
        }


@dataclass(frozen=True)
class Coverage:
    """The coverage of every DAG of a collector config over the last ``days`` days, as of ``generated_at``."""

    generated_at: datetime
    days: int
    services: tuple[ServiceCoverage, ...]

    @property
    def since(self) -> datetime:
        """The start of the view: windows that end after it are shown."""
        return self.generated_at - timedelta(days=self.days)

    @property
    def problems(self) -> int:
        """Windows failed or expired, over every service."""
        return sum(service.problems for service in self.services)

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON document (module docstring): the plugin's ``coverage.json``, ``status --json``."""
        return {
            "generated_at": iso(self.generated_at),
            "days": self.days,
            "since": iso(self.since),
            "states": [state.value for state in WindowState],
            "services": [service.as_dict() for service in self.services],
        }


#: Makes a window's link from its DAG id and run id (the Airflow line's UI route; see ``airflow_db.run_link``).
LinkMaker = Callable[[str, str], str]


def service_coverage(
    config: ServiceWindows,
    runs: Iterable[RunRecord],
    now: datetime,
    days: int,
    link: LinkMaker | None = None,
    newest_delivered: RunRecord | None = None,
) -> ServiceCoverage:
    """The strip of one DAG's windows that end after ``now - days``, and its totals.

    :param runs: the DAG's runs (others are ignored), any order. A run belongs to the window its data interval starts
        in; several runs of one window (e.g. a failed one and a later one that succeeded): a successful one wins,
        else the latest.
    :param newest_delivered: the DAG's newest successful run, when it may lie before the view (freshness then
        still says how old the data in Devo is); runs in ``runs`` are considered too.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    by_window = _runs_by_window(config, [run for run in runs if run.dag_id == config.dag_id])
    windows = []
    for index in _window_indexes(config, now, days):
        start = config.first_start + config.period * index
        windows.append(_window(config, start, by_window.get(index, []), now, link))
    listed = tuple(w for w in windows if w is not None)
    return ServiceCoverage(config, listed, _totals(listed, by_window, config, now, newest_delivered))


def build_coverage(
    configs: Sequence[ServiceWindows],
    runs: Iterable[RunRecord],
    now: datetime,
    days: int,
    link: LinkMaker | None = None,
    newest_delivered: Mapping[str, RunRecord] | None = None,
) -> Coverage:
    """The coverage of every DAG in ``configs`` (one :func:`service_coverage` each), in their order."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, got {days}")
    runs_of: dict[str, list[RunRecord]] = {}
    for run in runs:  # grouped once: each DAG then looks only at its own runs
        runs_of.setdefault(run.dag_id, []).append(run)
    newest = newest_delivered or {}
    services = tuple(
        service_coverage(config, runs_of.get(config.dag_id, []), now, days, link, newest.get(config.dag_id))
        for config in configs
    )
    return Coverage(now, days, services)


def _window_indexes(config: ServiceWindows, now: datetime, days: int) -> range:
    """Indexes of the windows that end after ``now - days`` and start before ``now``, never before the first."""
    since = now - timedelta(days=days)
    period = config.period
    # The first window ending after `since`: index k with first_start + (k+1)*period > since.
    first = max(0, (since - config.first_start) // period)
    # Windows that start before now (later ones cannot have run, nor be due).
    stop = max(0, _ceil_div(now - config.first_start, period))
    return range(first, stop)


def _ceil_div(delta: timedelta, period: timedelta) -> int:
    return -((-delta) // period)


def _runs_by_window(config: ServiceWindows, runs: Iterable[RunRecord]) -> dict[int, list[RunRecord]]:
    """Runs by the index of the window their data interval starts in; runs before the first window are left out."""
    by_window: dict[int, list[RunRecord]] = {}
    for run in runs:
        if run.start is None or run.start < config.first_start:
            continue
        by_window.setdefault((run.start - config.first_start) // config.period, []).append(run)
    return by_window


def _chosen_run(runs: Sequence[RunRecord]) -> RunRecord | None:
    """The run that speaks for a window: its latest successful run, else its latest run."""
    if not runs:
        return None
    successful = [run for run in runs if run.state == "success"]
    return max(successful or runs, key=_run_order)


def _run_order(run: RunRecord) -> tuple[datetime, datetime, str]:
    floor = datetime.min.replace(tzinfo=timezone.utc)
    return (run.started_at or floor, run.finished_at or floor, run.run_id)


def _window(
    config: ServiceWindows, start: datetime, runs: Sequence[RunRecord], now: datetime, link: LinkMaker | None
) -> Window | None:
    end = start + config.period
    run = _chosen_run(runs)
    state = _state(config, start, end, run, now)
    if state is None:
        return None
    if run is None:
        return Window(start, end, state)
    stats, ship = run.stats or {}, run.ship or {}
    return Window(
        start,
        end,
        state,
        run.run_id,
        link(run.dag_id, run.run_id) if link else None,
        _count(stats.get("fetched")),
        _count(stats.get("late")),
        _delivered(ship),
        run.finished_at,
    )


def _state(
    config: ServiceWindows, start: datetime, end: datetime, run: RunRecord | None, now: datetime
) -> WindowState | None:
    """The window's state; None for a window not yet due that has no run (not listed)."""
    if run is not None and run.state == "success":
        return WindowState.DELIVERED
    expired = config.retention is not None and start < now - config.retention
    if run is None:
        if end + config.lag > now:
            return None
        return WindowState.EXPIRED if expired else WindowState.NOT_RUN
    if run.state in _LIVE_RUN_STATES:
        if any(state == "up_for_retry" for state in run.task_states.values()):
            return WindowState.RETRYING
        return WindowState.RUNNING
    # A failed run (or a state Airflow may add): not delivered, and nothing is running for it.
    return WindowState.EXPIRED if expired else WindowState.FAILED


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _delivered(ship: Mapping[str, Any]) -> int | None:
    """The window's events in Devo: what its run delivered, and what an earlier run had.

    A rerun ships only what no run delivered before (each record once) and counts the rest as skipped: without them
    a cleared and rerun window would read as delivering nothing.
    """
    delivered = _count(ship.get("delivered"))
    if delivered is None:
        return None
    return delivered + (_count(ship.get("skipped_delivered_before")) or 0)


def _totals(
    windows: Sequence[Window],
    by_window: Mapping[int, Sequence[RunRecord]],
    config: ServiceWindows,
    now: datetime,
    newest_delivered: RunRecord | None,
) -> Totals:
    counts = dict.fromkeys(WindowState, 0)
    for window in windows:
        counts[window.state] += 1
    candidates = [run for runs in by_window.values() for run in runs if run.state == "success" and run.end]
    if newest_delivered is not None and newest_delivered.end is not None:
        candidates.append(newest_delivered)
    newest = max(candidates, key=lambda run: (run.end, _run_order(run)), default=None)
    return Totals(
        counts,
        fetched=sum(w.fetched or 0 for w in windows),
        late=sum(w.late or 0 for w in windows),
        delivered=sum(w.delivered or 0 for w in windows),
        newest_delivered=_newest(newest, now),
    )


def _newest(run: RunRecord | None, now: datetime) -> NewestDelivered | None:
    if run is None or run.start is None or run.end is None:
        return None
    return NewestDelivered(run.start, run.end, run.run_id, run.finished_at, (now - run.end).total_seconds())


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())
