"""Field obfuscation: replace configured fields with a keyed hash or a mask before events leave for Devo.

The seed collector's obfuscation service, per service: a list of field paths, each with a method.

Paths. Dotted keys; ``[]`` after a key means "every element of this list"; it may repeat for nested lists:
``user.userName``, ``entities[].label``, ``rawDataJson.items[].owner.email``, ``a[][].b``. A path ending in
``[]`` replaces each element. A key cannot contain ``.``, ``[`` or ``]``, nor start or end with whitespace
(almost always a config typo). Lists are only entered where the path says ``[]``: ``entities.label`` on a
list is a missing path, not an implicit loop, so a rule never reaches further than it reads.

Methods.

- ``hmac``: ``"hmac-sha256:" + hexdigest`` of HMAC-SHA256 under the caller's key. The full 64 hex digits
  are kept: a truncated digest would invite collisions between distinct users in Devo joins, and the prefix
  says what the value is. The same value and key always give the same output, so joins and counts in Devo
  still work; without the key the original cannot be confirmed by hashing guesses (a plain hash could).
- ``mask``: the constant ``"***"``. Keeping the length was rejected: it leaks the length (a short user
  name narrows guesses) and non-string values have no natural length.

Leaves. A string is hashed from its UTF-8 bytes; any other value (int, float, bool, list, dict) from its
canonical JSON (sorted keys, no spaces, unicode kept), so equal values hash equally wherever they occur. An
int id and the same digits as a string hash alike on purpose: MDCA sends some ids as either. ``None`` stays
``None`` (nothing to hide; the field's absence of value is itself not sensitive). Either method replaces the
leaf with a string, whatever its type.

Missing paths are ignored and counted in :attr:`Obfuscator.stats`: an absent key or a value of the wrong
kind (a key step on a non-dict, ``[]`` on a non-list), once per place the walk stops. :attr:`Obfuscator.matched`
counts, per rule, the fields it reached (``None`` included): a rule that reaches none over a whole window names a
field the events do not have, almost always a wrong path, and the pipeline warns about it (:meth:`unmatched`).

Flattened alerts. Paths name fields of the records as MDCA sends them (``entities[].label``), so alerts are
obfuscated before they are flattened: flattening renames entity fields by each alert's entity types
(``user_label``, ``ip_label``, ``entity_user_label`` on a collision), which no path could name in advance.

Copies. :meth:`Obfuscator.apply` never mutates its input. It returns a new top-level dict and copies only
the containers along the paths it changes; untouched sub-objects are shared with the input (copying whole
events would cost more than the hashing).

>>> obfuscator = Obfuscator(
...     [ObfuscationRule("user.userName", "hmac"), ObfuscationRule("entities[].label", "mask")], key=b"k" * 32
... )
>>> event = {"user": {"userName": "alice"}, "entities": [{"label": "x"}, {"id": 2}], "n": 1}
>>> out = obfuscator.apply(event)
>>> out["user"]["userName"]
'hmac-sha256:6664a42048c6d6d7fe3657e39b14155c099246385212db085614c81f5b9c938d'
>>> out["entities"], out["n"], event["user"]["userName"]
([{'label': '***'}, {'id': 2}], 1, 'alice')
>>> obfuscator.stats
ObfuscationStats(events=1, values_replaced=2, values_none=0, paths_missing=1)

The key is never kept as an attribute (only a prepared HMAC state is) and never appears in a repr or an
error message. An :class:`Obfuscator` is not thread-safe (its stats are plain counters): use one per task.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "HMAC_PREFIX",
    "MASK",
    "MIN_KEY_BYTES",
    "ObfuscationRule",
    "ObfuscationStats",
    "Obfuscator",
    "parse_path",
    "parse_rules",
]

Method = Literal["hmac", "mask"]
METHODS: tuple[Method, ...] = ("hmac", "mask")
HMAC_PREFIX = "hmac-sha256:"
MASK = "***"  # the same mask redaction.py puts on secrets in logs
#: Shorter HMAC keys are refused: 128 bits is the floor for a key guarded only by its secrecy.
MIN_KEY_BYTES = 16

#: A parsed path: key steps as str, ``None`` for "every element of the list here".
PathSteps = tuple[str | None, ...]

# A key (no '.', '[' or ']', no leading or trailing whitespace) followed by any number of '[]'.
_SEGMENT = re.compile(r"([^.\[\]\s](?:[^.\[\]]*[^.\[\]\s])?)((?:\[\])*)")


def parse_path(path: str) -> PathSteps:
    """Parse a field path into steps: a key as a str, ``None`` for every element of a list.

    >>> parse_path("rawDataJson.items[].owner.email")
    ('rawDataJson', 'items', None, 'owner', 'email')
    >>> parse_path("a[][].b")
    ('a', None, None, 'b')
    >>> parse_path("a..b")
    Traceback (most recent call last):
    ...
    ValueError: malformed obfuscation path 'a..b': segment 2 ('') must be a key followed by any number of '[]'

    :raises ValueError: the path is empty, not a str, or malformed (the message names it).
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"malformed obfuscation path {path!r}: must be a non-empty str")
    steps: list[str | None] = []
    for number, segment in enumerate(path.split("."), start=1):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(
                f"malformed obfuscation path {path!r}: segment {number} ({segment!r}) "
                "must be a key followed by any number of '[]'"
            )
        steps.append(match.group(1))
        steps.extend([None] * (len(match.group(2)) // 2))
    return tuple(steps)


@dataclass(frozen=True)
class ObfuscationRule:
    """One field path and how to hide its values. The path is checked here, so a bad config fails early."""

    path: str
    method: Method = "hmac"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"obfuscation path {self.path!r}: method must be one of {METHODS}, got {self.method!r}")
        parse_path(self.path)


@dataclass
class ObfuscationStats:
    """What an :class:`Obfuscator` has done so far. All counters start at zero."""

    events: int = 0
    values_replaced: int = 0
    #: Leaves found holding ``None``: left as they are.
    values_none: int = 0
    #: Places where a path could not be followed (absent key, or a value of the wrong kind).
    paths_missing: int = 0

    def as_dict(self) -> dict[str, int]:
        """A plain dict (JSON-serialisable) of the counters."""
        return asdict(self)


@dataclass(frozen=True)
class _CompiledRule:
    path: str
    method: Method
    steps: PathSteps


class Obfuscator:
    """Apply obfuscation rules to events. One per service (each service has its own paths).

    :param rules: applied in order; a path may appear once. Overlapping paths (``user`` and
        ``user.userName``) apply in order too: once ``user`` is a hash, ``user.userName`` is missing.
    :param key: the HMAC key, at least :data:`MIN_KEY_BYTES` bytes; required when any rule uses ``hmac``.
    :raises ValueError: a rule is malformed or repeated, or the key is missing, not bytes or too short.
    """

    __slots__ = ("_mac", "_rules", "matched", "stats")

    def __init__(self, rules: Sequence[ObfuscationRule], *, key: bytes | None) -> None:
        self._rules = tuple(_compile(rules))
        self._mac = _prepare_mac(key, needed=any(rule.method == "hmac" for rule in self._rules))
        self.stats = ObfuscationStats()
        #: Per rule's path, the fields it reached so far (replaced, or found holding ``None``).
        self.matched: dict[str, int] = {rule.path: 0 for rule in self._rules}

    def unmatched(self) -> list[str]:
        """The paths of the rules that reached no field in any event so far (none before the first event).

        >>> rules = [ObfuscationRule("user", "mask"), ObfuscationRule("entities.label", "mask")]
        >>> obfuscator = Obfuscator(rules, key=None)
        >>> _ = obfuscator.apply({"user": "alice", "entities": [{"label": "x"}]})
        >>> obfuscator.unmatched()
        ['entities.label']
        """
        if not self.stats.events:
            return []
        return [path for path, count in self.matched.items() if not count]

    def without(self, paths: Iterable[str]) -> Obfuscator | None:
        """An obfuscator of the other rules, under the same key (None when no rule is left); its counts start at 0."""
        skipped = set(paths)
        rest = tuple(rule for rule in self._rules if rule.path not in skipped)
        if not rest:
            return None
        other = Obfuscator([], key=None)
        other._rules, other._mac = rest, self._mac  # the prepared key: the raw key is not kept to build it again
        other.matched = {rule.path: 0 for rule in rest}
        return other

    @property
    def rules(self) -> tuple[ObfuscationRule, ...]:
        """The rules, in the order they apply."""
        return tuple(ObfuscationRule(rule.path, rule.method) for rule in self._rules)

    def __repr__(self) -> str:
        key = "<set>" if self._mac is not None else None
        return f"Obfuscator(rules={list(self.rules)!r}, key={key})"

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        """A new event with every rule applied; ``event`` itself is never mutated.

        :raises ValueError: ``event`` is not a dict, or a non-string leaf cannot be written as JSON.
        """
        if not isinstance(event, dict):
            raise ValueError(f"an event must be a dict, got {type(event).__name__}")
        self.stats.events += 1
        result = dict(event)
        # Containers this call created, by id: these are written in place, anything else is copied first.
        # The objects are kept here so that no id can be reused by a new object during the call.
        owned: dict[int, Any] = {id(result): result}
        for rule in self._rules:
            self._rewrite(result, rule.steps, rule, owned)
        return result

    def _rewrite(self, node: Any, steps: PathSteps, rule: _CompiledRule, owned: dict[int, Any]) -> Any:
        """``node`` with the leaves under ``steps`` replaced: ``node`` itself when nothing changed."""
        if not steps:
            return self._replace(node, rule)
        step, rest = steps[0], steps[1:]
        children = self._children(node, step)
        if children is None:
            self.stats.paths_missing += 1
            return node
        result = node
        for index, child in children:
            new_child = self._rewrite(child, rest, rule, owned)
            if new_child is not child:
                if id(result) not in owned:
                    result = list(result) if isinstance(result, list) else dict(result)
                    owned[id(result)] = result
                result[index] = new_child
        return result

    @staticmethod
    def _children(node: Any, step: str | None) -> list[tuple[Any, Any]] | None:
        """The (index or key, child) pairs a step reaches, or ``None`` when it cannot be followed."""
        if step is None:
            return list(enumerate(node)) if isinstance(node, list) else None
        if isinstance(node, dict) and step in node:
            return [(step, node[step])]
        return None

    def _replace(self, value: Any, rule: _CompiledRule) -> Any:
        self.matched[rule.path] += 1
        if value is None:
            self.stats.values_none += 1
            return None
        self.stats.values_replaced += 1
        if rule.method == "mask":
            return MASK
        return self._digest(value, rule.path)

    def _digest(self, value: Any, path: str) -> str:
        if self._mac is None:  # unreachable: construction refuses hmac rules without a key
            raise ValueError(f"obfuscation path {path!r}: no HMAC key")
        text = value if isinstance(value, str) else _canonical_json(value, path)
        mac = self._mac.copy()
        # surrogatepass: JSON may carry lone surrogates ("\ud800"); they must hash, not crash the task.
        mac.update(text.encode("utf-8", "surrogatepass"))
        return HMAC_PREFIX + mac.hexdigest()


def parse_rules(config: Mapping[str, str] | Sequence[str | Mapping[str, str]]) -> list[ObfuscationRule]:
    """Rules from a simple config.

    Accepted forms: a mapping of path to method; or a list whose items are a path (meaning ``hmac``) or a
    mapping ``{"path": ..., "method": ...}`` (``method`` defaults to ``hmac``).

    >>> parse_rules(["user.userName", {"path": "entities[].label", "method": "mask"}])
    [ObfuscationRule(path='user.userName', method='hmac'), ObfuscationRule(path='entities[].label', method='mask')]
    >>> parse_rules({"device.clientIP": "mask"})
    [ObfuscationRule(path='device.clientIP', method='mask')]

    :raises ValueError: the config has another shape (a single string included: it would read as a list
        of one-letter paths), a method is unknown, or a path is malformed.
    """
    if isinstance(config, (str, bytes)):
        raise ValueError("obfuscation config must be a list of paths or a mapping of path to method, not a string")
    if isinstance(config, Mapping):
        return [ObfuscationRule(_path(path, "a key"), _method(method, path)) for path, method in config.items()]
    if not isinstance(config, Sequence):
        raise ValueError(f"obfuscation config must be a list or a mapping, got {type(config).__name__}")
    return [_rule_from_item(index, item) for index, item in enumerate(config)]


def _rule_from_item(index: int, item: object) -> ObfuscationRule:
    if isinstance(item, str):
        return ObfuscationRule(item, "hmac")
    if not isinstance(item, Mapping):
        raise ValueError(f"obfuscation config item {index}: expected a path or a mapping, got {type(item).__name__}")
    unknown = sorted(str(key) for key in item if key not in ("path", "method"))
    if unknown:
        raise ValueError(f"obfuscation config item {index}: unknown keys {unknown}; expected 'path' and 'method'")
    path = _path(item.get("path"), f"item {index}")
    return ObfuscationRule(path, _method(item.get("method", "hmac"), path))


def _path(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"obfuscation config {where}: path must be a str, got {type(value).__name__}")
    return value


def _method(value: object, path: str) -> Method:
    # Spelled out rather than cast, so mypy knows a config string became a Method.
    if value == "hmac":
        return "hmac"
    if value == "mask":
        return "mask"
    raise ValueError(f"obfuscation path {path!r}: method must be one of {METHODS}, got {value!r}")


def _compile(rules: Sequence[ObfuscationRule]) -> list[_CompiledRule]:
    compiled: list[_CompiledRule] = []
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if not isinstance(rule, ObfuscationRule):
            raise ValueError(f"rules[{index}] must be an ObfuscationRule, got {type(rule).__name__}")
        if rule.path in seen:
            # Two methods on one path would hash a hash or mask a mask: surely a config mistake.
            raise ValueError(f"obfuscation path {rule.path!r} is listed more than once")
        seen.add(rule.path)
        compiled.append(_CompiledRule(rule.path, rule.method, parse_path(rule.path)))
    return compiled


def _prepare_mac(key: bytes | None, *, needed: bool) -> hmac.HMAC | None:
    """A ready HMAC state to copy per value (the raw key is not kept), or ``None`` when there is no key.

    Messages here describe the key's type and length, never its bytes.
    """
    if key is None:
        if needed:
            raise ValueError("an HMAC key is required: at least one obfuscation rule uses method 'hmac'")
        return None
    if not isinstance(key, (bytes, bytearray)):
        raise ValueError(f"the HMAC key must be bytes, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the HMAC key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return hmac.new(bytes(key), digestmod=hashlib.sha256)


def _canonical_json(value: Any, path: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        # Name the path and type only: the value is what this module exists to hide.
        raise ValueError(f"obfuscation path {path!r}: cannot hash a {type(value).__name__} value") from None
