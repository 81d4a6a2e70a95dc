"""Paging strategies: each turns a ``fetch(body) -> page`` callable into a stream of records.

They know MDCA's paging rules and nothing about HTTP, so they are tested on canned pages. All three share
:class:`_BoundaryDedupe`: records that share the last timestamp seen are remembered by ``_id``, because a page
boundary or a re-anchored query may return them again. "Last timestamp + 1 ms" is never used: it loses the
records that share a millisecond.

Every request states its ``sortField`` and ``sortDirection`` (ascending): MDCA's default order is undocumented, and
newest first would defeat every cursor here.

Loop guards: a page that makes no progress (identical ``nextQueryFilters``, an empty page that says
``hasNext``, a re-anchor that does not move) raises PullError 300 instead of looping forever.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.errors import PullError
from airflow_provider_mdca.services import SKIP_CEILING, Paging

__all__ = [
    "FetchPage",
    "ScanPaginator",
    "SnapshotPaginator",
    "SortedSkipPaginator",
    "Window",
]

log = logging.getLogger(__name__)

FetchPage = Callable[[dict[str, Any]], dict[str, Any]]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SKIP_PAGE_SIZE = Paging.SORTED_SKIP.max_page_size
SCAN_MAX_PAGE_SIZE = Paging.SCAN.max_page_size
_MAX_EMPTY_PAGES = 3  # consecutive empty pages that still say hasNext before we call it a loop


@dataclass(frozen=True)
class Window:
    """A half-open window ``[start_ms, end_ms)`` in epoch milliseconds."""

    start_ms: int
    end_ms: int

    @property
    def last_ms(self) -> int:
        """The last millisecond inside the window: MDCA's ``lte`` is inclusive."""
        return self.end_ms - 1

    def contains(self, ms: int) -> bool:
        return self.start_ms <= ms < self.end_ms


@dataclass
class _BoundaryDedupe:
    """Remembers the ``_id``s seen at the highest timestamp so far and drops them if they come again."""

    last_ts: int | None = None
    ids_at_last_ts: set[str] = field(default_factory=set)

    def admit(self, record: dict[str, Any], ts: int) -> bool:
        """Whether ``record``, whose timestamp is ``ts``, is new (the caller has read ``ts`` already)."""
        rid = str(record.get("_id"))
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
            self.ids_at_last_ts = {rid}
            return True
        if ts == self.last_ts:
            if rid in self.ids_at_last_ts:
                return False
            self.ids_at_last_ts.add(rid)
            return True
        # Older than the boundary: only a repeated page or a misbehaving server sends these. We cannot tell
        # a repeat from a straggler without remembering every id, so let it through (never lose a record).
        return True


