"""MDCA list endpoints over HTTPS: auth, filters, sort, default order, skip/limit paging, skip ceiling, snapshots."""

from __future__ import annotations

import json

import pytest

from mdca_emulator import Segment, TimeSeriesConfig, mdca
from tests.emulator.support import T0, new_session
from tests.service_table import ALL, SERVICE_TABLE, SNAPSHOTS

ASC = {"sortField": "date", "sortDirection": "asc"}


def one_per_ms(count: int, start: int = T0) -> TimeSeriesConfig:
    """`count` records, one at each millisecond from `start`."""
    return TimeSeriesConfig([Segment(start, start + count, count)])


def timestamps(page, field="timestamp"):
    return [record[field] for record in page["data"]]


class TestAuth:
    @pytest.mark.parametrize(
        "header",
        [None, "Bearer", "Bearer not-a-token", "Token wrong", "Basic abc"],
        ids=["missing", "empty-bearer", "unknown-bearer", "wrong-legacy", "other-scheme"],
    )
    def test_401(self, make_tenant, header):
        tenant = make_tenant()
        headers = {"Authorization": header} if header else {}
        response = tenant.session.post(tenant.url("alerts"), json={}, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid token"}

    def test_token_of_another_tenant_is_rejected(self, make_tenant):
        first, second = make_tenant(), make_tenant()
        response = second.session.post(second.url("alerts"), json={}, headers=first.headers("bearer"))
        assert response.status_code == 401

    def test_files_need_the_legacy_token(self, make_tenant):
        tenant = make_tenant(files=one_per_ms(3))
        bearer = tenant.post("files", auth="bearer")
        assert bearer.status_code == 403
        assert bearer.json() == {"detail": "Insufficient role based permissions", "error": True}
        assert len(tenant.ok("files", auth="token")["data"]) == 3

    @pytest.mark.parametrize("service", [name for name in ALL if SERVICE_TABLE[name].auth == "entra"])
    def test_other_services_take_both(self, make_tenant, service):
        tenant = make_tenant()
        assert tenant.post(service, auth="bearer").status_code == 200
        assert tenant.post(service, auth="token").status_code == 200


class TestFilters:
    @pytest.mark.parametrize(
        ("window", "expected"),
        [
            ({"gte": T0 + 10, "lte": T0 + 19}, range(10, 20)),
            ({"gte": T0 + 10, "lt": T0 + 20}, range(10, 20)),
            ({"gt": T0 + 9, "lte": T0 + 19}, range(10, 20)),
            (
                {"range": [{"start": T0 + 10, "end": T0 + 12}, {"start": T0 + 50, "end": T0 + 50}]},
                [10, 11, 12, 50],
            ),
            ({"eq": T0 + 7}, [7]),
            ({"eq": [T0 + 7, T0 + 9]}, [7, 9]),
            ({"gte": T0 + 90}, range(90, 101)),
            ({"lte": T0 + 2}, range(0, 3)),
        ],
        ids=["gte-lte", "gte-lt", "gt-lte", "range", "eq", "eq-list", "open-end", "open-start"],
    )
    def test_window_boundaries_are_exact(self, make_tenant, window, expected):
        tenant = make_tenant(alerts=one_per_ms(101))
        page = tenant.ok("alerts", {"filters": {"date": window}, **ASC})
        assert timestamps(page) == [T0 + offset for offset in expected]
        assert page["total"] == len(expected)

    def test_half_open_window_includes_start_and_end_minus_one_not_end(self, make_tenant):
        tenant = make_tenant(files=one_per_ms(100))
        start, end = T0 + 20, T0 + 40
        body = {"filters": {"modifiedDate": {"gte": start, "lte": end - 1}}, "sortField": "modifiedDate"}
        page = tenant.ok("files", {**body, "sortDirection": "asc"})
        stamps = timestamps(page, "modifiedDate")
        assert stamps[0] == start and stamps[-1] == end - 1 and end not in stamps and len(stamps) == 20

    @pytest.mark.parametrize(
        ("filters", "field"),
        [
            ({"severity": {"eq": 2}}, "severity"),
            ({"date": {"gte": "yesterday"}}, "date"),
            ({"date": {"between": [1, 2]}}, "date"),
            ({"date": {"gte": True}}, "date"),
            ({"date": {"range": [{"start": T0 + 5, "end": T0}]}}, "date"),
            ({"modifiedDate": {"gte": T0}}, "modifiedDate"),
            ({"created": {"gte": T0}}, "created"),
            ({"resolutionDate": {"gte": "today"}}, "resolutionDate"),
        ],
        ids=[
            "unknown-field",
            "string-value",
            "unknown-op",
            "bool-value",
            "inverted-range",
            "other-service-field",
            "activities-field",
            "bad-resolution-date",
        ],
    )
    def test_bad_filters_are_a_400_in_mdca_shape(self, make_tenant, filters, field):
        tenant = make_tenant()
        response = tenant.post("alerts", {"filters": filters})
        assert response.status_code == 400
        problem = {"error": f"{field} is not valid", "errorMessageCode": "CONSOLE_FORMS_NOT_VALID_VALUE"}
        assert response.json() == {"filters": [problem], "error": True}


class TestPaging:
    def test_skip_limit_pages_over_101_records(self, make_tenant):
        tenant = make_tenant(alerts=one_per_ms(101))
        first = tenant.ok("alerts", {"skip": 0, "limit": 100, **ASC})
        second = tenant.ok("alerts", {"skip": 100, "limit": 100, **ASC})
        assert (len(first["data"]), first["hasNext"], first["total"]) == (100, True, 101)
        assert (len(second["data"]), second["hasNext"]) == (1, False)
        assert (first["max"], first["moreThanTotal"]) == (100, False)
        ids = [r["_id"] for r in first["data"] + second["data"]]
        assert ids == tenant.emu.truth(tenant.id, "alerts", T0, T0 + 101)

    def test_limit_is_clamped_to_100_and_validated(self, make_tenant):
        tenant = make_tenant(alerts=one_per_ms(150))
        page = tenant.ok("alerts", {"limit": 1_000})
        assert len(page["data"]) == 100 and page["max"] == 100
        for bad in (0, -1, "10", 2.5, True):
            response = tenant.post("alerts", {"limit": bad})
            assert response.status_code == 400, bad
            assert response.json()["limit"][0]["error"] == "limit is not valid"

    def test_same_timestamp_cluster_is_ordered_by_id_and_desc_reverses(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + 10, 40, (1, 4, 1, 7))]))
        ascending = tenant.ok("alerts", {"sortField": "date", "sortDirection": "asc"})["data"]
        keys = [(r["timestamp"], r["_id"]) for r in ascending]
        assert keys == sorted(keys) and len(set(timestamps({"data": ascending}))) < 40
        descending = tenant.ok("alerts", {"sortField": "date", "sortDirection": "desc"})["data"]
        assert descending == ascending[::-1]
        assert tenant.post("alerts", {"sortField": "severity"}).status_code == 400

    def test_skip_ceiling(self, make_tenant):
        tenant = make_tenant(alerts=one_per_ms(6_000))
        assert tenant.post("alerts", {"skip": 4_900, "limit": 100}).status_code == 200
        beyond = tenant.post("alerts", {"skip": 4_901, "limit": 100})
        assert beyond.status_code == 400
        problem = beyond.json()["skip"][0]
        assert beyond.json()["error"] is True and "beyond the maximum" in problem["error"]
        tenant.state.update(alerts={"skip_ceiling": None})
        page = tenant.ok("alerts", {"skip": 5_950, "limit": 100})
        assert len(page["data"]) == 50 and not page["hasNext"]

    def test_the_next_skip_page_is_built_ahead_and_equals_a_fresh_one(self, make_tenant, monkeypatch):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + 900, 300, (1, 4, 1, 7))]))
        window = {"date": {"gte": T0, "lte": T0 + 899}}
        body = {"filters": window, "skip": 0, "limit": 100, "sortField": "date", "sortDirection": "asc"}
        first = tenant.ok("alerts", body)
        computed: list[dict] = []
        compute = mdca._list
        monkeypatch.setattr(mdca, "_list", lambda *args: computed.append(args[-1]) or compute(*args))
        follow = {**body, "skip": 100}
        ahead = tenant.post("alerts", follow)  # same connection: the page built while the client read the first
        assert computed == []
        with new_session(tenant.emu) as fresh:  # a new connection computes it
            fresh_page = fresh.post(tenant.url("alerts"), json=follow, headers=tenant.headers())
        assert computed == [follow]
        assert ahead.status_code == 200 and ahead.content == fresh_page.content
        unexpected = tenant.post("alerts", {**body, "skip": 150})  # not the request built ahead: computed
        assert len(computed) == 2 and unexpected.json()["data"][0] == ahead.json()["data"][50]
        last = tenant.ok("alerts", {**body, "skip": 200})
        ids = [r["_id"] for r in first["data"] + ahead.json()["data"] + last["data"]]
        assert ids == tenant.emu.truth(tenant.id, "alerts", T0, T0 + 900)

    def test_get_with_query_parameters_equals_post(self, make_tenant):
        tenant = make_tenant(alerts=one_per_ms(30))
        body = {"filters": {"date": {"gte": T0 + 5}}, "skip": 3, "limit": 7}
        posted = tenant.post("alerts", body)
        params = {"filters": json.dumps(body["filters"]), "skip": "3", "limit": "7"}
        got = tenant.session.get(tenant.url("alerts"), params=params, headers=tenant.headers())
        assert got.status_code == 200 and got.content == posted.content
        assert len(tenant.session.get(tenant.url("alerts"), headers=tenant.headers()).json()["data"]) == 30

    def test_cas_prefix_and_unknown_paths(self, make_tenant):
        tenant = make_tenant(alerts=one_per_ms(2))
        cas = tenant.session.post(
            f"{tenant.emu.mdca_url(tenant.id)}cas/api/v1/alerts/", json={}, headers=tenant.headers()
        )
        assert len(cas.json()["data"]) == 2
        unknown = tenant.session.post(f"{tenant.emu.mdca_url(tenant.id)}api/v1/no_such_service/", json={})
        assert unknown.status_code == 404


