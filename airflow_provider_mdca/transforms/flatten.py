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
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "CAPPED_FIELD",
    "COMBINATIONS_FIELD",
    "DEFAULT_MAX_EVENTS",
    "UNKNOWN_TYPE",
    "FlattenStats",
    "count_field",
    "entity_field",
    "flatten_alert",
    "flatten_alerts",
    "flatten_alerts_json",
    "flatten_alerts_json_by_alert",
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
DEFAULT_MAX_EVENTS = 1000

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
    #: Alerts emitted once, unexpanded, because their combinations exceeded ``max_events``.
    capped: int = 0

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


def flatten_alert(alert: dict[str, Any], *, max_events: int = DEFAULT_MAX_EVENTS) -> list[Event]:
    """Flatten one MDCA alert by the types of its ``entities``.

    Entities are grouped by ``type`` in first-seen order (entities without a type, or with an empty one,
    form the group ``unknown``); ``type`` itself is not copied into the fields, every other key is, ids
    keep their int or str type. The base event is the alert without ``entities``.

    An alert without entities (missing, ``None`` or ``[]``) is exactly one event: the alert minus
    ``entities``, with no zero counts added (there is no type to count). An alert whose combinations exceed
    ``max_events`` is emitted once, unexpanded: the alert with its ``entities`` kept, the counts, and
    ``flatten_capped: True`` plus ``flatten_combinations``; a warning names the alert. Never dropped, never
    millions of events.

    >>> alert = {"_id": "a1", "entities": [{"type": "user", "id": "u1"}, {"type": "service", "id": 11161}]}
    >>> flatten_alert(alert)
    [{'_id': 'a1', 'related_users': 1, 'related_services': 1, 'user_id': 'u1', 'service_id': 11161}]
    >>> flatten_alert({"_id": "a2", "entities": []})
    [{'_id': 'a2'}]
    >>> many = {"_id": "a3", "entities": [{"type": "ip", "id": n} for n in range(3)]}
    >>> capped = flatten_alert(many, max_events=2)
    >>> capped[0]["related_ips"], capped[0]["flatten_capped"], capped[0]["flatten_combinations"], len(capped)
    (3, True, 3, 1)

    :raises ValueError: ``alert`` is not a dict, ``entities`` is neither a list nor ``None``, an entity is
        not a dict (MDCA always sends a list of objects: a broken contract should be seen, not reshaped),
        or ``max_events`` is not a positive int.
    """
    events, _capped = _expand_alert(alert, max_events)
    return list(events)


def flatten_alerts(
    alerts: Iterable[dict[str, Any]],
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    stats: FlattenStats | None = None,
) -> Iterator[Event]:
    """Stream :func:`flatten_alert` over ``alerts``, one event at a time, updating ``stats`` as it goes.

    ``max_events`` is checked now, not at the first ``next()``: a misconfigured task fails before fetching.

    >>> stats = FlattenStats()
    >>> alerts = [{"_id": "a"}, {"_id": "b", "entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}]}]
    >>> [e.get("ip_id") for e in flatten_alerts(alerts, stats=stats)]
    [None, 1, 2]
    >>> stats
    FlattenStats(alerts_in=2, events_out=3, capped=0)
    """
    _check_max_events(max_events)
    return _stream(alerts, max_events, FlattenStats() if stats is None else stats)


def _stream(alerts: Iterable[dict[str, Any]], max_events: int, stats: FlattenStats) -> Iterator[Event]:
    for alert in alerts:
        stats.alerts_in += 1
        events, capped = _expand_alert(alert, max_events)
        stats.capped += capped
        for event in events:
            stats.events_out += 1
            yield event


def flatten_alerts_json(
    alerts: Iterable[dict[str, Any]],
    *,
    encode: Callable[[Any], bytes],
    max_events: int = DEFAULT_MAX_EVENTS,
    stats: FlattenStats | None = None,
) -> Iterator[bytes]:
    """:func:`flatten_alerts` with each event delivered as its JSON text: ``encode(event)`` for each event it yields.

    The text is assembled rather than encoded event by event: the fields an alert's events share are encoded once,
    each entity's fields once, and an event is its pieces joined, so an alert of n events costs about one encode
    instead of n (and no copies). ``encode`` must write a dict as one compact JSON object, keys in order and no
    space after the separators (``{"k":v,...}``), as :func:`airflow_provider_mdca.json_codec.encode` and
    ``json.dumps(..., separators=(",", ":"))`` do. An alert whose names collide (see the module docstring) is built
    as dicts by the same code as :func:`flatten_alerts` and encoded whole.

    >>> import json
    >>> encode = lambda event: json.dumps(event, separators=(",", ":")).encode()
    >>> alert = {"_id": "a", "entities": [{"type": "ip", "id": 1}, {"type": "ip", "id": 2}]}
    >>> [line.decode() for line in flatten_alerts_json([alert], encode=encode)]
    ['{"_id":"a","related_ips":2,"ip_id":1}', '{"_id":"a","related_ips":2,"ip_id":2}']
    """
    _check_max_events(max_events)
    return (line for _, lines in _alerts_json(alerts, max_events, stats or FlattenStats(), encode) for line in lines)


def flatten_alerts_json_by_alert(
    alerts: Iterable[dict[str, Any]],
    *,
    encode: Callable[[Any], bytes],
    max_events: int = DEFAULT_MAX_EVENTS,
    stats: FlattenStats | None = None,
) -> Iterator[tuple[dict[str, Any], list[bytes]]]:
    """:func:`flatten_alerts_json` one alert at a time: each alert with its events' lines (to count them per alert)."""
    _check_max_events(max_events)
    return _alerts_json(alerts, max_events, stats or FlattenStats(), encode)


