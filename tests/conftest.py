"""Test-run set-up shared by every test: one Airflow home per run (set before Airflow is imported), and the
MDCA/Entra ID emulator over real sockets: one server per test process, a fresh tenant per test.

The controller process (or the only process, without xdist) makes the home; pytest-xdist workers inherit the
environment, so every worker of a run shares one Airflow home and, once tests need it, one migrated database.
"""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def _airflow_environment() -> None:
    if os.environ.get("MDCA_TEST_AIRFLOW_HOME"):
        return  # an xdist worker: the controller set everything up
    home = Path(tempfile.mkdtemp(prefix="mdca-airflow-home-"))
    os.environ.update(
        {
            "MDCA_TEST_AIRFLOW_HOME": str(home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # The run's own Entra ID token agent (airflow_provider_mdca/token_agent.py), stopped when the run ends.
            "MDCA_TOKEN_AGENT_DIR": tempfile.mkdtemp(prefix="mdca-ta-"),
        }
    )


_airflow_environment()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller (or the only process) stops the run's token agents and removes their directory."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.harness.token_agents import stop_agents

    stop_agents(Path(os.environ["MDCA_TOKEN_AGENT_DIR"]))


# Imported after the Airflow environment is set: the provider package may import Airflow.
from airflow_provider_mdca.client import MdcaClient, MdcaConfig  # noqa: E402
from mdca_emulator import EmulatorServer, TenantConfig  # noqa: E402


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The run's Airflow home."""
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """The run's Airflow metadata database, migrated once for every worker of the run (SQLite in the home).

    The first worker that needs it migrates under a file lock; the others wait and reuse it. Only tests that need a
    database pay for the migration.
    """
    database = airflow_home / "airflow.db"
    marker = airflow_home / "airflow.db.migrated"
    with open(airflow_home / "airflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            airflow = Path(sys.executable).with_name("airflow")
            subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=600)
            marker.touch()
    return database


_tenant_numbers = itertools.count()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with EmulatorServer(tmp_path_factory.mktemp("emulator")) as server:
        yield server


@pytest.fixture
def make_tenant(emulator: EmulatorServer) -> Callable[..., TenantConfig]:
    """Register a tenant with a unique id (throttling off unless asked) and return its config.

    Knobs as :meth:`TenantConfig.with_changes` takes them, a service by name: ``make(alerts=TimeSeriesConfig(...))``.
    """

    def make(**fields: Any) -> TenantConfig:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        fields.setdefault("requests_per_minute", None)
        config = TenantConfig(f"tenant-{worker}-{next(_tenant_numbers)}").with_changes(fields)
        emulator.add_tenant(config)
        return config

    return make


def client_config(emulator: EmulatorServer, tenant: TenantConfig, **changes: Any) -> MdcaConfig:
    """A client config pointing at the emulated tenant, with fast retries for tests."""
    config = MdcaConfig(
        base_url=emulator.mdca_url(tenant.tenant_id),
        tenant_id=tenant.tenant_id,
        client_id=tenant.client_id,
        client_secret=tenant.client_secret,
        token_url=emulator.token_url,
        files_access_token=tenant.files_access_token,
        verify=str(emulator.ca_bundle),
        requests_per_minute=None,
        backoff_base=0.01,
        backoff_max=0.05,
        retry_after_default=0.05,
    )
    return dataclasses.replace(config, **changes)


@pytest.fixture
def make_client(emulator: EmulatorServer) -> Iterator[Callable[..., MdcaClient]]:
    clients: list[MdcaClient] = []

    def make(tenant: TenantConfig, **changes: Any) -> MdcaClient:
        client = MdcaClient(client_config(emulator, tenant, **changes))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
