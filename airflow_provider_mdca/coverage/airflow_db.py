"""The coverage view's Airflow adapter: the collector DAGs' runs, task states and counts from the metadata database.

It works on Airflow 3 and 2.11.

Four queries whatever the number of runs: the runs of every DAG whose windows end in the view, the task instances
of those still queued or running (to tell ``retrying`` from ``running``), the two XComs of those runs (the fetch's
``mdca_stats``, the ship's return value; deserialised by Airflow's own XCom class: JSON on Airflow 3, JSON or pickle
on 2.11) and each DAG's newest successful run (freshness, even when it is older than the view). The rest is
:mod:`airflow_provider_mdca.coverage.model`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import and_, func, or_, select

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.config import ServiceConfig
from airflow_provider_mdca.coverage import DEFAULT_DAYS, service_windows
from airflow_provider_mdca.coverage.model import (
    FETCH_TASK,
    RETURN_KEY,
    SHIP_TASK,
    STATS_KEY,
    Coverage,
    RunRecord,
    TaskRecord,
    XComRecord,
    assemble_runs,
    build_coverage,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["read_coverage", "run_link", "ui_base_url"]

_LIVE = ("queued", "running")
log = logging.getLogger(__name__)


def ui_base_url() -> str:
    """The UI's base URL, without a trailing slash.

    Airflow's ``[api] base_url`` (2.11: ``[webserver] base_url``); empty when unset (links are then relative to the
    host the UI is read on).
    """
    from airflow.configuration import conf

    section = "api" if AIRFLOW_V3 else "webserver"
    return str(conf.get(section, "base_url", fallback="") or "").rstrip("/")


def run_link(base_url: str, dag_id: str, run_id: str) -> str:
    """The run's page in the UI: Airflow 3 ``/dags/<dag>/runs/<run>``, 2.11 the grid of the run."""
    if AIRFLOW_V3:
        return f"{base_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{base_url}/dags/{quote(dag_id, safe='')}/grid?dag_run_id={quote(run_id, safe='')}"


def read_coverage(
    dag_configs: Sequence[ServiceConfig],
    days: int = DEFAULT_DAYS,
    *,
    now: datetime | None = None,
    session: Session | None = None,
    base_url: str | None = None,
) -> Coverage:
    """The coverage of those DAGs over the last ``days`` days, as of ``now`` (default: the present).

    :param dag_configs: ``CollectorConfig.dag_configs`` (each tenant's enabled services), or some of them.
    :param base_url: where run links point (default: Airflow's configured UI address, :func:`ui_base_url`).
    :param session: a metadata database session (default: one of Airflow's own, closed after).
    """
    now = now or datetime.now(timezone.utc)
    services = [service_windows(service) for service in dag_configs]
    base = ui_base_url() if base_url is None else base_url.rstrip("/")
    if session is None:
        from airflow.utils.session import create_session

        with create_session() as own:
            runs, newest = _read(own, [s.dag_id for s in services], now - timedelta(days=days))
    else:
        runs, newest = _read(session, [s.dag_id for s in services], now - timedelta(days=days))
    return build_coverage(services, runs, now, days, lambda dag_id, run_id: run_link(base, dag_id, run_id), newest)


def _read(session: Session, dag_ids: Sequence[str], since: datetime) -> tuple[list[RunRecord], dict[str, RunRecord]]:
    from airflow.models.dagrun import DagRun

    if not dag_ids:
        return [], {}
    in_view = and_(DagRun.dag_id.in_(dag_ids), DagRun.data_interval_end > since)
    rows = session.execute(_select_runs().where(in_view)).all()
    runs = [_run(row) for row in rows]
    tasks = _tasks(session, in_view)
    xcoms = _xcoms(session, in_view)
    return assemble_runs(runs, tasks, xcoms), _newest_delivered(session, dag_ids)


def _select_runs() -> Any:
    """A query of the run columns :func:`_run` reads."""
    from airflow.models.dagrun import DagRun

    return select(
        DagRun.dag_id,
        DagRun.run_id,
        DagRun.state,
        DagRun.data_interval_start,
        DagRun.data_interval_end,
        DagRun.start_date,
        DagRun.end_date,
    )


def _run(row: Any) -> RunRecord:
    return RunRecord(
        dag_id=row.dag_id,
        run_id=row.run_id,
        state=str(row.state) if row.state is not None else None,
        start=_aware(row.data_interval_start),
        end=_aware(row.data_interval_end),
        started_at=_aware(row.start_date),
        finished_at=_aware(row.end_date),
    )


def _tasks(session: Session, in_view: Any) -> list[TaskRecord]:
    """Task states of the view's unfinished runs (a finished run's state says all)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    rows = session.execute(
        select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state)
        .join(DagRun, and_(DagRun.dag_id == TaskInstance.dag_id, DagRun.run_id == TaskInstance.run_id))
        .where(in_view, DagRun.state.in_(_LIVE))
    ).all()
    return [TaskRecord(row.dag_id, row.run_id, row.task_id, _text(row.state)) for row in rows]


def _xcoms(session: Session, in_view: Any) -> list[XComRecord]:
    """The fetch's counts and the ship's summary of the view's runs, deserialised as Airflow does."""
    from airflow.models.dagrun import DagRun

    model = _xcom_model()
    stats = and_(model.task_id == FETCH_TASK, model.key == STATS_KEY)
    shipped = and_(model.task_id == SHIP_TASK, model.key == RETURN_KEY)
    # The stored value as a row, not an ORM object: 2.11's XCom objects deserialise their value as they load (with the
    # backend's ``orm_deserialize_value``, which may give a placeholder), ``deserialize_value`` wants it as stored.
    query = (
        select(model.dag_id, model.run_id, model.task_id, model.key, model.value)
        .join(DagRun, DagRun.id == model.dag_run_id)
        .where(in_view, or_(stats, shipped), model.map_index == -1)
    )
    records = []
    for row in session.execute(query).all():
        try:
            value = model.deserialize_value(row)
        except Exception as exc:  # e.g. a pickle with pickling off: the window's counts are unknown, not an error
            log.warning("XCom %s of %s %s %s unreadable: %s", row.key, row.dag_id, row.run_id, row.task_id, exc)
            value = None
        records.append(XComRecord(row.dag_id, row.run_id, row.task_id, row.key, value))
    return records


def _xcom_model() -> Any:
    if AIRFLOW_V3:
        from airflow.models.xcom import XComModel

        return XComModel
    from airflow.models.xcom import XCom  # pragma: no cover - Airflow 2.11: the configured XCom backend's class

    return XCom  # pragma: no cover


def _newest_delivered(session: Session, dag_ids: Sequence[str]) -> dict[str, RunRecord]:
    """Each DAG's successful run with the latest window end, however old."""
    from airflow.models.dagrun import DagRun

    latest = (
        select(DagRun.dag_id.label("dag_id"), func.max(DagRun.data_interval_end).label("end"))
        .where(DagRun.dag_id.in_(dag_ids), DagRun.state == "success")
        .group_by(DagRun.dag_id)
        .subquery()
    )
    rows = session.execute(
        _select_runs()
        .join(latest, and_(DagRun.dag_id == latest.c.dag_id, DagRun.data_interval_end == latest.c.end))
        .where(DagRun.state == "success")
    ).all()
    return {row.dag_id: _run(row) for row in rows}


def _text(state: Any) -> str | None:
    return None if state is None else str(state.value if hasattr(state, "value") else state)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
