"""Alert flattening: one Devo event per combination of an alert's related entities.

This is the Devo MDCA collector's "flattening preprocessing" for the alerts service, made exact where
its documentation is silent. The documented rule: take the base event, add ``related_<type>s`` (how many
entities of each type), and emit one event per combination of one entity of each type, each entity key
prefixed ``<type>_``. The number of events is the product of the group sizes.

Field names, for an entity group of type ``<type>`` (the type is used as given, ``policyRule`` stays
``policyRule``):

- ``related_<type>s``: the group's size, on every event (:func:`count_field`);
- ``<type>_<key>``: a key of the one entity of that type this event stands for (:func:`entity_field`);
- ``<type>_entities``: the whole group as one list, for a group that is not multiplied
  (``should_flatten: false``) (:func:`list_field`). ``<type>s`` was not chosen: it reads like the count
  and is a plausible alert key of its own.

Where the documented formula would lose data, this module does not:

- an empty group (``value: []``) would multiply the event count by zero. It contributes
  ``related_<type>s: 0`` and is not multiplied: an alert is never lost.
- ``should_flatten: false``: the group is not multiplied; it contributes its count and its list.

Key collisions. Fields are written in a fixed order and a later field never overwrites an earlier one:
base event fields first (the alert's own data always keeps its name), then the counts, then the
``<type>_entities`` lists, then the prefixed entity keys, each in argument order. A derived name that is
already taken moves to ``entity_<name>``, then ``entity_<name>_2``, ``entity_<name>_3``... So an alert that
already has ``user_name`` keeps it, and a user entity's ``name`` lands in ``entity_user_name``: nothing is
overwritten, nothing is dropped.

>>> flatten_event(
...     {"_id": "a1", "user_name": "from the alert"},
...     [{"type": "user", "should_flatten": True, "value": [{"name": "from the entity"}]}],
... )
[{'_id': 'a1', 'user_name': 'from the alert', 'related_users': 1, 'entity_user_name': 'from the entity'}]

Copies. Every returned event is independent of the inputs and of the other events: values that could be
shared mutably (lists, dicts) are deep-copied into each event; strings, numbers, booleans and ``None`` are
immutable and shared as they are.

Caps. An alert is expanded only when both its events and their size stay within bounds: more combinations than
``max_events``, or events whose compact JSON would exceed ``max_bytes`` together (:func:`events_size`: a large
alert copied into a thousand events is a thousand times its size), and the alert is emitted once, unexpanded, with
``flatten_capped`` (see :func:`flatten_alert`). Events stream one at a time: an alert's events are never held in a
list (:func:`flatten_alerts`; the JSON road, :mod:`.flatten_json`, streams their lines the same way).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from airflow_provider_mdca import json_codec

__all__ = [
    "BYTES_FIELD",
    "CAPPED_FIELD",
    "COMBINATIONS_FIELD",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EVENTS",
    "UNKNOWN_TYPE",
    "FlattenStats",
    "count_field",
    "entity_field",
    "events_size",
    "flatten_alert",
    "flatten_alerts",
    "flatten_event",
    "list_field",
]

logger = logging.getLogger(__name__)

#: The group of alert entities that carry no ``type``.
UNKNOWN_TYPE = "unknown"
#: Marker on an alert emitted unexpanded because its combinations exceed ``max_events``.
CAPPED_FIELD = "flatten_capped"
#: On a capped alert: how many events full flattening would have produced.
COMBINATIONS_FIELD = "flatten_combinations"
#: On an alert capped for its size: how many bytes full flattening would have written (compact JSON).
BYTES_FIELD = "flatten_bytes"
DEFAULT_MAX_EVENTS = 1000
#: The size one alert's events may reach together, as compact JSON: a normal alert's thousand events are a few MB.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024

_COLLISION_PREFIX = "entity_"
# Immutable JSON leaves: safe to share between events without copying.
_IMMUTABLE = (str, int, float, bool, type(None))

Event = dict[str, Any]


def count_field(entity_type: str) -> str:
    """The field holding how many entities of ``entity_type`` an alert has.

    >>> count_field("user"), count_field("policyRule")
    ('related_users', 'related_policyRules')
    """
    return f"related_{entity_type}s"


def entity_field(entity_type: str, key: str) -> str:
    """The field holding ``key`` of the entity of ``entity_type`` an event stands for.

    >>> entity_field("domain", "name"), entity_field("policyRule", "id")
    ('domain_name', 'policyRule_id')
    """
    return f"{entity_type}_{key}"


def list_field(entity_type: str) -> str:
    """The field holding a whole group of entities that is not multiplied (``should_flatten: false``).

    >>> list_field("file")
    'file_entities'
    """
    return f"{entity_type}_entities"


@dataclass
class FlattenStats:
    """What one :func:`flatten_alerts` run did. All counters start at zero."""

    alerts_in: int = 0
    events_out: int = 0
    #: Alerts emitted once, unexpanded, because their combinations exceeded ``max_events`` or ``max_bytes``.
    capped: int = 0
    #: Of those, the alerts capped for their size (``max_bytes``) rather than their count.
    capped_by_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        """A plain dict (JSON-serialisable) of the counters."""
        return asdict(self)


@dataclass(frozen=True)
class _Group:
    """One validated argument. ``entities`` are the caller's dicts: read, never written."""

    type: str
    should_flatten: bool
    entities: list[dict[str, Any]] = field(repr=False)

    @property
    def multiplies(self) -> bool:
        # An empty group would multiply the event count by zero: it never multiplies.
        return self.should_flatten and bool(self.entities)


