"""Fault knobs of the Devo emulators: thread-safe, changeable while they run (also via ``PATCH /_admin/devo/faults``).

=====================================  ======================================================================
knob                                   effect
=====================================  ======================================================================
``refuse_connections: int``            relay: the next N connections are closed right after accept, before TLS
``drop_after_bytes: int | None``       relay: the next connection is cut (TCP RST) once it has read this many
                                       bytes; one connection only, then the knob is back to None
``drop_every_connection_after_bytes``  relay: as above, for every connection until set to None
``read_delay_s: float``                relay: sleep before each read (a slow reader; the sender's writes block)
``fault_queue: list[str]``             HTTP ingestion: one fault per request, in order (see :data:`HTTP_FAULTS`;
                                       ``ok`` lets that request through)
``http_read_delay_s: float``           HTTP ingestion: sleep before reading each request body
=====================================  ======================================================================

HTTP faults apply to ``/stream`` and ``/event`` requests only (never to the admin API). They reject the request
without storing it, except ``reset-after-store``, which stores the events and then resets the connection: the answer
is lost, so a retrying client delivers them twice (the at-least-once edge). Each applied fault is counted in the
store's ``faults_injected`` (``refuse_connection``, ``drop_after_bytes``, ``http_503``, ...). Delays are capped at
60 s.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HTTP_FAULTS", "DevoFaultSettings", "DevoFaults"]

# "ok" lets one request through untouched: a queue such as ["ok", "ok", "503", ...] fails the third batch.
HTTP_FAULTS = ("ok", "500", "502", "503", "429", "429-no-retry-after", "reset", "reset-after-store")
_MAX_DELAY_S = 60.0  # a typo of 600 would hang a test run for ten minutes per read


@dataclass(frozen=True)
class DevoFaultSettings:
    """One consistent set of knob values (see the module docstring)."""

    refuse_connections: int = 0
    drop_after_bytes: int | None = None
    drop_every_connection_after_bytes: int | None = None
    read_delay_s: float = 0.0
    fault_queue: tuple[str, ...] = field(default=())
    http_read_delay_s: float = 0.0

    def with_changes(self, changes: Mapping[str, Any]) -> DevoFaultSettings:
        """A copy with `changes` (JSON forms accepted) applied; ValueError naming the bad knob."""
        known = {item.name for item in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(known)}")
        values = {name: _VALIDATORS[name](name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready values."""
        data = dataclasses.asdict(self)
        data["fault_queue"] = list(self.fault_queue)
        return data


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _optional_count(name: str, value: Any) -> int | None:
    return None if value is None else _count(name, value)


def _delay(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= value <= _MAX_DELAY_S:
        raise ValueError(f"{name} must be between 0 and {_MAX_DELAY_S:g} seconds, got {value!r}")
    return float(value)


def _queue(name: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{name} must be a list of {list(HTTP_FAULTS)}")
    faults = tuple(str(item) for item in items)
    bad = [item for item in faults if item not in HTTP_FAULTS]
    if bad:
        raise ValueError(f"{name}: unknown fault(s) {bad}; known: {list(HTTP_FAULTS)}")
    return faults


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "refuse_connections": _count,
    "drop_after_bytes": _optional_count,
    "drop_every_connection_after_bytes": _optional_count,
    "read_delay_s": _delay,
    "fault_queue": _queue,
    "http_read_delay_s": _delay,
}


class DevoFaults:
    """The live knobs: tests and the admin API change them, the relay and HTTP servers consume them.

    :param on_inject: called with a fault's name each time one is applied (the store counts them).
    """

    def __init__(self, on_inject: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = DevoFaultSettings()
        self._on_inject = on_inject or (lambda name: None)

    # -- for tests and the admin API -------------------------------------------------------------------------

    @property
    def settings(self) -> DevoFaultSettings:
        """The current knob values (an immutable snapshot)."""
        with self._lock:
            return self._settings

    def update(self, changes: Mapping[str, Any] | None = None, **knobs: Any) -> DevoFaultSettings:
        """Change some knobs (all or nothing: a bad value changes none); returns the new settings."""
        merged = {**(changes or {}), **knobs}
        with self._lock:
            self._settings = self._settings.with_changes(merged)
            return self._settings

    def reset(self) -> None:
        """Every knob back to its default (no faults)."""
        with self._lock:
            self._settings = DevoFaultSettings()

    def to_dict(self) -> dict[str, Any]:
        """The current knobs as JSON."""
        return self.settings.to_dict()

    # -- for the servers -------------------------------------------------------------------------------------

    def take_refusal(self) -> bool:
        """Whether to refuse this connection (consumes one of ``refuse_connections``)."""
        with self._lock:
            if not self._settings.refuse_connections:
                return False
            self._settings = dataclasses.replace(
                self._settings, refuse_connections=self._settings.refuse_connections - 1
            )
        self._on_inject("refuse_connection")
        return True

    def take_drop_limit(self) -> tuple[int, str] | None:
        """``(bytes, knob)``: cut this connection after that many bytes; None: never (consumes ``drop_after_bytes``)."""
        with self._lock:
            once, every = self._settings.drop_after_bytes, self._settings.drop_every_connection_after_bytes
            if once is not None:
                self._settings = dataclasses.replace(self._settings, drop_after_bytes=None)
        if once is not None:
            return once, "drop_after_bytes"
        if every is not None:
            return every, "drop_every_connection_after_bytes"
        return None

    def note(self, fault: str) -> None:
        """Count a fault that was actually applied (e.g. a connection cut by a drop knob)."""
        self._on_inject(fault)

    def relay_read_delay(self) -> float:
        """Seconds to sleep before each relay read."""
        return self.settings.read_delay_s

    def take_http_fault(self) -> str | None:
        """The fault for this ingestion request, if one is queued (consumes it)."""
        with self._lock:
            queue = self._settings.fault_queue
            if not queue:
                return None
            self._settings = dataclasses.replace(self._settings, fault_queue=queue[1:])
        if queue[0] == "ok":
            return None
        self._on_inject(f"http_{queue[0]}")
        return queue[0]

    def http_read_delay(self) -> float:
        """Seconds to sleep before reading a request body."""
        return self.settings.http_read_delay_s
