"""Alert flattening: the seed doc's rule, its edge cases, and properties over random alerts."""

from __future__ import annotations

import copy
import doctest
import itertools
import json
import logging
import math
import re
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from airflow_provider_mdca import json_codec
from airflow_provider_mdca.transforms import flatten, flatten_json
from airflow_provider_mdca.transforms.flatten import (
    DEFAULT_MAX_BYTES,
    FlattenStats,
    count_field,
    entity_field,
    events_size,
    flatten_alert,
    flatten_alerts,
    flatten_event,
    list_field,
)
from airflow_provider_mdca.transforms.flatten_json import flatten_alerts_json, flatten_alerts_json_by_alert

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DOC_BASE = {"id": "baseEventId1", "type": "alert"}
DOC_ARGS = [
    {"type": "domain", "should_flatten": True, "value": [{"id": 1, "name": "domain1"}, {"id": 2, "name": "domain2"}]},
    {
        "type": "user",
        "should_flatten": True,
        "value": [{"id": 1, "name": "user1"}, {"id": 2, "name": "user2"}, {"id": 3, "name": "user3"}],
    },
]


def test_doc_example_exactly():
    events = flatten_event(DOC_BASE, DOC_ARGS)
    expected = [
        {
            "id": "baseEventId1",
            "type": "alert",
            "related_domains": 2,
            "related_users": 3,
            "domain_id": d,
            "domain_name": f"domain{d}",
            "user_id": u,
            "user_name": f"user{u}",
        }
        for d in (1, 2)
        for u in (1, 2, 3)
    ]
    assert events == expected
    # Field order too: base, counts, then the entities' prefixed keys (as the doc lays the event out).
    assert [list(event) for event in events] == [list(event) for event in expected]


def test_no_args_is_the_base_event_alone():
    assert flatten_event({"id": "a"}, []) == [{"id": "a"}]


def test_empty_group_contributes_its_count_and_never_loses_the_event():
    args = [{"type": "ip", "should_flatten": True, "value": []}, *DOC_ARGS]
    events = flatten_event(DOC_BASE, args)
    assert len(events) == 6
    assert all(event["related_ips"] == 0 for event in events)
    assert not any(key.startswith("ip_") for event in events for key in event)


def test_should_flatten_false_keeps_the_group_as_one_list():
    files = {"type": "file", "should_flatten": False, "value": [{"id": "f1"}, {"id": "f2", "name": "x.txt"}]}
    events = flatten_event(DOC_BASE, [DOC_ARGS[0], files])
    assert len(events) == 2
    for event in events:
        assert event["related_files"] == 2
        assert event["file_entities"] == [{"id": "f1"}, {"id": "f2", "name": "x.txt"}]
        assert "file_id" not in event
    assert events[0]["file_entities"] is not events[1]["file_entities"]


def test_should_flatten_defaults_to_true():
    events = flatten_event({}, [{"type": "user", "value": [{"id": 1}, {"id": 2}]}])
    assert [event["user_id"] for event in events] == [1, 2]


def test_key_naming_helpers():
    assert (count_field("policyRule"), entity_field("policyRule", "id"), list_field("policyRule")) == (
        "related_policyRules",
        "policyRule_id",
        "policyRule_entities",
    )


def test_collision_alert_field_wins_entity_moves_to_entity_prefix():
    base = {"_id": "a", "user_name": "alert's own", "related_users": "alert's count field"}
    events = flatten_event(base, [{"type": "user", "should_flatten": True, "value": [{"name": "alice"}]}])
    assert events == [
        {
            "_id": "a",
            "user_name": "alert's own",
            "related_users": "alert's count field",
            "entity_related_users": 1,
            "entity_user_name": "alice",
        }
    ]


def test_collision_with_the_fallback_name_too_gets_a_numbered_suffix():
    base = {"user_name": 1, "entity_user_name": 2, "entity_user_name_2": 3}
    events = flatten_event(base, [{"type": "user", "value": [{"name": "alice"}]}])
    assert events[0]["entity_user_name_3"] == "alice"
    assert {key: events[0][key] for key in base} == base


def test_entity_keys_that_read_the_same_as_text_both_survive():
    # Python callers may pass non-str keys: 1 and "1" both name user_1; neither value may be lost.
    events = flatten_event({"_id": "a"}, [{"type": "user", "value": [{1: "int key", "1": "str key"}]}])
    assert (events[0]["user_1"], events[0]["entity_user_1"]) == ("int key", "str key")