def _timestamp(record: dict[str, Any], time_field: str) -> int:
    """The record's ``time_field`` in epoch ms: MDCA writes most instants as ms, a few as ISO 8601 text."""
    value = record.get(time_field)
    if isinstance(value, str):
        return _iso_ms(value, record, time_field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PullError(300, f"record {record.get('_id')!r} has no numeric {time_field!r} timestamp")
    return int(value)


def _iso_ms(text: str, record: dict[str, Any], time_field: str) -> int:
    """``2026-11-28T12:00:00.250Z`` (or with an offset) as epoch ms; a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise PullError(300, f"record {record.get('_id')!r} has no {time_field!r} timestamp: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _page_data(page: dict[str, Any]) -> list[dict[str, Any]]:
    data = page.get("data")
    if not isinstance(data, list):
        raise PullError(300, "the API answered without a 'data' list")
    return data


class _WindowedPaginator:
    def __init__(self, window: Window, *, filter_field: str, time_field: str, stats: FetchStats) -> None:
        self.window = window
        self.filter_field = filter_field
        self.time_field = time_field
        self.stats = stats
        self.dedupe = _BoundaryDedupe()

    def _admit(self, record: dict[str, Any]) -> bool:
        ts = _timestamp(record, self.time_field)
        if not self.window.contains(ts):
            # The window is half-open: the next window owns its start, so a record here would be doubled.
            self.stats.out_of_window_dropped += 1
            return False
        if not self.dedupe.admit(record, ts):
            self.stats.duplicates_dropped += 1
            return False
        return True

    def _note_page(self, page: dict[str, Any]) -> None:
        self.stats.pages += 1
        if self.stats.api_total is None and isinstance(page.get("total"), int):
            self.stats.api_total = page["total"]


class ScanPaginator(_WindowedPaginator):
    """Activities: scan mode, following ``nextQueryFilters`` until ``hasNext`` is false.

    MDCA drops the records that share a page's last timestamp and returns them on the next page. When a
    page says ``hasNext`` without ``nextQueryFilters`` (seen in the wild), the paginator walks on by time from
    the last timestamp it yielded, dropping the ids it already has there; if a whole page is one timestamp
    it has already seen, it doubles the page size (up to 5,000) before giving up.
    """

    def __init__(self, window: Window, *, filter_field: str, time_field: str, stats: FetchStats, limit: int) -> None:
        super().__init__(window, filter_field=filter_field, time_field=time_field, stats=stats)
        self.limit = limit

    def records(self, fetch: FetchPage) -> Iterator[dict[str, Any]]:
        filters: dict[str, Any] = {self.filter_field: {"gte": self.window.start_ms, "lte": self.window.last_ms}}
        limit = self.limit
        empty_pages = 0
        order = {"sortField": self.filter_field, "sortDirection": "asc"}
        while True:
            page = fetch({"filters": filters, "isScan": True, "limit": limit, **order})
            self._note_page(page)
            data = _page_data(page)
            admitted = 0
            for record in data:
                if self._admit(record):
                    admitted += 1
                    yield record
            if not page.get("hasNext"):
                return
            empty_pages = empty_pages + 1 if not data else 0
            if empty_pages >= _MAX_EMPTY_PAGES:
                raise PullError(300, f"{empty_pages} empty pages in a row that still say hasNext")
            next_filters = page.get("nextQueryFilters")
            if next_filters:
                if next_filters == filters and not admitted:
                    raise PullError(300, "nextQueryFilters repeats the previous filters: the scan makes no progress")
                filters = next_filters
                continue
            # hasNext without nextQueryFilters: walk on by time from the last timestamp yielded, which only finds
            # the rest if the page came in that order.
            self._check_ascending(data)
            if not admitted:
                if limit >= SCAN_MAX_PAGE_SIZE:
                    raise PullError(
                        300,
                        f"more than {SCAN_MAX_PAGE_SIZE} records share timestamp {self.dedupe.last_ts}; "
                        "the time-walk cannot pass them",
                    )
                limit = min(SCAN_MAX_PAGE_SIZE, limit * 2)
            anchor = self.dedupe.last_ts if self.dedupe.last_ts is not None else self.window.start_ms
            log.info("activities: hasNext without nextQueryFilters; walking on from timestamp %d", anchor)
            filters = {self.filter_field: {"gte": anchor, "lte": self.window.last_ms}}

    def _check_ascending(self, data: list[dict[str, Any]]) -> None:
        stamps = [_timestamp(record, self.time_field) for record in data]
        if any(later < earlier for earlier, later in itertools.pairwise(stamps)):
            raise PullError(
                300,
                f"a page said hasNext without nextQueryFilters and is not in {self.time_field!r} order: walking on "
                f"from its last {self.time_field!r} could skip records, so the window is not read",
            )


class SortedSkipPaginator(_WindowedPaginator):
    """Alerts and files: sorted ascending on the window field, skip/limit inside the window.

    Before ``skip + limit`` would pass the 5,000 ceiling, the query is re-anchored: the window's start moves to
    the last timestamp seen, skip returns to 0, and the ids already yielded at that timestamp are dropped.
    """

    def __init__(
        self,
        window: Window,
        *,
        filter_field: str,
        time_field: str,
        stats: FetchStats,
        page_size: int = SKIP_PAGE_SIZE,
        ceiling: int = SKIP_CEILING,
    ) -> None:
        super().__init__(window, filter_field=filter_field, time_field=time_field, stats=stats)
        self.page_size = page_size
        self.ceiling = ceiling

    def records(self, fetch: FetchPage) -> Iterator[dict[str, Any]]:
        anchor = self.window.start_ms
        skip = 0
        while True:
            if skip + self.page_size > self.ceiling:
                new_anchor = self.dedupe.last_ts
                if new_anchor is None or new_anchor <= anchor:
                    raise PullError(
                        300,
                        f"more than {self.ceiling} records share timestamp {anchor}; skip paging cannot pass them",
                    )
                log.info("%s: re-anchoring at timestamp %d before the skip ceiling", self.stats.service, new_anchor)
                anchor, skip = new_anchor, 0
            body = {
                "filters": {self.filter_field: {"gte": anchor, "lte": self.window.last_ms}},
                "skip": skip,
                "limit": self.page_size,
                "sortField": self.filter_field,
                "sortDirection": "asc",
            }
            page = fetch(body)
            self._note_page(page)
            data = _page_data(page)
            skip += len(data)
            for record in data:
                if self._admit(record):
                    yield record
            if not page.get("hasNext"):
                return
            if not data:
                raise PullError(300, f"an empty page at skip {skip} that still says hasNext")


class SnapshotPaginator:
    """Entities and subnets: the whole collection, skip/limit until ``hasNext`` is false, in a stated order.

    A snapshot has no timestamp to anchor on, so every ``_id`` is remembered (a snapshot is thousands of
    records, not millions) and a record shifted across a page boundary while paging is not doubled.

    :param sort_field: the documented field the pages are sorted on, ascending (entities: ``date``, when the entity
        was created, so that entities added while paging come last).
    """

    def __init__(self, *, sort_field: str, stats: FetchStats, page_size: int = SKIP_PAGE_SIZE) -> None:
        self.sort_field = sort_field
        self.stats = stats
        self.page_size = page_size

    def records(self, fetch: FetchPage) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        skip = 0
        while True:
            page = fetch({"skip": skip, "limit": self.page_size, "sortField": self.sort_field, "sortDirection": "asc"})
            self.stats.pages += 1
            if self.stats.api_total is None and isinstance(page.get("total"), int):
                self.stats.api_total = page["total"]
            data = _page_data(page)
            skip += len(data)
            for record in data:
                rid = str(record.get("_id"))
                if rid in seen:
                    self.stats.duplicates_dropped += 1
                    continue
                seen.add(rid)
                yield record
            if not page.get("hasNext"):
                return
            if not data:
                raise PullError(300, f"an empty page at skip {skip} that still says hasNext")
