"""The collector configuration: a YAML file, validated against a JSON schema, turned into typed frozen dataclasses.

One file configures the five DAGs. A ``defaults`` section applies to every service; ``services.<name>`` overrides
it; anything left unset takes the built-in default of that service (:data:`BUILTIN_DEFAULTS`)::

    defaults:
      historic_date_utc: 2026-01-01T00:00:00Z   # the first window: every DAG's start date
      obfuscation_key_variable: mdca_obfuscation_key
    services:
      alerts: {period: 10m, max_events_per_alert: 500}
      files: {enabled: false}

Errors are :class:`~airflow_provider_mdca.errors.InitVariablesError`, as in Devo's collector: code 3 when the file
is structurally invalid (unreadable, a YAML syntax error with its line, a section that is not a mapping), code 1
for a wrong value, type or unknown key. Either names the file, every offending key path (``services.alerts.period``)
and why, all problems at once. The file holds no secret: the obfuscation key and the credentials live in Airflow
connections or Variables, referenced by id.

Imports nothing from Airflow: the DAG file parses it, and so does ``mdca-collector validate``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]
import yaml

from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.services import SERVICES, Paging
from airflow_provider_mdca.transforms.obfuscate import ObfuscationRule, parse_rules

__all__ = [
    "BUILTIN_DEFAULTS",
    "SCHEMA",
    "CollectorConfig",
    "ServiceConfig",
    "format_duration",
    "load_collector_config",
    "parse_collector_config",
    "parse_duration",
]

# -- durations ---------------------------------------------------------------------------------------------------

_UNITS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# "300" (seconds), "90s", "5m", "1h30m", "1h 30m", "1d", "2w"; ISO 8601 "PT5M", "P1D", "P1DT12H" (no years or
# months: their length varies, a window must not).
_SHORT = r"\d+|(?:\d+[wdhms] ?)*\d+[wdhms]"
_ISO = r"P(?=\d|T\d)(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?"
DURATION_PATTERN: Final = rf"^(?:{_SHORT}|{_ISO})$"
_SHORT_PART = re.compile(r"(\d+)([wdhms])")
_ISO_PART = re.compile(r"(\d+)([WDHMS])")
_DURATION_TEXT = "a duration: seconds as an integer, or a string such as '90s', '5m', '1h30m', '1d' or 'PT5M'"


def parse_duration(value: int | str | timedelta) -> timedelta:
    """A duration from the config: seconds as an int, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"1d"``, ``"2w"``, ``"PT5M"``.

    >>> parse_duration(300), parse_duration("1h30m"), parse_duration("PT5M")
    (datetime.timedelta(seconds=300), datetime.timedelta(seconds=5400), datetime.timedelta(seconds=300))
    >>> parse_duration("P1DT12H")
    datetime.timedelta(days=1, seconds=43200)

    :raises ValueError: anything else (negative numbers, fractions, months and years included).
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {_DURATION_TEXT}, got {_describe(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return timedelta(seconds=value)
    text = value.strip()
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"expected {_DURATION_TEXT}, got {_describe(value)}")
    if text.isdigit():
        return timedelta(seconds=int(text))
    if text.startswith("P"):
        date_part, _, time_part = text[1:].partition("T")
        seconds = sum(int(n) * _UNITS[u.lower()] for n, u in _ISO_PART.findall(date_part))
        # In the time part M means minutes (in the date part it would mean months, which the pattern refuses).
        seconds += sum(int(n) * _UNITS[u.lower()] for n, u in _ISO_PART.findall(time_part))
        return timedelta(seconds=seconds)
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _SHORT_PART.findall(text)))


def format_duration(delta: timedelta) -> str:
    """The shortest config spelling of ``delta``, e.g. ``"5m"``, ``"1h30m"``, ``"1d"``, ``"0s"``.

    >>> format_duration(timedelta(minutes=90)), format_duration(timedelta(0)), format_duration(timedelta(days=1))
    ('1h30m', '0s', '1d')
    """
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":  # "7d" reads better than "1w" next to the other day-based defaults
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# -- the schema ----------------------------------------------------------------------------------------------------

