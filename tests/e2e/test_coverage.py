"""The coverage view on a real Airflow against the emulators: the plugin's page and JSON, and ``mdca-collector status``.

Three windows of activities and of files are backfilled through the collector's own DAG file; the first files fetch
meets three MDCA 500s in a row (more than the connection retries) with ``retries: 0``, so exactly one window of files
fails. MDCA's realistic time model stores activities seconds to minutes after they happen and files at each scan, so
windows hold late records. The coverage must then say what a SOC engineer would check by hand: each window's state,
its records fetched and delivered equal to the emulator's ground truth for that window and to what Devo received,
the late records the emulator says were stored in it but happened before it, the failed window failed with the link
to its run, and a request without an Airflow user refused.

Airflow 3: the plugin's ``/mdca/coverage.json`` and ``/mdca/coverage`` on the api-server, then the CLI with the
stack's environment. Airflow 2.11 (no FastAPI app there): the CLI alone, after ``airflow dags backfill``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_mdca.coverage.model import iso
from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.e2e.conftest import DevoAdmin, Plan, ms, recent_plan, write_collector_config
from tests.harness.airflow_stack import AIRFLOW_V3, AirflowStack, DagRun
from tests.service_table import SNAPSHOTS

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("e2e-coverage")]

WINDOWS = 3
# Long windows: the next one ends a whole period after the backfilled range, so the scheduler starts no run of its
# own while the test runs (the view would then list it).
PERIOD = timedelta(minutes=10)
SERVICES_RUN = ("activities", "files")
FAILING = "files"
#: The field holding when a record happened, by the emulator's name (a late record happened before its window).
EVENT_TIME = {"activities": "date", "files": "modifiedDate"}
HOUR_MS = 3_600_000


@dataclass
class Collected:
    plan: Plan
    emulator: EmulatorProcess
    stack: AirflowStack
    runs: dict[str, list[DagRun]]
    devo: DevoAdmin

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``mdca-collector status <args>`` with the stack's environment (its metadata database and config)."""
        return self.stack.collector("status", *args)


def tenant(plan: Plan) -> TenantConfig:
    history = ms(plan.start) - HOUR_MS  # records from an hour before: the first window has late ones too
    config = TenantConfig(
        "tenant-e2e-coverage",
        seed=17,
        services={
            "activities": TimeSeriesConfig(segments=[Rate(6_000, (1, 2), history)]),
            "files": TimeSeriesConfig(segments=[Rate(1_200, (1,), history)]),
            **{name: SnapshotConfig(0) for name in SNAPSHOTS},
        },
        requests_per_minute=None,
        # The first files request and both its retries (the connection's max_retries: 2) fail: its window fails.
        fault_queue=["500", "500", "500"],
        fault_services=[FAILING],
    )
    return config.with_changes({"files": {"scan_interval_ms": 20_000}})


