"""Delivery keys: the name a staged event has in the window's delivery ledger.

An event's key is its record's ``_id``. Flattened alerts share their alert's ``_id``, so there the key is
``<_id>#<n>``: the n-th event with that ``_id`` in the stage, stable because flattening is deterministic. A record
without an ``_id`` is keyed by a hash of its content, so identical records are delivered once.

``n`` counts across the whole stage, and a part may begin inside an alert's events. To ship the parts a ledger has
not yet seen without reading the ones it has, the flatten step writes, per part, the count each key already had
when the part began (:class:`KeyOffsets`, kept in the flattened manifest): a shipper starts a part's
:class:`EventKeys` from there. Imports nothing from Airflow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["MANIFEST_KEY", "EventKeys", "KeyOffsets", "record_key"]

#: Where the flattened manifest's ``extra`` keeps the per-part offsets: ``{part name: {key: count before}}``.
MANIFEST_KEY: Final = "event_key_offsets"


def record_key(record: Mapping[str, Any]) -> str:
    """The key of a record without the per-alert count: its ``_id``, or a hash of its content.

    >>> record_key({"_id": 7}), record_key({"a": 1})[:7]
    ('7', 'sha256:')
    """
    raw = record.get("_id")
    if raw is not None:
        text = str(raw)
        if text:
            return text
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8", "replace")
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class EventKeys:
    """Gives each staged record of a stage its ledger key, in stage order.

    :param per_alert: flattened alerts: keys are ``<key>#<n>``.
    :param offsets: for a stage read from the middle, the count each key already has there (see
        :class:`KeyOffsets`).

    >>> keys = EventKeys(per_alert=True)
    >>> [keys.key({"_id": "a"}), keys.key({"_id": "a"}), keys.key({"_id": "b"})]
    ['a#0', 'a#1', 'b#0']
    >>> EventKeys(per_alert=True, offsets={"a": 3}).key({"_id": "a"})
    'a#3'
    >>> EventKeys(per_alert=False).key({"_id": 7})
    '7'
    """

    def __init__(self, *, per_alert: bool, offsets: Mapping[str, int] | None = None) -> None:
        self.per_alert = per_alert
        self._seen: dict[str, int] = dict(offsets or {})

    def key(self, record: Mapping[str, Any]) -> str:
        """The next record's key (call it once per record, in stage order)."""
        key = record_key(record)
        if not self.per_alert:
            return key
        index = self._seen.get(key, 0)
        self._seen[key] = index + 1
        return f"{key}#{index}"


class KeyOffsets:
    """Records the keys of a flattened stage as it is written, to say where each part's keys start counting.

    Call :meth:`add` with each alert's key and event count, in the order the events are written; then
    :meth:`by_part` with the parts' record counts. Only the offsets that are not zero are kept: a part that begins
    on an alert boundary with no key seen before has none.
    """

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._counts: list[int] = []

    def add(self, key: str, events: int) -> None:
        """The next ``events`` events of the stage all have ``key``."""
        if events:
            self._keys.append(key)
            self._counts.append(events)

    def by_part(self, parts: Iterable[tuple[str, int]]) -> dict[str, dict[str, int]]:
        """``{part name: {key: events with that key before the part}}`` for ``(name, records)`` in stage order.

        >>> offsets = KeyOffsets()
        >>> for key, events in (("a", 3), ("b", 2), ("a", 1)):
        ...     offsets.add(key, events)
        >>> offsets.by_part([("p0", 2), ("p1", 2), ("p2", 2)])
        {'p1': {'a': 2}, 'p2': {'b': 1, 'a': 3}}

        :raises ValueError: the parts hold more events than were added.
        """
        seen: dict[str, int] = {}
        out: dict[str, dict[str, int]] = {}
        runs = iter(zip(self._keys, self._counts, strict=True))
        key, left = "", 0  # the current run of one key, and how many of its events are not yet placed
        for name, records in parts:
            starts: dict[str, int] = {}  # each key's count where it first appears in this part
            while records:
                if not left:
                    key, left = next(runs, ("", 0))
                    if not left:
                        raise ValueError(f"part {name} holds more events than the stage was given")
                starts.setdefault(key, seen.get(key, 0))
                taken = min(left, records)
                seen[key] = seen.get(key, 0) + taken
                records -= taken
                left -= taken
            kept = {k: count for k, count in starts.items() if count}
            if kept:
                out[name] = kept
        return out