def _alerts_json(
    alerts: Iterable[dict[str, Any]], max_events: int, stats: FlattenStats, encode: Callable[[Any], bytes]
) -> Iterator[tuple[dict[str, Any], list[bytes]]]:
    for alert in alerts:
        lines, capped = _expand_alert_json(alert, max_events, encode)
        stats.alerts_in += 1
        stats.capped += capped
        stats.events_out += len(lines)  # at most max_events lines: bounded, so a list is fine
        yield alert, lines


def _expand_alert_json(
    alert: dict[str, Any], max_events: int, encode: Callable[[Any], bytes]
) -> tuple[list[bytes], bool]:
    if not isinstance(alert, dict):
        raise ValueError(f"an alert must be a dict, got {type(alert).__name__}")
    by_type, distinct = _entity_fields_by_type(alert)
    common = dict(alert)  # this function's own dict (a C copy, cheaper than filtering): the counts go into it
    common.pop("entities", None)
    if not by_type:
        return [encode(common)], False
    for entity_type, members in by_type.items():
        _place(common, count_field(entity_type), len(members))
    groups = list(by_type.values())
    if not distinct or math.prod(map(len, groups)) > max_events or not _names_are_free(common, groups):
        # Capped, or some name must be renamed: the dict road (_expand_alert) knows both; rare, so encode its events.
        events, capped = _expand_alert(alert, max_events)
        return [encode(event) for event in events], capped
    # An event is `{<common members>` + `,<one entity's members>` per group + `}`; common always holds the counts.
    head = encode(common)[:-1]
    pieces = [[_members(encode(fields)) for fields in group] for group in groups]
    return [b"".join((head, *combination, b"}")) for combination in itertools.product(*pieces)], False


def _entity_fields_by_type(alert: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The alert's entities by type, each as its fields under their event names; whether every key kept its own name.

    Types come in first-seen order. A key may lose its name: 1 and "1" both become ``<type>_1`` (not JSON, but
    possible in a dict). The same groups and names as _group_entities and _combine lay out; validation is shared.
    """
    by_type: dict[str, list[dict[str, Any]]] = {}
    distinct = True
    for index, entity in enumerate(_entity_list(alert)):
        entity_type = _entity_type(alert, index, entity)
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

    Then each event is ``common`` followed by one entity's fields per group, in group order: what _combine builds
    when nothing collides.
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


def _members(encoded: bytes) -> bytes:
    """``{"a":1,"b":2}`` as ``,"a":1,"b":2``, to follow other members; ``{}`` as nothing."""
    return b"," + encoded[1:-1] if len(encoded) > 2 else b""


def _expand_alert(alert: dict[str, Any], max_events: int) -> tuple[Iterator[Event], bool]:
    """The alert's events (lazily, so a stream never holds one alert's thousand events) and whether capped."""
    _check_max_events(max_events)
    if not isinstance(alert, dict):
        raise ValueError(f"an alert must be a dict, got {type(alert).__name__}")
    groups = _group_entities(alert)
    base = {key: value for key, value in alert.items() if key != "entities"}
    combinations = math.prod(len(group.entities) for group in groups)
    if combinations <= max_events:
        return _combine(base, groups), False
    logger.warning(
        "alert %s: %d entity combinations exceed max_events=%d; emitted once unexpanded with %s=true",
        alert.get("_id", "?"),
        combinations,
        max_events,
        CAPPED_FIELD,
    )
    return iter([_capped_event(alert, groups, combinations)]), True


def _capped_event(alert: dict[str, Any], groups: list[_Group], combinations: int) -> Event:
    # The whole alert, entities included, so no entity is lost; the counts keep it searchable like the others.
    event = {key: _copy(value) for key, value in alert.items()}
    for group in groups:
        _place(event, count_field(group.type), len(group.entities))
    _place(event, CAPPED_FIELD, True)
    _place(event, COMBINATIONS_FIELD, combinations)
    return event


def _group_entities(alert: dict[str, Any]) -> list[_Group]:
    by_type: dict[str, list[dict[str, Any]]] = {}  # dicts keep insertion order: types stay in first-seen order
    for index, entity in enumerate(_entity_list(alert)):
        entity_type = _entity_type(alert, index, entity)
        by_type.setdefault(entity_type, []).append({key: value for key, value in entity.items() if key != "type"})
    return [_Group(entity_type, True, members) for entity_type, members in by_type.items()]


def _entity_list(alert: dict[str, Any]) -> list[Any]:
    entities = alert.get("entities")
    if entities is None:
        return []
    if not isinstance(entities, list):
        raise ValueError(f"alert {alert.get('_id', '?')!r}: 'entities' must be a list, got {type(entities).__name__}")
    return entities


def _entity_type(alert: dict[str, Any], index: int, entity: Any) -> str:
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
                    _place(event, name, _copy(value))
        yield event


def _common_fields(base: Mapping[str, Any], groups: list[_Group]) -> dict[str, Any]:
    # Holds references to the caller's values; every event copies them (see _combine).
    common = dict(base)
    for group in groups:
        _place(common, count_field(group.type), len(group.entities))
    for group in groups:
        if not group.should_flatten:
            _place(common, list_field(group.type), group.entities)
    return common


def _place(event: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name``, or the first free ``entity_<name>``, ``entity_<name>_2``... when taken: never overwrite.

    >>> event = {"user_name": "alert", "entity_user_name": "alert too"}
    >>> _place(event, "user_name", "entity")
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


def _check_max_events(max_events: int) -> None:
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise ValueError(f"max_events must be a positive int, got {max_events!r}")
