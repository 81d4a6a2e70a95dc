"""Reading the collector configuration: YAML in, the schema checked, settings merged and typed, every problem named.

Built-in defaults (the registry's, :data:`~airflow_provider_mdca.config.model.BUILTIN_DEFAULTS`), then
``defaults``, then ``services.<name>``; each value keeps the key path it came from, so a message says where to fix it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

from airflow_provider_mdca.config._text import describe
from airflow_provider_mdca.config.durations import parse_duration
from airflow_provider_mdca.config.model import (
    BUILTIN_DEFAULTS,
    FLATTEN_KEYS,
    KEY_SOURCES,
    CollectorConfig,
    NotifierSpec,
    ServiceConfig,
    TenantConfig,
)
from airflow_provider_mdca.config.schema import check_schema
from airflow_provider_mdca.config.timeouts import AUTO
from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.services import SERVICES, Paging
from airflow_provider_mdca.timestamps import parse_iso
from airflow_provider_mdca.transforms.obfuscate import ObfuscationRule, parse_rules

__all__ = ["SINGLE_TENANT", "load_collector_config", "parse_collector_config"]

#: The services that flatten (alerts): only they take the :data:`FLATTEN_KEYS`.
_FLATTENED: Final = tuple(name for name, service in SERVICES.items() if service.flattened)


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
    """Validate and type an already-parsed configuration (a mapping with ``defaults``, ``services``, ``tenants``).

    :raises InitVariablesError: as :func:`load_collector_config`.
    """
    if not isinstance(data, Mapping):
        raise InitVariablesError(
            3, f"collector config {source}: expected a mapping with 'defaults' and 'services', got {describe(data)}"
        )
    data = _normalised(data)
    check_schema(data, source)
    problems: list[str] = []
    # In a multi-tenant file the file's own settings run no DAG: their problems are said for each tenant that has them.
    services = _typed_services(data, None, [] if data.get("tenants") else problems)
    tenants = {name: TenantConfig(name, _typed_services(data, name, problems)) for name in data.get("tenants", {})}
    problems.extend(_flatten_key_problems(data))
    problems.extend(_tenant_problems(tenants))
    if problems:
        raise InitVariablesError(1, f"collector config {source}: " + "; ".join(dict.fromkeys(problems)))
    return CollectorConfig(services=services, source=source, tenants=tenants)


def _typed_services(data: Mapping[str, Any], tenant: str | None, problems: list[str]) -> dict[str, ServiceConfig]:
    """Every service's settings, the file's own (``tenant`` None) or one tenant's; problems go to ``problems``."""
    merged = {name: _merge(name, data, tenant) for name in SERVICES}
    undated = [name for name, m in merged.items() if m["enabled"][0] and m["historic_date_utc"][0] is None]
    if undated and len(undated) == sum(bool(m["enabled"][0]) for m in merged.values()):
        # Set nowhere: one message, not one per service.
        problems.append(f"defaults.historic_date_utc: {_MISSING_DATE}")
    prefix = "" if tenant is None else (data["tenants"][tenant] or {}).get("dag_id_prefix", f"{tenant}_")
    return {name: _service_config(name, merged[name], problems, tenant, prefix) for name in SERVICES}


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

    def services(value: object) -> object:
        if isinstance(value, Mapping):
            return {name: section(entry) for name, entry in value.items()}
        return value

    out = dict(data)
    for key in ("defaults", "services", "tenants"):
        if key in out:
            out[key] = section(out[key])
    out["services"] = services(out.get("services", {}))
    if isinstance(out.get("tenants"), Mapping):
        tenants = {}
        for name, tenant in out["tenants"].items():
            tenant = section(tenant)
            if isinstance(tenant, Mapping) and "services" in tenant:
                tenant = {**tenant, "services": services(section(tenant["services"]))}
            tenants[name] = tenant
        out["tenants"] = tenants
    return out


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


# -- merging and typing --------------------------------------------------------------------------------------------

#: A setting's value and the key path it came from (for messages); built-in defaults have the path "".
_Setting = tuple[Any, str]