class TestSnapshots:
    @pytest.mark.parametrize("service", SNAPSHOTS)
    def test_pages_cover_the_snapshot_once(self, make_tenant, service):
        tenant = make_tenant(**{service: {"count": 250}}, now_ms=T0)  # a changing collection: its clock pinned
        got, skip = [], 0
        truth = tenant.emu.truth(tenant.id, service, 0, 0)
        assert 200 < len(truth) < 300  # about 250: records come and go
        while True:
            page = tenant.ok(service, {"skip": skip, "limit": 100, "sortField": "_id", "sortDirection": "asc"})
            got += [r["_id"] for r in page["data"]]
            skip += len(page["data"])
            assert page["total"] == len(truth)
            if not page["hasNext"]:
                break
        assert got == truth
        assert ("max" in page) == (service == "entities")

    @pytest.mark.parametrize("service", SNAPSHOTS)
    def test_the_instant_model_keeps_count_records_for_ever(self, make_tenant, service):
        tenant = make_tenant(**{service: {"count": 30}}, time_model="instant")
        page = tenant.ok(service, {"sortField": "_id", "sortDirection": "asc"})
        assert page["total"] == 30 and [r["_id"] for r in page["data"]] == tenant.emu.truth(tenant.id, service, 0, 0)

    def test_snapshot_filters_other_than_id_are_refused(self, make_tenant):
        tenant = make_tenant(entities={"count": 5}, now_ms=T0)
        response = tenant.post("entities", {"filters": {"date": {"gte": T0}}})
        assert response.status_code == 400 and response.json()["filters"][0]["error"] == "date is not valid"
        for bad in ({"_id": {"gte": 5}}, {"_id": {"eq": "a"}}, {"_id": {}}):
            assert tenant.post("entities", {"filters": bad}).status_code == 400, bad
        assert len(tenant.ok("entities", {"filters": {}})["data"]) == len(tenant.emu.truth(tenant.id, "entities", 0, 0))

    def test_subnet_names_and_entity_dates_sort_like_ids(self, make_tenant):
        tenant = make_tenant(data_enrichment={"count": 30}, entities={"count": 30}, now_ms=T0)
        by_id = tenant.ok("data_enrichment", {"sortField": "_id", "sortDirection": "asc"})["data"]
        by_name = tenant.ok("data_enrichment", {"sortField": "name", "sortDirection": "asc"})["data"]
        assert [r["name"] for r in by_name] == sorted(r["name"] for r in by_name) and by_name == by_id
        by_date = tenant.ok("entities", {"sortField": "date", "sortDirection": "asc"})["data"]
        assert [r["firstSeen"] for r in by_date] == sorted(r["firstSeen"] for r in by_date)
        assert by_date == tenant.ok("entities", {"sortField": "_id", "sortDirection": "asc"})["data"]
        assert tenant.post("entities", {"sortField": "name"}).status_code == 400
