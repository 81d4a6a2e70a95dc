"""Staging: a window's records on shared storage, between the task that fetches them and the one that ships them.

The fetch task streams records into gzip'd JSON-lines parts; a later task (perhaps another process or machine) reads
them back, flattens alerts into another stage, and ships to Devo. Nothing is held in memory and XCom carries only a
manifest's location. Only records are staged: no connection, token or header ever reaches these files.

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

Invariants:

- A file is visible under its final name only when it is complete: it is written under a hidden temporary name and
  renamed. On object stores, where a rename is a copy, an object is not visible before its upload completes anyway.
- Every part is checked (sha256 of the compressed file, record count, uncompressed size) before any of its records
  is yielded: a corrupt or replaced part is a :class:`StagingError`, never silently wrong data.
- The ledger is append-only and every writer writes its own files, so two shipping attempts cannot corrupt each
  other, and a rerun of the window sees everything delivered before it.
- Nothing undelivered is deleted: retention removes only windows with a ``delivered.json`` marker, and restaging a
  window removes its marker first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePath
from types import TracebackType
from typing import IO, Any, Final, Generic, Protocol, TypeVar

from airflow_provider_mdca import compression, json_codec
from airflow_provider_mdca.compression import GzipCodec
from airflow_provider_mdca.redaction import redact_text, sanitize_url

__all__ = [
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
    "delivered_at",
    "expired_windows",
    "format_timestamp",
    "is_window_delivered",
    "iter_manifest_records",
    "iter_part",
    "iter_records",
    "manifest_path",
    "mark_window_delivered",
    "read_manifest",
    "remove_window",
    "stage_dir",
    "window_bounds",
    "window_dir",
    "write_manifest",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_PART_BYTES: Final = 64 * 1024 * 1024
MANIFEST_NAME: Final = "manifest.json"
DELIVERED_NAME: Final = "delivered.json"
LEDGER_DIR: Final = "ledger"
FORMAT_VERSION: Final = 1

# Staged records are security telemetry (users, IP addresses, files): on a local disk only the owner reads them.
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
# Staging is transient (removed after the retention), so CPU matters more than bytes: compression.py picks the
# fastest gzip at hand and its fast end.
_GZIP: GzipCodec = compression.DEFAULT
_CHUNK: Final = 1024 * 1024
# GzipFile.write has a fixed cost per call: hand it about this much at a time rather than one line per call.
_WRITE_BUFFER: Final = 256 * 1024

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # one safe path segment; never "." or ".."
_PART_NAME = re.compile(r"part-\d{5,}\.ndjson\.gz")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STAMP = r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{6}))?Z"
_WINDOW_NAME = re.compile(f"{_STAMP}_{_STAMP}")
_LEDGER_FILE = re.compile(r"attempt-(\d{4,})-([0-9a-f]{32})-(\d{6,})\.(ids|part\.json)")
_RESERVED_STAGES = frozenset({LEDGER_DIR})

P = TypeVar("P", bound="StoragePath")


class StoragePath(Protocol):
    """The part of the ``pathlib.Path`` API staging uses; ``Path``, ``UPath`` and ``ObjectStoragePath`` all have it."""

    @property
    def name(self) -> str: ...

    @property
    def parent(self: P) -> P: ...

    def __truediv__(self: P, key: str) -> P: ...

    def open(self, mode: str) -> IO[Any]: ...

    def mkdir(self, mode: int = ..., parents: bool = ..., exist_ok: bool = ...) -> None: ...

    def exists(self) -> bool: ...

    def is_dir(self) -> bool: ...

    def iterdir(self: P) -> Iterator[P]: ...

    def unlink(self, missing_ok: bool = ...) -> None: ...

    def rmdir(self) -> None: ...

    def rename(self: P, target: P) -> P: ...


class StagingError(Exception):
    """Staged data is missing, corrupt, malformed or must not be touched.

    The message names the file or folder, as a sanitised location: credentials in a URL (``user:pass@``, secret
    query parameters) never reach it.
    """

    def __init__(self, detail: str, path: object = None) -> None:
        self.detail = redact_text(detail)
        self.location = _display(path) if path is not None else None
        super().__init__(f"{self.location}: {self.detail}" if self.location else self.detail)

    def __reduce__(self) -> tuple[Any, ...]:
        # Airflow ships exceptions between processes; the default would drop the location.
        return (type(self), (self.detail, self.location))


def _display(path: object) -> str:
    text = str(path)
    return sanitize_url(text) if "://" in text else redact_text(text)


# --- windows -----------------------------------------------------------------------------------------------------


def format_timestamp(moment: datetime, *, what: str = "timestamp") -> str:
    """A UTC timestamp safe in any path segment.

    Fixed width, so whole-second timestamps sort as they sort in time. Sub-second moments keep their microseconds
    rather than colliding with the whole second (they sort before it: Airflow's scheduled intervals are whole
    seconds, so only manual runs ever see this).

    >>> format_timestamp(datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc))
    '20261128T120000Z'
    >>> format_timestamp(datetime(2026, 11, 28, 12, 0, 0, 250000, tzinfo=timezone.utc))
    '20261128T120000.250000Z'

    :raises ValueError: ``moment`` is naive; the message says which bound (``what``).
    """
    utc = _utc(moment, what)
    text = f"{utc.year:04d}{utc.month:02d}{utc.day:02d}T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}"
    return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got the naive datetime {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} must be one path segment of letters, digits, '_', '.', '-', got {value!r}")
    return value


def window_dir(base: P, service: str, start: datetime, end: datetime) -> P:
    """The folder of one window: ``<base>/<service>/<start>_<end>`` (only computed; nothing is created).

    :raises ValueError: a bound is naive (the message names it), ``start`` is after ``end``, or ``service`` is not
        a safe path segment.
    """
    _check_name(service, "service")
    first, last = format_timestamp(start, what="start"), format_timestamp(end, what="end")
    if start > end:
        raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")
    return base / service / f"{first}_{last}"


def window_bounds(window: StoragePath) -> tuple[datetime, datetime]:
    """The UTC ``(start, end)`` of a window folder, read from its name.

    :raises ValueError: the folder's name is not a window's.
    """
    match = _WINDOW_NAME.fullmatch(window.name)
    if match is None:
        raise ValueError(f"{window.name!r} is not a window folder name")
    groups = match.groups()
    return _stamp(groups[:7]), _stamp(groups[7:])


def _stamp(groups: tuple[str | Any, ...]) -> datetime:
    year, month, day, hour, minute, second, micro = groups
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), int(micro or 0), tzinfo=timezone.utc
    )


def stage_dir(window: P, stage: str) -> P:
    """The folder of one stage of a window, e.g. ``<window>/fetched``.

    :raises ValueError: ``stage`` is not a safe path segment, or is reserved (``ledger``).
    """
    _check_name(stage, "stage")
    if stage in _RESERVED_STAGES:
        raise ValueError(f"stage {stage!r} is reserved")
    return window / stage


def manifest_path(window: P, stage: str) -> P:
    """Where the manifest of ``stage`` lives in ``window``."""
    return stage_dir(window, stage) / MANIFEST_NAME


# --- storage primitives --------------------------------------------------------------------------------------------


def _local(path: StoragePath) -> str | None:
    """The OS path when ``path`` is on this machine's disk (``Path``, or a local or ``file://`` UPath), else None.

    Local files get owner-only modes and an fsync before their rename; object stores have neither.
    """
    protocol = getattr(path, "protocol", None)
    if protocol is not None:
        # A UPath (Airflow's ObjectStoragePath is one). Ask its protocol, not its type: universal_pathlib 0.2 (the
        # Airflow 2.11 line) makes every UPath a pathlib.Path, memory:// and s3:// included.
        inner = getattr(path, "path", None)
        return inner if protocol in ("", "file", "local") and isinstance(inner, str) else None
    if isinstance(path, PurePath):
        return os.fspath(path)
    return None


def _make_dirs(folder: StoragePath) -> None:
    local = _local(folder)
    if local is None:
        folder.mkdir(parents=True, exist_ok=True)
    else:
        _make_private_dirs(local)


def _make_private_dirs(path: str) -> None:
    # os.makedirs applies its mode only to the last folder: create each missing one ourselves. Folders that already
    # exist (the base, perhaps /tmp) are left as they are: they are not ours.
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_private_dirs(parent)
    try:
        os.mkdir(path, _DIR_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return  # another writer created it first
    os.chmod(path, _DIR_MODE)  # the umask may have removed bits the owner needs


def _create(path: StoragePath) -> IO[bytes]:
    """A new file for writing; on a local disk created 0600 from the start (no window where others could open it)."""
    local = _local(path)
    if local is None:
        handle: IO[bytes] = path.open("wb")
        return handle
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(local, flags, _FILE_MODE), "wb")


def _sync(path: StoragePath, handle: IO[bytes]) -> None:
    # Without an fsync a power cut after the rename may leave a complete-looking name over incomplete data.
    if _local(path) is not None:
        handle.flush()
        os.fsync(handle.fileno())


def _replace(source: StoragePath, target: StoragePath) -> None:
    local_source, local_target = _local(source), _local(target)
    if local_source is not None and local_target is not None:
        os.replace(local_source, local_target)  # atomic, and unlike Path.rename it overwrites on Windows too
    else:
        source.rename(target)


def _discard(path: StoragePath) -> None:
    # Clean-up on a failure path: never let it hide the original error. Not only OSError: object stores fail with
    # their SDK's errors (azure.core's HttpResponseError or ServiceRequestError when the network is what failed).
    with contextlib.suppress(Exception):
        if path.exists():
            path.unlink()


def _remove(path: StoragePath) -> None:
    # Not a clean-up: an error here must stop the caller (see PartWriter._prepare).
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _temp_name(final: StoragePath) -> StoragePath:
    # Hidden, unique per writer, and never matching a part or manifest name: readers cannot mistake it.
    return final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"


def _write_atomically(path: StoragePath, data: bytes) -> None:
    temp = _temp_name(path)
    try:
        with _create(temp) as handle:
            handle.write(data)
            _sync(temp, handle)
        _replace(temp, path)
    except BaseException:
        _discard(temp)
        raise


def _read_small(path: StoragePath, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data: bytes = handle.read()
    except FileNotFoundError as exc:
        raise StagingError(f"{what} not found", path) from exc
    except OSError as exc:
        raise StagingError(f"{what} cannot be read ({type(exc).__name__}: {exc.strerror or exc})", path) from exc
    return data


def _to_json(value: object, path: StoragePath, what: str) -> bytes:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
    except (TypeError, ValueError) as exc:
        raise StagingError(f"{what} is not JSON-serialisable ({exc})", path) from exc


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# --- parts ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartInfo:
    """One complete part: its file name, record count, uncompressed size and the sha256 of the compressed file.

    Frozen and hashable: two equal ``PartInfo`` describe the same bytes, which is what the ledger's resume uses.
    """

    name: str
    records: int
    bytes: int
    sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PART_NAME.fullmatch(self.name):
            raise ValueError(f"part name must look like part-00000.ndjson.gz, got {self.name!r}")
        for label in ("records", "bytes"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"part {self.name}: {label} must be a non-negative integer, got {value!r}")
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"part {self.name}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, as stored in manifests and ledger markers."""
        return {"name": self.name, "records": self.records, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: object) -> PartInfo:
        """Rebuild from :meth:`as_dict` output.

        :raises ValueError: the shape or a value is wrong.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a part must be a JSON object, got {type(data).__name__}")
        expected = {"name", "records", "bytes", "sha256"}
        if set(data) != expected:
            raise ValueError(f"a part must have exactly the keys {sorted(expected)}, got {sorted(data)}")
        return cls(name=data["name"], records=data["records"], bytes=data["bytes"], sha256=data["sha256"])


def _part_name(index: int) -> str:
    return f"part-{index:05d}.ndjson.gz"


def _encode(record: Mapping[str, Any]) -> bytes:
    """One record as compact JSON, UTF-8, without its line break (the buffer joins lines with it)."""
    if not isinstance(record, dict):
        if not isinstance(record, Mapping):
            raise TypeError(f"a record must be a JSON object (dict), got {type(record).__name__}")
        record = dict(record)
    return json_codec.encode(record)


class _HashingWriter:
    """Passes bytes through while hashing them: a part's sha256 is known when it closes, without a second read."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self._target.write(data)
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class _HashingReader:
    """Hashes everything read through it; :meth:`drain` reads the rest so the hash covers the whole file."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._source.read(size)
        self._sha.update(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        # ISA-L's gzip reader fills its own buffer; going through read() keeps one hashing path.
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, /) -> int:
        # GzipFile only seeks when rewound, which staging never does: hashing must see each byte once, in order.
        raise io.UnsupportedOperation("a hashing reader reads forwards only")

    def drain(self) -> str:
        while self.read(_CHUNK):
            pass
        return self._sha.hexdigest()


class _OpenPart:
    """The part being written: a temporary file until :meth:`finish` renames it to its final name.

    Lines wait in a small buffer and reach gzip about 256 KiB at a time, joined by their line breaks; the record
    count is the buffer's length, so the per-record path stays short (staging cost is per record, not per byte).
    """

    def __init__(self, final: StoragePath, *, max_bytes: int, max_records: int | None) -> None:
        self.final = final
        self.temp = _temp_name(final)
        self._max_records = max_records
        self._flushed_records = 0
        self._flushed_bytes = 0
        self._room = max_bytes  # bytes the buffer may still take before the part is full
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._raw = _create(self.temp)
        self._hashing = _HashingWriter(self._raw)
        # mtime=0 and no file name in the header: the same records always give the same bytes and sha256.
        self._gzip = _GZIP.writer(self._hashing)

    @property
    def records(self) -> int:
        return self._flushed_records + len(self._buffer)

    @property
    def size(self) -> int:
        return self._flushed_bytes + self._buffered

    def accepts(self, size: int) -> bool:
        """Whether a line of ``size`` bytes still fits; an empty part takes any line (it has to go somewhere)."""
        if not self._buffer and not self._flushed_records:
            return True
        if self._buffered + size > self._room:
            return False
        return self._max_records is None or self.records < self._max_records

    def write(self, line: bytes) -> None:
        """Add one JSON line, given without its line break."""
        self._buffer.append(line)
        self._buffered += len(line) + 1
        if self._buffered >= _WRITE_BUFFER:
            self._flush_buffer()

    def _flush_buffer(self) -> None:
        if self._buffer:
            self._gzip.write(b"\n".join(self._buffer) + b"\n")
            self._flushed_records += len(self._buffer)
            self._flushed_bytes += self._buffered
            self._room -= self._buffered
            self._buffer.clear()
            self._buffered = 0

    def finish(self) -> PartInfo:
        self._flush_buffer()
        self._gzip.close()  # writes the gzip trailer through the hashing writer; leaves the raw file open
        _sync(self.temp, self._raw)
        self._raw.close()
        _replace(self.temp, self.final)
        return PartInfo(self.final.name, self.records, self.size, self._hashing.hexdigest())

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._gzip.close()
        with contextlib.suppress(Exception):
            self._raw.close()
        _discard(self.temp)


class PartWriter(Generic[P]):
    """Streams records of one stage of a window into ``<window>/<stage>/part-NNNNN.ndjson.gz`` files.

    Each record is one compact JSON line (unicode kept; newlines inside values are escaped by JSON). A part rolls
    over before a record would take it past ``max_part_bytes`` of uncompressed JSON lines or past
    ``max_part_records`` records (a single larger record gets a part of its own). Each part is written under a
    temporary name and renamed when complete. As a context manager it closes on success and, on an exception,
    aborts: the part in flight and the parts this writer completed are removed (no manifest lists them).

    Starting to write removes the window's ``delivered.json`` and the stage's old manifest: the window is being
    restaged, so retention must not delete it, and the old manifest would name parts about to be replaced.

    :param window: the window folder (see :func:`window_dir`); missing folders are created.
    :param stage: the stage folder name, e.g. ``fetched`` or ``flattened``.
    :param max_part_bytes: the uncompressed size bound of a part, default 64 MiB.
    :param max_part_records: an optional record-count bound of a part.
    """

    def __init__(
        self,
        window: P,
        *,
        stage: str,
        max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
        max_part_records: int | None = None,
    ) -> None:
        if max_part_bytes < 1:
            raise ValueError(f"max_part_bytes must be positive, got {max_part_bytes}")
        if max_part_records is not None and max_part_records < 1:
            raise ValueError(f"max_part_records must be positive, got {max_part_records}")
        self.window = window
        self.stage = stage
        self.folder: P = stage_dir(window, stage)
        self._max_bytes = max_part_bytes
        self._max_records = max_part_records
        self._parts: list[PartInfo] = []
        self._current: _OpenPart | None = None
        self._prepared = False
        self._closed = False

    @property
    def parts(self) -> list[PartInfo]:
        """The parts completed so far."""
        return list(self._parts)

    @property
    def records(self) -> int:
        """How many records were written so far."""
        return sum(part.records for part in self._parts) + (self._current.records if self._current else 0)

    def __enter__(self) -> PartWriter[P]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (a JSON object).

        :raises StagingError: the writer is closed, or the record cannot be serialised as JSON.
        """
        if self._closed:
            raise StagingError("the part writer is closed", self.folder)
        try:
            line = _encode(record)
        except (TypeError, ValueError) as exc:
            raise StagingError(f"record {self.records + 1} cannot be staged as JSON ({exc})", self.folder) from exc
        self._append(line)

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append every record of an iterable (consumed lazily); returns how many were written."""
        count = 0
        for record in records:
            self.write(record)
            count += 1
        return count

    def write_encoded(self, lines: Iterable[bytes]) -> int:
        """Append records the caller has already encoded, each one compact JSON object in UTF-8 without a line break.

        For a producer that builds JSON faster than ``write`` could encode its records (the alert flattener joins
        pieces encoded once per alert). The lines are trusted, not parsed: reading the part back checks them.
        Returns how many were written.

        :raises StagingError: the writer is closed, or a line holds a line break (it would split into two records).
        """
        if self._closed:
            raise StagingError("the part writer is closed", self.folder)
        count = 0
        for line in lines:
            if b"\n" in line:
                raise StagingError(f"record {self.records + 1} holds a line break: not one JSON line", self.folder)
            self._append(line)
            count += 1
        return count

    def _append(self, line: bytes) -> None:
        current = self._current
        if current is not None and not current.accepts(len(line) + 1):
            self._finish_current()
            current = None
        if current is None:
            current = self._open_next()
        current.write(line)

    def _prepare(self) -> None:
        if self._prepared:
            return
        _make_dirs(self.folder)
        # Not _discard: if the old marker cannot be removed, retention could delete the window being restaged.
        _remove(self.window / DELIVERED_NAME)
        _remove(self.folder / MANIFEST_NAME)
        self._prepared = True

    def _open_next(self) -> _OpenPart:
        self._prepare()
        self._current = _OpenPart(
            self.folder / _part_name(len(self._parts)), max_bytes=self._max_bytes, max_records=self._max_records
        )
        return self._current

    def _finish_current(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            self._parts.append(current.finish())

    def close(self) -> list[PartInfo]:
        """Complete the last part and return every part, in order (no part at all for zero records).

        Idempotent: a second call returns the same list.
        """
        if not self._closed:
            try:
                self._prepare()
                self._finish_current()
            except BaseException:
                self.abort()
                raise
            self._closed = True
        return self.parts

    def abort(self) -> None:
        """Remove the part in flight and every part this writer completed; the writer is closed afterwards."""
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            current.discard()
        for part in self._parts:
            _discard(self.folder / part.name)
        self._parts.clear()


# --- reading parts -------------------------------------------------------------------------------------------------


def iter_part(folder: StoragePath, part: PartInfo, *, verify: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of one part of ``folder`` (a stage folder, e.g. ``PartWriter.folder``).

    With ``verify`` (the default) the part is checked in full before its first record is yielded: one streaming
    pass hashes the compressed bytes and decompresses them to count records and bytes; the same open file is then
    rewound and read again to yield. Memory stays flat (1 MiB chunks, one line at a time) at the price of reading
    each part twice. The second pass is hashed and counted too, so a file changed under a reader (a store without
    snapshot reads) is still reported rather than trusted. ``verify=False`` reads once and checks nothing, for
    salvaging a damaged part.

    :raises StagingError: the part is missing, unreadable, or its sha256, record count or size does not match
        ``part``; or a line is not a JSON object. The message names the part and what mismatched.
    """
    path = folder / part.name
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise StagingError(f"part {part.name} not found", path) from exc
    except OSError as exc:
        raise StagingError(f"part {part.name} cannot be opened ({exc.strerror or exc})", path) from exc
    with handle:
        if not verify:
            yield from _records(handle, part, path)
            return
        _verify(handle, part, path)
        handle.seek(0)
        reader = _HashingReader(handle)
        count = 0
        for record in _records(reader, part, path):
            count += 1
            yield record
        if reader.drain() != part.sha256 or count != part.records:
            raise StagingError(f"part {part.name} changed while it was being read", path)