def _merge(name: str, data: Mapping[str, Any], tenant: str | None = None) -> dict[str, _Setting]:
    """The settings of one service, each value with the key path it came from.

    Built-in defaults, then ``defaults``, then ``services.<name>``, then (for a tenant) ``tenants.<tenant>`` and
    ``tenants.<tenant>.services.<name>``.
    """
    merged: dict[str, _Setting] = {key: (value, "") for key, value in BUILTIN_DEFAULTS[name].items()}
    layers = [("defaults", data.get("defaults") or {}), (f"services.{name}", _service_section(data, name))]
    if tenant is not None:
        own = data["tenants"][tenant] or {}
        settings = {key: value for key, value in own.items() if key not in _TENANT_ONLY_KEYS}
        layers += [(f"tenants.{tenant}", settings), (f"tenants.{tenant}.services.{name}", _service_section(own, name))]
    for path, layer in layers:
        shared = not path.startswith(("services.", f"tenants.{tenant}.services."))
        if any(key in layer for key in KEY_SOURCES):
            for key in KEY_SOURCES:  # naming one key source replaces the choice made before, whichever it was
                merged[key] = (None, "")
        for key, value in layer.items():
            if shared and key in FLATTEN_KEYS:
                continue  # refused in a section for every service (see _flatten_key_problems); never applied
            merged[key] = (value, f"{path}.{key}")
    return merged


def _service_section(section: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return (section.get("services") or {}).get(name) or {}


#: How metrics and the coverage view name the tenant of a single-tenant file: no tenant may take the name.
SINGLE_TENANT: Final = "default"
#: The keys of a tenant's section that are not settings.
_TENANT_ONLY_KEYS: Final = ("dag_id_prefix", "services")


def _flatten_key_problems(data: Mapping[str, Any]) -> Iterator[str]:
    where = " or ".join(f"services.{name}.{{key}}" for name in _FLATTENED)
    sections: list[tuple[str, Mapping[str, Any]]] = [("", data)]
    sections += [(f"tenants.{name}.", tenant or {}) for name, tenant in (data.get("tenants") or {}).items()]
    for prefix, section in sections:
        shared = "defaults" if not prefix else prefix.rstrip(".")
        for key in FLATTEN_KEYS:
            if key in ((section.get("defaults") or {}) if not prefix else section):
                yield (
                    f"{shared}.{key}: applies to {' and '.join(_FLATTENED)} only; set "
                    f"{prefix}{where.format(key=key)} instead"
                )
            for name, settings in (section.get("services") or {}).items():
                if name not in _FLATTENED and key in (settings or {}):
                    flattened = " and ".join(_FLATTENED)
                    yield f"{prefix}services.{name}.{key}: only {flattened} are flattened; remove this key"


def _tenant_problems(tenants: Mapping[str, TenantConfig]) -> Iterator[str]:
    """Tenants that would collide: one MDCA connection for two tenants, or two DAGs with one id."""
    readers: dict[str, str] = {}
    dag_ids: dict[str, str] = {}
    if SINGLE_TENANT in tenants:
        yield (
            f"tenants.{SINGLE_TENANT}: the name {SINGLE_TENANT!r} stands for a single-tenant collector (in metric "
            "names and the coverage view); give this tenant its own name"
        )
    for tenant in tenants.values():
        for service in tenant.enabled.values():
            first = readers.setdefault(service.mdca_conn_id, tenant.name)
            if first != tenant.name:
                yield (
                    f"tenants.{tenant.name}.mdca_conn_id: {service.mdca_conn_id!r} is tenant {first}'s too; each "
                    "tenant reads its own MDCA tenant through its own mdca connection"
                )
            owner = dag_ids.setdefault(service.dag_id, tenant.name)
            if owner != tenant.name:
                yield (
                    f"tenants.{tenant.name}.dag_id_prefix: the DAG id {service.dag_id} is tenant {owner}'s too; give "
                    "each tenant its own prefix"
                )


class _Problem(Exception):
    """A value that passed the schema but not the closer check."""


def _service_config(
    name: str, merged: dict[str, _Setting], problems: list[str], tenant: str | None = None, dag_id_prefix: str = ""
) -> ServiceConfig:
    """Type every setting of one service (of ``tenant``); each bad value adds a problem naming where it was set."""

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
        on_expired_window=merged["on_expired_window"][0],
        flatten=bool(merged["flatten"][0]) and SERVICES[name].flattened,
        max_events_per_alert=merged["max_events_per_alert"][0],
        max_bytes_per_alert=merged["max_bytes_per_alert"][0],
        obfuscation=obfuscation,
        obfuscation_key_conn_id=merged["obfuscation_key_conn_id"][0],
        obfuscation_key_variable=merged["obfuscation_key_variable"][0],
        tag=merged["tag"][0] or SERVICES[name].devo_table,
        extra_fields=MappingProxyType(dict(merged["extra_fields"][0])),
        retries=merged["retries"][0],
        retry_delay=get("retry_delay", parse_duration),
        max_retry_delay=get("max_retry_delay", parse_duration),
        recovery_horizon=get("recovery_horizon", parse_duration),
        notify=tuple(
            NotifierSpec(
                spec["notifier"], tuple(dict.fromkeys(spec.get("on", ("retry", "failure")))), spec.get("args", {})
            )
            for spec in merged["notify"][0]
        ),
        execution_timeout=get("execution_timeout", _execution_timeout),
        pool=_pool(merged["pool"], tenant),
        max_active_runs=merged["max_active_runs"][0],
        staging_url=merged["staging_url"][0],
        staging_conn_id=merged["staging_conn_id"][0],
        retention=get("retention", parse_duration),
        mdca_conn_id=merged["mdca_conn_id"][0],
        devo_conn_id=merged["devo_conn_id"][0],
        tags=tuple(dict.fromkeys([*merged["tags"][0], name, *([tenant] if tenant else [])])),
        tenant=tenant,
        dag_id_prefix=dag_id_prefix,
    )
    problems.extend(_key_source_problems(name, merged, obfuscation))
    if tenant is not None and enabled and not merged["mdca_conn_id"][1].startswith(f"tenants.{tenant}."):
        problems.append(
            f"tenants.{tenant}.mdca_conn_id: required: each tenant reads its own MDCA tenant through its own mdca "
            "connection (set it here, or in each of the tenant's services)"
        )
    return config