def flatten_event(base_event: dict[str, Any], args: Sequence[Mapping[str, Any]]) -> list[Event]:
    """The seed collector's flattening rule: one event per combination of one entity from each group.

    Each arg is ``{"type": str, "should_flatten": bool, "value": [dict, ...]}`` (``should_flatten`` may be
    left out and means ``True``). Combinations come in :func:`itertools.product` order: the first arg varies
    slowest. See the module docstring for field names, empty groups, ``should_flatten: false`` and collisions.
    Inputs are never mutated.

    >>> domains = {"type": "domain", "should_flatten": True, "value": [{"id": 1}, {"id": 2}]}
    >>> users = {"type": "user", "should_flatten": True, "value": [{"id": 7}, {"id": 8}, {"id": 9}]}
    >>> [(e["domain_id"], e["user_id"]) for e in flatten_event({"id": "a"}, [domains, users])]
    [(1, 7), (1, 8), (1, 9), (2, 7), (2, 8), (2, 9)]
    >>> files = {"type": "file", "should_flatten": False, "value": [{"id": "f1"}, {"id": "f2"}]}
    >>> flatten_event({"id": "a"}, [files, {"type": "ip", "value": []}])
    [{'id': 'a', 'related_files': 2, 'related_ips': 0, 'file_entities': [{'id': 'f1'}, {'id': 'f2'}]}]

    :raises ValueError: ``base_event`` is not a dict, or an arg is malformed (the message names its index).
    """
    if not isinstance(base_event, dict):
        raise ValueError(f"base_event must be a dict, got {type(base_event).__name__}")
    return list(_combine(base_event, _validate_args(args)))


