"""MDCA and Entra ID emulators: real HTTPS servers on 127.0.0.1 for tests, demos and benchmarks.

Nothing here imports Airflow; from the provider only its service registry and its JSON codec. The pieces, one
concern each:

* :mod:`.services` — the services served, read from the provider's registry (``airflow_provider_mdca.services``).
* :mod:`.tls` — a throw-away CA: server certificate for 127.0.0.1/localhost, client certificates for mTLS.
* :mod:`.data`, :mod:`.records` — deterministic, lazy record streams (segments, rates, clusters, late
  records); ``records.SHAPES``, each service's record by the registry's name.
* :mod:`.timing` — the time model: when each record is stored, how alerts change, what expires (realistic by
  default; ``instant`` for the speed benchmarks).
* :mod:`.state` — :class:`TenantConfig` (every knob, JSON round-trip) and the live, thread-safe tenant state.
* :mod:`.entra`, :mod:`.mdca`, :mod:`.admin` — the API logic, each returning a :class:`~.reply.Reply`.
* :mod:`.server` — :class:`EmulatorServer`, the HTTPS listener that routes to them.
* :mod:`.devo` — :class:`DevoEmulator`: Devo's TLS syslog relay and HTTP ingestion API, storing NDJSON per tag.
* ``python -m mdca_emulator`` / ``mdca-emulator`` — the command line.
* ``python -m mdca_emulator.benchmark`` — scan-mode throughput (not a test).
"""

from __future__ import annotations

from mdca_emulator.data import Rate, Segment
from mdca_emulator.demo import demo_tenant
from mdca_emulator.devo import DevoEmulator
from mdca_emulator.devo_faults import HTTP_FAULTS as DEVO_HTTP_FAULTS
from mdca_emulator.devo_faults import DevoFaults, DevoFaultSettings
from mdca_emulator.devo_store import DevoStore
from mdca_emulator.entra import MDCA_SCOPE
from mdca_emulator.server import EmulatorServer
from mdca_emulator.state import (
    FAULT_NAMES,
    RETRY_AFTER_STYLES,
    SnapshotConfig,
    TenantConfig,
    TenantState,
    TimeSeriesConfig,
)
from mdca_emulator.timing import TIME_MODELS, AlertChanges, DelayClass
from mdca_emulator.tls import CertificateAuthority

__all__ = [
    "DEVO_HTTP_FAULTS",
    "FAULT_NAMES",
    "MDCA_SCOPE",
    "RETRY_AFTER_STYLES",
    "TIME_MODELS",
    "AlertChanges",
    "CertificateAuthority",
    "DelayClass",
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
