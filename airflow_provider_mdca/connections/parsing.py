"""Parsing helpers shared by the MDCA and Devo connection configs (no Airflow imports).

Every failure is InitVariablesError 1 naming the connection and the field, so a user knows what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from airflow_provider_mdca.errors import InitVariablesError

__all__ = ["Fail", "field_error", "parse_extra", "parse_verify"]

Fail = Callable[[str, str], InitVariablesError]


def field_error(conn_id: str) -> Fail:
    """A factory of errors for one connection: ``fail(field, reason)``."""

    def fail(field_name: str, reason: str) -> InitVariablesError:
        return InitVariablesError(1, f"connection {conn_id!r} field {field_name}: {reason}")

    return fail


def parse_extra(extra: Mapping[str, Any] | str | None, conn_id: str) -> Mapping[str, Any]:
    """The connection's extra as a mapping (it may arrive as JSON text)."""
    if extra is None or extra == "":
        return {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise field_error(conn_id)("extra", f"not valid JSON ({exc.msg})") from None
    if not isinstance(extra, Mapping):
        raise field_error(conn_id)("extra", "must be a JSON object")
    return extra


def parse_verify(value: Any, fail: Fail) -> bool | str:
    """``verify``: true (system CAs or REQUESTS_CA_BUNDLE) or an existing CA bundle path. False is refused."""
    if value is None or value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes")):
        return True
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "0", "no")):
        raise fail(
            "extra.verify",
            "false is refused: this provider always verifies TLS; set verify to the path of the CA bundle that "
            "signs the server's certificate instead",
        )
    if isinstance(value, str):
        if not Path(value).is_file():
            raise fail("extra.verify", f"CA bundle {value!r} does not exist or is not a file")
        return value
    raise fail("extra.verify", f"must be true or a CA bundle path, got {value!r}")
