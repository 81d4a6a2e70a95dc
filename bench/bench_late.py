"""What the late-records guarantee costs in API requests (not a test): issue 13's budget check.

A tenant of 1,000,000 activities a day, 5 % of them stored late (3 % a minute to 2 h, 1.5 % 2 to 24 h, 0.5 % one to
three days; the rest within a minute), read as the collector reads it: one window of 5 minutes after another, each at
its end + 2 minutes (the default lag), the emulator's clock set to that moment. Two ways over the same day:

- the collector's: windows on ``created`` (when MDCA stored the record), one read each;
- a single read per window on the event's own time (``date``), the first version's way, which loses what is stored
  later than its read.

It prints the requests per window and per day of each against the tenant's budget of 30 requests a minute (43,200 a
day), the records each read and lost, and the ratio of the two request counts; alerts' two reads a window (raised,
then resolved) beside. Exits 1 when the guarantee costs more than 1.25 times the single read.

    .venv/bin/python bench/bench_late.py                 # a whole day: 288 windows
    .venv/bin/python bench/bench_late.py --windows 48    # four hours of it
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urljoin

from airflow_provider_mdca.client import MdcaClient, MdcaConfig
from airflow_provider_mdca.client.mdca import to_epoch_ms
from airflow_provider_mdca.client.pagination import ScanPaginator, Window
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.client.transport import RequestContext
from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess

PER_DAY = 1_000_000
WINDOW = timedelta(minutes=5)
LAG = timedelta(minutes=2)
BUDGET_PER_DAY = 30 * 60 * 24
TARGET = 1.25
# 95 % within a minute, 5 % late, spread as MDCA's connectors spread them.
DELAYS = [
    {"fraction": 0.95, "min_ms": 1_000, "max_ms": 60_000},
    {"fraction": 0.03, "min_ms": 60_000, "max_ms": 2 * 3_600_000},
    {"fraction": 0.015, "min_ms": 2 * 3_600_000, "max_ms": 24 * 3_600_000},
    {"fraction": 0.005, "min_ms": 24 * 3_600_000, "max_ms": 72 * 3_600_000},
]


@dataclass
class Reads:
    """One way of reading, over the windows: requests per window, records read, records lost, changes read."""

    requests: list[int] = field(default_factory=list)
    records: int = 0
    lost: int = 0
    changes: int = 0

    def add(self, records: int, requests: int) -> None:
        self.records += records
        self.requests.append(requests)

    @property
    def mean(self) -> float:
        return sum(self.requests) / len(self.requests)


def tenant(day_start: datetime) -> dict[str, Any]:
    history = to_epoch_ms(day_start - timedelta(days=4))
    config = TenantConfig(
        "bench-late",
        seed=3,
        services={
            "activities": TimeSeriesConfig(segments=[Rate(PER_DAY / 24, (1, 1, 2, 1, 3), history)]),
            "alerts": TimeSeriesConfig(segments=[Rate(100, (1,), history)]),
            **{name: SnapshotConfig(0) for name, service in SERVICES.items() if not service.windowed},
        },
        requests_per_minute=None,
    ).with_changes({"activities": {"delays": DELAYS}})
    return config.to_dict()


def client_for(emulator: EmulatorProcess) -> MdcaClient:
    info = emulator.tenant("bench-late")
    config = MdcaConfig(
        base_url=info["mdca_url"],
        tenant_id="bench-late",
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        token_url=emulator.info["token_url"],
        verify=emulator.ca_bundle,
        requests_per_minute=None,
    )
    return MdcaClient(config)


def read_on_event_time(client: MdcaClient, start: datetime, end: datetime) -> tuple[int, int]:
    """The first version's read: the window on ``date``, once; (records, requests)."""
    stats = FetchStats(service="activities")
    service = SERVICES["activities"]
    window = Window(to_epoch_ms(start), to_epoch_ms(end))
    url = urljoin(client.config.base_url, service.endpoint)
    context = RequestContext("activities", (start.isoformat(), end.isoformat()))
    auth = client.auth_for(service)

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        return client._transport.post_json(url, body, auth=auth, context=context, stats=stats)

    pager = ScanPaginator(window, filter_field="date", time_field="timestamp", stats=stats, limit=5_000)
    return sum(1 for _ in pager.records(fetch)), stats.requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=288, help="consecutive 5-minute windows (288: a day)")
    args = parser.parse_args(argv)
    day_start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)
    edges = [day_start + WINDOW * k for k in range(args.windows + 1)]
    figures = {name: Reads() for name in ("created", "date", "alerts")}
    began, cpu = time.perf_counter(), time.process_time()
    with EmulatorProcess(tenants=[tenant(day_start)]) as emulator, client_for(emulator) as client:
        client.get_token()
        for start, end in itertools.pairwise(edges):
            emulator.clock("bench-late", now_ms=to_epoch_ms(end + LAG))  # read when the scheduler would
            stream = client.fetch("activities", start, end)
            figures["created"].add(sum(1 for _ in stream), stream.stats.requests)
            figures["date"].add(*read_on_event_time(client, start, end))
            raised_and_resolved = client.fetch("alerts", start, end)
            figures["alerts"].add(sum(1 for _ in raised_and_resolved), raised_and_resolved.stats.requests)
            figures["alerts"].changes += raised_and_resolved.stats.changes
        emulator.clock("bench-late", now_ms=None)
        span = (to_epoch_ms(edges[0]), to_epoch_ms(edges[-1]))
        happened = len(emulator.truth("activities", *span, by="date", as_of="horizon"))
        stored = len(emulator.truth("activities", *span, by="created", as_of="now"))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    figures["created"].lost = stored - figures["created"].records
    figures["date"].lost = happened - figures["date"].records
    per_day = 288 / args.windows
    print(
        f"late-records benchmark: {PER_DAY:,} activities a day, 5.0 % stored 1 min to 72 h late; "
        f"{args.windows} windows of 5 min, each read at its end + 2 min"
    )
    print(f"{'read':<36}{'requests/window':>16}{'max':>5}{'requests/day':>14}{'budget':>8}{'records':>11}{'lost':>9}")
    for name, label in (("created", "on created (the collector)"), ("date", "on date, once (the first version)")):
        row = figures[name]
        day = sum(row.requests) * per_day
        print(
            f"{label:<36}{row.mean:>16.2f}{max(row.requests):>5}{day:>14,.0f}"
            f"{day / BUDGET_PER_DAY:>8.1%}{row.records:>11,}{row.lost:>9,}"
        )
    ratio = sum(figures["created"].requests) / sum(figures["date"].requests)
    alerts = figures["alerts"]
    alert_day = sum(alerts.requests) * per_day
    print(
        f"alerts, raised then resolved: {alerts.mean:.2f} requests a window, {alert_day:,.0f} a day "
        f"({alert_day / BUDGET_PER_DAY:.1%} of the budget), {alerts.records:,} read, {alerts.changes:,} of them again "
        "as resolved"
    )
    print(f"elapsed {elapsed:.1f} s, this process's CPU {cpu:.1f} s (the client's share of the machine's two cores)")
    verdict = ratio <= TARGET and figures["created"].lost == 0
    print(
        f"the guarantee costs {ratio:.3f} x the single read's requests (target <= {TARGET}) and lost "
        f"{figures['created'].lost} records: {'PASS' if verdict else 'FAIL'}"
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
