"""Manifests: a stage's commit point (its parts, counts, sha256s, request stats), written, read and followed.

A stage is complete when ``<window>/<stage>/manifest.json`` exists; XCom carries only that location, and
:func:`read_stage` streams the stage's records from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from airflow_provider_mdca.staging.errors import StagingError
from airflow_provider_mdca.staging.layout import FORMAT_VERSION, as_utc, check_name, manifest_path
from airflow_provider_mdca.staging.parts import PartInfo, read_parts
from airflow_provider_mdca.staging.storage import (
    P,
    StoragePath,
    make_dirs,
    now_iso,
    read_small,
    to_json,
    write_atomically,
)

__all__ = ["Manifest", "read_stage", "read_manifest", "write_manifest"]


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
    created_at: str = field(default_factory=now_iso)
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
            window_start=as_utc(start, "start").isoformat(),
            window_end=as_utc(end, "end").isoformat(),
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
        check_name(self.service, "service")
        check_name(self.stage, "stage")
        for label in ("window_start", "window_end", "created_at"):
            check_iso(getattr(self, label), label)
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


def check_iso(value: object, label: str) -> None:
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
    data = to_json(manifest.as_dict(), path, "manifest")
    make_dirs(path.parent)
    write_atomically(path, data)
    return path


def read_manifest(path: StoragePath) -> Manifest:
    """Read and validate a manifest.

    :raises StagingError: the file is missing, not JSON, or not a valid manifest; the message names the file and
        the problem.
    """
    raw = read_small(path, "manifest")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StagingError(f"manifest is not valid JSON ({exc})", path) from exc
    try:
        return Manifest.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise StagingError(f"manifest is malformed: {exc}", path) from exc


def read_stage(path: StoragePath, *, verify: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of the stage whose manifest is at ``path`` (the location XCom carries)."""
    manifest = read_manifest(path)
    yield from read_parts(path.parent, manifest.parts, verify=verify)
