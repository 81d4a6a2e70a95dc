"""Deterministic, lazy record streams for the emulated MDCA services.

Nothing here holds a list of records. A service's data is described by a few numbers (segments and rates); the
position of record *i* — its timestamp, ``_id`` and ``created`` — is computed arithmetically, the index range of a
time range is found in O(1), and record bodies are built only for the records a response actually returns. A tenant
with millions of activities therefore costs no memory, and every answer is a pure function of the configuration and
the tenant clock.

Shapes of the time axis:

* :class:`Segment` — ``count`` records spread evenly over ``[start_ms, end_ms)`` in same-millisecond clusters
  whose sizes cycle through ``cluster_sizes``.
* :class:`Rate` — one implicit segment per UTC hour with about ``records_per_hour`` records; the count of each
  hour follows a seeded weekly pattern within ±20 %, so hour counts stay summable in O(1).

When a record is stored (``created``) follows the service's :class:`~mdca_emulator.timing.Timing` (``timing.py``):
each stream numbers its records (their *ordinals*, in timestamp order), a seeded residue pattern over the ordinals
puts each record in a delay class, the on-time class's delays are hashed, and each late class's delay is a sawtooth
of the timestamp, increasing inside a tooth. So the records of a :class:`Query` (a range of timestamps and a range of
``created``) are found without walking what lies between:

* on-time records are walked over the timestamps within the on-time delays of the ``created`` range;
* a late class's records are enumerated: each tooth's timestamps stored in the range are one interval (``created``
  is increasing there), and its members' ordinals in that interval follow from the residue pattern;
* counts are arithmetic but at the edges of a ``created`` range, where on-time records are walked.

A service's streams are merged lazily in ``(timestamp, _id)`` order, the order MDCA pages in, or in ``(created,
_id)`` order (on-time records sorted within their bounded disorder, each late tooth already in order).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import operator
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mdca_emulator import records, services
from mdca_emulator.timing import PATTERN_PERIOD, AlertState, Timing

__all__ = [
    "ALL",
    "HOUR_MS",
    "INF_MS",
    "Entry",
    "Intervals",
    "Query",
    "Rate",
    "Segment",
    "SnapshotData",
    "TimeSeriesData",
    "field_roles",
    "intersect",
    "normalise",
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
# Spreads an ordinal into an on-time delay (a Weyl sequence: consecutive ordinals land far apart).
_DELAY_MUL = 0x9E3779B97F4A7C15

# One record's position on the merged axis: (timestamp, _id, stream, segment, index, created).
# Tuples compare by timestamp then `_id` (unique), which is exactly MDCA's order, so heapq.merge needs no key.
Entry = tuple[int, str, int, int, int, int]
Intervals = Sequence[tuple[int, int]]
#: Every instant: no bound.
ALL: tuple[tuple[int, int], ...] = ((0, INF_MS),)
_BY_CREATED = operator.itemgetter(5, 1)
_CREATED = operator.itemgetter(5)
_BY_KEY = operator.itemgetter(0, 1)
_KEY = operator.itemgetter(0)
# The rules that store an on-time record: at once (the instant model), a hashed delay, the next scan of a file's app.
_INSTANT, _HASHED, _SCAN = 0, 1, 2
_RULES = {"instant": _INSTANT, "hashed": _HASHED, "scan": _SCAN}


#: What each filter and sort field of a windowed service means: the event's own time (``"time"``), when MDCA stored
#: the record (``"stored"``) or when it was resolved (``"resolved"``, alerts). A windowed service of the registry
#: missing here has its window and record fields only, both its event's time.
_FIELD_ROLES: dict[str, dict[str, str]] = {
    "activities": {"date": "time", "created": "stored"},
    "alerts": {"date": "time", "resolutionDate": "resolved"},
    "files": {"modifiedDate": "time", "snapshotLastModifiedDate": "stored"},
}
services.check_table(_FIELD_ROLES, "time fields", complete=False)


def field_roles(service: str) -> dict[str, str]:
    """The filter fields of windowed `service` and what each means (``"time"``, ``"stored"``, ``"resolved"``)."""
    roles = _FIELD_ROLES.get(service)
    if roles is not None:
        return roles
    spec = services.get(service)
    return {name: "time" for name in (spec.filter_field, spec.time_field) if name}


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


# -- intervals: half-open [lo, hi) ranges of epoch ms ------------------------------------------------------------


def normalise(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-empty intervals covering the same instants."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(i for i in intervals if i[0] < i[1]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def intersect(left: Intervals, right: Intervals) -> list[tuple[int, int]]:
    """The instants in both."""
    return normalise([(max(a, c), min(b, d)) for a, b in left for c, d in right])


def _contains(intervals: Intervals, value: int) -> bool:
    position = bisect.bisect_right(intervals, (value, INF_MS + 1)) - 1
    return position >= 0 and intervals[position][0] <= value < intervals[position][1]


@dataclass(frozen=True)
class Query:
    """Which records of a windowed service, and the instant alerts are shown as of (`now`).

    Those whose timestamp is in `times`, stored (``created``) in `stored` and, when `resolved` is given, resolved
    (alerts: ``resolveTime``) in it by `now`.

    Visibility (stored by now) and retention are the caller's: ``stored`` clipped at now, ``times`` at what is kept.
    """

    times: tuple[tuple[int, int], ...] = ALL
    stored: tuple[tuple[int, int], ...] = ALL
    resolved: tuple[tuple[int, int], ...] | None = None
    now: int = INF_MS

    @classmethod
    def of(
        cls,
        times: Intervals = ALL,
        stored: Intervals = ALL,
        resolved: Intervals | None = None,
        now: int = INF_MS,
    ) -> Query:
        """A query from any interval lists (normalised here)."""
        return cls(
            tuple(normalise(times)),
            tuple(normalise(stored)),
            None if resolved is None else tuple(normalise(resolved)),
            now,
        )


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


# -- delay classes -------------------------------------------------------------------------------------------


class _LateClass:
    """A late delay class in one stream: ``created = ts + min + span * ((ts + phase) % tooth) // tooth``.

    Its members are the ordinals whose residue modulo `period` is in `offsets` (sorted). ``created`` increases with
    the timestamp inside a tooth, so the timestamps a range of ``created`` covers are one interval per tooth.
    """

    __slots__ = ("min", "offsets", "period", "phase", "span", "tooth")

    def __init__(self, low: int, span: int, period: int, offsets: Sequence[int], phase_seed: int) -> None:
        self.min, self.span, self.period = low, span, period
        self.offsets = tuple(sorted(offsets))
        # A tooth of an eighth of the span (at least a second): eight rises from min to max per span of timestamps.
        self.tooth = max(span // 8, 1_000) if span else 1
        self.phase = phase_seed % self.tooth

    def created(self, ts: int) -> int:
        if not self.span:
            return ts + self.min
        return ts + self.min + self.span * ((ts + self.phase) % self.tooth) // self.tooth

    def _first_reaching(self, lo: int, hi: int, target: int) -> int:
        """The first timestamp in ``[lo, hi)`` (inside one tooth) stored at or after `target`; `hi` when none is."""
        while lo < hi:
            middle = (lo + hi) // 2
            if self.created(middle) >= target:
                hi = middle
            else:
                lo = middle + 1
        return lo

    def pieces(self, clo: int, chi: int, lo: int, hi: int, monotone: bool = True) -> list[tuple[int, int]]:
        """The timestamps in ``[lo, hi)`` whose records (of this class) are stored in ``[clo, chi)``, in order.

        With `monotone`, one interval per tooth, inside which ``created`` increases with the timestamp; without, the
        teeth stored wholly inside the range come as one interval (only the edges are searched, tooth by tooth).
        """
        lo, hi = max(lo, clo - self.min - self.span), min(hi, chi - self.min)
        if lo >= hi:
            return []
        if not self.span:
            return [(lo, hi)]
        if monotone:
            return self._teeth(lo, hi, clo, chi)
        sure_lo, sure_hi = max(lo, clo - self.min), min(hi, chi - self.min - self.span)
        if sure_lo >= sure_hi:
            return self._teeth(lo, hi, clo, chi)
        return [*self._teeth(lo, sure_lo, clo, chi), (sure_lo, sure_hi), *self._teeth(sure_hi, hi, clo, chi)]

    def _teeth(self, lo: int, hi: int, clo: int, chi: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        tooth, phase = self.tooth, self.phase
        k = (lo + phase) // tooth
        while True:
            t_lo, t_hi = max(lo, k * tooth - phase), min(hi, (k + 1) * tooth - phase)
            if t_lo >= hi:
                return out
            # A tooth stored entirely inside the range needs no search.
            if self.created(t_lo) >= clo and self.created(t_hi - 1) < chi:
                out.append((t_lo, t_hi))
            else:
                first = self._first_reaching(t_lo, t_hi, clo)
                stop = self._first_reaching(first, t_hi, chi)
                if first < stop:
                    out.append((first, stop))
            k += 1

    def count(self, first: int, stop: int) -> int:
        """Members among ordinals ``[first, stop)``."""
        if first >= stop:
            return 0
        period, offsets = self.period, self.offsets

        def below(x: int) -> int:
            return (x // period) * len(offsets) + bisect.bisect_left(offsets, x % period)

        return below(stop) - below(first)

    def members(self, first: int, stop: int, reverse: bool) -> Iterator[int]:
        """The member ordinals in ``[first, stop)``, ascending (or descending)."""
        if first >= stop or not self.offsets:
            return
        period, offsets = self.period, self.offsets
        if reverse:
            block = (stop - 1) // period * period
            position = bisect.bisect_left(offsets, stop - block) - 1
            while True:
                while position >= 0:
                    ordinal = block + offsets[position]
                    if ordinal < first:
                        return
                    yield ordinal
                    position -= 1
                block -= period
                position = len(offsets) - 1
                if block + period <= first:
                    return
        else:
            block = first // period * period
            position = bisect.bisect_left(offsets, first - block)
            while True:
                while position < len(offsets):
                    ordinal = block + offsets[position]
                    if ordinal >= stop:
                        return
                    yield ordinal
                    position += 1
                block += period
                position = 0
                if block >= stop:
                    return


@dataclass(frozen=True)
class _Pattern:
    """Which delay class each ordinal falls in: ``table[(ordinal + shift) % period]`` (0: on time)."""

    period: int
    table: bytes
    residues: tuple[tuple[int, ...], ...]  # per late class, the residues of its members (before the shift)
    shifted: bool  # whether each stream shifts the pattern (the forced one does not: "every Nth record")

    @classmethod
    def of(cls, timing: Timing, seed: int, service: str) -> _Pattern:
        if timing.forced_every:
            every = timing.forced_every
            return cls(every, bytes([0] * (every - 1) + [1]), ((every - 1,),), False)
        if not timing.late:
            return cls(1, b"\0", (), False)
        period = PATTERN_PERIOD
        order = list(range(period))
        random.Random(stable_hash(seed, service, "pattern")).shuffle(order)
        table = bytearray(period)
        residues: list[tuple[int, ...]] = []
        taken = 0
        for number, fraction in enumerate(timing.late_fractions, start=1):
            size = round(fraction * period)
            members = order[taken : taken + size]
            taken += size
            for residue in members:
                table[residue] = number
            residues.append(tuple(members))
        return cls(period, bytes(table), tuple(residues), True)


# -- streams -------------------------------------------------------------------------------------------------


class _Stream:
    """One segment or rate of a service, able to count, walk and enumerate its records inside a time range."""

    def __init__(self, service: str, seed: int, number: int, timing: Timing, pattern: _Pattern) -> None:
        self.number = number
        # `_id` = 8 hex epoch seconds + 4 hex stream tag + 12 hex (base + index): unique across streams (the
        # tag differs: 7967 is odd, so tags are distinct for the first 65,536 streams), increasing with the
        # index inside a second, hence sorted like the records themselves.
        self.tag = (stable_hash(seed, service, "tag") + number * 7967) & 0xFFFF
        self.base = stable_hash(seed, service, number, "base") & _MASK40
        self.key = stable_hash(seed, service, number, "key")
        self.rule = _RULES[timing.on_time_rule]
        self.on_time = timing.on_time
        self.salt = stable_hash(seed, service, number, "delay")
        self.scan_interval = timing.scan_interval_ms
        apps = len(records.FILE_APPS)
        self.scan_offsets = tuple(stable_hash(seed, service, "scan", app) % self.scan_interval for app in range(apps))
        self.period, self.table = pattern.period, pattern.table
        self.shift = stable_hash(seed, service, number, "shift") % pattern.period if pattern.shifted else 0
        self.late = [
            _LateClass(low, span, pattern.period, [(r - self.shift) % pattern.period for r in residues], phase)
            for (low, span), residues, phase in zip(
                timing.late,
                pattern.residues,
                [stable_hash(seed, service, number, "phase", c) for c in range(len(timing.late))],
                strict=True,
            )
        ]

    def record_hash(self, segment: int, index: int) -> int:
        """The 64-bit seed of one record's content."""
        return mix64(self.key ^ (segment * _SEGMENT_MUL) ^ (index * _INDEX_MUL))

    # Positions: to be given by each kind of stream.

    def count(self, lo: int, hi: int) -> int:
        """Records with a timestamp in ``[lo, hi)``."""
        raise NotImplementedError

    def runs(self, lo: int, hi: int, reverse: bool) -> Iterator[tuple[int, int, int, int]]:
        """(timestamp, segment, a, b) per same-timestamp run of records a..b-1 inside ``[lo, hi)``."""
        raise NotImplementedError

    def ordinal_base(self, segment: int) -> int:
        """The ordinal of record 0 of `segment` (ordinals number a stream's records in timestamp order)."""
        raise NotImplementedError

    def ordinal_at(self, ts: int) -> int:
        """The ordinal of the first record with a timestamp >= `ts` (records before `ts` have smaller ones)."""
        raise NotImplementedError

    def locate(self, ordinal: int) -> tuple[int, int, int]:
        """(timestamp, segment, index) of the record with that ordinal."""
        raise NotImplementedError

    # Classes and delays.

    def class_of(self, segment: int, index: int) -> int:
        """The delay class of a record: 0 on time, else 1 + its late class's position."""
        if self.period == 1:
            return 0
        return self.table[(self.ordinal_base(segment) + index + self.shift) % self.period]

    def created(self, ts: int, segment: int, index: int) -> int:
        """When the record is stored. The walks inline this; it is the reference."""
        kind = self.class_of(segment, index)
        if kind:
            return self.late[kind - 1].created(ts)
        if self.rule == _INSTANT:
            return ts
        if self.rule == _HASHED:
            low, high = self.on_time
            ordinal = self.ordinal_base(segment) + index
            return ts + low + ((((ordinal ^ self.salt) * _DELAY_MUL) & _MASK64) >> 20) % (high - low + 1)
        offset = self.scan_offsets[records.file_app(self.record_hash(segment, index))]
        return ts + self.scan_interval - (ts - offset) % self.scan_interval

    def walk(self, lo: int, hi: int, reverse: bool, c_lo: int, c_hi: int, on_time_only: bool) -> Iterator[Entry]:
        """The records in ``[lo, hi)`` stored in ``[c_lo, c_hi)`` (only on-time ones with `on_time_only`).

        The inner loop of most pages, hence the inlined delays of :meth:`created`.
        """
        tag, base, number = self.tag, self.base, self.number
        if self.rule == _INSTANT and self.period == 1:  # the instant model: the benchmarks' path
            for ts, segment, first, stop in self.runs(lo, hi, reverse):
                head = f"{ts // 1000:08x}{tag:04x}"
                if not c_lo <= ts < c_hi:  # stored the instant it happens: created is the timestamp
                    continue
                for index in range(stop - 1, first - 1, -1) if reverse else range(first, stop):
                    yield ts, f"{head}{base + index:012x}", number, segment, index, ts
            return
        rule, (low, high), salt = self.rule, self.on_time, self.salt
        spread = high - low + 1
        table, period, shift, late = self.table, self.period, self.shift, self.late
        interval, offsets, key, file_app = self.scan_interval, self.scan_offsets, self.key, records.file_app
        last_segment, ordinal_base = -1, 0
        for ts, segment, first, stop in self.runs(lo, hi, reverse):
            if segment != last_segment:
                last_segment, ordinal_base = segment, self.ordinal_base(segment)
            head = f"{ts // 1000:08x}{tag:04x}"
            for index in range(stop - 1, first - 1, -1) if reverse else range(first, stop):
                ordinal = ordinal_base + index
                kind = table[(ordinal + shift) % period] if period > 1 else 0
                if kind:
                    if on_time_only:
                        continue
                    created = late[kind - 1].created(ts)
                elif rule == _HASHED:
                    created = ts + low + ((((ordinal ^ salt) * _DELAY_MUL) & _MASK64) >> 20) % spread
                elif rule == _INSTANT:
                    created = ts
                else:
                    record_hash = mix64(key ^ (segment * _SEGMENT_MUL) ^ (index * _INDEX_MUL))
                    created = ts + interval - (ts - offsets[file_app(record_hash)]) % interval
                if c_lo <= created < c_hi:
                    yield ts, f"{head}{base + index:012x}", number, segment, index, created

    def late_entries(self, kind: int, pieces: Iterable[tuple[int, int]], reverse: bool) -> Iterator[Entry]:
        """The records of late class `kind` (1-based) with a timestamp in `pieces` (in the order given)."""
        late = self.late[kind - 1]
        tag, base, number = self.tag, self.base, self.number
        for lo, hi in pieces:
            for ordinal in late.members(self.ordinal_at(lo), self.ordinal_at(hi), reverse):
                ts, segment, index = self.locate(ordinal)
                yield ts, f"{ts // 1000:08x}{tag:04x}{base + index:012x}", number, segment, index, late.created(ts)

    def late_count(self, kind: int, lo: int, hi: int) -> int:
        """Records of late class `kind` with a timestamp in ``[lo, hi)``."""
        if lo >= hi:
            return 0
        return self.late[kind - 1].count(self.ordinal_at(lo), self.ordinal_at(hi))

    def on_time_count(self, lo: int, hi: int) -> int:
        """On-time records with a timestamp in ``[lo, hi)``: arithmetic."""
        if lo >= hi:
            return 0
        total = self.count(lo, hi)
        return total - sum(self.late_count(kind, lo, hi) for kind in range(1, len(self.late) + 1))


