"""Compact JSON for records: msgspec's C codec, with the standard library for the few values msgspec refuses.

A record crosses JSON four times on its way to Devo (MDCA's page, the staged part written and read back, Devo's
wire), and at tens of thousands of records a second the codec is most of the CPU: msgspec (already in Airflow's own
dependencies) is several times as fast as :mod:`json` (README, "Performance"). The rules are the same whichever
codec does the work:

- compact (no spaces), UTF-8, non-ASCII characters as they are, keys in the record's order; a datetime is
  written as its ISO 8601 text and a set as a list (msgspec's rules), other objects are refused;
- a string holding a lone surrogate (JSON may escape one, UTF-8 cannot carry it) is written ASCII-escaped, so it
  reads back identical;
- non-finite numbers (``NaN``, ``Infinity``: not JSON, though Python's :mod:`json` reads them) become ``null``,
  on reading and on writing: every staged part and every event sent is valid JSON.

>>> encode({"b": "é", "n": 1, "x": float("nan")}).decode()
'{"b":"é","n":1,"x":null}'
>>> decode(b'{"n": 123456789012345678901234567890, "f": Infinity}')
{'n': 123456789012345678901234567890, 'f': None}
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import msgspec

__all__ = ["decode", "encode"]

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder()
_ASCII_ENCODER: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, without a line break.

    :raises TypeError: a value JSON cannot hold (e.g. an object of a class msgspec does not know).
    :raises ValueError: the value is nested too deeply to write.
    """
    try:
        try:
            return _ENCODER.encode(value)
        except UnicodeEncodeError:
            # A lone surrogate has no UTF-8 form; its escape reads back to the identical string.
            return _ASCII_ENCODER.encode(_finite(value)).encode("ascii")
    except RecursionError:
        raise ValueError("the value is nested too deeply to write as JSON") from None


def decode(data: bytes | str) -> Any:
    """The value of one JSON text.

    :raises ValueError: the text is not JSON (a :class:`json.JSONDecodeError`, or a :class:`UnicodeDecodeError`
        for bytes that are not UTF-8), with the position where it went wrong; or it is nested too deeply to read
        (a hostile or broken server's answer must not end in a RecursionError).
    """
    try:
        try:
            return _DECODER.decode(data)
        except msgspec.DecodeError:
            # What msgspec refuses but the standard library reads: lone surrogates, NaN/Infinity, numbers beyond a
            # double (1e400). Anything else fails here too, with json's message and position.
            return json.loads(data, parse_constant=_null, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to read") from None


def _null(_constant: str) -> None:
    return None


def _finite_float(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def _finite(value: Any) -> Any:
    """``value`` with its non-finite floats as ``None`` (only on the rare path through :mod:`json`)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
