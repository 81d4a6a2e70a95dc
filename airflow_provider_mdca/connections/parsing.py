"""Parsing helpers shared by the MDCA and Devo connection configs (no Airflow imports).

Every failure is InitVariablesError 1 naming the connection and the field, so a user knows what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.redaction import register_secret

__all__ = ["Fail", "credential", "field_error", "parse_extra", "parse_verify"]

Fail = Callable[[str, str], InitVariablesError]


def field_error(conn_id: str) -> Fail:
    """A factory of errors for one connection: ``fail(field, reason)``."""

    def fail(field_name: str, reason: str) -> InitVariablesError:
        # The field's name in quotes: "password: <reason>" has the shape of a secret and would be masked.
        return InitVariablesError(1, f"connection {conn_id!r} field {field_name!r}: {reason}")

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


def credential(value: Any, name: str, fail: Fail, *, secret: bool = True) -> str:
    """A credential as it can go into a header, a URL or a form: surrounding whitespace dropped, never shown.

    A trailing line break (a value pasted from a file or ``echo``) is dropped; a line break or another control
    character inside the value is refused, naming the field and never the value: it could split a header (a
    request smuggled by the credential) and no real credential holds one. A ``secret`` is registered for
    redaction; an identifier (the client or tenant id) is not, or every message naming an ordinary word equal
    to it would be masked.
    """
    if not isinstance(value, str):
        raise fail(name, "must be a string")
    cleaned = value.strip()
    if secret:
        register_secret(value)
        register_secret(cleaned)
    if any(ord(character) < 32 or ord(character) == 127 for character in cleaned):
        raise fail(name, "holds a line break or another control character; set it again without one")
    return cleaned
