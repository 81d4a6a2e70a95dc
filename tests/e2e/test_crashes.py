"""Crashes lose nothing: SIGKILL hits the collector's tasks, and Airflow's scheduler, in a real Airflow 3.

The collector's own DAG file (``dags/mdca_collector.py``, configured through ``MDCA_COLLECTOR_CONFIG``) runs on a
live scheduler with the LocalExecutor against the emulators, and SIGKILL (never a polite stop) lands:

1. on activities' ``fetch`` while it pages through its window;
2. on alerts' ``flatten`` while its part is half written;
3. on a ``ship`` while a batch is in flight, over Devo's HTTP API (entities) and over the TLS relay (subnets);
4. on the scheduler (its process group and the tasks it runs) during ``airflow backfill create`` of files; a new
   scheduler is started.

A killed task is killed with its supervisor, so Airflow's own detection must find it (the heartbeat timeout, lowered
to 20 s for the test: ``[scheduler] task_instance_heartbeat_timeout``, its detection interval and ``[workers]
min_heartbeat_interval``; for the scheduler, ``scheduler_health_check_threshold`` and
``orphaned_tasks_check_interval``) and run it again; nobody clears or marks anything. Then Devo must hold every
record of the windows exactly once, but for a transport's at-least-once edge: the batch the killed task never
recorded is sent again (TLS: the relay never acknowledges; HTTP: Devo stored the request whose answer the killed
task never read), at most one batch, reported apart. The cases are ``tests/harness/crashes.py``'s, scaled down
(:data:`~tests.harness.crashes.SMALL`); the four task cases run at once, then the scheduler case. The test prints
one row per case: windows, records, lost, duplicated, delivered twice at each edge, human actions, time to heal.

Airflow 3 only: Airflow 2.11's harness has no live scheduler (it backfills in-process), so nothing there would
detect a lost task; its line keeps the retry-and-resume checks of test_dag_runs.py and test_backfill.py.
"""

from __future__ import annotations

import pytest

from airflow_provider_mdca._compat import AIRFLOW_V3
from tests.harness.crashes import SMALL, CrashLab, format_table, run_cases

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("e2e-crashes"), pytest.mark.timeout(900)]


if AIRFLOW_V3:

    def test_sigkilled_tasks_and_scheduler_lose_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
        with CrashLab(tmp_path_factory.mktemp("crashes"), SMALL) as lab:
            results = run_cases(lab)
        table = format_table(results)
        print(f"\n{table}")
        failures = [failure for result in results for failure in result.failures()]
        assert not failures, "\n".join([table, *failures])
        # The at-least-once edge, where a kill hit a ship task: at most the one batch in flight, nothing lost.
        for result in results:
            assert result.tls_edge_duplicates + result.http_edge_duplicates <= result.edge_allowance, result
            assert result.edge_allowance in (0, SMALL.batch_events), result
