"""MDCA API v1 list endpoints: auth, filters, sort, skip/limit paging, activities scan mode, faults, throttle.

One request goes through, in order: the throttle (429, no slot taken), the fault injector (5xx, 429, reset),
authentication (401/403), request validation (400), then the page. A ``truncate`` fault lets the page be
computed and cuts it in half on the wire.

Every per-service fact comes from the provider's registry (``services.py``): the routes, the paging (scan or
skip/limit, snapshots), the credential, whether a service is windowed. The fields a windowed service is filtered
and sorted on are the emulator's own, per service (``data.field_roles``), whatever field the registry windows on, so
that a collector may move its window from one to another. When records are stored and how they change is the tenant's
time model (``timing.py``; ``TenantConfig.time_model``, realistic by default).

Choices where MDCA's behaviour is unknown or undocumented (the client must survive either way):

* Filters: activities ``date`` (when it happened) and ``created`` (when MDCA stored it); alerts ``date`` and
  ``resolutionDate`` (when resolved: alerts whose ``resolveTime`` is in range and already past on the tenant clock);
  files ``modifiedDate`` (the app's time) and ``snapshotLastModifiedDate`` (when MDCA's scan updated its record).
  Each takes ``gte``, ``gt``, ``lte``, ``lt``, ``eq`` (a value or a list) and ``range`` (a list of inclusive
  ``{"start", "end"}``), in epoch ms, and filters AND together; anything else is a 400. Snapshots take only ``_id``
  with ``gt``, ``gte``, ``lt``, ``lte`` (MDCA documents no filter for stable paging; the emulator's choice, for
  paging a collection that changes on a unique key); an empty ``filters`` object is fine.
* A record is invisible to every query and to ``total`` until it is stored (``created`` <= the tenant clock);
  ``total`` is then exact. Activities older than their retention (30 days, realistic model) are no longer served:
  an empty page, ``total`` 0.
* Sort fields: any filter field of the service (activities ``date``/``created``, alerts ``date``/``resolutionDate``,
  files ``modifiedDate``/``snapshotLastModifiedDate``), and the registry's record field (e.g. ``timestamp``) as the
  event's time; ties are broken by ``_id``. Alerts sorted by ``resolutionDate``: the resolved ones by
  ``resolveTime``, then the others by ``date`` (the other way round descending). Snapshots: ``_id``, entities
  ``date`` (when the entity joined the collection: the same order), subnets ``name`` (names sort like ``_id``).
* Default order: a non-scan list that states no ``sortDirection`` answers newest first (``desc``), the order MCAS's
  own PowerShell paging relies on (``TenantConfig.default_sort_direction``), sorted on the event's time (snapshots:
  ``_id``); a stated ``sortField``/``sortDirection`` is obeyed.
* ``isScan`` is honoured by the scan-paged service (activities) only and ignored elsewhere; a scan takes no ``skip``
  (other than 0). It follows its sort field (default ``date``), ascending unless ``sortDirection`` says ``desc``;
  ``nextQueryFilters`` moves that field's bound (the lower one ascending: ``gte`` the page's last value; the upper one
  descending: ``lte``), keeps every other filter, and the records sharing the page's last value move to the next
  page. When nothing needs dropping because the page is one value, the next bound is that value + 1 (- 1
  descending).
* A Bearer token (Entra ID) is refused with 403 where the registry says the service takes the portal's legacy token
  (files); the legacy token is accepted everywhere.
* Alerts show their state as of the tenant clock: ``statusValue`` 0 new, 1 in progress, 2 resolved (MDCA does not
  document its codes; these follow the Defender portal's statuses), ``resolutionStatusValue`` as documented (0 open,
  3 false positive, 4 benign, 5 true positive), ``resolveTime`` in epoch ms (null until resolved; Microsoft's own
  sample shows ISO text), ``handledByUser`` and ``comment``. Under the instant model alerts never change and carry
  neither ``resolveTime`` nor ``handledByUser``, as before.
* Files carry ``snapshotLastModifiedDate`` as ISO 8601 text with milliseconds (what MDCA writes in records); filters
  on it take epoch ms like every date filter. A file's change is stored at the first scan of its app after it
  (``timing.py``: every 4 hours, each app at its own offset), so that is when the file's record shows it.
* Entities and subnets change with the clock (realistic model): records join and leave, about ``count`` of them there
  at any time, each staying a lifetime drawn in ``lifetime_days``; newcomers have higher ``_id``s (and later
  ``date``, their ``firstSeen``). A skip/limit page read later may therefore shift; ``_id`` ``gt`` paging does not.
  MDCA documents neither how its collections change nor a stable way to page them.
* The instant it is stored, a record is in every answer that asks for it; ``total`` counts records as of the same
  instant. Records stored at the same ``created`` (or resolved at the same ``resolveTime``) sort by ``_id``.
"""

