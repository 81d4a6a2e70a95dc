"""MDCA and Entra ID emulators: real HTTPS servers on 127.0.0.1 for tests, demos and benchmarks.

Nothing here imports Airflow. The pieces, one concern each:

* :mod:`.tls` — a throw-away CA: server certificate for 127.0.0.1/localhost, client certificates for mTLS.
* :mod:`.data`, :mod:`.records` — deterministic, lazy record streams (segments, rates, clusters, late
  records).
* :mod:`.state` — :class:`TenantConfig` (every knob, JSON round-trip) and the live, thread-safe tenant state.
* :mod:`.entra`, :mod:`.mdca`, :mod:`.admin` — the API logic, each returning a :class:`~.reply.Reply`.
* :mod:`.server` — :class:`EmulatorServer`, the HTTPS listener that routes to them.
* :mod:`.devo` — :class:`DevoEmulator`: Devo's TLS syslog relay and HTTP ingestion API, storing NDJSON per tag.
* ``python -m airflow_provider_mdca.emulator`` / ``mdca-emulator`` — the command line.
* ``python -m airflow_provider_mdca.emulator.benchmark`` — scan-mode throughput (not a test).
"""

from __future__ import annotations

from airflow_provider_mdca.emulator.data import SERVICES, Rate, Segment
from airflow_provider_mdca.emulator.demo import demo_tenant
from airflow_provider_mdca.emulator.devo import DevoEmulator
from airflow_provider_mdca.emulator.devo_faults import HTTP_FAULTS as DEVO_HTTP_FAULTS
from airflow_provider_mdca.emulator.devo_faults import DevoFaults, DevoFaultSettings
from airflow_provider_mdca.emulator.devo_store import DevoStore
from airflow_provider_mdca.emulator.entra import MDCA_SCOPE
from airflow_provider_mdca.emulator.server import EmulatorServer
from airflow_provider_mdca.emulator.state import (
    FAULT_NAMES,
    RETRY_AFTER_STYLES,
    SnapshotConfig,
    TenantConfig,
    TenantState,
    TimeSeriesConfig,
)
from airflow_provider_mdca.emulator.tls import CertificateAuthority

__all__ = [
    "DEVO_HTTP_FAULTS",
    "FAULT_NAMES",
    "MDCA_SCOPE",
    "RETRY_AFTER_STYLES",
    "SERVICES",
    "CertificateAuthority",
    "DevoEmulator",
    "DevoFaultSettings",
    "DevoFaults",
    "DevoStore",
    "EmulatorServer",
    "Rate",
    "Segment",
    "SnapshotConfig",
    "TenantConfig",
    "TenantState",
    "TimeSeriesConfig",
    "demo_tenant",
]