class _SegmentStream(_Stream):
    def __init__(self, service: str, seed: int, number: int, spec: Segment, timing: Timing, pattern: _Pattern) -> None:
        super().__init__(service, seed, number, timing, pattern)
        self.layout = _Layout(spec.start_ms, spec.end_ms, spec.count, _prefix(spec.cluster_sizes))

    def count(self, lo: int, hi: int) -> int:
        return max(0, self.layout.index_at(hi) - self.layout.index_at(lo))

    def runs(self, lo: int, hi: int, reverse: bool) -> Iterator[tuple[int, int, int, int]]:
        for ts, first, stop in self.layout.runs(self.layout.index_at(lo), self.layout.index_at(hi), reverse):
            yield ts, 0, first, stop

    def ordinal_base(self, segment: int) -> int:
        return 0

    def ordinal_at(self, ts: int) -> int:
        return self.layout.index_at(ts)

    def locate(self, ordinal: int) -> tuple[int, int, int]:
        return self.layout.ts_of_cluster(self.layout.cluster_of(ordinal)), 0, ordinal


class _RateStream(_Stream):
    """Hour h is the segment ``[h*HOUR, (h+1)*HOUR)``; its count follows a seeded weekly pattern."""

    def __init__(self, service: str, seed: int, number: int, spec: Rate, timing: Timing, pattern: _Pattern) -> None:
        super().__init__(service, seed, number, timing, pattern)
        self.prefix = _prefix(spec.cluster_sizes)
        self.start = spec.start_ms if spec.start_ms is not None else 0
        self.end = spec.end_ms if spec.end_ms is not None else INF_MS
        counts = []
        for slot in range(_WEEK_HOURS):
            wobble = (stable_hash(seed, service, number, slot) % 10_001) / 10_000  # 0..1
            counts.append(max(0, round(spec.records_per_hour * (0.8 + 0.4 * wobble))))
        self.hour_counts = tuple(counts)
        self.week_prefix = _prefix(self.hour_counts)
        self._layouts: dict[int, _Layout] = {}

    def hour_layout(self, hour: int) -> _Layout:
        layout = self._layouts.get(hour)
        if layout is None:
            start = hour * HOUR_MS
            layout = _Layout(start, start + HOUR_MS, self.hour_counts[hour % _WEEK_HOURS], self.prefix)
            if len(self._layouts) > 4096:  # a small cache: a page touches a few hours
                self._layouts.clear()
            self._layouts[hour] = layout
        return layout

    def ordinal_base(self, segment: int) -> int:
        weeks, slot = divmod(segment, _WEEK_HOURS)
        return weeks * self.week_prefix[-1] + self.week_prefix[slot]

    def _before(self, ts: int) -> int:
        """Records of the unclipped rate with a timestamp < `ts`."""
        hour = ts // HOUR_MS
        return self.ordinal_base(hour) + self.hour_layout(hour).index_at(ts)

    def ordinal_at(self, ts: int) -> int:
        return self._before(min(max(ts, self.start), self.end))

    def locate(self, ordinal: int) -> tuple[int, int, int]:
        weeks, rest = divmod(ordinal, self.week_prefix[-1])
        slot = bisect.bisect_right(self.week_prefix, rest) - 1
        hour, index = weeks * _WEEK_HOURS + slot, rest - self.week_prefix[slot]
        layout = self.hour_layout(hour)
        return layout.ts_of_cluster(layout.cluster_of(index)), hour, index

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