from __future__ import annotations

import bisect
import dataclasses
import email.utils
import functools
import hmac
import itertools
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mdca_emulator import services
from mdca_emulator.data import (
    ALL,
    INF_MS,
    Entry,
    Query,
    SnapshotData,
    TimeSeriesData,
    field_roles,
    intersect,
    normalise,
)
from mdca_emulator.reply import Prepared, Reply, dumps, json_reply, text_reply
from mdca_emulator.state import TenantConfig, TenantState

__all__ = ["ApiRequest", "BadRequest", "handle", "parse_filters"]

PAGE_MAX = 100
SCAN_MIN, SCAN_MAX, SCAN_DEFAULT = 500, 5000, 500
_NOT_VALID = "CONSOLE_FORMS_NOT_VALID_VALUE"
Intervals = list[tuple[int, int]]

#: Sort fields a snapshot takes beyond ``_id`` (and the registry's stated order field): MDCA's documented ones that
#: the emulator serves, each the same order as ``_id``.
_EXTRA_SORT_FIELDS: dict[str, frozenset[str]] = {
    "data_enrichment": frozenset({"name"}),
    "entities": frozenset({"date"}),
}
#: What MDCA's page of a service carries beyond ``hasNext`` and ``total``, given the page's limit.
_EXTRA_META: dict[str, Callable[[int], dict[str, Any]]] = {
    "alerts": lambda limit: {"max": limit, "moreThanTotal": False},
    "entities": lambda limit: {"max": limit},
}
services.check_table(_EXTRA_SORT_FIELDS, "extra sort fields", complete=False)
services.check_table(_EXTRA_META, "extra page fields", complete=False)


@dataclass(frozen=True)
class ApiRequest:
    """The parts of an HTTP request the MDCA logic looks at (`prepared`: the connection's prefetched page)."""

    method: str
    query: Mapping[str, str]
    body: bytes
    authorization: str | None
    prepared: Prepared | None = None


class BadRequest(Exception):
    """A 400 like MDCA's form errors: ``{"<field>": [{"error", "errorMessageCode"}], "error": true}``."""

    def __init__(self, field: str, message: str, code: str = _NOT_VALID) -> None:
        super().__init__(message)
        self.field, self.message, self.code = field, message, code

    def reply(self) -> Reply:
        """The 400 answer."""
        problem = {"error": self.message, "errorMessageCode": self.code}
        return json_reply(400, {self.field: [problem], "error": True})


# -- entry point ---------------------------------------------------------------------------------------------


def handle(state: TenantState, service: str, request: ApiRequest) -> Reply:
    """Answer one request to ``/api/v1/<service>/`` of `state`'s tenant, and count it."""
    reply = _handle(state, service, request)
    state.record_request(service, None if reply.fault == "reset" else reply.status, reply.records)
    return reply


