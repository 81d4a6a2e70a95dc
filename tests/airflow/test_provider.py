"""Airflow recognises the provider: valid provider info, the hook and its form fields, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_mdca import __version__, get_provider_info
from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.hooks.mdca import MdcaHook

AIRFLOW_DIR = Path(airflow.__file__).parent
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"


def test_provider_info_matches_airflows_own_schema():
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-provider-mdca"
    assert info["versions"] == [__version__]


def test_ui_field_behaviour_matches_the_form_schema():
    path = AIRFLOW_DIR / "customized_form_field_behaviours.schema.json"
    schema = json.loads(path.read_text())
    behaviour = MdcaHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, schema)
    assert behaviour["relabeling"]["host"] == "API base URL"


def test_package_name_is_the_distribution_name():
    from importlib.metadata import distribution

    dist = distribution("airflow-provider-mdca")
    entry_points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.value for ep in entry_points] == ["airflow_provider_mdca:get_provider_info"]
    assert get_provider_info()["package-name"] == dist.metadata["Name"]


def _hooks_registry() -> object:
    if AIRFLOW_V3:  # Airflow 3 moved the hook registry to the Task SDK
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime()
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_providers_manager_loads_the_hook_and_form_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-mdca" in manager.providers
    hook = _hooks_registry().hooks["mdca"]  # type: ignore[attr-defined]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_mdca.hooks.mdca.MdcaHook"
    assert hook.connection_id_attribute_name == "mdca_conn_id"
    widgets = manager.connection_form_widgets
    assert {"extra__mdca__tenant_id", "extra__mdca__files_access_token"} <= set(widgets)
    assert manager.field_behaviours["mdca"]["relabeling"]["login"] == "Client ID"


def test_form_fields_come_from_one_source_on_each_airflow_line():
    conn_fields = get_provider_info()["connection-types"][0]["conn-fields"]
    if AIRFLOW_V3:
        # Airflow >= 3.2 builds the form from conn-fields and never calls the hook's classmethods.
        from airflow.providers_manager import ProvidersManager

        widgets = ProvidersManager().connection_form_widgets
        mdca = {name.removeprefix("extra__mdca__") for name in widgets if name.startswith("extra__mdca__")}
        assert mdca == set(conn_fields)
        assert widgets["extra__mdca__files_access_token"].is_sensitive
    else:
        assert set(MdcaHook.get_connection_form_widgets()) == set(conn_fields)


def test_airflow_providers_list_shows_the_provider():
    out = subprocess.run(
        [str(AIRFLOW_BIN), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
        timeout=300,
    ).stdout
    rows = json.loads(out[out.index("[") :])
    versions = {row["package_name"]: row["version"] for row in rows}
    assert versions["airflow-provider-mdca"] == __version__