# ``x-expected`` is ours (JSON Schema ignores unknown keywords): the words an error message uses for the key.
_DURATION: Final = {
    "x-expected": _DURATION_TEXT,
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

_SETTINGS: Final[dict[str, Any]] = {
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
        "flatten": {"type": "boolean"},
        "max_events_per_alert": {"type": "integer", "minimum": 1},
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
        "retries": {"type": "integer", "minimum": 0},
        "retry_delay": _DURATION,
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

#: The JSON schema (Draft 2020-12) of the collector configuration. ``mdca-collector schema`` prints it.
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:airflow-provider-mdca:collector-config",
    "title": "MDCA to Devo collector configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "defaults": _SETTINGS,
        "services": {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: _SETTINGS for name in SERVICES},
        },
    },
}

# -- built-in defaults -----------------------------------------------------------------------------------------------

_PERIOD_SECONDS: Final = {
    "activities": 300,
    "alerts": 300,
    "files": 3_600,
    "entities": 86_400,
    "data_enrichment": 86_400,
}
_WINDOWED_LAG_SECONDS: Final = 120
_ALERTS_ONLY: Final = ("flatten", "max_events_per_alert")
#: The two ways to name the obfuscation key: a service that names one replaces both of the defaults' pair.
_KEY_SOURCES: Final = ("obfuscation_key_conn_id", "obfuscation_key_variable")
_SCAN_PAGE_SIZES: Final = (500, 5_000)
_SKIP_PAGE_SIZES: Final = (1, 100)


def _builtin_defaults(service: str) -> dict[str, Any]:
    """The built-in settings of one service, in the config's own (YAML) form."""
    return {
        "enabled": True,
        # The seed's request_period_in_seconds: windows are short where records are many.
        "period": _PERIOD_SECONDS[service],
        "historic_date_utc": None,
        # Late records appear in MDCA a little after their timestamp; snapshots have no window to wait for.
        "lag": _WINDOWED_LAG_SECONDS if SERVICES[service].windowed else 0,
        "page_size": None,
        "flatten": service == "alerts",
        "max_events_per_alert": 1_000,
        "obfuscation": [],
        "obfuscation_key_conn_id": None,
        "obfuscation_key_variable": None,
        "tag": None,
        "extra_fields": {},
        "retries": 3,
        "retry_delay": 60,
        # One pool for all five DAGs: they share one tenant's 30 requests a minute (the seed: no parallel pulls).
        "pool": "mdca_api",
        "max_active_runs": 1,
        "staging_url": None,
        "staging_conn_id": None,
        "retention": 86_400,
        "mdca_conn_id": "mdca_default",
        "devo_conn_id": "devo_default",
        "tags": ["mdca", "devo"],
    }


#: Every service's built-in settings, before ``defaults`` and ``services.<name>`` override them.
BUILTIN_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {name: MappingProxyType(_builtin_defaults(name)) for name in SERVICES}
)

# -- the typed result ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """The effective settings of one service: built-in defaults, then ``defaults``, then ``services.<name>``.

    Durations are ``timedelta``, ``historic_date_utc`` an aware UTC ``datetime`` (None only when the service is
    disabled and no date was given).
    """

    name: str
    enabled: bool
    #: The window length (the seed's ``request_period_in_seconds``); the DAG's schedule.
    period: timedelta
    #: The start of the first window; the DAG's start date. Move it earlier and backfill to re-ingest history.
    historic_date_utc: datetime | None
    #: How long after a window's end to wait before fetching it (late records).
    lag: timedelta
    #: Records per request; None: the service's default (5000 for activities' scan, 100 for the others).
    page_size: int | None
    #: Alerts only: one event per combination of related entities. Always False for the other services.
    flatten: bool
    max_events_per_alert: int
    obfuscation: tuple[ObfuscationRule, ...]
    obfuscation_key_conn_id: str | None
    obfuscation_key_variable: str | None
    #: The Devo table the events go to.
    tag: str
    #: Static fields added to every event (the seed's ``environment`` property).
    extra_fields: Mapping[str, Any]
    retries: int
    retry_delay: timedelta
    #: The Airflow pool of the fetch task.
    pool: str
    max_active_runs: int
    #: The staging base URL; None: the operators use ``[mdca] staging_url``, else under ``$AIRFLOW_HOME``.
    staging_url: str | None
    #: The Airflow connection of an object store used as staging (e.g. for ``abfs://``), if any.
    staging_conn_id: str | None
    #: How long delivered windows stay staged (so a rerun needs no new fetch).
    retention: timedelta
    mdca_conn_id: str
    devo_conn_id: str
    #: The DAG's tags (the service's name always among them).
    tags: tuple[str, ...]

    @property
    def dag_id(self) -> str:
        """The DAG id of this service: ``mdca_<service>``."""
        return f"mdca_{self.name}"

    @property
    def obfuscation_config(self) -> list[dict[str, str]]:
        """The obfuscation rules as plain ``{path, method}`` mappings (what the ship operator takes)."""
        return [{"path": rule.path, "method": rule.method} for rule in self.obfuscation]

    def as_dict(self) -> dict[str, Any]:
        """The settings in the config file's own form (durations as ``"5m"``, dates as ISO text)."""
        out: dict[str, Any] = {}
        for key in _SETTINGS["properties"]:
            if key in _ALERTS_ONLY and self.name != "alerts":
                continue  # refused on other services: show-config's output must load again
            value = getattr(self, key)
            if isinstance(value, timedelta):
                value = format_duration(value)
            elif isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif key == "obfuscation":
                value = self.obfuscation_config
            elif isinstance(value, (tuple, Mapping)):
                value = list(value) if isinstance(value, tuple) else dict(value)
            out[key] = value
        return out