def _handle(state: TenantState, service: str, request: ApiRequest) -> Reply:
    config = state.settings()
    wait = state.admit()
    if wait is not None:
        return _too_many(config.retry_after_style, wait)
    fault = state.take_fault(service)
    if fault is not None and fault != "truncate":
        return _fault_reply(fault, config.retry_after_style)
    denied = _authenticate(state, config, service, request.authorization)
    if denied is not None:
        return denied
    try:
        fields = _request_fields(request)
        reply = _reuse(request.prepared, state, config, service, fields)
        reply = reply or _list(state, config, service, fields)
    except BadRequest as exc:
        return exc.reply()
    state.note_success()
    if fault == "truncate":
        reply.fault = "truncate"
    return reply


# -- throttle and faults -------------------------------------------------------------------------------------


def _retry_after(style: str, seconds: int) -> dict[str, str]:
    if style == "seconds":
        return {"Retry-After": str(seconds)}
    if style == "http-date":
        # HTTP dates have 1 s resolution: round up so the date is never earlier than the real wait.
        return {"Retry-After": email.utils.formatdate(math.ceil(time.time()) + seconds, usegmt=True)}
    return {}


def _too_many(style: str, seconds: int) -> Reply:
    return json_reply(
        429, {"error": "Too many requests", "detail": "Request was throttled."}, _retry_after(style, seconds)
    )


_GATEWAY_PAGE = "<html><head><title>{code} {text}</title></head><body><h1>{code} {text}</h1></body></html>"


def _fault_reply(fault: str, style: str) -> Reply:
    if fault == "reset":
        return Reply(0, fault="reset")
    if fault == "429":
        return _too_many(style, 1)
    if fault == "429-no-retry-after":
        return _too_many("absent", 1)
    if fault in ("502", "504"):  # gateways answer in HTML, not JSON
        text = "Bad Gateway" if fault == "502" else "Gateway Time-out"
        page = _GATEWAY_PAGE.format(code=fault, text=text)
        return text_reply(int(fault), page, content_type="text/html; charset=utf-8")
    if fault == "503":
        return json_reply(503, {"error": "Service unavailable", "detail": "Please retry later."})
    return json_reply(500, {"error": "Internal server error", "detail": "An unexpected error occurred."})


# -- authentication ------------------------------------------------------------------------------------------


