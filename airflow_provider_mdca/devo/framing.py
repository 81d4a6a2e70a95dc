"""How an event looks on the wire: one compact JSON line, syslog-framed for the TLS relay.

JSON escapes newlines inside values, so an event never splits across lines; unicode is kept as is; non-finite
numbers (not JSON) are sent as ``null`` (:mod:`airflow_provider_mdca.json_codec`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_mdca import json_codec
from airflow_provider_mdca.errors import DeliveryError

__all__ = ["encode_event", "syslog_prefix"]


def encode_event(event: Mapping[str, Any]) -> bytes:
    """One event as compact UTF-8 JSON without a trailing newline.

    >>> encode_event({"b": "é", "n": 1}).decode()
    '{"b":"é","n":1}'
    >>> len(encode_event({"a": "x" + chr(10) + "y"}).splitlines())
    1
    """
    try:
        return json_codec.encode(event)
    except (TypeError, ValueError) as exc:
        raise DeliveryError(505, f"event {event.get('_id', '?')!r}: {exc}") from None


def syslog_prefix(hostname: str, tag: str, now: float | None = None) -> bytes:
    """The syslog header Devo's relay reads before each event: ``<14>Mmm dd HH:MM:SS <hostname> <tag>: ``.

    PRI 14 is user.info; the time is UTC, as Devo's own SDK writes it.

    >>> syslog_prefix("h1", "my.app.tag", now=0)
    b'<14>Jan 01 00:00:00 h1 my.app.tag: '
    """
    stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(time.time() if now is None else now))
    return f"<14>{stamp} {hostname} {tag}: ".encode()
