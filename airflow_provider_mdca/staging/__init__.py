"""Staging: a window's records on shared storage, between the task that fetches them and the one that ships them.

The fetch task streams records into gzip'd JSON-lines parts; a later task (perhaps another process or machine) reads
them back, flattens alerts into another stage, and ships to Devo. Nothing is held in memory beyond one compressed
part and XCom carries only a manifest's location. Only records are staged: no connection, token or header ever
reaches these files.

Layout, on any path with the ``pathlib.Path`` API (a local ``Path``, or Airflow's ``ObjectStoragePath``)::

    <base>/<service>/<start>_<end>/                 one folder per window, e.g. 20261128T120000Z_20261128T120500Z
        fetched/                                    one folder per stage (fetched, flattened, ...)
            part-00000.ndjson.gz                    compact JSON lines, gzip'd; only complete parts carry this name
            part-00001.ndjson.gz
            manifest.json                           the stage's commit point: parts, counts, sha256s, request stats
        flattened/...
        ledger/                                     what Devo acknowledged: immutable files, never rewritten
            attempt-0001-<uuid>-000001.ids          ids of one acknowledged batch, one per line
            attempt-0001-<uuid>-000002.part.json    one part fully delivered (resume point)
        delivered.json                              the whole window is delivered: retention may delete it
        ship.lease                                  held by the one ship sending the window (staging/lease.py)
    <base>/<service>/_outage.json                   what is down for the service, since when (recovery.py)
    <base>/_request_budget/<tenant hash>.json       when the tenant's next request may start (request_budget.py)

>>> from datetime import datetime, timezone
>>> from pathlib import PurePosixPath
>>> start = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
>>> window = window_dir(PurePosixPath("/staging"), "alerts", start, start.replace(minute=5))
>>> manifest_path(window, "fetched")
PurePosixPath('/staging/alerts/20261128T120000Z_20261128T120500Z/fetched/manifest.json')

Invariants:

- A file is visible under its final name only when it is complete: it is written under a hidden temporary name and
  renamed. On object stores, where a rename is a copy, an object is not visible before its upload completes anyway.
- A part is read once, whole (one download on an object store), and the sha256 of its compressed bytes is checked
  before any of its records is yielded: a corrupt or replaced part is a :class:`StagingError`, never silently wrong
  data. Its record count and uncompressed size are counted as it is decompressed, and a manifest that disagrees
  with them is a :class:`StagingError` at the end of the part.
- The ledger is append-only and every writer writes its own files, so two shipping attempts cannot corrupt each
  other, and a rerun of the window sees everything delivered before it.
- Nothing undelivered is deleted: retention removes only windows with a ``delivered.json`` marker, and restaging a
  window removes its marker first.

Modules: :mod:`~.layout` (folder and file names), :mod:`~.storage` (the path API, private files, atomic writes),
:mod:`~.parts` (a part: :class:`PartInfo`, writing one, reading parts), :mod:`~.part_writer` (:class:`PartWriter`),
:mod:`~.manifest`, :mod:`~.ledger` (:class:`DeliveryLedger`), :mod:`~.retention` (the delivery marker, expiry and
removal) and :mod:`~.errors` (:class:`StagingError`). Import from the package: its names are the API.
"""

from __future__ import annotations

from airflow_provider_mdca.staging.errors import StagingError, UnsafeLocationError
from airflow_provider_mdca.staging.layout import (
    DELIVERED_NAME,
    LEDGER_DIR,
    MANIFEST_NAME,
    format_timestamp,
    manifest_path,
    stage_dir,
    window_bounds,
    window_dir,
)
from airflow_provider_mdca.staging.ledger import DeliveryLedger
from airflow_provider_mdca.staging.manifest import Manifest, read_manifest, read_stage, write_manifest
from airflow_provider_mdca.staging.part_writer import DEFAULT_MAX_PART_BYTES, PartWriter
from airflow_provider_mdca.staging.parts import PartInfo, read_part, read_parts
from airflow_provider_mdca.staging.retention import (
    delivered_at,
    expired_windows,
    is_window_delivered,
    mark_window_delivered,
    remove_window,
)
from airflow_provider_mdca.staging.space import StagingFullError, out_of_space_named, require_space
from airflow_provider_mdca.staging.storage import P as P  # the path type variable: not in __all__, but imported
from airflow_provider_mdca.staging.storage import StoragePath

__all__ = [
    "StagingFullError",
    "out_of_space_named",
    "require_space",
    "DEFAULT_MAX_PART_BYTES",
    "DELIVERED_NAME",
    "LEDGER_DIR",
    "MANIFEST_NAME",
    "DeliveryLedger",
    "Manifest",
    "PartInfo",
    "PartWriter",
    "StagingError",
    "StoragePath",
    "UnsafeLocationError",
    "delivered_at",
    "expired_windows",
    "format_timestamp",
    "is_window_delivered",
    "read_stage",
    "read_part",
    "read_parts",
    "manifest_path",
    "mark_window_delivered",
    "read_manifest",
    "remove_window",
    "stage_dir",
    "window_bounds",
    "window_dir",
    "write_manifest",
]
