"""ISO 8601 times as MDCA, Devo, Airflow and the collector's own files write them, read one way everywhere.

Pure: imports nothing from Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["epoch_ms", "format_iso", "parse_iso"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_iso(text: str) -> datetime:
    """ISO 8601 text as an aware datetime; a time without an offset is UTC. ValueError when it is not a time.

    A trailing ``Z`` (or ``z``) is read on Python 3.10 too, whose ``fromisoformat`` does not know it; an offset is
    kept as given.

    >>> parse_iso("2026-11-28T12:00:00.250Z").isoformat()
    '2026-11-28T12:00:00.250000+00:00'
    >>> parse_iso(" 2026-11-28 ").isoformat()
    '2026-11-28T00:00:00+00:00'
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    moment = datetime.fromisoformat(cleaned)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def epoch_ms(value: object) -> int | None:
    """An instant as MDCA writes it, epoch milliseconds or ISO 8601 text, in epoch ms; None when it is neither.

    >>> epoch_ms(1764331200250), epoch_ms("2025-11-28T12:00:00.250Z"), epoch_ms("soon"), epoch_ms(True)
    (1764331200250, 1764331200250, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return (parse_iso(value) - _EPOCH) // timedelta(milliseconds=1)
        except ValueError:
            return None
    return None


def format_iso(moment: datetime) -> str:
    """An aware datetime as UTC ISO 8601 text with ``Z``, microseconds kept when there are some.

    >>> format_iso(parse_iso("2026-12-06T09:00:00+01:00"))
    '2026-12-06T08:00:00Z'
    """
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
