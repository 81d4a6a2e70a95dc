"""A Devo outage longer than the old retries, on a live Airflow 3 scheduler: it heals by itself, or says what to run.

The collector's own DAG file runs activities and files in one-minute windows. From a window's end, the Devo relay
refuses every connection for a minute or more (until the files window has failed): longer than the sender's own
retries and, scaled as the windows are, than what Airflow's 3 fixed retries used to cover (before recovery_horizon
such a window failed, stayed out of Devo, and nothing re-shipped it).

- activities: ``recovery_horizon`` 6 minutes (the default is a day; scaled down as the windows are). Its ship is
  retried with backoff through the outage and delivers when Devo is back; the runs behind wait, then follow in
  order. No run fails and nobody touches Airflow: every activity stored in the windows is in Devo exactly once.
- files: ``recovery_horizon`` 20 s, shorter than the outage. Its window fails past the horizon, logging loudly that
  it is not delivered and the one command that delivers it; the runs behind it deliver. Then
  ``mdca-collector undelivered`` names that window (exit 1) and ``--deliver`` has the scheduler run it again: every
  file record is in Devo exactly once.

Each failed try logs what is down and since when. Airflow 3 only (the 2.11 harness has no live scheduler; the
retries, backoff and callbacks are built the same on both lines: tests/airflow/test_dag_factory.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_mdca._compat import AIRFLOW_V3
from tests.harness.airflow_stack import AirflowStack, DagRun
from tests.harness.outages import OutageRun, run_devo_outage

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("e2e-outage"), pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageRun]:
    run = run_devo_outage(tmp_path_factory.mktemp("outage"))
    yield run
    run.stop()
    assert not run.stack.leftover_pids(), "the stack left processes behind"


def ship_end(stack: AirflowStack, run: DagRun) -> datetime:
    answer = stack.api("GET", f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/ship")
    return datetime.fromisoformat(str(answer["end_date"]).replace("Z", "+00:00"))


def task_logs(stack: AirflowStack, run: DagRun, task_id: str) -> list[Path]:
    folder = stack.home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}" / f"task_id={task_id}"
    return sorted(folder.glob("**/attempt=*.log"))


if AIRFLOW_V3:

    def test_an_outage_heals_by_itself_within_the_horizon_and_past_it_names_the_command(outcome: OutageRun) -> None:
        # One test, not two: xdist may hand two tests of a module to two workers, each running the scenario.
        within_the_horizon_it_heals_by_itself_in_order(outcome)
        past_the_horizon_it_names_the_window_and_the_command_that_delivers_it(outcome)

    def within_the_horizon_it_heals_by_itself_in_order(outcome: OutageRun) -> None:
        runs = outcome.runs["mdca_activities"]
        assert len(runs) >= 5
        records, lost, doubled = outcome.delivered_once("activities")
        assert records > 0 and (lost, doubled) == (0, 0)
        retried = [run for run in runs if outcome.stack.task_states(run)["ship"][1] > 1]
        assert retried, "no activities window was caught by the outage: it was not exercised"
        ships = sorted(runs, key=lambda run: run.logical_date or datetime.min.replace(tzinfo=timezone.utc))
        ends = [ship_end(outcome.stack, run) for run in ships]
        assert ends == sorted(ends), "windows were delivered out of order"
        log = outcome.stack.task_log(retried[0], "ship", try_number=1)
        assert log is not None
        text = log.read_text(errors="replace")
        assert "Devo down since" in text and "retried with backoff until about" in text, text[-3000:]

    def past_the_horizon_it_names_the_window_and_the_command_that_delivers_it(outcome: OutageRun) -> None:
        listed = outcome.listed.stdout + outcome.listed.stderr
        assert outcome.listed.returncode == 1, listed
        assert "mdca_files  [" in listed and "mdca-collector undelivered --deliver" in listed, listed
        assert outcome.delivered.returncode == 0, outcome.delivered.stdout + outcome.delivered.stderr
        failed_try = [run for run in outcome.runs["mdca_files"] if outcome.stack.task_states(run)["ship"][1] > 1]
        assert failed_try, "the files window failed past its horizon is not among the runs"
        logs = "".join(
            p.read_text(errors="replace") for run in failed_try for p in task_logs(outcome.stack, run, "ship")
        )
        assert "NOT DELIVERED" in logs and "mdca-collector undelivered --deliver" in logs
        records, lost, doubled = outcome.delivered_once("files")
        assert records > 0 and (lost, doubled) == (0, 0)