# -- ordering helpers ------------------------------------------------------------------------------------------


def _merge(streams: list[Iterator[Any]], reverse: bool, key: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    if not streams:
        return iter(())
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=key, reverse=reverse)


def _nearly_sorted(
    items: Iterable[Any],
    ts_of: Callable[[Any], int],
    key: Callable[[Any], Any],
    lags: tuple[int, int],
    reverse: bool,
    value: Callable[[Any], int] | None = None,
) -> Iterator[Any]:
    """`items` of one stream (in timestamp order, or its reverse) re-ordered by `key`, ties kept in their order.

    An item's key (its `value`, when the key is a tuple led by it) lies within `lags` of its timestamp, so an item
    is released once no later item can come before it. Memory: the items within the lags. In one stream, timestamp
    order is ``_id`` order (``_id`` is the second, the stream's tag and its index), so with a key of one stream's
    ``created`` alone the ties come out by ``_id``, as MDCA orders them.
    """
    low, high = lags
    value = value or key
    buffer: list[Any] = []
    pending = 0
    for item in items:
        buffer.append(item)
        pending += 1
        if pending < 1024:
            continue
        pending = 0
        buffer.sort(key=key, reverse=reverse)  # stable: ties keep their order, which is `_id` order in a stream
        if reverse:
            bound = ts_of(item) + high  # no later item has a key above it
            cut = 0
            while cut < len(buffer) and value(buffer[cut]) > bound:
                cut += 1
        else:
            bound = ts_of(item) + low  # no later item has a key below it
            cut = bisect.bisect_left(buffer, bound, key=value)
        yield from buffer[:cut]
        del buffer[:cut]
    buffer.sort(key=key, reverse=reverse)
    yield from buffer


