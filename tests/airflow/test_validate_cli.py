"""``mdca-collector validate`` against the MDCA, Entra ID and Devo emulators, as an installed console script.

It checks the configuration, the fetch pool, every ``mdca`` connection (a token, one record per enabled service),
every ``devo`` connection (the handshake) and the obfuscation key, prints one line per check, and exits 0 when all
pass, 1 when one fails, 2 when the configuration is invalid. It never prints a secret.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdca_emulator import DevoEmulator, TenantConfig
from mdca_emulator.server import EmulatorServer
from tests.service_table import ALL

BIN = Path(sys.executable).parent
COLLECTOR = BIN / "mdca-collector"
KEY = "k3y-for-the-validate-test-0123456789"  # an obfuscation key: must never be printed
_numbers = itertools.count()

pytestmark = pytest.mark.usefixtures("airflow_db", "api_pool")


@pytest.fixture(scope="module")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def api_pool(airflow_db: Path) -> str:
    """The fetch tasks' pool, created as the README tells a deployment to (idempotent: the database is shared)."""
    # The database is shared with the run's other workers: SQLite may refuse a write while one of them writes.
    for attempt in range(1, 6):
        result = subprocess.run(
            [str(BIN / "airflow"), "pools", "set", "mdca_api", "1", "MDCA API"],
            check=False,
            timeout=300,
            capture_output=True,
            text=True,
        )
        if result.returncode == 0:
            return "mdca_api"
        time.sleep(attempt)
    raise AssertionError(f"airflow pools set failed 5 times:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def mdca_connection(emulator: EmulatorServer, tenant: TenantConfig, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "mdca",
        "host": emulator.mdca_url(tenant.tenant_id),
        "login": tenant.client_id,
        "password": tenant.client_secret,
        "extra": {
            "tenant_id": tenant.tenant_id,
            "token_url": emulator.token_url,
            "verify": str(emulator.ca_bundle),
            **extra,
        },
    }


def devo_connection(devo: DevoEmulator) -> dict[str, Any]:
    cert, key = devo.client_cert()
    host, port = devo.relay_address
    return {
        "conn_type": "devo",
        "host": host,
        "port": port,
        "extra": {"transport": "tls", "cert": str(cert), "private_key": str(key), "chain": str(devo.ca_bundle)},
    }


