"""One part file: :class:`PartInfo` describing it, writing one (:class:`OpenPart`) and reading parts back.

A part is ``part-NNNNN.ndjson.gz``: compact JSON lines, gzip'd through :mod:`airflow_provider_mdca.compression`
(``_GZIP``, the codec both directions use; tests swap it). Reading checks a part against its :class:`PartInfo`:
the compressed file is read once, its sha256 checked before any record is yielded, then it is decompressed once,
its records and bytes counted as they are read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

from airflow_provider_mdca import compression, json_codec
from airflow_provider_mdca.compression import GzipCodec
from airflow_provider_mdca.staging.errors import StagingError
from airflow_provider_mdca.staging.storage import (
    StoragePath,
    create_file,
    discard_file,
    replace_file,
    sync_file,
    temp_name,
)

__all__ = ["PartInfo", "read_part", "read_parts"]

# Staging is transient (removed after the retention), so CPU matters more than bytes: compression.py picks the
# fastest gzip at hand and its fast end.
_GZIP: GzipCodec = compression.DEFAULT
_CHUNK: Final = 1024 * 1024
# GzipFile.write has a fixed cost per call: hand it about this much at a time rather than one line per call.
_WRITE_BUFFER: Final = 256 * 1024

_PART_NAME = re.compile(r"part-\d{5,}\.ndjson\.gz")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def part_name(index: int) -> str:
    return f"part-{index:05d}.ndjson.gz"


# --- writing one part ------------------------------------------------------------------------------------------------


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


class OpenPart:
    """The part being written: a temporary file until :meth:`finish` renames it to its final name.

    Lines wait in a small buffer and reach gzip about 256 KiB at a time, joined by their line breaks; the record
    count is the buffer's length, so the per-record path stays short (staging cost is per record, not per byte).
    """

    def __init__(self, final: StoragePath, *, max_bytes: int, max_records: int | None) -> None:
        self.final = final
        self.temp = temp_name(final)
        self._max_records = max_records
        self._flushed_records = 0
        self._flushed_bytes = 0
        self._room = max_bytes  # bytes the buffer may still take before the part is full
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._raw = create_file(self.temp)
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
        sync_file(self.temp, self._raw)
        self._raw.close()
        replace_file(self.temp, self.final)
        return PartInfo(self.final.name, self.records, self.size, self._hashing.hexdigest())

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._gzip.close()
        with contextlib.suppress(Exception):
            self._raw.close()
        discard_file(self.temp)


# --- reading parts ---------------------------------------------------------------------------------------------------


def read_part(folder: StoragePath, part: PartInfo, *, verify: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of one part of ``folder`` (a stage folder, e.g. ``PartWriter.folder``).

    The compressed file is read whole, once (one download on an object store; a few MB, a part being at most
    ``max_part_bytes`` of JSON lines before compression), then decompressed once from memory, 1 MiB at a time, one
    line at a time. With ``verify`` (the default) its sha256 is checked against ``part`` before any record is
    yielded, so a corrupt or replaced part yields nothing; the bytes checked are the bytes decoded, so a file
    changed under a reader cannot slip through either. Its record count and uncompressed size are counted as the
    records are read and checked at the end of the part: behind a matching sha256 a mismatch there means the
    manifest disagrees with its own part. ``verify=False`` checks nothing, for salvaging a damaged part.

    :raises StagingError: the part is missing or unreadable, its sha256 does not match ``part`` (before any record),
        its record count or size does not (after its last record), its gzip data is corrupt, or a line is not a
        JSON object. The message names the part and what mismatched.
    """
    path = folder / part.name
    data = _read_part(path, part)
    if verify:
        digest = hashlib.sha256(data).hexdigest()
        if digest != part.sha256:
            raise StagingError(f"part {part.name}: {_mismatch('sha256', part.sha256, digest)}", path)
    yield from _records(data, part, path, check_counts=verify)


def read_parts(folder: StoragePath, parts: Iterable[PartInfo], *, verify: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of ``parts`` of ``folder`` in order; see :func:`read_part` for the checks."""
    for part in parts:
        yield from read_part(folder, part, verify=verify)


def _read_part(path: StoragePath, part: PartInfo) -> bytes:
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise StagingError(f"part {part.name} not found", path) from exc
    except OSError as exc:
        raise StagingError(f"part {part.name} cannot be opened ({exc.strerror or exc})", path) from exc
    with handle:
        try:
            data: bytes = handle.read()
        except OSError as exc:
            raise StagingError(f"part {part.name} cannot be read ({exc.strerror or exc})", path) from exc
    return data


def _records(data: bytes, part: PartInfo, path: StoragePath, *, check_counts: bool) -> Iterator[dict[str, Any]]:
    number = size = 0
    tail = b""
    try:
        with _GZIP.reader(io.BytesIO(data)) as unzipped:
            # 1 MiB at a time, split here: a third cheaper than GzipFile's line iterator; beyond the compressed
            # part, only a chunk and its lines are held.
            while chunk := unzipped.read(_CHUNK):
                size += len(chunk)
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()  # the start of a line that goes on in the next chunk (b"" at a line end)
                for line in lines:
                    number += 1
                    yield _decode(line, number, part, path)
    except _GZIP.errors as exc:
        raise StagingError(f"part {part.name}: gzip data is corrupt ({type(exc).__name__}: {exc})", path) from exc
    if tail:  # a last line without its line break (only a part read with verify=False can have one)
        number += 1
        yield _decode(tail, number, part, path)
    if check_counts:
        _check_counts(part, path, records=number, size=size)


def _check_counts(part: PartInfo, path: StoragePath, *, records: int, size: int) -> None:
    # The sha256 matched, so these are the writer's bytes: a mismatch means the manifest disagrees with its part.
    for label, expected, actual in (("record count", part.records, records), ("uncompressed size", part.bytes, size)):
        if expected != actual:
            raise StagingError(f"part {part.name}: {_mismatch(label, expected, actual)}", path)


def _mismatch(label: str, expected: object, actual: object) -> str:
    return f"{label} mismatch: the manifest says {expected}, the file has {actual}"


def _decode(line: bytes, number: int, part: PartInfo, path: StoragePath) -> dict[str, Any]:
    # Messages say where and why, never the record itself: records are telemetry, not log material.
    try:
        value = json_codec.decode(line)
    except ValueError as exc:
        raise StagingError(f"part {part.name} line {number} is not JSON ({exc})", path) from exc
    if not isinstance(value, dict):
        raise StagingError(f"part {part.name} line {number} is a JSON {type(value).__name__}, not an object", path)
    return value
