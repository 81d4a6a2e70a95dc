"""The fetch's lag: a live window's fetch defers itself until the window's end + lag; an old window's reads at once.

What a user relies on: records MDCA stores a little late are in the window when it is read, a live window waits in the
triggerer (no worker, no pool slot, no request) rather than fetching early, and a catch-up or backfill does not wait.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_mdca import _compat
from airflow_provider_mdca.hooks.mdca import MdcaHook
from airflow_provider_mdca.operators.mdca import MdcaFetchOperator, fetch_operator
from tests.forbidden_calls import ForbiddenCalls

try:  # Airflow 3
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # pragma: no cover - Airflow 2.11
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined,unused-ignore]

PERIOD = timedelta(minutes=5)
LAG = timedelta(minutes=2)


def fetch(service: str = "alerts", lag: timedelta = LAG) -> MdcaFetchOperator:
    return fetch_operator(service)(task_id="fetch", service=service, staging_url="file:///nonexistent/mdca", lag=lag)


def context(end: datetime) -> dict[str, Any]:
    return {"data_interval_start": end - PERIOD, "data_interval_end": end}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any connection, network or fetch use is recorded and fails the test."""
    calls = ForbiddenCalls(monkeypatch, "a deferring fetch")
    calls.forbid(_compat.BaseHook, "get_connection", "BaseHook.get_connection")
    calls.forbid(MdcaHook, "get_conn", "MdcaHook.get_conn")
    calls.forbid(MdcaHook, "fetch", "MdcaHook.fetch")
    calls.forbid_network()
    return calls.touched


def trigger_moment(deferred: TaskDeferred) -> datetime:
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath.endswith(".DateTimeTrigger"), classpath
    return kwargs["moment"]


@pytest.mark.parametrize("service", ["activities", "alerts", "files"])
def test_a_live_window_defers_until_its_end_plus_the_lag_without_touching_the_network(offline, service):
    end = datetime.now(timezone.utc) - timedelta(seconds=30)  # ended, but end + lag is still ahead
    operator = fetch(service)
    operator.fetch_window = lambda ctx: pytest.fail("fetched a live window before its end + lag")  # type: ignore[method-assign]
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context(end))
    assert info.value.method_name == "execute_after_lag"
    assert trigger_moment(info.value) == end + LAG
    assert offline == []


def test_a_window_still_running_defers_even_without_a_lag(offline):
    end = datetime.now(timezone.utc) + timedelta(minutes=1)  # a manual run whose window has not ended yet
    operator = fetch(lag=timedelta(0))
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context(end))
    assert info.value.method_name == "execute_after_lag"
    assert trigger_moment(info.value) == end
    assert offline == []


@pytest.mark.parametrize(
    "ago",
    [LAG + timedelta(seconds=1), timedelta(days=3)],
    ids=["just past the lag", "a catch-up window"],
)
def test_a_window_whose_end_plus_lag_has_passed_is_fetched_at_once(ago):
    end = datetime.now(timezone.utc) - ago
    operator = fetch()
    read: list[dict[str, Any]] = []
    operator.fetch_window = lambda ctx: read.append(ctx) or "manifest"  # type: ignore[method-assign]
    ctx = context(end)
    assert operator.execute(ctx) == "manifest"
    assert read == [ctx]


def test_the_resumed_fetch_reads_the_window():
    operator = fetch()
    read: list[dict[str, Any]] = []
    operator.fetch_window = lambda ctx: read.append(ctx) or "manifest"  # type: ignore[method-assign]
    ctx = context(datetime.now(timezone.utc) - timedelta(seconds=30))
    assert operator.execute_after_lag(ctx, event=None) == "manifest"
    assert read == [ctx]


def test_the_lag_defaults_to_none():
    assert fetch_operator("alerts")(task_id="fetch").lag == timedelta(0)


def test_a_negative_lag_is_refused():
    with pytest.raises(ValueError, match="lag must not be negative"):
        fetch(lag=timedelta(seconds=-1))