def test_nested_entity_values_are_not_shared_between_events():
    args = [{"type": "user", "value": [{"groups": ["a"]}, {"groups": ["b"]}]}, {"type": "ip", "value": [{"v": 1}] * 2}]
    events = flatten_event({"_id": "a", "tags": ["t"]}, args)
    assert len(events) == 4
    events[0]["user_groups"].append("changed")
    events[0]["tags"].append("changed")
    assert [event["user_groups"] for event in events[1:]] == [["a"], ["b"], ["b"]]
    assert all(event["tags"] == ["t"] for event in events[1:])


def test_collision_between_groups_first_arg_wins():
    args = [
        {"type": "user", "value": [{"x_y": "from user"}]},
        {"type": "user_x", "value": [{"y": "from user_x"}]},
    ]
    event = flatten_event({}, args)[0]
    assert (event["user_x_y"], event["entity_user_x_y"]) == ("from user", "from user_x")


def test_events_share_nothing_mutable_with_inputs_or_each_other():
    base = {"id": "a", "tags": ["t1"], "nested": {"k": [1]}}
    args = [{"type": "user", "value": [{"id": 1, "groups": ["g"]}, {"id": 2, "groups": ["h"]}]}]
    before = copy.deepcopy((base, args))
    events = flatten_event(base, args)
    events[0]["tags"].append("changed")
    events[0]["nested"]["k"].append(2)
    events[0]["user_groups"].append("changed")
    assert (base, args) == before
    assert events[1]["tags"] == ["t1"] and events[1]["nested"] == {"k": [1]}


