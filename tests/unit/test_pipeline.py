"""The pipeline's stages over real staging files, with an in-memory Devo sink that acknowledges batch by batch."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mdca.devo import DeliveryStats
from airflow_provider_mdca.pipeline import FETCHED, FLATTENED, fetch_to_stage, flatten_stage
from airflow_provider_mdca.shipping import ship_stage
from airflow_provider_mdca.staging import (
    DeliveryLedger,
    StagingError,
    is_window_delivered,
    manifest_path,
    read_manifest,
    window_dir,
    write_manifest,
)
from airflow_provider_mdca.transforms.obfuscate import Obfuscator, parse_rules

START = datetime(2026, 11, 2, 11, 55, tzinfo=timezone.utc)
END = START + timedelta(minutes=5)


class Sink:
    """Acknowledges batches of ``batch`` events; raises once ``fail_after`` batches were acknowledged in total."""

    def __init__(self, batch: int = 10, fail_after: int | None = None) -> None:
        self.batch = batch
        self.fail_after = fail_after
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        self.tags: set[str] = set()

    def send(
        self, tag: str, events: Iterable[Mapping[str, Any]], *, on_batch: Callable[[int], None] | None = None
    ) -> DeliveryStats:
        self.tags.add(tag)
        pending: list[dict[str, Any]] = []
        sent = 0
        for event in events:
            pending.append(dict(event))
            if len(pending) == self.batch:
                sent += self._flush(pending, on_batch)
                pending = []
        if pending:
            sent += self._flush(pending, on_batch)
        return DeliveryStats(events=sent)

    def _flush(self, batch: list[dict[str, Any]], on_batch: Callable[[int], None] | None) -> int:
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise ConnectionError("Devo went away")
        self.events.extend(batch)
        self.batches += 1
        if on_batch is not None:
            on_batch(len(batch))
        return len(batch)

    def ids(self) -> list[str]:
        return [str(event["_id"]) for event in self.events]


def records(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield {"_id": f"r{i:05d}", "timestamp": i, "user": f"user{i}@example.com"}


def alerts(n: int, ips: int = 3) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"_id": f"a{i:04d}", "entities": [{"type": "ip", "id": f"10.0.{i}.{k}"} for k in range(ips)]}


def stage(tmp_path: Path, rows: Iterable[dict[str, Any]], service: str = "activities", **kw: Any) -> Path:
    window = window_dir(tmp_path, service, START, END)
    path, _ = fetch_to_stage(rows, window, service=service, start=START, end=END, **kw)
    return path


def test_an_empty_window_is_a_committed_window_that_ships_nothing(tmp_path):
    path, summary = fetch_to_stage(
        iter(()), window_dir(tmp_path, "alerts", START, END), service="alerts", start=START, end=END
    )
    manifest = read_manifest(path)
    assert (manifest.record_count, manifest.parts, summary.records) == (0, [], 0)
    sink = Sink()
    assert ship_stage(path, sink, tag="t.alerts").delivered == 0
    assert sink.events == [] and is_window_delivered(path.parent.parent)


def test_fetch_records_the_api_total_and_request_stats(tmp_path):
    stats = {"api_total": 42, "requests": 3, "retries": 1}
    manifest = read_manifest(stage(tmp_path, records(42), stats=stats, max_part_bytes=1_000))
    assert manifest.api_total == 42 and manifest.request_stats == stats
    assert manifest.record_count == 42 and len(manifest.parts) > 1


def test_a_fetch_that_fails_midway_commits_nothing(tmp_path):
    def broken() -> Iterator[dict[str, Any]]:
        yield from records(50)
        raise ConnectionError("MDCA went away")

    window = window_dir(tmp_path, "activities", START, END)
    with pytest.raises(ConnectionError):
        fetch_to_stage(broken(), window, service="activities", start=START, end=END, max_part_bytes=500)
    assert not manifest_path(window, FETCHED).exists()
    assert list((window / FETCHED).glob("part-*")) == []


def test_each_event_is_shipped_once_and_a_rerun_ships_nothing(tmp_path):
    path = stage(tmp_path, records(95), max_part_bytes=1_000)
    sink = Sink()
    first = ship_stage(path, sink, tag="t.activities")
    assert sorted(sink.ids()) == [f"r{i:05d}" for i in range(95)] and first.delivered == 95
    again = ship_stage(path, sink, tag="t.activities")
    assert (again.delivered, again.skipped_delivered_before, len(sink.events)) == (0, 95, 95)
    assert again.parts_skipped == len(read_manifest(path).parts)


def test_a_retry_resumes_after_the_last_acknowledged_batch(tmp_path):
    path = stage(tmp_path, records(100), max_part_bytes=100_000)  # one part: resume inside it
    sink = Sink(batch=10, fail_after=4)
    with pytest.raises(ConnectionError):
        ship_stage(path, sink, tag="t.activities")
    assert len(sink.events) == 40 and not is_window_delivered(path.parent.parent)
    sink.fail_after = None
    summary = ship_stage(path, sink, tag="t.activities")
    assert Counter(sink.ids()) == Counter(f"r{i:05d}" for i in range(100))
    assert (summary.delivered, summary.skipped_delivered_before) == (60, 40)


def test_each_acknowledged_batch_is_reported_once_even_by_a_try_that_fails(tmp_path):
    # What the delivered-events metric counts: every event Devo acknowledged, the failed try's included, none twice.
    path = stage(tmp_path, records(100), max_part_bytes=100_000)
    sink, reported = Sink(batch=10, fail_after=4), []
    with pytest.raises(ConnectionError):
        ship_stage(path, sink, tag="t.activities", on_acknowledged=reported.append)
    assert reported == [10, 10, 10, 10]
    sink.fail_after = None
    ship_stage(path, sink, tag="t.activities", on_acknowledged=reported.append)
    assert sum(reported) == 100 == len(sink.events)


def test_a_restaged_window_ships_only_the_records_that_are_new(tmp_path):
    sink = Sink()
    ship_stage(stage(tmp_path, records(30)), sink, tag="t.activities")
    # The rerun refetches the window: a late record arrived meanwhile.
    summary = ship_stage(stage(tmp_path, records(31)), sink, tag="t.activities")
    assert summary.delivered == 1 and sorted(sink.ids()) == [f"r{i:05d}" for i in range(31)]


def test_flattened_alerts_resume_exactly_when_a_part_ends_inside_an_alert(tmp_path):
    fetched = stage(tmp_path, alerts(40, ips=5), service="alerts")
    flattened, summary = flatten_stage(fetched, max_part_bytes=700)  # parts end inside alerts' 5 events
    manifest = read_manifest(flattened)
    assert manifest.stage == FLATTENED and summary.records == 200 and len(manifest.parts) > 3
    sink = Sink(batch=7, fail_after=5)
    with pytest.raises(ConnectionError):
        ship_stage(flattened, sink, tag="t.alerts")
    sink.fail_after = None
    ship_stage(flattened, sink, tag="t.alerts")
    assert Counter(sink.ids()) == Counter({f"a{i:04d}": 5 for i in range(40)})
    assert len({(event["_id"], event["ip_id"]) for event in sink.events}) == 200


def test_reship_ships_everything_again_once_per_run_and_its_retry_resumes(tmp_path):
    path = stage(tmp_path, records(50))
    sink = Sink(batch=10)
    ship_stage(path, sink, tag="t.activities")
    sink.fail_after = sink.batches + 2  # the re-ship run breaks after two batches
    with pytest.raises(ConnectionError):
        ship_stage(path, sink, tag="t.activities", reship_run="manual__2026-11-28T12:00:00+00:00")
    sink.fail_after = None
    summary = ship_stage(path, sink, tag="t.activities", reship_run="manual__2026-11-28T12:00:00+00:00")
    assert summary.reship and summary.delivered == 30
    assert Counter(sink.ids()) == Counter({f"r{i:05d}": 2 for i in range(50)})
    # A later normal rerun still ships nothing.
    assert ship_stage(path, sink, tag="t.activities").delivered == 0


def test_extra_fields_are_added_without_overwriting_and_obfuscation_applies(tmp_path):
    path = stage(tmp_path, [{"_id": "x", "environment": "from-mdca", "user": "alice@example.com"}, {"_id": "y"}])
    sink = Sink()
    obfuscator = Obfuscator(parse_rules(["user"]), key=b"k" * 32)
    ship_stage(path, sink, tag="t.a", extra_fields={"environment": "prod"}, obfuscator=obfuscator)
    by_id = {event["_id"]: event for event in sink.events}
    assert by_id["x"]["environment"] == "from-mdca" and by_id["y"]["environment"] == "prod"
    assert "alice@example.com" not in str(by_id["x"])


def test_records_without_an_id_are_keyed_by_their_content(tmp_path):
    path = stage(tmp_path, [{"name": "subnet-a"}, {"name": "subnet-b"}], service="data_enrichment")
    sink = Sink()
    ship_stage(path, sink, tag="t.subnets")
    assert ship_stage(path, sink, tag="t.subnets").delivered == 0
    assert sorted(event["name"] for event in sink.events) == ["subnet-a", "subnet-b"]


def test_a_corrupt_part_stops_the_ship_and_names_the_part(tmp_path):
    path = stage(tmp_path, records(20))
    part = next((path.parent).glob("part-*.ndjson.gz"))
    part.write_bytes(part.read_bytes()[:-8] + b"garbage!")
    with pytest.raises(StagingError, match=part.name):
        ship_stage(path, Sink(), tag="t.activities")


def test_the_delivery_marker_records_what_the_sends_returned(tmp_path):
    class CountingSink(Sink):
        def send(self, tag, events, *, on_batch=None):
            sent = super().send(tag, events, on_batch=on_batch)
            return DeliveryStats(events=sent.events, bytes=100 * sent.events, batches=1, retries=2)

    path = stage(tmp_path, records(25), max_part_bytes=1_000)
    parts = len(read_manifest(path).parts)
    summary = ship_stage(path, CountingSink(), tag="t.activities")
    marker = json.loads((path.parent.parent / "delivered.json").read_text())["summary"]
    assert (summary.bytes, summary.batches, summary.retries) == (2_500, parts, 2 * parts)
    assert {key: marker[key] for key in ("delivered", "bytes", "batches", "retries")} == {
        "delivered": 25,
        "bytes": 2_500,
        "batches": parts,
        "retries": 2 * parts,
    }


def test_flattened_parts_delivered_before_are_not_read_again(tmp_path):
    fetched = stage(tmp_path, alerts(40, ips=5), service="alerts")
    flattened, _ = flatten_stage(fetched, max_part_bytes=700)  # parts end inside alerts' 5 events
    manifest = read_manifest(flattened)
    sink = Sink(batch=7, fail_after=6)
    with pytest.raises(ConnectionError):
        ship_stage(flattened, sink, tag="t.alerts")
    delivered = DeliveryLedger(flattened.parent.parent).delivered_parts(FLATTENED)
    assert delivered and len(delivered) < len(manifest.parts)
    for part in delivered:  # what a retry must not open: gone
        (flattened.parent / part.name).unlink()
    sink.fail_after = None
    ship_stage(flattened, sink, tag="t.alerts")
    assert Counter(sink.ids()) == Counter({f"a{i:04d}": 5 for i in range(40)})
    assert len({(event["_id"], event["ip_id"]) for event in sink.events}) == 200


def test_the_part_key_offsets_give_the_keys_a_whole_stage_count_gives(tmp_path):
    rows = [*alerts(12, ips=4), *alerts(3, ips=2), {"entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 1}]}]
    flattened, _ = flatten_stage(stage(tmp_path, rows, service="alerts"), max_part_bytes=400)
    manifest = read_manifest(flattened)
    assert manifest.extra["event_key_offsets"] and len(manifest.parts) > 5

    def ledger_keys(window: Path) -> set[str]:
        return DeliveryLedger(window).delivered_ids()

    ship_stage(flattened, Sink(batch=5), tag="t.alerts")
    with_offsets = ledger_keys(flattened.parent.parent)
    # The same window as staged before the manifest carried offsets: every part's keys counted by reading.
    other = tmp_path / "old"
    shutil.copytree(flattened.parent.parent, other, ignore=shutil.ignore_patterns("ledger", "delivered.json"))
    old_manifest = dataclasses.replace(
        manifest, extra={k: v for k, v in manifest.extra.items() if k != "event_key_offsets"}
    )
    write_manifest(other, old_manifest)
    ship_stage(other / FLATTENED / "manifest.json", Sink(batch=5), tag="t.alerts")
    assert with_offsets == ledger_keys(other) and len(with_offsets) == 12 * 4 + 3 * 2 + 2


def big_alert(events: int = 1000, text: int = 20_000) -> dict[str, Any]:
    return {
        "_id": "big",
        "description": "d" * text,
        "entities": [{"type": "user", "id": f"u{n}"} for n in range(events)],
    }


def test_flatten_streams_an_alerts_events_into_parts_and_notes_their_keys(tmp_path):
    # Issue 14, item 12: the by-alert road handed over each alert's events as one list (1,000 events: 200 MB held).
    rows = [*alerts(2, ips=2), big_alert(), {"entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}]}]
    fetched = stage(tmp_path, rows, service="alerts")
    tracemalloc.start()
    try:
        flattened, summary = flatten_stage(fetched, max_part_bytes=4_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.records == 2 * 2 + 1000 + 2 and summary.bytes > 20_000_000
    assert peak < 12_000_000, f"peak {peak:,} bytes: an alert's 20 MB of events were held together"
    manifest = read_manifest(flattened)
    assert len(manifest.parts) > 4  # the big alert's events run across parts
    sink = Sink(batch=100)
    ship_stage(flattened, sink, tag="t.alerts")
    assert Counter(event.get("_id") for event in sink.events) == Counter({"a0000": 2, "a0001": 2, "big": 1000, None: 2})
    assert ship_stage(flattened, sink, tag="t.alerts").delivered == 0


def test_flatten_stages_an_alert_over_the_byte_cap_once_marked(tmp_path):
    fetched = stage(tmp_path, [big_alert(), *alerts(1)], service="alerts")
    flattened, summary = flatten_stage(fetched, max_bytes_per_alert=1_000_000)
    assert summary.records == 1 + 3
    assert summary.stats == {"alerts_in": 2, "events_out": 4, "capped": 1, "capped_by_bytes": 1}
    assert read_manifest(flattened).extra["flatten"]["capped_by_bytes"] == 1
    sink = Sink()
    ship_stage(flattened, sink, tag="t.alerts")
    [capped] = [event for event in sink.events if event["_id"] == "big"]
    assert capped["flatten_capped"] is True and capped["flatten_bytes"] > 20_000_000
    assert len(capped["entities"]) == 1000


# -- obfuscation of flattened alerts (issue 14, item 13) ----------------------------------------------------------

KEY = b"k" * 32


def labelled_alerts() -> list[dict[str, Any]]:
    return [
        {
            "_id": f"a{i}",
            "user": {"userName": f"alice{i}@example.com"},
            "entities": [
                {"type": "user", "id": f"u{i}", "label": f"alice{i}@example.com"},
                {"type": "ip", "id": f"10.0.0.{i}", "label": f"10.0.0.{i}"},
                {"type": "ip", "id": f"10.0.1.{i}", "label": f"10.0.1.{i}"},
            ],
        }
        for i in range(3)
    ]


def hashed(value: str) -> str:
    return Obfuscator(parse_rules(["x"]), key=KEY).apply({"x": value})["x"]


def test_the_documented_entity_paths_hide_the_fields_of_flattened_alerts(tmp_path):
    # The rules were applied after flattening, when entities[] had become user_label, ip_label, ...: nothing was hidden.
    rules = parse_rules(["entities[].label", "user.userName"])
    fetched = stage(tmp_path, labelled_alerts(), service="alerts")
    flattened, summary = flatten_stage(fetched, obfuscator=Obfuscator(rules, key=KEY))
    assert summary.records == 6
    assert read_manifest(flattened).extra["obfuscation"]["matched"] == {"entities[].label": 9, "user.userName": 3}
    sink = Sink()
    shipped = ship_stage(flattened, sink, tag="t.alerts", obfuscator=Obfuscator(rules, key=KEY))
    assert "alice" not in json.dumps(sink.events)
    for event in sink.events:  # hashed once, before flattening: not a hash of a hash
        i = event["_id"][1:]
        assert event["user_label"] == hashed(f"alice{i}@example.com")
        assert event["ip_label"] in (hashed(f"10.0.0.{i}"), hashed(f"10.0.1.{i}"))
        assert event["user"]["userName"] == hashed(f"alice{i}@example.com")
        assert event["user_id"] == f"u{i}"  # only what the rules name
    assert shipped.obfuscation_unmatched == []


def test_a_rule_that_matches_nothing_in_a_window_is_warned_about_and_reported(tmp_path, caplog):
    rules = parse_rules(["user.userName", "user.nmae", {"path": "ip_label", "method": "mask"}])
    fetched = stage(tmp_path, labelled_alerts(), service="alerts")
    with caplog.at_level("WARNING", logger="airflow_provider_mdca.pipeline"):
        flattened, _ = flatten_stage(fetched, obfuscator=Obfuscator(rules, key=KEY))
        sink = Sink()
        summary = ship_stage(flattened, sink, tag="t.alerts", obfuscator=Obfuscator(rules, key=KEY))
    # ip_label is no field of an alert, but of its flattened events: the ship step applies it, and it matches there.
    assert {event["ip_label"] for event in sink.events} == {"***"}
    assert summary.obfuscation_unmatched == ["user.nmae"]
    assert summary.as_dict()["obfuscation_unmatched"] == ["user.nmae"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("'user.nmae' reached no field" in w and "window [" in w for w in warnings), warnings
    assert not any("'user.userName' reached no field" in w for w in warnings)


def test_rules_apply_at_ship_to_a_flattened_stage_that_was_not_obfuscated(tmp_path, caplog):
    # A window flattened without obfuscation (before this version): the ship step applies every rule, as it did.
    flattened, _ = flatten_stage(stage(tmp_path, labelled_alerts(), service="alerts"))
    sink = Sink()
    with caplog.at_level("WARNING", logger="airflow_provider_mdca.pipeline"):
        rules = parse_rules(["user.userName", "entities[].label"])
        summary = ship_stage(flattened, sink, tag="t.alerts", obfuscator=Obfuscator(rules, key=KEY))
    assert all(event["user"]["userName"].startswith("hmac-sha256:") for event in sink.events)
    assert summary.obfuscation_unmatched == ["entities[].label"]  # flattened: no entities left to reach
    assert "'entities[].label' reached no field" in caplog.text


def test_an_empty_window_reports_no_unmatched_rule(tmp_path):
    flattened, _ = flatten_stage(
        stage(tmp_path, [], service="alerts"), obfuscator=Obfuscator(parse_rules(["a"]), key=KEY)
    )
    summary = ship_stage(flattened, Sink(), tag="t.alerts", obfuscator=Obfuscator(parse_rules(["a"]), key=KEY))
    assert summary.obfuscation_unmatched == []
