"""The coverage model on hand-built runs: each window's state, its counts, the totals and the freshness."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_mdca.config import parse_collector_config
from airflow_provider_mdca.coverage import service_windows
from airflow_provider_mdca.coverage.model import (
    MAX_DAYS,
    RunRecord,
    ServiceWindows,
    TaskRecord,
    WindowState,
    XComRecord,
    assemble_runs,
    build_coverage,
    service_coverage,
)

NOW = datetime(2026, 12, 6, 8, 1, 30, tzinfo=timezone.utc)
PERIOD = timedelta(minutes=5)
LAG = timedelta(minutes=2)
# Six windows due before NOW (08:01:30): 07:30 .. 07:55 (the last ends 07:55 + lag 2m < 08:01:30); 07:55-08:00 ends
# at 08:00, due at 08:02: not yet.
FIRST = datetime(2026, 12, 6, 7, 30, tzinfo=timezone.utc)
DAG = "mdca_activities"


def activities(first: datetime = FIRST, retention: timedelta | None = timedelta(days=30)) -> ServiceWindows:
    return ServiceWindows(None, "activities", "activities", DAG, PERIOD, first, LAG, retention, True)


def window(k: int) -> tuple[datetime, datetime]:
    return FIRST + PERIOD * k, FIRST + PERIOD * (k + 1)


def run(
    k: int,
    state: str | None,
    *,
    run_id: str | None = None,
    fetched: int | None = None,
    late: int = 0,
    delivered: int | None = None,
    tasks: dict[str, str | None] | None = None,
    started: datetime | None = None,
    dag_id: str = DAG,
) -> RunRecord:
    start, end = window(k)
    return RunRecord(
        dag_id,
        run_id or f"scheduled__{start.isoformat()}",
        state,
        start,
        end,
        started_at=started or end + LAG,
        finished_at=(started or end + LAG) + timedelta(seconds=20) if state in ("success", "failed") else None,
        task_states=tasks or {},
        stats=None if fetched is None else {"fetched": fetched, "late": late, "requests": 1, "throttled": 0},
        ship=None if delivered is None else {"staged": delivered, "delivered": delivered},
    )


def states(coverage_windows) -> list[str]:
    return [w.state.value for w in coverage_windows]


def test_each_window_gets_the_state_of_its_run_and_windows_not_yet_due_are_left_out():
    runs = [
        run(0, "success", fetched=400, late=3, delivered=400),
        run(1, "failed"),
        run(2, "running", tasks={"fetch": "up_for_retry", "ship": None}),
        run(3, "running", tasks={"fetch": "deferred"}),
        run(4, "queued"),
        # window 5 (07:55-08:00) is not yet due and has no run: not listed
    ]
    coverage = service_coverage(activities(), runs, NOW, 7)
    assert states(coverage.windows) == ["delivered", "failed", "retrying", "running", "running"]
    assert [w.start for w in coverage.windows] == [window(k)[0] for k in range(5)]
    first = coverage.windows[0]
    assert (first.fetched, first.late, first.delivered, first.run_id) == (400, 3, 400, runs[0].run_id)


def test_a_due_window_without_a_run_is_not_run_and_a_live_window_with_a_run_is_listed_running():
    now = FIRST + PERIOD * 3 + timedelta(minutes=1)  # windows 0, 1 due (2 ends at 07:45, due 07:47 > 07:46)
    runs = [run(0, "success", fetched=1, delivered=1), run(2, "running", tasks={"fetch": "deferred"})]
    coverage = service_coverage(activities(), runs, now, 7)
    assert states(coverage.windows) == ["delivered", "not_run", "running"]


def test_a_rerun_that_succeeded_after_a_failed_run_of_the_same_window_counts_as_delivered():
    failed = run(0, "failed", run_id="manual__first", started=FIRST + timedelta(minutes=8))
    again = run(0, "success", run_id="backfill__again", fetched=50, delivered=50, started=FIRST + timedelta(hours=1))
    coverage = service_coverage(activities(), [again, failed], NOW, 7)
    assert coverage.windows[0].state is WindowState.DELIVERED
    assert (coverage.windows[0].run_id, coverage.windows[0].delivered) == ("backfill__again", 50)
    assert coverage.totals.windows[WindowState.FAILED] == 0


def test_a_cleared_window_rerun_counts_the_events_an_earlier_run_delivered():
    rerun = dataclasses.replace(
        run(0, "success", fetched=400), ship={"staged": 400, "delivered": 3, "skipped_delivered_before": 397}
    )
    assert service_coverage(activities(), [rerun], NOW, 7).windows[0].delivered == 400


def test_the_latest_run_speaks_for_an_undelivered_window():
    failed = run(0, "failed", run_id="a", started=FIRST + timedelta(minutes=8))
    retried = run(0, "running", run_id="b", started=FIRST + timedelta(minutes=30))
    assert service_coverage(activities(), [failed, retried], NOW, 7).windows[0].state is WindowState.RUNNING


def test_a_run_without_xcom_is_delivered_with_unknown_counts_and_the_totals_add_the_known_ones():
    runs = [run(0, "success"), run(1, "success", fetched=10, late=2, delivered=12)]
    coverage = service_coverage(activities(), runs, NOW, 7)
    assert [(w.fetched, w.late, w.delivered) for w in coverage.windows[:2]] == [(None, None, None), (10, 2, 12)]
    totals = coverage.totals
    assert (totals.fetched, totals.late, totals.delivered) == (10, 2, 12)
    assert coverage.as_dict()["windows"][0]["fetched"] is None


def test_windows_before_historic_date_are_neither_listed_nor_matched_to_runs():
    first = FIRST + PERIOD * 2
    stray = run(0, "success", fetched=9, delivered=9)  # a run of a window before the first (an older config)
    coverage = service_coverage(activities(first), [stray, run(2, "success", fetched=1, delivered=1)], NOW, 7)
    assert [w.start for w in coverage.windows] == [first + PERIOD * k for k in range(3)]
    assert states(coverage.windows) == ["delivered", "not_run", "not_run"]
    assert coverage.totals.fetched == 1


def test_a_service_whose_first_window_is_not_due_lists_nothing():
    coverage = service_coverage(activities(NOW - timedelta(minutes=1)), [], NOW, 7)
    assert coverage.windows == ()
    assert coverage.totals.newest_delivered is None
    assert coverage.problems == 0


def test_only_windows_ending_in_the_last_days_are_listed():
    first = NOW - timedelta(days=10)
    config = ServiceWindows(None, "files", "files", "mdca_files", timedelta(hours=1), first, LAG, None, True)
    coverage = service_coverage(config, [], NOW, 2)
    assert coverage.windows[0].end > NOW - timedelta(days=2)
    assert coverage.windows[0].start <= NOW - timedelta(days=2)
    assert all(w.end + LAG <= NOW for w in coverage.windows)
    assert len(coverage.windows) == 47  # 48 hourly windows start in the 2 days; the last is not yet due


def test_the_retention_boundary_a_window_starting_exactly_at_it_is_still_readable():
    retention = timedelta(days=30)
    now = NOW.replace(second=0, minute=0)
    boundary = now - retention  # a window start: hourly windows from a whole hour
    config = ServiceWindows(
        None, "activities", "activities", DAG, timedelta(hours=1), boundary - timedelta(hours=2), LAG, retention, True
    )
    coverage = service_coverage(config, [run_at(boundary - timedelta(hours=1), "failed")], now, 31)
    by_start = {w.start: w.state for w in coverage.windows}
    assert by_start[boundary - timedelta(hours=2)] is WindowState.EXPIRED  # not run, before what MDCA keeps
    assert by_start[boundary - timedelta(hours=1)] is WindowState.EXPIRED  # failed, and now unreadable
    assert by_start[boundary] is WindowState.NOT_RUN  # starts exactly at the limit: still readable whole
    assert coverage.problems == 2
    later = service_coverage(config, [], now + timedelta(microseconds=1), 31)
    assert {w.start: w.state for w in later.windows}[boundary] is WindowState.EXPIRED


def run_at(start: datetime, state: str, period: timedelta = timedelta(hours=1)) -> RunRecord:
    return RunRecord(DAG, f"r{start:%H%M}", state, start, start + period, start + period, start + period)


def test_a_delivered_window_older_than_retention_stays_delivered_and_a_running_one_stays_running():
    retention = timedelta(days=30)
    first = NOW.replace(second=0, minute=0) - retention - timedelta(hours=3)
    config = ServiceWindows(None, "activities", "activities", DAG, timedelta(hours=1), first, LAG, retention, True)
    runs = [run_at(first, "success"), run_at(first + timedelta(hours=1), "running")]
    coverage = service_coverage(config, runs, NOW, 31)
    assert states(coverage.windows[:3]) == ["delivered", "running", "expired"]


def test_a_snapshot_service_has_a_window_a_period_and_never_expires():
    config = service_windows(
        parse_collector_config(
            {"defaults": {"historic_date_utc": "2026-10-01T00:00:00Z"}, "services": {"entities": {"enabled": True}}}
        ).enabled["entities"]
    )
    assert (config.windowed, config.retention, config.period) == (False, None, timedelta(days=1))
    start = datetime(2026, 12, 4, tzinfo=timezone.utc)
    snapshot = RunRecord(
        "mdca_entities",
        "scheduled__x",
        "success",
        start,
        start + timedelta(days=1),
        finished_at=start + timedelta(days=1, minutes=1),
        stats={"fetched": 250, "late": 0},
        ship={"delivered": 250},
    )
    coverage = service_coverage(config, [snapshot], NOW, MAX_DAYS)
    assert len(coverage.windows) == 66  # 2026-10-01 .. 2026-12-05 (the first window): the day ending 12-06 is due
    assert coverage.windows[0].start == datetime(2026, 10, 1, tzinfo=timezone.utc)
    assert WindowState.EXPIRED not in {w.state for w in coverage.windows}
    assert coverage.totals.windows[WindowState.NOT_RUN] == 65
    assert coverage.totals.delivered == 250
    assert coverage.as_dict()["windowed"] is False


def test_freshness_is_now_minus_the_newest_delivered_window_end_and_says_when_it_was_delivered():
    runs = [run(0, "success", fetched=1, delivered=1), run(1, "success", fetched=2, delivered=2), run(2, "failed")]
    newest = service_coverage(activities(), runs, NOW, 7).totals.newest_delivered
    assert newest is not None
    assert newest.end == window(1)[1]
    assert newest.freshness_seconds == (NOW - window(1)[1]).total_seconds()
    assert newest.delivered_at == runs[1].finished_at
    assert newest.run_id == runs[1].run_id


def test_freshness_comes_from_a_delivered_run_older_than_the_view():
    old_start = FIRST - timedelta(days=9)
    old = RunRecord(DAG, "old", "success", old_start, old_start + PERIOD, finished_at=old_start + PERIOD)
    coverage = service_coverage(activities(FIRST - timedelta(days=30)), [], NOW, 1, newest_delivered=old)
    assert coverage.totals.newest_delivered is not None
    assert coverage.totals.newest_delivered.run_id == "old"
    assert coverage.totals.newest_delivered.freshness_seconds == (NOW - old.end).total_seconds()


def test_totals_count_windows_per_state_and_problems_are_failed_plus_expired():
    runs = [run(0, "success", fetched=5, delivered=5), run(1, "failed"), run(2, "failed")]
    coverage = service_coverage(activities(), runs, NOW, 7)
    assert coverage.totals.windows == {
        WindowState.DELIVERED: 1,
        WindowState.FAILED: 2,
        WindowState.RETRYING: 0,
        WindowState.RUNNING: 0,
        WindowState.NOT_RUN: 2,
        WindowState.EXPIRED: 0,
    }
    assert coverage.problems == 2


def test_runs_of_other_dags_are_ignored_and_links_are_made_per_run():
    runs = [run(0, "success", dag_id="contoso_mdca_activities"), run(1, "failed")]
    coverage = service_coverage(activities(), runs, NOW, 7, link=lambda dag_id, run_id: f"/dags/{dag_id}/runs/{run_id}")
    assert coverage.windows[0].state is WindowState.NOT_RUN and coverage.windows[0].url is None
    assert coverage.windows[1].url == f"/dags/{DAG}/runs/{runs[1].run_id}"


def test_assemble_runs_attaches_task_states_and_the_two_xcoms_to_their_runs():
    bare = [RunRecord(DAG, "r1", "running", *window(0)), RunRecord(DAG, "r2", "success", *window(1))]
    tasks = [TaskRecord(DAG, "r1", "fetch", "up_for_retry"), TaskRecord(DAG, "r1", "ship", None)]
    xcoms = [
        XComRecord(DAG, "r2", "fetch", "mdca_stats", {"fetched": 7, "late": 1}),
        XComRecord(DAG, "r2", "fetch", "return_value", "file:///staging/manifest.json"),
        XComRecord(DAG, "r2", "ship", "return_value", {"staged": 7, "delivered": 7}),
        XComRecord("other_dag", "r2", "ship", "return_value", {"delivered": 99}),
    ]
    r1, r2 = assemble_runs(bare, tasks, xcoms)
    assert r1.task_states == {"fetch": "up_for_retry", "ship": None}
    assert (r1.stats, r1.ship) == (None, None)
    assert (r2.stats, r2.ship) == ({"fetched": 7, "late": 1}, {"staged": 7, "delivered": 7})
    coverage = service_coverage(activities(), [r1, r2], NOW, 7)
    assert states(coverage.windows[:2]) == ["retrying", "delivered"]
    assert coverage.windows[1].delivered == 7


def test_counts_that_are_not_whole_numbers_are_unknown():
    odd = RunRecord(DAG, "r", "success", *window(0), stats={"fetched": "7", "late": True}, ship={"delivered": 1.5})
    first = service_coverage(activities(), [odd], NOW, 7).windows[0]
    assert (first.fetched, first.late, first.delivered) == (None, None, None)


def test_the_json_document_has_its_documented_shape():
    runs = [run(0, "success", fetched=4, late=1, delivered=4), run(1, "failed")]
    coverage = build_coverage([activities()], runs, NOW, 7, link=lambda d, r: f"http://ui/dags/{d}/runs/{r}")
    document = json.loads(json.dumps(coverage.as_dict()))
    assert set(document) == {"generated_at", "days", "since", "states", "services"}
    assert (document["generated_at"], document["days"], document["since"]) == (
        "2026-12-06T08:01:30Z",
        7,
        "2026-11-29T08:01:30Z",
    )
    assert document["states"] == ["delivered", "failed", "retrying", "running", "not_run", "expired"]
    [service] = document["services"]
    assert set(service) == {
        "tenant",
        "service",
        "label",
        "dag_id",
        "windowed",
        "period_seconds",
        "lag_seconds",
        "retention_seconds",
        "totals",
        "windows",
    }
    assert (service["tenant"], service["service"], service["dag_id"]) == (None, "activities", DAG)
    assert (service["period_seconds"], service["lag_seconds"], service["retention_seconds"]) == (300, 120, 2592000)
    totals = service["totals"]
    assert totals["windows"] == {
        "delivered": 1,
        "failed": 1,
        "retrying": 0,
        "running": 0,
        "not_run": 3,
        "expired": 0,
    }
    assert (totals["fetched"], totals["late"], totals["delivered"]) == (4, 1, 4)
    assert totals["newest_delivered"] == {
        "start": "2026-12-06T07:30:00Z",
        "end": "2026-12-06T07:35:00Z",
        "run_id": runs[0].run_id,
        "delivered_at": "2026-12-06T07:37:20Z",
        "freshness_seconds": 1590.0,
    }
    assert service["windows"][1] == {
        "start": "2026-12-06T07:35:00Z",
        "end": "2026-12-06T07:40:00Z",
        "state": "failed",
        "run_id": runs[1].run_id,
        "url": f"http://ui/dags/{DAG}/runs/{runs[1].run_id}",
        "fetched": None,
        "late": None,
        "delivered": None,
    }


def test_tenants_are_kept_apart_by_dag_id():
    contoso = ServiceWindows("contoso", "alerts", "contoso/alerts", "contoso_mdca_alerts", PERIOD, FIRST, LAG)
    fabrikam = ServiceWindows("fabrikam", "alerts", "fabrikam/alerts", "fabrikam_mdca_alerts", PERIOD, FIRST, LAG)
    runs = [run(0, "success", dag_id="contoso_mdca_alerts"), run(0, "failed", dag_id="fabrikam_mdca_alerts")]
    coverage = build_coverage([contoso, fabrikam], runs, NOW, 7)
    assert [s.config.tenant for s in coverage.services] == ["contoso", "fabrikam"]
    assert [s.windows[0].state.value for s in coverage.services] == ["delivered", "failed"]
    assert coverage.problems == 1
    assert [s["tenant"] for s in coverage.as_dict()["services"]] == ["contoso", "fabrikam"]


@pytest.mark.parametrize("days", [0, MAX_DAYS + 1])
def test_days_out_of_range_are_refused(days):
    with pytest.raises(ValueError, match="days must be between 1 and"):
        build_coverage([activities()], [], NOW, days)


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        service_coverage(activities(), [], NOW.replace(tzinfo=None), 7)


def test_seven_days_of_five_minute_windows_is_2016_windows():
    now = datetime(2026, 12, 6, 8, 2, tzinfo=timezone.utc)  # the window ending at 08:00 just became due
    coverage = service_coverage(activities(datetime(2026, 11, 1, tzinfo=timezone.utc)), [], now, 7)
    assert len(coverage.windows) == 2016
    assert (coverage.windows[0].end, coverage.windows[-1].end) == (now - timedelta(days=7, minutes=-3), now - LAG)


@pytest.mark.parametrize("days", ["0", "91", "seven"])
def test_status_refuses_days_out_of_range_before_reading_anything(days, capsys):
    from airflow_provider_mdca.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["status", "--days", days])
    assert exited.value.code == 2
    assert "a whole number of days from 1 to 90" in capsys.readouterr().err


def test_status_exits_2_on_an_invalid_config(tmp_path, capsys):
    from airflow_provider_mdca.cli import main

    bad = tmp_path / "collector.yaml"
    bad.write_text("services: {alerts: {period: soon}}\n", encoding="utf-8")
    assert main(["status", "--json", "--config", str(bad)]) == 2
    assert capsys.readouterr().out.startswith(f"FAIL  config {bad}: ")


def test_a_multi_tenant_config_gives_a_strip_per_tenant_and_service():
    config = parse_collector_config(
        {
            "defaults": {"historic_date_utc": "2026-12-06T07:00:00Z", "enabled": False},
            "services": {"alerts": {"enabled": True}, "entities": {"enabled": True}},
            "tenants": {"contoso": {"mdca_conn_id": "mdca_contoso"}, "fabrikam": {"mdca_conn_id": "mdca_fabrikam"}},
        }
    )
    windows = [service_windows(service) for service in config.dag_configs]
    failed = RunRecord("fabrikam_mdca_alerts", "r", "failed", FIRST, FIRST + PERIOD)
    coverage = build_coverage(windows, [failed], NOW, 7)
    shown = [(s.config.tenant, s.config.service, s.config.dag_id, s.config.label) for s in coverage.services]
    assert shown == [
        ("contoso", "alerts", "contoso_mdca_alerts", "contoso/alerts"),
        ("contoso", "entities", "contoso_mdca_entities", "contoso/entities"),
        ("fabrikam", "alerts", "fabrikam_mdca_alerts", "fabrikam/alerts"),
        ("fabrikam", "entities", "fabrikam_mdca_entities", "fabrikam/entities"),
    ]
    fabrikam_alerts = coverage.services[2]
    assert fabrikam_alerts.windows[6].state is WindowState.FAILED  # 07:30, the seventh five-minute window from 07:00
    assert coverage.problems == 1
