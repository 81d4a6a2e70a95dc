"""The collector's metrics: their names, the values each task's end sends, and that sending never fails a task."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.callbacks import OutageCallbacks
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.errors import PullError
from airflow_provider_mdca.metrics import COUNTERS, TIMERS, ServiceMetrics, metric_name
from airflow_provider_mdca.services import SERVICES

END = datetime(2026, 12, 6, 8, 5, tzinfo=timezone.utc)


class Recorder:
    """A ``Stats`` that keeps what it was sent: ``(kind, name, value, tags)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any, dict[str, str]]] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: Any = None) -> None:
        self.sent.append(("c", stat, count, tags))

    def timing(self, stat: str, dt: Any, *, tags: Any = None) -> None:
        self.sent.append(("ms", stat, dt, tags))

    def values(self) -> dict[str, Any]:
        """Each metric's value: counters summed, as a StatsD server adds them up; a timing's last value."""
        values: dict[str, Any] = {}
        for kind, name, value, _ in self.sent:
            values[name] = values.get(name, 0) + value if kind == "c" else value
        return values


class Broken:
    """A ``Stats`` whose backend is gone: every call raises."""

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: Any = None) -> None:
        raise OSError("statsd host unreachable")

    def timing(self, stat: str, dt: Any, *, tags: Any = None) -> None:
        raise OSError("statsd host unreachable")


def test_names_carry_the_tenant_and_the_service_default_for_a_single_tenant_collector() -> None:
    assert metric_name(None, "alerts", "records_delivered") == "mdca.default.alerts.records_delivered"
    assert metric_name("contoso-eu_2", "data_enrichment", "throttled") == "mdca.contoso-eu_2.data_enrichment.throttled"
    # A dot would split the tenant into two StatsD segments; other characters Airflow would refuse outright.
    assert metric_name("a.b c/d", "files", "requests") == "mdca.a_b_c_d.files.requests"


#: The longest tenant name whose metrics Airflow's OpenTelemetry accepts with the prefix ``airflow``: any the config
#: accepts on Airflow 3 (255 characters a name); 16 characters on 2.11 (63 a name), as the README says.
OTEL_TENANT_LIMIT = 50 if AIRFLOW_V3 else 16


def test_the_longest_names_pass_airflows_own_statsd_and_opentelemetry_checks() -> None:
    """Airflow drops a name it finds invalid: StatsD allows 250 characters, OpenTelemetry 255 (Airflow 3) or 63 (2.11)
    with the prefix."""
    if AIRFLOW_V3:
        from airflow.sdk._shared.observability.metrics.validators import (
            stat_name_default_handler,
            stat_name_otel_handler,
        )
    else:  # pragma: no cover - the Airflow 2.11 run
        from airflow.metrics.validators import stat_name_default_handler, stat_name_otel_handler
    service = max(SERVICES, key=len)
    longest = max((*COUNTERS, *TIMERS), key=len)
    for metric in (*COUNTERS, *TIMERS):
        name = metric_name("t" * 50, service, metric)  # the longest tenant name the collector config accepts
        assert stat_name_default_handler(name) == name
        name = metric_name("t" * OTEL_TENANT_LIMIT, service, metric)
        assert stat_name_otel_handler("airflow", name) == f"airflow.{name}"
    if not AIRFLOW_V3:  # pragma: no cover - the Airflow 2.11 run
        from airflow.exceptions import InvalidStatsNameException

        with pytest.raises(InvalidStatsNameException):
            stat_name_otel_handler("airflow", metric_name("t" * (OTEL_TENANT_LIMIT + 1), service, longest))


def test_a_fetch_sends_its_request_and_record_counters_and_its_duration() -> None:
    stats = FetchStats(service="activities", requests=7, records=1200, retries=3, throttled=2, late=15)
    recorder = Recorder()
    metrics = ServiceMetrics(recorder, tenant="contoso", service="activities")
    metrics.fetch_requests(stats)
    metrics.fetched(stats, staged=1200, elapsed_seconds=2.5)
    prefix = "mdca.contoso.activities."
    assert recorder.sent == [
        ("c", prefix + "requests", 7, {"tenant": "contoso", "service": "activities"}),
        ("c", prefix + "throttled", 2, {"tenant": "contoso", "service": "activities"}),
        ("c", prefix + "request_retries", 3, {"tenant": "contoso", "service": "activities"}),
        ("c", prefix + "records_fetched", 1200, {"tenant": "contoso", "service": "activities"}),
        ("c", prefix + "records_late", 15, {"tenant": "contoso", "service": "activities"}),
        ("c", prefix + "records_staged", 1200, {"tenant": "contoso", "service": "activities"}),
        ("ms", prefix + "fetch_duration", timedelta(seconds=2.5), {"tenant": "contoso", "service": "activities"}),
    ]


