"""The on-disk layout: window and stage folder names, the files' fixed names, and the checks on path segments.

Only paths are computed here; nothing is created. See the package docstring for the picture.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Final

from airflow_provider_mdca.staging.storage import P, StoragePath

__all__ = [
    "DELIVERED_NAME",
    "FORMAT_VERSION",
    "LEDGER_DIR",
    "MANIFEST_NAME",
    "format_timestamp",
    "manifest_path",
    "stage_dir",
    "window_bounds",
    "window_dir",
]

MANIFEST_NAME: Final = "manifest.json"
DELIVERED_NAME: Final = "delivered.json"
LEDGER_DIR: Final = "ledger"
FORMAT_VERSION: Final = 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # one safe path segment; never "." or ".."
_STAMP = r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{6}))?Z"
_WINDOW_NAME = re.compile(f"{_STAMP}_{_STAMP}")
_RESERVED_STAGES = frozenset({LEDGER_DIR})


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
    utc = as_utc(moment, what)
    text = f"{utc.year:04d}{utc.month:02d}{utc.day:02d}T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}"
    return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"


def as_utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got the naive datetime {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} must be one path segment of letters, digits, '_', '.', '-', got {value!r}")
    return value


def window_dir(base: P, service: str, start: datetime, end: datetime) -> P:
    """The folder of one window: ``<base>/<service>/<start>_<end>`` (only computed; nothing is created).

    :raises ValueError: a bound is naive (the message names it), ``start`` is after ``end``, or ``service`` is not
        a safe path segment.
    """
    check_name(service, "service")
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
    check_name(stage, "stage")
    if stage in _RESERVED_STAGES:
        raise ValueError(f"stage {stage!r} is reserved")
    return window / stage


def manifest_path(window: P, stage: str) -> P:
    """Where the manifest of ``stage`` lives in ``window``."""
    return stage_dir(window, stage) / MANIFEST_NAME
