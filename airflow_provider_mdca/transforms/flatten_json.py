"""Alert flattening, the JSON road: each event delivered as its JSON line, assembled from pieces encoded once.

The same events as :func:`~airflow_provider_mdca.transforms.flatten.flatten_alerts` (the dict road: same fields,
order, renames, caps and statistics), written as ``encode(event)`` would write them, but built rather than encoded
event by event: the fields an alert's events share are encoded once, each entity's fields once, and an event is its
pieces joined, so an alert of n events costs about one encode instead of n (and no copies).

Streaming. An alert's lines are produced one at a time as they are taken, never gathered in a list: an alert with a
thousand large events holds one line at a time, not hundreds of megabytes. :func:`flatten_alerts_json_by_alert` hands
each alert over with an iterator of its lines (:class:`AlertLines`) that counts them as they go, so a caller can
note each alert's key and event count without holding its lines.

>>> import json
>>> encode = lambda event: json.dumps(event, separators=(",", ":")).encode()
>>> alert = {"_id": "a", "entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}]}
>>> [line.decode() for line in flatten_alerts_json([alert], encode=encode)]
['{"_id":"a","related_ips":2,"ip_id":1}', '{"_id":"a","related_ips":2,"ip_id":2}']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_mdca import json_codec
from airflow_provider_mdca.transforms.flatten import (
    BYTES_FIELD,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    FlattenStats,
    capped_event,
    check_caps,
    count_cap,
    count_field,
    entity_field,
    entity_list,
    entity_type_of,
    events_size,
    expand_alert,
    members,
    place_field,
)

__all__ = ["AlertLines", "flatten_alerts_json", "flatten_alerts_json_by_alert"]

Encode = Callable[[Any], bytes]


class AlertLines:
    """One alert, how many events it becomes, and their JSON lines, built one at a time as they are taken.

    ``events`` is known before any line is built (the product of the alert's group sizes, or 1 when capped), so a
    caller can note the alert's key and count without holding its lines. Take the lines (once: iterate ``lines``,
    or the object itself) before asking for the next alert: they are built from the alert as they are taken.
    """

    __slots__ = ("alert", "events", "lines")

    def __init__(self, alert: dict[str, Any], events: int, lines: Iterable[bytes]) -> None:
        self.alert = alert
        self.events = events
        self.lines = lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.lines)


def flatten_alerts_json(
    alerts: Iterable[dict[str, Any]],
    *,
    encode: Encode,
    max_events: int = DEFAULT_MAX_EVENTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stats: FlattenStats | None = None,
) -> Iterator[bytes]:
    """:func:`~.flatten.flatten_alerts` with each event delivered as its JSON text: ``encode(event)`` for each one.

    ``encode`` must write a dict as one compact JSON object, keys in order and no space after the separators
    (``{"k":v,...}``), as :func:`airflow_provider_mdca.json_codec.encode` and ``json.dumps(..., separators=(",",
    ":"))`` do. An alert whose names collide (see :mod:`.flatten`) is built as dicts by the same code as the dict
    road and encoded event by event. ``max_bytes`` measures the events as :mod:`~airflow_provider_mdca.json_codec`
    writes them, whatever ``encode`` is, so both roads cap the same alerts.
    """
    check_caps(max_events, max_bytes)
    by_alert = _alerts_json(alerts, max_events, max_bytes, stats or FlattenStats(), encode)
    return (line for item in by_alert for line in item.lines)


def flatten_alerts_json_by_alert(
    alerts: Iterable[dict[str, Any]],
    *,
    encode: Encode,
    max_events: int = DEFAULT_MAX_EVENTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stats: FlattenStats | None = None,
) -> Iterator[AlertLines]:
    """:func:`flatten_alerts_json` one alert at a time: each alert with its lines, streamed and counted.

    >>> encode = json_codec.encode
    >>> alert = {"_id": "a", "entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}]}
    >>> for item in flatten_alerts_json_by_alert([alert, {"_id": "b"}], encode=encode):
    ...     print(item.alert["_id"], item.events, sum(len(line) for line in item.lines))
    a 2 74
    b 1 11
    """
    check_caps(max_events, max_bytes)
    return _alerts_json(alerts, max_events, max_bytes, stats or FlattenStats(), encode)


def _alerts_json(
    alerts: Iterable[dict[str, Any]], max_events: int, max_bytes: int, stats: FlattenStats, encode: Encode
) -> Iterator[AlertLines]:
    for alert in alerts:
        item, capped = _expand_alert_json(alert, max_events, max_bytes, encode)
        stats.alerts_in += 1
        stats.events_out += item.events
        if capped is not None:
            count_cap(stats, capped)
        yield item


def _expand_alert_json(
    alert: dict[str, Any], max_events: int, max_bytes: int, encode: Encode
) -> tuple[AlertLines, str | None]:
    """The alert's :class:`AlertLines`, and why it was capped (None: expanded), as :func:`~.flatten.expand_alert`."""
    if not isinstance(alert, dict):
        raise ValueError(f"an alert must be a dict, got {type(alert).__name__}")
    by_type, distinct = _entity_fields_by_type(alert)
    common = dict(alert)  # this function's own dict (a C copy, cheaper than filtering): the counts go into it
    common.pop("entities", None)
    if not by_type:
        return AlertLines(alert, 1, (encode(common),)), None
    for entity_type, group in by_type.items():
        place_field(common, count_field(entity_type), len(group))
    groups = list(by_type.values())
    combinations = math.prod(map(len, groups))
    if not distinct or combinations > max_events or not _names_are_free(common, groups):
        # Capped for its count, or some name must be renamed: the dict road knows both; rare, so encode its events.
        events, capped = expand_alert(alert, max_events, max_bytes)
        encoded = (encode(event) for event in events)
        return AlertLines(alert, combinations if capped is None else 1, encoded), capped
    # An event is `{<common members>` + `,<one entity's members>` per group + `}`; common always holds the counts.
    whole = encode(common)
    pieces = [[members(encode(fields)) for fields in group] for group in groups]
    if combinations == 1:
        return AlertLines(alert, 1, (b"".join((whole[:-1], *(group[0] for group in pieces), b"}")),)), None
    if encode is json_codec.encode:  # the pieces are what events_size measures: add them up
        size = combinations * len(whole)
        for laid in pieces:
            size += combinations // len(laid) * sum(map(len, laid))
    else:
        size = events_size(common, groups)
    if size > max_bytes:
        counts = {entity_type: len(fields) for entity_type, fields in by_type.items()}
        event = capped_event(alert, counts, combinations, size=size, max_bytes=max_bytes)
        return AlertLines(alert, 1, (encode(event),)), BYTES_FIELD
    head = whole[:-1]
    lines = (b"".join((head, *combination, b"}")) for combination in itertools.product(*pieces))
    return AlertLines(alert, combinations, lines), None


def _entity_fields_by_type(alert: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The alert's entities by type, each as its fields under their event names; whether every key kept its own name.

    Types come in first-seen order. A key may lose its name: 1 and "1" both become ``<type>_1`` (not JSON, but
    possible in a dict). The same groups and names as the dict road lays out; validation is shared.
    """
    by_type: dict[str, list[dict[str, Any]]] = {}
    distinct = True
    for index, entity in enumerate(entity_list(alert)):
        entity_type = entity_type_of(alert, index, entity)
        prefix = entity_field(entity_type, "")
        try:  # JSON's keys are all str: the plain comprehension is the fast road, and names stay distinct
            fields = {prefix + key: value for key, value in entity.items()}
            if "type" in entity:
                del fields[prefix + "type"]
        except TypeError:  # a key that is not a str (possible in a dict)
            fields = {prefix + str(key): value for key, value in entity.items() if key != "type"}
            distinct = distinct and len(fields) == len(entity) - ("type" in entity)
        by_type.setdefault(entity_type, []).append(fields)
    return by_type, distinct


def _names_are_free(common: Mapping[str, Any], groups: list[list[dict[str, Any]]]) -> bool:
    """Whether no event of the alert needs a renamed field: every entity field name is new to every event.

    Then each event is ``common`` followed by one entity's fields per group, in group order: what the dict road
    builds when nothing collides.
    """
    taken = set(common)
    for group in groups:
        names: set[str] = set()
        for fields in group:
            names.update(fields)
        if not taken.isdisjoint(names):
            return False
        taken |= names
    return True
