"""The coverage plugin loads through Airflow's plugins manager on both lines: the page and its nav link on Airflow 3,
nothing on 2.11 (where the coverage is ``mdca-collector status``); and loading it costs other processes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from airflow_provider_mdca._compat import AIRFLOW_V3

pytestmark = pytest.mark.airflow


def test_the_plugin_is_registered_through_the_airflow_plugins_entry_point():
    [entry] = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "mdca_coverage"]
    assert entry.value == "airflow_provider_mdca.plugins.coverage:MdcaCoveragePlugin"


def test_airflow_loads_it_on_both_lines_and_on_airflow_3_it_serves_the_page_linked_from_the_navigation():
    airflow = Path(sys.executable).with_name("airflow")
    command = [str(airflow), "plugins", "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("[")))
    [plugin] = [plugin for plugin in listed if plugin["name"] == "mdca_coverage"]
    assert "airflow-provider-mdca" in plugin["source"]
    if AIRFLOW_V3:
        assert [(app["url_prefix"], app["name"]) for app in plugin["fastapi_apps"]] == [("/mdca", "MDCA coverage")]
        # Two entries: Airflow 3.3 shows a lone one as a sidebar button that opens nothing (the Plugins menu's work).
        assert plugin["external_views"] == [
            {"name": "MDCA coverage", "href": "/mdca/coverage", "destination": "nav"},
            {"name": "MDCA coverage (JSON)", "href": "/mdca/coverage.json", "destination": "nav"},
        ]
    else:  # no FastAPI app server on 2.11: the plugin is empty (the coverage is `mdca-collector status` there)
        assert "fastapi_apps" not in plugin and "external_views" not in plugin


def test_loading_the_plugin_imports_neither_fastapi_security_nor_the_database_reader():
    """Every Airflow process loads plugins, a task too: the app is built on the api-server's first request."""
    code = (
        "import sys, airflow_provider_mdca.plugins.coverage\n"
        "heavy = ['airflow.api_fastapi.core_api.security', 'airflow_provider_mdca.coverage.airflow_db']\n"
        "raise SystemExit([name for name in heavy if name in sys.modules] != [])\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=300, check=False).returncode == 0