# -- services ------------------------------------------------------------------------------------------------


class TimeSeriesData:
    """All records of one windowed service of one tenant: counting, ordered walking and record building.

    `timing` says when each record is stored and how alerts change (``timing.py``); without it the service follows
    the instant model, with every `late_every`-th record of each stream stored `late_by_ms` after its timestamp
    (with a `timing`, those two are its own).
    """

    def __init__(
        self,
        service: str,
        seed: int,
        specs: Iterable[Segment | Rate],
        late_every: int | None = None,
        late_by_ms: int = 0,
        *,
        timing: Timing | None = None,
    ) -> None:
        spec = services.get(service)
        if spec.filter_field is None or spec.time_field is None:
            raise ValueError(f"{service} is a snapshot, not a windowed service")
        self.service = service
        self.timing = timing if timing is not None else Timing.instant(late_every, late_by_ms)
        pattern = _Pattern.of(self.timing, seed, service)
        self.streams: list[_Stream] = [
            _SegmentStream(service, seed, number, spec, self.timing, pattern)
            if isinstance(spec, Segment)
            else _RateStream(service, seed, number, spec, self.timing, pattern)
            for number, spec in enumerate(specs)
        ]
        self.spec = records.SHAPES[service]
        self.min_delay, self.max_delay = self.timing.min_delay, self.timing.max_delay

    # -- compatibility: by timestamp, visible by `now_ms` ------------------------------------------------------

    def count(self, intervals: Intervals) -> int:
        """How many records (stored or not) have a timestamp inside `intervals` (half-open ranges)."""
        return sum(stream.count(lo, hi) for lo, hi in intervals for stream in self.streams)

    def created(self, entry: Entry) -> int:
        """When the record of `entry` is stored (also ``entry[5]``)."""
        return self.streams[entry[2]].created(entry[0], entry[3], entry[4])

    def entries(
        self,
        intervals: Intervals = ALL,
        now_ms: int | None = None,
        reverse: bool = False,
        *,
        skip: int = 0,
    ) -> Iterator[Entry]:
        """The records with a timestamp inside `intervals`, in (timestamp, ``_id``) order (or the reverse).

        With `now_ms`, only those already stored then (``created <= now_ms``): the records MDCA would show.
        """
        stored = ALL if now_ms is None else ((0, now_ms + 1),)
        return self.select(Query.of(intervals, stored), reverse=reverse, skip=skip)

    # -- queries -----------------------------------------------------------------------------------------------

    def _times(self, query: Query) -> list[tuple[int, int]]:
        """The timestamps where the query's records can be: its `times`, cut to what its other bounds allow."""
        times = list(query.times)
        if query.stored:
            low, high = query.stored[0][0], query.stored[-1][1]
            times = intersect(times, [(low - self.max_delay, high - self.min_delay)])
        else:
            return []
        changes = self.timing.changes
        if query.resolved is not None:
            if changes is None or not query.resolved:
                return []
            low, high = query.resolved[0][0], query.resolved[-1][1]
            times = intersect(times, [(low - changes.max_delay_ms, high - changes.min_delay_ms)])
        return times

    def select(self, query: Query, order: str = "time", reverse: bool = False, *, skip: int = 0) -> Iterator[Entry]:
        """The query's records in `order`, or the reverse.

        Orders: ``"time"`` (timestamp, ``_id``), ``"stored"`` (created, ``_id``) or ``"resolved"`` (alerts:
        resolveTime, ``_id``; the unresolved ones after, by timestamp).

        `skip` drops the first records like ``itertools.islice``; by timestamp it counts its way over runs of records
        that are certainly in the query instead of walking them, so a page deep into a window costs about what the
        first one does.
        """
        times = self._times(query)
        if not times:
            return iter(())
        if order == "resolved":
            found = self._by_resolution(query, times, reverse)
        elif order == "stored":
            found = self._by_created(query, times, reverse)
        elif query.resolved is None:
            return self._by_time(query, times, reverse, skip)
        else:
            found = self._resolved_in(query, self._by_time(query, times, reverse, 0))
        return itertools.islice(found, skip, None) if skip else found

    def _check(self, query: Query) -> tuple[int, int, Callable[[Entry], bool] | None]:
        """The hull of `stored` and, when it has gaps, the exact test."""
        stored = query.stored
        if len(stored) == 1:
            return stored[0][0], stored[0][1], None
        return stored[0][0], stored[-1][1], lambda entry: _contains(stored, entry[5])

    def _by_time(self, query: Query, times: list[tuple[int, int]], reverse: bool, skip: int) -> Iterator[Entry]:
        c_lo, c_hi, exact = self._check(query)
        late = self.timing.late and c_lo > 0  # a created range: late records are enumerated, not walked
        for lo, hi in reversed(times) if reverse else times:
            if late:
                walk = self._time_walk_by_class(query, lo, hi, reverse)
                found: Iterator[Entry] = filter(exact, walk) if exact else walk
                if skip:
                    skip -= sum(1 for _ in itertools.islice(found, skip))
                yield from found
                continue
            # Records whose every possible created lies inside the hull are certainly in: count over them.
            sure_lo, sure_hi = max(lo, c_lo - self.min_delay), min(hi, c_hi - self.max_delay)
            parts = (
                [(lo, hi, False)]
                if exact or sure_lo >= sure_hi
                else [
                    (lo, sure_lo, False),
                    (sure_lo, sure_hi, True),
                    (sure_hi, hi, False),
                ]
            )
            for part_lo, part_hi, countable in reversed(parts) if reverse else parts:
                if part_lo >= part_hi:
                    continue
                if skip and countable:
                    part_lo, part_hi, jumped = self._jump(part_lo, part_hi, reverse, skip)
                    skip -= jumped
                walks = [stream.walk(part_lo, part_hi, reverse, c_lo, c_hi, False) for stream in self.streams]
                found = _merge(walks, reverse)
                if exact:
                    found = filter(exact, found)
                if skip:  # what is left to skip lies in the walk's first few records (or in an uncountable part)
                    skip -= sum(1 for _ in itertools.islice(found, skip))
                yield from found

    def _time_walk_by_class(self, query: Query, lo: int, hi: int, reverse: bool) -> Iterator[Entry]:
        """The records of ``[lo, hi)`` stored in the query's range, class by class, merged by timestamp."""
        low, high = self.timing.on_time
        c_lo, c_hi = query.stored[0][0], query.stored[-1][1]
        walks: list[Iterator[Entry]] = []
        for stream in self.streams:
            for a, b in intersect([(lo, hi)], [(c_lo - high, c_hi - low)]):
                walks.append(stream.walk(a, b, reverse, c_lo, c_hi, True))
            for kind, late in enumerate(stream.late, start=1):
                pieces = normalise(p for a, b in query.stored for p in late.pieces(a, b, lo, hi, monotone=False))
                walks.append(stream.late_entries(kind, reversed(pieces) if reverse else pieces, reverse))
        return _merge(walks, reverse)

    def _by_created(self, query: Query, times: list[tuple[int, int]], reverse: bool) -> Iterator[Entry]:
        low, high = self.timing.on_time
        stored = list(reversed(query.stored)) if reverse else list(query.stored)
        for c_lo, c_hi in stored:
            walks: list[Iterator[Entry]] = []
            for stream in self.streams:
                on_time = [
                    stream.walk(a, b, reverse, c_lo, c_hi, True)
                    for a, b in intersect(times, [(c_lo - high, c_hi - low)])
                ]
                if on_time:
                    chained = itertools.chain.from_iterable(reversed(on_time) if reverse else on_time)
                    walks.append(_nearly_sorted(chained, _ts, _CREATED, (low, high), reverse))
                for kind, late in enumerate(stream.late, start=1):
                    for t_lo, t_hi in times:
                        pieces = late.pieces(c_lo, c_hi, t_lo, t_hi)
                        walks.extend(stream.late_entries(kind, [piece], reverse) for piece in pieces)
            found = _merge(walks, reverse, _BY_CREATED)
            yield from (self._resolved_in(query, found) if query.resolved is not None else found)

    def _resolved_in(self, query: Query, entries: Iterable[Entry]) -> Iterator[Entry]:
        changes, resolved, now = self.timing.changes, query.resolved, query.now
        assert changes is not None and resolved is not None
        for entry in entries:
            at = changes.resolve_time(self.streams[entry[2]].record_hash(entry[3], entry[4]), entry[0])
            if at is not None and at <= now and _contains(resolved, at):
                yield entry

    def _by_resolution(self, query: Query, times: list[tuple[int, int]], reverse: bool) -> Iterator[Entry]:
        """Resolved alerts by resolveTime, then (unless a resolutionDate filter excludes them) the others by time."""
        changes, now = self.timing.changes, query.now
        walk = self._by_time(query, times, reverse, 0)
        if changes is None:  # nothing is ever resolved: every alert is among "the others"
            yield from walk if query.resolved is None else ()
            return
        resolved = query.resolved

        def keyed() -> Iterator[tuple[int, str, Entry]]:
            for entry in self._by_time(query, times, reverse, 0):
                at = changes.resolve_time(self.streams[entry[2]].record_hash(entry[3], entry[4]), entry[0])
                if at is not None and at <= now and (resolved is None or _contains(resolved, at)):
                    yield at, entry[1], entry

        lags = (changes.min_delay_ms, changes.max_delay_ms)
        ordered = _nearly_sorted(keyed(), _item_ts, _BY_KEY, lags, reverse, _KEY)
        done = (item[2] for item in ordered)
        if resolved is not None:
            yield from done
            return

        def unresolved() -> Iterator[Entry]:
            for entry in walk:
                at = changes.resolve_time(self.streams[entry[2]].record_hash(entry[3], entry[4]), entry[0])
                if at is None or at > now:
                    yield entry

        first, then = (unresolved(), done) if reverse else (done, unresolved())
        yield from first
        yield from then

    def count_query(self, query: Query) -> int:
        """How many records the query holds.

        Arithmetic but for the on-time records at the edges of its ``created`` range, which are walked (and for
        alerts selected by resolution, walked too: at most their longest resolution back).
        """
        times = self._times(query)
        if not times:
            return 0
        if query.resolved is not None:
            return sum(1 for _ in self.select(query))
        low, high = self.timing.on_time
        total = 0
        for c_lo, c_hi in query.stored:
            region = intersect(times, [(c_lo - high, c_hi - low)])
            core_lo, core_hi = c_lo - low, c_hi - high  # every on-time record there is stored in [c_lo, c_hi)
            for stream in self.streams:
                for lo, hi in region:
                    a, b = max(lo, core_lo), min(hi, core_hi)
                    if a < b:
                        total += stream.on_time_count(a, b)
                        edges = [(lo, a), (b, hi)]
                    else:
                        edges = [(lo, hi)]
                    for edge_lo, edge_hi in edges:
                        if edge_lo < edge_hi:
                            total += sum(1 for _ in stream.walk(edge_lo, edge_hi, False, c_lo, c_hi, True))
                for kind, late in enumerate(stream.late, start=1):
                    for t_lo, t_hi in times:
                        pieces = late.pieces(c_lo, c_hi, t_lo, t_hi, monotone=False)
                        total += sum(stream.late_count(kind, lo, hi) for lo, hi in pieces)
        return total

    def _jump(self, lo: int, hi: int, reverse: bool, skip: int) -> tuple[int, int, int]:
        """Jump over at most `skip` records at the start of ``[lo, hi)`` (its end when `reverse`).

        Returns the part still to walk and how many records were jumped. The cut is a timestamp: the one
        found by binary search that jumps as many records as possible without jumping more than `skip`. Only
        for a range where every record is in the query, so that counting records is counting entries.
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

    # -- records -----------------------------------------------------------------------------------------------

    def alert_states(self, entry: Entry) -> list[AlertState]:
        """Every state the alert of `entry` takes (one, never changing, without alert changes)."""
        changes = self.timing.changes
        if changes is None:
            return [AlertState(entry[5], 0, 0, None, None, "")]
        return changes.states(self._hash(entry), entry[0], entry[5])

    def _extra(self, record_hash: int, entry: Entry, now: int) -> AlertState | None:
        changes = self.timing.changes
        return None if changes is None else changes.state_at(record_hash, entry[0], entry[5], now)

    def build(self, entry: Entry, now: int = INF_MS) -> dict[str, Any]:
        """The full record for `entry` as of `now` (alerts change): a pure function of the seed and the position."""
        record_hash = self._hash(entry)
        return self.spec.build(record_hash, entry[1], entry[0], entry[5], self._extra(record_hash, entry, now))

    def render(self, entry: Entry, now: int = INF_MS) -> str:
        """The record's compact JSON text (the very bytes ``json.dumps(build(entry), ...)`` writes)."""
        record_hash = self._hash(entry)
        return self.spec.render(record_hash, entry[1], entry[0], entry[5], self._extra(record_hash, entry, now))

    def render_page(self, entries: Iterable[Entry], now: int = INF_MS) -> bytes:
        """The records of `entries` as comma-separated compact JSON in UTF-8: the inside of a page's array.

        The hot path of scan pages: locals and one inlined hash per record instead of method calls, and small
        per-record encodes (mostly ASCII, so cheap) instead of one huge, wide string.
        """
        render, keys = self.spec.render, [stream.key for stream in self.streams]
        texts = []
        changes = self.timing.changes
        if changes is None:
            for ts, _id, number, segment, index, created in entries:
                record_hash = mix64(keys[number] ^ (segment * _SEGMENT_MUL) ^ (index * _INDEX_MUL))
                texts.append(render(record_hash, _id, ts, created).encode())
        else:
            for ts, _id, number, segment, index, created in entries:
                record_hash = mix64(keys[number] ^ (segment * _SEGMENT_MUL) ^ (index * _INDEX_MUL))
                state = changes.state_at(record_hash, ts, created, now)
                texts.append(render(record_hash, _id, ts, created, state).encode())
        return b",".join(texts)

    def _hash(self, entry: Entry) -> int:
        return self.streams[entry[2]].record_hash(entry[3], entry[4])


