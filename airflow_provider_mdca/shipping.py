"""The ship step: a staged window's events to Devo, each once, and the window marked delivered.

Exactly once per window rests on the window's delivery ledger: what Devo acknowledged is recorded batch by batch, so a
retry resumes after the last acknowledged batch, and a rerun of the window skips every event delivered before, unless
asked to re-ship. An event's ledger key is the record's ``_id``; a flattened alert's events are ``<_id>#<n>`` (the
n-th event of that alert, stable because flattening is deterministic; :mod:`airflow_provider_mdca.event_keys`). One
shipper ships a window at a time (:class:`~airflow_provider_mdca.staging.lease.WindowLease`). Imports nothing from
Airflow: ``DevoShipOperator`` is a thin adapter over :func:`ship_stage`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from airflow_provider_mdca import event_keys
from airflow_provider_mdca.devo.sender import DeliveryStats
from airflow_provider_mdca.event_keys import EventKeys
from airflow_provider_mdca.pipeline import FLATTENED, OBFUSCATION_KEY, warn_unmatched, window_of
from airflow_provider_mdca.staging import (
    MANIFEST_NAME,
    DeliveryLedger,
    Manifest,
    P,
    PartInfo,
    StagingError,
    StoragePath,
    mark_window_delivered,
    read_manifest,
    read_part,
    require_space,
    stage_dir,
)
from airflow_provider_mdca.staging.lease import WindowLease
from airflow_provider_mdca.transforms.obfuscate import Obfuscator

__all__ = ["EventSink", "ShipSummary", "ship_stage"]

# Re-ship runs keep a ledger of their own (so their retries resume) beside the window's main ledger.
_RESHIP_DIR: Final = "reship"
# An event key is an _id (24 hex) or <_id>#<n>, one per line; small files take a block each on most file systems.
_LEDGER_BYTES_PER_EVENT: Final = 48
_LEDGER_BYTES_PER_FILE: Final = 4096
_LEDGER_SLACK: Final = 64 * 1024


@dataclass
class ShipSummary:
    """What a ship step did for one window."""

    service: str
    tag: str
    window_start: str
    window_end: str
    staged: int = 0
    delivered: int = 0
    skipped_delivered_before: int = 0
    parts_skipped: int = 0
    bytes: int = 0
    batches: int = 0
    retries: int = 0
    reship: bool = False
    elapsed_seconds: float = 0.0
    #: Obfuscation rules that reached no field in the window's events (a wrong path, almost always).
    obfuscation_unmatched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict, for logs, the task's return value and the Asset event's extra."""
        return asdict(self)


class EventSink(Protocol):
    """Where shipped events go: :class:`~airflow_provider_mdca.devo.Sender` and ``DevoHook`` have this method."""

    def send(
        self, tag: str, events: Iterable[Mapping[str, Any]], *, on_batch: Callable[[int], None] | None = None
    ) -> DeliveryStats: ...


class _AckTracker:
    """Keys of events handed to the sender, recorded in the ledgers when their batch is acknowledged."""

    def __init__(
        self, ledgers: list[DeliveryLedger[Any]], on_acknowledged: Callable[[int], None] | None = None
    ) -> None:
        self._ledgers = ledgers
        self._on_acknowledged = on_acknowledged
        self._in_flight: deque[str] = deque()
        self.acknowledged = 0

    def handed(self, key: str) -> None:
        self._in_flight.append(key)

    def on_batch(self, count: int) -> None:
        keys = [self._in_flight.popleft() for _ in range(count)]
        for ledger in self._ledgers:
            ledger.record_batch(keys)
        self.acknowledged += count
        if self._on_acknowledged is not None:
            self._on_acknowledged(count)