@dataclass(frozen=True)
class CollectorConfig:
    """The whole collector configuration: every service's settings, enabled or not."""

    #: All five services by name, in the registry's (sorted) order.
    services: dict[str, ServiceConfig]
    #: Where the configuration came from (a path, or ``<config>``), for messages.
    source: str = field(default="<config>", compare=False)

    @property
    def enabled(self) -> dict[str, ServiceConfig]:
        """The enabled services by name."""
        return {name: service for name, service in self.services.items() if service.enabled}

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration in the file's form, every key of every service spelled out."""
        return {"services": {name: service.as_dict() for name, service in self.services.items()}}


# -- loading -------------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML with two changes: dates stay strings (we parse them as UTC) and a repeated key is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" may legitimately repeat keys it brings in
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                # PyYAML keeps the last value silently; a repeated key is almost always a paste error.
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is repeated", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# PyYAML would turn 2026-01-01 into a naive date/datetime in local time; keep the text and parse it as UTC ourselves.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_collector_config(path: str | Path) -> CollectorConfig:
    """Read, validate and type the collector configuration at ``path``.

    :raises InitVariablesError: code 3 if the file cannot be read or is not a YAML mapping (with the line of a syntax
        error), code 1 for wrong values, types or unknown keys; the message names the file and every key path.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InitVariablesError(3, f"collector config {source}: cannot be read: {_reason(exc)}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise InitVariablesError(3, f"collector config {source}: {_yaml_problem(exc)}") from None
    return parse_collector_config({} if data is None else data, source=source)


def parse_collector_config(data: object, *, source: str = "<config>") -> CollectorConfig:
    """Validate and type an already-parsed configuration (a mapping with ``defaults`` and ``services``).

    :raises InitVariablesError: as :func:`load_collector_config`.
    """
    if not isinstance(data, Mapping):
        raise InitVariablesError(
            3, f"collector config {source}: expected a mapping with 'defaults' and 'services', got {_describe(data)}"
        )
    data = _normalised(data)
    _check_schema(data, source)
    problems: list[str] = []
    merged = {name: _merge(name, data) for name in SERVICES}
    undated = [name for name, m in merged.items() if m["enabled"][0] and m["historic_date_utc"][0] is None]
    if undated and len(undated) == sum(bool(m["enabled"][0]) for m in merged.values()):
        # Set nowhere: one message, not one per service.
        problems.append(f"defaults.historic_date_utc: {_MISSING_DATE}")
    services = {name: _service_config(name, merged[name], problems) for name in SERVICES}
    problems.extend(_alerts_only_problems(data))
    if problems:
        raise InitVariablesError(1, f"collector config {source}: " + "; ".join(dict.fromkeys(problems)))
    return CollectorConfig(services=services, source=source)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"YAML syntax error: {problem}"
    return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _normalised(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data with empty sections as ``{}`` and dates as ISO text.

    An empty section is ``defaults:`` with every key commented out; date objects come from a caller that parsed
    the YAML itself, and the schema wants text.
    """

    def section(value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, Mapping) and isinstance(value.get("historic_date_utc"), date):
            return {**value, "historic_date_utc": value["historic_date_utc"].isoformat()}
        return value

    out = dict(data)
    for key in ("defaults", "services"):
        if key in out:
            out[key] = section(out[key])
    if isinstance(out.get("services"), Mapping):
        out["services"] = {name: section(value) for name, value in out["services"].items()}
    return out


