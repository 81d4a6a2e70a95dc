"""Paginators on canned pages: what they ask for, what they yield, and where they refuse to loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_mdca.client.pagination import ScanPaginator, SnapshotPaginator, SortedSkipPaginator, Window
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.errors import PullError

WINDOW = Window(1_000, 2_000)


def rec(rid: str, ts: int, field: str = "timestamp") -> dict[str, Any]:
    return {"_id": rid, field: ts}


class Canned:
    """Answers requests with pre-written pages and records every request body."""

    def __init__(self, *pages: dict[str, Any]) -> None:
        self.pages = list(pages)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if not self.pages:
            raise AssertionError(f"unexpected request {body}")
        return self.pages.pop(0)


class Collection:
    """A snapshot list served with skip/limit in either order, which may change between requests."""

    def __init__(self, records: list[dict[str, Any]], ceiling: int | None = None) -> None:
        self.records = list(records)
        self.ceiling = ceiling
        self.bodies: list[dict[str, Any]] = []
        self.on_request: dict[int, Callable[[], None]] = {}

    def remove(self, *ids: str) -> None:
        self.records = [r for r in self.records if r["_id"] not in ids]

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        self.on_request.pop(len(self.bodies), lambda: None)()
        self.bodies.append(body)
        skip, limit = body["skip"], body["limit"]
        if self.ceiling is not None and skip + limit > self.ceiling:
            raise PullError(301, "the API refused the request's filters or paging", status=400)
        ordered = self.records if body["sortDirection"] == "asc" else self.records[::-1]
        page = ordered[skip : skip + limit]
        return {"data": page, "hasNext": skip + len(page) < len(ordered), "total": len(ordered)}


def scan(fetch: Canned, limit: int = 500) -> tuple[list[str], FetchStats]:
    stats = FetchStats(service="activities")
    pager = ScanPaginator(WINDOW, filter_field="date", time_field="timestamp", stats=stats, limit=limit)
    return [r["_id"] for r in pager.records(fetch)], stats


class TestScanPaginator:
    def test_follows_next_query_filters_and_sends_half_open_window(self):
        nqf = {"date": {"gte": 1_500, "lte": 1_999}}
        fetch = Canned(
            {"data": [rec("a", 1_000), rec("b", 1_400)], "hasNext": True, "nextQueryFilters": nqf, "total": 3},
            {"data": [rec("c", 1_500)], "hasNext": False, "total": 3},
        )
        ids, stats = scan(fetch)
        assert ids == ["a", "b", "c"]
        assert fetch.bodies[0] == {
            "filters": {"date": {"gte": 1_000, "lte": 1_999}},
            "isScan": True,
            "limit": 500,
            "sortField": "date",
            "sortDirection": "asc",
        }
        assert fetch.bodies[1]["filters"] == nqf
        assert (stats.pages, stats.api_total) == (2, 3)

    def test_boundary_records_repeated_on_the_next_page_are_dropped_once(self):
        fetch = Canned(
            {"data": [rec("a", 1_100), rec("b", 1_200)], "hasNext": True, "nextQueryFilters": {"date": {"gte": 1_200}}},
            {"data": [rec("b", 1_200), rec("c", 1_200), rec("d", 1_300)], "hasNext": False},
        )
        ids, stats = scan(fetch)
        assert ids == ["a", "b", "c", "d"]
        assert stats.duplicates_dropped == 1

    def test_has_next_without_next_query_filters_walks_on_from_the_last_timestamp(self):
        fetch = Canned(
            {"data": [rec("a", 1_100), rec("b", 1_200)], "hasNext": True},
            {"data": [rec("b", 1_200), rec("c", 1_200), rec("d", 1_250)], "hasNext": False},
        )
        ids, _ = scan(fetch)
        assert ids == ["a", "b", "c", "d"]
        assert fetch.bodies[1]["filters"] == {"date": {"gte": 1_200, "lte": 1_999}}

    def test_time_walk_refuses_a_page_out_of_order_rather_than_finish_early(self):
        # Newest first: walking on from the last record (the oldest) would read the window again, or, walking from
        # the newest, skip the older records the server has not sent yet.
        fetch = Canned({"data": [rec("b", 1_300), rec("a", 1_100)], "hasNext": True})
        with pytest.raises(PullError, match="not in 'timestamp' order"):
            scan(fetch)

    def test_time_walk_grows_the_page_when_one_timestamp_fills_it(self):
        cluster = [rec(f"x{i}", 1_200) for i in range(3)]
        fetch = Canned(
            {"data": cluster[:2], "hasNext": True},
            {"data": cluster[:2], "hasNext": True},  # same records again: no progress at this page size
            {"data": [*cluster, rec("y", 1_300)], "hasNext": False},
        )
        ids, _ = scan(fetch, limit=2)
        assert ids == ["x0", "x1", "x2", "y"]
        assert [b["limit"] for b in fetch.bodies] == [2, 2, 4]

    def test_time_walk_gives_up_at_the_maximum_page_size(self):
        page = {"data": [rec("x", 1_200)], "hasNext": True}
        fetch = Canned(page, page)
        with pytest.raises(PullError) as info:
            scan(fetch, limit=5_000)
        assert info.value.code == 300
        assert "share timestamp 1200" in str(info.value)

    def test_repeated_next_query_filters_is_an_error_not_a_loop(self):
        nqf = {"date": {"gte": 1_200, "lte": 1_999}}
        page = {"data": [rec("a", 1_200)], "hasNext": True, "nextQueryFilters": nqf}
        fetch = Canned(page, page, page)
        with pytest.raises(PullError, match="no progress"):
            scan(fetch)

    def test_empty_pages_that_say_has_next_end_in_an_error(self):
        page: dict[str, Any] = {"data": [], "hasNext": True, "nextQueryFilters": {"date": {"gte": 1}}}
        fetch = Canned(*[dict(page, nextQueryFilters={"date": {"gte": 1_000 + i}}) for i in range(5)])
        with pytest.raises(PullError, match="empty pages"):
            scan(fetch)

    def test_records_outside_the_window_are_dropped_and_counted(self):
        fetch = Canned({"data": [rec("early", 999), rec("in", 1_000), rec("end", 2_000)], "hasNext": False})
        ids, stats = scan(fetch)
        assert ids == ["in"]
        assert stats.out_of_window_dropped == 2

    def test_a_record_without_a_timestamp_is_an_error(self):
        fetch = Canned({"data": [{"_id": "a"}], "hasNext": False})
        with pytest.raises(PullError, match="timestamp"):
            scan(fetch)


def skip_pager(stats: FetchStats, ceiling: int = 5_000, page_size: int = 2) -> SortedSkipPaginator:
    return SortedSkipPaginator(
        WINDOW, filter_field="date", time_field="timestamp", stats=stats, page_size=page_size, ceiling=ceiling
    )


class TestSortedSkipPaginator:
    def test_pages_by_skip_sorted_ascending(self):
        fetch = Canned(
            {"data": [rec("a", 1_000), rec("b", 1_100)], "hasNext": True, "total": 3, "max": 2},
            {"data": [rec("c", 1_200)], "hasNext": False},
        )
        stats = FetchStats(service="alerts")
        ids = [r["_id"] for r in skip_pager(stats).records(fetch)]
        assert ids == ["a", "b", "c"]
        assert fetch.bodies[0] == {
            "filters": {"date": {"gte": 1_000, "lte": 1_999}},
            "skip": 0,
            "limit": 2,
            "sortField": "date",
            "sortDirection": "asc",
        }
        assert fetch.bodies[1]["skip"] == 2

    def test_skip_advances_by_what_the_server_returned(self):
        fetch = Canned(
            {"data": [rec("a", 1_000)], "hasNext": True, "max": 1},  # server applied a smaller page
            {"data": [rec("b", 1_001)], "hasNext": False},
        )
        ids = [r["_id"] for r in skip_pager(FetchStats()).records(fetch)]
        assert ids == ["a", "b"]
        assert fetch.bodies[1]["skip"] == 1

    def test_re_anchors_before_the_ceiling_and_drops_what_it_already_has(self):
        # Ceiling 4, page 2: pages at skip 0 and 2, then re-anchor at the last timestamp (1_300).
        fetch = Canned(
            {"data": [rec("a", 1_100), rec("b", 1_200)], "hasNext": True},
            {"data": [rec("c", 1_300), rec("d", 1_300)], "hasNext": True},
            {"data": [rec("c", 1_300), rec("d", 1_300)], "hasNext": True},
            {"data": [rec("e", 1_300), rec("f", 1_400)], "hasNext": False},
        )
        stats = FetchStats()
        ids = [r["_id"] for r in skip_pager(stats, ceiling=4).records(fetch)]
        assert ids == ["a", "b", "c", "d", "e", "f"]
        assert [(b["filters"]["date"]["gte"], b["skip"]) for b in fetch.bodies] == [
            (1_000, 0),
            (1_000, 2),
            (1_300, 0),
            (1_300, 2),
        ]
        assert stats.duplicates_dropped == 2

    def test_a_timestamp_larger_than_the_ceiling_is_an_error(self):
        same = [rec(f"x{i}", 1_000) for i in range(4)]
        fetch = Canned({"data": same[:2], "hasNext": True}, {"data": same[2:], "hasNext": True})
        with pytest.raises(PullError, match="share timestamp 1000"):
            list(skip_pager(FetchStats(), ceiling=4).records(fetch))

    def test_an_empty_page_that_says_has_next_is_an_error(self):
        fetch = Canned({"data": [], "hasNext": True})
        with pytest.raises(PullError, match="empty page"):
            list(skip_pager(FetchStats()).records(fetch))

    def test_uses_the_files_window_field(self):
        fetch = Canned({"data": [rec("f", 1_500, "modifiedDate")], "hasNext": False})
        pager = SortedSkipPaginator(WINDOW, filter_field="modifiedDate", time_field="modifiedDate", stats=FetchStats())
        assert [r["_id"] for r in pager.records(fetch)] == ["f"]
        assert fetch.bodies[0]["sortField"] == "modifiedDate"
        assert fetch.bodies[0]["limit"] == 100


class TestSnapshotPaginator:
    def test_each_page_starts_on_the_last_record_read_and_dedupes_by_id(self):
        fetch = Canned(
            {"data": [{"_id": "1"}, {"_id": "2"}], "hasNext": True, "total": 3},
            {"data": [{"_id": "2"}, {"_id": "3"}], "hasNext": False},
        )
        stats = FetchStats()
        ids = [r["_id"] for r in SnapshotPaginator(sort_field="date", stats=stats, page_size=2).records(fetch)]
        assert ids == ["1", "2", "3"]
        assert [b["skip"] for b in fetch.bodies] == [0, 1]
        assert all((b["sortField"], b["sortDirection"]) == ("date", "asc") for b in fetch.bodies)
        assert (stats.api_total, stats.pages) == (3, 2)

    def test_records_removed_before_the_cursor_while_paged_are_not_skipped(self):
        collection = [{"_id": f"e{i:02}"} for i in range(12)]
        server = Collection(collection)
        server.on_request[2] = lambda: server.remove("e00", "e01", "e02", "e03")  # before the third page
        got = [r["_id"] for r in SnapshotPaginator(sort_field="date", stats=FetchStats(), page_size=4).records(server)]
        assert sorted(got) == [r["_id"] for r in collection] and len(got) == len(set(got))
        # the third page (e10, e11) held nothing read: stepped back half a page twice, to e06, then on
        assert [b["skip"] for b in server.bodies] == [0, 3, 6, 4, 2, 5]

    def test_a_tenant_refusing_skip_past_the_ceiling_has_the_rest_read_from_the_other_end(self):
        collection = [{"_id": f"e{i:02}"} for i in range(15)]
        server = Collection(collection, ceiling=8)
        pager = SnapshotPaginator(sort_field="date", stats=FetchStats(service="entities"), page_size=4)
        pager.ceiling = 8
        got = [r["_id"] for r in pager.records(server)]
        assert sorted(got) == [r["_id"] for r in collection] and len(got) == len(set(got))
        assert [(b["skip"], b["sortDirection"]) for b in server.bodies] == [
            (0, "asc"),
            (3, "asc"),
            (6, "asc"),  # refused: 6 + 4 > 8
            (6, "asc"),  # asked again up to the ceiling
            (0, "desc"),
            (3, "desc"),
            (6, "desc"),  # up to the ceiling again: e08, then e07, read going up, where the passes meet
        ]
        assert [b["limit"] for b in server.bodies] == [4, 4, 4, 2, 4, 4, 2]
        pager = SnapshotPaginator(sort_field="date", stats=FetchStats(service="entities"), page_size=4)
        pager.ceiling = 8
        with pytest.raises(PullError, match="more than twice the skip ceiling") as info:
            list(pager.records(Collection([{"_id": f"e{i:02}"} for i in range(40)], ceiling=8)))
        assert info.value.code == 300

    def test_missing_data_list_is_an_error(self):
        with pytest.raises(PullError, match="'data' list"):
            list(SnapshotPaginator(sort_field="name", stats=FetchStats()).records(Canned({"hasNext": False})))


def test_airflow_pendulum_bounds_convert_like_plain_datetimes():
    import pendulum

    from airflow_provider_mdca.client.mdca import to_epoch_ms

    moment = pendulum.datetime(2026, 11, 2, 11, 55, 0, 250_001, tz="Europe/Madrid")
    plain = datetime(2026, 11, 2, 10, 55, 0, 250_001, tzinfo=timezone.utc)
    assert to_epoch_ms(moment) == to_epoch_ms(plain) == 1_793_616_900_251  # calendar.timegm, plus 250.001 ms rounded up


def test_a_window_field_written_as_iso_text_is_read_as_milliseconds():
    # Files carry snapshotLastModifiedDate as ISO 8601 text; filters speak epoch milliseconds.
    stats = FetchStats(service="files")
    pager = SortedSkipPaginator(
        Window(1_000, 2_000),
        filter_field="snapshotLastModifiedDate",
        time_field="snapshotLastModifiedDate",
        stats=stats,
    )
    fetch = Canned(
        {
            "data": [
                {"_id": "in", "snapshotLastModifiedDate": "1970-01-01T00:00:01.500Z"},
                {"_id": "after", "snapshotLastModifiedDate": "1970-01-01T00:00:02+00:00"},
            ],
            "hasNext": False,
        }
    )
    assert [r["_id"] for r in pager.records(fetch)] == ["in"] and stats.out_of_window_dropped == 1
    bad = Canned({"data": [{"_id": "x", "snapshotLastModifiedDate": "yesterday"}], "hasNext": False})
    with pytest.raises(PullError, match="has no 'snapshotLastModifiedDate' timestamp: 'yesterday'"):
        list(
            SortedSkipPaginator(WINDOW, filter_field="f", time_field="snapshotLastModifiedDate", stats=stats).records(
                bad
            )
        )


class Endless:
    """A server that never says hasNext: false: ``page(n)`` builds the answer to request n (from 0)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests = 0

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        assert self.requests <= 2_000, "the paginator is looping"
        answer: dict[str, Any] = self.page(self.requests - 1)
        return answer


