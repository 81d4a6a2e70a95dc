"""Test-run set-up shared by every test: one Airflow home per run, set before Airflow is imported.

The controller process (or the only process, without xdist) makes the home; pytest-xdist workers inherit the
environment, so every worker of a run shares one Airflow home and, once tests need it, one migrated database.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


def _airflow_environment() -> None:
    if os.environ.get("MDCA_TEST_AIRFLOW_HOME"):
        return  # an xdist worker: the controller set everything up
    home = Path(tempfile.mkdtemp(prefix="mdca-airflow-home-"))
    os.environ.update(
        {
            "MDCA_TEST_AIRFLOW_HOME": str(home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )


_airflow_environment()


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The run's Airflow home."""
    return Path(os.environ["AIRFLOW_HOME"])
