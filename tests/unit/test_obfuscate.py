"""Field obfuscation: paths, methods, copies, key hygiene, and a property against a naive reference."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mdca.transforms.obfuscate import (
    ObfuscationRule,
    ObfuscationStats,
    Obfuscator,
    parse_path,
    parse_rules,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = b"super-secret-key-material-0123456789"
OTHER_KEY = b"another-key-entirely-0123456789"


def expected_hash(value: Any, key: bytes = KEY) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    )
    return "hmac-sha256:" + hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def make(*rules: str | tuple[str, str], key: bytes | None = KEY) -> Obfuscator:
    parsed = [ObfuscationRule(r) if isinstance(r, str) else ObfuscationRule(r[0], r[1]) for r in rules]
    return Obfuscator(parsed, key=key)


ACTIVITY = {
    "_id": "act-1",
    "timestamp": 1700000000000,
    "user": {"userName": "alice@contoso.com", "userTags": ["t1", "t2"]},
    "device": {"clientIP": "10.0.0.1", "userAgent": "curl"},
    "entities": [{"label": "Alice", "id": 1}, {"label": "Bob", "id": "b"}, {"id": 3}],
    "rawDataJson": {
        "items": [
            {"owner": {"email": "o1@x.com", "name": "O1"}},
            {"owner": {"email": "o2@x.com"}},
            {"owner": None},
        ]
    },
    "grid": [[{"b": "x", "c": 1}, {"b": "y"}], [], [{"c": 2}]],
}


def test_dotted_path():
    out = make("user.userName").apply(ACTIVITY)
    assert out["user"]["userName"] == expected_hash("alice@contoso.com")
    assert len(out["user"]["userName"]) == len("hmac-sha256:") + 64
    assert out["user"]["userTags"] == ["t1", "t2"]


def test_every_element_of_a_list():
    ob = make("entities[].label")
    out = ob.apply(ACTIVITY)
    assert [e.get("label") for e in out["entities"]] == [expected_hash("Alice"), expected_hash("Bob"), None]
    assert [e["id"] for e in out["entities"]] == [1, "b", 3]
    assert ob.stats == ObfuscationStats(events=1, values_replaced=2, values_none=0, paths_missing=1)


def test_deep_path_through_a_list():
    ob = make("rawDataJson.items[].owner.email")
    out = ob.apply(ACTIVITY)
    owners = [item["owner"] for item in out["rawDataJson"]["items"]]
    assert owners == [{"email": expected_hash("o1@x.com"), "name": "O1"}, {"email": expected_hash("o2@x.com")}, None]
    assert ob.stats.paths_missing == 1  # owner is None: cannot go further


def test_nested_arrays():
    out = make(("grid[][].b", "mask")).apply(ACTIVITY)
    assert out["grid"] == [[{"b": "***", "c": 1}, {"b": "***"}], [], [{"c": 2}]]


def test_path_ending_in_brackets_replaces_each_element():
    out = make("user.userTags[]").apply(ACTIVITY)
    assert out["user"]["userTags"] == [expected_hash("t1"), expected_hash("t2")]


def test_missing_paths_are_ignored_and_counted():
    ob = make("nope", "user.nope", "device.clientIP.deeper", "entities.label", "user[]")
    out = ob.apply(ACTIVITY)
    assert out == ACTIVITY
    assert ob.stats == ObfuscationStats(events=1, values_replaced=0, values_none=0, paths_missing=5)


def test_non_string_leaves_hash_from_canonical_json():
    event = {"n": 42, "f": 1.5, "b": True, "l": [1, "é"], "d": {"z": 1, "a": [2]}}
    out = make("n", "f", "b", "l", "d").apply(event)
    assert out["n"] == expected_hash(42) == expected_hash("42")  # int and str ids join alike on purpose
    assert out["f"] == expected_hash(1.5)
    assert out["b"] == expected_hash("true")
    assert out["l"] == expected_hash('[1,"é"]')
    assert out["d"] == expected_hash('{"a":[2],"z":1}')
    assert make("d").apply({"d": {"a": [2], "z": 1}})["d"] == out["d"]  # key order does not matter


def test_none_stays_none_for_both_methods():
    ob = make("a", ("b", "mask"))
    assert ob.apply({"a": None, "b": None}) == {"a": None, "b": None}
    assert ob.stats == ObfuscationStats(events=1, values_replaced=0, values_none=2, paths_missing=0)


def test_mask_is_a_constant_whatever_the_value():
    out = make(("a", "mask"), ("b", "mask"), ("c", "mask"), key=None).apply(
        {"a": "x", "b": "a much longer value", "c": [1]}
    )
    assert out == {"a": "***", "b": "***", "c": "***"}


def test_hash_is_stable_and_depends_on_the_key():
    event = {"user": {"userName": "alice"}}
    first = make("user.userName").apply(event)
    again = make("user.userName", key=bytearray(KEY)).apply(copy.deepcopy(event))
    other = make("user.userName", key=OTHER_KEY).apply(event)
    assert first == again
    assert other["user"]["userName"] != first["user"]["userName"]
    assert other["user"]["userName"] == expected_hash("alice", OTHER_KEY)


def test_lone_surrogates_hash_instead_of_failing():
    assert make("a").apply({"a": "\ud800"})["a"] == expected_hash("\ud800")


def test_input_never_mutated_and_only_changed_paths_are_copied():
    event = copy.deepcopy(ACTIVITY)
    before = copy.deepcopy(event)
    out = make("user.userName", "entities[].label", ("grid[][].b", "mask")).apply(event)
    assert event == before
    assert out is not event
    assert out["user"] is not event["user"] and out["entities"] is not event["entities"]
    assert out["entities"][2] is event["entities"][2]  # no label: not copied
    assert out["device"] is event["device"] and out["rawDataJson"] is event["rawDataJson"]
    assert out["grid"][1] is event["grid"][1] and out["grid"][2] is event["grid"][2]


def test_no_rules_still_returns_a_new_top_level_dict():
    event = {"a": 1}
    out = Obfuscator([], key=None).apply(event)
    assert out == event and out is not event


def test_overlapping_rules_apply_in_order():
    ob = make("user", "user.userName")
    out = ob.apply({"user": {"userName": "alice"}})
    assert out == {"user": expected_hash({"userName": "alice"})}
    assert ob.stats.paths_missing == 1


@pytest.mark.parametrize(
    "path", ["", "a..b", "[]x", "[]", "a.", ".a", "a[", "a]", "a[]b", "a[x]", "a[]]", " a", "a. b", "a.b "]
)
def test_malformed_paths_are_rejected_naming_the_path(path):
    with pytest.raises(ValueError, match=re.escape(repr(path))):
        ObfuscationRule(path)
    with pytest.raises(ValueError, match=re.escape(repr(path))):
        parse_rules([path])


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("user.userName", ("user", "userName")),
        ("entities[].label", ("entities", None, "label")),
        ("rawDataJson.items[].owner.email", ("rawDataJson", "items", None, "owner", "email")),
        ("a[][].b", ("a", None, None, "b")),
        ("tags[]", ("tags", None)),
        ("Client IP.x", ("Client IP", "x")),
    ],
)
def test_parse_path(path, steps):
    assert parse_path(path) == steps


def test_key_required_for_hmac_rules():
    with pytest.raises(ValueError, match="HMAC key is required"):
        make("a", key=None)
    assert make(("a", "mask"), key=None).apply({"a": "x"}) == {"a": "***"}


@pytest.mark.parametrize(
    ("key", "message"), [("a-str-key-not-bytes-123", "must be bytes, got str"), (b"short", "at least 16 bytes, got 5")]
)
def test_bad_keys_are_refused_without_showing_them(key, message):
    with pytest.raises(ValueError, match=message) as info:
        make("a", key=key)
    assert str(key) not in str(info.value) and "short" not in str(info.value)


def test_key_never_in_repr_or_errors():
    ob = make("user.userName", ("device.clientIP", "mask"))
    text = repr(ob)
    assert "super-secret" not in text and KEY.hex() not in text
    assert text == (
        "Obfuscator(rules=[ObfuscationRule(path='user.userName', method='hmac'), "
        "ObfuscationRule(path='device.clientIP', method='mask')], key=<set>)"
    )
    assert not hasattr(ob, "__dict__")  # __slots__: nothing to dump the key from
    assert all(KEY not in repr(getattr(ob, name)).encode() for name in ("_mac", "_rules", "stats"))
    cases = [
        (lambda: Obfuscator([ObfuscationRule("a"), ObfuscationRule("a")], key=KEY), "listed more than once"),
        (lambda: Obfuscator(["a"], key=KEY), re.escape("rules[0] must be an ObfuscationRule, got str")),
        (
            lambda: ob.apply({"user": {"userName": {1, 2}}}),
            "^obfuscation path 'user.userName': cannot hash a set value$",
        ),
        (lambda: ob.apply([]), "an event must be a dict, got list"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            build()
        assert "super-secret" not in str(info.value) and KEY.hex() not in str(info.value)
        assert "{1, 2}" not in str(info.value)  # nor the value being hidden


def test_duplicate_paths_are_rejected():
    with pytest.raises(ValueError, match="'a' is listed more than once"):
        make("a", ("a", "mask"))


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method must be one of"):
        ObfuscationRule("a", "sha1")


def test_parse_rules_forms():
    assert parse_rules(["user.userName", {"path": "a[].b", "method": "mask"}, {"path": "c"}]) == [
        ObfuscationRule("user.userName", "hmac"),
        ObfuscationRule("a[].b", "mask"),
        ObfuscationRule("c", "hmac"),
    ]
    assert parse_rules({"x": "mask", "y.z": "hmac"}) == [ObfuscationRule("x", "mask"), ObfuscationRule("y.z", "hmac")]
    assert parse_rules([]) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("user.userName", "not a string"),
        ([3], "item 0: expected a path or a mapping, got int"),
        ([{"path": "a", "methd": "mask"}], "unknown keys ['methd']"),
        ([{"method": "mask"}], "item 0: path must be a str, got NoneType"),
        ([{"path": "a", "method": "MASK"}], "method must be one of"),
        ({"a": "sha1"}, "method must be one of"),
        (42, "must be a list or a mapping, got int"),
    ],
)
def test_parse_rules_rejects(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rules(config)


def test_stats_accumulate_and_serialise():
    ob = make("a")
    for _ in range(3):
        ob.apply({"a": "x", "b": 1})
    ob.apply({"b": 1})
    assert ob.stats.as_dict() == {"events": 4, "values_replaced": 3, "values_none": 0, "paths_missing": 1}


# ---- property: the obfuscator equals a naive deep-copy-and-mutate reference ----

KEYS = "abc"
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4))
NODE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=15,
)
EVENT = st.dictionaries(st.sampled_from(KEYS), NODE, max_size=3)
SEGMENT = st.builds(lambda key, lists: key + "[]" * lists, st.sampled_from(KEYS), st.integers(0, 2))
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map(".".join)
RULES = st.lists(st.tuples(PATH, st.sampled_from(["hmac", "mask"])), max_size=4, unique_by=lambda rule: rule[0])


def reference(event: dict[str, Any], rules: list[tuple[str, str]]) -> tuple[dict[str, Any], ObfuscationStats]:
    stats = ObfuscationStats(events=1)
    out = copy.deepcopy(event)

    def leaf(value: Any, method: str) -> Any:
        if value is None:
            stats.values_none += 1
            return None
        stats.values_replaced += 1
        return "***" if method == "mask" else expected_hash(value)

    def walk(node: Any, steps: list[str | None], method: str) -> Any:
        if not steps:
            return leaf(node, method)
        step, rest = steps[0], steps[1:]
        if step is None and isinstance(node, list):
            for i, child in enumerate(node):
                node[i] = walk(child, rest, method)
        elif step is not None and isinstance(node, dict) and step in node:
            node[step] = walk(node[step], rest, method)
        else:
            stats.paths_missing += 1
        return node

    for path, method in rules:
        steps: list[str | None] = []
        for segment in path.split("."):
            steps.append(segment.replace("[]", ""))
            steps.extend([None] * segment.count("[]"))
        walk(out, steps, method)
    return out, stats


@PROPERTY
@given(event=EVENT, rules=RULES)
def test_apply_matches_reference_and_touches_nothing_else(event, rules):
    before = copy.deepcopy(event)
    ob = Obfuscator([ObfuscationRule(path, method) for path, method in rules], key=KEY)
    expected, expected_stats = reference(event, rules)
    assert ob.apply(event) == expected
    assert ob.stats == expected_stats
    assert event == before


@PROPERTY
@given(event=EVENT, path=PATH)
def test_mask_and_hmac_reach_the_same_places(event, path):
    # Whatever the method, the same leaves are replaced: the shape of the event never depends on the method.
    masked = Obfuscator([ObfuscationRule(path, "mask")], key=None)
    hashed = Obfuscator([ObfuscationRule(path, "hmac")], key=KEY)
    out_masked, out_hashed = masked.apply(event), hashed.apply(event)
    assert masked.stats == hashed.stats
    assert _shape(out_masked) == _shape(out_hashed)


def _shape(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_shape(value) for value in node]
    if isinstance(node, str) and (node == "***" or node.startswith("hmac-sha256:")):
        return "<replaced>"
    return node


# -- what each rule reached (issue 14, item 13) ---------------------------------------------------------------------


def test_each_rule_counts_the_fields_it_reached_and_unmatched_names_the_others():
    obfuscator = make("user.userName", "entities[].label", ("user.nmae", "mask"), "note")
    assert obfuscator.unmatched() == []  # nothing seen yet: nothing to say
    obfuscator.apply({"user": {"userName": "alice"}, "entities": [{"label": "a"}, {"label": "b"}], "note": None})
    obfuscator.apply({"user": {"userName": "bob"}, "entities": []})
    assert obfuscator.matched == {"user.userName": 2, "entities[].label": 2, "user.nmae": 0, "note": 1}
    assert obfuscator.unmatched() == ["user.nmae"]  # a None value is a field the rule reached


def test_flattened_entity_fields_are_not_reached_by_entity_paths():
    # Why alerts are obfuscated before flattening: on a flattened event entities[].label reaches nothing.
    obfuscator = make("entities[].label")
    out = obfuscator.apply({"_id": "a", "user_label": "alice", "related_users": 1})
    assert out["user_label"] == "alice" and obfuscator.unmatched() == ["entities[].label"]


def test_without_keeps_the_other_rules_and_the_key():
    obfuscator = make("a", ("b", "mask"), "c")
    rest = obfuscator.without(["a"])
    assert rest is not None and [rule.path for rule in rest.rules] == ["b", "c"]
    assert rest.apply({"a": "x", "b": "y", "c": "z"}) == {"a": "x", "b": "***", "c": expected_hash("z")}
    assert rest.matched == {"b": 1, "c": 1} and obfuscator.matched == {"a": 0, "b": 0, "c": 0}
    assert obfuscator.without(["a", "b", "c"]) is None
    assert "super-secret" not in repr(rest)