def skip(stats: FetchStats | None = None) -> SortedSkipPaginator:
    return SortedSkipPaginator(WINDOW, filter_field="date", time_field="timestamp", stats=stats or FetchStats())


def snapshot() -> SnapshotPaginator:
    return SnapshotPaginator(sort_field="date", stats=FetchStats())


@pytest.mark.parametrize(
    ("pager", "server", "rule"),
    [
        (
            lambda: ScanPaginator(WINDOW, filter_field="date", time_field="timestamp", stats=FetchStats(), limit=500),
            lambda n: {"data": [rec("a", 1_100)], "hasNext": True, "nextQueryFilters": {"date": {"gte": 1_100}}},
            "repeats filters already asked",
        ),
        (
            lambda: ScanPaginator(WINDOW, filter_field="date", time_field="timestamp", stats=FetchStats(), limit=500),
            lambda n: {"data": [rec("a", 1_100)], "hasNext": True, "nextQueryFilters": {"date": {"gte": 1_100 + n}}},
            "moved no cursor",
        ),
        (
            lambda: ScanPaginator(WINDOW, filter_field="date", time_field="timestamp", stats=FetchStats(), limit=500),
            lambda n: {
                "data": [rec(f"r{n}", 1_500)],
                "hasNext": True,
                "nextQueryFilters": {"date": {"gte": 1_500 - n}},
            },
            "moves 'date' back",
        ),
        (
            lambda: ScanPaginator(WINDOW, filter_field="date", time_field="timestamp", stats=FetchStats(), limit=500),
            lambda n: {
                "data": [rec(f"o{n}", 5_000 + n)],
                "hasNext": True,
                "nextQueryFilters": {"date": {"gte": 1_000 + n}},
            },
            "moved no cursor",
        ),
        (
            snapshot,
            lambda n: {"data": [{"_id": "e1"}, {"_id": "e2"}], "hasNext": True},
            "held only records read",
        ),
        (
            skip,
            lambda n: {"data": [rec(f"fresh{n}", 1_000 + n % 900)], "hasNext": True, "total": 1},
            "more than the API's total of 1 records could fill",
        ),
        (
            skip,
            lambda n: {"data": [rec("same", 1_200)], "hasNext": True},
            "moved no cursor",
        ),
    ],
    ids=[
        "scan repeats its filters",
        "scan repeats its data",
        "scan walks backwards",
        "scan pages out of window",
        "snapshot repeats a page",
        "skip fresh forever, total 1",
        "skip repeats a page",
    ],
)
def test_a_server_that_never_ends_ends_the_fetch_with_the_rule_it_broke(pager, server, rule):
    endless = Endless(server)
    with pytest.raises(PullError, match=rule) as info:
        list(pager().records(endless))
    assert info.value.code == 300 and endless.requests <= 15


def test_records_without_an_id_are_told_apart_by_their_content():
    rows = [{"name": f"subnet-{i}", "category": 1} for i in range(100)]
    fetch = Canned({"data": rows[:60], "hasNext": True}, {"data": rows[59:], "hasNext": False})
    assert list(snapshot().records(fetch)) == rows
    same_ms = [{"timestamp": 1_200, "user": f"u{i}"} for i in range(5)]
    assert list(skip().records(Canned({"data": same_ms, "hasNext": False}))) == same_ms


def test_a_data_list_holding_something_else_than_records_is_an_error():
    with pytest.raises(PullError, match="not a record"):
        list(snapshot().records(Canned({"data": [{"_id": "a"}, "b"], "hasNext": False})))