def ship_stage(
    manifest_path: P,
    sink: EventSink,
    *,
    tag: str,
    obfuscator: Obfuscator | None = None,
    extra_fields: Mapping[str, Any] | None = None,
    reship_run: str | None = None,
    attempt: int | None = None,
    lease: Mapping[str, Any] | None = None,
    on_acknowledged: Callable[[int], None] | None = None,
) -> ShipSummary:
    """Ship the events staged at ``manifest_path`` to ``tag``, each once, and mark the window delivered.

    Parts that the ledger shows fully delivered are skipped unread; in the others, events whose key is in the ledger
    are skipped. ``reship_run`` (a run id) ships everything again, once per run: it keeps a ledger of its own so its
    retries resume, and records into the main ledger too. Static ``extra_fields`` are added to each event (a field
    the record already has wins), then ``obfuscator`` rewrites it, except with the rules the flatten step already
    applied to the window's alerts (its manifest's ``extra.obfuscation``: a rule that reached a field there is not
    applied twice). A rule that reached no field in the window, here or before flattening, is warned about and
    listed in the summary's ``obfuscation_unmatched``.

    Only one shipper ships a window at a time: another waits for its :class:`~.staging.lease.WindowLease` (``lease``:
    its keyword arguments, e.g. ``ttl``), then reads the ledger it completed and sends only what is left.

    ``on_acknowledged(count)`` is told of each batch Devo acknowledged, once the ledger holds it: a try that fails
    later has still delivered those (the delivered-events metric counts them then).

    :raises DeliveryError: delivery failed after the sender's retries; what was acknowledged stays in the ledger.
    """
    began = time.monotonic()
    manifest = read_manifest(manifest_path)
    window = window_of(manifest_path)
    # One shipper at a time per window, and the ledger read only once it holds the window (staging/lease.py).
    with WindowLease(window, **(lease or {})) as held:
        tracking = (reship_run, attempt, on_acknowledged)
        summary = _ship_held(manifest, window, sink, held, tag, obfuscator, extra_fields, *tracking)
        summary.elapsed_seconds = round(time.monotonic() - began, 3)
        mark_window_delivered(window, summary.as_dict())
    return summary


def _ship_held(
    manifest: Manifest,
    window: P,
    sink: EventSink,
    lease: WindowLease,
    tag: str,
    obfuscator: Obfuscator | None,
    extra_fields: Mapping[str, Any] | None,
    reship_run: str | None,
    attempt: int | None,
    on_acknowledged: Callable[[int], None] | None,
) -> ShipSummary:
    folder = stage_dir(window, manifest.stage)
    manifest_path = folder / MANIFEST_NAME
    main = DeliveryLedger(window, attempt=attempt)
    ledgers: list[DeliveryLedger[Any]] = [main]
    if reship_run is not None:
        ledgers.insert(0, DeliveryLedger(window / _RESHIP_DIR / _safe_segment(reship_run), attempt=attempt))
    resume = ledgers[0]  # the ledger that says what this run (or, without re-ship, any run) already delivered
    summary = ShipSummary(
        service=manifest.service,
        tag=tag,
        window_start=manifest.window_start,
        window_end=manifest.window_end,
        staged=manifest.record_count,
        reship=reship_run is not None,
    )
    applied = _applied_obfuscation(manifest, manifest_path)
    if obfuscator is not None and applied:
        obfuscator = obfuscator.without(path for path, reached in applied["matched"].items() if reached)
    pending = resume.pending_parts(manifest.stage, manifest.parts)
    summary.parts_skipped = len(manifest.parts) - len(pending)
    summary.skipped_delivered_before = sum(part.records for part in manifest.parts if part not in pending)
    delivered_before = resume.delivered_ids() if pending else set()
    # An acknowledged batch the ledger could not record would be sent again: room for the ledger first.
    require_space(window, _ledger_bytes(manifest, pending, len(ledgers)), "the delivery ledger of this window")
    tracker = _AckTracker(ledgers, on_acknowledged)
    sent = DeliveryStats()
    for part, keys in _keyed_parts(manifest, folder, pending):
        keyed = ((keys.key(record), record) for record in read_part(folder, part))
        shippable = _new_events(keyed, delivered_before, tracker, summary, extra_fields, obfuscator, lease.check)
        sent.add(sink.send(tag, shippable, on_batch=tracker.on_batch))
        for ledger in ledgers:
            ledger.mark_part_delivered(manifest.stage, part)
    summary.obfuscation_unmatched = _unmatched(applied, obfuscator)
    warn_unmatched(summary.obfuscation_unmatched, manifest, "events shipped")
    summary.delivered = tracker.acknowledged
    summary.bytes, summary.batches, summary.retries = sent.bytes, sent.batches, sent.retries
    return summary