# -- schema errors -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    try:
        jsonschema.Draft202012Validator.check_schema(SCHEMA)
    except jsonschema.SchemaError as exc:  # our bug, not the user's: the seed's code 0
        raise InitVariablesError(0, f"collector config schema: {exc.message}") from None
    return jsonschema.Draft202012Validator(SCHEMA)


def _check_schema(data: Mapping[str, Any], source: str) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if not errors:
        return
    structural = any(_is_section_error(e) for e in errors)
    problems = dict.fromkeys(_schema_problem(error) for error in errors)
    raise InitVariablesError(3 if structural else 1, f"collector config {source}: " + "; ".join(problems))


def _is_section_error(error: Any) -> bool:
    """A section (``defaults``, ``services``, ``services.<name>``) that is not a mapping: the file's structure."""
    path = list(error.absolute_path)
    is_section = path in (["defaults"], ["services"]) or (len(path) == 2 and path[0] == "services")
    return bool(is_section and error.validator == "type" and error.validator_value == "object")


def _schema_problem(error: Any) -> str:
    path = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        return _unknown_keys(path, error)
    if error.validator == "type" and error.validator_value == "object":
        return f"{path or '(top level)'}: expected a mapping, got {_describe(error.instance)}"
    expected = error.schema.get("x-expected") if isinstance(error.schema, Mapping) else None
    if expected:
        return f"{path}: expected {expected}, got {_describe(error.instance)}"
    if error.validator == "type":
        return f"{path}: expected {_type_words(error.validator_value)}, got {_describe(error.instance)}"
    if error.validator == "minimum":
        return f"{path}: must be at least {error.validator_value}, got {error.instance}"
    return f"{path}: {error.message}"


def _unknown_keys(path: str, error: Any) -> str:
    known = list(error.schema.get("properties", {}))
    unknown = sorted(str(key) for key in error.instance if key not in known)
    where = [_key_path([*error.absolute_path, key]) for key in unknown]
    what = "unknown service" if path == "services" else "unknown key"
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


