"""What the API logic hands back to the HTTP layer: status, headers, body, and an optional transport fault."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec

__all__ = ["Prepared", "Reply", "bad_request_as", "dumps", "json_body", "json_reply", "text_reply"]

_P = ParamSpec("_P")


def dumps(obj: Any) -> str:
    """Compact JSON with raw UTF-8 text, as MDCA writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Reply:
    """One HTTP answer.

    `fault` asks the transport to misbehave: ``"reset"`` drops the connection without answering,
    ``"truncate"`` sends the headers (with the full Content-Length) and only half of the body, then closes.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    records: int = 0  # records in the body, for the stats
    # Work the connection may do once this reply is sent: prepare the answer to the likely next request.
    follow_up: Callable[[], Prepared | None] | None = None


@dataclass(frozen=True)
class Prepared:
    """An answer computed ahead of the request expected to ask for it (see ``mdca.py``, scan prefetch).

    `key` identifies the request and the exact state it was computed from; `now_ms` is the tenant clock then, and the
    answer stays the same until the tenant clock passes `until_ms` (records expire, alerts change).
    """

    key: tuple[Any, ...]
    now_ms: int
    reply: Reply
    until_ms: int = 1 << 62


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    """A JSON reply."""
    return text_reply(status, dumps(obj), headers)


def text_reply(
    status: int,
    text: str,
    headers: dict[str, str] | None = None,
    content_type: str = "",
) -> Reply:
    """A reply from already-serialised text (JSON unless `content_type` says otherwise)."""
    all_headers = {"Content-Type": content_type or "application/json; charset=utf-8", **(headers or {})}
    return Reply(status, text.encode("utf-8"), all_headers)


def json_body(body: bytes) -> Any:
    """The JSON value of a request body (an empty body is null); ValueError if it is not JSON."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise ValueError("body is not valid JSON") from None


def bad_request_as(
    error: Callable[[int, str], Reply],
) -> Callable[[Callable[_P, Reply]], Callable[_P, Reply]]:
    """Decorate a handler so that a ValueError it raises is answered with ``error(400, str(exc))``.

    >>> @bad_request_as(lambda status, message: json_reply(status, {"error": message}))
    ... def handle(body: bytes) -> Reply:
    ...     return json_reply(200, json_body(body))
    >>> handle(b"{").status, handle(b"{").body
    (400, b'{"error":"body is not valid JSON"}')
    """

    def decorate(handler: Callable[_P, Reply]) -> Callable[_P, Reply]:
        @functools.wraps(handler)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Reply:
            try:
                return handler(*args, **kwargs)
            except ValueError as exc:
                return error(400, str(exc))

        return guarded

    return decorate
