"""The collector's three steps over staged windows: fetch into staging, flatten alerts, ship to Devo.

Each step reads and writes staging only (see :mod:`airflow_provider_mdca.staging`), streams record by record and
imports nothing from Airflow: the operators are thin adapters that resolve connections and the window, and the
benchmark drives these same functions.

Exactly once per window rests on two things. The fetch step restages a window atomically (its manifest is the commit
point). The ship step records in the window's delivery ledger what Devo acknowledged, batch by batch: a retry resumes
after the last acknowledged batch, and a rerun of the window skips every event delivered before, unless asked to
re-ship. An event's ledger key is the record's ``_id``; a flattened alert's events are ``<_id>#<n>`` (the n-th event of
that alert, stable because flattening is deterministic; :mod:`airflow_provider_mdca.event_keys`).

Each step returns its own figures (a :class:`StageSummary` or :class:`ShipSummary`), built from what the calls it
made returned: nothing is read back from a hook or a client afterwards.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from airflow_provider_mdca import event_keys, json_codec
from airflow_provider_mdca.devo.sender import DeliveryStats
from airflow_provider_mdca.event_keys import EventKeys, KeyOffsets, record_key
from airflow_provider_mdca.staging import (
    DEFAULT_MAX_PART_BYTES,
    MANIFEST_NAME,
    DeliveryLedger,
    Manifest,
    P,
    PartInfo,
    PartWriter,
    StagingError,
    StoragePath,
    mark_window_delivered,
    out_of_space_named,
    read_manifest,
    read_part,
    require_space,
    stage_dir,
    write_manifest,
)
from airflow_provider_mdca.staging.lease import WindowLease
from airflow_provider_mdca.transforms.flatten import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, FlattenStats
from airflow_provider_mdca.transforms.flatten_json import AlertLines, flatten_alerts_json_by_alert
from airflow_provider_mdca.transforms.obfuscate import Obfuscator

__all__ = [
    "FETCHED",
    "FLATTENED",
    "ShipSummary",
    "StageSummary",
    "fetch_to_stage",
    "flatten_stage",
    "ship_stage",
    "window_of",
]

log = logging.getLogger(__name__)

FETCHED: Final = "fetched"
FLATTENED: Final = "flattened"
# Re-ship runs keep a ledger of their own (so their retries resume) beside the window's main ledger.
_RESHIP_DIR: Final = "reship"
# Where a flattened manifest's extra records the obfuscation applied to the alerts before flattening.
_OBFUSCATION_KEY: Final = "obfuscation"


@dataclass
class StageSummary:
    """What a fetch or flatten step staged: the manifest's location and its figures (JSON-serialisable)."""

    manifest: str
    service: str
    stage: str
    window_start: str
    window_end: str
    records: int
    parts: int
    bytes: int
    elapsed_seconds: float
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict, for logs and the task's return value."""
        return asdict(self)


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


class Figures(Protocol):
    """Counters that render as a plain dict (the fetch's :class:`~airflow_provider_mdca.client.FetchStats`)."""

    def as_dict(self) -> dict[str, Any]: ...


# --- fetch ---------------------------------------------------------------------------------------------------------


# An event key is an _id (24 hex) or <_id>#<n>, one per line; small files take a block each on most file systems.
_LEDGER_BYTES_PER_EVENT: Final = 48
_LEDGER_BYTES_PER_FILE: Final = 4096
_LEDGER_SLACK: Final = 64 * 1024


def fetch_to_stage(
    records: Iterable[Mapping[str, Any]],
    window: P,
    *,
    service: str,
    start: datetime,
    end: datetime,
    stats: Figures | Mapping[str, Any] | None = None,
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
) -> tuple[P, StageSummary]:
    """Stream ``records`` of one window into its ``fetched`` stage and commit the manifest.

    An empty window is a valid window: a manifest with no parts. ``stats`` are the fetch's figures (the record
    stream's own ``stats``), read once the records are exhausted, when they are final; their ``api_total`` goes to
    the manifest's ``api_total``. If reading fails the parts written so far are removed and no manifest is written,
    so a retry starts clean.

    :returns: the manifest's path and a summary.
    """
    began = time.monotonic()
    writer = PartWriter(window, stage=FETCHED, max_part_bytes=max_part_bytes)
    with out_of_space_named(window, lambda: writer.bytes_written, f"{service}'s fetched records"):
        with writer:
            writer.write_all(records)
        figures = _plain(stats)
        api_total = figures.get("api_total")
        manifest = Manifest.build(
            service=service,
            start=start,
            end=end,
            stage=FETCHED,
            parts=writer.parts,
            api_total=api_total if isinstance(api_total, int) else None,
            request_stats=figures,
        )
        path = write_manifest(window, manifest)
    return path, _stage_summary(path, manifest, time.monotonic() - began, figures)