def run_validate(
    tmp_path: Path, config: dict[str, Any], connections: dict[str, dict[str, Any]], **env: str
) -> tuple[int, str]:
    path = tmp_path / f"collector-{next(_numbers)}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    environ = dict(os.environ, **env)
    environ.pop("MDCA_COLLECTOR_CONFIG", None)
    environ.update({f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections.items()})
    result = subprocess.run(
        [str(COLLECTOR), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def collector_config(mdca_id: str, devo_id: str, **defaults: Any) -> dict[str, Any]:
    return {
        "defaults": {"historic_date_utc": "2026-11-01", "mdca_conn_id": mdca_id, "devo_conn_id": devo_id, **defaults}
    }


def lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{status} ")]


def test_a_working_setup_passes_every_check(tmp_path, emulator, make_tenant, devo):
    tenant = make_tenant()
    mdca_id, devo_id = f"mdca_validate_ok_{next(_numbers)}", f"devo_validate_ok_{next(_numbers)}"
    config = collector_config(
        mdca_id, devo_id, obfuscation=["user.userName"], obfuscation_key_variable="mdca_validate_key"
    )
    code, out = run_validate(
        tmp_path,
        config,
        {
            mdca_id: mdca_connection(emulator, tenant, files_access_token=tenant.files_access_token),
            devo_id: devo_connection(devo),
        },
        AIRFLOW_VAR_MDCA_VALIDATE_KEY=KEY,
    )
    assert code == 0, out
    for service in ALL:
        assert any(line.startswith(f"OK    {service}: one record readable") for line in lines(out, "OK")), out
    assert f"OK    mdca connection '{mdca_id}': Entra ID token obtained" in out
    assert f"OK    devo connection '{devo_id}' ({', '.join(ALL)})" in out
    assert "OK    pool 'mdca_api'" in out
    assert f"OK    obfuscation key ({', '.join(ALL)})" in out
    assert lines(out, "FAIL") == [] and "validate: all checks passed" in out
    for secret in (tenant.client_secret, tenant.files_access_token, KEY, devo.token):
        assert secret not in out


def test_a_wrong_client_secret_fails_naming_the_connection_and_the_code(tmp_path, emulator, make_tenant, devo):
    tenant = make_tenant()
    mdca_id, devo_id = f"mdca_validate_bad_{next(_numbers)}", f"devo_validate_bad_{next(_numbers)}"
    conn = mdca_connection(emulator, tenant, files_access_token=tenant.files_access_token)
    conn["password"] = "emu~wrong-secret-for-validate"
    code, out = run_validate(
        tmp_path, collector_config(mdca_id, devo_id), {mdca_id: conn, devo_id: devo_connection(devo)}
    )
    assert code == 1, out
    failed = lines(out, "FAIL")
    assert len(failed) == 1 and failed[0].startswith(f"FAIL  mdca connection '{mdca_id}': SetupError 100"), out
    assert all(f"SKIP  {service}: not checked" in out for service in ALL)
    assert "OK    devo connection" in out  # the other checks still ran
    assert "emu~wrong-secret-for-validate" not in out


def test_an_enabled_files_service_needs_the_legacy_token(tmp_path, emulator, make_tenant, devo):
    tenant = make_tenant()
    mdca_id, devo_id = f"mdca_validate_nofiles_{next(_numbers)}", f"devo_validate_nofiles_{next(_numbers)}"
    code, out = run_validate(
        tmp_path,
        collector_config(mdca_id, devo_id),
        {mdca_id: mdca_connection(emulator, tenant), devo_id: devo_connection(devo)},
    )
    assert code == 1, out
    assert [line.split(":")[0] for line in lines(out, "FAIL")] == ["FAIL  files"]
    assert "files_access_token" in out and "OK    alerts: one record readable" in out


def test_missing_connections_and_a_short_key_are_named(tmp_path, emulator, make_tenant):
    config = collector_config(
        "mdca_validate_nowhere",
        "devo_validate_nowhere",
        obfuscation=["user.userName"],
        obfuscation_key_variable="mdca_validate_short_key",
    )
    enabled = ("activities", "alerts")
    config["services"] = {name: {"enabled": False} for name in ALL if name not in enabled}
    code, out = run_validate(tmp_path, config, {}, AIRFLOW_VAR_MDCA_VALIDATE_SHORT_KEY="short")
    assert code == 1, out
    failed = lines(out, "FAIL")
    assert any(
        line.startswith("FAIL  mdca connection 'mdca_validate_nowhere'") and "isn't defined" in line for line in failed
    ), out
    listed = ", ".join(enabled)
    assert any(line.startswith(f"FAIL  devo connection 'devo_validate_nowhere' ({listed})") for line in failed)
    assert any(
        line.startswith(f"FAIL  obfuscation key ({listed}): Variable 'mdca_validate_short_key'") for line in failed
    )
    assert "files" not in "".join(failed)  # disabled services are not checked


def test_a_broken_config_exits_2_naming_the_key(tmp_path):
    config = {"defaults": {"historic_date_utc": "2026-11-01"}, "services": {"alerts": {"period": "soon"}}}
    code, out = run_validate(tmp_path, config, {})
    assert code == 2, out
    assert "InitVariablesError 1" in out and "services.alerts.period" in out
    assert "connection" not in out  # nothing else is checked


def test_show_config_prints_the_effective_settings(tmp_path):
    path = tmp_path / "collector.yaml"
    path.write_text("defaults: {historic_date_utc: 2026-11-01}\nservices: {alerts: {period: 10m}}\n")
    result = subprocess.run(
        [str(COLLECTOR), "show-config", "--config", str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["services"]["alerts"]["period"] == "10m"
    assert shown["services"]["files"]["period"] == "1h"
    assert shown["services"]["activities"]["tag"] == "casb.microsoft_defender.cloud_apps.activities"
