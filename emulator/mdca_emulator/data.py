"""Deterministic, lazy record streams for the emulated MDCA services.

Nothing here holds a list of records. A service's data is described by a few numbers (segments and rates); the
position of record *i* — its timestamp and ``_id`` — is computed arithmetically, the index range of a time
range is found in O(1), and record bodies are built only for the records a response actually returns. A tenant
with millions of activities therefore costs no memory, and every answer is a pure function of the
configuration.

Shapes of the time axis:

* :class:`Segment` — ``count`` records spread evenly over ``[start_ms, end_ms)`` in same-millisecond clusters
  whose sizes cycle through ``cluster_sizes``.
* :class:`Rate` — one implicit segment per UTC hour with about ``records_per_hour`` records; the count of each
  hour follows a seeded weekly pattern within ±20 %, so hour counts stay summable in O(1).

A service's streams are merged lazily in ``(timestamp, _id)`` order, the order MDCA pages in.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mdca_emulator import records, services

__all__ = [
    "HOUR_MS",
    "INF_MS",
    "Entry",
    "Rate",
    "Segment",
    "SnapshotData",
    "TimeSeriesData",
    "spec_from_dict",
]

HOUR_MS = 3_600_000
_WEEK_HOURS = 168
# Upper bound for "no upper bound": far beyond any real timestamp, small enough for exact integer arithmetic.
INF_MS = 1 << 50
_MASK64 = (1 << 64) - 1
_MASK40 = (1 << 40) - 1
# Odd 64-bit multipliers spreading (segment, index) before the hash (see _Stream.record_hash).
_SEGMENT_MUL = 0xD1B54A32D192ED03
_INDEX_MUL = 0x9E3779B97F4A7C15

# One record's position on the merged axis: (timestamp, _id, stream, segment, index, created).
# Tuples compare by timestamp then `_id` (unique), which is exactly MDCA's order, so heapq.merge needs no key.
Entry = tuple[int, str, int, int, int, int]


def mix64(value: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of `parts` that, unlike ``hash()``, is the same in every process."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# -- the time axis -------------------------------------------------------------------------------------------


def _check_clusters(cluster_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(size) for size in cluster_sizes)
    if not sizes or any(size < 1 for size in sizes):
        raise ValueError("cluster_sizes must be a non-empty list of positive integers")
    return sizes


@dataclass(frozen=True)
class Segment:
    """`count` records in ``[start_ms, end_ms)``, in clusters whose sizes cycle through `cluster_sizes`."""

    start_ms: int
    end_ms: int
    count: int
    cluster_sizes: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cluster_sizes", _check_clusters(self.cluster_sizes))
        if not 0 <= self.start_ms < self.end_ms <= INF_MS:
            raise ValueError(f"segment needs 0 <= start_ms < end_ms, got [{self.start_ms}, {self.end_ms})")
        if self.count < 0:
            raise ValueError("segment count must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with ``"kind": "segment"``."""
        return {
            "kind": "segment",
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "count": self.count,
            "cluster_sizes": list(self.cluster_sizes),
        }