@pytest.fixture(scope="module")
def collected(start_emulator: Any, start_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Collected:
    plan = recent_plan(PERIOD, WINDOWS)
    emulator = start_emulator(tenant(plan))
    config = write_collector_config(
        tmp_path_factory.mktemp("collector") / "collector.yaml",
        plan,
        {"activities": {}, FAILING: {"retries": 0}},
    )
    mdca = emulator.connection(
        requests_per_minute=100_000, max_retries=2, backoff_base=0.05, backoff_max=0.1, retry_after_default=1
    )
    env = {
        "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(mdca),
        "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(emulator.devo_connection()),
        "MDCA_COLLECTOR_CONFIG": str(config),
    }
    stack = start_stack(env, executor=None if AIRFLOW_V3 else "DebugExecutor")
    dag_ids = [f"mdca_{service}" for service in SERVICES_RUN]
    # A window of files fails, by design.
    runs = stack.backfill_all(dag_ids, plan.start, plan.last_logical, expected=WINDOWS, may_fail=True)
    return Collected(plan, emulator, stack, runs, DevoAdmin(emulator.info["devo"]))  # stopped by the fixtures


def failed_runs(collected: Collected) -> list[DagRun]:
    return [run for runs in collected.runs.values() for run in runs if run.state != "success"]


def expected_windows(collected: Collected, service: str, link: str) -> list[dict[str, Any]]:
    """Each window as the coverage must show it: its run's state, the emulator's counts for a delivered window."""
    plan, emulator = collected.plan, collected.emulator
    runs = {run.logical_date: run for run in collected.runs[f"mdca_{service}"]}
    expected = []
    for k in range(plan.windows):
        begins = plan.start + plan.period * k
        run = runs.get(begins)
        start, end = ms(begins), ms(begins + plan.period)
        stored = set(emulator.truth(service, start, end))
        happened = set(emulator.truth(service, start, end, by=EVENT_TIME[service], as_of="horizon"))
        delivered = run is not None and run.state == "success"
        expected.append(
            {
                "start": iso(begins),
                "end": iso(begins + plan.period),
                "state": "not_run" if run is None else "delivered" if delivered else "failed",
                "run_id": run.run_id if run else None,
                "url": run_url(link, run) if run else None,
                "fetched": len(stored) if delivered else None,
                "late": len(stored - happened) if delivered else None,
                "delivered": len(stored) if delivered else None,
            }
        )
    return expected


def run_url(base: str, run: DagRun) -> str:
    if AIRFLOW_V3:
        return f"{base}/dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}"
    return f"{base}/dags/{run.dag_id}/grid?dag_run_id={quote(run.run_id, safe='')}"


def check_document(collected: Collected, document: dict[str, Any], base_url: str) -> list[str]:
    """Every difference between the coverage document and what Airflow, the emulator and Devo say."""
    problems = []
    services = {service["service"]: service for service in document["services"]}
    if sorted(services) != sorted(SERVICES_RUN):
        return [f"services {sorted(services)}, expected {sorted(SERVICES_RUN)}"]
    for name in SERVICES_RUN:
        service = services[name]
        expected = expected_windows(collected, name, base_url)
        if service["windows"] != expected:
            problems.append(f"{name} windows:\n  got      {service['windows']}\n  expected {expected}")
        in_devo = collected.devo.ids(SERVICES[name].devo_table)
        delivered = [w for w in expected if w["state"] == "delivered"]
        totals = service["totals"]
        if totals["delivered"] != len(in_devo) or sorted(in_devo) != sorted(set(in_devo)):
            problems.append(f"{name}: {totals['delivered']} delivered, Devo holds {len(in_devo)} (doubles?)")
        if totals["fetched"] != sum(w["fetched"] for w in delivered):
            problems.append(f"{name}: totals fetched {totals['fetched']}")
        if totals["late"] != sum(w["late"] for w in delivered):
            problems.append(f"{name}: totals late {totals['late']}")
        want = {state: sum(w["state"] == state for w in expected) for state in document["states"]}
        if totals["windows"] != want:
            problems.append(f"{name}: windows per state {totals['windows']}, expected {want}")
        newest = totals["newest_delivered"]
        if newest is None or newest["end"] != delivered[-1]["end"] or newest["freshness_seconds"] <= 0:
            problems.append(f"{name}: newest delivered {newest}, expected the end {delivered[-1]['end']}")
    late = sum(services[name]["totals"]["late"] for name in SERVICES_RUN)
    if not late:
        problems.append("no late record anywhere: the test's tenant should store records late")
    return problems


def test_the_run_failed_where_the_fault_was_injected(collected: Collected) -> None:
    failed = failed_runs(collected)
    assert [run.dag_id for run in failed] == [f"mdca_{FAILING}"], collected.runs
    assert all(len(runs) == WINDOWS for runs in collected.runs.values()), collected.runs


def test_status_json_from_the_cli_matches_airflow_the_emulator_and_devo(collected: Collected) -> None:
    result = collected.status("--json", "--days", "1")
    assert result.returncode == 1, result.stdout + result.stderr  # a window failed
    document = json.loads(result.stdout)
    assert document["days"] == 1
    base = f"http://127.0.0.1:{collected.stack.port}" if AIRFLOW_V3 else "http://localhost:8080"
    problems = check_document(collected, document, base)
    assert not problems, "\n".join(problems)


def test_status_text_from_the_cli_shows_the_strips_and_the_failed_window(collected: Collected) -> None:
    result = collected.status()
    assert result.returncode == 1, result.stdout + result.stderr
    [failed] = failed_runs(collected)
    assert failed.logical_date is not None
    strip = {"activities": "###", FAILING: "".join("F" if r is failed else "#" for r in collected.runs["mdca_files"])}
    for cells in strip.values():
        assert f"[{cells}]" in result.stdout, result.stdout
    assert f"failed: [{iso(failed.logical_date)}, {iso(failed.logical_date + PERIOD)})  run {failed.run_id}" in (
        result.stdout
    )
    assert "status: 1 window(s) failed or older than MDCA keeps" in result.stdout


def test_status_refuses_an_invalid_config(collected: Collected, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {period: -5}\n", encoding="utf-8")
    result = collected.status("--config", str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "FAIL  config" in result.stdout


if AIRFLOW_V3:

    def get(collected: Collected, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(
            f"{collected.stack.base_url}{path}", headers=headers, params=params, timeout=60, allow_redirects=False
        )

    def test_the_plugin_json_is_the_cli_document(collected: Collected) -> None:
        answer = get(collected, "/mdca/coverage.json", collected.stack.token(), days=1)
        assert answer.status_code == 200, answer.text
        document = answer.json()
        problems = check_document(collected, document, collected.stack.base_url)
        assert not problems, "\n".join(problems)
        cli = json.loads(collected.status("--json", "--days", "1").stdout)
        for plugin_service, cli_service in zip(document["services"], cli["services"], strict=True):
            assert plugin_service["windows"] == cli_service["windows"]

    def test_the_plugin_page_shows_each_window_with_its_state_counts_and_run_link(collected: Collected) -> None:
        answer = get(collected, "/mdca/coverage", collected.stack.token(), days=1)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        cells = page_cells(answer.text)
        for service in SERVICES_RUN:
            expected = expected_windows(collected, service, collected.stack.base_url)
            shown = cells[f"mdca_{service}"]
            assert [cell["data-window-start"] for cell in shown] == [w["start"] for w in expected]
            assert [cell["data-state"] for cell in shown] == [w["state"] for w in expected]
            assert [cell.get("href") for cell in shown] == [w["url"] for w in expected]
            for cell, window in zip(shown, expected, strict=True):
                for count in ("fetched", "late", "delivered"):
                    assert cell.get(f"data-{count}") == (None if window[count] is None else str(window[count]))

    def test_the_plugin_refuses_requests_without_an_airflow_user(collected: Collected) -> None:
        for path in ("/mdca/coverage", "/mdca/coverage.json"):
            assert get(collected, path).status_code == 401
            assert get(collected, path, "not-a-token").status_code in (401, 403)
            cookie = requests.get(
                f"{collected.stack.base_url}{path}", cookies={"_token": "forged"}, timeout=60, allow_redirects=False
            )
            assert cookie.status_code in (401, 403)

    def test_the_plugin_accepts_the_ui_session_cookie_and_is_linked_from_the_navigation(collected: Collected) -> None:
        answer = requests.get(
            f"{collected.stack.base_url}/mdca/coverage",
            cookies={"_token": collected.stack.token()},
            timeout=60,
        )
        assert answer.status_code == 200 and 'data-dag-id="mdca_files"' in answer.text
        plugins = collected.stack.api("GET", "/api/v2/plugins")["plugins"]
        [plugin] = [plugin for plugin in plugins if plugin["name"] == "mdca_coverage"]
        assert [view["href"] for view in plugin["external_views"]] == ["/mdca/coverage", "/mdca/coverage.json"]
        assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/mdca"]

    def test_the_plugin_rejects_days_out_of_range(collected: Collected) -> None:
        assert get(collected, "/mdca/coverage.json", collected.stack.token(), days=0).status_code == 422
        assert get(collected, "/mdca/coverage.json", collected.stack.token(), days=91).status_code == 422


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.dag_id = ""
        self.cells: dict[str, list[dict[str, str | None]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("data-dag-id"):
            self.dag_id = found["data-dag-id"] or ""
        elif "data-window-start" in found:
            self.cells.setdefault(self.dag_id, []).append(found)


def page_cells(page: str) -> dict[str, list[dict[str, str | None]]]:
    """The window cells of the page by DAG id, in order."""
    parser = _Cells()
    parser.feed(page)
    return parser.cells
