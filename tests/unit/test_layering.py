"""The client, sender-side and emulator packages import nothing from Airflow: they test and run without it; the MDCA
client and the Devo senders import nothing from each other."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "airflow_provider_mdca.client",
        "airflow_provider_mdca.connections",
        "airflow_provider_mdca.retry",
        "airflow_provider_mdca.event_keys",
        "airflow_provider_mdca.errors",
        "airflow_provider_mdca.json_codec",
        "airflow_provider_mdca.compression",
        "airflow_provider_mdca.services",
        "mdca_emulator",
        "mdca_emulator.process",
        "airflow_provider_mdca.devo",
        "airflow_provider_mdca.transforms.flatten",
        "airflow_provider_mdca.transforms.obfuscate",
        "airflow_provider_mdca.staging",
        "airflow_provider_mdca.pipeline",
        "airflow_provider_mdca.config",
        "airflow_provider_mdca.recovery",
        "airflow_provider_mdca.callbacks",
        "airflow_provider_mdca.request_budget",
        "airflow_provider_mdca.coverage",
        "airflow_provider_mdca.coverage.model",
        "airflow_provider_mdca.coverage.records",
        "airflow_provider_mdca.coverage.render",
        "airflow_provider_mdca.metrics",
        "airflow_provider_mdca.timestamps",
    ],
)
def test_module_imports_no_airflow(module):
    code = (
        f"import sys, {module}\n"
        "leaked = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(leaked)\n"
        "raise SystemExit(1 if leaked else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{module} imported Airflow: {result.stdout}{result.stderr}"


def test_provider_info_loads_without_airflow():
    code = "import sys, airflow_provider_mdca as p; p.get_provider_info(); raise SystemExit('airflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120, check=False).returncode == 0


@pytest.mark.parametrize(
    ("module", "other"),
    [
        ("airflow_provider_mdca.client", "airflow_provider_mdca.devo"),
        ("airflow_provider_mdca.devo", "airflow_provider_mdca.client"),
    ],
)
def test_the_client_and_the_devo_senders_are_independent(module, other):
    code = (
        f"import sys, {module}\n"
        f"raise SystemExit(any(m == {other!r} or m.startswith({other!r} + '.') for m in sys.modules))\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120, check=False).returncode == 0, (
        f"{module} imports {other}"
    )
