"""`airflow connections test` (the UI's Test button) against the emulator, through real Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_mdca.hooks.mdca import MdcaHook
from mdca_emulator import Segment, TimeSeriesConfig
from tests.service_table import ALL, WINDOWED

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"


def connections_test(conn_id: str, conn: dict[str, object]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **{f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)})
    return subprocess.run(
        [str(AIRFLOW_BIN), "connections", "test", conn_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def mdca_connection(emulator, tenant, **extra: object) -> dict[str, object]:
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


def test_connection_test_succeeds_against_the_emulator(emulator, make_tenant):
    tenant = make_tenant()
    conn = mdca_connection(emulator, tenant, files_access_token=tenant.files_access_token)
    result = connections_test("mdca_cli_ok", conn)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Connection success!" in out
    assert tenant.client_secret not in out and tenant.files_access_token not in out


def test_the_test_button_reports_each_service(emulator, make_tenant, monkeypatch):
    # The UI shows the message of test_connection(); the CLI prints only success or failure.
    data = TimeSeriesConfig(segments=[Segment(1_700_000_000_000, 1_700_000_060_000, 3)])
    tenant = make_tenant(**dict.fromkeys(WINDOWED, data))
    conn = mdca_connection(emulator, tenant, files_access_token=tenant.files_access_token)
    monkeypatch.setenv("AIRFLOW_CONN_MDCA_BUTTON", json.dumps(conn))
    ok, message = MdcaHook(mdca_conn_id="mdca_button").test_connection()
    assert ok, message
    assert message == "; ".join(f"{service}: OK" for service in ALL)


def test_the_test_button_says_files_needs_the_legacy_token(emulator, make_tenant, monkeypatch):
    tenant = make_tenant()
    monkeypatch.setenv("AIRFLOW_CONN_MDCA_NOFILES", json.dumps(mdca_connection(emulator, tenant)))
    ok, message = MdcaHook(mdca_conn_id="mdca_nofiles").test_connection()
    assert ok
    assert "files: not configured (set extra.files_access_token" in message
    assert "alerts: OK" in message


def test_connection_test_fails_with_setup_error_for_a_wrong_secret(emulator, make_tenant):
    tenant = make_tenant()
    conn = mdca_connection(emulator, tenant)
    conn["password"] = "emu~wrong-secret-for-the-cli-test"
    result = connections_test("mdca_cli_bad", conn)
    out = result.stdout + result.stderr
    assert "Connection failed!" in out
    assert "SetupError 100" in out
    assert "emu~wrong-secret-for-the-cli-test" not in out
