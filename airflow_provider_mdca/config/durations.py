"""Durations in the collector configuration: seconds, ``"5m"``-style text or ISO 8601, and back."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

from airflow_provider_mdca.config._text import describe

__all__ = ["DURATION_PATTERN", "DURATION_TEXT", "MAX_DURATION", "format_duration", "parse_duration"]

_UNITS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# "300" (seconds), "90s", "5m", "1h30m", "1h 30m", "1d", "2w"; ISO 8601 "PT5M", "P1D", "P1DT12H" (no years or
# months: their length varies, a window must not).
_SHORT = r"\d+|(?:\d+[wdhms] ?)*\d+[wdhms]"
_ISO = r"P(?=\d|T\d)(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?"
DURATION_PATTERN: Final = rf"^(?:{_SHORT}|{_ISO})$"
_SHORT_PART = re.compile(r"(\d+)([wdhms])")
_ISO_PART = re.compile(r"(\d+)([WDHMS])")
DURATION_TEXT = "a duration: seconds as an integer, or a string such as '90s', '5m', '1h30m', '1d' or 'PT5M'"
#: The longest duration the configuration takes: a century. Longer ones are typos (``99999999999w`` would not even
#: fit in a ``timedelta``), and a window's end must stay a date Airflow can compute.
MAX_DURATION: Final = timedelta(days=36_500)


def parse_duration(value: int | str | timedelta) -> timedelta:
    """A duration from the config: seconds as an int, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"1d"``, ``"2w"``, ``"PT5M"``.

    >>> parse_duration(300), parse_duration("1h30m"), parse_duration("PT5M")
    (datetime.timedelta(seconds=300), datetime.timedelta(seconds=5400), datetime.timedelta(seconds=300))
    >>> parse_duration("P1DT12H")
    datetime.timedelta(days=1, seconds=43200)

    :raises ValueError: anything else (negative numbers, fractions, months and years included), or a duration
        longer than :data:`MAX_DURATION`.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {DURATION_TEXT}, got {describe(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return _bounded(value, value)
    text = value.strip()
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"expected {DURATION_TEXT}, got {describe(value)}")
    if text.isdigit():
        return _bounded(int(text), value)
    if text.startswith("P"):
        date_part, _, time_part = text[1:].partition("T")
        seconds = sum(int(n) * _UNITS[u.lower()] for n, u in _ISO_PART.findall(date_part))
        # In the time part M means minutes (in the date part it would mean months, which the pattern refuses).
        seconds += sum(int(n) * _UNITS[u.lower()] for n, u in _ISO_PART.findall(time_part))
        return _bounded(seconds, value)
    return _bounded(sum(int(n) * _UNITS[u] for n, u in _SHORT_PART.findall(text)), value)


def _bounded(seconds: int, value: int | str) -> timedelta:
    """``seconds`` as a timedelta, refused beyond :data:`MAX_DURATION` (Python's ints are unbounded, timedelta not)."""
    if seconds > MAX_DURATION.total_seconds():
        shown = describe(value) if isinstance(value, str) else str(value)
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)} (100 years), got {shown}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest config spelling of ``delta``, e.g. ``"5m"``, ``"1h30m"``, ``"1d"``, ``"0s"``.

    >>> format_duration(timedelta(minutes=90)), format_duration(timedelta(0)), format_duration(timedelta(days=1))
    ('1h30m', '0s', '1d')
    """
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":  # "7d" reads better than "1w" next to the other day-based defaults
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
