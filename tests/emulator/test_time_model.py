"""The realistic time model over HTTPS: records invisible until stored, ``created`` and ``snapshotLastModifiedDate``
filters and sorts, newest first by default, alerts that change, ``resolutionDate``, retention, collections that change
while paged, and the speed of a ``created`` window on a tenant of millions of activities.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from mdca_emulator import Rate, Segment, TimeSeriesConfig
from mdca_emulator.records import iso_ms
from tests.emulator.support import DAY, HOUR, MINUTE, SECOND, T0

HOUR_START = T0 - T0 % HOUR


def activities(per_hour: float = 6_000, days_before: int = 4) -> TimeSeriesConfig:
    return TimeSeriesConfig([Rate(per_hour, (1, 2, 1, 3), start_ms=HOUR_START - days_before * DAY)])


def page_ids(page):
    return [record["_id"] for record in page["data"]]


class TestStoredLate:
    def test_a_record_is_invisible_to_every_query_and_to_total_until_it_is_stored(self, make_tenant):
        now = HOUR_START + 2 * HOUR
        tenant = make_tenant(activities=activities(3_000), now_ms=now)
        window = (HOUR_START, HOUR_START + HOUR)
        stored = set(tenant.emu.truth(tenant.id, "activities", *window, by="date", as_of="now"))
        everything = set(tenant.emu.truth(tenant.id, "activities", *window, by="date", as_of="horizon"))
        late = everything - stored
        assert stored < everything and 0.01 * len(everything) < len(late) < 0.05 * len(everything)
        body = {"filters": {"date": {"gte": window[0], "lte": window[1] - 1}}, "isScan": True, "limit": 5000}
        page = tenant.ok("activities", body)
        assert set(page_ids(page)) == stored and page["total"] == len(stored) and not page["hasNext"]
        created = {r["_id"]: r["created"] for r in page["data"]}
        assert all(value <= now for value in created.values())
        tenant.emu.set_now(now + 3 * DAY, tenant_id=tenant.id)  # every delay has passed
        again = tenant.ok("activities", body)
        assert set(page_ids(again)) == everything and again["total"] == len(everything)
        assert all(r["created"] > now for r in again["data"] if r["_id"] in late)

    def test_forced_late_records_still_work(self, make_tenant):
        series = TimeSeriesConfig([Segment(T0, T0 + 100, 100)], late_every=10, late_by_ms=HOUR)
        tenant = make_tenant(alerts=series, now_ms=T0 + MINUTE)
        body = {"filters": {"date": {"gte": T0, "lte": T0 + 99}}}
        assert tenant.ok("alerts", body)["total"] == 90
        tenant.emu.set_now(T0 + HOUR + 100, tenant_id=tenant.id)
        assert tenant.ok("alerts", body)["total"] == 100

    def test_alerts_are_stored_within_three_seconds(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + MINUTE, 500)]), now_ms=T0 + 2 * MINUTE)
        states = tenant.emu.tenant(tenant.id).truth_states("alerts", T0, T0 + MINUTE, by="date")
        firsts = {}
        for state in states:
            firsts.setdefault(state["_id"], state["at"])
        page_size = tenant.ok("alerts", {"limit": 100, "sortField": "date", "sortDirection": "asc"})["data"]
        for alert in page_size:
            assert 0 <= firsts[alert["_id"]] - alert["timestamp"] <= 3 * SECOND


class TestCreatedFilterAndSort:
    @pytest.mark.parametrize(
        "ops",
        [
            {"gte": HOUR_START, "lte": HOUR_START + 10 * MINUTE},
            {"gt": HOUR_START, "lt": HOUR_START + 10 * MINUTE},
            {
                "range": [
                    {"start": HOUR_START, "end": HOUR_START + 5 * MINUTE},
                    {"start": HOUR_START + 20 * MINUTE, "end": HOUR_START + 21 * MINUTE},
                ]
            },
        ],
        ids=["gte-lte", "gt-lt", "range"],
    )
    def test_created_ands_with_date_in_skip_mode(self, make_tenant, ops):
        tenant = make_tenant(activities=activities(600), now_ms=HOUR_START + HOUR)
        filters = {"created": ops, "date": {"gte": HOUR_START - DAY}}
        records, skip = [], 0
        while True:
            page = tenant.ok(
                "activities", {"filters": filters, "skip": skip, "sortField": "created", "sortDirection": "asc"}
            )
            records += page["data"]
            skip += len(page["data"])
            if not page["hasNext"]:
                break
        created = [r["created"] for r in records]
        assert created == sorted(created) and page["total"] == len(records) > 50
        lo, hi = min(created), max(created)
        assert all(r["timestamp"] >= HOUR_START - DAY for r in records)
        if "range" in ops:
            spans = [(item["start"], item["end"]) for item in ops["range"]]
            assert all(any(a <= value <= b for a, b in spans) for value in created)
        else:
            assert lo >= HOUR_START and hi <= HOUR_START + 10 * MINUTE
            assert ("gt" not in ops or lo > HOUR_START) and ("lt" not in ops or hi < HOUR_START + 10 * MINUTE)
        exact = tenant.ok("activities", {"filters": {"created": {"eq": created[0]}}, "sortField": "created"})
        assert {r["created"] for r in exact["data"]} == {created[0]}

    def test_sort_by_created_or_date_either_way(self, make_tenant):
        tenant = make_tenant(activities=activities(600), now_ms=HOUR_START + HOUR)
        filters = {"created": {"gte": HOUR_START, "lte": HOUR_START + 30 * MINUTE}}
        for field, key in (("created", "created"), ("date", "timestamp")):
            up = tenant.ok("activities", {"filters": filters, "sortField": field, "sortDirection": "asc"})["data"]
            down = tenant.ok("activities", {"filters": filters, "sortField": field, "sortDirection": "desc"})["data"]
            assert [r[key] for r in up] == sorted(r[key] for r in up)
            assert [r[key] for r in down] == sorted((r[key] for r in down), reverse=True)


class TestDefaultOrder:
    def test_newest_first_unless_told_otherwise(self, make_tenant):
        tenant = make_tenant(
            alerts=TimeSeriesConfig([Segment(T0, T0 + 300, 300)]), entities={"count": 40}, now_ms=T0 + DAY
        )
        newest = tenant.ok("alerts", {"limit": 5})["data"]
        assert [r["timestamp"] for r in newest] == [T0 + 299 - i for i in range(5)]
        oldest = tenant.ok("alerts", {"limit": 5, "sortDirection": "asc"})["data"]
        assert [r["timestamp"] for r in oldest] == [T0 + i for i in range(5)]
        entities = page_ids(tenant.ok("entities", {}))
        assert entities == sorted(entities, reverse=True)
        tenant.state.update(default_sort_direction="asc")
        assert [r["timestamp"] for r in tenant.ok("alerts", {"limit": 5})["data"]] == [T0 + i for i in range(5)]
        assert page_ids(tenant.ok("entities", {})) == sorted(entities)

    def test_a_scan_follows_its_sort_field_ascending(self, make_tenant):
        tenant = make_tenant(activities=activities(3_000), now_ms=HOUR_START + HOUR)
        page = tenant.ok("activities", {"filters": {"date": {"gte": HOUR_START - HOUR}}, "isScan": True})
        stamps = [r["timestamp"] for r in page["data"]]
        assert stamps == sorted(stamps) and stamps[0] >= HOUR_START - HOUR


class TestFiles:
    def test_snapshot_last_modified_date_filters_and_visibility(self, make_tenant):
        interval = 4 * HOUR
        tenant = make_tenant(files=TimeSeriesConfig([Rate(300, start_ms=T0 - DAY)]), now_ms=T0 + DAY)
        window = {"gte": T0, "lt": T0 + 12 * HOUR}
        records, skip = [], 0
        while True:
            body = {
                "filters": {"snapshotLastModifiedDate": window},
                "skip": skip,
                "sortField": "snapshotLastModifiedDate",
                "sortDirection": "asc",
            }
            page = tenant.ok("files", body)
            records += page["data"]
            skip += len(page["data"])
            if not page["hasNext"]:
                break
        assert len(records) == page["total"] > 1_000
        scans = {}
        for record in records:
            scans.setdefault(record["appId"], set()).add(record["snapshotLastModifiedDate"])
            assert record["modifiedDate"] < _ms(record["snapshotLastModifiedDate"]) <= record["modifiedDate"] + interval
            assert T0 <= _ms(record["snapshotLastModifiedDate"]) < T0 + 12 * HOUR
        # Each app is scanned every 4 hours, at its own offset: three scans of each in 12 hours, apps apart.
        assert all(len(times) == 3 for times in scans.values()) and len(scans) >= 3
        offsets = [{_ms(value) % interval for value in times} for times in scans.values()]
        assert all(len(offset) == 1 for offset in offsets) and len({min(o) for o in offsets}) == len(offsets)
        assert all(r["snapshotLastModifiedDate"] == iso_ms(_ms(r["snapshotLastModifiedDate"])) for r in records)
        got = sorted(r["_id"] for r in records)
        assert got == tenant.emu.truth(tenant.id, "files", T0, T0 + 12 * HOUR, by="snapshotLastModifiedDate")
        # ANDed with modifiedDate; and what no scan has seen yet is not there.
        both = {"snapshotLastModifiedDate": window, "modifiedDate": {"gte": T0}}
        assert all(r["modifiedDate"] >= T0 for r in tenant.ok("files", {"filters": both})["data"])
        tenant.emu.set_now(T0 + 2 * HOUR, tenant_id=tenant.id)
        early = tenant.ok("files", {"filters": {"modifiedDate": {"gte": T0, "lt": T0 + 2 * HOUR}}, "limit": 100})
        assert all(_ms(r["snapshotLastModifiedDate"]) <= T0 + 2 * HOUR for r in early["data"])
        assert early["total"] < 600 * 0.9  # changes made since the last scan of their app are not seen yet


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class TestAlertsChange:
    def test_an_alert_shows_its_state_as_of_the_tenant_clock(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + HOUR, 200)]), now_ms=T0 + 30 * DAY)
        states = tenant.emu.tenant(tenant.id).truth_states("alerts", T0, T0 + HOUR, by="date")
        by_id: dict[str, list[dict]] = {}
        for state in states:
            by_id.setdefault(state["_id"], []).append(state)
        kinds = {len(chain) for chain in by_id.values()}
        assert kinds == {1, 2, 3}  # never changed; resolved at once; in progress, then resolved
        changed = sum(len(chain) > 1 for chain in by_id.values()) / len(by_id)
        assert 0.45 < changed < 0.75
        alert_id, chain = next((i, c) for i, c in by_id.items() if len(c) == 3)
        new, progress, done = chain
        assert (new["statusValue"], progress["statusValue"], done["statusValue"]) == (0, 1, 2)
        assert done["resolutionStatusValue"] in (3, 4, 5) and done["resolveTime"] == done["at"]
        assert MINUTE < done["at"] - new["at"] <= 7 * DAY and new["at"] < progress["at"] < done["at"]
        body = {"filters": {"date": {"gte": T0, "lt": T0 + HOUR}}, "limit": 100, "sortDirection": "asc"}

        def shown(moment):
            tenant.emu.set_now(moment, tenant_id=tenant.id)
            skip = 0
            while True:
                page = tenant.ok("alerts", {**body, "skip": skip})
                for alert in page["data"]:
                    if alert["_id"] == alert_id:
                        return alert
                skip += 100

        before = shown(progress["at"] - 1)
        assert (before["statusValue"], before["resolveTime"], before["handledByUser"]) == (0, None, None)
        during = shown(progress["at"])
        assert during["statusValue"] == 1 and during["resolveTime"] is None and during["handledByUser"]
        after = shown(done["at"])
        assert after["statusValue"] == 2 and after["resolveTime"] == done["at"]
        assert after["resolutionStatusValue"] == done["resolutionStatusValue"] and after["comment"]

    def test_resolution_date_finds_what_was_resolved_in_range_by_now(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Rate(30, start_ms=T0 - 10 * DAY)]), now_ms=T0)
        lo, hi = T0 - 2 * DAY, T0 - DAY
        truth = tenant.emu.truth(tenant.id, "alerts", lo, hi, by="resolutionDate")
        assert len(truth) > 150
        for ops in ({"gte": lo, "lte": hi - 1}, {"range": [{"start": lo, "end": hi - 1}]}):
            records, skip = [], 0
            while True:
                body = {
                    "filters": {"resolutionDate": ops},
                    "skip": skip,
                    "sortField": "resolutionDate",
                    "sortDirection": "asc",
                }
                page = tenant.ok("alerts", body)
                records += page["data"]
                skip += len(page["data"])
                if not page["hasNext"]:
                    break
            resolved = [r["resolveTime"] for r in records]
            assert resolved == sorted(resolved) and all(lo <= value < hi for value in resolved)
            assert sorted(r["_id"] for r in records) == truth and page["total"] == len(truth)
        # Resolved in the future of the tenant clock: not found yet.
        future = tenant.ok("alerts", {"filters": {"resolutionDate": {"gte": T0 - HOUR}}})
        assert all(r["resolveTime"] <= T0 for r in future["data"])
        only_before = tenant.ok("alerts", {"filters": {"resolutionDate": {"lte": T0 - 9 * DAY}}, "limit": 1})
        assert only_before["total"] > 0

    def test_the_instant_model_never_changes_an_alert(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + HOUR, 50)]), time_model="instant")
        page = tenant.ok("alerts", {"sortDirection": "asc"})
        assert all("resolveTime" not in r for r in page["data"])
        assert tenant.ok("alerts", {"filters": {"resolutionDate": {"gte": 0}}})["total"] == 0


class TestRetention:
    def test_activities_older_than_thirty_days_are_not_served(self, make_tenant):
        tenant = make_tenant(activities=activities(600, days_before=40), now_ms=HOUR_START)
        old = {"filters": {"date": {"gte": HOUR_START - 35 * DAY, "lt": HOUR_START - 31 * DAY}}}
        assert tenant.ok("activities", old) == {"data": [], "hasNext": False, "total": 0}
        kept = {"filters": {"date": {"gte": HOUR_START - 30 * DAY, "lt": HOUR_START - 29 * DAY}}}
        assert tenant.ok("activities", kept)["total"] > 10_000
        edge = tenant.ok("activities", {"filters": {"date": {"lt": HOUR_START - 29 * DAY}}, "sortDirection": "asc"})
        assert edge["data"][0]["timestamp"] >= HOUR_START - 30 * DAY
        tenant.state.update(activities={"retention_days": 2})
        assert tenant.ok("activities", kept)["total"] == 0
        tenant.state.update(activities={"retention_days": None}, alerts={"retention_days": 1})
        assert tenant.ok("activities", old)["total"] > 10_000


class TestCollectionsChange:
    @pytest.mark.parametrize("service", ["entities", "data_enrichment"])
    def test_records_come_and_go_with_the_clock(self, make_tenant, service):
        tenant = make_tenant(**{service: {"count": 300, "lifetime_days": [20, 60]}}, now_ms=T0)
        before = set(tenant.emu.truth(tenant.id, service, 0, 0))
        tenant.emu.set_now(T0 + 3 * DAY, tenant_id=tenant.id)
        after = set(tenant.emu.truth(tenant.id, service, 0, 0))
        joined, left = after - before, before - after
        assert joined and left and max(after) in joined  # newcomers sort last; leavers anywhere
        assert 250 < len(after) < 350

    def test_skip_paging_shifts_while_id_paging_stays_whole(self, make_tenant):
        tenant = make_tenant(entities={"count": 400, "lifetime_days": [10, 30]}, now_ms=T0)
        order = {"sortField": "_id", "sortDirection": "asc", "limit": 100}
        first = tenant.ok("entities", {**order, "skip": 0})
        tenant.emu.set_now(T0 + 2 * DAY, tenant_id=tenant.id)  # some leave, some join, while the pages are read
        shifted = tenant.ok("entities", {**order, "skip": 100})
        gone = set(page_ids(first)) - set(tenant.emu.truth(tenant.id, "entities", 0, 0))
        assert gone  # entities of the first page left: skip 100 now starts further on
        truth_now = tenant.emu.truth(tenant.id, "entities", 0, 0)
        assert page_ids(shifted)[0] == truth_now[100]
        # Paging on the unique key instead: each page starts after the last id read.
        got, last = [], None
        while True:
            filters = {"_id": {"gt": last}} if last else {}
            page = tenant.ok("entities", {**order, "filters": filters})
            got += page_ids(page)
            if not page["hasNext"]:
                break
            last = got[-1]
        assert got == truth_now
        between = tenant.ok("entities", {"filters": {"_id": {"gte": truth_now[5], "lte": truth_now[9]}}, **order})
        assert page_ids(between) == truth_now[5:10]


class TestSpeed:
    def test_a_five_minute_created_window_of_a_tenant_of_millions_is_answered_in_well_under_a_second(self, make_tenant):
        # 40 days of activities at 50,000 an hour: 48 million records, however far back the delays reach.
        tenant = make_tenant(activities=activities(50_000, days_before=40), now_ms=HOUR_START + 30 * MINUTE)
        start = HOUR_START + 20 * MINUTE
        body = {"filters": {"created": {"gte": start, "lte": start + 5 * MINUTE - 1}}, "isScan": True, "limit": 5000}
        body["sortField"] = "created"
        began = time.perf_counter()
        page = tenant.ok("activities", body)
        elapsed = time.perf_counter() - began
        assert not page["hasNext"] and page["total"] == len(page["data"]) > 3_500
        assert elapsed < 1.0, f"{elapsed:.2f} s"
        assert any(r["created"] - r["timestamp"] > DAY for r in page["data"])  # late records of days ago among them
        began = time.perf_counter()
        count = tenant.state.truth_count("activities", start, start + 5 * MINUTE, by="created", as_of="now")
        assert count == len(page["data"]) and time.perf_counter() - began < 0.5
