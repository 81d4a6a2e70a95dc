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
GET      /_admin/tenants/<t>/truth?service=&start=&end=[&visible_only=1]   sorted ``_id``s in [start, end)
GET      /_admin/tenants/<t>/stats                     counters
POST     /_admin/tenants/<t>/clock                     ``{"now_ms": n | null}``: pin or release its clock
POST     /_admin/clock                                 ``{"now_ms": n | null}``: the server-wide clock
=======  ============================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Mapping

from mdca_emulator import services
from mdca_emulator.reply import Reply, bad_request_as, json_body, json_reply
from mdca_emulator.state import TenantConfig, TenantRegistry, TenantState

__all__ = ["handle"]


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


def _now_from(body: bytes) -> int | None:
    raw = json_body(body)
    if not isinstance(raw, dict) or "now_ms" not in raw:
        raise ValueError('body must be {"now_ms": <epoch ms> | null}')
    value = raw["now_ms"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError("now_ms must be a non-negative integer or null")
    return value


@bad_request_as(_error)
def handle(
    registry: TenantRegistry,
    method: str,
    parts: list[str],
    query: Mapping[str, str],
    body: bytes,
) -> Reply:
    """Answer ``/_admin/<parts...>``."""
    if parts == ["clock"] and method == "POST":
        registry.clock.override_ms = _now_from(body)
        return json_reply(200, {"now_ms": registry.clock.now_ms(), "override": registry.clock.override_ms})
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
    if rest == ["clock"] and method == "POST":
        state.set_now(_now_from(body))
        return json_reply(200, {"now_ms": state.now_ms(), "override": state.settings().now_ms})
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


def _truth(state: TenantState, query: Mapping[str, str]) -> Reply:
    service = services.get(query.get("service", "")).name
    try:
        start, end = int(query.get("start", "0")), int(query.get("end", "0"))
    except ValueError:
        raise ValueError("start and end must be epoch milliseconds") from None
    visible_only = query.get("visible_only", "").lower() in ("1", "true", "yes")
    ids = state.truth(service, start, end, visible_only)
    return json_reply(200, {"service": service, "start": start, "end": end, "count": len(ids), "ids": ids})
