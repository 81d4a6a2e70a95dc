"""The records' JSON codec: msgspec's speed with the standard library's reach, the same text either way."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_mdca import json_codec

FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _stdlib(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8", "surrogatepass"
    )


@settings(max_examples=300, deadline=None)
@given(record=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_any_record_reads_back_identical_and_parses_with_the_standard_library(record):
    text = json_codec.encode(record)
    assert json_codec.decode(text) == record
    assert json.loads(text) == record
    assert b"\n" not in text, "one record, one line"


@settings(max_examples=200, deadline=None)
@given(record=st.dictionaries(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8), JSON_VALUES))
def test_valid_unicode_is_written_as_compact_json_like_the_standard_library(record):
    # Floats may be spelled differently (1e-07 against 1e-7): compare values, and the text for everything else.
    text = json_codec.encode(record)
    assert json.loads(text) == json.loads(_stdlib(record))
    if not _has_float(record):
        assert text == _stdlib(record)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


def test_a_lone_surrogate_is_escaped_and_reads_back_identical():
    record = {"name": "broken \ud83d emoji", "fine": "é", "nan": float("nan")}
    text = json_codec.encode(record)
    assert text == b'{"name":"broken \\ud83d emoji","fine":"\\u00e9","nan":null}'
    assert json_codec.decode(text) == {"name": "broken \ud83d emoji", "fine": "é", "nan": None}


def test_non_finite_numbers_become_null_reading_and_writing():
    assert (
        json_codec.encode({"a": float("nan"), "b": float("inf"), "c": [float("-inf")]})
        == b'{"a":null,"b":null,"c":[null]}'
    )
    assert json_codec.decode(b'{"a": NaN, "b": -Infinity, "c": 1e400, "d": 1.5}') == {
        "a": None,
        "b": None,
        "c": None,
        "d": 1.5,
    }


def test_integers_beyond_64_bits_keep_every_digit():
    big = 123456789012345678901234567890
    assert json_codec.decode(json_codec.encode({"n": big, "m": -big})) == {"n": big, "m": -big}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b'{"a": 1', json.JSONDecodeError),
        (b'{"a": 1} trailing', json.JSONDecodeError),
        (b'{"a": "\xff"}', UnicodeDecodeError),
        (b"", json.JSONDecodeError),
    ],
)
def test_text_that_is_not_json_is_a_value_error(text, error):
    with pytest.raises(error) as info:
        json_codec.decode(text)
    assert isinstance(info.value, ValueError)


def test_an_object_json_cannot_hold_is_a_type_error():
    with pytest.raises(TypeError, match="object"):
        json_codec.encode({"what": object()})
    assert math.isnan(float("nan"))  # the module never changes float semantics for the caller


def test_json_nested_too_deeply_is_a_value_error_both_ways():
    with pytest.raises(ValueError, match="nested too deeply to read"):
        json_codec.decode(b"[" * 100_000 + b"]" * 100_000)
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(ValueError, match="nested too deeply to write"):
        json_codec.encode(nested)