def flatten_alert(
    alert: dict[str, Any], *, max_events: int = DEFAULT_MAX_EVENTS, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Event]:
    """Flatten one MDCA alert by the types of its ``entities``.

    Entities are grouped by ``type`` in first-seen order (entities without a type, or with an empty one,
    form the group ``unknown``); ``type`` itself is not copied into the fields, every other key is, ids
    keep their int or str type. The base event is the alert without ``entities``.

    An alert without entities (missing, ``None`` or ``[]``) is exactly one event: the alert minus
    ``entities``, with no zero counts added (there is no type to count). An alert whose combinations exceed
    ``max_events``, or whose events would exceed ``max_bytes`` together as compact JSON (:func:`events_size`), is
    emitted once, unexpanded: the alert with its ``entities`` kept, the counts, and ``flatten_capped: True`` plus
    ``flatten_combinations`` (and ``flatten_bytes`` when the size capped it); a warning names the alert. Never
    dropped, never millions of events, never hundreds of megabytes.

    >>> alert = {"_id": "a1", "entities": [{"type": "user", "id": "u1"}, {"type": "service", "id": 11161}]}
    >>> flatten_alert(alert)
    [{'_id': 'a1', 'related_users': 1, 'related_services': 1, 'user_id': 'u1', 'service_id': 11161}]
    >>> flatten_alert({"_id": "a2", "entities": []})
    [{'_id': 'a2'}]
    >>> many = {"_id": "a3", "entities": [{"type": "ip", "id": n} for n in range(3)]}
    >>> capped = flatten_alert(many, max_events=2)
    >>> capped[0]["related_ips"], capped[0]["flatten_capped"], capped[0]["flatten_combinations"], len(capped)
    (3, True, 3, 1)
    >>> large = flatten_alert({**many, "text": "x" * 100}, max_bytes=300)
    >>> large[0]["flatten_capped"], large[0]["flatten_combinations"], large[0]["flatten_bytes"]
    (True, 3, 444)

    :raises ValueError: ``alert`` is not a dict, ``entities`` is neither a list nor ``None``, an entity is
        not a dict (MDCA always sends a list of objects: a broken contract should be seen, not reshaped),
        or ``max_events`` or ``max_bytes`` is not a positive int.
    """
    events, _capped = expand_alert(alert, max_events, max_bytes)
    return list(events)


def flatten_alerts(
    alerts: Iterable[dict[str, Any]],
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stats: FlattenStats | None = None,
) -> Iterator[Event]:
    """Stream :func:`flatten_alert` over ``alerts``, one event at a time, updating ``stats`` as it goes.

    No alert's events are ever held together: each is built when the previous one has been taken. ``max_events``
    and ``max_bytes`` are checked now, not at the first ``next()``: a misconfigured task fails before fetching.

    >>> stats = FlattenStats()
    >>> alerts = [{"_id": "a"}, {"_id": "b", "entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}]}]
    >>> [e.get("ip_id") for e in flatten_alerts(alerts, stats=stats)]
    [None, 1, 2]
    >>> stats
    FlattenStats(alerts_in=2, events_out=3, capped=0, capped_by_bytes=0)
    """
    check_caps(max_events, max_bytes)
    return _stream(alerts, max_events, max_bytes, FlattenStats() if stats is None else stats)


def _stream(alerts: Iterable[dict[str, Any]], max_events: int, max_bytes: int, stats: FlattenStats) -> Iterator[Event]:
    for alert in alerts:
        stats.alerts_in += 1
        events, capped = expand_alert(alert, max_events, max_bytes)
        count_cap(stats, capped)
        for event in events:
            stats.events_out += 1
            yield event


def count_cap(stats: FlattenStats, capped: str | None) -> None:
    """Count an alert :func:`expand_alert` capped (``capped`` is its reason, None when it was expanded)."""
    if capped is not None:
        stats.capped += 1
        stats.capped_by_bytes += capped == BYTES_FIELD


def events_size(common: Mapping[str, Any], groups: Sequence[Sequence[Mapping[str, Any]]]) -> int:
    """The bytes an alert's events take together as compact JSON (one line each, line breaks not counted).

    ``common`` holds the fields every event has (the alert minus ``entities``, with the counts); ``groups`` each
    entity's fields under their event names, one list per type. Every event is ``common`` plus one entity of each
    group, so the total follows from each piece's size without building an event: n events of ``common``, and each
    entity once in every n / (its group's size) events. Renamed fields (collisions) are counted under their plain
    names: a few bytes per event at most.

    >>> events_size({"_id": "a", "related_ips": 2}, [[{"ip_id": 1}, {"ip_id": 2}]])
    74
    >>> len(b'{"_id":"a","related_ips":2,"ip_id":1}') * 2
    74
    """
    combinations = math.prod(len(group) for group in groups)
    total = combinations * len(json_codec.encode(dict(common)))
    for group in groups:
        each = combinations // len(group)  # how many events each entity of this group is in
        total += each * sum(len(members(json_codec.encode(dict(fields)))) for fields in group)
    return total


def members(encoded: bytes) -> bytes:
    """``{"a":1,"b":2}`` as ``,"a":1,"b":2``, to follow other members; ``{}`` as nothing."""
    return b"," + encoded[1:-1] if len(encoded) > 2 else b""


