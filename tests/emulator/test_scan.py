"""Activities scan mode: boundary values move to the next page; nextQueryFilters follows the sort field (``date`` or
``created``) without loss, even while records are stored between pages.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from mdca_emulator import Rate, Segment, TimeSeriesConfig
from tests.emulator.support import AFTER, DAY, HOUR, MINUTE, T0, ids, new_session, scan_all

CLUSTERS = (1, 1, 4, 1, 7)


class TestScanByDate:
    def test_12345_clustered_records_read_once_each_and_never_split(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 20_000, 12_345, CLUSTERS)]), now_ms=AFTER)
        window = {"gte": T0, "lte": T0 + 19_999}
        pages = scan_all(tenant, {"date": window}, limit=500)
        records = [r for page in pages for r in page["data"]]
        got = [r["_id"] for r in records]
        assert len(got) == len(set(got)) == 12_345
        assert sorted(got) == tenant.emu.truth(tenant.id, "activities", T0, T0 + 20_000, by="date")
        per_ts = Counter(r["timestamp"] for r in records)
        for before, after in pairwise(pages):
            next_first = after["data"][0]["timestamp"]
            assert before["data"][-1]["timestamp"] < next_first  # no timestamp split across pages
            assert before["nextQueryFilters"] == {"date": {"gte": next_first, "lte": T0 + 19_999}}
            assert len(before["data"]) <= 500
        # Every page with more to come lost its trailing cluster (at least one record) to the next page.
        assert all(len(p["data"]) < 500 for p in pages[:-1])
        assert max(per_ts.values()) == 7
        assert pages[0]["total"] == 12_345

    def test_a_cluster_larger_than_the_limit_comes_whole(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 3, 1_400, (700,))]), now_ms=AFTER)
        pages = scan_all(tenant, {"date": {"gte": T0}}, limit=500)
        assert [len(p["data"]) for p in pages] == [700, 700]
        assert pages[0]["nextQueryFilters"] == {"date": {"gte": pages[0]["data"][0]["timestamp"] + 1}}
        assert "nextQueryFilters" not in pages[-1]

    def test_other_filter_fields_and_upper_bounds_are_kept(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 5_000, 2_000, CLUSTERS)]), now_ms=AFTER)
        window = {"range": [{"start": T0 + 100, "end": T0 + 4_000}]}
        first = tenant.ok("activities", {"filters": {"date": window}, "isScan": True})
        assert first["nextQueryFilters"]["date"]["range"] == window["range"]
        got = ids(scan_all(tenant, {"date": window}))
        assert got == tenant.emu.truth(tenant.id, "activities", T0 + 100, T0 + 4_001, by="date")

    def test_descending_moves_the_upper_bound(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 5_000, 3_000, CLUSTERS)]), now_ms=AFTER)
        pages = scan_all(tenant, {"date": {"gte": T0 + 10}}, sortDirection="desc")
        stamps = [r["timestamp"] for page in pages for r in page["data"]]
        assert stamps == sorted(stamps, reverse=True)
        assert sorted(ids(pages)) == tenant.emu.truth(tenant.id, "activities", T0 + 10, T0 + 5_000, by="date")
        moved = pages[1]["data"][0]["timestamp"]  # the first page's trailing cluster, moved to the second
        assert pages[0]["nextQueryFilters"] == {"date": {"lte": moved, "gte": T0 + 10}}
        assert moved < pages[0]["data"][-1]["timestamp"]

    @pytest.mark.parametrize("limit", [499, 5_001, "500"])
    def test_scan_limit_must_be_500_to_5000(self, make_tenant, limit):
        tenant = make_tenant()
        response = tenant.post("activities", {"isScan": True, "limit": limit})
        assert response.status_code == 400 and "limit" in response.json()

    def test_omitted_next_query_filters_for_a_count_of_responses(self, make_tenant):
        tenant = make_tenant(
            activities=TimeSeriesConfig([Segment(T0, T0 + 2_000, 1_500)]),
            scan_omit_next_query_filters=1,
            now_ms=AFTER,
        )
        body = {"filters": {"date": {"gte": T0}}, "isScan": True}
        first = tenant.ok("activities", body)
        assert first["hasNext"] is True and "nextQueryFilters" not in first
        second = tenant.ok("activities", body)
        assert second["hasNext"] is True
        assert second["nextQueryFilters"] == {"date": {"gte": first["data"][-1]["timestamp"] + 1}}
        tenant.state.update(scan_omit_next_query_filters=True)
        assert all("nextQueryFilters" not in tenant.ok("activities", body) for _ in range(3))
        created = {"filters": {"created": {"gte": T0}}, "isScan": True, "sortField": "created"}
        assert tenant.ok("activities", created)["hasNext"] and "nextQueryFilters" not in tenant.ok(
            "activities", created
        )

    def test_prefetched_pages_equal_freshly_computed_ones(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 9_000, 3_000, CLUSTERS)]), now_ms=AFTER)
        for field in ("date", "created"):
            bounds = {"gte": T0, "lte": T0 + 9_000 + (0 if field == "date" else 3 * DAY)}
            body = {"filters": {field: bounds}, "isScan": True, "limit": 1_000, "sortField": field}
            first = tenant.ok("activities", body)
            follow = {**body, "filters": first["nextQueryFilters"]}
            prefetched = tenant.post("activities", follow)  # same connection: served from the prepared page
            with new_session(tenant.emu) as fresh:  # a new connection computes it
                computed = fresh.post(tenant.url("activities"), json=follow, headers=tenant.headers())
            assert prefetched.status_code == 200 and prefetched.content == computed.content


def realistic_activities(per_hour: float = 20_000) -> TimeSeriesConfig:
    """Activities at a steady rate from four days before T0: the realistic delays (up to 72 h) fill every window."""
    return TimeSeriesConfig([Rate(per_hour, (1, 1, 2, 1, 3), start_ms=T0 - 4 * DAY)])


class TestScanByCreated:
    """The collector's own read: a window on ``created`` (when MDCA stored the record), whatever its timestamp."""

    def test_a_created_window_holds_exactly_the_records_stored_in_it_late_ones_included(self, make_tenant):
        tenant = make_tenant(activities=realistic_activities(), now_ms=T0 + HOUR)
        window = {"gte": T0, "lte": T0 + 10 * MINUTE - 1}
        pages = scan_all(tenant, {"created": window}, limit=500, sortField="created", sortDirection="asc")
        records = [r for page in pages for r in page["data"]]
        got = [r["_id"] for r in records]
        assert len(got) == len(set(got)) > 3_000
        assert sorted(got) == tenant.emu.truth(tenant.id, "activities", T0, T0 + 10 * MINUTE, by="created")
        assert all(T0 <= r["created"] < T0 + 10 * MINUTE for r in records)
        delays = [r["created"] - r["timestamp"] for r in records]
        assert min(delays) >= 1_000 and max(delays) > DAY  # stored seconds to days after they happened
        assert sum(d > MINUTE for d in delays) > 0.03 * len(delays)  # the late tail: about 7 %
        created = [r["created"] for r in records]
        assert created == sorted(created)
        for before, after in pairwise(pages):
            assert before["data"][-1]["created"] < after["data"][0]["created"]  # no created value split
            assert before["nextQueryFilters"] == {"created": {"gte": after["data"][0]["created"], "lte": window["lte"]}}
        assert pages[0]["total"] == len(got)

    def test_the_clock_advancing_between_pages_loses_and_doubles_nothing(self, make_tenant):
        # The window is open at its end when the scan starts: records are stored into it while it is paged.
        moment = T0 + 4 * MINUTE
        tenant = make_tenant(activities=realistic_activities(60_000), now_ms=moment)
        window = {"gte": T0, "lte": T0 + 6 * MINUTE - 1}
        request = {"filters": {"created": window}, "isScan": True, "limit": 500, "sortField": "created"}
        got: list[str] = []
        while True:
            page = tenant.ok("activities", request)
            got += [r["_id"] for r in page["data"]]
            assert all(r["created"] <= moment for r in page["data"])  # only what is stored by now
            if not page["hasNext"]:
                break
            moment += 30_000
            tenant.emu.set_now(moment, tenant_id=tenant.id)
            request = {**request, "filters": page["nextQueryFilters"]}
        assert moment > T0 + 6 * MINUTE  # the clock passed the window's end while it was paged
        assert len(got) == len(set(got))
        assert sorted(got) == tenant.emu.truth(tenant.id, "activities", T0, T0 + 6 * MINUTE, by="created")

    def test_next_query_filters_keep_a_date_filter_beside_created(self, make_tenant):
        tenant = make_tenant(activities=realistic_activities(), now_ms=T0 + HOUR)
        filters = {"created": {"gte": T0, "lte": T0 + 20 * MINUTE}, "date": {"lt": T0 + 5 * MINUTE}}
        pages = scan_all(tenant, filters, sortField="created")
        assert len(pages) > 2
        assert all(page["nextQueryFilters"]["date"] == {"lt": T0 + 5 * MINUTE} for page in pages[:-1])
        records = [r for page in pages for r in page["data"]]
        assert all(r["timestamp"] < T0 + 5 * MINUTE and T0 <= r["created"] <= T0 + 20 * MINUTE for r in records)
        everything = [r for page in scan_all(tenant, {"created": filters["created"]}) for r in page["data"]]
        assert sorted(r["_id"] for r in everything) == tenant.emu.truth(
            tenant.id, "activities", T0, T0 + 20 * MINUTE + 1, by="created"
        )
        expected = sorted(r["_id"] for r in everything if r["timestamp"] < T0 + 5 * MINUTE)
        assert sorted(r["_id"] for r in records) == expected

    def test_descending_by_created(self, make_tenant):
        tenant = make_tenant(activities=realistic_activities(5_000), now_ms=T0 + HOUR)
        window = {"gte": T0, "lte": T0 + 30 * MINUTE}
        pages = scan_all(tenant, {"created": window}, sortField="created", sortDirection="desc")
        created = [r["created"] for page in pages for r in page["data"]]
        assert created == sorted(created, reverse=True) and len(pages) > 2
        assert pages[0]["nextQueryFilters"] == {"created": {"lte": pages[1]["data"][0]["created"], "gte": T0}}
        assert sorted(ids(pages)) == tenant.emu.truth(tenant.id, "activities", T0, T0 + 30 * MINUTE + 1, by="created")
