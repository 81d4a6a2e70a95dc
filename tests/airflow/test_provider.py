"""Airflow recognises the provider: valid provider info, the hook and its form fields, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_mdca import __version__, get_provider_info
from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.hooks.devo import DevoHook
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
    for hook_class in (MdcaHook, DevoHook):
        jsonschema.validate(hook_class.get_ui_field_behaviour(), schema)
    assert MdcaHook.get_ui_field_behaviour()["relabeling"]["host"] == "API base URL"


def test_package_name_is_the_distribution_name():
    from importlib.metadata import distribution

    dist = distribution("airflow-provider-mdca")
    entry_points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.value for ep in entry_points] == ["airflow_provider_mdca:get_provider_info"]
    assert get_provider_info()["package-name"] == dist.metadata["Name"]


def import_string(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def _hooks_registry() -> object:
    if AIRFLOW_V3:  # Airflow 3 moved the hook registry to the Task SDK
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime()
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


HOOKS = {
    "mdca": ("airflow_provider_mdca.hooks.mdca.MdcaHook", "mdca_conn_id"),
    "devo": (
        "airflow_provider_mdca.hooks.devo.DevoHook",
        "devo_conn_id",
    ),
}


@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_providers_manager_loads_the_hook_and_form_fields(conn_type):
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-mdca" in manager.providers
    hook = _hooks_registry().hooks[conn_type]  # type: ignore[attr-defined]
    assert hook is not None, f"Airflow could not import the {conn_type} hook"
    assert (hook.hook_class_name, hook.connection_id_attribute_name) == HOOKS[conn_type]
    assert manager.field_behaviours[conn_type]["relabeling"]["host"]


@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_form_fields_come_from_one_source_on_each_airflow_line(conn_type):
    spec = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type)
    if AIRFLOW_V3:
        # Airflow >= 3.2 builds the form from conn-fields and never calls the hook's classmethods.
        from airflow.providers_manager import ProvidersManager

        widgets = ProvidersManager().connection_form_widgets
        prefix = f"extra__{conn_type}__"
        assert {name.removeprefix(prefix) for name in widgets if name.startswith(prefix)} == set(spec["conn-fields"])
        secret = "extra__mdca__files_access_token" if conn_type == "mdca" else "extra__devo__private_key"
        assert widgets[secret].is_sensitive
    else:
        hook_class = import_string(HOOKS[conn_type][0])
        assert set(hook_class.get_connection_form_widgets()) == set(spec["conn-fields"])
        assert hook_class.get_ui_field_behaviour()["hidden_fields"] == spec["ui-field-behaviour"]["hidden-fields"]


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
