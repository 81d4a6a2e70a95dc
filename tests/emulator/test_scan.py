"""Activities scan mode: boundary clusters move to the next page; nextQueryFilters continues without loss."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from mdca_emulator import Segment, TimeSeriesConfig
from tests.emulator.support import T0, new_session

CLUSTERS = (1, 1, 4, 1, 7)


def scan_all(tenant, filters, limit=500, max_pages=200):
    pages, body = [], {"filters": filters, "isScan": True, "limit": limit}
    for _ in range(max_pages):
        page = tenant.ok("activities", body)
        pages.append(page)
        if not page["hasNext"]:
            return pages
        body = {**body, "filters": page["nextQueryFilters"]}
    raise AssertionError("scan did not end")


class TestScan:
    def test_12345_clustered_records_read_once_each_and_never_split(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 20_000, 12_345, CLUSTERS)]))
        window = {"gte": T0, "lte": T0 + 19_999}
        pages = scan_all(tenant, {"date": window}, limit=500)
        records = [r for page in pages for r in page["data"]]
        ids = [r["_id"] for r in records]
        assert len(ids) == len(set(ids)) == 12_345
        assert sorted(ids) == tenant.emu.truth(tenant.id, "activities", T0, T0 + 20_000)
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
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 3, 1_400, (700,))]))
        pages = scan_all(tenant, {"date": {"gte": T0}}, limit=500)
        assert [len(p["data"]) for p in pages] == [700, 700]
        assert pages[0]["nextQueryFilters"] == {"date": {"gte": pages[0]["data"][0]["timestamp"] + 1}}
        assert "nextQueryFilters" not in pages[-1]

    def test_other_filter_fields_and_upper_bounds_are_kept(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 5_000, 2_000, CLUSTERS)]))
        window = {"range": [{"start": T0 + 100, "end": T0 + 4_000}]}
        first = tenant.ok("activities", {"filters": {"date": window}, "isScan": True})
        assert first["nextQueryFilters"]["date"]["range"] == window["range"]
        ids = [r["_id"] for p in scan_all(tenant, {"date": window}) for r in p["data"]]
        assert ids == tenant.emu.truth(tenant.id, "activities", T0 + 100, T0 + 4_001)

    @pytest.mark.parametrize("limit", [499, 5_001, "500"])
    def test_scan_limit_must_be_500_to_5000(self, make_tenant, limit):
        tenant = make_tenant()
        response = tenant.post("activities", {"isScan": True, "limit": limit})
        assert response.status_code == 400 and "limit" in response.json()

    def test_omitted_next_query_filters_for_a_count_of_responses(self, make_tenant):
        tenant = make_tenant(
            activities=TimeSeriesConfig([Segment(T0, T0 + 2_000, 1_500)]), scan_omit_next_query_filters=1
        )
        body = {"filters": {"date": {"gte": T0}}, "isScan": True}
        first = tenant.ok("activities", body)
        assert first["hasNext"] is True and "nextQueryFilters" not in first
        second = tenant.ok("activities", body)
        assert second["hasNext"] is True
        assert second["nextQueryFilters"] == {"date": {"gte": first["data"][-1]["timestamp"] + 1}}
        tenant.state.update(scan_omit_next_query_filters=True)
        assert all("nextQueryFilters" not in tenant.ok("activities", body) for _ in range(3))

    def test_prefetched_pages_equal_freshly_computed_ones(self, make_tenant):
        tenant = make_tenant(activities=TimeSeriesConfig([Segment(T0, T0 + 9_000, 3_000, CLUSTERS)]))
        body = {"filters": {"date": {"gte": T0, "lte": T0 + 8_999}}, "isScan": True, "limit": 1_000}
        first = tenant.ok("activities", body)
        follow = {**body, "filters": first["nextQueryFilters"]}
        prefetched = tenant.post("activities", follow)  # same connection: served from the prepared page
        with new_session(tenant.emu) as fresh:  # a new connection computes it
            computed = fresh.post(tenant.url("activities"), json=follow, headers=tenant.headers())
        assert prefetched.status_code == 200 and prefetched.content == computed.content