def _describe(value: object) -> str:
    """A value for a message: short, and typed where the type is the problem."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return f"a {type(value).__name__}" if not isinstance(value, (list, tuple, Mapping)) else _container(value)


def _container(value: object) -> str:
    return "a list" if isinstance(value, (list, tuple)) else "a mapping"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


# -- merging and typing --------------------------------------------------------------------------------------------

#: A setting's value and the key path it came from (for messages); built-in defaults have the path "".
_Setting = tuple[Any, str]


def _merge(name: str, data: Mapping[str, Any]) -> dict[str, _Setting]:
    """Built-in defaults, then ``defaults``, then ``services.<name>``, each value with the path it came from."""
    merged: dict[str, _Setting] = {key: (value, "") for key, value in BUILTIN_DEFAULTS[name].items()}
    defaults = data.get("defaults") or {}
    own = (data.get("services") or {}).get(name) or {}
    for key, value in defaults.items():
        if key not in _ALERTS_ONLY:  # refused in defaults (see _alerts_only_problems); never applied elsewhere
            merged[key] = (value, f"defaults.{key}")
    if any(key in own for key in _KEY_SOURCES):
        for key in _KEY_SOURCES:  # naming one key source replaces the defaults' choice, whichever it was
            merged[key] = (None, "")
    for key, value in own.items():
        merged[key] = (value, f"services.{name}.{key}")
    return merged


def _alerts_only_problems(data: Mapping[str, Any]) -> Iterator[str]:
    for key in _ALERTS_ONLY:
        if key in (data.get("defaults") or {}):
            yield f"defaults.{key}: applies to alerts only; set services.alerts.{key} instead"
        for name, section in (data.get("services") or {}).items():
            if name != "alerts" and key in (section or {}):
                yield f"services.{name}.{key}: only alerts are flattened; remove this key"


class _Problem(Exception):
    """A value that passed the schema but not the closer check."""


def _service_config(name: str, merged: dict[str, _Setting], problems: list[str]) -> ServiceConfig:
    """Type every setting of one service; each bad value adds a problem naming where it was set."""

    def get(key: str, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        value, path = merged[key]
        try:
            return convert(value)
        except (_Problem, ValueError) as exc:
            problem = f"{path or f'services.{name}.{key}'}: {exc}"
            if not any(p.startswith(f"defaults.{key}: ") for p in problems):  # already said once for all
                problems.append(problem)
            return None

    enabled = bool(merged["enabled"][0])
    obfuscation = get("obfuscation", _rules) or ()
    config = ServiceConfig(
        name=name,
        enabled=enabled,
        period=get("period", _positive_duration),
        historic_date_utc=get("historic_date_utc", functools.partial(_historic_date, required=enabled)),
        lag=get("lag", parse_duration),
        page_size=get("page_size", functools.partial(_page_size, name)),
        flatten=bool(merged["flatten"][0]) and name == "alerts",
        max_events_per_alert=merged["max_events_per_alert"][0],
        obfuscation=obfuscation,
        obfuscation_key_conn_id=merged["obfuscation_key_conn_id"][0],
        obfuscation_key_variable=merged["obfuscation_key_variable"][0],
        tag=merged["tag"][0] or SERVICES[name].devo_table,
        extra_fields=MappingProxyType(dict(merged["extra_fields"][0])),
        retries=merged["retries"][0],
        retry_delay=get("retry_delay", parse_duration),
        pool=merged["pool"][0],
        max_active_runs=merged["max_active_runs"][0],
        staging_url=merged["staging_url"][0],
        staging_conn_id=merged["staging_conn_id"][0],
        retention=get("retention", parse_duration),
        mdca_conn_id=merged["mdca_conn_id"][0],
        devo_conn_id=merged["devo_conn_id"][0],
        tags=tuple(dict.fromkeys([*merged["tags"][0], name])),
    )
    problems.extend(_key_source_problems(name, merged, obfuscation))
    return config


def _positive_duration(value: Any) -> timedelta:
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise _Problem("must be longer than zero: it is the length of a window")
    return delta


_MISSING_DATE: Final = "required: the start of the first window (the DAG's start date), e.g. 2026-01-01T00:00:00Z"


def _historic_date(value: Any, *, required: bool) -> datetime | None:
    if value is None:
        if required:
            raise _Problem(_MISSING_DATE + "; set it here or under defaults")
        return None
    return _utc_datetime(value)


def _utc_datetime(text: str) -> datetime:
    """ISO 8601 date or date-time; naive means UTC, an offset is converted to UTC."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise _Problem(
            f"expected an ISO 8601 date or date-time in UTC, e.g. 2026-01-01 or 2026-01-01T00:00:00Z, "
            f"got {_describe(text)}"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _page_size(service: str, value: Any) -> int | None:
    if value is None:
        return None
    low, high = _SCAN_PAGE_SIZES if SERVICES[service].paging is Paging.SCAN else _SKIP_PAGE_SIZES
    if not low <= value <= high:
        paging = "scan paging" if SERVICES[service].paging is Paging.SCAN else "skip/limit paging"
        raise _Problem(f"for {service} ({paging}) must be between {low} and {high}, got {value}")
    return int(value)


def _rules(value: Any) -> tuple[ObfuscationRule, ...]:
    return tuple(parse_rules(value))


def _key_source_problems(name: str, merged: dict[str, _Setting], rules: tuple[ObfuscationRule, ...]) -> list[str]:
    (conn_id, _), (variable, variable_path) = (merged[key] for key in _KEY_SOURCES)
    if conn_id is not None and variable is not None:
        return [f"{variable_path}: set either obfuscation_key_conn_id or obfuscation_key_variable, not both"]
    if conn_id is None and variable is None and any(rule.method == "hmac" for rule in rules):
        path = merged["obfuscation"][1] or f"services.{name}.obfuscation"
        return [f"{path}: hmac rules need a key: set obfuscation_key_conn_id or obfuscation_key_variable"]
    return []
