"""Fetch benchmark: records/s and peak memory of ``MdcaClient.fetch`` against the emulator (not a test).

The emulator runs in its own process with throttling off, so the figures are the client's: HTTPS, JSON
decoding, paging and dedupe. Memory is the process's resident set, sampled before and after the fetch
(``ru_maxrss`` is the peak): streaming keeps the growth flat however large the window.

A second figure checks API efficiency: with the emulator throttled at R requests a minute and the client's
limiter at R, a many-page window should take about pages / R minutes and get zero 429 answers.

    make bench                                   # 100,000 activities + the throttle check
    make bench BENCH_ARGS="--activities 1000000 --skip-throttle"
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_mdca.client import MdcaClient, MdcaConfig
from mdca_emulator import Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess

# Two days ago, on the hour: MDCA keeps 30 days of activities and the client refuses older windows.
START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
START_MS = int(START.timestamp() * 1000)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tenant(tenant_id: str, activities: int, alerts: int, hours: int, rpm: int | None) -> dict[str, Any]:
    end_ms = START_MS + hours * 3_600_000
    series = TimeSeriesConfig(segments=[Segment(START_MS, end_ms, activities, (1, 1, 3, 1, 7))])
    alert_series = TimeSeriesConfig(segments=[Segment(START_MS, end_ms, alerts, (1, 2))])
    config = TenantConfig(
        tenant_id,
        services={"activities": series, "alerts": alert_series, "data_enrichment": SnapshotConfig(0)},
        requests_per_minute=rpm,
        time_model="instant",  # a speed benchmark: every record stored at once, so windows hold exact counts
    )
    return config.to_dict()


def _client(emulator: EmulatorProcess, tenant_id: str, rpm: float | None) -> MdcaClient:
    tenant = emulator.tenant(tenant_id)
    return MdcaClient(
        MdcaConfig(
            base_url=tenant["mdca_url"],
            tenant_id=tenant_id,
            client_id=tenant["client_id"],
            client_secret=tenant["client_secret"],
            token_url=emulator.info["token_url"],
            verify=emulator.ca_bundle,
            requests_per_minute=rpm,
        )
    )


def measure(client: MdcaClient, service: str, hours: int, page_size: int | None = None) -> dict[str, float]:
    end = START + timedelta(hours=hours)
    before = _rss_mb()
    began = time.perf_counter()
    count = 0
    records = client.fetch(service, START, end, page_size=page_size)
    for _record in records:
        count += 1
    elapsed = time.perf_counter() - began
    return {
        "records": count,
        "seconds": elapsed,
        "records_per_s": count / elapsed,
        "rss_before_mb": before,
        "peak_rss_mb": _peak_rss_mb(),
        "requests": records.stats.requests,
        "throttled": records.stats.throttled,
        "pages": records.stats.pages,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activities", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--throttle-rpm", type=int, default=120, help="R for the API-efficiency check")
    parser.add_argument("--throttle-pages", type=int, default=20, help="pages for the API-efficiency check")
    parser.add_argument("--skip-throttle", action="store_true")
    args = parser.parse_args(argv)

    pages = args.throttle_pages
    tenants = [
        _tenant("bench-fast", args.activities, args.alerts, 1, None),
        _tenant("bench-throttled", 0, pages * 100 - 50, 1, args.throttle_rpm),
    ]
    with EmulatorProcess(tenants=tenants) as emulator:
        with _client(emulator, "bench-fast", None) as client:
            client.get_token()  # warm-up: token and TLS session outside the measurement
            for service, page_size in (("activities", None), ("alerts", None)):
                figures = measure(client, service, 1, page_size)
                print(
                    f"{service:<11} {figures['records']:>9,} records  {figures['records_per_s']:>9,.0f} records/s  "
                    f"{figures['seconds']:>6.2f} s  {figures['requests']:>5} requests  "
                    f"RSS {figures['rss_before_mb']:.0f} MB before, peak {figures['peak_rss_mb']:.0f} MB"
                )
        if not args.skip_throttle:
            with _client(emulator, "bench-throttled", args.throttle_rpm) as client:
                figures = measure(client, "alerts", 1)
                ideal = (figures["requests"] - 1) * 60 / args.throttle_rpm
                print(
                    f"throttled   {figures['requests']} requests at R={args.throttle_rpm}/min: "
                    f"{figures['seconds']:.1f} s (ideal {ideal:.1f} s, ratio {figures['seconds'] / ideal:.3f}), "
                    f"{figures['throttled']} x 429"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
