"""Staging: parts, manifests, the delivery ledger and retention, on a local disk and on an fsspec memory store."""

from __future__ import annotations

import dataclasses
import doctest
import gzip
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upath import UPath

from airflow_provider_mdca import staging
from airflow_provider_mdca.staging import (
    DELIVERED_NAME,
    DeliveryLedger,
    Manifest,
    PartInfo,
    PartWriter,
    StagingError,
    UnsafeLocationError,
    delivered_at,
    expired_windows,
    format_timestamp,
    is_window_delivered,
    manifest_path,
    mark_window_delivered,
    read_manifest,
    read_part,
    read_parts,
    read_stage,
    remove_window,
    stage_dir,
    window_bounds,
    window_dir,
    write_manifest,
)

UTC = timezone.utc
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)
WINDOW_NAME = "20261128T120000Z_20261128T120500Z"


def make_record(index: int) -> dict[str, Any]:
    """A record with what MDCA sends: ids, epoch millis, unicode, line breaks inside values, nesting, nulls."""
    return {
        "_id": f"act-{index:08d}",
        "timestamp": 1_795_867_200_000 + index,
        "user": {"name": "Zoë Ångström 日本", "upn": f"user{index % 97}@example.com"},
        "description": "line one\nline two\r\n\ttabbed \u2028 sep \u2029 end" if index % 3 == 0 else "plain",
        "score": index / 7,
        "tags": ["a", "🔥", None, True],
    }


def records(count: int) -> Iterator[dict[str, Any]]:
    return (make_record(index) for index in range(count))


def memory_base() -> UPath:
    return UPath(f"memory://staging-test-{uuid.uuid4().hex}/base")