def expand_alert(alert: dict[str, Any], max_events: int, max_bytes: int) -> tuple[Iterator[Event], str | None]:
    """The alert's events, lazily (a stream never holds one alert's thousand events), and why it was capped.

    The reason is :data:`COMBINATIONS_FIELD` (too many events), :data:`BYTES_FIELD` (too large), or None.
    """
    check_caps(max_events, max_bytes)
    if not isinstance(alert, dict):
        raise ValueError(f"an alert must be a dict, got {type(alert).__name__}")
    groups = _group_entities(alert)
    base = {key: value for key, value in alert.items() if key != "entities"}
    combinations = math.prod(len(group.entities) for group in groups)
    if combinations <= max_events:
        if combinations < 2:  # one event is about the alert's own size: capping it would save nothing
            return _combine(base, groups), None
        pieces = [[_lay_out(group, entity).fields for entity in group.entities] for group in groups]
        size = events_size(_common_fields(base, groups), pieces)
        if size <= max_bytes:
            return _combine(base, groups), None
        return iter([capped_event(alert, _counts(groups), combinations, size=size, max_bytes=max_bytes)]), BYTES_FIELD
    event = capped_event(alert, _counts(groups), combinations, max_events=max_events)
    return iter([event]), COMBINATIONS_FIELD


def capped_event(
    alert: dict[str, Any],
    counts: Mapping[str, int],
    combinations: int,
    *,
    max_events: int | None = None,
    size: int | None = None,
    max_bytes: int | None = None,
) -> Event:
    """The alert once, unexpanded, marked, with a warning that names it and the cap it passed.

    The whole alert, entities included, so no entity is lost; the counts keep it searchable like the others.
    """
    if size is None:
        why = f"{combinations} entity combinations exceed max_events={max_events}"
    else:
        why = f"its {combinations} events would take {size} bytes, over max_bytes={max_bytes}"
    logger.warning("alert %s: %s; emitted once unexpanded with %s=true", alert.get("_id", "?"), why, CAPPED_FIELD)
    event = {key: _copy(value) for key, value in alert.items()}
    for entity_type, count in counts.items():
        place_field(event, count_field(entity_type), count)
    place_field(event, CAPPED_FIELD, True)
    place_field(event, COMBINATIONS_FIELD, combinations)
    if size is not None:
        place_field(event, BYTES_FIELD, size)
    return event


def _counts(groups: list[_Group]) -> dict[str, int]:
    return {group.type: len(group.entities) for group in groups}


def _group_entities(alert: dict[str, Any]) -> list[_Group]:
    by_type: dict[str, list[dict[str, Any]]] = {}  # dicts keep insertion order: types stay in first-seen order
    for index, entity in enumerate(entity_list(alert)):
        entity_type = entity_type_of(alert, index, entity)
        by_type.setdefault(entity_type, []).append({key: value for key, value in entity.items() if key != "type"})
    return [_Group(entity_type, True, members) for entity_type, members in by_type.items()]


def entity_list(alert: dict[str, Any]) -> list[Any]:
    """The alert's ``entities``: a list, or [] when missing or None."""
    entities = alert.get("entities")
    if entities is None:
        return []
    if not isinstance(entities, list):
        raise ValueError(f"alert {alert.get('_id', '?')!r}: 'entities' must be a list, got {type(entities).__name__}")
    return entities


def entity_type_of(alert: dict[str, Any], index: int, entity: Any) -> str:
    """The group of ``entity``, the alert's ``entities[index]``; entities without a type form ``unknown``."""
    if not isinstance(entity, dict):
        raise ValueError(
            f"alert {alert.get('_id', '?')!r}: entities[{index}] must be a dict, got {type(entity).__name__}"
        )
    raw_type = entity.get("type")
    return UNKNOWN_TYPE if raw_type is None or raw_type == "" else str(raw_type)


def _validate_args(args: Sequence[Mapping[str, Any]]) -> list[_Group]:
    if isinstance(args, (str, bytes, Mapping)) or not isinstance(args, Sequence):
        raise ValueError(f"args must be a sequence of dicts, got {type(args).__name__}")
    return [_validate_arg(index, arg) for index, arg in enumerate(args)]


