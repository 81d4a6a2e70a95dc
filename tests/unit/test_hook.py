"""MdcaHook reads its Airflow connection into a validated config, lazily, and never shows a secret."""

from __future__ import annotations

import json

import pytest

from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.hooks.mdca import MdcaHook


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    conn = {"conn_type": "mdca", "host": "https://t.portal.cloudappsecurity.com/", "login": "cid"}
    conn.update({"password": "hook-secret-123", "extra": {"tenant_id": "tid"}})
    conn.update(fields)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_constructing_a_hook_touches_no_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    hook = MdcaHook(mdca_conn_id="nowhere")  # would fail if __init__ looked the connection up
    assert hook.mdca_conn_id == "nowhere"


def test_config_comes_from_the_connection(monkeypatch):
    set_connection(monkeypatch, "mdca_unit", extra={"tenant_id": "tid", "requests_per_minute": 12})
    config = MdcaHook(mdca_conn_id="mdca_unit").get_config()
    assert (config.tenant_id, config.client_id, config.requests_per_minute) == ("tid", "cid", 12)
    assert "hook-secret-123" not in repr(config)


def test_a_missing_tenant_is_init_variables_error_naming_connection_and_field(monkeypatch):
    set_connection(monkeypatch, "mdca_bad", extra={})
    with pytest.raises(InitVariablesError) as info:
        MdcaHook(mdca_conn_id="mdca_bad").get_conn()
    assert info.value.code == 1
    assert "'mdca_bad' field 'extra.tenant_id'" in str(info.value)


def test_test_connection_reports_setup_errors_without_secrets(monkeypatch):
    # Nothing listens on port 9: the token request fails fast, and the report says so without the secret.
    set_connection(
        monkeypatch,
        "mdca_down",
        host="https://127.0.0.1:9/",
        extra={"tenant_id": "tid", "token_url": "https://127.0.0.1:9/", "max_retries": 0},
    )
    ok, message = MdcaHook(mdca_conn_id="mdca_down").test_connection()
    assert not ok
    assert message.startswith("SetupError 103")
    assert "hook-secret-123" not in message
