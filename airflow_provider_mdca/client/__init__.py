"""The MDCA API client. Imports nothing from Airflow: the hook is a thin adapter over it."""

from __future__ import annotations

from airflow_provider_mdca.client.mdca import MdcaClient
from airflow_provider_mdca.client.stats import FetchStats, RecordStream
from airflow_provider_mdca.connections.mdca import MdcaConfig

__all__ = ["FetchStats", "MdcaClient", "MdcaConfig", "RecordStream"]
