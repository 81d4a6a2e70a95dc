"""Every record of a window exactly once, for every service and window size, against the emulator.

Windows hold 0, 1, 100, 101, 5,000 and 12,345 records in same-millisecond clusters, so clusters straddle
page boundaries, the scan pages' dropped boundary records and the alerts/files skip ceiling. Records sit exactly
on the window's start (included), its last millisecond (included) and its end (excluded).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mdca_emulator import Segment, SnapshotConfig, TimeSeriesConfig
from tests.service_table import SERVICE_TABLE, SNAPSHOTS, WINDOWED

# A recent window: MDCA keeps about 30 days of activities, and the client refuses a window older than that.
START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
END = START + timedelta(minutes=30)
START_MS = int(START.timestamp() * 1000)
END_MS = int(END.timestamp() * 1000)
CLUSTERS = (1, 3, 1, 7, 2, 1, 13, 5)
SIZES = [0, 1, 100, 101, 5_000, 12_345]


@pytest.fixture
def make_tenant(make_tenant: Any) -> Any:
    """These tests place records on exact instants (the window's edges, page and skip
    boundaries, clusters) and count them, so each record is stored the instant it happens here
    (``time_model: instant``). MDCA's real time model (late and changing records) is
    tests/integration/test_late_records.py's."""
    return functools.partial(make_tenant, time_model="instant")


def windowed_data(count: int) -> TimeSeriesConfig:
    """``count`` records inside the window, plus neighbours on both sides and on both edges."""
    segments = [
        Segment(START_MS - 60_000, START_MS, 40, (1, 4)),  # before: ends at START_MS - 1 at the latest
        Segment(END_MS, END_MS + 60_000, 40, (4, 1)),  # after: starts exactly at END_MS (excluded)
    ]
    if count:
        segments.append(Segment(START_MS, END_MS, count, CLUSTERS))  # first cluster exactly at START_MS
    return TimeSeriesConfig(segments=segments)


def edge_data() -> TimeSeriesConfig:
    """Clusters exactly on the first and the last millisecond of the window, and on the end (excluded)."""
    return TimeSeriesConfig(
        segments=[
            Segment(START_MS, START_MS + 1, 3),
            Segment(END_MS - 1, END_MS, 4),
            Segment(END_MS, END_MS + 1, 5),
            Segment(START_MS - 1, START_MS, 2),
        ]
    )


def fetch_ids(client, service, start=START, end=END, **kwargs):
    return fetch_ids_and_stats(client, service, start, end, **kwargs)[0]


def fetch_ids_and_stats(client, service, start=START, end=END, **kwargs):
    """The ``_id``s of one fetch, and the fetch's own figures (final: the stream is read to its end)."""
    records = client.fetch(service, start, end, **kwargs)
    return [r["_id"] for r in records], records.stats


def assert_exactly(got: list[str], truth: list[str]) -> None:
    duplicates = [rid for rid, n in Counter(got).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} duplicates, e.g. {duplicates[:3]}"
    missing = set(truth) - set(got)
    extra = set(got) - set(truth)
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} not in the window, e.g. {sorted(extra)[:3]}"


@pytest.mark.parametrize("count", SIZES, ids=lambda n: f"{n}-records")
@pytest.mark.parametrize("service", WINDOWED)
def test_windowed_service_returns_exactly_the_window(emulator, make_tenant, make_client, service, count):
    tenant = make_tenant(**{service: windowed_data(count)})
    client = make_client(tenant)
    page_size = 500 if SERVICE_TABLE[service].paging == "scan" else None
    got, stats = fetch_ids_and_stats(client, service, page_size=page_size)
    truth = emulator.truth(tenant.tenant_id, service, START_MS, END_MS)
    assert len(truth) == count
    assert_exactly(got, truth)
    assert stats.records == count
    assert stats.out_of_window_dropped == 0


@pytest.mark.parametrize("count", SIZES, ids=lambda n: f"{n}-records")
@pytest.mark.parametrize("service", SNAPSHOTS)
def test_snapshot_service_returns_the_whole_collection(emulator, make_tenant, make_client, service, count):
    tenant = make_tenant(**{service: SnapshotConfig(count=count)})
    client = make_client(tenant)
    got = fetch_ids(client, service)
    assert_exactly(got, emulator.truth(tenant.tenant_id, service, 0, 1))
    assert len(got) == count


@pytest.mark.parametrize("service", WINDOWED)
def test_start_is_included_and_end_excluded(emulator, make_tenant, make_client, service):
    tenant = make_tenant(**{service: edge_data()})
    got = fetch_ids(make_client(tenant), service)
    assert len(got) == 3 + 4
    assert_exactly(got, emulator.truth(tenant.tenant_id, service, START_MS, END_MS))


def test_adjacent_windows_partition_the_records(emulator, make_tenant, make_client):
    tenant = make_tenant(activities=windowed_data(1_000), alerts=windowed_data(300))
    client = make_client(tenant)
    for service in ("activities", "alerts"):
        edges = [START + timedelta(minutes=m) for m in range(0, 31, 5)]
        got = [rid for a, b in itertools.pairwise(edges) for rid in fetch_ids(client, service, a, b)]
        assert_exactly(got, emulator.truth(tenant.tenant_id, service, START_MS, END_MS))


def test_an_empty_window_sends_no_request(emulator, make_tenant, make_client):
    tenant = make_tenant(activities=windowed_data(10))
    client = make_client(tenant)
    got, stats = fetch_ids_and_stats(client, "activities", START, START)
    assert got == []
    assert stats.requests == 0


def test_scan_large_pages_use_few_requests(emulator, make_tenant, make_client):
    tenant = make_tenant(activities=windowed_data(12_345))
    client = make_client(tenant)
    got, stats = fetch_ids_and_stats(client, "activities")  # default page size 5,000
    assert len(got) == 12_345
    assert stats.requests <= 4
    assert stats.api_total == 12_345