def _ts(entry: Entry) -> int:
    return entry[0]


def _item_ts(item: tuple[int, str, Entry]) -> int:
    return item[2][0]


# -- snapshots -------------------------------------------------------------------------------------------------

#: The instant a changing collection's arrivals are counted from (far before any data): record k arrived
#: ``k * gap`` after it.
_COLLECTION_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


class SnapshotData:
    """A snapshot service (read whole, no window), in ``_id`` order.

    Without `lifetimes` the collection is records ``0..count-1``, always there. With `lifetimes` (ms, min and max) it
    changes with the clock: record k joins at ``epoch + k * gap`` and leaves after a lifetime drawn in `lifetimes`,
    with the gap set so that about `count` records are there at any time (as many join as leave: a few a day).
    ``_id`` order is arrival order (so is ``date`` for entities): newcomers sort last.
    """

    def __init__(self, service: str, seed: int, count: int, lifetimes: tuple[int, int] | None = None) -> None:
        if services.get(service).windowed:
            raise ValueError(f"{service} is a windowed service, not a snapshot")
        self.service, self.count, self.lifetimes = service, count, lifetimes
        self.prefix = stable_hash(seed, service, "prefix") & 0xFFFFFFFF
        self.key = stable_hash(seed, service, "key")
        self.spec = records.SHAPES[service]
        self.gap = 1
        if lifetimes is not None and count:
            shortest, longest = lifetimes
            self.gap = max(1, (shortest + longest) // 2 // count)

    @property
    def total(self) -> int:
        """The record count of a collection that never changes (`count`)."""
        return self.count

    def arrival(self, index: int) -> int:
        """When record `index` joined the collection (changing collections)."""
        return _COLLECTION_EPOCH_MS + index * self.gap

    def departure(self, index: int) -> int:
        """When record `index` leaves the collection (changing collections)."""
        assert self.lifetimes is not None
        shortest, longest = self.lifetimes
        return self.arrival(index) + shortest + self._hash(index) % (longest - shortest + 1)

    def present(self, now: int) -> Sequence[int]:
        """The indices of the records in the collection at `now`, ascending (``_id`` order)."""
        if self.lifetimes is None:
            return range(self.count)
        if not self.count or now < _COLLECTION_EPOCH_MS:
            return []
        newest = (now - _COLLECTION_EPOCH_MS) // self.gap
        oldest = max(0, (now - self.lifetimes[1] - _COLLECTION_EPOCH_MS) // self.gap)
        return [index for index in range(oldest, newest + 1) if self.departure(index) > now]

    def record_id(self, index: int) -> str:
        """``_id`` of record `index`: a constant prefix then the index, so ``_id`` order is index order."""
        return f"{self.prefix:08x}{index:016x}"

    def index_bound(self, record_id: str, inclusive: bool = False) -> int:
        """How many indices have an ``_id`` sorting before `record_id` (any text), or not after it (`inclusive`)."""
        low, high = 0, 1 << 64
        while low < high:
            middle = (low + high) // 2
            mine = self.record_id(middle)
            if mine < record_id or (inclusive and mine == record_id):
                low = middle + 1
            else:
                high = middle
        return low

    def _seen(self, index: int, now: int) -> tuple[int, int] | None:
        if self.lifetimes is None:
            return None
        first = self.arrival(index)
        last = first + mix64(self._hash(index)) % max(1, min(now, self.departure(index)) - first + 1)
        return first, min(last, now)

    def build(self, index: int, now: int = INF_MS) -> dict[str, Any]:
        """Record `index` (as of `now`, for a changing collection)."""
        return self.spec.build(self._hash(index), self.record_id(index), index, 0, self._seen(index, now))

    def render(self, index: int, now: int = INF_MS) -> str:
        """Record `index` as compact JSON text."""
        return self.spec.render(self._hash(index), self.record_id(index), index, 0, self._seen(index, now))

    def render_page(self, indices: Iterable[int], now: int = INF_MS) -> bytes:
        """Records `indices` as comma-separated compact JSON in UTF-8."""
        return b",".join([self.render(index, now).encode() for index in indices])

    def _hash(self, index: int) -> int:
        return mix64(self.key ^ (index * _INDEX_MUL))
