"""The examples in the pure modules' docstrings are tests too."""

from __future__ import annotations

import doctest
import importlib
import logging

import pytest

MODULES = [
    "airflow_provider_mdca.redaction",
    "airflow_provider_mdca.json_codec",
    "airflow_provider_mdca.retry",
    "airflow_provider_mdca.errors",
    "airflow_provider_mdca.devo.framing",
    "airflow_provider_mdca.devo.sender",
    "airflow_provider_mdca.transforms.flatten",
    "airflow_provider_mdca.transforms.obfuscate",
    "airflow_provider_mdca.staging",
    "airflow_provider_mdca.event_keys",
    "airflow_provider_mdca.config.durations",
    "airflow_provider_mdca.recovery",
    "airflow_provider_mdca.metrics",
    "airflow_provider_mdca.timestamps",
]


@pytest.fixture
def quiet_package_logs(monkeypatch):
    # Airflow 2.11 logs to stdout, which doctest would read as the example's output.
    monkeypatch.setattr(logging.getLogger("airflow_provider_mdca"), "propagate", False)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, quiet_package_logs):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
