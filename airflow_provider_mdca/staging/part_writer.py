"""PartWriter: streams the records of one stage of a window into parts, rolling over at the part bounds.

Each part is written and hashed by :mod:`airflow_provider_mdca.staging.parts`; this module decides what goes into
which part, restages a window (its old manifest and delivery marker go first) and cleans up after a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Generic

from airflow_provider_mdca import json_codec
from airflow_provider_mdca.staging.errors import StagingError
from airflow_provider_mdca.staging.layout import DELIVERED_NAME, MANIFEST_NAME, stage_dir
from airflow_provider_mdca.staging.parts import OpenPart, PartInfo, part_name
from airflow_provider_mdca.staging.storage import P, discard_file, make_dirs, remove_file

__all__ = ["DEFAULT_MAX_PART_BYTES", "PartWriter"]

DEFAULT_MAX_PART_BYTES: Final = 64 * 1024 * 1024


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record as compact JSON, UTF-8, without its line break (the buffer joins lines with it)."""
    if not isinstance(record, dict):
        if not isinstance(record, Mapping):
            raise TypeError(f"a record must be a JSON object (dict), got {type(record).__name__}")
        record = dict(record)
    return json_codec.encode(record)


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
        self._current: OpenPart | None = None
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

    @property
    def bytes_written(self) -> int:
        """Uncompressed bytes written so far, the part in flight included (what a full disk error reports)."""
        return sum(part.bytes for part in self._parts) + (self._current.size if self._current else 0)

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
            line = encode_record(record)
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
        make_dirs(self.folder)
        # Not discard: if the old marker cannot be removed, retention could delete the window being restaged.
        remove_file(self.window / DELIVERED_NAME)
        remove_file(self.folder / MANIFEST_NAME)
        self._prepared = True

    def _open_next(self) -> OpenPart:
        self._prepare()
        self._current = OpenPart(
            self.folder / part_name(len(self._parts)), max_bytes=self._max_bytes, max_records=self._max_records
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
            discard_file(self.folder / part.name)
        self._parts.clear()
