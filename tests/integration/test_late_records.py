"""Exactly once on MDCA's real time model: the emulator's default world, where records are stored late and change.

Activities are stored seconds to three days after they happen, files at the next scan of their app, alerts are
resolved or dismissed later, entities come and go. Consecutive windows read by the client, each after it has passed,
must deliver every record stored in them exactly once, late ones included, and every alert's latest state; the
emulator's ground truth (as of the moment of reading) is the oracle. Over real HTTPS, MSAL included.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_mdca.client.mdca import to_epoch_ms
from mdca_emulator import Rate, SnapshotConfig, TimeSeriesConfig
from tests.service_table import SERVICE_TABLE, WINDOWED

HOUR = timedelta(hours=1)
# The last six whole hours before now, read as windows of 30 minutes (a day of them for the activities' long tail).
END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
START = END - 6 * HOUR
WINDOWS = [START + timedelta(minutes=30 * i) for i in range(13)]
HISTORY_MS = to_epoch_ms(END - timedelta(days=5))  # data from five days back: its late tail lands in the windows


def rate(per_hour: float) -> TimeSeriesConfig:
    return TimeSeriesConfig(segments=[Rate(per_hour, (1, 3, 1, 2), HISTORY_MS)])


def read_windows(client: Any, service: str) -> tuple[list[dict[str, Any]], int]:
    """Every record of the consecutive windows, in order, and the requests it took."""
    records: list[dict[str, Any]] = []
    requests = 0
    for start, end in itertools.pairwise(WINDOWS):
        stream = client.fetch(service, start, end)
        records.extend(stream)
        requests += stream.stats.requests
    return records, requests


def assert_exactly_once(got: list[str], truth: list[str]) -> None:
    duplicates = [rid for rid, n in Counter(got).items() if n > 1]
    missing, extra = set(truth) - set(got), set(got) - set(truth)
    assert not duplicates, f"{len(duplicates)} records twice, e.g. {duplicates[:3]}"
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} records not stored in these windows, e.g. {sorted(extra)[:3]}"


@pytest.mark.parametrize("service", [s for s in WINDOWED if s != "alerts"])
def test_every_record_stored_in_the_windows_arrives_once_however_late(emulator, make_tenant, make_client, service):
    tenant = make_tenant(**{service: rate(1_500 if service == "activities" else 200)})
    records, _ = read_windows(make_client(tenant), service)
    window_field = SERVICE_TABLE[service].filter_field
    truth = emulator.truth(tenant.tenant_id, service, to_epoch_ms(START), to_epoch_ms(END), by=window_field)
    assert len(truth) > 1_000 if service == "activities" else len(truth) > 50
    assert_exactly_once([r["_id"] for r in records], truth)
    # The point of windowing on storage time: these happened long before the window that delivered them.
    event_field = "timestamp" if service == "activities" else "modifiedDate"
    late = [r for r in records if to_epoch_ms(START) - r[event_field] > 3_600_000]
    assert late, "no record stored more than an hour late: the late world was not exercised"


@pytest.mark.parametrize("service", [s for s in WINDOWED if s != "alerts"])
def test_each_window_counts_the_late_records_it_caught(make_tenant, make_client, service):
    # The coverage view's "late records caught": records stored in a window that happened before it started.
    client = make_client(make_tenant(**{service: rate(600 if service == "activities" else 200)}))
    event_field = SERVICE_TABLE[service].event_time_field
    caught = 0
    for start, end in itertools.pairwise(WINDOWS[:5]):
        stream = client.fetch(service, start, end)
        records = list(stream)
        happened_before = sum(r[event_field] < to_epoch_ms(start) for r in records)
        assert stream.stats.late == happened_before
        caught += happened_before
    assert caught > 0, "no late record in two hours: the late world was not exercised"


def test_what_reading_on_event_time_would_have_lost(emulator, make_tenant, make_client):
    # The first version's way (activities windowed on their own time, read 2 minutes after the window) against the
    # same tenant: the records of the same hours stored later than that were lost.
    tenant = make_tenant(activities=rate(1_500))
    happened = lost = 0
    for start, end in itertools.pairwise(WINDOWS):
        start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)
        every = emulator.truth(tenant.tenant_id, "activities", start_ms, end_ms, by="date", as_of="horizon")
        read_then = emulator.truth(tenant.tenant_id, "activities", start_ms, end_ms, by="date", as_of=end_ms + 120_000)
        happened, lost = happened + len(every), lost + len(every) - len(read_then)
    assert lost > 0.03 * happened, f"only {lost} of {happened} stored late: the model is not realistic"
    start_ms, end_ms = to_epoch_ms(START), to_epoch_ms(END)
    records, _ = read_windows(make_client(tenant), "activities")
    by_storage = emulator.truth(tenant.tenant_id, "activities", start_ms, end_ms, by="created")
    assert_exactly_once([r["_id"] for r in records], by_storage)


def test_alerts_arrive_once_raised_then_again_with_each_resolution(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=rate(300))
    records, _ = read_windows(make_client(tenant), "alerts")
    start_ms, end_ms = to_epoch_ms(START), to_epoch_ms(END)
    raised = emulator.truth(tenant.tenant_id, "alerts", start_ms, end_ms, by="date")
    resolved = emulator.truth(tenant.tenant_id, "alerts", start_ms, end_ms, by="resolutionDate", as_of="now")
    assert raised and resolved, "the tenant raised or resolved no alert in these hours"
    seen = Counter(r["_id"] for r in records)
    assert all(seen[rid] >= 1 for rid in raised), "a raised alert is missing"
    assert all(seen[rid] <= 2 for rid in seen), "an alert arrived more than raised + resolved"
    # Every alert resolved in these hours is delivered in its resolved state (as raised in the same window, or again).
    states = {
        s["_id"]: s
        for s in emulator.tenant(tenant.tenant_id).truth_states(
            "alerts", start_ms, end_ms, by="resolutionDate", as_of="now"
        )
    }
    delivered = {(r["_id"], r.get("resolveTime")) for r in records}
    for rid in resolved:
        assert (rid, states[rid]["resolveTime"]) in delivered, f"alert {rid}'s resolution never reached the reader"
    raised_earlier = set(resolved) - set(raised)
    assert raised_earlier, "no alert raised before these hours was resolved in them: the changes pass is untested"
    assert all(seen[rid] == 1 for rid in raised_earlier)


def test_a_snapshot_that_changes_while_paged_is_read_once(emulator, make_tenant, make_client):
    tenant = make_tenant(entities=SnapshotConfig(count=2_000))
    before = set(emulator.truth(tenant.tenant_id, "entities", 0, 1))
    emulator.set_rate(200_000.0, tenant_id=tenant.tenant_id)  # days of churn while the pages are read
    try:
        got = [r["_id"] for r in make_client(tenant).fetch("entities", START, END)]
    finally:
        emulator.set_rate(1.0, tenant_id=tenant.tenant_id)
    after = set(emulator.truth(tenant.tenant_id, "entities", 0, 1))
    assert len(got) == len(set(got)), "an entity was read twice"
    stayed = before & after
    assert stayed and stayed <= set(got), f"{len(stayed - set(got))} entities present throughout were not read"


def test_a_snapshot_past_a_skip_ceiling_the_tenant_enforces_is_read_whole_while_it_changes(
    emulator, make_tenant, make_client, caplog
):
    # MDCA documents the 5,000 skip ceiling for activities only; a tenant that enforces it on entities too has the
    # rest of the collection read from its other end, while entities come and go.
    tenant = make_tenant(entities=SnapshotConfig(count=7_000, skip_ceiling=5_000))
    before = set(emulator.truth(tenant.tenant_id, "entities", 0, 1))
    emulator.set_rate(50_000.0, tenant_id=tenant.tenant_id)
    try:
        with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.client.pagination"):
            got = [r["_id"] for r in make_client(tenant).fetch("entities", START, END)]
    finally:
        emulator.set_rate(1.0, tenant_id=tenant.tenant_id)
    after = set(emulator.truth(tenant.tenant_id, "entities", 0, 1))
    assert len(got) == len(set(got)), "an entity was read twice"
    stayed = before & after
    assert before - after and after - before, "the collection did not change while it was paged"
    assert "refused a skip past 5000" in caplog.text
    assert len(stayed) > 5_000 and not stayed - set(got), f"{len(stayed - set(got))} present throughout were not read"


def test_activities_older_than_mdca_keeps_are_refused_or_read_with_a_warning(make_tenant, make_client, caplog):
    tenant = make_tenant(activities=TimeSeriesConfig(segments=[Rate(500, (1,), to_epoch_ms(END) - 40 * 86_400_000)]))
    client = make_client(tenant)
    old = END - timedelta(days=35)
    with pytest.raises(Exception, match="keeps about 30 days of activities"):
        client.fetch("activities", old, old + HOUR)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.client.mdca"):
        assert list(client.fetch("activities", old, old + HOUR, on_expired_window="warn")) == []
    assert "keeps about 30 days" in caplog.text


def test_a_window_read_again_later_reads_the_same_records(emulator, make_tenant, make_client):
    # A rerun (a cleared run, a backfill) of a window that has passed reads what MDCA stored in it: the same records,
    # however much later, so the delivery ledger has nothing new to send and nothing is lost.
    tenant = make_tenant(activities=rate(1_500), files=rate(200))
    client = make_client(tenant)
    # Files are stored at MDCA's scans, every 4 hours: their window spans the six hours, which hold one at least.
    spans = {"activities": (WINDOWS[3], WINDOWS[4]), "files": (START, END)}
    first = {s: sorted(r["_id"] for r in client.fetch(s, *span)) for s, span in spans.items()}
    emulator.set_now(emulator.now_ms(tenant.tenant_id) + 3 * 86_400_000, tenant_id=tenant.tenant_id)  # 3 days on
    try:
        again = {s: sorted(r["_id"] for r in client.fetch(s, *span)) for s, span in spans.items()}
    finally:
        emulator.set_now(None, tenant_id=tenant.tenant_id)
    assert first == again and first["activities"] and first["files"]
