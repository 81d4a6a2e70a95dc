"""The record streams without a server: arithmetic, order, ids, shapes, determinism, config round trip, and the
emulator's services held to the provider's registry and the tests' service table.
"""

from __future__ import annotations

import json
import re
from itertools import islice, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig, records, services
from mdca_emulator.data import HOUR_MS, INF_MS, SnapshotData, TimeSeriesData
from tests.emulator.support import T0
from tests.service_table import ALL as ALL_SERVICES
from tests.service_table import SERVICE_TABLE, SNAPSHOTS, WINDOWED

ALL = [(0, INF_MS)]
MIN = 60_000


def ids_and_ts(data: TimeSeriesData, lo: int = 0, hi: int = INF_MS) -> list[tuple[int, str]]:
    return [(entry[0], entry[1]) for entry in data.entries([(lo, hi)])]


class TestSegment:
    @pytest.mark.parametrize(
        ("count", "span", "sizes"),
        [(100, 100, (1,)), (101, 1_000, (1, 1, 4, 1, 7)), (50, 7, (3,)), (0, 10, (1,)), (13, 13_000, (2, 5))],
        ids=["one-per-ms", "clusters", "denser-than-ms", "empty", "uneven"],
    )
    def test_timestamps_inside_span_non_decreasing_and_clustered(self, count, span, sizes):
        data = TimeSeriesData("activities", 1, [Segment(T0, T0 + span, count, sizes)])
        rows = ids_and_ts(data)
        assert len(rows) == count == data.count(ALL)
        assert all(T0 <= ts < T0 + span for ts, _ in rows)
        assert rows == sorted(rows)
        if count and span >= count:  # clusters never merge when there is room: sizes cycle as configured
            runs = [len([r for r in rows if r[0] == ts]) for ts in sorted({r[0] for r in rows})]
            expected = [sizes[i % len(sizes)] for i in range(len(runs))]
            expected[-1] = runs[-1]  # the last cluster may be cut short by count
            assert runs == expected

    def test_range_counts_match_brute_force(self):
        data = TimeSeriesData("alerts", 3, [Segment(T0, T0 + 997, 321, (1, 1, 4, 1, 7))])
        everything = [ts for ts, _ in ids_and_ts(data)]
        for lo, hi in [
            (T0, T0 + 1),
            (T0 + 10, T0 + 500),
            (T0 - 5, T0 + 3),
            (T0 + 996, T0 + 2_000),
            (T0 + 5, T0 + 5),
        ]:
            expected = [ts for ts in everything if lo <= ts < hi]
            assert data.count([(lo, hi)]) == len(expected)
            assert [ts for ts, _ in ids_and_ts(data, lo, hi)] == expected

    def test_descending_is_the_exact_reverse(self):
        specs = [Segment(T0, T0 + 500, 777, (1, 3)), Segment(T0 + 100, T0 + 900, 55)]
        data = TimeSeriesData("files", 2, specs)
        forward = list(data.entries([(T0 + 50, T0 + 800)]))
        assert list(data.entries([(T0 + 50, T0 + 800)], reverse=True)) == forward[::-1]

    def test_rejects_bad_segments(self):
        with pytest.raises(ValueError, match="start_ms < end_ms"):
            Segment(T0, T0, 1)
        with pytest.raises(ValueError, match="cluster_sizes"):
            Segment(T0, T0 + 1, 1, (0,))