def _unauthorized() -> Reply:
    return json_reply(401, {"detail": "Invalid token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _authenticate(state: TenantState, config: TenantConfig, service: str, header: str | None) -> Reply | None:
    """None when allowed, else the 401 (bad, expired, revoked, missing credential) or 403 (files, Bearer)."""
    scheme, _, credential = (header or "").strip().partition(" ")
    scheme, credential = scheme.lower(), credential.strip()
    if scheme == "bearer" and credential:
        if state.token_status(credential) != "valid":
            return _unauthorized()
        if services.get(service).auth is services.AuthKind.LEGACY_TOKEN:  # no Entra app permission covers it
            return json_reply(403, {"detail": "Insufficient role based permissions", "error": True})
        return None
    if (
        scheme == "token"
        and credential
        and hmac.compare_digest(credential.encode(), config.files_access_token.encode())
    ):
        return None
    return _unauthorized()


# -- request parsing -----------------------------------------------------------------------------------------


def _query_value(key: str, value: str) -> Any:
    """A GET parameter in the type the JSON body would carry."""
    if key == "filters":
        try:
            return json.loads(value)
        except ValueError:
            raise BadRequest("filters", "filters is not valid") from None
    if key in ("skip", "limit"):
        return int(value) if value.lstrip("-").isdigit() else value
    if key == "isScan":
        return {"true": True, "1": True, "false": False, "0": False}.get(value.lower(), value)
    return value


def _request_fields(request: ApiRequest) -> dict[str, Any]:
    """Query parameters, overlaid by the JSON body's fields."""
    fields = {key: _query_value(key, value) for key, value in request.query.items()}
    body = request.body.strip()
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            raise BadRequest("body", "body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise BadRequest("body", "body is not valid")
        fields.update(parsed)
    return fields


def _int_field(fields: Mapping[str, Any], name: str, default: int) -> int:
    value = fields.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(name, f"{name} is not valid")
    return value


def _ms(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < INF_MS:
        raise BadRequest("filters", f"{name} is not valid")
    return value


def _op_intervals(name: str, op: str, value: Any) -> Intervals:
    """The half-open ranges one filter operator admits."""
    if op == "gte":
        return [(_ms(name, value), INF_MS)]
    if op == "gt":
        return [(_ms(name, value) + 1, INF_MS)]
    if op == "lte":
        return [(0, _ms(name, value) + 1)]
    if op == "lt":
        return [(0, _ms(name, value))]
    if op == "eq":
        values = value if isinstance(value, list) else [value]
        return normalise([(_ms(name, v), _ms(name, v) + 1) for v in values])
    if op == "range":
        ranges = value if isinstance(value, list) else [value]
        out: Intervals = []
        for item in ranges:
            if not isinstance(item, dict) or "start" not in item or "end" not in item:
                raise BadRequest("filters", f"{name} is not valid")
            start, end = _ms(name, item["start"]), _ms(name, item["end"])
            if start > end:
                raise BadRequest("filters", f"{name} is not valid")
            out.append((start, end + 1))
        return normalise(out)
    raise BadRequest("filters", f"{name} is not valid")


def parse_filters(roles: Mapping[str, str], filters: Any) -> dict[str, Intervals]:
    """The half-open ranges that `filters` admit, by the role of each field (all filters AND together).

    Raises :class:`BadRequest` for a field not in `roles`, an unknown operator or a value that is not epoch ms.
    """
    out: dict[str, Intervals] = {}
    if filters is None:
        return out
    if not isinstance(filters, dict):
        raise BadRequest("filters", "filters is not valid")
    for name, ops in filters.items():
        role = roles.get(name)
        if role is None or not isinstance(ops, dict) or not ops:
            raise BadRequest("filters", f"{name} is not valid")
        intervals: Intervals = out.get(role, list(ALL))
        for op, value in ops.items():
            intervals = intersect(intervals, _op_intervals(name, op, value))
        out[role] = intervals
    return out


def _direction(fields: Mapping[str, Any], default: str) -> bool:
    """Validate sortDirection; True when descending."""
    direction = fields.get("sortDirection")
    if direction is not None and direction not in ("asc", "desc"):
        raise BadRequest("sortDirection", "sortDirection is not valid")
    return (direction or default) == "desc"


def _sort_field(fields: Mapping[str, Any], allowed: Mapping[str, str], default: str) -> str:
    """Validate sortField; the field to sort on."""
    sort_field = fields.get("sortField")
    if sort_field is None:
        return default
    if not isinstance(sort_field, str) or sort_field not in allowed:
        raise BadRequest("sortField", "sortField is not valid")
    return sort_field


def _page_size(fields: Mapping[str, Any], skip_ceiling: int | None) -> tuple[int, int]:
    """(skip, limit) of a skip/limit request: limit clamped to 100, the skip ceiling enforced."""
    skip, limit = _int_field(fields, "skip", 0), _int_field(fields, "limit", PAGE_MAX)
    if skip < 0:
        raise BadRequest("skip", "skip is not valid")
    if limit < 1:
        raise BadRequest("limit", "limit is not valid")
    limit = min(limit, PAGE_MAX)
    if skip_ceiling is not None and skip + limit > skip_ceiling:
        raise BadRequest(
            "skip",
            f"skip is beyond the maximum: skip + limit may not exceed {skip_ceiling}; filter by time instead",
            "CONSOLE_FORMS_MAX_VALUE_EXCEEDED",
        )
    return skip, limit


# -- pages ---------------------------------------------------------------------------------------------------


def _page_reply(records: bytes, count: int, meta: dict[str, Any]) -> Reply:
    """``{"data": [<records>], **meta}`` around records already rendered (as json.dumps would)."""
    body = b"".join((b'{"data":[', records, b"],", dumps(meta)[1:].encode()))
    return Reply(200, body, {"Content-Type": "application/json; charset=utf-8"}, records=count)


def _list(state: TenantState, config: TenantConfig, service: str, fields: dict[str, Any]) -> Reply:
    data = state.data(service)
    if isinstance(data, SnapshotData):
        return _snapshot_page(state, config, data, service, fields)
    return _time_series_page(_page_query(state, config, data, fields), state.take_omit_next_filters)


def _sortable(service: str) -> dict[str, str]:
    """The sort fields of a windowed service, by role: its filter fields and the registry's record field."""
    roles = dict(field_roles(service))
    time_field = services.get(service).time_field
    if time_field and time_field not in roles:
        roles[time_field] = "time"
    return roles


def _canonical(roles: Mapping[str, str], role: str) -> str:
    """The filter field of a role (e.g. ``date`` for the event's time)."""
    return next(name for name, each in roles.items() if each == role)


@dataclass(frozen=True)
class _PageQuery:
    """One page request of a time-based service, parsed: what both kinds of page (scan, skip/limit) work from."""

    state: TenantState
    config: TenantConfig
    data: TimeSeriesData
    fields: dict[str, Any]
    query: Query
    scan: bool
    order: str  # "time", "stored" or "resolved"
    sort_field: str  # the filter field scan's nextQueryFilters moves
    descending: bool
    now: int
    until: int | None  # the answer stays the same until the tenant clock passes this; None: it may change at once

    def follow_up(self, next_fields: dict[str, Any]) -> Callable[[], Prepared | None]:
        """Builds, once this page is sent, the page ``next_fields`` asks for (see read-ahead below)."""
        return functools.partial(_prepare, self.state, self.config, self.data.service, next_fields)


def _page_query(state: TenantState, config: TenantConfig, data: TimeSeriesData, fields: dict[str, Any]) -> _PageQuery:
    service = data.service
    roles = field_roles(service)
    filters = parse_filters(roles, fields.get("filters"))
    scan = fields.get("isScan", False)
    if not isinstance(scan, bool):
        raise BadRequest("isScan", "isScan is not valid")
    scan = scan and services.get(service).paging is services.Paging.SCAN
    sortable = _sortable(service)
    sort_field = _sort_field(fields, sortable, _canonical(roles, "time"))
    order = sortable[sort_field]
    descending = _direction(fields, "asc" if scan else config.default_sort_direction)
    now = state.now_ms()
    timing = data.timing
    times = filters.get("time", list(ALL))
    if timing.retention_ms is not None:
        times = intersect(times, [(now - timing.retention_ms, INF_MS)])
    asked = filters.get("stored", list(ALL))
    stored = intersect(asked, [(0, now + 1)])
    query = Query.of(times, stored, filters.get("resolved"), now)
    # Until when this answer holds: nothing more can be stored in it, no alert of it changes, none expires.
    latest_ts = max((hi for _lo, hi in times), default=0) - 1
    latest_stored = min(max((hi for _lo, hi in asked), default=0) - 1, latest_ts + timing.max_delay)
    settled = latest_stored <= now
    if timing.changes is not None:
        settled = settled and latest_ts + timing.changes.max_delay_ms <= now
    until: int | None = None
    if settled:
        earliest = min((lo for lo, _hi in times), default=INF_MS)
        until = INF_MS if timing.retention_ms is None else earliest + timing.retention_ms
    name = sort_field if sort_field in roles else _canonical(roles, order)
    return _PageQuery(state, config, data, fields, query, scan, order, name, descending, now, until)


def _time_series_page(page_query: _PageQuery, omit_next: Callable[[], bool]) -> Reply:
    """A page of a windowed service: a scan page (activities), or a skip/limit page."""
    return _scan_page(page_query, omit_next) if page_query.scan else _skip_page(page_query)


def _total(page_query: _PageQuery) -> int:
    return page_query.data.count_query(page_query.query)


def _skip_page(page_query: _PageQuery) -> Reply:
    """A skip/limit page; when more follow, the page at the next skip is the expected next request."""
    data = page_query.data
    skip, limit = _page_size(page_query.fields, page_query.config.service(data.service).skip_ceiling)
    found = data.select(page_query.query, page_query.order, page_query.descending, skip=skip)
    page = list(itertools.islice(found, limit + 1))
    meta: dict[str, Any] = {"hasNext": len(page) > limit, "total": _total(page_query)}
    meta.update(_extra_meta(data.service, limit))
    del page[limit:]
    reply = _page_reply(data.render_page(page, page_query.now), len(page), meta)
    if meta["hasNext"]:
        reply.follow_up = page_query.follow_up({**page_query.fields, "skip": skip + len(page)})
    return reply


def _extra_meta(service: str, limit: int) -> dict[str, Any]:
    extra = _EXTRA_META.get(service)
    return extra(limit) if extra is not None else {}


def _id_bounds(data: SnapshotData, filters: Any) -> tuple[int, int]:
    """The index range an ``_id`` filter admits (``gt``, ``gte``, ``lt``, ``lte`` on the id's text order)."""
    low, high = 0, 1 << 64
    if not filters:
        return low, high
    if not isinstance(filters, dict):
        raise BadRequest("filters", "filters is not valid")
    for name, ops in filters.items():
        if name != "_id" or not isinstance(ops, dict) or not ops:
            raise BadRequest("filters", f"{name} is not valid")
        for op, value in ops.items():
            if not isinstance(value, str) or op not in ("gt", "gte", "lt", "lte"):
                raise BadRequest("filters", f"{name} is not valid")
            bound = data.index_bound(value, inclusive=op in ("gt", "lte"))
            if op in ("gt", "gte"):
                low = max(low, bound)
            else:
                high = min(high, bound)
    return low, high


def _snapshot_page(
    state: TenantState, config: TenantConfig, data: SnapshotData, service: str, fields: dict[str, Any]
) -> Reply:
    low, high = _id_bounds(data, fields.get("filters"))
    order_field = getattr(services.get(service), "order_field", None)
    allowed = {"_id", *_EXTRA_SORT_FIELDS.get(service, ()), *([order_field] if order_field else [])}
    _sort_field(fields, dict.fromkeys(allowed, "_id"), "_id")  # every allowed field is the order of `_id`
    descending = _direction(fields, config.default_sort_direction)
    skip, limit = _page_size(fields, config.service(service).skip_ceiling)
    now = state.now_ms()
    present = data.present(now)
    present = present[bisect.bisect_left(present, low) : bisect.bisect_left(present, high)]
    if descending:
        top = len(present) - skip
        page = [present[i] for i in range(top - 1, max(top - limit, 0) - 1, -1)]
    else:
        page = list(present[skip : skip + limit])
    meta: dict[str, Any] = {"hasNext": skip + len(page) < len(present), "total": len(present)}
    meta.update(_extra_meta(service, limit))
    return _page_reply(data.render_page(page, now), len(page), meta)


def _scan_page(page_query: _PageQuery, omit_next: Callable[[], bool]) -> Reply:
    """A scan page: never splits a sort value across pages; ``nextQueryFilters`` continues where it stopped."""
    data, fields = page_query.data, page_query.fields
    limit = _int_field(fields, "limit", SCAN_DEFAULT)
    if not SCAN_MIN <= limit <= SCAN_MAX:
        raise BadRequest("limit", f"limit is not valid: scan mode takes {SCAN_MIN}..{SCAN_MAX}")
    if _int_field(fields, "skip", 0) != 0:
        raise BadRequest("skip", "skip is not valid in scan mode")
    value = _created if page_query.order == "stored" else _timestamp
    descending = page_query.descending
    entries = data.select(page_query.query, page_query.order, descending)
    page: list[Entry] = list(itertools.islice(entries, limit))
    following = next(entries, None)
    bound: int | None = None
    if following is not None:
        last = value(page[-1])
        cut = len(page)
        while cut and value(page[cut - 1]) == last:
            cut -= 1
        if cut:  # drop the trailing records that share the last value: the next page starts with them
            del page[cut:]
            bound = last
        else:  # the whole page is one value: send the whole cluster, however large
            while following is not None and value(following) == last:
                page.append(following)
                following = next(entries, None)
            bound = None if following is None else last - 1 if descending else last + 1
    meta: dict[str, Any] = {"hasNext": bound is not None, "total": _total(page_query)}
    follow_up = None
    if bound is not None and not omit_next():
        meta["nextQueryFilters"] = _next_filters(fields.get("filters"), page_query.sort_field, bound, descending)
        follow_up = page_query.follow_up({**fields, "filters": meta["nextQueryFilters"]})
    reply = _page_reply(data.render_page(page, page_query.now), len(page), meta)
    reply.follow_up = follow_up
    return reply


def _created(entry: Entry) -> int:
    return entry[5]


def _timestamp(entry: Entry) -> int:
    return entry[0]


# -- read-ahead ----------------------------------------------------------------------------------------------
# A client spends about as long taking in a page (parsing, staging) as the emulator takes to build it, and both
# share this machine's cores. So once a page is sent, the connection's thread builds the page the client will most
# likely ask for next (a scan page's nextQueryFilters; the next skip of a skip/limit page) while the client works.
# The prepared page is used only when the next request is exactly that one, against the very same tenant state and
# config, and only while its answer cannot change (every record of it stored, none still to come, no alert of it
# still to change, none expired since), so that it is byte for byte what computing it then would give. At most one
# page per open connection: nothing accumulates. A real MDCA builds pages on its own servers; this keeps the
# emulator's share of the machine from being counted as the client's wait.


def _key(state: TenantState, config: TenantConfig, service: str, fields: dict[str, Any]) -> tuple[Any, ...]:
    # The objects themselves, not their ids: an id can be reused once its object is gone.
    return (state, config, service, json.dumps(fields, sort_keys=True))


def _prepare(
    state: TenantState,
    config: TenantConfig,
    service: str,
    fields: dict[str, Any],
) -> Prepared | None:
    """The page for the expected next request, when it can be computed ahead safely."""
    data = state.data(service)
    if state.settings() is not config or state.omit_pending() or not isinstance(data, TimeSeriesData):
        return None
    try:
        page_query = _page_query(state, config, data, fields)
        if page_query.until is None:
            return None
        reply = _time_series_page(page_query, lambda: False)
    except BadRequest:
        return None
    return Prepared(_key(state, config, service, fields), page_query.now, reply, page_query.until)


def _reuse(
    prepared: Prepared | None, state: TenantState, config: TenantConfig, service: str, fields: dict[str, Any]
) -> Reply | None:
    """The prepared page when it answers exactly this request in this state, else None."""
    if prepared is None or prepared.key != _key(state, config, service, fields):
        return None
    # A clock moved back, or past what the page holds (records expired), or a knob changed since: compute afresh.
    now = state.now_ms()
    if not prepared.now_ms <= now <= prepared.until_ms or state.settings() is not config:
        return None
    reply = prepared.reply
    return dataclasses.replace(reply, headers=dict(reply.headers))


def _next_filters(filters: Any, field: str, bound: int, descending: bool) -> dict[str, Any]:
    """The request's filters with the sort field's bound moved to `bound`, every other bound and filter kept.

    Ascending, its lower bound becomes ``gte`` `bound`; descending, its upper one ``lte`` `bound`.
    """
    current = dict(filters or {})
    moved = ("lte", "lt") if descending else ("gte", "gt")
    kept = {op: value for op, value in dict(current.get(field) or {}).items() if op not in moved}
    current[field] = {"lte" if descending else "gte": bound, **kept}
    return current
