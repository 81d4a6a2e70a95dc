"""The Devo emulators' admin API under ``/_admin/devo/`` (on the HTTP ingestion server), for tests and demos.

No authentication: the server only listens on 127.0.0.1 and refuses admin calls from anywhere else.

=======  =====================================  ===================================================================
method   path                                   does
=======  =====================================  ===================================================================
GET      /_admin/devo/tags                      ``{"tags": {tag: count}}``
GET      /_admin/devo/tags/<tag>/ids?key=_id    ``{"tag", "key", "count", "ids": [...]}`` (duplicates kept)
GET      /_admin/devo/tags/<tag>/events         ``{"tag", "count", "events": [...]}`` (JSON-decoded where possible)
GET      /_admin/devo/stats                     counters: relay, http (by_status), faults_injected, tags
GET      /_admin/devo/malformed                 ``{"count", "lines": [...]}`` (kept lines, UTF-8 with replacement)
GET      /_admin/devo/faults                    the fault knobs
PATCH    /_admin/devo/faults                    change some knobs (body: JSON object); answers the new knobs
POST     /_admin/devo/reset                     empty the store, zero the counters, clear every fault knob
=======  =====================================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdca_emulator.devo_faults import DevoFaults
from mdca_emulator.devo_store import DevoStore
from mdca_emulator.reply import Reply, bad_request_as, json_body, json_reply

__all__ = ["handle"]


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message, "status": status})


@bad_request_as(_error)
def handle(
    store: DevoStore,
    faults: DevoFaults,
    method: str,
    parts: list[str],
    query: Mapping[str, str],
    body: bytes,
) -> Reply:
    """Answer ``/_admin/devo/<parts...>``."""
    if parts and parts[0] == "tags" and method == "GET":
        return _tags(store, parts[1:], query)
    if parts == ["stats"] and method == "GET":
        return json_reply(200, store.stats())
    if parts == ["malformed"] and method == "GET":
        lines = [line.decode("utf-8", errors="replace") for line in store.malformed()]
        return json_reply(200, {"count": store.counters.get("relay", "malformed"), "lines": lines})
    if parts == ["faults"] and method == "GET":
        return json_reply(200, faults.to_dict())
    if parts == ["faults"] and method == "PATCH":
        return json_reply(200, faults.update(_json_object(body)).to_dict())
    if parts == ["reset"] and method == "POST":
        store.reset()
        faults.reset()
        return json_reply(200, {"reset": True})
    known = parts[:1] in (["tags"], ["stats"], ["malformed"], ["faults"], ["reset"])
    return _error(405 if known else 404, "not supported" if known else "no such admin resource")


def _tags(store: DevoStore, rest: list[str], query: Mapping[str, str]) -> Reply:
    if not rest:
        return json_reply(200, {"tags": store.counts()})
    if len(rest) != 2:
        return _error(404, "no such admin resource")
    tag, what = rest
    if what == "ids":
        key = query.get("key") or "_id"
        ids = store.ids(tag, key)
        return json_reply(200, {"tag": tag, "key": key, "count": len(ids), "ids": ids})
    if what == "events":
        events = store.events(tag)
        return json_reply(200, {"tag": tag, "count": len(events), "events": events})
    return _error(404, "no such admin resource")


def _json_object(body: bytes) -> dict[str, Any]:
    raw = json_body(body)
    if not isinstance(raw, dict):
        raise ValueError("body must be a JSON object of fault knobs")
    return raw