class TestIds:
    def test_unique_hex_time_prefixed_and_merged_in_order(self):
        specs = [
            Segment(T0, T0 + 2_000, 3_000, (1, 1, 4)),
            Segment(T0, T0 + 2_000, 2_000, (2,)),
            Rate(500, (3,)),
        ]
        data = TimeSeriesData("activities", 9, specs)
        rows = ids_and_ts(data, T0 - HOUR_MS, T0 + 2 * HOUR_MS)
        ids = [_id for _, _id in rows]
        assert len(set(ids)) == len(ids) > 5_000
        assert all(re.fullmatch(r"[0-9a-f]{24}", _id) for _id in ids)
        assert all(int(_id[:8], 16) == ts // 1000 for ts, _id in rows)
        assert all(a < b for a, b in pairwise(rows))  # (timestamp, _id) strictly increasing

    def test_snapshot_ids_sort_like_indices(self):
        data = SnapshotData("entities", 4, 300)
        ids = [data.record_id(i) for i in range(300)]
        assert ids == sorted(ids) and len(set(ids)) == 300


class TestRate:
    def test_hours_vary_within_twenty_percent_and_counts_add_up(self):
        data = TimeSeriesData("activities", 5, [Rate(3_000, (1, 2), start_ms=T0 - T0 % HOUR_MS)])
        start = T0 - T0 % HOUR_MS
        per_hour = [data.count([(start + h * HOUR_MS, start + (h + 1) * HOUR_MS)]) for h in range(48)]
        assert all(2_400 <= n <= 3_600 for n in per_hour)
        assert len(set(per_hour)) > 10
        assert data.count([(start, start + 48 * HOUR_MS)]) == sum(per_hour)
        lo, hi = start + HOUR_MS // 2, start + 3 * HOUR_MS + 123
        assert data.count([(lo, hi)]) == len(ids_and_ts(data, lo, hi))

    def test_clipped_by_start_and_end(self):
        start = T0 - T0 % HOUR_MS
        data = TimeSeriesData("alerts", 1, [Rate(60, start_ms=start + 1_000, end_ms=start + 2 * HOUR_MS)])
        rows = ids_and_ts(data, start - HOUR_MS, start + 5 * HOUR_MS)
        assert rows and all(start + 1_000 <= ts < start + 2 * HOUR_MS for ts, _ in rows)


class TestServices:
    def test_the_emulator_serves_the_registrys_services_each_with_its_record(self):
        assert services.NAMES == tuple(SERVICES) == ALL_SERVICES
        assert (services.WINDOWED, services.SNAPSHOTS) == (WINDOWED, SNAPSHOTS)
        assert set(records.SHAPES) == set(ALL_SERVICES)

    @pytest.mark.parametrize("service", ALL_SERVICES)
    def test_routes_go_by_the_registrys_endpoint(self, service):
        parts = SERVICE_TABLE[service].endpoint.strip("/").split("/")
        assert services.by_path(parts) == service

    def test_a_table_out_of_step_with_the_registry_is_refused(self):
        complete = dict.fromkeys(ALL_SERVICES, 1)
        services.check_table(complete, "shapes", complete=True)
        services.check_table({"alerts": 1}, "extras", complete=False)
        with pytest.raises(RuntimeError, match=r"missing \['alerts'\]"):
            services.check_table({k: v for k, v in complete.items() if k != "alerts"}, "shapes", complete=True)
        with pytest.raises(RuntimeError, match=r"not in the registry \['subnet'\]"):
            services.check_table({**complete, "subnet": 1}, "shapes", complete=True)

    @pytest.mark.parametrize("service", WINDOWED)
    def test_a_windowed_record_holds_its_instant_in_the_time_field(self, service):
        data = TimeSeriesData(service, 2, [Segment(T0, T0 + 1_000, 30, (1, 3))])
        entries = list(data.entries(ALL))
        assert len(entries) == 30
        assert all(data.build(entry)[SERVICE_TABLE[service].time_field] == entry[0] for entry in entries)
        assert data.filter_field == SERVICE_TABLE[service].filter_field

    def test_windowed_and_snapshot_data_are_told_apart(self):
        with pytest.raises(ValueError, match="snapshot"):
            TimeSeriesData(SNAPSHOTS[0], 1, [])
        with pytest.raises(ValueError, match="windowed"):
            SnapshotData(WINDOWED[0], 1, 1)
        with pytest.raises(ValueError, match="unknown service 'subnet'"):
            SnapshotData("subnet", 1, 1)


class TestRecords:
    @pytest.mark.parametrize("service", WINDOWED)
    def test_render_is_json_dumps_of_build(self, service):
        data = TimeSeriesData(service, 11, [Segment(T0, T0 + 10_000, 400, (1, 2))])
        for entry in data.entries(ALL):
            text = data.render(entry)
            assert json.dumps(data.build(entry), separators=(",", ":"), ensure_ascii=False) == text
        page = data.render_page(list(data.entries(ALL)))
        assert len(json.loads(b"[" + page + b"]")) == 400

    @pytest.mark.parametrize("service", SNAPSHOTS)
    def test_snapshot_render_is_json_dumps_of_build(self, service):
        data = SnapshotData(service, 11, 60)
        for index in range(60):
            expected = json.dumps(data.build(index), separators=(",", ":"), ensure_ascii=False)
            assert data.render(index) == expected

    def test_activity_shape(self):
        data = TimeSeriesData("activities", 1, [Segment(T0, T0 + 100_000, 2_000)])
        records = [data.build(entry) for entry in data.entries(ALL)]
        first = records[0]
        for key in (
            "_id",
            "timestamp",
            "created",
            "appId",
            "appName",
            "eventType",
            "eventTypeValue",
            "description",
        ):
            assert key in first
        assert set(first["device"]) >= {"clientIP", "userAgent", "countryCode"}
        assert set(first["user"]) == {"userName", "userTags"}
        assert {"Level", "level"} <= set(first["rawDataJson"])
        assert "0" in first["entityData"]
        assert all(r["created"] > r["timestamp"] for r in records)
        descriptions = " ".join(r["description"] for r in records)
        assert "é" in descriptions and "中文" in descriptions

    def test_alert_entities_vary_and_ids_are_int_or_str(self):
        data = TimeSeriesData("alerts", 1, [Segment(T0, T0 + 100_000, 500)])
        alerts = [data.build(entry) for entry in data.entries(ALL)]
        sizes = {len(a["entities"]) for a in alerts}
        assert 0 in sizes and 1 in sizes and max(sizes) >= 6
        entities = [e for a in alerts for e in a["entities"]]
        kinds = {e["type"] for e in entities}
        assert {
            "account",
            "user",
            "service",
            "policyRule",
            "file",
            "device",
            "ip",
            "country",
            "domain",
        } <= kinds
        assert all(isinstance(e["id"], int) for e in entities if e["type"] == "service")
        assert all(set(e) >= {"type", "id", "label"} for e in entities)

    def test_file_and_snapshot_shapes(self):
        files = TimeSeriesData("files", 1, [Segment(T0, T0 + 100_000, 50)])
        for entry in files.entries(ALL):
            record = files.build(entry)
            assert record["createdDate"] <= record["modifiedDate"] == entry[0]
            assert isinstance(record["fileType"], list) and len(record["fileType"]) == 2
        entity = SnapshotData("entities", 1, 1).build(0)
        assert isinstance(entity["type"], int) and entity["lastSeen"].endswith("Z")
        subnet = SnapshotData("data_enrichment", 1, 1).build(0)
        assert 1 <= subnet["category"] <= 6 and isinstance(subnet["lastModified"], float)


class TestDeterminismAndLateness:
    def test_same_seed_same_bytes_other_seed_other_bytes(self):
        specs = [Segment(T0, T0 + 5_000, 300, (1, 4)), Rate(100)]
        window = [(T0 - HOUR_MS, T0 + HOUR_MS)]

        def page(seed: int) -> bytes:
            data = TimeSeriesData("activities", seed, specs)
            return data.render_page(list(data.entries(window)))

        assert page(7) == page(7)
        assert page(7) != page(8)

    def test_every_nth_record_is_late(self):
        data = TimeSeriesData("activities", 1, [Segment(T0, T0 + 1_000, 100)], late_every=10, late_by_ms=MIN)
        entries = list(data.entries(ALL))
        late = [e for e in entries if e[5] - e[0] == MIN]
        assert len(late) == 10
        visible_soon = list(data.entries(ALL, now_ms=T0 + 1_010))
        assert len(visible_soon) == 90
        assert len(list(data.entries(ALL, now_ms=T0 + 999 + MIN))) == 100


# A window across an hour boundary, so that rates contribute two hours of records.
BASE = T0 - T0 % HOUR_MS + HOUR_MS - 1_500
SPAN = 3_000


@st.composite
def time_series(draw: st.DrawFn) -> TimeSeriesData:
    """Small services: a few segments and rates with clusters, and maybe late records."""
    sizes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
    offsets = st.integers(0, SPAN - 1)
    segment = st.builds(
        lambda a, b, count, cluster: Segment(BASE + min(a, b), BASE + max(a, b) + 1, count, cluster),
        offsets,
        offsets,
        st.integers(0, 300),
        sizes,
    )
    rate = st.builds(
        lambda per_hour, cluster, start: Rate(per_hour, cluster, None if start is None else BASE + start),
        st.integers(0, 200_000),
        sizes,
        st.none() | offsets,
    )
    specs = draw(st.lists(segment | rate, min_size=1, max_size=3))
    late_every = draw(st.none() | st.integers(0, 5))
    return TimeSeriesData("alerts", draw(st.integers(0, 3)), specs, late_every, draw(st.integers(0, 2_000)))


class TestSkip:
    @settings(max_examples=200, deadline=None)
    @given(
        data=time_series(),
        intervals=st.lists(
            st.tuples(st.integers(-100, SPAN + 100), st.integers(-100, SPAN + 100)).map(
                lambda bounds: (BASE + bounds[0], BASE + bounds[1])
            ),
            min_size=1,
            max_size=3,
        ),
        now_ms=st.none() | st.integers(-100, SPAN + 2_500).map(lambda offset: BASE + offset),
        reverse=st.booleans(),
        draw=st.data(),
    )
    def test_skip_is_islice(self, data, intervals, now_ms, reverse, draw):
        walked = list(data.entries(intervals, now_ms, reverse))
        skip = draw.draw(st.integers(0, len(walked) + 3), label="skip")
        assert list(data.entries(intervals, now_ms, reverse, skip=skip)) == walked[skip:]
        assert list(data.entries(intervals, now_ms, reverse, skip=skip)) == list(
            islice(data.entries(intervals, now_ms, reverse), skip, None)
        )

    @pytest.mark.parametrize("reverse", [False, True])
    def test_skip_beyond_the_total_is_empty(self, reverse):
        data = TimeSeriesData("alerts", 1, [Segment(T0, T0 + 1_000, 100, (1, 3))], late_every=7, late_by_ms=MIN)
        visible = len(list(data.entries(ALL, now_ms=T0 + 1_010)))
        assert 0 < visible < 100
        for skip in (visible, visible + 1, 10**6):
            assert list(data.entries(ALL, T0 + 1_010, reverse, skip=skip)) == []

    @pytest.mark.parametrize("reverse", [False, True])
    def test_deep_skip_jumps_instead_of_walking(self, reverse):
        # A billion records: walking 10**8 of them would take minutes, jumping takes microseconds.
        data = TimeSeriesData("alerts", 1, [Segment(T0, T0 + 10 * HOUR_MS, 10**9)])
        entry = next(data.entries(ALL, reverse=reverse, skip=10**8))
        assert entry[4] == (10**9 - 1 - 10**8 if reverse else 10**8)


class TestTenantConfig:
    def test_round_trips_through_json(self):
        specs: list[Segment | Rate] = [Segment(T0, T0 + 10, 5, (1, 2)), Rate(10.5, (3,), T0, None)]
        config = TenantConfig(
            "rt",
            seed=3,
            services={
                "activities": TimeSeriesConfig(specs, skip_ceiling=None, late_every=7, late_by_ms=9),
                "entities": SnapshotConfig(12, 100),
            },
            fault_queue=["500", "reset"],
            fault_services=["alerts"],
            retry_after_style="http-date",
            scan_omit_next_query_filters=2,
            revoke_tokens_after=4,
            now_ms=T0,
        )
        again = TenantConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config

    def test_every_registry_service_has_settings_of_its_kind_flat_in_json(self):
        config = TenantConfig("kinds", services={"data_enrichment": SnapshotConfig(40)})
        assert list(config.services) == list(ALL_SERVICES)
        for name in ALL_SERVICES:
            kind = SnapshotConfig if name in SNAPSHOTS else TimeSeriesConfig
            assert type(config.service(name)) is kind
            assert config.to_dict()[name] == config.service(name).to_dict()
        assert config.snapshot("data_enrichment").count == 40 and "services" not in config.to_dict()
        changed = config.with_changes({"alerts": {"late_every": 3}, "data_enrichment": {"skip_ceiling": 10}})
        assert changed.series("alerts").late_every == 3
        assert changed.snapshot("data_enrichment") == SnapshotConfig(40, 10)  # merged into the current settings

    @pytest.mark.parametrize(
        "services_given",
        [{"subnet": SnapshotConfig(1)}, {"alerts": SnapshotConfig(1)}, {"entities": TimeSeriesConfig()}],
        ids=["not-in-the-registry", "snapshot-for-windowed", "series-for-snapshot"],
    )
    def test_service_settings_are_checked_against_the_registry(self, services_given):
        with pytest.raises(ValueError, match=r"unknown service|takes a"):
            TenantConfig("bad", services=services_given)

    def test_credentials_are_derived_when_empty(self):
        config = TenantConfig("abc")
        assert config.client_id and config.client_secret and config.files_access_token
        assert TenantConfig("abc").client_secret == config.client_secret != TenantConfig("abd").client_secret

    @pytest.mark.parametrize(
        "changes",
        [
            {"fault_queue": ["418"]},
            {"retry_after_style": "never"},
            {"error_rate": 2},
            {"requests_per_minute": 0},
            {"token_fault": 404},
            {"colour": "blue"},
            {"activities": {"skip_ceiling": True}},
            {"data_enrichment": {"count": -1}},
            {"subnet": {"count": 1}},
            {"fault_services": ["subnet"]},
        ],
        ids=lambda changes: next(iter(changes)),
    )
    def test_rejects_bad_knobs(self, changes):
        with pytest.raises(ValueError, match=r"must|unknown|not valid"):
            TenantConfig("bad").with_changes(changes)

    def test_rejects_tenant_ids_that_are_no_path_segment(self):
        for tenant_id in ("", "a/b", "mdca", "_admin"):
            with pytest.raises(ValueError, match="not a valid path segment"):
                TenantConfig(tenant_id).validate()
