"""The MDCA to Devo collector: one Airflow DAG per enabled service (mdca_activities, mdca_alerts, ...).

Configured by ``mdca_collector.yaml`` beside this file, or by the file named in the environment variable
``MDCA_COLLECTOR_CONFIG``. An invalid configuration is an import error of this file that names the key and why.
Parsing reads only that file: no connection, Variable or network.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_mdca.config import load_collector_config
from airflow_provider_mdca.dag_factory import build_dags

_CONFIG = os.environ.get("MDCA_COLLECTOR_CONFIG") or Path(__file__).with_name("mdca_collector.yaml")

globals().update(build_dags(load_collector_config(_CONFIG)))