def _pool(setting: _Setting, tenant: str | None) -> str:
    """The fetch tasks' pool: a tenant's own, since each tenant has its own 30 requests a minute.

    A pool the tenant names itself is used as it is; the file's shared pool (``mdca_api``) becomes
    ``mdca_api_<tenant>``.
    """
    pool, path = setting
    if tenant is None or path.startswith(f"tenants.{tenant}."):
        return str(pool)
    return f"{pool}_{tenant}"


def _positive_duration(value: Any) -> timedelta:
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise _Problem("must be longer than zero: it is the length of a window")
    return delta


def _execution_timeout(value: Any) -> timedelta | Literal["auto"] | None:
    if value is None:
        return None
    if value == AUTO:
        return "auto"
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise _Problem("must be longer than zero; null leaves the tasks to Airflow's default, auto derives each one's")
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
    try:
        moment = parse_iso(text)
    except ValueError:
        raise _Problem(
            f"expected an ISO 8601 date or date-time in UTC, e.g. 2026-01-01 or 2026-01-01T00:00:00Z, "
            f"got {describe(text)}"
        ) from None
    return moment.astimezone(timezone.utc)


def _page_size(service: str, value: Any) -> int | None:
    if value is None:
        return None
    paging = SERVICES[service].paging
    low, high = paging.page_sizes
    if not low <= value <= high:
        kind = "scan paging" if paging is Paging.SCAN else "skip/limit paging"
        raise _Problem(f"for {service} ({kind}) must be between {low} and {high}, got {value}")
    return int(value)


def _rules(value: Any) -> tuple[ObfuscationRule, ...]:
    return tuple(parse_rules(value))


def _key_source_problems(name: str, merged: dict[str, _Setting], rules: tuple[ObfuscationRule, ...]) -> list[str]:
    (conn_id, _), (variable, variable_path) = (merged[key] for key in KEY_SOURCES)
    if conn_id is not None and variable is not None:
        return [f"{variable_path}: set either obfuscation_key_conn_id or obfuscation_key_variable, not both"]
    if conn_id is None and variable is None and any(rule.method == "hmac" for rule in rules):
        path = merged["obfuscation"][1] or f"services.{name}.obfuscation"
        return [f"{path}: hmac rules need a key: set obfuscation_key_conn_id or obfuscation_key_variable"]
    return []