@pytest.mark.parametrize(
    ("base", "args", "message"),
    [
        ([], [], "base_event must be a dict"),
        ({}, "user", "args must be a sequence"),
        ({}, [["not", "a", "dict"]], "args[0] must be a dict"),
        ({}, [{"type": "u", "value": []}, {"value": []}], "args[1]: 'type' must be a non-empty str"),
        ({}, [{"type": "", "value": []}], "args[0]: 'type' must be a non-empty str"),
        ({}, [{"type": 3, "value": []}], "args[0]: 'type' must be a non-empty str, got int"),
        ({}, [{"type": "u", "value": {"id": 1}}], "args[0]: 'value' must be a list of dicts, got dict"),
        ({}, [{"type": "u"}], "args[0]: 'value' must be a list of dicts, got NoneType"),
        ({}, [{"type": "u", "value": [{"id": 1}, 2]}], "args[0]: 'value'[1] must be a dict, got int"),
        ({}, [{"type": "u", "should_flatten": "false", "value": []}], "args[0]: 'should_flatten' must be a bool"),
    ],
)
def test_flatten_event_validation(base, args, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        flatten_event(base, args)


# ---- flatten_alert ----


def test_alert_without_entities_is_one_event_without_counts():
    for entities in ({}, {"entities": None}, {"entities": []}):
        alert = {"_id": "a1", "title": "t", **entities}
        assert flatten_alert(alert) == [{"_id": "a1", "title": "t"}]


def test_alert_with_one_entity():
    alert = {"_id": "a1", "entities": [{"type": "account", "id": "acc-1", "label": "Alice", "pa": "x"}]}
    assert flatten_alert(alert) == [
        {"_id": "a1", "related_accounts": 1, "account_id": "acc-1", "account_label": "Alice", "account_pa": "x"}
    ]


def test_mixed_int_and_str_ids_are_kept_as_they_are():
    alert = {
        "_id": "a1",
        "entities": [
            {"type": "service", "id": 11161, "label": "Office 365"},
            {"type": "user", "id": "u@x.com", "label": "U"},
            {"type": "service", "id": "20893", "label": "SharePoint"},
        ],
    }
    events = flatten_alert(alert)
    assert [(e["service_id"], e["user_id"]) for e in events] == [(11161, "u@x.com"), ("20893", "u@x.com")]
    assert all(e["related_services"] == 2 and e["related_users"] == 1 for e in events)
    assert list(events[0])[:3] == ["_id", "related_services", "related_users"]  # first-seen type order


def test_type_with_many_entities():
    alert = {"_id": "a1", "entities": [{"type": "ip", "id": f"10.0.0.{n}"} for n in range(500)]}
    events = flatten_alert(alert)
    assert [e["ip_id"] for e in events] == [f"10.0.0.{n}" for n in range(500)]
    assert {e["related_ips"] for e in events} == {500}


def test_type_names_are_used_as_given():
    alert = {"_id": "a", "entities": [{"type": "policyRule", "id": "p1", "label": "Mass download"}]}
    assert flatten_alert(alert)[0] == {
        "_id": "a",
        "related_policyRules": 1,
        "policyRule_id": "p1",
        "policyRule_label": "Mass download",
    }


def test_entities_without_type_go_to_unknown():
    alert = {"_id": "a", "entities": [{"id": 1}, {"type": None, "id": 2}, {"type": "", "id": 3}, {"type": "ip"}]}
    events = flatten_alert(alert)
    assert [e["unknown_id"] for e in events] == [1, 2, 3]
    assert all(e["related_unknowns"] == 3 and e["related_ips"] == 1 for e in events)


def test_cap_exceeded_emits_once_with_marker_entities_kept_and_a_warning(caplog):
    entities = [{"type": "user", "id": n} for n in range(40)] + [{"type": "ip", "id": n} for n in range(30)]
    alert = {"_id": "5f0c0d0e0f1a2b3c4d5e6f70", "title": "t", "entities": entities}
    before = copy.deepcopy(alert)
    with caplog.at_level(logging.WARNING, logger=flatten.__name__):
        events = flatten_alert(alert, max_events=1000)
    assert events == [
        {
            **before,
            "related_users": 40,
            "related_ips": 30,
            "flatten_capped": True,
            "flatten_combinations": 1200,
        }
    ]
    assert events[0]["entities"] is not alert["entities"]
    assert alert == before
    [record] = [r for r in caplog.records if r.name == flatten.__name__]
    assert record.levelno == logging.WARNING
    assert "5f0c0d0e0f1a2b3c4d5e6f70" in record.getMessage() and "1200" in record.getMessage()


def test_cap_is_inclusive():
    alert = {"_id": "a", "entities": [{"type": "ip", "id": n} for n in range(10)]}
    assert len(flatten_alert(alert, max_events=10)) == 10
    assert flatten_alert(alert, max_events=9)[0]["flatten_capped"] is True


def test_collision_with_the_alerts_own_field():
    alert = {"_id": "a", "user_name": "alert field", "entities": [{"type": "user", "id": 1, "name": "entity"}]}
    [event] = flatten_alert(alert)
    assert (event["user_name"], event["entity_user_name"], event["user_id"]) == ("alert field", "entity", 1)


@pytest.mark.parametrize(
    ("alert", "max_events", "message"),
    [
        ([], 10, "an alert must be a dict"),
        ({"_id": "x", "entities": {"type": "ip"}}, 10, "alert 'x': 'entities' must be a list"),
        ({"_id": "x", "entities": [{"type": "ip"}, "ip"]}, 10, "alert 'x': entities[1] must be a dict"),
        ({"_id": "x"}, 0, "max_events must be a positive int"),
        ({"_id": "x"}, True, "max_events must be a positive int"),
    ],
)
def test_flatten_alert_validation(alert, max_events, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        flatten_alert(alert, max_events=max_events)


def test_flatten_alerts_streams_and_counts():
    alerts = [
        {"_id": "a"},
        {"_id": "b", "entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}, {"type": "user", "id": 3}]},
        {"_id": "c", "entities": [{"type": "ip", "id": n} for n in range(5)]},
    ]
    stats = FlattenStats()
    stream = flatten_alerts(iter(alerts), max_events=4, stats=stats)
    assert stats == FlattenStats()  # lazy: nothing consumed yet
    events = list(stream)
    assert [e["_id"] for e in events] == ["a", "b", "b", "c"]
    assert stats == FlattenStats(alerts_in=3, events_out=4, capped=1)
    assert stats.as_dict() == {"alerts_in": 3, "events_out": 4, "capped": 1, "capped_by_bytes": 0}


def test_flatten_alerts_checks_max_events_eagerly():
    with pytest.raises(ValueError, match="max_events"):
        flatten_alerts([], max_events=-1)
    with pytest.raises(ValueError, match="max_bytes must be a positive int, got 0"):
        flatten_alerts([], max_bytes=0)


# ---- the size cap and streaming (issue 14, item 12) ----


def big_alert(entities: int = 1000, text: int = 50_000) -> dict[str, Any]:
    """One alert whose large field is copied into each of its ``entities`` events."""
    return {
        "_id": "big",
        "description": "d" * text,
        "entities": [{"type": "user", "id": f"u{n}", "label": f"user {n}"} for n in range(entities)],
    }


def test_an_alert_whose_events_exceed_the_byte_cap_is_emitted_once_marked_on_both_roads(caplog):
    alert = big_alert()  # 1,000 events of about 50 KB: about 50 MB
    size = events_size(
        {"_id": "big", "description": alert["description"], "related_users": 1000},
        [[{"user_id": e["id"], "user_label": e["label"]} for e in alert["entities"]]],
    )
    assert 50_000_000 < size < 51_000_000
    before = copy.deepcopy(alert)
    with caplog.at_level(logging.WARNING, logger=flatten.__name__):
        [event] = flatten_alert(alert, max_bytes=size - 1)
    assert event == {
        **before,
        "related_users": 1000,
        "flatten_capped": True,
        "flatten_combinations": 1000,
        "flatten_bytes": size,
    }
    assert f"{size} bytes, over max_bytes={size - 1}" in caplog.records[-1].getMessage()
    stats = FlattenStats()
    [line] = list(flatten_alerts_json([alert], encode=json_codec.encode, max_bytes=size - 1, stats=stats))
    assert json_codec.decode(line) == event
    assert stats == FlattenStats(alerts_in=1, events_out=1, capped=1, capped_by_bytes=1)
    # At the cap it is expanded, and the events take exactly the size measured.
    lines = list(flatten_alerts_json([alert], encode=json_codec.encode, max_bytes=size))
    assert len(lines) == 1000 and sum(map(len, lines)) == size
    assert len(flatten_alert(alert, max_bytes=size)) == 1000


def test_the_default_byte_cap_stops_a_thousand_large_events():
    assert DEFAULT_MAX_BYTES == 32 * 1024 * 1024
    [event] = flatten_alert(big_alert(text=200_000))  # 1,000 events of 200 KB: 200 MB
    assert event["flatten_capped"] is True and event["flatten_bytes"] > 200_000_000


def test_one_event_is_never_capped_for_its_size():
    alert = {"_id": "one", "description": "d" * 5000, "entities": [{"type": "user", "id": 1}]}
    assert "flatten_capped" not in flatten_alert(alert, max_bytes=100)[0]
    assert "flatten_capped" not in json_codec.decode(
        next(flatten_alerts_json([alert], encode=json_codec.encode, max_bytes=100))
    )


def _peak_while(consume: Any) -> int:
    tracemalloc.start()
    try:
        consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("road", ["dict", "json", "json by alert"])
def test_an_alerts_events_stream_one_at_a_time_never_in_a_list(road):
    # 1,000 events of 50 KB (about 50 MB) under a cap that lets them through: held together, they would show.
    alert = big_alert()
    seen = {"events": 0, "bytes": 0}

    def consume() -> None:
        if road == "dict":
            for event in flatten_alerts([alert], max_bytes=10**9):
                seen["events"] += 1
                seen["bytes"] += len(event["description"])
        elif road == "json":
            for line in flatten_alerts_json([alert], encode=json_codec.encode, max_bytes=10**9):
                seen["events"] += 1
                seen["bytes"] += len(line)
        else:
            for item in flatten_alerts_json_by_alert([alert], encode=json_codec.encode, max_bytes=10**9):
                assert item.events == 1000  # known before any line is built
                for line in item.lines:
                    seen["events"] += 1
                    seen["bytes"] += len(line)

    peak = _peak_while(consume)
    assert seen["events"] == 1000 and seen["bytes"] >= 50_000_000
    assert peak < 5_000_000, f"peak {peak:,} bytes: the events were held together"


def test_the_doctests_of_the_json_road_hold():
    results = doctest.testmod(flatten_json)
    assert results.attempted >= 3 and results.failed == 0


# ---- properties ----

TYPES = ["user", "domain", "ip", "policyRule", "account", "service"]
BASE_KEYS = ["_id", "title", "severityValue", "timestamp", "description", "tags"]
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
JSONISH = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def entity_lists(draw: st.DrawFn, max_size: int = 4) -> list[dict[str, Any]]:
    """Entities with unique ids (int or str) so each event's entity can be identified."""
    ids = draw(st.lists(st.integers(0, 50) | st.text("abc", min_size=1, max_size=3), unique=True, max_size=max_size))
    return [
        {"id": entity_id, **draw(st.dictionaries(st.sampled_from(["name", "label", "extra"]), JSONISH, max_size=2))}
        for entity_id in ids
    ]


@st.composite
def flatten_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    # Base keys and "<type>_<key>" never meet, so these examples have no collisions (tested separately).
    base = draw(st.dictionaries(st.sampled_from(BASE_KEYS), JSONISH, max_size=4))
    types = draw(st.lists(st.sampled_from(TYPES), unique=True, max_size=4))  # includes no args at all
    args = [
        {"type": t, "should_flatten": draw(st.sampled_from([True, True, False])), "value": draw(entity_lists())}
        for t in types
    ]
    return base, args


def _chosen_ids(event: dict[str, Any], arg: dict[str, Any]) -> Any:
    """The id of the entity of this arg the event stands for, after checking its fields are exactly that entity's."""
    t = arg["type"]
    [entity] = [e for e in arg["value"] if e["id"] == event[f"{t}_id"] and type(e["id"]) is type(event[f"{t}_id"])]
    fields = {
        key[len(t) + 1 :]: value for key, value in event.items() if key.startswith(f"{t}_") and key != f"{t}_entities"
    }
    assert fields == entity
    return entity["id"]


@PROPERTY
@given(flatten_inputs())
def test_flatten_event_properties(data):
    base, args = data
    before = copy.deepcopy(data)
    events = flatten_event(base, args)
    multiplied = [a for a in args if a["should_flatten"] and a["value"]]
    note_event(f"multiplied groups: {len(multiplied)}")

    assert len(events) == math.prod(len(a["value"]) for a in multiplied)  # 1 when nothing multiplies
    for event in events:
        assert {key: event[key] for key in base} == base
        for arg in args:
            assert event[count_field(arg["type"])] == len(arg["value"])
            if not arg["should_flatten"]:
                assert event[list_field(arg["type"])] == arg["value"]
    # Each combination exactly once, in product order (first arg slowest): every entity is in some event.
    combos = [tuple(_chosen_ids(event, arg) for arg in multiplied) for event in events]
    assert combos == list(itertools.product(*([e["id"] for e in a["value"]] for a in multiplied)))
    assert (base, args) == before
    # No event shares a mutable value with the inputs or with another event.
    snapshot = copy.deepcopy(events)
    for position, event in enumerate(events):
        _scribble(event)
        assert events[position + 1 :] == snapshot[position + 1 :]
    assert (base, args) == before


def _scribble(node: Any) -> None:
    """Write into every nested list and dict of ``node``."""
    children = list(node.values()) if isinstance(node, dict) else list(node)
    for child in children:
        if isinstance(child, (dict, list)):
            _scribble(child)
    if isinstance(node, dict):
        node["<scribbled>"] = True
    else:
        node.append("<scribbled>")


ALERT_ENTITY = st.fixed_dictionaries(
    {"id": st.integers(0, 99) | st.text("xyz", min_size=1, max_size=3)},
    optional={"type": st.sampled_from([*TYPES, None, ""]), "label": st.text(max_size=4), "pa": JSONISH},
)


@PROPERTY
@given(
    base=st.dictionaries(st.sampled_from(BASE_KEYS), JSONISH, max_size=4),
    entities=st.lists(ALERT_ENTITY, max_size=8),
    none_when_empty=st.booleans(),
    max_events=st.integers(1, 12),
)
def test_flatten_alert_properties(base, entities, none_when_empty, max_events):
    entities = None if none_when_empty and not entities else entities
    alert = {**base, "entities": entities}
    before = copy.deepcopy(alert)
    events = flatten_alert(alert, max_events=max_events)
    groups: dict[str, list[dict[str, Any]]] = {}
    for entity in entities or []:
        groups.setdefault(entity.get("type") or "unknown", []).append(entity)
    product = math.prod(len(members) for members in groups.values())
    capped = product > max_events
    note_event(f"capped={capped}, groups={len(groups)}")

    assert len(events) == (1 if capped else product)
    for event in events:
        assert {key: event[key] for key in base} == base
        assert {t: event[count_field(t)] for t in groups} == {t: len(m) for t, m in groups.items()}
        assert event.get("flatten_capped", False) is capped
    if capped:
        assert events[0]["entities"] == entities and events[0]["flatten_combinations"] == product
    elif not groups:
        assert events == [base]
    else:
        # Every combination exactly once, in product order, so every entity (minus its type) is in some event.
        seen = [tuple(_strip_prefix(event, t) for t in groups) for event in events]
        stripped = [[{k: v for k, v in e.items() if k != "type"} for e in m] for m in groups.values()]
        assert seen == list(itertools.product(*stripped))
    assert alert == before


def _strip_prefix(event: dict[str, Any], t: str) -> dict[str, Any]:
    return {key[len(t) + 1 :]: value for key, value in event.items() if key.startswith(f"{t}_")}


# ---- the JSON road: flatten_alerts_json builds exactly the text of flatten_alerts' events ----

# Alert keys that collide with derived names (a count, an entity field, their entity_ renames) next to plain ones.
COLLIDING_KEYS = [*BASE_KEYS, "related_users", "user_id", "entity_user_id", "ip_label", "unknown_id"]
# Entity keys that collide across types ("user" + "_x_id" vs "user_x" + "_id") or as names (1 and "1").
ENTITY_KEYS = st.sampled_from(["id", "label", "x_id", 1, "1", "type2"])
ANY_ENTITY = st.dictionaries(ENTITY_KEYS, JSONISH, max_size=3).flatmap(
    lambda fields: st.sampled_from([*TYPES, "user_x", None, ""]).map(
        lambda kind: fields if kind is None else {"type": kind, **fields}
    )
)


def _json_encode(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


@PROPERTY
@given(
    alerts=st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(COLLIDING_KEYS), JSONISH, max_size=4),
            st.none() | st.lists(ANY_ENTITY | ALERT_ENTITY, max_size=7),
        ).map(
            lambda pair: pair[0] if pair[1] is None and "entities" not in pair[0] else {**pair[0], "entities": pair[1]}
        ),
        max_size=4,
    ),
    max_events=st.integers(1, 12),
    max_bytes=st.integers(1, 400) | st.just(DEFAULT_MAX_BYTES),
    encoder=st.sampled_from([json_codec.encode, _json_encode]),
)
def test_the_json_road_writes_exactly_the_events_of_the_dict_road(alerts, max_events, max_bytes, encoder):
    dict_stats, json_stats = FlattenStats(), FlattenStats()
    events = list(flatten_alerts(copy.deepcopy(alerts), max_events=max_events, max_bytes=max_bytes, stats=dict_stats))
    lines = list(
        flatten_alerts_json(alerts, encode=encoder, max_events=max_events, max_bytes=max_bytes, stats=json_stats)
    )
    assert lines == [encoder(event) for event in events]
    assert json_stats == dict_stats
    for item in flatten_alerts_json_by_alert(
        alerts, encode=json_codec.encode, max_events=max_events, max_bytes=max_bytes
    ):
        lines = list(item.lines)
        assert len(lines) == item.events
        # An alert expanded into several events fits the byte cap (renamed collisions aside: a few bytes each).
        if len(lines) > 1:
            assert sum(map(len, lines)) <= max_bytes + 64 * len(lines)
    note_event(
        f"capped={json_stats.capped - json_stats.capped_by_bytes > 0}, by bytes={json_stats.capped_by_bytes > 0}, "
        f"events per alert={len(events) / max(1, len(alerts)):.0f}"
    )


def test_the_json_road_renames_collisions_like_the_dict_road():
    alert = {"_id": "a", "user_id": "alert's", "entities": [{"type": "user", "id": "u1"}, {"type": "user", "id": 2}]}
    lines = list(flatten_alerts_json([alert], encode=_json_encode))
    assert [json.loads(line) for line in lines] == [
        {"_id": "a", "user_id": "alert's", "related_users": 2, "entity_user_id": "u1"},
        {"_id": "a", "user_id": "alert's", "related_users": 2, "entity_user_id": 2},
    ]


def test_the_json_road_refuses_what_the_dict_road_refuses():
    with pytest.raises(ValueError, match=r"alert 'a': entities\[1\] must be a dict, got str"):
        list(flatten_alerts_json([{"_id": "a", "entities": [{"id": 1}, "x"]}], encode=_json_encode))
    with pytest.raises(ValueError, match="an alert must be a dict, got list"):
        list(flatten_alerts_json([[]], encode=_json_encode))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_events"):
        flatten_alerts_json([], encode=_json_encode, max_events=0)