@pytest.fixture(params=["local", "memory"])
def base(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A staging root on the local disk and on an fsspec memory store: nothing may depend on local files."""
    if request.param == "local":
        yield tmp_path / "staging"
        return
    monkeypatch.chdir(tmp_path)
    root = memory_base()
    yield root
    if root.exists():
        root.fs.rm(root.path, recursive=True)
    # universal_pathlib 0.2 makes a memory:// path a pathlib.Path too: it must still never reach the local disk.
    assert list(tmp_path.iterdir()) == [], "a memory:// path was written to the local disk"


@pytest.fixture
def window(base: Any) -> Any:
    return window_dir(base, "activities", START, END)


def names(folder: Any) -> list[str]:
    return sorted(child.name for child in folder.iterdir()) if folder.exists() else []


def stage(window: Any, records_to_write: Any, **limits: Any) -> list[PartInfo]:
    with PartWriter(window, stage="fetched", **limits) as writer:
        writer.write_all(records_to_write)
    return writer.parts


def flip_byte(path: Any, offset: int) -> None:
    with path.open("rb") as handle:
        data = bytearray(handle.read())
    data[offset] ^= 0xFF
    with path.open("wb") as handle:
        handle.write(bytes(data))


# --- memory (first in the file: the slowest test, it starts at once on one xdist worker) ------------------------------


def test_memory_stays_flat_while_staging_and_reading(tmp_path: Path) -> None:
    # Lean records: tracemalloc makes every allocation costly, and the point here is the count, not the shape.
    count, padding = 250_000, "x" * 100
    folder = window_dir(tmp_path, "activities", START, END)
    tracemalloc.start()
    try:
        with PartWriter(folder, stage="fetched", max_part_bytes=4_000_000) as writer:
            writer.write_all({"_id": index, "pad": padding} for index in range(count))
        read = sum(1 for _ in read_parts(writer.folder, writer.parts))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data_size = sum(part.bytes for part in writer.parts)
    assert read == count and data_size > 25_000_000
    # Buffers only (a 256 KiB write buffer, 1 MiB read chunks, gzip's own): a list of the records would be >100 MB.
    assert peak < 10_000_000, f"peak {peak} bytes for {data_size} bytes of records"


# --- windows ---------------------------------------------------------------------------------------------------------


def test_window_layout_is_service_then_utc_bounds(tmp_path: Path) -> None:
    folder = window_dir(tmp_path, "alerts", START, END)
    assert folder == tmp_path / "alerts" / WINDOW_NAME
    assert stage_dir(folder, "flattened") == folder / "flattened"
    assert manifest_path(folder, "fetched") == folder / "fetched" / "manifest.json"
    assert window_bounds(folder) == (START, END)
    assert not folder.exists(), "computing a path creates nothing"


def test_window_bounds_are_converted_to_utc(tmp_path: Path) -> None:
    paris = timezone(timedelta(hours=1))
    folder = window_dir(tmp_path, "alerts", START.astimezone(paris), END.astimezone(paris))
    assert folder.name == WINDOW_NAME


def test_sub_second_bounds_keep_their_microseconds(tmp_path: Path) -> None:
    start = START + timedelta(microseconds=250_000)
    folder = window_dir(tmp_path, "alerts", start, END)
    assert folder.name == "20261128T120000.250000Z_20261128T120500Z"
    assert window_bounds(folder) == (start, END)


@pytest.mark.parametrize("naive", ["start", "end"])
def test_naive_bounds_are_refused_naming_the_bound(tmp_path: Path, naive: str) -> None:
    bounds = {"start": START, "end": END}
    bounds[naive] = bounds[naive].replace(tzinfo=None)
    with pytest.raises(ValueError, match=f"^{naive} must be timezone-aware"):
        window_dir(tmp_path, "alerts", bounds["start"], bounds["end"])


def test_reversed_window_and_unsafe_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="after end"):
        window_dir(tmp_path, "alerts", END, START)
    for service in ("", "..", "a/b", "../etc"):
        with pytest.raises(ValueError, match="service"):
            window_dir(tmp_path, service, START, END)
    for stage_name in ("ledger", "..", "x/y", ""):
        with pytest.raises(ValueError, match="stage"):
            stage_dir(tmp_path, stage_name)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).map(
            lambda moment: moment.replace(microsecond=0)
        ),
        min_size=2,
        max_size=8,
    )
)
def test_whole_second_timestamps_sort_like_time(moments: list[datetime]) -> None:
    assert sorted(moments, key=format_timestamp) == sorted(moments)


# --- parts: round trips ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "count", "max_part_bytes"),
    [
        ("local", 0, 2_000_000),
        ("local", 1, 2_000_000),
        ("local", 250_000, 2_000_000),
        # The memory store keeps everything in this process: fewer records, smaller parts, as many roll-overs.
        ("memory", 0, 200_000),
        ("memory", 1, 200_000),
        ("memory", 25_000, 200_000),
    ],
    indirect=["base"],
)
def test_round_trip_keeps_every_record_in_order(window: Any, count: int, max_part_bytes: int) -> None:
    parts = stage(window, records(count), max_part_bytes=max_part_bytes)
    assert sum(part.records for part in parts) == count
    if count == 0:
        assert parts == []
    if count > 1:
        assert len(parts) > 5, "the small bound must force several parts"
    assert [part.name for part in parts] == [f"part-{index:05d}.ndjson.gz" for index in range(len(parts))]
    folder = stage_dir(window, "fetched")
    read = 0
    for got, expected in zip(read_parts(folder, parts), records(count), strict=True):
        assert got == expected
        read += 1
    assert read == count


def test_unicode_line_breaks_and_lone_surrogates_survive(window: Any) -> None:
    awkward = [
        {"text": "a\nb\r\nc\rd", "sep": "\u2028\u2029\x85\x0b\x0c", "nul": "\x00", "emoji": "👩‍💻", "rtl": "שלום"},
        {"key\nwith break": "value", "": "empty key", "nested": [{"deep": ["\n", "\\n", '"quoted"']}]},
        {"lone": "\ud83d half an emoji", "ok": "é"},
        {"big": 2**70, "neg": -0.0, "float": 1e-300, "none": None},
    ]
    parts = stage(window, awkward)
    assert list(read_parts(stage_dir(window, "fetched"), parts)) == awkward


def test_parts_are_compact_json_lines_one_record_per_line(window: Any) -> None:
    record = {"a": "é\nü", "b": [1, 2]}
    (part,) = stage(window, [record, record])
    with (stage_dir(window, "fetched") / part.name).open("rb") as handle:
        text = gzip.decompress(handle.read())
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    assert text == line * 2
    assert part.bytes == len(text) and part.records == 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**63), 2**63)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=40),
                lambda children: (
                    st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
                ),
                max_leaves=12,
            ),
            max_size=6,
        ),
        max_size=30,
    ),
    st.integers(min_value=1, max_value=400),
)
def test_any_json_objects_round_trip_on_a_memory_store(items: list[dict[str, Any]], max_part_bytes: int) -> None:
    root = memory_base()
    try:
        folder = window_dir(root, "entities", START, END)
        parts = stage(folder, items, max_part_bytes=max_part_bytes)
        assert list(read_parts(stage_dir(folder, "fetched"), parts)) == items
    finally:
        if root.exists():
            root.fs.rm(root.path, recursive=True)


def test_parts_roll_before_the_byte_bound_and_at_the_record_bound(window: Any) -> None:
    line_bytes = len(json.dumps(make_record(1), ensure_ascii=False, separators=(",", ":")).encode()) + 1
    by_bytes = stage(window, (make_record(1) for _ in range(100)), max_part_bytes=line_bytes * 10 + 5)
    assert [part.records for part in by_bytes] == [10] * 10
    assert all(part.bytes <= line_bytes * 10 + 5 for part in by_bytes)
    by_records = stage(window, records(25), max_part_records=10)
    assert [part.records for part in by_records] == [10, 10, 5]


def test_a_record_bigger_than_the_bound_gets_a_part_of_its_own(window: Any) -> None:
    items = [{"i": 0}, {"big": "x" * 1000}, {"i": 2}]
    parts = stage(window, items, max_part_bytes=100)
    assert [part.records for part in parts] == [1, 1, 1]
    assert list(read_parts(stage_dir(window, "fetched"), parts)) == items


def test_same_records_give_the_same_part_bytes(tmp_path: Path) -> None:
    first = stage(window_dir(tmp_path, "alerts", START, END), records(500))
    second = stage(window_dir(tmp_path, "files", START, END), records(500))
    assert first == second, "gzip header without mtime or name: a restaged identical part has the same sha256"


# --- parts: atomicity ------------------------------------------------------------------------------------------------


def test_only_complete_parts_remain_after_close(window: Any) -> None:
    parts = stage(window, records(3000), max_part_bytes=50_000)
    assert names(stage_dir(window, "fetched")) == sorted(part.name for part in parts)


def test_a_part_in_flight_has_only_a_hidden_temporary_name(window: Any) -> None:
    writer = PartWriter(window, stage="fetched", max_part_bytes=50_000)
    writer.write_all(records(1000))  # a few parts complete, one in flight: as a crash would leave it
    folder = stage_dir(window, "fetched")
    complete = [part.name for part in writer.parts]
    in_flight = [name for name in names(folder) if name not in complete]
    assert complete and len(in_flight) == 1
    assert in_flight[0].startswith(".part-") and in_flight[0].endswith(".tmp")
    writer.abort()
    assert names(folder) == []


@pytest.mark.parametrize("count", [5, 3000])
def test_a_writer_that_raises_leaves_no_complete_looking_part(window: Any, count: int) -> None:
    writer = PartWriter(window, stage="fetched", max_part_bytes=50_000)
    completed_before_failure: list[int] = []

    def fetch() -> None:
        with writer:
            writer.write_all(records(count))
            completed_before_failure.append(len(writer.parts))
            raise RuntimeError("fetch failed")

    with pytest.raises(RuntimeError, match="fetch failed"):
        fetch()
    assert completed_before_failure == [0] if count == 5 else completed_before_failure[0] > 1
    assert names(stage_dir(window, "fetched")) == [], "neither the part in flight nor the completed ones remain"
    with pytest.raises(StagingError, match="closed"):
        writer.write({"late": True})


def test_an_unserialisable_record_is_a_staging_error(window: Any) -> None:
    with PartWriter(window, stage="fetched") as writer:
        writer.write({"ok": 1})
        with pytest.raises(StagingError, match="record 2 cannot be staged as JSON"):
            writer.write({"what": object()})
        with pytest.raises(StagingError, match="JSON object"):
            writer.write(["not", "an", "object"])
    assert [part.records for part in writer.parts] == [1]


def test_restaging_drops_the_old_manifest_and_delivery_marker(window: Any) -> None:
    parts = stage(window, records(10))
    write_manifest(window, Manifest.build(service="activities", start=START, end=END, stage="fetched", parts=parts))
    mark_window_delivered(window, {"events": 10})
    with PartWriter(window, stage="fetched") as writer:
        writer.write(make_record(0))
        assert not manifest_path(window, "fetched").exists(), "it would name parts about to be replaced"
        assert not is_window_delivered(window), "retention must not delete a window being restaged"


# --- parts: verification ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "middle", "trailer"])
def test_a_corrupt_byte_is_reported_naming_the_part_before_any_of_its_records(window: Any, where: str) -> None:
    parts = stage(window, records(2000), max_part_bytes=100_000)
    folder = stage_dir(window, "fetched")
    victim = parts[1]
    with (folder / victim.name).open("rb") as handle:
        size = len(handle.read())
    flip_byte(folder / victim.name, {"header": 5, "middle": size // 2, "trailer": size - 1}[where])
    seen: list[dict[str, Any]] = []
    with pytest.raises(StagingError, match=r"part-00001\.ndjson\.gz: part part-00001\.ndjson\.gz: sha256 mismatch"):
        seen.extend(read_parts(folder, parts))
    assert seen == list(records(parts[0].records)), "only the intact first part was yielded"


@pytest.mark.parametrize(("field", "label"), [("records", "record count"), ("bytes", "uncompressed size")])
@pytest.mark.parametrize("error", [+1, -1])
def test_a_manifest_whose_count_or_size_disagrees_with_its_part_is_reported(
    window: Any, field: str, label: str, error: int
) -> None:
    # The sha256 matches: the part is the writer's, and the manifest is what disagrees with it. The records are
    # counted as they are read (one decompression), so the mismatch is raised at the end of the part.
    (part,) = stage(window, records(50))
    claimed = getattr(part, field) + error
    wrong = dataclasses.replace(part, **{field: claimed})
    seen: list[dict[str, Any]] = []
    actual = getattr(part, field)
    with pytest.raises(
        StagingError,
        match=rf"part-00000\.ndjson\.gz: part part-00000\.ndjson\.gz: {label} mismatch: "
        rf"the manifest says {claimed}, the file has {actual}$",
    ):
        seen.extend(read_part(stage_dir(window, "fetched"), wrong))
    assert seen == list(records(50)), "the part's own records, checked by its sha256"
    assert len(list(read_part(stage_dir(window, "fetched"), wrong, verify=False))) == 50


def test_a_missing_or_truncated_part_is_reported(window: Any) -> None:
    parts = stage(window, records(200), max_part_bytes=5_000)
    folder = stage_dir(window, "fetched")
    (folder / parts[0].name).unlink()
    with pytest.raises(StagingError, match=r"part-00000\.ndjson\.gz not found"):
        list(read_parts(folder, parts))
    with (folder / parts[1].name).open("rb") as handle:
        data = handle.read()
    with (folder / parts[1].name).open("wb") as handle:
        handle.write(data[: len(data) // 2])
    with pytest.raises(StagingError, match=r"part-00001\.ndjson\.gz: sha256 mismatch"):
        list(read_part(folder, parts[1]))


def test_a_replaced_part_fails_verification(window: Any) -> None:
    old = stage(window, records(30))
    stage(window, records(31))  # a restaged window reuses the part name for other bytes
    with pytest.raises(StagingError, match="sha256 mismatch"):
        list(read_parts(stage_dir(window, "fetched"), old))


class Recorded:
    """A folder whose files log each open and read: the part of the path API :func:`read_part` uses."""

    def __init__(self, path: Path, log: list[tuple[str, Any]]) -> None:
        self.path, self.log = path, log

    def __truediv__(self, name: str) -> Recorded:
        return Recorded(self.path / name, self.log)

    def __str__(self) -> str:
        return str(self.path)

    def open(self, mode: str) -> Any:
        self.log.append(("open", self.path.name))
        return RecordedHandle(self.path.open(mode), self.log)


class RecordedHandle:
    def __init__(self, handle: Any, log: list[tuple[str, Any]]) -> None:
        self.handle, self.log = handle, log

    def __enter__(self) -> RecordedHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.handle.read(size)
        self.log.append(("read", len(data)))
        return data


@pytest.mark.parametrize("verify", [True, False])
def test_a_part_is_opened_and_read_once_whole(tmp_path: Path, verify: bool) -> None:
    window = window_dir(tmp_path, "activities", START, END)
    (part,) = stage(window, records(3000))
    folder = stage_dir(window, "fetched")
    log: list[tuple[str, Any]] = []
    assert list(read_part(Recorded(folder, log), part, verify=verify)) == list(records(3000))
    assert log == [("open", part.name), ("read", (folder / part.name).stat().st_size)]


def test_writer_arguments_and_repeated_close(window: Any) -> None:
    for limits in ({"max_part_bytes": 0}, {"max_part_records": 0}):
        with pytest.raises(ValueError, match="must be positive"):
            PartWriter(window, stage="fetched", **limits)
    writer = PartWriter(window, stage="fetched")
    assert writer.write_all(records(3)) == 3 and writer.records == 3
    assert writer.close() == writer.close() == writer.parts


def test_part_info_refuses_names_outside_the_stage_folder() -> None:
    with pytest.raises(ValueError, match="part name"):
        PartInfo("../../etc/passwd", 1, 1, "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        PartInfo("part-00000.ndjson.gz", 1, 1, "XYZ")
    with pytest.raises(ValueError, match="records"):
        PartInfo("part-00000.ndjson.gz", -1, 1, "0" * 64)


# --- manifests -------------------------------------------------------------------------------------------------------


def test_manifest_round_trip_and_reading_records_from_its_location(window: Any) -> None:
    parts = stage(window, records(700), max_part_bytes=40_000)
    manifest = Manifest.build(
        service="activities",
        start=START,
        end=END,
        stage="fetched",
        parts=parts,
        api_total=702,
        request_stats={"requests": 3, "retries": 1, "elapsed_seconds": 1.5},
        extra={"note": "café"},
    )
    path = write_manifest(window, manifest)
    assert path == manifest_path(window, "fetched")
    assert read_manifest(path) == manifest
    assert manifest.record_count == 700 and manifest.window_start == "2026-11-28T12:00:00+00:00"
    with path.open("rb") as handle:
        text = handle.read().decode("utf-8")
    assert '\n  "service": "activities",' in text and "café" in text, "indented and human-readable"
    assert [name for name in names(path.parent) if not name.startswith("part-")] == ["manifest.json"]
    assert list(read_stage(path)) == list(records(700))


def test_an_empty_stage_has_a_manifest_too(window: Any) -> None:
    parts = stage(window, [])
    path = write_manifest(
        window, Manifest.build(service="activities", start=START, end=END, stage="fetched", parts=parts)
    )
    assert read_manifest(path).record_count == 0
    assert list(read_stage(path)) == []


def good_manifest_dict() -> dict[str, Any]:
    part = PartInfo("part-00000.ndjson.gz", 2, 40, "a" * 64)
    return Manifest.build(service="alerts", start=START, end=END, stage="fetched", parts=[part]).as_dict()


def with_changes(**changes: Any) -> bytes:
    data = good_manifest_dict()
    data.update(changes)
    return json.dumps(data).encode()


def without(key: str) -> bytes:
    data = good_manifest_dict()
    del data[key]
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "must be a JSON object, got list"),
        (without("parts"), r"missing keys \['parts'\]"),
        (with_changes(record_count=3), "record_count 3 is not the sum"),
        (with_changes(record_count="2"), "record_count must be a non-negative integer"),
        (with_changes(api_total=-1), "api_total must be a non-negative integer"),
        (with_changes(window_start="yesterday"), "window_start is not an ISO 8601 timestamp"),
        (with_changes(window_end="2026-11-28T12:05:00"), "window_end has no UTC offset"),
        (with_changes(service="../x"), "service must be one path segment"),
        (with_changes(format_version=2), "format_version 2 is not 1"),
        (with_changes(extra=[]), "extra must be a JSON object"),
        (with_changes(parts={}), "parts must be a list"),
        (with_changes(parts=[{"name": "../../etc/passwd", "records": 2, "bytes": 1, "sha256": "a" * 64}]), "part name"),
        (with_changes(parts=[{"name": "part-00000.ndjson.gz", "records": 2}]), r"parts\[0\]: a part must have"),
    ],
)
def test_a_malformed_manifest_is_a_staging_error_naming_the_file(window: Any, content: bytes, problem: str) -> None:
    path = manifest_path(window, "fetched")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(content)
    with pytest.raises(StagingError, match=problem) as caught:
        read_manifest(path)
    assert caught.value.location is not None and caught.value.location.endswith("fetched/manifest.json")


def test_a_missing_manifest_and_an_unserialisable_one(window: Any) -> None:
    with pytest.raises(StagingError, match=r"manifest\.json: manifest not found"):
        read_manifest(manifest_path(window, "fetched"))
    manifest = Manifest.build(service="activities", start=START, end=END, stage="fetched", parts=[])
    manifest.extra["when"] = START
    with pytest.raises(StagingError, match="manifest is not JSON-serialisable"):
        write_manifest(window, manifest)
    manifest.extra.clear()
    manifest.record_count = 5
    with pytest.raises(StagingError, match="manifest is invalid: record_count"):
        write_manifest(window, manifest)


# --- delivery ledger -------------------------------------------------------------------------------------------------


def test_ledger_unions_the_ids_of_every_attempt(window: Any) -> None:
    first = DeliveryLedger(window)
    assert first.delivered_ids() == set()
    assert first.record_batch(["a", "b"]) == 2
    assert first.record_batch(iter(["c"])) == 1
    assert first.record_batch([]) == 0
    second = DeliveryLedger(window)
    assert (first.attempt, second.attempt) == (1, 2)
    second.record_batch(["c", "d", "ünïcode id"])
    assert DeliveryLedger(window, attempt=7).delivered_ids() == {"a", "b", "c", "d", "ünïcode id"}
    assert all(name.endswith(".ids") and name.startswith("attempt-000") for name in names(window / "ledger"))


def test_ledger_remembers_delivered_parts_by_content(window: Any) -> None:
    parts = stage(window, records(300), max_part_bytes=20_000)
    first = DeliveryLedger(window)
    first.mark_part_delivered("fetched", parts[0])
    first.mark_part_delivered("fetched", parts[1])
    first.mark_part_delivered("flattened", parts[2])
    retry = DeliveryLedger(window)
    assert retry.delivered_parts("fetched") == {parts[0], parts[1]}
    assert retry.pending_parts("fetched", parts) == parts[2:]
    restaged = dataclasses.replace(parts[0], sha256="b" * 64)
    assert retry.pending_parts("fetched", [restaged, parts[1]]) == [restaged], "same name, other bytes: not delivered"


def test_ledger_refuses_ids_it_could_not_read_back(window: Any) -> None:
    ledger = DeliveryLedger(window)
    for bad in ("", "a\nb", "a\rb"):
        with pytest.raises(ValueError, match="record id"):
            ledger.record_batch(["ok", bad])
    assert ledger.delivered_ids() == set(), "a refused batch writes nothing"


def test_ledger_ignores_temporary_files_and_reports_damaged_ones(window: Any) -> None:
    ledger = DeliveryLedger(window)
    ledger.record_batch(["a"])
    folder = window / "ledger"
    with (folder / ".attempt-0009-x.ids.1234.tmp").open("wb") as handle:
        handle.write(b"half")
    assert ledger.delivered_ids() == {"a"}
    damaged = folder / f"attempt-0002-{'0' * 32}-000001.ids"
    with damaged.open("wb") as handle:
        handle.write(b"b\nc")
    with pytest.raises(StagingError, match="ledger file is incomplete"):
        ledger.delivered_ids()


def test_concurrent_attempts_never_share_or_corrupt_a_file(window: Any) -> None:
    writers, batches, size = 6, 25, 40
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def ship(worker: int) -> None:
        try:
            ledger = DeliveryLedger(window, attempt=1)  # the same attempt number on purpose: the uuid separates
            barrier.wait()
            for batch in range(batches):
                ledger.record_batch(f"w{worker}-b{batch}-{index}" for index in range(size))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ship, args=(worker,)) for worker in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(names(window / "ledger")) == writers * batches
    expected = {f"w{w}-b{b}-{i}" for w in range(writers) for b in range(batches) for i in range(size)}
    assert DeliveryLedger(window).delivered_ids() == expected


# --- retention -------------------------------------------------------------------------------------------------------


def test_retention_lists_only_delivered_expired_windows(base: Any) -> None:
    now = datetime.now(UTC)
    old_start = now - timedelta(days=30)

    def make(offset_minutes: int, *, delivered: bool) -> Any:
        start = old_start + timedelta(minutes=offset_minutes)
        folder = window_dir(base, "activities", start, start + timedelta(minutes=5))
        parts = stage(folder, records(3))
        write_manifest(
            folder, Manifest.build(service="activities", start=start, end=start, stage="fetched", parts=parts)
        )
        if delivered:
            mark_window_delivered(folder, {"events": 3})
        return folder

    delivered_old = make(0, delivered=True)
    undelivered_old = make(5, delivered=False)
    delivered_later = make(10, delivered=True)
    broken = make(15, delivered=False)
    with (broken / DELIVERED_NAME).open("wb") as handle:
        handle.write(b"{broken")
    (base / "activities" / "not-a-window").mkdir(parents=True, exist_ok=True)
    with (base / "activities" / "not-a-window" / "x").open("wb") as handle:
        handle.write(b"x")

    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert [w.name for w in expired_windows(base, "activities", older_than=cutoff)] == [
        delivered_old.name,
        delivered_later.name,
    ]
    assert expired_windows(base, "activities", older_than=old_start) == [], "delivered after the cutoff"
    assert expired_windows(base, "alerts", older_than=cutoff) == []
    with pytest.raises(ValueError, match="older_than must be timezone-aware"):
        expired_windows(base, "activities", older_than=cutoff.replace(tzinfo=None))

    with pytest.raises(StagingError, match="refusing to delete undelivered data"):
        remove_window(undelivered_old)
    for expired in expired_windows(base, "activities", older_than=cutoff):
        remove_window(expired)
    assert names(base / "activities") == sorted([undelivered_old.name, broken.name, "not-a-window"])
    assert list(read_stage(manifest_path(undelivered_old, "fetched"))) == list(records(3)), "untouched"
    remove_window(undelivered_old, force=True)
    assert not undelivered_old.exists()


def delivered_window(base: Path, minutes: int = 0) -> Path:
    start = datetime.now(UTC) - timedelta(days=30, minutes=minutes)
    folder = window_dir(base, "alerts", start, start + timedelta(minutes=5))
    stage(folder, records(3))
    mark_window_delivered(folder, {"events": 3})
    return folder


def outside(tmp_path: Path) -> Path:
    """A folder outside staging that retention must never touch."""
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "precious.txt").write_text("keep me", encoding="utf-8")
    (victim / "sub" / "also.txt").write_text("keep me too", encoding="utf-8")
    return victim


def untouched(victim: Path) -> bool:
    return sorted(str(p.relative_to(victim)) for p in victim.rglob("*")) == ["precious.txt", "sub", "sub/also.txt"]


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_removing_a_window_never_follows_a_link_in_it(tmp_path: Path, as_url: bool) -> None:
    # Issue 14, item 14: a link in a window folder emptied a folder outside staging.
    victim = outside(tmp_path)
    base = UPath(tmp_path.as_uri()) / "staging" if as_url else tmp_path / "staging"
    window = delivered_window(base)
    local = tmp_path / "staging" / "alerts" / window.name
    os.symlink(victim, local / "link-to-a-folder")
    os.symlink(victim / "precious.txt", local / "fetched" / "link-to-a-file")
    os.symlink(victim, local / "fetched" / "link-in-a-stage")
    remove_window(window)
    assert not local.exists() and not os.path.lexists(local)
    assert untouched(victim)


def test_a_window_that_is_a_link_is_kept_and_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    victim = outside(tmp_path)
    base = tmp_path / "staging"
    real = delivered_window(base)
    fake = real.parent / window_dir(base, "alerts", START, END).name
    os.symlink(victim, fake)
    mark_window_delivered(victim, {})  # what the link points at even looks delivered
    cutoff = datetime.now(UTC)
    with caplog.at_level("WARNING", logger="airflow_provider_mdca.staging"):
        assert expired_windows(base, "alerts", older_than=cutoff) == [real]
    assert f"Keeping {fake}: a symbolic link" in caplog.text
    with pytest.raises(UnsafeLocationError, match=f"^{fake}: the window folder is a symbolic link"):
        remove_window(fake)
    (victim / DELIVERED_NAME).unlink()
    assert untouched(victim) and os.path.islink(fake)


@pytest.mark.parametrize(
    ("which", "problem"),
    [
        (which, problem)
        for which in ("root", "service", "window")
        for problem in ("group-writable", "world-writable", "another-owner", "link")
        if (which, problem) != ("root", "link")  # a configured root may be reached through a link (checked below)
    ],
)
def test_an_unsafe_local_staging_folder_is_refused_naming_it(tmp_path: Path, which: str, problem: str) -> None:
    base = tmp_path / "staging"
    window = delivered_window(base)
    folder = {"root": base, "service": base / "alerts", "window": window}[which]
    if problem == "link":
        moved = folder.with_name(folder.name + ".real")
        folder.rename(moved)
        os.symlink(moved, folder)
        expected = "is a symbolic link"
    elif problem == "another-owner":
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(folder, 4242, -1)
        expected = f"is owned by uid 4242, not by this task's user (uid {os.geteuid()})"
    else:
        os.chmod(folder, 0o770 if problem == "group-writable" else 0o707)
        expected = "is group or world writable"
    what = {"root": "the staging root", "service": "the alerts folder of staging", "window": "the window folder"}

    def clean_up() -> None:
        expired_windows(base, "alerts", older_than=datetime.now(UTC))  # a window that is a link: skipped here
        remove_window(window)

    with pytest.raises(UnsafeLocationError, match=re.escape(f"{folder}: {what[which]} {expected}")) as refused:
        clean_up()
    assert isinstance(refused.value, StagingError)
    assert os.path.lexists(window / DELIVERED_NAME), "nothing was deleted"


def test_a_link_to_the_staging_root_is_followed_to_check_it(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "staging"
    window = delivered_window(real)
    os.symlink(real, tmp_path / "staging")
    assert [w.name for w in expired_windows(tmp_path / "staging", "alerts", older_than=datetime.now(UTC))] == [
        window.name
    ]
    os.chmod(real, 0o777)
    with pytest.raises(UnsafeLocationError, match="the staging root is group or world writable"):
        expired_windows(tmp_path / "staging", "alerts", older_than=datetime.now(UTC))


def test_object_stores_have_no_owners_or_links_to_check() -> None:
    base = memory_base()
    window = delivered_window(base)  # type: ignore[arg-type]
    assert expired_windows(base, "alerts", older_than=datetime.now(UTC)) == [window]
    remove_window(window)
    assert not window.exists()
    base.fs.rm(base.path, recursive=True)


def test_delivery_marker_records_when_and_what(window: Any) -> None:
    assert delivered_at(window) is None and not is_window_delivered(window)
    before = datetime.now(UTC)
    path = mark_window_delivered(window, {"events": 12, "tag": "cloud.office365"})
    when = delivered_at(window)
    assert when is not None and before <= when <= datetime.now(UTC)
    with path.open("rb") as handle:
        assert json.loads(handle.read())["summary"] == {"events": 12, "tag": "cloud.office365"}


# --- local permissions, other path types, errors ---------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_staging_is_owner_only(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    folder = window_dir(tmp_path / "staging", "activities", START, END)
    parts = stage(folder, records(100), max_part_bytes=5_000)
    write_manifest(folder, Manifest.build(service="activities", start=START, end=END, stage="fetched", parts=parts))
    DeliveryLedger(folder).record_batch(["a"])
    mark_window_delivered(folder, {})
    created_dirs = [tmp_path / "staging", folder.parent, folder, folder / "fetched", folder / "ledger"]
    assert {str(d): mode(d) for d in created_dirs} == {str(d): 0o700 for d in created_dirs}
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == len(parts) + 3
    assert {str(f): mode(f) for f in files} == {str(f): 0o600 for f in files}
    assert mode(tmp_path) == 0o755, "an existing base folder is not ours to change"


def test_a_file_url_path_is_treated_as_local(tmp_path: Path) -> None:
    folder = window_dir(UPath(tmp_path.as_uri()), "alerts", START, END)
    parts = stage(folder, records(10))
    local = tmp_path / "alerts" / WINDOW_NAME / "fetched" / parts[0].name
    assert mode(local) == 0o600 and mode(local.parent) == 0o700
    assert list(read_parts(stage_dir(folder, "fetched"), parts)) == list(records(10))


def test_staging_errors_hide_credentials_and_pickle() -> None:
    error = StagingError("part x is broken", "abfs://user:s3cr3tpass@container/stage/part?sig=abcdef&x=1")
    assert "s3cr3tpass" not in str(error) and "abcdef" not in str(error)
    assert str(error).startswith("abfs://container/stage/part?sig=")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.location == error.location


def test_the_module_imports_no_airflow() -> None:
    code = (
        "import sys, airflow_provider_mdca.staging\n"
        "raise SystemExit(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')) or 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", [staging, staging.layout], ids=lambda module: module.__name__)
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_a_file_renamed_into_place_has_its_folder_synced_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A power cut after the rename but before the folder's entry reaches the disk would lose a ledger entry.
    from airflow_provider_mdca.staging.storage import write_atomically

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomically(tmp_path / "ledger-entry.json", b"{}")
    assert synced[-1] == str(tmp_path) and (tmp_path / "ledger-entry.json").read_bytes() == b"{}"
