"""Riding out outages: how long tasks are retried, what a failed try says, and the command past the horizon."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from airflow_provider_mdca.callbacks import OutageCallbacks, build_notifiers
from airflow_provider_mdca.config import parse_collector_config
from airflow_provider_mdca.config.model import NotifierSpec
from airflow_provider_mdca.errors import DeliveryError, InitVariablesError, PullError, SetupError
from airflow_provider_mdca.recovery import (
    OutageBook,
    component_of,
    retries_to_cover,
    retry_delays,
    retry_span,
)
from airflow_provider_mdca.staging import StagingError
from airflow_provider_mdca.undelivered import clear_commands, deliver, failed_windows, report

MINUTE = timedelta(minutes=1)
START = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)


def test_the_default_retries_span_a_day_of_outage_backing_off_to_fifteen_minutes() -> None:
    retries = retries_to_cover(timedelta(days=1), MINUTE, 15 * MINUTE)
    delays = [d for _, d in zip(range(retries), retry_delays(MINUTE, 15 * MINUTE), strict=False)]
    assert delays[:5] == [MINUTE, 2 * MINUTE, 4 * MINUTE, 8 * MINUTE, 15 * MINUTE] and max(delays) == 15 * MINUTE
    assert sum(delays, timedelta(0)) >= timedelta(days=1) > sum(delays[:-1], timedelta(0))
    assert retry_span(retries, MINUTE, 15 * MINUTE) == sum(delays, timedelta(0))


def test_the_config_derives_retries_from_the_horizon_unless_given() -> None:
    config = parse_collector_config(
        {
            "defaults": {"historic_date_utc": "2026-12-01", "recovery_horizon": "2h", "max_retry_delay": "10m"},
            "services": {"alerts": {"retries": 4}},
        }
    )
    activities, alerts = config.services["activities"], config.services["alerts"]
    assert activities.retries == "auto" and activities.task_retries == retries_to_cover(
        2 * 60 * MINUTE, MINUTE, 10 * MINUTE
    )
    assert activities.retry_span == timedelta(hours=2)
    assert alerts.task_retries == 4 and alerts.retry_span == MINUTE + 2 * MINUTE + 4 * MINUTE + 8 * MINUTE


@pytest.mark.parametrize(
    ("error", "component"),
    [
        (PullError(305, "x"), "MDCA"),
        (SetupError(100, "x"), "Entra ID"),
        (DeliveryError(501, "x"), "Devo"),
        (StagingError("disk"), "staging"),
        (OSError(28, "No space left on device"), "staging"),
        (ValueError("bug"), "the collector"),
    ],
)
def test_each_error_names_what_is_down(error: BaseException, component: str) -> None:
    assert component_of(error) == component


def test_an_outage_is_dated_from_its_first_failure_across_windows_and_ends_on_success(tmp_path: Path) -> None:
    book = OutageBook(tmp_path / "activities")
    first = book.failed("Devo", DeliveryError(501, "refused"), now=START)
    later = book.failed("Devo", DeliveryError(501, "refused again"), now=START + 30 * MINUTE)
    assert (first.since, later.since, later.failures) == (START, START, 2) and "refused again" in later.error
    book.failed("MDCA", PullError(305, "503"), now=START + 31 * MINUTE)
    assert {o.component for o in OutageBook(tmp_path / "activities").open()} == {"Devo", "MDCA"}
    ended = book.recovered(("Devo", "staging"))
    assert [o.component for o in ended] == ["Devo"] and [o.component for o in book.open()] == ["MDCA"]
    book.recovered(("MDCA",))
    assert not (tmp_path / "activities" / "_outage.json").exists()


def test_an_unreadable_outage_record_never_fails_the_task(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "_outage.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        outage = OutageBook(tmp_path / "alerts").failed("Devo", DeliveryError(501, "x"), now=START)
    assert outage.since == START and "could not be read" in caplog.text


def test_the_book_never_holds_a_secret(tmp_path: Path) -> None:
    from airflow_provider_mdca.redaction import register_secret

    register_secret("devo-token-value-123")
    OutageBook(tmp_path / "alerts").failed("Devo", DeliveryError(502, "token devo-token-value-123 refused"))
    assert "devo-token-value-123" not in (tmp_path / "alerts" / "_outage.json").read_text()


class Recorder:
    """A notifier: Airflow calls it with the task's context."""

    calls: ClassVar[list[tuple[str, Any]]] = []

    def __init__(self, label: str = "") -> None:
        self.label = label

    def __call__(self, context: Any) -> None:
        Recorder.calls.append((self.label, context["exception"]))


def broken_notifier(context: Any) -> None:
    raise RuntimeError("the chat service is down too")


def context(task_id: str, try_number: int, retries: int, exc: BaseException | None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="mdca_alerts", task_id=task_id, try_number=try_number)
    return {
        "ti": ti,
        "task": SimpleNamespace(retries=retries),
        "exception": exc,
        "data_interval_start": START,
        "data_interval_end": START + 5 * MINUTE,
    }


def callbacks(tmp_path: Path, notify: list[NotifierSpec]) -> OutageCallbacks:
    return OutageCallbacks(
        service="alerts",
        staging_base=lambda: tmp_path,
        retry_span=timedelta(days=1),
        notifiers=build_notifiers(notify, where="services.alerts.notify"),
    )


