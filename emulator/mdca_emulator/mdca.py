"""MDCA API v1 list endpoints: auth, filters, sort, skip/limit paging, activities scan mode, faults, throttle.

One request goes through, in order: the throttle (429, no slot taken), the fault injector (5xx, 429, reset),
authentication (401/403), request validation (400), then the page. A ``truncate`` fault lets the page be
computed and cuts it in half on the wire.

Choices where MDCA's behaviour is unknown or undocumented (the client must survive either way):

Every per-service fact comes from the provider's registry (``services.py``): the window's filter and record
fields, the paging (scan or skip/limit, snapshots), the credential. What MDCA answers differently for a few services
beyond that is in the tables below (``_EXTRA_SORT_FIELDS``, ``_EXTRA_META``), keyed by the registry's names.

* Filters: only the service's window field (the registry's ``filter_field``: ``date``; files ``modifiedDate``) with
  ``gte``, ``gt``, ``lte``, ``lt``, ``eq`` (a value or a list) and ``range`` (a list of inclusive
  ``{"start", "end"}``); anything else is a 400. Snapshots accept no filter at all (an empty ``filters`` object is
  fine).
* ``isScan`` is honoured by the scan-paged service (activities) only and ignored elsewhere; a scan takes no ``skip``
  (other than 0) and no ``desc`` order.
* Sort fields: the window field (or the record's time field) for windowed services; ``_id`` for snapshots, plus
  ``name`` for data enrichment's subnet groups (names sort like ``_id``).
* A Bearer token (Entra ID) is refused with 403 where the registry says the service takes the portal's legacy token
  (files); the legacy token is accepted everywhere.
* ``total`` counts records with a timestamp up to the tenant clock, including late ones not yet visible — an
  estimate, as MDCA's is.
* In scan mode, when nothing needs dropping because the page is one timestamp, ``nextQueryFilters`` starts at
  that timestamp + 1.
"""

from __future__ import annotations

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
from mdca_emulator.data import INF_MS, Entry, SnapshotData, TimeSeriesData
from mdca_emulator.reply import Prepared, Reply, dumps, json_reply, text_reply
from mdca_emulator.state import TenantConfig, TenantState

__all__ = ["ApiRequest", "BadRequest", "handle", "parse_window"]

PAGE_MAX = 100
SCAN_MIN, SCAN_MAX, SCAN_DEFAULT = 500, 5000, 500
_NOT_VALID = "CONSOLE_FORMS_NOT_VALID_VALUE"
Intervals = list[tuple[int, int]]

#: Sort fields a service takes beyond its window's fields (windowed) or ``_id`` (snapshots).
_EXTRA_SORT_FIELDS: dict[str, frozenset[str]] = {"data_enrichment": frozenset({"name"})}
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


