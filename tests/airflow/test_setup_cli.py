"""``mdca-collector setup`` creates each tenant's pool, and ``validate`` checks a multi-tenant file tenant by tenant."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.airflow.test_validate_cli import devo, devo_connection, mdca_connection, run_validate  # noqa: F401

BIN = Path(sys.executable).parent
COLLECTOR = BIN / "mdca-collector"

pytestmark = pytest.mark.usefixtures("airflow_db")


def airflow(*args: str) -> subprocess.CompletedProcess[str]:
    # The database is shared with the run's other workers: SQLite may refuse a write while one of them writes.
    for attempt in range(1, 6):
        result = subprocess.run([str(BIN / "airflow"), *args], capture_output=True, text=True, timeout=300, check=False)
        if result.returncode == 0 or "database is locked" not in result.stdout + result.stderr:
            return result
        time.sleep(attempt)
    return result


def pools() -> dict[str, dict[str, Any]]:
    result = airflow("pools", "list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {pool["pool"]: pool for pool in json.loads(result.stdout)}


def setup(tmp_path: Path, config: dict[str, Any]) -> tuple[int, str]:
    path = tmp_path / f"collector-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [str(COLLECTOR), "setup", "--config", str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    return result.returncode, result.stdout + result.stderr


def test_setup_creates_each_tenants_pool_with_one_slot_and_leaves_an_existing_one_alone(tmp_path):
    run = uuid.uuid4().hex[:6]
    a, b = f"a{run}", f"b{run}"
    assert airflow("pools", "set", f"own_{b}", "3", "set by hand").returncode == 0
    config = {
        "defaults": {"historic_date_utc": "2026-11-01"},
        "tenants": {a: {"mdca_conn_id": f"mdca_{a}"}, b: {"mdca_conn_id": f"mdca_{b}", "pool": f"own_{b}"}},
    }

    code, out = setup(tmp_path, config)

    assert code == 0, out
    assert f"OK    pool 'mdca_api_{a}': created with 1 slot for {a}/activities" in out
    assert f"OK    pool 'own_{b}': exists with 3 slots; left as is" in out
    found = pools()
    assert int(found[f"mdca_api_{a}"]["slots"]) == 1
    assert int(found[f"own_{b}"]["slots"]) == 3

    again, out = setup(tmp_path, config)
    assert again == 0 and f"OK    pool 'mdca_api_{a}': exists with 1 slot; left as is" in out


def test_setup_of_a_broken_config_exits_2_naming_the_key(tmp_path):
    code, out = setup(tmp_path, {"defaults": {"historic_date_utc": "2026-11-01"}, "tenants": {"x": {}}})
    assert code == 2
    assert "tenants.x.mdca_conn_id: required" in out


def test_validate_checks_every_tenants_connection_and_pool(tmp_path, emulator, make_tenant, devo):  # noqa: F811
    run = uuid.uuid4().hex[:6]
    first, second = make_tenant(), make_tenant()
    names = [f"c{run}", f"f{run}"]
    config = {
        "defaults": {"historic_date_utc": "2026-11-01", "devo_conn_id": f"devo_{run}"},
        "services": {"files": {"enabled": False}},
        "tenants": {name: {"mdca_conn_id": f"mdca_{name}"} for name in names},
    }
    setup(tmp_path, config)
    code, out = run_validate(
        tmp_path,
        config,
        {
            f"mdca_{names[0]}": mdca_connection(emulator, first),
            f"mdca_{names[1]}": mdca_connection(emulator, second),
            f"devo_{run}": devo_connection(devo),
        },
    )
    assert code == 0, out
    for name in names:
        assert f"OK    pool 'mdca_api_{name}'" in out
        assert f"OK    mdca connection 'mdca_{name}': Entra ID token obtained" in out
    assert f"{names[0]}/alerts" in out and f"{names[1]}/activities" in out
    for secret in (first.client_secret, second.client_secret):
        assert secret not in out