def test_each_retry_logs_what_is_down_since_when_and_calls_the_notifiers(tmp_path, caplog) -> None:
    Recorder.calls.clear()
    spec = [
        NotifierSpec(f"{__name__}.broken_notifier", ("retry",)),
        NotifierSpec(f"{__name__}.Recorder", ("retry", "failure"), {"label": "soc"}),
    ]
    hooks = callbacks(tmp_path, spec)
    error = DeliveryError(501, "connection refused")
    with caplog.at_level(logging.INFO, logger="airflow_provider_mdca.callbacks"):
        hooks.on_retry(context("ship", 1, 99, error))
        hooks.on_retry(context("ship", 2, 99, error))
        hooks.on_success(context("fetch", 1, 99, None))  # a fetch proves MDCA up, not Devo
        hooks.on_success(context("ship", 3, 99, None))
    lines = [r.getMessage() for r in caplog.records]
    down = [line for line in lines if "Devo down since" in line]
    assert len(down) == 2 and "try 2 of 100, retried with backoff until about" in down[1]
    assert "broken_notifier" in caplog.text  # logged, and the next notifier was still called
    assert [label for label, _ in Recorder.calls] == ["soc", "soc"]
    assert "Devo is back: it was down from" in lines[-1] and "(2 failed tries)" in lines[-1]


def test_the_last_try_says_not_delivered_and_the_command_that_delivers_it(tmp_path, caplog) -> None:
    Recorder.calls.clear()
    hooks = callbacks(tmp_path, [NotifierSpec(f"{__name__}.Recorder", ("failure",))])
    with caplog.at_level(logging.ERROR, logger="airflow_provider_mdca.callbacks"):
        hooks.on_failure(context("ship", 100, 99, DeliveryError(501, "connection refused")))
    assert "NOT DELIVERED: alerts [2026-12-06T08:00:00Z, 2026-12-06T08:05:00Z)" in caplog.text
    assert "mdca-collector undelivered --deliver --dag-id mdca_alerts" in caplog.text
    assert len(Recorder.calls) == 1


def test_a_notifier_that_cannot_be_built_names_its_entry() -> None:
    with pytest.raises(
        InitVariablesError, match=r"services.alerts.notify\[0\].notifier: cannot import 'no.such.Thing'"
    ):
        build_notifiers([NotifierSpec("no.such.Thing")], where="services.alerts.notify")
    with pytest.raises(InitVariablesError, match=r"notify\[0\].args: .*Recorder refused them"):
        build_notifiers([NotifierSpec(f"{__name__}.Recorder", args={"colour": 1})], where="services.alerts.notify")


AF3_RUNS = [
    {"dag_id": "mdca_files", "run_id": "scheduled__2026-12-06T08:10:00+00:00", "state": "failed",
     "logical_date": "2026-12-06T08:10:00+00:00"},
    {"dag_id": "mdca_files", "run_id": "scheduled__2026-12-06T08:00:00+00:00", "state": "failed",
     "logical_date": "2026-12-06T08:00:00+00:00"},
]  # fmt: skip


def test_undelivered_lists_failed_windows_and_clears_them_per_dag() -> None:
    config = parse_collector_config(
        {"defaults": {"historic_date_utc": "2026-12-01", "enabled": False}, "services": {"files": {"enabled": True}}}
    )
    asked: list[list[str]] = []

    def airflow(args: Any) -> str:
        asked.append(list(args))
        if args[0] == "tasks":
            return "No data found"
        return f"[2026-12-06T08:42:37Z] [warning] Could not import graphviz.\n{json.dumps(AF3_RUNS)}\n"

    windows = failed_windows(config, airflow)
    assert [w.start for w in windows] == [START, START + 10 * MINUTE]
    assert windows[0].end - windows[0].start == config.services["files"].period
    assert clear_commands(windows) == [
        ["tasks", "clear", "mdca_files", "--only-failed", "--yes", "-s", "2026-12-06T08:00:00Z", "-e",
         "2026-12-06T08:10:00Z"]
    ]  # fmt: skip
    lines: list[str] = []
    report(windows, lines.append)
    assert "2 window(s) not delivered" in lines[0] and "  mdca-collector undelivered --deliver" in lines
    deliver(windows, airflow, lines.append)
    assert asked[-1][:3] == ["tasks", "clear", "mdca_files"]
    lines.clear()
    report([], lines.append)
    assert "Every window" in lines[0]


def test_undelivered_reads_airflow_2_runs_by_their_execution_date(monkeypatch) -> None:
    from airflow_provider_mdca import _compat

    monkeypatch.setattr(_compat, "AIRFLOW_V3", False)
    config = parse_collector_config(
        {"defaults": {"historic_date_utc": "2026-12-01", "enabled": False}, "services": {"files": {"enabled": True}}}
    )
    asked: list[list[str]] = []
    row = {"dag_id": "mdca_files", "run_id": "scheduled__x", "state": "failed", "execution_date": START.isoformat()}

    def airflow(args: Any) -> str:
        asked.append(list(args))
        return json.dumps([row])

    assert [w.start for w in failed_windows(config, airflow)] == [START]
    assert asked[0][:4] == ["dags", "list-runs", "-d", "mdca_files"]
