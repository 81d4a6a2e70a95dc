"""The benchmark's DAG file (bench/bench_catchup.py): the collector's DAGs, in the shape ``MDCA_BENCH_SHAPE`` names.

``current`` is the provider's own factory (what ``dags/mdca_collector.py`` builds); ``classic`` is the shape before
issue 16 (bench/classic_shape.py), kept to compare against.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for classic_shape

from airflow_provider_mdca.config import load_collector_config
from airflow_provider_mdca.dag_factory import build_dags

_CONFIG = load_collector_config(os.environ["MDCA_COLLECTOR_CONFIG"])

if os.environ.get("MDCA_BENCH_SHAPE") == "classic":
    from classic_shape import build_classic_dags

    globals().update(build_classic_dags(_CONFIG))
else:
    globals().update(build_dags(_CONFIG))