def iter_records(folder: StoragePath, parts: Iterable[PartInfo], *, verify: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of ``parts`` of ``folder`` in order; see :func:`iter_part` for the checks."""
    for part in parts:
        yield from iter_part(folder, part, verify=verify)


def iter_manifest_records(path: StoragePath, *, verify: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of the stage whose manifest is at ``path`` (the location XCom carries)."""
    manifest = read_manifest(path)
    yield from iter_records(path.parent, manifest.parts, verify=verify)


def _verify(handle: IO[bytes], part: PartInfo, path: StoragePath) -> None:
    reader = _HashingReader(handle)
    records = size = 0
    try:
        with _GZIP.reader(reader) as unzipped:
            while chunk := unzipped.read(_CHUNK):
                records += chunk.count(b"\n")
                size += len(chunk)
    except _GZIP.errors as exc:
        # Prefer the checksum's verdict: it says the bytes changed, the gzip error only where it noticed.
        digest = reader.drain()
        problem = _mismatch("sha256", part.sha256, digest) if digest != part.sha256 else "gzip data is corrupt"
        raise StagingError(f"part {part.name}: {problem} ({type(exc).__name__}: {exc})", path) from exc
    digest = reader.drain()
    for label, expected, actual in (
        ("sha256", part.sha256, digest),
        ("record count", part.records, records),
        ("uncompressed size", part.bytes, size),
    ):
        if expected != actual:
            raise StagingError(f"part {part.name}: {_mismatch(label, expected, actual)}", path)


def _mismatch(label: str, expected: object, actual: object) -> str:
    return f"{label} mismatch: the manifest says {expected}, the file has {actual}"


def _records(source: IO[bytes] | _HashingReader, part: PartInfo, path: StoragePath) -> Iterator[dict[str, Any]]:
    number = 0
    try:
        with _GZIP.reader(source) as unzipped:
            # 1 MiB at a time, split here: a third cheaper than GzipFile's line iterator, memory still flat.
            tail = b""
            while chunk := unzipped.read(_CHUNK):
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()  # the start of a line that goes on in the next chunk (b"" at a line end)
                for line in lines:
                    number += 1
                    yield _decode(line, number, part, path)
            if tail:  # a last line without its line break (only a part read with verify=False can have one)
                yield _decode(tail, number + 1, part, path)
    except _GZIP.errors as exc:
        raise StagingError(f"part {part.name}: gzip data is corrupt ({type(exc).__name__}: {exc})", path) from exc


def _decode(line: bytes, number: int, part: PartInfo, path: StoragePath) -> dict[str, Any]:
    # Messages say where and why, never the record itself: records are telemetry, not log material.
    try:
        value = json_codec.decode(line)
    except ValueError as exc:
        raise StagingError(f"part {part.name} line {number} is not JSON ({exc})", path) from exc
    if not isinstance(value, dict):
        raise StagingError(f"part {part.name} line {number} is a JSON {type(value).__name__}, not an object", path)
    return value


# --- manifests -----------------------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """What one stage of a window holds: the commit point a later task reads (XCom carries only its location).

    ``record_count`` is the sum of the parts' records; ``api_total`` is the API's own estimate, for reports only;
    ``request_stats`` holds the fetch's counters (requests, retries, throttling...); ``extra`` is free-form.
    """

    service: str
    window_start: str
    window_end: str
    stage: str
    parts: list[PartInfo]
    record_count: int
    api_total: int | None = None
    request_stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def build(
        cls,
        *,
        service: str,
        start: datetime,
        end: datetime,
        stage: str,
        parts: Iterable[PartInfo],
        api_total: int | None = None,
        request_stats: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """A manifest for ``parts`` of a window, with ``record_count`` computed and the bounds as UTC ISO strings."""
        parts = list(parts)
        return cls(
            service=service,
            window_start=_utc(start, "start").isoformat(),
            window_end=_utc(end, "end").isoformat(),
            stage=stage,
            parts=parts,
            record_count=sum(part.records for part in parts),
            api_total=api_total,
            request_stats=dict(request_stats or {}),
            extra=dict(extra or {}),
        )

    def validate(self) -> None:
        """Check every field's type and the counts' consistency.

        :raises ValueError: the first problem found, in words.
        """
        _check_name(self.service, "service")
        _check_name(self.stage, "stage")
        for label in ("window_start", "window_end", "created_at"):
            _check_iso(getattr(self, label), label)
        if not isinstance(self.parts, list) or not all(isinstance(part, PartInfo) for part in self.parts):
            raise ValueError("parts must be a list of PartInfo")
        names = [part.name for part in self.parts]
        if len(set(names)) != len(names):
            raise ValueError("parts lists a part twice")
        _check_count(self.record_count, "record_count")
        if self.api_total is not None:
            _check_count(self.api_total, "api_total")
        if self.record_count != sum(part.records for part in self.parts):
            raise ValueError(f"record_count {self.record_count} is not the sum of the parts' records")
        for label in ("request_stats", "extra"):
            if not isinstance(getattr(self, label), dict):
                raise ValueError(f"{label} must be a JSON object")
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version!r} is not {FORMAT_VERSION} (another provider version?)"
            )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, keys in reading order."""
        return {
            "format_version": self.format_version,
            "service": self.service,
            "stage": self.stage,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "created_at": self.created_at,
            "record_count": self.record_count,
            "api_total": self.api_total,
            "request_stats": self.request_stats,
            "parts": [part.as_dict() for part in self.parts],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """Rebuild and validate from :meth:`as_dict` output (unknown keys are ignored: newer optional fields).

        :raises ValueError: a key is missing or a value is wrong.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a manifest must be a JSON object, got {type(data).__name__}")
        missing = [key for key in _MANIFEST_KEYS if key not in data]
        if missing:
            raise ValueError(f"missing keys {missing}")
        if not isinstance(data["parts"], list):
            raise ValueError("parts must be a list")
        parts = []
        for index, item in enumerate(data["parts"]):
            try:
                parts.append(PartInfo.from_dict(item))
            except ValueError as exc:
                raise ValueError(f"parts[{index}]: {exc}") from exc
        fields = {key: data[key] for key in _MANIFEST_KEYS if key != "parts"}
        return cls(parts=parts, **fields)


_MANIFEST_KEYS: Final = (
    "format_version",
    "service",
    "stage",
    "window_start",
    "window_end",
    "created_at",
    "record_count",
    "api_total",
    "request_stats",
    "parts",
    "extra",
)


def _check_iso(value: object, label: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{label} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{label} is not an ISO 8601 timestamp: {value!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{label} has no UTC offset: {value!r}")


def _check_count(value: object, label: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{label} must be a non-negative integer, got {value!r}")


def write_manifest(window: P, manifest: Manifest) -> P:
    """Write ``manifest`` to ``<window>/<stage>/manifest.json`` (temporary name, then rename) and return its path.

    :raises StagingError: the manifest is invalid or not JSON-serialisable (``extra``, ``request_stats``).
    """
    path = manifest_path(window, manifest.stage)
    try:
        manifest.validate()
    except ValueError as exc:
        raise StagingError(f"manifest is invalid: {exc}", path) from exc
    data = _to_json(manifest.as_dict(), path, "manifest")
    _make_dirs(path.parent)
    _write_atomically(path, data)
    return path


def read_manifest(path: StoragePath) -> Manifest:
    """Read and validate a manifest.

    :raises StagingError: the file is missing, not JSON, or not a valid manifest; the message names the file and
        the problem.
    """
    raw = _read_small(path, "manifest")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StagingError(f"manifest is not valid JSON ({exc})", path) from exc
    try:
        return Manifest.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise StagingError(f"manifest is malformed: {exc}", path) from exc


# --- delivery ledger -----------------------------------------------------------------------------------------------


class DeliveryLedger(Generic[P]):
    """What reached Devo for one window, so a rerun ships only what was not delivered before.

    Append-only and per writer: every acknowledged batch and every fully delivered part is a new small file
    ``<window>/ledger/attempt-<n>-<uuid>-<seq>.(ids|part.json)``, written under a temporary name and renamed.
    A file per event rather than one appended file per attempt because object stores cannot append or flush (a
    blob appears only when closed) and a torn last line could pass for a real id; this way a crash loses at most
    the batch in flight, and two attempts writing at once never touch the same file.

    :param window: the window folder.
    :param attempt: the attempt number in file names (e.g. Airflow's try number); by default one more than the
        highest already in the ledger. Informational only: the uuid keeps concurrent writers apart.
    """

    def __init__(self, window: P, *, attempt: int | None = None) -> None:
        self.window = window
        self.folder: P = window / LEDGER_DIR
        self.attempt = attempt if attempt is not None else self._next_attempt()
        if self.attempt < 1:
            raise ValueError(f"attempt must be positive, got {self.attempt}")
        self._token = uuid.uuid4().hex
        self._sequence = 0

    def record_batch(self, ids: Iterable[str]) -> int:
        """Remember the ids of one batch Devo acknowledged; call it after each acknowledgement. Returns the count.

        :raises ValueError: an id is empty or contains a line break (it could not be read back).
        """
        lines = []
        for record_id in ids:
            if not isinstance(record_id, str) or not record_id or "\n" in record_id or "\r" in record_id:
                raise ValueError(f"a record id must be a non-empty string without line breaks, got {record_id!r}")
            lines.append(record_id)
        if lines:
            self._append("ids", "".join(f"{record_id}\n" for record_id in lines).encode("utf-8", "surrogatepass"))
        return len(lines)

    def mark_part_delivered(self, stage: str, part: PartInfo) -> None:
        """Remember that every record of ``part`` of ``stage`` was acknowledged: a retry resumes after it."""
        _check_name(stage, "stage")
        self._append("part.json", _to_json({"stage": stage, **part.as_dict()}, self.folder, "part marker"))

    def delivered_ids(self) -> set[str]:
        """Every id acknowledged by any attempt (the union of all ledger files). Holds the window's ids in memory."""
        delivered: set[str] = set()
        for path in self._files("ids"):
            text = _read_small(path, "ledger file").decode("utf-8", "surrogatepass")
            if not text.endswith("\n"):
                raise StagingError("ledger file is incomplete (no final line break)", path)
            delivered.update(text.splitlines())
        return delivered

    def delivered_parts(self, stage: str) -> set[PartInfo]:
        """The parts of ``stage`` marked delivered by any attempt.

        Whole :class:`PartInfo` values, not names: a restaged window reuses part names for other bytes, and only a
        part with the same sha256 is the part that was delivered.
        """
        _check_name(stage, "stage")
        delivered: set[PartInfo] = set()
        for path in self._files("part.json"):
            try:
                data = json.loads(_read_small(path, "ledger file"))
                if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
                    raise ValueError("not a part marker")
                marked_stage = data.pop("stage")
                part = PartInfo.from_dict(data)
            except ValueError as exc:
                raise StagingError(f"ledger file is malformed ({exc})", path) from exc
            if marked_stage == stage:
                delivered.add(part)
        return delivered

    def pending_parts(self, stage: str, parts: Iterable[PartInfo]) -> list[PartInfo]:
        """The ``parts`` of ``stage`` not yet delivered, in their order: where a retry continues."""
        done = self.delivered_parts(stage)
        return [part for part in parts if part not in done]

    def _append(self, kind: str, data: bytes) -> None:
        self._sequence += 1
        name = f"attempt-{self.attempt:04d}-{self._token}-{self._sequence:06d}.{kind}"
        _make_dirs(self.folder)
        _write_atomically(self.folder / name, data)

    def _entries(self) -> Iterator[tuple[re.Match[str], P]]:
        if not self.folder.exists():
            return
        for path in sorted(self.folder.iterdir(), key=lambda child: child.name):
            match = _LEDGER_FILE.fullmatch(path.name)
            if match is not None:  # temporary files and strangers are not ledger entries
                yield match, path

    def _files(self, kind: str) -> Iterator[P]:
        return (path for match, path in self._entries() if match.group(4) == kind)

    def _next_attempt(self) -> int:
        return 1 + max((int(match.group(1)) for match, _ in self._entries()), default=0)


# --- delivery marker and retention ---------------------------------------------------------------------------------


def mark_window_delivered(window: P, summary: Mapping[str, Any]) -> P:
    """Record that the whole window is delivered (``delivered.json``, with ``summary``); retention may then delete it.

    :raises StagingError: ``summary`` is not JSON-serialisable.
    """
    path = window / DELIVERED_NAME
    data = _to_json(
        {"format_version": FORMAT_VERSION, "delivered_at": _now(), "summary": dict(summary)}, path, "summary"
    )
    _make_dirs(window)
    _write_atomically(path, data)
    return path


def delivered_at(window: StoragePath) -> datetime | None:
    """When the window was marked delivered, or None when it was not (or is being restaged).

    :raises StagingError: the marker exists but is malformed.
    """
    path = window / DELIVERED_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(_read_small(path, "delivery marker"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        _check_iso(data.get("delivered_at"), "delivered_at")
        return datetime.fromisoformat(data["delivered_at"])
    except ValueError as exc:
        raise StagingError(f"delivery marker is malformed ({exc})", path) from exc


def is_window_delivered(window: StoragePath) -> bool:
    """Whether the window carries a valid delivery marker."""
    return delivered_at(window) is not None


def expired_windows(base: P, service: str, *, older_than: datetime) -> list[P]:
    """The windows of ``service`` that ended and were delivered before ``older_than``, oldest first.

    A window without a marker, with a malformed marker (logged), or whose folder name is not a window's is never
    returned: when in doubt, data stays.
    """
    limit = _utc(older_than, "older_than")
    folder = base / _check_name(service, "service")
    if not folder.exists():
        return []
    expired: list[P] = []
    for window in sorted(folder.iterdir(), key=lambda child: child.name):
        try:
            _, end = window_bounds(window)
        except ValueError:
            continue
        if end >= limit:
            continue
        try:
            when = delivered_at(window)
        except StagingError as exc:
            log.warning("Keeping %s: %s", _display(window), exc.detail)
            continue
        if when is not None and when < limit:
            expired.append(window)
    return expired


def remove_window(window: StoragePath, *, force: bool = False) -> None:
    """Delete a window folder and everything in it (parts, manifests, ledger).

    The delivery marker goes last, so an interrupted removal is still a delivered window the next clean-up finishes.
    Forgetting the ledger is what retention means: rerunning a window after its removal ships it again.

    :param force: delete even if the window is not marked delivered.
    :raises StagingError: the window is not delivered and ``force`` is false.
    """
    if not force and not is_window_delivered(window):
        raise StagingError("window is not marked delivered; refusing to delete undelivered data", window)
    if not window.exists():
        return
    marker = window / DELIVERED_NAME
    for child in list(window.iterdir()):
        if child.name != DELIVERED_NAME:
            _remove_tree(child)
    _remove_tree(marker)
    _remove_tree(window)


def _remove_tree(path: StoragePath) -> None:
    if not path.exists():
        return  # object stores drop an "empty folder" by themselves
    if path.is_dir():
        for child in list(path.iterdir()):
            _remove_tree(child)
        if path.exists():
            path.rmdir()
    else:
        path.unlink()
