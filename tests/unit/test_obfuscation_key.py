"""The obfuscation key comes from a connection or a Variable, through Airflow's own lookups."""

from __future__ import annotations

import json

import pytest

from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.operators.obfuscation import build_obfuscator, get_obfuscation_key

KEY = "k" * 32


def test_key_from_a_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OBF_KEY", json.dumps({"conn_type": "generic", "password": KEY}))
    assert get_obfuscation_key(conn_id="obf_key") == KEY.encode()


def test_key_from_a_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_OBF_KEY", KEY)
    assert get_obfuscation_key(variable="obf_key") == KEY.encode()


@pytest.mark.parametrize("kwargs", [{}, {"conn_id": "a", "variable": "b"}])
def test_exactly_one_source(kwargs):
    with pytest.raises(InitVariablesError, match="exactly one"):
        get_obfuscation_key(**kwargs)


def test_an_empty_key_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OBF_EMPTY", json.dumps({"conn_type": "generic"}))
    with pytest.raises(InitVariablesError, match="'obf_empty' field password is empty"):
        get_obfuscation_key(conn_id="obf_empty")


def test_build_obfuscator_hashes_with_the_stored_key(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_OBF_KEY2", KEY)
    obfuscator = build_obfuscator(["user.userName"], key_variable="obf_key2")
    assert obfuscator is not None
    event = obfuscator.apply({"user": {"userName": "jose@contoso.com"}, "other": 1})
    assert event["user"]["userName"].startswith("hmac-sha256:") and event["other"] == 1
    assert build_obfuscator([]) is None
    assert build_obfuscator([{"path": "a", "method": "mask"}]) is not None  # no key needed for masks
