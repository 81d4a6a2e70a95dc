"""What the API logic hands back to the HTTP layer: status, headers, body, and an optional transport fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Prepared", "Reply", "dumps", "json_reply", "text_reply"]


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

    `key` identifies the request and the exact state it was computed from; `now_ms` is the tenant clock then.
    """

    key: tuple[Any, ...]
    now_ms: int
    reply: Reply


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
