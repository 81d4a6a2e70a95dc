"""The default tenant the command line starts when given no configuration: realistic, rate-based data."""

from __future__ import annotations

import time

from mdca_emulator import services
from mdca_emulator.data import HOUR_MS, Rate
from mdca_emulator.state import ServiceConfig, SnapshotConfig, TenantConfig, TimeSeriesConfig

__all__ = ["DEMO_TENANT_ID", "demo_tenant"]

DEMO_TENANT_ID = "tenant-demo"
_DAY_MS = 24 * HOUR_MS
HISTORY_DAYS = 30
#: Records an hour of a windowed service and the sizes of its same-millisecond clusters: MDCA-like volumes where
#: they are known, the alerts' for any other windowed service.
_HOURLY: dict[str, tuple[float, tuple[int, ...]]] = {
    "activities": (3000, (1, 1, 2, 1, 3, 1, 1, 5)),
    "alerts": (60, (1, 1, 2)),
    "files": (200, (1, 1, 1, 2)),
}
_DEFAULT_HOURLY = _HOURLY["alerts"]
#: Records of a snapshot service; the subnets' for any other.
_COUNTS: dict[str, int] = {"entities": 500, "data_enrichment": 40}
_DEFAULT_COUNT = _COUNTS["data_enrichment"]
services.check_table(_HOURLY, "demo volumes", complete=False)
services.check_table(_COUNTS, "demo counts", complete=False)


def demo_tenant(
    tenant_id: str = DEMO_TENANT_ID,
    seed: int = 0,
    history_start_ms: int | None = None,
    time_model: str | None = None,
) -> TenantConfig:
    """A tenant with ~3,000 activities, ~60 alerts and ~200 files an hour, 500 entities, 40 subnets.

    Every service of the registry has data: one this module has no figure for gets the alerts' hourly volume, or
    the subnets' count. Data starts at `history_start_ms` (default: UTC midnight 30 days ago) and runs on forever;
    records appear as the clock reaches them, like a live tenant. Hours are absolute UTC hours, so a restarted demo
    serves the same records for the same hours. Throttled at MDCA's 30 requests per minute. `time_model`: the
    tenant's (``timing.py``); by default instant, for now (see below).
    """
    if history_start_ms is None:
        today = time.time_ns() // 1_000_000 // _DAY_MS * _DAY_MS
        history_start_ms = today - HISTORY_DAYS * _DAY_MS
    data: dict[str, ServiceConfig] = {}
    for name in services.WINDOWED:
        per_hour, clusters = _HOURLY.get(name, _DEFAULT_HOURLY)
        data[name] = TimeSeriesConfig([Rate(per_hour, clusters, history_start_ms)])
    for name in services.SNAPSHOTS:
        data[name] = SnapshotConfig(_COUNTS.get(name, _DEFAULT_COUNT))
    if time_model is None:
        time_model = "realistic"  # MDCA's real time model, as every tenant's default
    return TenantConfig(tenant_id=tenant_id, seed=seed, services=data, requests_per_minute=30, time_model=time_model)
