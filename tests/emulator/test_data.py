"""The record streams without a server: arithmetic, order, ids, shapes, determinism, config round trip, and the
emulator's services held to the provider's registry and the tests' service table.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from itertools import islice, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig, records, services
from mdca_emulator.data import HOUR_MS, INF_MS, Query, SnapshotData, TimeSeriesData, field_roles
from mdca_emulator.timing import DEFAULT_ALERT_CHANGES, AlertChanges, DelayClass, resolve
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
    def test_a_windowed_record_holds_its_window_instant_in_the_registrys_time_field(self, service):
        timing = resolve(service, "realistic", None, None, 0, 4 * HOUR_MS, "default", None)
        data = TimeSeriesData(service, 2, [Segment(T0, T0 + 1_000, 30, (1, 3))], timing=timing)
        entries = list(data.entries(ALL))
        assert len(entries) == 30
        roles = field_roles(service)
        time_field = SERVICE_TABLE[service].time_field
        role = roles.get(time_field, "time")
        for entry in entries:
            value = data.build(entry)[time_field]
            expected = entry[0] if role == "time" else entry[5]
            assert value == expected or value == records.iso_ms(expected)
        assert SERVICE_TABLE[service].filter_field in roles

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
        assert all(r["created"] == r["timestamp"] for r in records)  # the instant model: stored as it happens
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

    def test_the_time_models_knobs_round_trip_through_json(self):
        config = TenantConfig(
            "tm",
            services={
                "activities": TimeSeriesConfig(
                    [Rate(100)],
                    delays=[DelayClass(0.9, 1_000, 60_000), DelayClass(0.1, HOUR_MS, 2 * HOUR_MS)],
                    retention_days=7,
                ),
                "alerts": TimeSeriesConfig(changes=AlertChanges(0.3, 0.2, 60_000, 86_400_000), retention_days=None),
                "files": TimeSeriesConfig(scan_interval_ms=HOUR_MS),
                "entities": SnapshotConfig(12, lifetime_days=(1, 2.5)),
            },
            time_model="instant",
            default_sort_direction="asc",
            clock_origin_ms=T0,
            clock_rate=60.0,
            clock_started_ms=T0 + 1,
        )
        raw = json.loads(json.dumps(config.to_dict()))
        assert raw["activities"]["delays"][1] == {"fraction": 0.1, "min_ms": HOUR_MS, "max_ms": 2 * HOUR_MS}
        assert raw["time_model"] == "instant" and raw["files"]["scan_interval_ms"] == HOUR_MS
        assert TenantConfig.from_dict(raw) == config
        assert TenantConfig("d").to_dict()["activities"]["retention_days"] == "default"
        changed = config.with_changes({"activities": {"delays": [[0.5, 0, 10], [0.5, 10, 20]]}})
        assert changed.series("activities").delays == [DelayClass(0.5, 0, 10), DelayClass(0.5, 10, 20)]

    @pytest.mark.parametrize(
        "changes",
        [
            {"time_model": "fast"},
            {"default_sort_direction": "up"},
            {"clock_rate": -1},
            {"activities": {"delays": [[0.5, 0, 10]]}},
            {"activities": {"delays": [[1.0, 10, 0]]}},
            {"activities": {"delays": []}},
            {"activities": {"retention_days": 0}},
            {"alerts": {"changes": {"changed_fraction": 2}}},
            {"alerts": {"changes": {"soon": 1}}},
            {"files": {"scan_interval_ms": 0}},
            {"entities": {"lifetime_days": [5, 1]}},
        ],
        ids=lambda changes: json.dumps(changes),
    )
    def test_rejects_bad_time_knobs(self, changes):
        with pytest.raises(ValueError, match=r"must|unknown|need|at least"):
            TenantConfig("bad").with_changes(changes)

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


def _realistic(service: str, **knobs) -> object:
    settings = {"delays": None, "late_every": None, "late_by_ms": 0, "scan_interval_ms": 4 * HOUR_MS}
    settings.update(retention_days="default", changes=None)
    settings.update(knobs)
    return resolve(service, "realistic", **settings)


DAY = 24 * HOUR_MS
H0 = T0 - T0 % HOUR_MS


class TestTimeModel:
    def test_activity_delays_follow_the_profile(self):
        data = TimeSeriesData("activities", 4, [Rate(50_000, (1, 2), H0 - 2 * DAY)], timing=_realistic("activities"))
        delays = [entry[5] - entry[0] for entry in data.entries([(H0, H0 + 4 * HOUR_MS)])]
        total = len(delays)
        shares = [
            sum(1_000 <= d <= MIN for d in delays) / total,
            sum(MIN < d <= 2 * HOUR_MS for d in delays) / total,
            sum(2 * HOUR_MS < d <= DAY for d in delays) / total,
            sum(DAY < d < 3 * DAY for d in delays) / total,
        ]
        assert total > 150_000 and sum(shares) == pytest.approx(1)
        for share, expected in zip(shares, (0.93, 0.05, 0.015, 0.005), strict=True):
            assert share == pytest.approx(expected, rel=0.1)
        on_time = sorted(d for d in delays if d <= MIN)
        assert on_time[len(on_time) // 4] < 20_000 < on_time[3 * len(on_time) // 4]  # spread over the minute
        assert all(data.created(entry) == entry[5] for entry in itertools.islice(data.entries(ALL), 5_000))

    @settings(max_examples=150, deadline=None)
    @given(
        specs=st.lists(
            st.builds(
                lambda a, b, count, cluster: Segment(BASE + min(a, b), BASE + max(a, b) + 1, count, cluster),
                st.integers(0, SPAN - 1),
                st.integers(0, SPAN - 1),
                st.integers(0, 300),
                st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
            )
            | st.builds(lambda per_hour: Rate(per_hour, (1, 2), BASE - 5_000), st.integers(0, 300_000)),
            min_size=1,
            max_size=3,
        ),
        forced=st.booleans(),
        times=st.lists(st.tuples(st.integers(-9_000, SPAN), st.integers(0, 6_000)), min_size=1, max_size=2),
        stored=st.lists(st.tuples(st.integers(-3_000, SPAN + 6_000), st.integers(0, 4_000)), min_size=1, max_size=2),
        now=st.integers(-100, SPAN + 8_000),
        order=st.sampled_from(["time", "stored"]),
        reverse=st.booleans(),
        draw=st.data(),
    )
    def test_queries_on_created_are_what_brute_force_finds(
        self, specs, forced, times, stored, now, order, reverse, draw
    ):
        # A profile squeezed into seconds so that every class lands in the drawn windows.
        delays = [DelayClass(0.7, 0, 300), DelayClass(0.2, 300, 2_000), DelayClass(0.1, 2_000, 6_000)]
        timing = _realistic("activities", delays=delays, late_every=3 if forced else None, late_by_ms=4_000)
        data = TimeSeriesData("activities", 1, specs, timing=timing)
        query = Query.of(
            [(BASE + lo, BASE + lo + width) for lo, width in times],
            [(BASE + lo, min(BASE + lo + width, BASE + now + 1)) for lo, width in stored],
        )
        everything = list(data.entries([(BASE - 20_000, BASE + SPAN + 20_000)]))
        expected = [
            e
            for e in everything
            if any(a <= e[0] < b for a, b in query.times) and any(a <= e[5] < b for a, b in query.stored)
        ]
        if order == "stored":
            expected.sort(key=lambda e: (e[5], e[1]))
        if reverse:
            expected.reverse()
        assert list(data.select(query, order, reverse)) == expected
        assert data.count_query(query) == len(expected)
        skip = draw.draw(st.integers(0, len(expected) + 2), label="skip")
        assert list(data.select(query, order, reverse, skip=skip)) == expected[skip:]

    def test_a_created_window_of_a_billion_records_is_found_without_walking_them(self):
        # 40 days at a million records an hour: the 5 minutes stored now come from three days of timestamps.
        data = TimeSeriesData(
            "activities", 2, [Rate(1_000_000, (1, 3), H0 - 40 * DAY)], timing=_realistic("activities")
        )
        query = Query.of(ALL, [(H0, H0 + 5 * MIN)])
        began = time.perf_counter()
        count = data.count_query(query)
        first = list(itertools.islice(data.select(query, "stored"), 5_000))
        assert time.perf_counter() - began < 1.0
        assert 80_000 < count < 90_000 and len(first) == 5_000
        assert [e[5] for e in first] == sorted(e[5] for e in first) and first[0][5] >= H0

    def test_alerts_are_resolved_or_dismissed_later(self):
        timing = _realistic("alerts")
        assert timing.changes == DEFAULT_ALERT_CHANGES
        data = TimeSeriesData("alerts", 3, [Segment(T0, T0 + HOUR_MS, 4_000)], timing=timing)
        chains = [data.alert_states(entry) for entry in data.entries(ALL)]
        assert all(0 <= chain[0].at - entry[0] <= 3_000 for chain, entry in zip(chains, data.entries(ALL), strict=True))
        changed = [chain for chain in chains if len(chain) > 1]
        two_steps = [chain for chain in changed if len(chain) == 3]
        assert len(changed) / len(chains) == pytest.approx(0.6, rel=0.1)
        assert len(two_steps) / len(changed) == pytest.approx(0.5, rel=0.15)
        for chain in changed:
            assert [state.at for state in chain] == sorted(state.at for state in chain)
            done = chain[-1]
            assert done.status == 2 and done.resolution in (3, 4, 5) and done.resolve_time == done.at
            assert done.at - (chain[0].at - 3_000) >= 5 * MIN and done.at - T0 <= HOUR_MS + 7 * DAY
        assert {chain[-1].resolution for chain in changed} == {3, 4, 5}
        resolved_later = next(entry for entry in data.entries(ALL) if len(data.alert_states(entry)) == 3)
        states = data.alert_states(resolved_later)
        for state in states:
            assert data.build(resolved_later, state.at)["statusValue"] == state.status
        assert data.build(resolved_later, states[1].at - 1)["resolveTime"] is None
        quiet = TimeSeriesData(
            "alerts", 3, [Segment(T0, T0 + 10, 10)], timing=_realistic("alerts", changes=AlertChanges(0))
        )
        assert quiet.timing.changes is None and all(len(quiet.alert_states(e)) == 1 for e in quiet.entries(ALL))

    def test_files_are_stored_at_the_next_scan_of_their_app(self):
        data = TimeSeriesData("files", 5, [Segment(T0, T0 + DAY, 3_000)], timing=_realistic("files"))
        offsets: dict[int, set[int]] = {}
        for entry in data.entries(ALL):
            record = data.build(entry)
            assert entry[0] < entry[5] <= entry[0] + 4 * HOUR_MS
            assert record["snapshotLastModifiedDate"] == records.iso_ms(entry[5])
            offsets.setdefault(record["appId"], set()).add(entry[5] % (4 * HOUR_MS))
        assert len(offsets) == len(records.FILE_APPS) and all(len(each) == 1 for each in offsets.values())

    def test_retention_follows_the_model(self):
        assert _realistic("activities").retention_ms == 30 * DAY
        assert (
            _realistic("alerts").retention_ms is None and _realistic("files", retention_days=2).retention_ms == 2 * DAY
        )
        instant = resolve("activities", "instant", None, None, 0, HOUR_MS, "default", None)
        assert instant.retention_ms is None and instant.on_time == (0, 0) and not instant.late


class TestChangingCollections:
    def test_about_count_records_join_and_leave(self):
        data = SnapshotData("entities", 1, 500, (30 * DAY, 365 * DAY))
        sizes = [len(data.present(T0 + day * DAY)) for day in range(0, 400, 20)]
        assert all(420 < size < 580 for size in sizes)
        today, later = set(data.present(T0)), set(data.present(T0 + 10 * DAY))
        assert today - later and later - today and max(later) > max(today)
        for index in list(today)[:50]:
            assert data.arrival(index) <= T0 < data.departure(index)
        assert list(data.present(T0)) == sorted(data.present(T0))
        still = SnapshotData("entities", 1, 7)
        assert list(still.present(T0)) == list(range(7)) == list(still.present(T0 + 1_000 * DAY))

    def test_id_bounds(self):
        data = SnapshotData("data_enrichment", 2, 10)
        ids = [data.record_id(i) for i in range(10)]
        assert [data.index_bound(ids[3]), data.index_bound(ids[3], inclusive=True)] == [3, 4]
        assert data.index_bound(ids[3] + "0") == 4 and data.index_bound("") == 0 and data.index_bound("~") == 1 << 64