def _plain(stats: Figures | Mapping[str, Any] | None) -> dict[str, Any]:
    if stats is None:
        return {}
    return dict(stats) if isinstance(stats, Mapping) else stats.as_dict()


def _stage_summary(path: StoragePath, manifest: Manifest, elapsed: float, stats: dict[str, Any]) -> StageSummary:
    return StageSummary(
        manifest=str(path),
        service=manifest.service,
        stage=manifest.stage,
        window_start=manifest.window_start,
        window_end=manifest.window_end,
        records=manifest.record_count,
        parts=len(manifest.parts),
        bytes=sum(part.bytes for part in manifest.parts),
        elapsed_seconds=round(elapsed, 3),
        stats=stats,
    )


def window_of(manifest_path: P) -> P:
    """The window folder of a stage's manifest (``<window>/<stage>/manifest.json``)."""
    return manifest_path.parent.parent


# --- flatten -------------------------------------------------------------------------------------------------------


def flatten_stage(
    source_manifest: P,
    *,
    max_events_per_alert: int = DEFAULT_MAX_EVENTS,
    max_bytes_per_alert: int = DEFAULT_MAX_BYTES,
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
    obfuscator: Obfuscator | None = None,
) -> tuple[P, StageSummary]:
    """Flatten the alerts staged at ``source_manifest`` into the window's ``flattened`` stage, streaming.

    An alert's events go to the part writer one at a time (never gathered in a list); one with more than
    ``max_events_per_alert`` events, or whose events would take more than ``max_bytes_per_alert`` bytes, is staged
    once, unexpanded, marked ``flatten_capped``.

    ``obfuscator`` rewrites each alert before it is flattened, so its paths are the alert's own as MDCA sends it
    (``entities[].label`` reaches every entity's label, which flattening then names ``user_label``, ``ip_label``,
    ...). The manifest records the rules and what each reached (``extra.obfuscation``): the ship step does not
    apply a rule again that reached a field here, and a rule that reached none in the whole window is warned about.

    :raises ValueError: an alert is malformed; the message names the part and the alert (nothing is committed).
    """
    began = time.monotonic()
    source = read_manifest(source_manifest)
    window = window_of(source_manifest)
    folder = source_manifest.parent
    stats = FlattenStats()
    keys = KeyOffsets()
    writer = PartWriter(window, stage=FLATTENED, max_part_bytes=max_part_bytes)
    with out_of_space_named(window, lambda: writer.bytes_written, "flattened alerts"), writer:
        for part in source.parts:
            try:
                alerts: Iterable[dict[str, Any]] = read_part(folder, part)
                if obfuscator is not None:
                    alerts = map(obfuscator.apply, alerts)
                flattened = flatten_alerts_json_by_alert(
                    alerts,
                    encode=json_codec.encode,
                    max_events=max_events_per_alert,
                    max_bytes=max_bytes_per_alert,
                    stats=stats,
                )
                writer.write_encoded(_noting_keys(flattened, keys))
            except ValueError as exc:
                raise ValueError(f"{source.service} {_window_text(source)}, {part.name}: {exc}") from exc
    extra: dict[str, Any] = {
        "flatten": stats.as_dict(),
        "source_records": source.record_count,
        event_keys.MANIFEST_KEY: keys.by_part((part.name, part.records) for part in writer.parts),
    }
    figures: dict[str, Any] = stats.as_dict()
    if obfuscator is not None:
        extra[_OBFUSCATION_KEY] = figures["obfuscation"] = _obfuscation_record(obfuscator)
        _warn_unmatched(obfuscator.unmatched(), source, "alerts before flattening")
    manifest = Manifest.build(
        service=source.service,
        start=datetime.fromisoformat(source.window_start),
        end=datetime.fromisoformat(source.window_end),
        stage=FLATTENED,
        parts=writer.parts,
        api_total=source.api_total,
        request_stats=source.request_stats,
        extra=extra,
    )
    with out_of_space_named(window, lambda: writer.bytes_written, "flattened alerts"):
        path = write_manifest(window, manifest)
    return path, _stage_summary(path, manifest, time.monotonic() - began, figures)