def test_zero_counts_are_sent_so_that_every_series_exists_from_the_first_window() -> None:
    recorder = Recorder()
    ServiceMetrics(recorder, tenant=None, service="files").fetch_requests(FetchStats(requests=1))
    assert recorder.values() == {
        "mdca.default.files.requests": 1,
        "mdca.default.files.throttled": 0,
        "mdca.default.files.request_retries": 0,
    }


def test_flatten_sends_the_events_it_made() -> None:
    recorder = Recorder()
    ServiceMetrics(recorder, tenant=None, service="alerts").flattened(events=42, elapsed_seconds=0.25)
    assert recorder.values() == {
        "mdca.default.alerts.records_flattened": 42,
        "mdca.default.alerts.flatten_duration": timedelta(seconds=0.25),
    }


@pytest.mark.parametrize("window_end", [END, END.isoformat(), "2026-12-06T08:05:00Z"])
def test_a_ship_sends_what_devo_acknowledged_and_how_old_the_window_is_on_arrival(window_end: Any) -> None:
    recorder = Recorder()
    metrics = ServiceMetrics(recorder, tenant=None, service="alerts")
    metrics.delivered(60)
    metrics.delivered(39)
    metrics.shipped(elapsed_seconds=1.5, window_end=window_end, now=END + timedelta(seconds=42.5))
    assert recorder.values() == {
        "mdca.default.alerts.records_delivered": 99,
        "mdca.default.alerts.ship_duration": timedelta(seconds=1.5),
        "mdca.default.alerts.window_freshness": timedelta(seconds=42.5),
    }


def test_a_window_end_that_is_no_time_loses_only_the_freshness(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.metrics"):
        ServiceMetrics(recorder, tenant=None, service="files").shipped(elapsed_seconds=0.1, window_end="yesterday")
    assert set(recorder.values()) == {"mdca.default.files.records_delivered", "mdca.default.files.ship_duration"}
    assert "mdca.default.files.window_freshness was not sent" in caplog.text


def test_a_broken_metrics_backend_is_a_warning_never_an_error(caplog: pytest.LogCaptureFixture) -> None:
    metrics = ServiceMetrics(Broken(), tenant="contoso", service="alerts")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.metrics"):
        metrics.fetch_requests(FetchStats(requests=3))
        metrics.fetched(FetchStats(records=5), staged=5, elapsed_seconds=1.0)
        metrics.flattened(events=9, elapsed_seconds=1.0)
        metrics.delivered(9)
        metrics.shipped(elapsed_seconds=1.0, window_end=END)
        metrics.task_retried("ship")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3 + 4 + 2 + 1 + 3 + 1  # one line per metric: each was tried, none stopped the others
    assert all("OSError: statsd host unreachable" in line for line in warned)


def test_each_airflow_retry_of_a_task_is_counted_for_its_tenant_and_service(tmp_path: Path) -> None:
    recorder = Recorder()
    callbacks = OutageCallbacks(
        service="alerts", tenant="fabrikam", staging_base=lambda: tmp_path, retry_span=timedelta(hours=1)
    )
    callbacks.stats = lambda: recorder
    ti = SimpleNamespace(dag_id="fabrikam_mdca_alerts", task_id="fetch", try_number=1)
    context = {"ti": ti, "task": SimpleNamespace(retries=3), "exception": PullError(300, "MDCA answered 503")}
    callbacks.on_retry(context)
    callbacks.on_retry({**context, "ti": SimpleNamespace(dag_id="fabrikam_mdca_alerts", task_id="ship")})
    assert recorder.sent == [
        ("c", "mdca.fabrikam.alerts.task_retries", 1, {"tenant": "fabrikam", "service": "alerts", "task_id": "fetch"}),
        ("c", "mdca.fabrikam.alerts.task_retries", 1, {"tenant": "fabrikam", "service": "alerts", "task_id": "ship"}),
    ]


def test_a_retry_is_still_reported_when_stats_cannot_be_had(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def unavailable() -> Any:
        raise ImportError("no Stats here")

    callbacks = OutageCallbacks(
        service="files", staging_base=lambda: tmp_path, retry_span=timedelta(hours=1), stats=unavailable
    )
    ti = SimpleNamespace(dag_id="mdca_files", task_id="fetch", try_number=1)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.callbacks"):
        error = PullError(300, "MDCA answered 503")
        callbacks.on_retry({"ti": ti, "task": SimpleNamespace(retries=3), "exception": error})
    assert "task_retries of files was not counted: no Stats here" in caplog.text
    assert "MDCA down since" in caplog.text  # the outage line is still there
