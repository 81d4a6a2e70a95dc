"""ISO 8601 times as MDCA, Devo, Airflow and the collector's own files write them, read one way everywhere.

Pure: imports nothing from Airflow.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["parse_iso"]


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