def _obfuscation_record(obfuscator: Obfuscator) -> dict[str, Any]:
    """What the flattened manifest says about the obfuscation applied before flattening."""
    return {
        "rules": [{"path": rule.path, "method": rule.method} for rule in obfuscator.rules],
        "matched": dict(obfuscator.matched),
        "records": obfuscator.stats.events,
    }


def _warn_unmatched(paths: list[str], manifest: Manifest, where: str) -> None:
    if paths:
        log.warning(
            "Obfuscation: %s %s: the rule(s) %s reached no field in any of the %s: nothing was obfuscated by them. "
            "Paths name fields of the records as MDCA sends them (e.g. entities[].label); check them.",
            manifest.service,
            _window_text(manifest),
            ", ".join(repr(path) for path in paths),
            where,
        )


def _noting_keys(flattened: Iterable[AlertLines], keys: KeyOffsets) -> Iterator[bytes]:
    """The flattened lines, noting each alert's delivery key and event count on the way (see event_keys).

    An alert's event count is known before its lines are built, and its lines pass through one at a time: an
    alert's events are never held together.
    """
    for item in flattened:
        alert = item.alert
        if alert.get("_id") is not None and str(alert["_id"]):
            keys.add(str(alert["_id"]), item.events)  # an alert's events keep its _id
            yield from item.lines
        else:
            for line in item.lines:  # no _id: each event is keyed by its content, as the shipper will key it
                keys.add(record_key(json_codec.decode(line)), 1)
                yield line


def _window_text(manifest: Manifest) -> str:
    return f"window [{manifest.window_start}, {manifest.window_end})"


# --- ship ----------------------------------------------------------------------------------------------------------


class _AckTracker:
    """Keys of events handed to the sender, recorded in the ledgers when their batch is acknowledged."""

    def __init__(self, ledgers: list[DeliveryLedger[Any]]) -> None:
        self._ledgers = ledgers
        self._in_flight: deque[str] = deque()
        self.acknowledged = 0

    def handed(self, key: str) -> None:
        self._in_flight.append(key)

    def on_batch(self, count: int) -> None:
        keys = [self._in_flight.popleft() for _ in range(count)]
        for ledger in self._ledgers:
            ledger.record_batch(keys)
        self.acknowledged += count


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

    :raises DeliveryError: delivery failed after the sender's retries; what was acknowledged stays in the ledger.
    """
    began = time.monotonic()
    manifest = read_manifest(manifest_path)
    window = window_of(manifest_path)
    # One shipper at a time per window, and the ledger read only once it holds the window (staging/lease.py).
    with WindowLease(window, **(lease or {})) as held:
        summary = _ship_held(manifest, window, sink, held, tag, obfuscator, extra_fields, reship_run, attempt)
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
    tracker = _AckTracker(ledgers)
    sent = DeliveryStats()
    for part, keys in _keyed_parts(manifest, folder, pending):
        keyed = ((keys.key(record), record) for record in read_part(folder, part))
        shippable = _new_events(keyed, delivered_before, tracker, summary, extra_fields, obfuscator, lease.check)
        sent.add(sink.send(tag, shippable, on_batch=tracker.on_batch))
        for ledger in ledgers:
            ledger.mark_part_delivered(manifest.stage, part)
    summary.obfuscation_unmatched = _unmatched(applied, obfuscator)
    _warn_unmatched(summary.obfuscation_unmatched, manifest, "events shipped")
    summary.delivered = tracker.acknowledged
    summary.bytes, summary.batches, summary.retries = sent.bytes, sent.batches, sent.retries
    return summary


def _ledger_bytes(manifest: Manifest, pending: list[PartInfo], ledgers: int) -> int:
    """Room the ledgers of a ship need: each event's key on a line, per ledger, plus a file per part and batch."""
    events = sum(part.records for part in pending)
    return ledgers * (events * _LEDGER_BYTES_PER_EVENT + len(pending) * _LEDGER_BYTES_PER_FILE) + _LEDGER_SLACK


def _applied_obfuscation(manifest: Manifest, path: StoragePath) -> dict[str, Any] | None:
    """The obfuscation the flatten step applied (``extra.obfuscation``), checked; None when it applied none."""
    record = manifest.extra.get(_OBFUSCATION_KEY)
    if record is None:
        return None
    matched = record.get("matched") if isinstance(record, dict) else None
    if (
        not isinstance(matched, dict)
        or not isinstance(record.get("records"), int)
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in matched.values())
    ):
        raise StagingError(f"manifest extra.{_OBFUSCATION_KEY} must hold matched {{path: count}} and records", path)
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
