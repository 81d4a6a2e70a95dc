"""The few Airflow names that moved between 2.11 and 3.x, imported from where the running Airflow has them.

Airflow 3 authoring code imports from ``airflow.sdk``; Airflow 2.11 has the same classes in their old homes.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_V3 = int(AIRFLOW_VERSION.split(".", 1)[0]) >= 3

if AIRFLOW_V3:
    from airflow.sdk import DAG, Asset, BaseHook, BaseOperator, ObjectStoragePath, Param, Variable
    from airflow.sdk.definitions.context import Context
else:  # pragma: no cover - exercised by the Airflow 2.11 test run
    from airflow.datasets import Dataset as Asset  # type: ignore[assignment,no-redef,unused-ignore,import-not-found]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.io.path import ObjectStoragePath  # type: ignore[assignment,no-redef,unused-ignore,import-not-found]
    from airflow.models import Variable  # type: ignore[assignment,no-redef,unused-ignore]
    from airflow.models.baseoperator import BaseOperator  # type: ignore[assignment,no-redef,unused-ignore,import-not-found]
    from airflow.models.dag import DAG  # type: ignore[assignment,no-redef,unused-ignore]
    from airflow.models.param import Param  # type: ignore[assignment,no-redef,unused-ignore,import-not-found]
    from airflow.utils.context import Context  # type: ignore[assignment,no-redef,unused-ignore,attr-defined]

try:  # Airflow >= 3.1 authors timetables through the SDK; older lines use the scheduler's classes directly
    from airflow.sdk import DeltaDataIntervalTimetable
except ImportError:  # pragma: no cover - Airflow 2.11
    from airflow.timetables.interval import (  # type: ignore[assignment,no-redef,unused-ignore]
        DeltaDataIntervalTimetable,
    )

try:
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - Airflow 2.11
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef,import-not-found,unused-ignore]

try:  # Airflow 3: the Task SDK's Stats (``airflow.stats`` is a deprecated shim there, which warns)
    from airflow.sdk.observability.stats import Stats
except ImportError:  # pragma: no cover - Airflow 2.11
    from airflow.stats import Stats  # type: ignore[no-redef,unused-ignore]

#: ``retry_exponential_backoff`` doubling each wait: a multiplier on Airflow 3 (3.3 reads True as 1, no backoff), a
#: flag on Airflow 2.11 (which always doubles).
EXPONENTIAL_BACKOFF: float | bool = 2.0 if AIRFLOW_V3 else True

__all__ = [
    "AIRFLOW_V3",
    "AIRFLOW_VERSION",
    "DAG",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "Context",
    "DeltaDataIntervalTimetable",
    "EXPONENTIAL_BACKOFF",
    "ObjectStoragePath",
    "Param",
    "Stats",
    "Variable",
    "mask_secret",
]