def _validate_arg(index: int, arg: Mapping[str, Any]) -> _Group:
    where = f"args[{index}]"
    if not isinstance(arg, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(arg).__name__}")
    entity_type = arg.get("type")
    if not isinstance(entity_type, str) or not entity_type:
        raise ValueError(f"{where}: 'type' must be a non-empty str, got {type(entity_type).__name__}")
    should_flatten = arg.get("should_flatten", True)
    if not isinstance(should_flatten, bool):
        # A string "false" is truthy: refuse it rather than multiply what the caller meant to keep whole.
        raise ValueError(f"{where}: 'should_flatten' must be a bool, got {type(should_flatten).__name__}")
    value = arg.get("value")
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'value' must be a list of dicts, got {type(value).__name__}")
    for position, entity in enumerate(value):
        if not isinstance(entity, dict):
            raise ValueError(f"{where}: 'value'[{position}] must be a dict, got {type(entity).__name__}")
    return _Group(entity_type, should_flatten, value)


class _LaidOut(NamedTuple):
    """An entity's fields under their event names, worked out once per alert rather than once per combination."""

    pairs: tuple[tuple[str, Any], ...]
    fields: dict[str, Any]
    names: frozenset[str]  # empty when two keys share a name (e.g. 1 and "1"): then every event renames
    containers: tuple[str, ...]  # the names whose values each event must copy


def _lay_out(group: _Group, entity: Mapping[str, Any]) -> _LaidOut:
    pairs = tuple((entity_field(group.type, str(key)), value) for key, value in entity.items())
    fields = dict(pairs)
    containers = tuple(name for name, value in fields.items() if not isinstance(value, _IMMUTABLE))
    return _LaidOut(pairs, fields, frozenset(fields) if len(fields) == len(pairs) else frozenset(), containers)


def _combine(base: Mapping[str, Any], groups: list[_Group]) -> Iterator[Event]:
    """One event per combination; the fields common to all of them are laid out once."""
    common = _common_fields(base, groups)
    # Only containers need copying into each event; immutable leaves (most fields) are shared.
    containers = [key for key, value in common.items() if not isinstance(value, _IMMUTABLE)]
    multiplied = [group for group in groups if group.multiplies]
    laid_out = [[_lay_out(group, entity) for entity in group.entities] for group in multiplied]
    # product() of no groups yields one empty combination: the base event alone, never zero events.
    for combination in itertools.product(*laid_out):
        event = dict(common)
        for key in containers:
            event[key] = copy.deepcopy(event[key])
        for entity in combination:
            if entity.names and entity.names.isdisjoint(event):  # the usual case: no name taken, no renaming
                event.update(entity.fields)
                for name in entity.containers:
                    event[name] = copy.deepcopy(event[name])
            else:
                for name, value in entity.pairs:
                    place_field(event, name, _copy(value))
        yield event


def _common_fields(base: Mapping[str, Any], groups: list[_Group]) -> dict[str, Any]:
    # Holds references to the caller's values; every event copies them (see _combine).
    common = dict(base)
    for group in groups:
        place_field(common, count_field(group.type), len(group.entities))
    for group in groups:
        if not group.should_flatten:
            place_field(common, list_field(group.type), group.entities)
    return common


def place_field(event: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name``, or the first free ``entity_<name>``, ``entity_<name>_2``... when taken: never overwrite.

    >>> event = {"user_name": "alert", "entity_user_name": "alert too"}
    >>> place_field(event, "user_name", "entity")
    >>> event
    {'user_name': 'alert', 'entity_user_name': 'alert too', 'entity_user_name_2': 'entity'}
    """
    if name not in event:
        event[name] = value
        return
    candidate = f"{_COLLISION_PREFIX}{name}"
    suffix = 2
    while candidate in event:
        candidate = f"{_COLLISION_PREFIX}{name}_{suffix}"
        suffix += 1
    event[candidate] = value


def _copy(value: Any) -> Any:
    # Immutable leaves are shared (most alert fields): deep-copying them would only cost time.
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


def check_caps(max_events: int, max_bytes: int) -> None:
    """Refuse caps that are not positive ints (a bool is not a number here)."""
    for name, value in (("max_events", max_events), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
