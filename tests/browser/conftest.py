"""Real-browser tests of Airflow 3's UI: Playwright drives Debian's Chromium against a real Airflow 3 and the emulators.

One world serves every browser test of a run (they all sit in the xdist group ``browser``, so on one worker): the
MDCA/Entra ID/Devo emulators in a child process, and an :class:`AirflowStack` (scheduler, dag-processor, triggerer,
api-server with the *Test* button enabled) whose DAG folder is the project's ``dags/`` with a collector YAML of its
own. The collector is a managed security provider's: two tenants (:data:`TENANTS`), each its own emulated MDCA tenant,
``mdca_<tenant>`` connection and ``mdca_api_<tenant>`` pool (made by ``mdca-collector setup``), both shipping to the
emulated Devo through ``devo_default``: ``contoso`` collects alerts and activities, ``fabrikam`` alerts (to a tag of
its own). Each emulated tenant has records from the collector's first window on (stored the instant they happen: each
window's records are known exactly), and the windows start on whole minutes, as the UI's date pickers (minute
precision) can name them.

One window fails by design: fabrikam's first alerts request and both its retries meet MDCA 500s, and its alerts DAG
has ``retries: 0`` (:data:`FAILING_DAG`): exactly one of its windows fails, the others are delivered. Every DAG is
unpaused as soon as the stack is up, so the scheduler catches up the collector's first windows while the first tests
run; a test waits for the runs it needs (REST) and may pause a DAG, which a test that needs its scheduler unpauses.
A test gets a fresh, logged-in browser profile (:func:`ui`) and keeps its screenshots in
``var/test-output/browser/<test name>/``, one on failure too.

Airflow 2.11's UI is another application: on that line nothing here is collected (never skipped).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page
from playwright.sync_api import Error as PlaywrightError

from airflow_provider_mdca.services import SERVICES
from tests.e2e.conftest import Plan, ms, plan_defaults
from tests.harness.airflow_stack import AIRFLOW_V3, AirflowStack
from tests.harness.browser import Screenshots, launch_chromium, log_in, new_context, output_folder

# Airflow 2.11: its Flask UI is not the one these tests drive; the tests are not collected at all.
collect_ignore_glob = [] if AIRFLOW_V3 else ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"
PERIOD = timedelta(minutes=5)
#: The collector's first windows of each DAG: ended when the world starts, caught up by the scheduler.
WINDOWS = 3
#: Alerts an hour in each emulated tenant: some 20 a window.
ALERTS_PER_HOUR = 240
#: Activities an hour (contoso's): some 10 a window.
ACTIVITIES_PER_HOUR = 120
#: The MDCA 500s that meet fabrikam's first alerts request: it and both its retries (its connection's max_retries).
FAULTS = ("500", "500", "500")


@dataclass(frozen=True)
class Tenant:
    """One tenant of the world's collector: its name there, its emulated MDCA tenant and what it collects."""

    name: str
    #: The emulated tenant's data (its records' ground truth): ``mdca_emulator.state.TenantConfig``.
    config: Any
    services: tuple[str, ...]
    #: Its ``tenants.<name>.services.<service>`` overrides in the collector YAML.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def conn_id(self) -> str:
        """Its ``mdca`` connection (``AIRFLOW_CONN_MDCA_<NAME>``)."""
        return f"mdca_{self.name}"

    @property
    def tenant_id(self) -> str:
        """The emulated MDCA tenant's id (its Entra ID tenant)."""
        return str(self.config.tenant_id)

    def dag_id(self, service: str) -> str:
        """The DAG of one of its services: ``<tenant>_mdca_<service>``."""
        return f"{self.name}_mdca_{service}"

    def tag(self, service: str) -> str:
        """The Devo tag its ``service`` ships to: its own when the YAML names one, else the service's."""
        return str(self.overrides.get(service, {}).get("tag", SERVICES[service].devo_table))

    @property
    def dag_ids(self) -> tuple[str, ...]:
        return tuple(self.dag_id(service) for service in self.services)


def world_tenants(plan: Plan) -> tuple[Tenant, ...]:
    """contoso (alerts, activities), fabrikam (alerts to its own tag, one window failing); records from the start."""
    from mdca_emulator import Rate, TimeSeriesConfig
    from mdca_emulator.state import TenantConfig

    def rate(per_hour: int) -> TimeSeriesConfig:
        return TimeSeriesConfig(segments=[Rate(per_hour, start_ms=ms(plan.start))])

    contoso = TenantConfig(
        "tenant-contoso",
        seed=1,
        services={"alerts": rate(ALERTS_PER_HOUR), "activities": rate(ACTIVITIES_PER_HOUR)},
        requests_per_minute=None,
        time_model="instant",
    )
    fabrikam = TenantConfig(
        "tenant-fabrikam",
        seed=2,
        services={"alerts": rate(ALERTS_PER_HOUR)},
        requests_per_minute=None,
        time_model="instant",
        fault_queue=list(FAULTS),
        fault_services=["alerts"],
    )
    return (
        Tenant("contoso", contoso, ("alerts", "activities")),
        Tenant(
            "fabrikam",
            fabrikam,
            ("alerts",),
            # No retry: the window whose fetch meets the 500s fails at once.
            {"alerts": {"tag": "my.app.fabrikam.alerts", "retries": 0}},
        ),
    )


#: The tenant whose alerts DAG has one failing window; no other DAG has any (the rerun test uses contoso's).
FAILING_TENANT = "fabrikam"
FAILING_DAG = f"{FAILING_TENANT}_mdca_alerts"