def _normalise(intervals: Intervals) -> Intervals:
    merged: Intervals = []
    for lo, hi in sorted(i for i in intervals if i[0] < i[1]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _intersect(left: Intervals, right: Intervals) -> Intervals:
    return _normalise([(max(a, c), min(b, d)) for a, b in left for c, d in right])


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
        return _normalise([(_ms(name, v), _ms(name, v) + 1) for v in values])
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
        return _normalise(out)
    raise BadRequest("filters", f"{name} is not valid")


def parse_window(field: str, filters: Any) -> Intervals:
    """The half-open ranges of `field` that `filters` admit (all filters AND together).

    Raises :class:`BadRequest` for another field, an unknown operator or a value that is not epoch ms.
    """
    intervals: Intervals = [(0, INF_MS)]
    if filters is None:
        return intervals
    if not isinstance(filters, dict):
        raise BadRequest("filters", "filters is not valid")
    for name, ops in filters.items():
        if name != field or not isinstance(ops, dict) or not ops:
            raise BadRequest("filters", f"{name} is not valid")
        for op, value in ops.items():
            intervals = _intersect(intervals, _op_intervals(name, op, value))
    return intervals


def _sort(fields: Mapping[str, Any], allowed: set[str], scan: bool) -> bool:
    """Validate sortField/sortDirection; True when descending."""
    sort_field = fields.get("sortField")
    if sort_field is not None and sort_field not in allowed:
        raise BadRequest("sortField", "sortField is not valid")
    direction = fields.get("sortDirection")
    if direction is not None and direction not in ("asc", "desc"):
        raise BadRequest("sortDirection", "sortDirection is not valid")
    if scan and direction == "desc":
        raise BadRequest("sortDirection", "sortDirection is not valid in scan mode")
    return direction == "desc"


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
        return _snapshot_page(data, service, config.service(service).skip_ceiling, fields)
    intervals = parse_window(data.filter_field, fields.get("filters"))
    return _time_series_page(state, config, data, fields, intervals, state.take_omit_next_filters)


@dataclass(frozen=True)
class _PageQuery:
    """One page request of a time-based service, parsed: what both kinds of page (scan, skip/limit) work from."""

    state: TenantState
    config: TenantConfig
    data: TimeSeriesData
    fields: dict[str, Any]
    intervals: Intervals
    now: int
    total: int

    def follow_up(self, next_fields: dict[str, Any]) -> Callable[[], Prepared | None]:
        """Builds, once this page is sent, the page ``next_fields`` asks for (see read-ahead below)."""
        return functools.partial(_prepare, self.state, self.config, self.data.service, next_fields)


def _time_series_page(
    state: TenantState,
    config: TenantConfig,
    data: TimeSeriesData,
    fields: dict[str, Any],
    intervals: Intervals,
    omit_next: Callable[[], bool],
) -> Reply:
    """A page of a windowed service: a scan page (activities), or a skip/limit page."""
    service = data.service
    scan = fields.get("isScan", False)
    if not isinstance(scan, bool):
        raise BadRequest("isScan", "isScan is not valid")
    scan = scan and services.get(service).paging is services.Paging.SCAN
    sortable = {data.filter_field, data.time_field, *_EXTRA_SORT_FIELDS.get(service, ())}
    descending = _sort(fields, sortable, scan)
    now = state.now_ms()
    total = data.count([(lo, min(hi, now + 1)) for lo, hi in intervals if lo <= now])
    query = _PageQuery(state, config, data, fields, intervals, now, total)
    return _scan_page(query, omit_next) if scan else _skip_page(query, descending)


def _skip_page(query: _PageQuery, descending: bool) -> Reply:
    """A skip/limit page; when more follow, the page at the next skip is the expected next request."""
    data = query.data
    skip, limit = _page_size(query.fields, query.config.service(data.service).skip_ceiling)
    page = list(itertools.islice(data.entries(query.intervals, query.now, descending, skip=skip), limit + 1))
    meta: dict[str, Any] = {"hasNext": len(page) > limit, "total": query.total}
    meta.update(_extra_meta(data.service, limit))
    del page[limit:]
    reply = _page_reply(data.render_page(page), len(page), meta)
    if meta["hasNext"]:
        reply.follow_up = query.follow_up({**query.fields, "skip": skip + len(page)})
    return reply


def _extra_meta(service: str, limit: int) -> dict[str, Any]:
    extra = _EXTRA_META.get(service)
    return extra(limit) if extra is not None else {}


def _snapshot_page(data: SnapshotData, service: str, ceiling: int | None, fields: dict[str, Any]) -> Reply:
    filters = fields.get("filters")
    if filters:
        name = next(iter(filters)) if isinstance(filters, dict) else "filters"
        raise BadRequest("filters", f"{name} is not valid")
    descending = _sort(fields, {"_id", *_EXTRA_SORT_FIELDS.get(service, ())}, False)
    skip, limit = _page_size(fields, ceiling)
    indices = data.indices(skip, limit, descending)
    meta: dict[str, Any] = {"hasNext": skip + len(indices) < data.total, "total": data.total}
    meta.update(_extra_meta(service, limit))
    return _page_reply(data.render_page(indices), len(indices), meta)


def _scan_page(query: _PageQuery, omit_next: Callable[[], bool]) -> Reply:
    """A scan page: never splits a timestamp across pages; ``nextQueryFilters`` continues where it stopped."""
    data, fields = query.data, query.fields
    limit = _int_field(fields, "limit", SCAN_DEFAULT)
    if not SCAN_MIN <= limit <= SCAN_MAX:
        raise BadRequest("limit", f"limit is not valid: scan mode takes {SCAN_MIN}..{SCAN_MAX}")
    if _int_field(fields, "skip", 0) != 0:
        raise BadRequest("skip", "skip is not valid in scan mode")
    entries = data.entries(query.intervals, query.now)
    page: list[Entry] = list(itertools.islice(entries, limit))
    following = next(entries, None)
    next_gte: int | None = None
    if following is not None:
        last_ts = page[-1][0]
        cut = len(page)
        while cut and page[cut - 1][0] == last_ts:
            cut -= 1
        if cut:  # drop the trailing same-timestamp records: the next page starts with them
            del page[cut:]
            next_gte = last_ts
        else:  # the whole page is one timestamp: send the whole cluster, however large
            while following is not None and following[0] == last_ts:
                page.append(following)
                following = next(entries, None)
            next_gte = None if following is None else last_ts + 1
    meta: dict[str, Any] = {"hasNext": next_gte is not None, "total": query.total}
    follow_up = None
    if next_gte is not None and not omit_next():
        meta["nextQueryFilters"] = _next_filters(fields.get("filters"), data.filter_field, next_gte)
        follow_up = query.follow_up({**fields, "filters": meta["nextQueryFilters"]})
    reply = _page_reply(data.render_page(page), len(page), meta)
    reply.follow_up = follow_up
    return reply


# -- read-ahead ----------------------------------------------------------------------------------------------
# A client spends about as long taking in a page (parsing, staging) as the emulator takes to build it, and both
# share this machine's cores. So once a page is sent, the connection's thread builds the page the client will most
# likely ask for next (a scan page's nextQueryFilters; the next skip of a skip/limit page) while the client works.
# The prepared page is used only when the next request is exactly that one, against the very same tenant state and
# config, and only when the window lies entirely in the past (every record in it visible, none still to come), so
# that it is byte for byte what computing it then would give. At most one page per open connection: nothing
# accumulates. A real MDCA builds pages on its own servers; this keeps the emulator's share of the machine from
# being counted as the client's wait.


def _key(state: TenantState, config: TenantConfig, service: str, fields: dict[str, Any]) -> tuple[Any, ...]:
    # The objects themselves, not their ids: an id can be reused once its object is gone.
    return (state, config, service, json.dumps(fields, sort_keys=True))


def _settled(data: TimeSeriesData, intervals: Intervals, now: int) -> bool:
    """Whether every record of `intervals` is visible at `now` (so the answer no longer changes with time)."""
    latest = max((hi for _lo, hi in intervals), default=0)
    delay = max(5, data.late_by_ms if data.late_every else 0)
    return latest < INF_MS and latest - 1 + delay <= now


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
    now = state.now_ms()
    try:
        intervals = parse_window(data.filter_field, fields.get("filters"))
        if not _settled(data, intervals, now):
            return None
        reply = _time_series_page(state, config, data, fields, intervals, lambda: False)
    except BadRequest:
        return None
    return Prepared(_key(state, config, service, fields), now, reply)


def _reuse(
    prepared: Prepared | None, state: TenantState, config: TenantConfig, service: str, fields: dict[str, Any]
) -> Reply | None:
    """The prepared page when it answers exactly this request in this state, else None."""
    if prepared is None or prepared.key != _key(state, config, service, fields):
        return None
    # A clock moved back, or a knob changed since: compute afresh.
    if state.now_ms() < prepared.now_ms or state.settings() is not config:
        return None
    reply = prepared.reply
    return dataclasses.replace(reply, headers=dict(reply.headers))


def _next_filters(filters: Any, window: str, gte: int) -> dict[str, Any]:
    """The request's filters with the window's lower bound replaced by ``gte`` (upper bounds kept)."""
    current = dict(filters or {})
    bounds = {op: value for op, value in dict(current.get(window) or {}).items() if op not in ("gte", "gt")}
    current[window] = {"gte": gte, **bounds}
    return current
