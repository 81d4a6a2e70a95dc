"""The admin API under ``/_admin/``: ground truth, counters, tenants and clocks, for tests and demos.

No authentication: the server only listens on 127.0.0.1 and refuses admin calls from anywhere else.

=======  ============================================  ==================================================
method   path                                          does
=======  ============================================  ==================================================
GET      /_admin/tenants                               ``{"tenants": [ids]}``
GET      /_admin/tenants/<t>                           the tenant's config (JSON TenantConfig)
PUT      /_admin/tenants/<t>                           create or replace (body: TenantConfig; id from path)
PATCH    /_admin/tenants/<t>                           change knobs (body: some TenantConfig fields)
DELETE   /_admin/tenants/<t>                           forget the tenant
GET      /_admin/tenants/<t>/truth?service=&start=&end=   what a complete read of [start, end) must deliver
GET      /_admin/tenants/<t>/stats                     counters
GET      /_admin/tenants/<t>/clock                     the tenant clock: ``now_ms`` and its settings
POST     /_admin/tenants/<t>/clock                     pin, release or compress the tenant clock (below)
GET      /_admin/clock                                 the server-wide clock
POST     /_admin/clock                                 pin, release or compress the server-wide clock
=======  ============================================  ==================================================

``truth`` takes, beside ``service``, ``start`` and ``end`` (epoch ms; snapshots ignore them):

* ``by``: the field the range is on: the event's time (``date``; files ``modifiedDate``), when MDCA stored the record
  (``created``; files ``snapshotLastModifiedDate``) or, alerts, when it was resolved (``resolutionDate``). Default:
  the registry's window field.
* ``as_of``: epoch ms, ``now`` (the tenant clock) or ``horizon`` (once every delay has passed): only records stored
  (and, by ``resolutionDate``, resolved) by then. Default ``horizon``; ``visible_only=1`` is ``as_of=now``.
* ``states=1``: also every state each record has had by then (alerts: ``at``, ``statusValue``,
  ``resolutionStatusValue``, ``resolveTime``, ``handledByUser``; the last one per ``_id`` is the one shown).
* ``ids=0``: the count alone, computed arithmetically where the model allows.

A clock body is ``{"now_ms": <epoch ms>}`` (pin), ``{"now_ms": null}`` (release: follow the server clock, or the wall
clock for the server's) or ``{"rate": r, "origin_ms": <epoch ms>}`` (compressed: from ``origin_ms``, default the time
it shows now, the clock runs ``r`` times as fast as the one below it: 60 makes a real second an emulated minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdca_emulator import services
from mdca_emulator.reply import Reply, bad_request_as, json_body, json_reply
from mdca_emulator.state import TenantConfig, TenantRegistry, TenantState

__all__ = ["handle"]


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


_CLOCK_BODY = 'body must be {"now_ms": <epoch ms> | null} or {"rate": <number>, "origin_ms": <epoch ms>}'


def _clock_from(body: bytes) -> tuple[str, int | None, float]:
    """("pin", now_ms, 1) or ("release", None, 1) or ("rate", origin_ms | None, rate) from a clock body."""
    raw = json_body(body)
    if not isinstance(raw, dict):
        raise ValueError(_CLOCK_BODY)
    if "rate" in raw:
        rate, origin = raw["rate"], raw.get("origin_ms")
        if set(raw) - {"rate", "origin_ms"}:
            raise ValueError(_CLOCK_BODY)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
            raise ValueError("rate must be a number >= 0")
        if origin is not None and (isinstance(origin, bool) or not isinstance(origin, int) or origin < 0):
            raise ValueError("origin_ms must be a non-negative integer or absent")
        return "rate", origin, float(rate)
    if set(raw) != {"now_ms"}:
        raise ValueError(_CLOCK_BODY)
    value = raw["now_ms"]
    if value is None:
        return "release", None, 1.0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("now_ms must be a non-negative integer or null")
    return "pin", value, 1.0


@bad_request_as(_error)
def handle(
    registry: TenantRegistry,
    method: str,
    parts: list[str],
    query: Mapping[str, str],
    body: bytes,
) -> Reply:
    """Answer ``/_admin/<parts...>``."""
    if parts == ["clock"] and method in ("GET", "POST"):
        if method == "POST":
            action, value, rate = _clock_from(body)
            if action == "rate":
                registry.clock.set_rate(rate, value)
            else:
                registry.clock.release()
                registry.clock.override_ms = value
        return json_reply(200, registry.clock.describe())
    if parts == ["tenants"] and method == "GET":
        return json_reply(200, {"tenants": registry.ids()})
    if len(parts) < 2 or parts[0] != "tenants":
        return _error(404, "no such admin resource")
    tenant_id, rest = parts[1], parts[2:]
    if not rest:
        return _tenant(registry, method, tenant_id, body)
    state = registry.get(tenant_id)
    if state is None:
        return _error(404, f"unknown tenant {tenant_id!r}")
    if rest == ["truth"] and method == "GET":
        return _truth(state, query)
    if rest == ["stats"] and method == "GET":
        return json_reply(200, state.stats())
    if rest == ["clock"] and method in ("GET", "POST"):
        if method == "POST":
            action, value, rate = _clock_from(body)
            if action == "rate":
                state.set_rate(rate, value)
            else:
                state.set_now(value)
        return json_reply(200, state.describe_clock())
    return _error(405 if rest[0] in ("truth", "stats", "clock") else 404, "not supported")


def _tenant(registry: TenantRegistry, method: str, tenant_id: str, body: bytes) -> Reply:
    if method == "PUT":
        raw = json_body(body)
        if not isinstance(raw, dict):
            raise ValueError("body must be a TenantConfig object")
        if raw.get("tenant_id", tenant_id) != tenant_id:
            raise ValueError("tenant_id in the body differs from the path")
        existed = registry.get(tenant_id) is not None
        created = registry.put(TenantConfig.from_dict({**raw, "tenant_id": tenant_id}))
        return json_reply(200 if existed else 201, created.config.to_dict())
    state = registry.get(tenant_id)
    if state is None:
        return _error(404, f"unknown tenant {tenant_id!r}")
    if method == "GET":
        return json_reply(200, state.config.to_dict())
    if method == "PATCH":
        changes = json_body(body)
        if not isinstance(changes, dict):
            raise ValueError("body must be an object of TenantConfig fields")
        return json_reply(200, state.patch(changes).to_dict())
    if method == "DELETE":
        registry.remove(tenant_id)
        return json_reply(200, {"deleted": tenant_id})
    return _error(405, "not supported")


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() in ("1", "true", "yes")


def _truth(state: TenantState, query: Mapping[str, str]) -> Reply:
    service = services.get(query.get("service", "")).name
    try:
        start, end = int(query.get("start", "0")), int(query.get("end", "0"))
    except ValueError:
        raise ValueError("start and end must be epoch milliseconds") from None
    visible_only = _flag(query, "visible_only", False)
    raw_as_of = query.get("as_of")
    as_of: int | str | None = raw_as_of
    if raw_as_of is not None and raw_as_of not in ("now", "horizon"):
        try:
            as_of = int(raw_as_of)
        except ValueError:
            raise ValueError("as_of must be epoch milliseconds, now or horizon") from None
    by = query.get("by") or None
    out: dict[str, Any] = {"service": service, "start": start, "end": end, "by": by, "as_of": raw_as_of}
    if not _flag(query, "ids", True):
        out["count"] = state.truth_count(service, start, end, visible_only, by=by, as_of=as_of)
        return json_reply(200, out)
    ids = state.truth(service, start, end, visible_only, by=by, as_of=as_of)
    out.update(count=len(ids), ids=ids)
    if _flag(query, "states", False):
        if not services.get(service).windowed:
            raise ValueError(f"{service} is a snapshot: its records have no states")
        out["states"] = state.truth_states(service, start, end, visible_only, by=by, as_of=as_of)
    return json_reply(200, out)