def minute_plan(period: timedelta, windows: int) -> Plan:
    """``windows`` windows of ``period`` that start on a whole minute and end at the last whole minute (ended)."""
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    return Plan(end - period * windows, period, windows)


def write_tenants_config(path: Path, plan: Plan, tenants: Sequence[Tenant]) -> Path:
    """The world's multi-tenant collector YAML: windows of the plan, no lag, each tenant's services enabled."""
    services = sorted({service for tenant in tenants for service in tenant.services})
    config = {
        "defaults": plan_defaults(plan),
        "tenants": {
            tenant.name: {
                "mdca_conn_id": tenant.conn_id,
                "services": {
                    name: {"enabled": name in tenant.services, **tenant.overrides.get(name, {})} for name in services
                },
            }
            for tenant in tenants
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class UiWorld:
    """What the browser tests share: the emulators, the Airflow stack, the collector's YAML and tenants."""

    emulator: Any  # mdca_emulator.process.EmulatorProcess
    stack: AirflowStack
    collector_config: Path
    #: The collector's first windows (``historic_date_utc`` is the first one's start), ended when the world started.
    plan: Plan
    tenants: Mapping[str, Tenant]

    @property
    def dag_ids(self) -> tuple[str, ...]:
        """Every collector DAG of the world (each tenant's services), tenants in the YAML's order."""
        return tuple(dag_id for tenant in self.tenants.values() for dag_id in tenant.dag_ids)

    def tenant(self, name: str = "contoso") -> dict[str, Any]:
        """One emulated MDCA tenant (its URL, tenant id, client id and secret, files token)."""
        described: dict[str, Any] = self.emulator.tenant(self.tenants[name].tenant_id)
        return described


@dataclass
class Ui:
    """One test's browser: a logged-in page on the stack's UI and the test's screenshots."""

    page: Page
    shots: Screenshots
    world: UiWorld

    @property
    def stack(self) -> AirflowStack:
        return self.world.stack

    def shot(self, step: str) -> Path:
        """A screenshot of this step, in the test's output folder."""
        return self.shots.take(self.page, step)


def connections(emulator: Any, tenants: Sequence[Tenant]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` of each tenant's ``mdca_<tenant>`` and of the shared ``devo_default``."""
    env = {"AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(emulator.devo_connection())}
    for tenant in tenants:
        # Two retries (three requests) before a fetch gives up: fabrikam's three 500s fail exactly one fetch.
        mdca = emulator.connection(
            tenant.tenant_id, requests_per_minute=100_000, max_retries=2, backoff_base=0.05, backoff_max=0.1
        )
        env[f"AIRFLOW_CONN_{tenant.conn_id.upper()}"] = json.dumps(mdca)
    return env


# Package-scoped, not session-scoped: the xdist worker that runs the browser tests goes on with other tests, which
# must meet neither a live Airflow (its scheduler would take their CPU) nor Playwright's sync API, whose event loop
# stays the thread's running loop while it is open (a later dag.test() then cannot run a trigger: asyncio.run()
# refuses inside a running loop).
@pytest.fixture(scope="package")
def ui_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiWorld]:
    """The emulators and a real Airflow 3 for the browser tests; stopped (and checked gone) after the last one."""
    from mdca_emulator.process import EmulatorProcess

    plan = minute_plan(PERIOD, WINDOWS)
    tenants = world_tenants(plan)
    emulator = EmulatorProcess(
        tmp_path_factory.mktemp("emulator"), tenants=[tenant.config.to_dict() for tenant in tenants]
    ).start()
    try:
        config = write_tenants_config(tmp_path_factory.mktemp("collector") / "collector.yaml", plan, tenants)
        env = {
            # The connection list's Test button (off by default in Airflow 3).
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "MDCA_COLLECTOR_CONFIG": str(config),
            **connections(emulator, tenants),
        }
        # No pool of the stack's own: the collector's setup creates each tenant's (mdca_api_<tenant>).
        stack = AirflowStack(tmp_path_factory.mktemp("airflow-home"), DAGS_FOLDER, env, pools={}).start()
    except BaseException:
        emulator.stop()
        raise
    world = UiWorld(emulator, stack, config, plan, {tenant.name: tenant for tenant in tenants})
    try:
        setup = stack.collector("setup")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        stack.wait_for_dags(world.dag_ids)
        stack.unpause(*world.dag_ids)  # the scheduler catches the first windows up while the tests start
        yield world
    finally:
        try:
            stack.stop()
        finally:
            emulator.stop()
        assert not stack.leftover_pids(), "the stack left processes behind"


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the browser tests (closed after the last one: see ``ui_world``)."""
    with launch_chromium() as chromium:
        yield chromium


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the item, so :func:`ui` knows whether its test failed."""
    report = yield
    setattr(item, f"browser_report_{report.when}", report)
    return report


@pytest.fixture
def ui(request: pytest.FixtureRequest, ui_world: UiWorld, browser: Browser) -> Iterator[Ui]:
    """A fresh browser profile logged into the stack's UI as ``admin``; screenshots in the test's own folder."""
    shots = Screenshots(output_folder(request.node.name))
    context = new_context(browser, ui_world.stack.base_url)
    page = context.new_page()
    session = Ui(page, shots, ui_world)
    try:
        log_in(page, ui_world.stack.base_url, "admin", ui_world.stack.password)
        session.shot("logged-in")
        yield session
    finally:
        report: pytest.TestReport | None = getattr(request.node, "browser_report_call", None)
        if report is None or report.failed:
            with contextlib.suppress(PlaywrightError):  # the page may be gone: what went wrong is in the report
                shots.take(page, "failure")
        context.close()