@dataclass(frozen=True)
class Rate:
    """About `records_per_hour` records in every UTC hour of ``[start_ms, end_ms)`` (unbounded when None)."""

    records_per_hour: float
    cluster_sizes: tuple[int, ...] = (1,)
    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cluster_sizes", _check_clusters(self.cluster_sizes))
        if self.records_per_hour < 0:
            raise ValueError("records_per_hour must be >= 0")
        if self.start_ms is not None and self.end_ms is not None and self.start_ms >= self.end_ms:
            raise ValueError("rate needs start_ms < end_ms")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with ``"kind": "rate"``."""
        return {
            "kind": "rate",
            "records_per_hour": self.records_per_hour,
            "cluster_sizes": list(self.cluster_sizes),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
        }


def spec_from_dict(raw: dict[str, Any]) -> Segment | Rate:
    """Inverse of ``Segment.to_dict``/``Rate.to_dict`` (no ``kind``: a rate has records_per_hour)."""
    kind = raw.get("kind") or ("rate" if "records_per_hour" in raw else "segment")
    sizes = tuple(raw.get("cluster_sizes", (1,)))
    if kind == "segment":
        return Segment(int(raw["start_ms"]), int(raw["end_ms"]), int(raw["count"]), sizes)
    if kind == "rate":
        start, end = raw.get("start_ms"), raw.get("end_ms")
        return Rate(
            float(raw["records_per_hour"]),
            sizes,
            None if start is None else int(start),
            None if end is None else int(end),
        )
    raise ValueError(f"unknown segment kind {kind!r}")


class _Layout:
    """Index ↔ timestamp arithmetic of a segment: cluster k sits at ``start + k*span // clusters``."""

    __slots__ = ("clusters", "count", "cycle", "prefix", "span", "start", "width")

    def __init__(self, start: int, end: int, count: int, prefix: tuple[int, ...]) -> None:
        self.start, self.span, self.count, self.prefix = start, end - start, count, prefix
        self.width, self.cycle = len(prefix) - 1, prefix[-1]
        full, rest = divmod(count, self.cycle)
        self.clusters = full * self.width + bisect.bisect_left(prefix, rest)

    def cluster_of(self, index: int) -> int:
        full, rest = divmod(index, self.cycle)
        return full * self.width + bisect.bisect_right(self.prefix, rest) - 1

    def cluster_start(self, cluster: int) -> int:
        full, part = divmod(cluster, self.width)
        return min(self.count, full * self.cycle + self.prefix[part])

    def ts_of_cluster(self, cluster: int) -> int:
        return self.start + cluster * self.span // self.clusters

    def index_at(self, ts: int) -> int:
        """The first index whose timestamp is >= `ts` (``count`` when none is)."""
        offset = ts - self.start
        if offset <= 0:
            return 0
        # ts_of_cluster(k) >= ts  <=>  k*span // clusters >= offset  <=>  k >= offset*clusters / span
        cluster = -(-offset * self.clusters // self.span)
        return self.count if cluster >= self.clusters else self.cluster_start(cluster)

    def runs(self, first: int, stop: int, reverse: bool) -> Iterator[tuple[int, int, int]]:
        """(timestamp, a, b) for each cluster overlapping indices first..stop-1: its records are a..b-1.

        Yielding one tuple per cluster rather than per record keeps the per-record work in the caller's loop.
        """
        if first >= stop:
            return
        if reverse:
            cluster = self.cluster_of(stop - 1)
            while stop > first:
                begin = max(first, self.cluster_start(cluster))
                yield self.ts_of_cluster(cluster), begin, stop
                stop, cluster = begin, cluster - 1
        else:
            cluster = self.cluster_of(first)
            while first < stop:
                end = min(stop, self.cluster_start(cluster + 1))
                yield self.ts_of_cluster(cluster), first, end
                first, cluster = end, cluster + 1


def _prefix(sizes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(itertools.accumulate(sizes, initial=0))


class _Stream:
    """One segment or rate of a service, able to count and walk its records inside a time range."""

    def __init__(self, service: str, seed: int, number: int) -> None:
        self.number = number
        # `_id` = 8 hex epoch seconds + 4 hex stream tag + 12 hex (base + index): unique across streams (the
        # tag differs: 7967 is odd, so tags are distinct for the first 65,536 streams), increasing with the
        # index inside a second, hence sorted like the records themselves.
        self.tag = (stable_hash(seed, service, "tag") + number * 7967) & 0xFFFF
        self.base = stable_hash(seed, service, number, "base") & _MASK40
        self.key = stable_hash(seed, service, number, "key")

    def record_hash(self, segment: int, index: int) -> int:
        """The 64-bit seed of one record's content."""
        return mix64(self.key ^ (segment * _SEGMENT_MUL) ^ (index * _INDEX_MUL))

    def count(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def runs(self, lo: int, hi: int, reverse: bool) -> Iterator[tuple[int, int, int, int]]:
        """(timestamp, segment, a, b) per same-timestamp run of records a..b-1 inside ``[lo, hi)``."""
        raise NotImplementedError

    def entries(self, lo: int, hi: int, reverse: bool, now_ms: int, late: tuple[int, int]) -> Iterator[Entry]:
        """The records in ``[lo, hi)`` whose ``created`` is <= `now_ms`, as merge-ready entries.

        This is the inner loop of every page, hence the inlined `created` rule (see
        :meth:`TimeSeriesData.created`).
        """
        tag, base, number = self.tag, self.base, self.number
        every, late_by = late
        for ts, segment, first, stop in self.runs(lo, hi, reverse):
            head = f"{ts // 1000:08x}{tag:04x}"
            for index in range(stop - 1, first - 1, -1) if reverse else range(first, stop):
                is_late = every and index % every == every - 1
                created = ts + late_by if is_late else ts + 1 + (index * 7) % 5
                if created <= now_ms:
                    yield ts, f"{head}{base + index:012x}", number, segment, index, created


class _SegmentStream(_Stream):
    def __init__(self, service: str, seed: int, number: int, spec: Segment) -> None:
        super().__init__(service, seed, number)
        self.layout = _Layout(spec.start_ms, spec.end_ms, spec.count, _prefix(spec.cluster_sizes))

    def count(self, lo: int, hi: int) -> int:
        return max(0, self.layout.index_at(hi) - self.layout.index_at(lo))

    def runs(self, lo: int, hi: int, reverse: bool) -> Iterator[tuple[int, int, int, int]]:
        for ts, first, stop in self.layout.runs(self.layout.index_at(lo), self.layout.index_at(hi), reverse):
            yield ts, 0, first, stop


class _RateStream(_Stream):
    """Hour h is the segment ``[h*HOUR, (h+1)*HOUR)``; its count follows a seeded weekly pattern."""

    def __init__(self, service: str, seed: int, number: int, spec: Rate) -> None:
        super().__init__(service, seed, number)
        self.prefix = _prefix(spec.cluster_sizes)
        self.start = spec.start_ms if spec.start_ms is not None else 0
        self.end = spec.end_ms if spec.end_ms is not None else INF_MS
        counts = []
        for slot in range(_WEEK_HOURS):
            wobble = (stable_hash(seed, service, number, slot) % 10_001) / 10_000  # 0..1
            counts.append(max(0, round(spec.records_per_hour * (0.8 + 0.4 * wobble))))
        self.hour_counts = tuple(counts)
        self.week_prefix = _prefix(self.hour_counts)

    def hour_layout(self, hour: int) -> _Layout:
        start = hour * HOUR_MS
        return _Layout(start, start + HOUR_MS, self.hour_counts[hour % _WEEK_HOURS], self.prefix)

    def _before(self, ts: int) -> int:
        """Records of the unclipped rate with a timestamp < `ts`."""
        hour = ts // HOUR_MS
        weeks, slot = divmod(hour, _WEEK_HOURS)
        whole = weeks * self.week_prefix[-1] + self.week_prefix[slot]
        return whole + self.hour_layout(hour).index_at(ts)

    def _clip(self, lo: int, hi: int) -> tuple[int, int]:
        return max(lo, self.start), min(hi, self.end)

    def count(self, lo: int, hi: int) -> int:
        lo, hi = self._clip(lo, hi)
        return self._before(hi) - self._before(lo) if lo < hi else 0

    def runs(self, lo: int, hi: int, reverse: bool) -> Iterator[tuple[int, int, int, int]]:
        lo, hi = self._clip(lo, hi)
        if lo >= hi:
            return
        hours = range(lo // HOUR_MS, (hi - 1) // HOUR_MS + 1)
        for hour in reversed(hours) if reverse else hours:
            layout = self.hour_layout(hour)
            if layout.count:
                for ts, first, stop in layout.runs(layout.index_at(lo), layout.index_at(hi), reverse):
                    yield ts, hour, first, stop


# -- services ------------------------------------------------------------------------------------------------

Intervals = Sequence[tuple[int, int]]


class TimeSeriesData:
    """All records of one windowed service of one tenant: counting, ordered walking and record building.

    `service` is a windowed service of the registry: its ``filter_field`` selects a window in requests and its
    ``time_field`` is the record field holding the same instant.

    `late_every` / `late_by_ms`: every Nth record of a segment is stored (``created``) `late_by_ms` after its
    timestamp; the others a few milliseconds after. MDCA shows a record only once it is stored, so a late
    record appears inside a window that was already read — the case a collector's lag exists for.
    """

    def __init__(
        self,
        service: str,
        seed: int,
        specs: Iterable[Segment | Rate],
        late_every: int | None = None,
        late_by_ms: int = 0,
    ) -> None:
        spec = services.get(service)
        if spec.filter_field is None or spec.time_field is None:
            raise ValueError(f"{service} is a snapshot, not a windowed service")
        self.service = service
        self.filter_field: str = spec.filter_field
        self.time_field: str = spec.time_field
        self.late_every = late_every
        self.late_by_ms = late_by_ms
        self.streams: list[_Stream] = [
            _SegmentStream(service, seed, number, spec)
            if isinstance(spec, Segment)
            else _RateStream(service, seed, number, spec)
            for number, spec in enumerate(specs)
        ]
        self.spec = records.SHAPES[service]

    def created(self, ts: int, index: int) -> int:
        """When the record at `index` (of its segment) with timestamp `ts` is stored, hence visible.

        Mirrored, for speed, inside ``_Stream.entries``.
        """
        every = self.late_every
        if every and index % every == every - 1:
            return ts + self.late_by_ms
        return ts + 1 + (index * 7) % 5  # 1..5 ms: the ordinary ingestion delay

    def count(self, intervals: Intervals) -> int:
        """How many records (visible or not) have a timestamp inside `intervals` (half-open ranges)."""
        return sum(stream.count(lo, hi) for lo, hi in intervals for stream in self.streams)

    def entries(
        self,
        intervals: Intervals,
        now_ms: int | None = None,
        reverse: bool = False,
        *,
        skip: int = 0,
    ) -> Iterator[Entry]:
        """The records inside `intervals` in (timestamp, ``_id``) order (or the reverse).

        With `now_ms`, only those already stored then (``created <= now_ms``): the records MDCA would show.
        `skip` drops the first records, exactly like ``itertools.islice(entries(...), skip, None)``, but
        counts its way over runs of records that are certainly visible instead of walking them: a skip/limit
        page deep into a window then costs about as much as the first one.
        """
        if now_ms is None:
            now_ms = INF_MS
        else:
            # created > timestamp, so nothing after now can be visible: clip there and never walk the future.
            intervals = [(lo, min(hi, now_ms + 1)) for lo, hi in intervals if lo < min(hi, now_ms + 1)]
        late = (self.late_every or 0, self.late_by_ms)
        # Records with a timestamp below `settled` are stored by now_ms whatever their index (see `created`),
        # so `count` counts exactly the records `entries` would yield there; nearer to now_ms it may not.
        settled = now_ms + 1 - max(5, self.late_by_ms if self.late_every else 0)
        for lo, hi in sorted(intervals, reverse=reverse):
            # Split at `settled`: records below it all come before those at or above it, so walking the two
            # parts one after the other (in the requested order) is walking the whole interval.
            edge = max(lo, min(hi, settled))
            parts = [(lo, edge, True), (edge, hi, False)]
            for part_lo, part_hi, countable in reversed(parts) if reverse else parts:
                if part_lo >= part_hi:
                    continue
                if skip and countable:
                    part_lo, part_hi, jumped = self._jump(part_lo, part_hi, reverse, skip)
                    skip -= jumped
                walk = self._walk(part_lo, part_hi, reverse, now_ms, late)
                if skip:  # what is left to skip lies in the walk's first few records (or in the uncountable part)
                    skip -= sum(1 for _ in itertools.islice(walk, skip))
                yield from walk

    def _walk(self, lo: int, hi: int, reverse: bool, now_ms: int, late: tuple[int, int]) -> Iterator[Entry]:
        """The visible records of ``[lo, hi)``, all streams merged in (timestamp, ``_id``) order or the reverse."""
        walks = [stream.entries(lo, hi, reverse, now_ms, late) for stream in self.streams]
        if len(walks) == 1:
            return walks[0]
        return heapq.merge(*walks, reverse=reverse)

    def _jump(self, lo: int, hi: int, reverse: bool, skip: int) -> tuple[int, int, int]:
        """Jump over at most `skip` records at the start of ``[lo, hi)`` (its end when `reverse`).

        Returns the part still to walk and how many records were jumped. The cut is a timestamp: the one
        found by binary search that jumps as many records as possible without jumping more than `skip`. Only
        for a range where every record is visible, so that counting records is counting entries.
        """
        total = self.count([(lo, hi)])
        if total <= skip:
            return hi, hi, total

        def jumped(cut: int) -> int:
            return self.count([(cut, hi)] if reverse else [(lo, cut)])

        # Invariant: cutting at `fits` jumps <= skip records, cutting at `over` jumps more.
        fits, over = (hi, lo) if reverse else (lo, hi)
        while abs(over - fits) > 1:
            middle = (fits + over) // 2
            if jumped(middle) <= skip:
                fits = middle
            else:
                over = middle
        return (lo, fits, jumped(fits)) if reverse else (fits, hi, jumped(fits))

    def build(self, entry: Entry) -> dict[str, Any]:
        """The full record for `entry`: a pure function of the seed and the entry's position."""
        return self.spec.build(self._hash(entry), entry[1], entry[0], entry[5])

    def render(self, entry: Entry) -> str:
        """The record's compact JSON text (the very bytes ``json.dumps(build(entry), ...)`` writes)."""
        return self.spec.render(self._hash(entry), entry[1], entry[0], entry[5])

    def render_page(self, entries: Iterable[Entry]) -> bytes:
        """The records of `entries` as comma-separated compact JSON in UTF-8: the inside of a page's array.

        The hot path of scan pages: locals and one inlined hash per record instead of method calls, and small
        per-record encodes (mostly ASCII, so cheap) instead of one huge, wide string.
        """
        render, keys = self.spec.render, [stream.key for stream in self.streams]
        texts = []
        for ts, _id, number, segment, index, created in entries:
            record_hash = mix64(keys[number] ^ (segment * _SEGMENT_MUL) ^ (index * _INDEX_MUL))
            texts.append(render(record_hash, _id, ts, created).encode())
        return b",".join(texts)

    def _hash(self, entry: Entry) -> int:
        return self.streams[entry[2]].record_hash(entry[3], entry[4])


class SnapshotData:
    """A snapshot service (read whole, no window): `count` records in ``_id`` order, always visible."""

    def __init__(self, service: str, seed: int, count: int) -> None:
        if services.get(service).windowed:
            raise ValueError(f"{service} is a windowed service, not a snapshot")
        self.service = service
        self.total = count
        self.prefix = stable_hash(seed, service, "prefix") & 0xFFFFFFFF
        self.key = stable_hash(seed, service, "key")
        self.spec = records.SHAPES[service]

    def record_id(self, index: int) -> str:
        """``_id`` of record `index`: a constant prefix then the index, so ``_id`` order is index order."""
        return f"{self.prefix:08x}{index:016x}"

    def indices(self, skip: int, limit: int, reverse: bool = False) -> range:
        """Indices of the page starting `skip` records in, in the requested direction."""
        if reverse:
            top = self.total - skip
            return range(top - 1, max(top - limit, 0) - 1, -1)
        return range(skip, min(skip + limit, self.total))

    def build(self, index: int) -> dict[str, Any]:
        """Record `index`."""
        return self.spec.build(self._hash(index), self.record_id(index), index, 0)

    def render(self, index: int) -> str:
        """Record `index` as compact JSON text."""
        return self.spec.render(self._hash(index), self.record_id(index), index, 0)

    def render_page(self, indices: Iterable[int]) -> bytes:
        """Records `indices` as comma-separated compact JSON in UTF-8."""
        return b",".join([self.render(index).encode() for index in indices])

    def _hash(self, index: int) -> int:
        return mix64(self.key ^ (index * _INDEX_MUL))