def _ledger_bytes(manifest: Manifest, pending: list[PartInfo], ledgers: int) -> int:
    """Room the ledgers of a ship need: each event's key on a line, per ledger, plus a file per part and batch."""
    events = sum(part.records for part in pending)
    return ledgers * (events * _LEDGER_BYTES_PER_EVENT + len(pending) * _LEDGER_BYTES_PER_FILE) + _LEDGER_SLACK


def _applied_obfuscation(manifest: Manifest, path: StoragePath) -> dict[str, Any] | None:
    """The obfuscation the flatten step applied (``extra.obfuscation``), checked; None when it applied none."""
    record = manifest.extra.get(OBFUSCATION_KEY)
    if record is None:
        return None
    matched = record.get("matched") if isinstance(record, dict) else None
    if (
        not isinstance(matched, dict)
        or not isinstance(record.get("records"), int)
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in matched.values())
    ):
        raise StagingError(f"manifest extra.{OBFUSCATION_KEY} must hold matched {{path: count}} and records", path)
    checked: dict[str, Any] = record
    return checked


def _unmatched(applied: Mapping[str, Any] | None, obfuscator: Obfuscator | None) -> list[str]:
    """The rules that reached no field in the window: neither before flattening nor here (where each looked)."""
    reached: dict[str, bool] = {}
    if applied and applied["records"]:
        reached.update((path, count > 0) for path, count in applied["matched"].items())
    if obfuscator is not None and obfuscator.stats.events:
        for path, count in obfuscator.matched.items():
            reached[path] = reached.get(path, False) or count > 0
    return [path for path, hit in reached.items() if not hit]


def _keyed_parts(manifest: Manifest, folder: P, pending: list[PartInfo]) -> Iterator[tuple[PartInfo, EventKeys]]:
    """The ``pending`` parts, each with the keys its events have (delivered parts are skipped unread).

    A flattened stage's ``<_id>#<n>`` keys count across parts: its manifest says where each part's counts start.
    A stage staged before the manifest said so is counted by reading the skipped parts, as it was then.
    """
    per_alert = manifest.stage == FLATTENED
    offsets = _key_offsets(manifest, folder) if per_alert else {}
    if offsets is not None:
        for part in pending:
            yield part, EventKeys(per_alert=per_alert, offsets=offsets.get(part.name))
        return
    keys = EventKeys(per_alert=True)
    for part in manifest.parts:
        if part in pending:
            yield part, keys
        else:
            for record in read_part(folder, part):  # only to count: the ``#n`` of later parts count these too
                keys.key(record)


def _key_offsets(manifest: Manifest, folder: StoragePath) -> dict[str, dict[str, int]] | None:
    offsets = manifest.extra.get(event_keys.MANIFEST_KEY)
    if offsets is None:
        return None
    if not isinstance(offsets, dict) or not all(
        isinstance(counts, dict) and all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values())
        for counts in offsets.values()
    ):
        raise StagingError(
            f"manifest extra.{event_keys.MANIFEST_KEY} must map part names to {{key: count}}", folder / MANIFEST_NAME
        )
    return offsets


def _new_events(
    events: Iterator[tuple[str, dict[str, Any]]],
    delivered_before: set[str],
    tracker: _AckTracker,
    summary: ShipSummary,
    extra_fields: Mapping[str, Any] | None,
    obfuscator: Obfuscator | None,
    still_held: Callable[[], None],
) -> Iterator[dict[str, Any]]:
    for key, record in events:
        still_held()  # a shipper that lost the window's lease sends nothing more
        if key in delivered_before:
            summary.skipped_delivered_before += 1
            continue
        event = {**extra_fields, **record} if extra_fields else record
        if obfuscator is not None:
            event = obfuscator.apply(event)
        tracker.handed(key)
        yield event


def _safe_segment(text: str) -> str:
    # Run ids hold ':' and '+' (e.g. manual__2026-11-28T12:00:00+00:00): keep them readable but path-safe.
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text).lstrip("._-")
    return cleaned[:150] or "run"
