"""Paging strategies: each turns a ``fetch(body) -> page`` callable into a stream of records.

They know MDCA's paging rules and nothing about HTTP, so they are tested on canned pages. All three share
:class:`_BoundaryDedupe`: records that share the last timestamp seen are remembered by ``_id``, because a page
boundary or a re-anchored query may return them again. "Last timestamp + 1 ms" is never used: it loses the
records that share a millisecond.

Every request states its ``sortField`` and ``sortDirection`` (ascending): MDCA's default order is undocumented, and
newest first would defeat every cursor here.

Loop guards, so that a hostile or broken server ends a fetch with PullError 300 naming the rule it broke, never
loops (nothing is staged from a fetch that fails):

- every page that says ``hasNext`` must move the cursor: a later value of the window field, or new ids at the last
  one (a snapshot: new ids). Records older than the cursor are repeats: a window is read after it has passed, on
  when MDCA stored its records, so nothing new can sort before what was read already;
- ``nextQueryFilters`` may neither repeat earlier filters nor move the window field's lower bound backwards;
- pages are bounded by the API's own ``total`` (with room for it being an estimate);
- the time-walk grows its page at most to 5,000 records, and a re-anchor must move.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.errors import PullError
from airflow_provider_mdca.event_keys import record_key
from airflow_provider_mdca.services import SKIP_CEILING, Paging
from airflow_provider_mdca.timestamps import epoch_ms

__all__ = [
    "FetchPage",
    "ScanPaginator",
    "SnapshotPaginator",
    "SortedSkipPaginator",
    "Window",
]

log = logging.getLogger(__name__)

FetchPage = Callable[[dict[str, Any]], dict[str, Any]]

SKIP_PAGE_SIZE = Paging.SORTED_SKIP.max_page_size
SCAN_MAX_PAGE_SIZE = Paging.SCAN.max_page_size
_MAX_EMPTY_PAGES = 3  # consecutive empty pages that still say hasNext before we call it a loop
# Pages a fetch may read beyond what the API's total fills: total is an estimate, so twice as many, plus slack.
_TOTAL_PAGE_FACTOR = 2
_SLACK_PAGES = 10


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
        rid = record_key(record)
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
            self.ids_at_last_ts = {rid}
            return True
        if ts == self.last_ts:
            if rid in self.ids_at_last_ts:
                return False
            self.ids_at_last_ts.add(rid)
            return True
        # Older than the cursor: a repeat. The window has passed and is on when MDCA stored its records, and the
        # pages are sorted on that field: a record that sorts before what was read was read already.
        return False

    @property
    def position(self) -> tuple[int, int]:
        """How far the cursor is: the last value and how many ids share it; it only grows."""
        return (-1 if self.last_ts is None else self.last_ts, len(self.ids_at_last_ts))


def _timestamp(record: dict[str, Any], time_field: str) -> int:
    """The record's ``time_field`` in epoch ms: MDCA writes most instants as ms, a few as ISO 8601 text."""
    value = record.get(time_field)
    moment = epoch_ms(value)
    if moment is not None:
        return moment
    if isinstance(value, str):
        raise PullError(300, f"record {record.get('_id')!r} has no {time_field!r} timestamp: {value[:40]!r}")
    raise PullError(300, f"record {record.get('_id')!r} has no numeric {time_field!r} timestamp")


def _page_data(page: dict[str, Any]) -> list[dict[str, Any]]:
    data = page.get("data")
    if not isinstance(data, list):
        raise PullError(300, "the API answered without a 'data' list")
    if not all(isinstance(record, dict) for record in data):
        raise PullError(300, "the API's 'data' list holds something that is not a record (a JSON object)")
    return data


