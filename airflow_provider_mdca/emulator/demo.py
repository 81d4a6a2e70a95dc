"""The default tenant the command line starts when given no configuration: realistic, rate-based data."""

from __future__ import annotations

import time

from airflow_provider_mdca.emulator.data import HOUR_MS, Rate
from airflow_provider_mdca.emulator.state import SnapshotConfig, TenantConfig, TimeSeriesConfig

__all__ = ["DEMO_TENANT_ID", "demo_tenant"]

DEMO_TENANT_ID = "tenant-demo"
_DAY_MS = 24 * HOUR_MS
HISTORY_DAYS = 30


def demo_tenant(
    tenant_id: str = DEMO_TENANT_ID,
    seed: int = 0,
    history_start_ms: int | None = None,
) -> TenantConfig:
    """A tenant with ~3,000 activities, ~60 alerts and ~200 files an hour, 500 entities, 40 subnets.

    Data starts at `history_start_ms` (default: UTC midnight 30 days ago) and runs on forever; records appear
    as the clock reaches them, like a live tenant. Hours are absolute UTC hours, so a restarted demo serves
    the same records for the same hours. Throttled at MDCA's 30 requests per minute.
    """
    if history_start_ms is None:
        today = time.time_ns() // 1_000_000 // _DAY_MS * _DAY_MS
        history_start_ms = today - HISTORY_DAYS * _DAY_MS
    return TenantConfig(
        tenant_id=tenant_id,
        seed=seed,
        activities=TimeSeriesConfig([Rate(3000, (1, 1, 2, 1, 3, 1, 1, 5), history_start_ms)]),
        alerts=TimeSeriesConfig([Rate(60, (1, 1, 2), history_start_ms)]),
        files=TimeSeriesConfig([Rate(200, (1, 1, 1, 2), history_start_ms)]),
        entities=SnapshotConfig(500),
        subnet=SnapshotConfig(40),
        requests_per_minute=30,
    )
