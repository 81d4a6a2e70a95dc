"""The collector configuration's JSON schema, and its errors in words that name each key path."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]

from airflow_provider_mdca.config._text import describe
from airflow_provider_mdca.config.durations import DURATION_PATTERN, DURATION_TEXT
from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.services import SERVICES

__all__ = [
    "MAX_BYTES_PER_ALERT",
    "MAX_EVENTS_PER_ALERT",
    "MIN_BYTES_PER_ALERT",
    "SCHEMA",
    "SETTINGS",
    "TENANT_NAME_PATTERN",
    "check_schema",
]

#: The most events one alert may become: beyond this an alert is an incident's inventory, not events to read.
MAX_EVENTS_PER_ALERT: Final = 10_000
#: The bounds of the size one alert's events may take together: at least 1 MiB, at most 1 GiB.
MIN_BYTES_PER_ALERT: Final = 1024 * 1024
MAX_BYTES_PER_ALERT: Final = 1024 * 1024 * 1024

# ``x-expected`` is ours (JSON Schema ignores unknown keywords): the words an error message uses for the key.
_DURATION: Final = {
    "x-expected": DURATION_TEXT,
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
}
_CONN_ID: Final = {
    "x-expected": "an Airflow connection id (letters, digits, '_', '-', '.')",
    "type": "string",
    "pattern": r"^[A-Za-z0-9_.\-]{1,250}$",
}
_NAME: Final = {"x-expected": "a non-empty string", "type": "string", "pattern": r"\S"}
_SCALAR: Final = {
    "x-expected": "a string, number, boolean or null",
    "type": ["string", "number", "boolean", "null"],
}

SETTINGS: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "period": _DURATION,
        "historic_date_utc": {
            "x-expected": "an ISO 8601 date or date-time in UTC, e.g. 2026-01-01 or 2026-01-01T00:00:00Z",
            "type": "string",
        },
        "lag": _DURATION,
        "page_size": {"x-expected": "a whole number of records per request, or null", "type": ["integer", "null"]},
        "on_expired_window": {
            "x-expected": "'error' (refuse a window older than MDCA keeps) or 'warn' (read what is left)",
            "enum": ["error", "warn"],
        },
        "flatten": {"type": "boolean"},
        "max_events_per_alert": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PER_ALERT},
        "max_bytes_per_alert": {"type": "integer", "minimum": MIN_BYTES_PER_ALERT, "maximum": MAX_BYTES_PER_ALERT},
        "obfuscation": {
            "x-expected": "a list of field paths (or {path, method} mappings), or a mapping of path to method",
            "type": ["array", "object"],
        },
        "obfuscation_key_conn_id": {"anyOf": [_CONN_ID, {"type": "null"}], "x-expected": _CONN_ID["x-expected"]},
        "obfuscation_key_variable": {"anyOf": [_NAME, {"type": "null"}], "x-expected": "a Variable name, or null"},
        "tag": {
            "x-expected": "a Devo tag: dot-separated words without spaces or '/', e.g. my.app.mdca.alerts",
            "type": ["string", "null"],
            "pattern": r"^[^\s/.]+(\.[^\s/.]+)*$",
        },
        "extra_fields": {
            "type": "object",
            "propertyNames": {"x-expected": "a non-empty field name", "minLength": 1},
            "additionalProperties": _SCALAR,
        },
        "retries": {
            "x-expected": "a number of retries (0 or more), or 'auto' (as many as span recovery_horizon)",
            "anyOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}],
        },
        "retry_delay": _DURATION,
        "max_retry_delay": _DURATION,
        "recovery_horizon": _DURATION,
        "notify": {
            "type": "array",
            "items": {
                "type": "object",
                "x-expected": "a mapping with notifier (a dotted import path), and optionally on and args",
                "additionalProperties": False,
                "required": ["notifier"],
                "properties": {
                    "notifier": {
                        "x-expected": "a dotted import path, e.g. a.module.SomeNotifier",
                        "type": "string",
                        "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
                    },
                    "on": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"x-expected": "'retry' or 'failure'", "enum": ["retry", "failure"]},
                    },
                    "args": {"type": "object"},
                },
            },
        },
        "execution_timeout": {
            "x-expected": "a duration, 'auto' (each task's own bound, from the period) or null (Airflow's default)",
            "anyOf": [*_DURATION["anyOf"], {"const": "auto"}, {"type": "null"}],
        },
        "pool": _NAME,
        "max_active_runs": {"type": "integer", "minimum": 1},
        "staging_url": {
            "x-expected": "a URL such as file:///var/lib/mdca or abfs://container/path, an absolute path, or null",
            "type": ["string", "null"],
            "pattern": r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://\S+|/\S*)$",
        },
        "staging_conn_id": {"anyOf": [_CONN_ID, {"type": "null"}], "x-expected": _CONN_ID["x-expected"]},
        "retention": _DURATION,
        "mdca_conn_id": _CONN_ID,
        "devo_conn_id": _CONN_ID,
        "tags": {"type": "array", "items": _NAME},
    },
}

#: A tenant's name: it goes into DAG ids, pool names, staging folders and metric names.
TENANT_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$"
_SERVICES: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {name: SETTINGS for name in SERVICES},
}
#: One tenant (``tenants.<name>``): any setting for all its services, ``services.<name>`` for one, its DAG id prefix.
TENANT: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **SETTINGS["properties"],
        "dag_id_prefix": {
            "x-expected": "a DAG id prefix (letters, digits, '_', '-', '.'), e.g. contoso_",
            "type": "string",
            "pattern": r"^[A-Za-z0-9_.\-]{0,100}$",
        },
        "services": _SERVICES,
    },
}

#: The JSON schema (Draft 2020-12) of the collector configuration. ``mdca-collector schema`` prints it.
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:airflow-provider-mdca:collector-config",
    "title": "MDCA to Devo collector configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "defaults": SETTINGS,
        "services": _SERVICES,
        "tenants": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {
                "x-expected": "a tenant name: a letter or digit, then letters, digits, '_' or '-' (at most 50)",
                "pattern": TENANT_NAME_PATTERN,
            },
            "additionalProperties": TENANT,
        },
    },
}


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    # The schema itself is checked against JSON Schema's meta-schema by the test suite, not here: the check took a
    # third of a second, and every task process parses the DAG file (so it ran once a task).
    return jsonschema.Draft202012Validator(SCHEMA)


def check_schema(data: Mapping[str, Any], source: str) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if not errors:
        return
    structural = any(_is_section_error(e) for e in errors)
    problems = dict.fromkeys(_schema_problem(error) for error in errors)
    raise InitVariablesError(3 if structural else 1, f"collector config {source}: " + "; ".join(problems))


def _is_section_error(error: Any) -> bool:
    """A section (``defaults``, ``services``, ``tenants`` and their entries) that is not a mapping: the structure."""
    path = list(error.absolute_path)
    is_section = (
        path in (["defaults"], ["services"], ["tenants"])
        or (len(path) == 2 and path[0] in ("services", "tenants"))
        or (len(path) in (3, 4) and path[0] == "tenants" and path[2] == "services")
    )
    return bool(is_section and error.validator == "type" and error.validator_value == "object")


def _schema_problem(error: Any) -> str:
    path = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        return _unknown_keys(path, error)
    if error.validator == "type" and error.validator_value == "object":
        return f"{path or '(top level)'}: expected a mapping, got {describe(error.instance)}"
    expected = error.schema.get("x-expected") if isinstance(error.schema, Mapping) else None
    if expected:
        return f"{path}: expected {expected}, got {describe(error.instance)}"
    if error.validator == "type":
        return f"{path}: expected {_type_words(error.validator_value)}, got {describe(error.instance)}"
    if error.validator == "minimum":
        return f"{path}: must be at least {error.validator_value}, got {error.instance}"
    if error.validator == "maximum":
        return f"{path}: must be at most {error.validator_value}, got {error.instance}"
    return f"{path}: {error.message}"


def _unknown_keys(path: str, error: Any) -> str:
    known = list(error.schema.get("properties", {}))
    unknown = sorted(str(key) for key in error.instance if key not in known)
    where = [_key_path([*error.absolute_path, key]) for key in unknown]
    what = "unknown service" if path == "services" or path.endswith(".services") else "unknown key"
    return f"{', '.join(where)}: {what}; expected one of {', '.join(known)}"


def _key_path(parts: Any) -> str:
    """``services.alerts.obfuscation[2]`` from the path parts."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_TYPE_WORDS: Final = {
    "integer": "a whole number",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _type_words(types: str | list[str]) -> str:
    return " or ".join(_TYPE_WORDS.get(t, t) for t in ([types] if isinstance(types, str) else types))