class _PageBudget:
    """Bounds one paging pass by the API's ``total``: an estimate, so with room, but never unbounded."""

    def __init__(self, stats: FetchStats) -> None:
        self.stats = stats
        self.pages = 0
        self.total: int | None = None
        self.cap: int | None = None

    def note(self, page: dict[str, Any], page_size: int) -> None:
        """Count one page; PullError 300 when there are more than the API's total could fill."""
        self.pages += 1
        self.stats.pages += 1
        total = page.get("total")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            if self.stats.api_total is None:
                self.stats.api_total = total
            if self.cap is None:
                self.total = total
                self.cap = _TOTAL_PAGE_FACTOR * -(-total // max(page_size, 1)) + _SLACK_PAGES
        if self.cap is not None and self.pages > self.cap:
            raise PullError(
                300,
                f"{self.pages} pages read, more than the API's total of {self.total} records could fill "
                f"({self.cap} pages allowed): the server keeps saying hasNext",
            )


class _WindowedPaginator:
    def __init__(self, window: Window, *, filter_field: str, time_field: str, stats: FetchStats) -> None:
        self.window = window
        self.filter_field = filter_field
        self.time_field = time_field
        self.stats = stats
        self.dedupe = _BoundaryDedupe()
        self.budget = _PageBudget(stats)

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

    def _page(self, page: dict[str, Any], page_size: int) -> list[dict[str, Any]]:
        """The page's records, counted against the budget."""
        self.budget.note(page, page_size)
        return _page_data(page)

    def _check_moved(self, before: tuple[int, int], what: str) -> None:
        if self.dedupe.position <= before:
            raise PullError(
                300,
                f"{what} said hasNext but moved no cursor: its records were repeats, older than those read, or "
                "outside the window",
            )


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
        asked = {_canonical(filters)}
        while True:
            page = fetch({"filters": filters, "isScan": True, "limit": limit, **order})
            data = self._page(page, limit)
            before = self.dedupe.position
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
                self._check_next_filters(filters, next_filters, asked)
                if data:
                    self._check_moved(before, f"scan page {self.stats.pages}")
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

    def _check_next_filters(self, current: dict[str, Any], following: Any, asked: set[str]) -> None:
        if not isinstance(following, dict):
            raise PullError(300, "nextQueryFilters is not a JSON object of filters")
        key = _canonical(following)
        if key in asked:
            raise PullError(300, "nextQueryFilters repeats filters already asked: the scan makes no progress")
        asked.add(key)
        before, after = _lower_bound(current, self.filter_field), _lower_bound(following, self.filter_field)
        if before is not None and after is not None and after < before:
            raise PullError(
                300, f"nextQueryFilters moves {self.filter_field!r} back from {before} to {after}: the scan goes back"
            )

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
        repeats_due = 0  # after a re-anchor, the ids already read at the anchor come once more
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
                repeats_due = len(self.dedupe.ids_at_last_ts)
            body = {
                "filters": {self.filter_field: {"gte": anchor, "lte": self.window.last_ms}},
                "skip": skip,
                "limit": self.page_size,
                "sortField": self.filter_field,
                "sortDirection": "asc",
            }
            page = fetch(body)
            data = self._page(page, self.page_size)
            before = self.dedupe.position
            skip += len(data)
            for record in data:
                if self._admit(record):
                    yield record
            if not page.get("hasNext"):
                return
            if not data:
                raise PullError(300, f"an empty page at skip {skip} that still says hasNext")
            if self.dedupe.position <= before and repeats_due >= len(data):
                repeats_due -= len(data)  # the re-anchored query's first pages repeat the ids at the anchor
                continue
            self._check_moved(before, f"the page at skip {skip - len(data)}")


class SnapshotPaginator:
    """Entities and subnets: the whole collection, skip/limit in a stated order, read whole while it changes.

    A snapshot has no timestamp to anchor on, and MDCA documents no filter to page it on a key, so skip paging is
    made stable by what it can check:

    - every ``_id`` is remembered (a snapshot is thousands of records, not millions): a record shifted forward
      across a page boundary (one added before it) is not read twice;
    - each page after the first starts on the last record of the page before, and must hold a record this pass has
      read: otherwise records before it were removed meanwhile, shifting the rest back past the page boundary, and
      the pass steps back half a page and asks again rather than skip them;
    - the 5,000 skip ceiling is Microsoft's for activities; these lists document none, so skip goes on past it. A
      tenant that refuses it (a 400 to the first page past it) is asked again up to the ceiling, and the rest is
      read from the other end, in the opposite order, until the two passes meet; a collection larger than twice
      the ceiling that the tenant will not page past is PullError 300, never a partial snapshot.

    :param sort_field: the documented field the pages are sorted on, ascending (entities: ``date``, when the entity
        was created, so that entities added while paging come last).
    """

    def __init__(self, *, sort_field: str, stats: FetchStats, page_size: int = SKIP_PAGE_SIZE) -> None:
        self.sort_field = sort_field
        self.stats = stats
        self.page_size = page_size
        self.ceiling = SKIP_CEILING
        self._ceiling_enforced = False

    def records(self, fetch: FetchPage) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        budget = _PageBudget(self.stats)
        finished = yield from self._pass(fetch, "asc", seen, budget, meet=False)
        if finished:
            return
        log.warning(
            "%s: the API refused a skip past %d; reading the rest of the snapshot from its other end",
            self.stats.service or "snapshot",
            self.ceiling,
        )
        if not (yield from self._pass(fetch, "desc", seen, budget, meet=True)):
            raise PullError(
                300,
                f"the snapshot holds more than twice the skip ceiling ({2 * self.ceiling} records, API total "
                f"{budget.total}) and the API refuses to page past {self.ceiling}: it cannot be read whole",
            )

    def _pass(
        self, fetch: FetchPage, direction: str, seen: set[str], budget: _PageBudget, *, meet: bool
    ) -> Generator[dict[str, Any], None, bool]:
        """Read in ``direction``; True when the pass reached the end (or, ``meet``, a record read before)."""
        read_here: set[str] = set()
        position = 0  # records of this pass's order consumed so far
        overlap = 1 if self.page_size > 1 else 0
        step_backs = 0
        while True:
            skip = max(0, position - overlap)
            limit = self.page_size
            if self._ceiling_enforced:
                limit = min(limit, self.ceiling - skip)
                if limit <= overlap:
                    return False  # the ceiling reached: nothing more this way
            try:
                page = fetch({"skip": skip, "limit": limit, "sortField": self.sort_field, "sortDirection": direction})
            except PullError as exc:
                if exc.code == 301 and skip + limit > self.ceiling and not self._ceiling_enforced:
                    self._ceiling_enforced = True  # the tenant enforces it: ask again up to it, no further
                    continue
                raise
            budget.note(page, limit)
            data = _page_data(page)
            keys = [record_key(record) for record in data]
            if skip and data and not read_here.intersection(keys):
                step_backs += 1
                if step_backs > _MAX_STEP_BACKS:
                    raise PullError(
                        300,
                        f"the page at skip {skip} held none of the records read before it, {step_backs - 1} times "
                        "after stepping back: the collection changes faster than it can be paged",
                    )
                position = max(0, position - max(self.page_size // 2, 1))
                continue
            new = 0
            met = False
            for key, record in zip(keys, data, strict=True):
                if key in read_here:
                    continue
                read_here.add(key)
                if key in seen:
                    met = met or meet
                    self.stats.duplicates_dropped += 1
                    continue
                seen.add(key)
                new += 1
                yield record
            position = skip + len(data)
            if met or not page.get("hasNext"):
                return True
            if not data:
                raise PullError(300, f"an empty page at skip {skip} that still says hasNext")
            if not new and len(data) > overlap:
                raise PullError(300, f"the page at skip {skip} said hasNext but held only records read")


_MAX_STEP_BACKS = 20  # a page that misses what was read, asked again half a page back each time


def _canonical(filters: Any) -> str:
    return json.dumps(filters, sort_keys=True, default=str)


def _lower_bound(filters: dict[str, Any], field: str) -> int | float | None:
    """The lower bound ``filters`` put on ``field`` (``gte`` or ``gt``), when it states one as a number."""
    condition = filters.get(field)
    if not isinstance(condition, dict):
        return None
    for op in ("gte", "gt"):
        value = condition.get(op)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None
