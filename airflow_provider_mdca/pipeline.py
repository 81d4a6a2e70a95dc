"""The collector's first steps over staged windows: fetch into staging, flatten alerts (shipping is ``shipping.py``).

Each step, like :func:`airflow_provider_mdca.shipping.ship_stage`, reads and writes staging only (see
:mod:`airflow_provider_mdca.staging`), streams record by record and imports nothing from Airflow: the operators are thin
adapters that resolve connections and the window, and the benchmark drives these same functions.

The fetch step restages a window atomically (its manifest is the commit point); the flatten step writes the window's
``flattened`` stage and notes, per part, where each alert's ``<_id>#<n>`` event keys start
(:mod:`airflow_provider_mdca.event_keys`), so that a ship retry skips delivered parts unread.

Each step returns its own figures (a :class:`StageSummary`), built from what the calls it made returned: nothing is
read back from a hook or a client afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from airflow_provider_mdca import event_keys, json_codec
from airflow_provider_mdca.event_keys import KeyOffsets, record_key
from airflow_provider_mdca.staging import (
    DEFAULT_MAX_PART_BYTES,
    Manifest,
    P,
    PartWriter,
    StoragePath,
    out_of_space_named,
    read_manifest,
    read_part,
    write_manifest,
)
from airflow_provider_mdca.transforms.flatten import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, FlattenStats
from airflow_provider_mdca.transforms.flatten_json import AlertLines, flatten_alerts_json_by_alert
from airflow_provider_mdca.transforms.obfuscate import Obfuscator

__all__ = [
    "FETCHED",
    "FLATTENED",
    "OBFUSCATION_KEY",
    "StageSummary",
    "fetch_to_stage",
    "flatten_stage",
    "warn_unmatched",
    "window_of",
    "window_text",
]

log = logging.getLogger(__name__)

FETCHED: Final = "fetched"
FLATTENED: Final = "flattened"
#: Where a flattened manifest's extra records the obfuscation applied to the alerts before flattening.
OBFUSCATION_KEY: Final = "obfuscation"


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


class Figures(Protocol):
    """Counters that render as a plain dict (the fetch's :class:`~airflow_provider_mdca.client.FetchStats`)."""

    def as_dict(self) -> dict[str, Any]: ...


# --- fetch ---------------------------------------------------------------------------------------------------------


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
                raise ValueError(f"{source.service} {window_text(source)}, {part.name}: {exc}") from exc
    extra: dict[str, Any] = {
        "flatten": stats.as_dict(),
        "source_records": source.record_count,
        event_keys.MANIFEST_KEY: keys.by_part((part.name, part.records) for part in writer.parts),
    }
    figures: dict[str, Any] = stats.as_dict()
    if obfuscator is not None:
        extra[OBFUSCATION_KEY] = figures["obfuscation"] = _obfuscation_record(obfuscator)
        warn_unmatched(obfuscator.unmatched(), source, "alerts before flattening")
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


def warn_unmatched(paths: list[str], manifest: Manifest, where: str) -> None:
    """Warn that obfuscation rules reached no field in a whole window (a wrong path, almost always)."""
    if paths:
        log.warning(
            "Obfuscation: %s %s: the rule(s) %s reached no field in any of the %s: nothing was obfuscated by them. "
            "Paths name fields of the records as MDCA sends them (e.g. entities[].label); check them.",
            manifest.service,
            window_text(manifest),
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


def window_text(manifest: Manifest) -> str:
    """``window [start, end)`` of a manifest, for messages."""
    return f"window [{manifest.window_start}, {manifest.window_end})"
