"""The collector configuration: defaults, durations, dates, precedence, and every kind of bad input."""

from __future__ import annotations

import doctest
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_provider_mdca.config import (
    SCHEMA,
    format_duration,
    load_collector_config,
    parse_collector_config,
    parse_duration,
)
from airflow_provider_mdca.config import durations as config_durations
from airflow_provider_mdca.config import timeouts as config_timeouts
from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.transforms.obfuscate import ObfuscationRule
from tests.service_table import ALL, SERVICE_TABLE

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "dags" / "mdca_collector.yaml"
START = "2026-01-01T00:00:00Z"
START_DT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def config(defaults=None, **services):
    return parse_collector_config({"defaults": {"historic_date_utc": START, **(defaults or {})}, "services": services})


def error_of(data) -> InitVariablesError:
    with pytest.raises(InitVariablesError) as info:
        parse_collector_config(data)
    return info.value


def load_yaml_text(text: str, folder: Path):
    path = folder / "collector.yaml"
    path.write_text(text, encoding="utf-8")
    return load_collector_config(path)


# -- defaults ----------------------------------------------------------------------------------------------------

COMMON_DEFAULTS = {
    "enabled": True,
    "historic_date_utc": START_DT,
    "page_size": None,
    "on_expired_window": "error",
    "max_events_per_alert": 1000,
    "max_bytes_per_alert": 32 * 1024 * 1024,
    "obfuscation": (),
    "obfuscation_key_conn_id": None,
    "obfuscation_key_variable": None,
    "extra_fields": {},
    "retries": "auto",
    "retry_delay": timedelta(minutes=1),
    "max_retry_delay": timedelta(minutes=15),
    "recovery_horizon": timedelta(days=1),
    "notify": (),
    "execution_timeout": "auto",
    "pool": "mdca_api",
    "staging_url": None,
    "staging_conn_id": None,
    "retention": timedelta(days=1),
    "mdca_conn_id": "mdca_default",
    "devo_conn_id": "devo_default",
}
SERVICE_DEFAULTS = {
    # A windowed service's runs overlap in a catch-up (the next fetch waits in the pool); a snapshot's do not.
    name: {
        "period": row.default_period,
        "lag": row.default_lag,
        "flatten": row.flattened,
        "max_active_runs": 4 if row.windowed else 1,
    }
    for name, row in SERVICE_TABLE.items()
}


@pytest.mark.parametrize("service", ALL)
def test_every_key_has_its_documented_default(service):
    settings = config().services[service]
    expected = {
        **COMMON_DEFAULTS,
        **SERVICE_DEFAULTS[service],
        "tag": f"casb.microsoft_defender.cloud_apps.{service}",
        "tags": ("mdca", "devo", service),
    }
    actual = {key: getattr(settings, key) for key in expected}
    assert actual == expected
    assert settings.name == service and settings.dag_id == f"mdca_{service}"


def test_the_config_has_every_service_in_registry_order():
    cfg = config(files={"enabled": False})
    assert list(cfg.services) == list(ALL)
    assert list(cfg.enabled) == [name for name in ALL if name != "files"]


def test_services_override_defaults_which_override_the_builtin_values():
    cfg = config(
        {"retries": 5, "lag": "10m", "tags": ["soc"], "extra_fields": {"environment": "prod"}},
        alerts={"retries": 1, "period": "10m", "extra_fields": {"environment": "dev", "site": 3}},
    )
    alerts, files = cfg.services["alerts"], cfg.services["files"]
    assert (alerts.retries, files.retries) == (1, 5)
    assert (alerts.period, files.period) == (timedelta(minutes=10), timedelta(hours=1))
    assert alerts.lag == files.lag == timedelta(minutes=10)
    assert files.tags == ("soc", "files")
    # A service's mapping replaces the defaults' mapping whole: no surprise merges of half a setting.
    assert dict(alerts.extra_fields) == {"environment": "dev", "site": 3}
    assert dict(files.extra_fields) == {"environment": "prod"}


def test_a_service_naming_one_key_source_replaces_the_defaults_choice():
    cfg = config(
        {"obfuscation": ["user.userName"], "obfuscation_key_variable": "mdca_key"},
        alerts={"obfuscation_key_conn_id": "alerts_key"},
    )
    alerts, files = cfg.services["alerts"], cfg.services["files"]
    assert (alerts.obfuscation_key_conn_id, alerts.obfuscation_key_variable) == ("alerts_key", None)
    assert (files.obfuscation_key_conn_id, files.obfuscation_key_variable) == (None, "mdca_key")


def test_obfuscation_rules_are_parsed_in_both_forms():
    cfg = config(
        {"obfuscation_key_variable": "k"},
        activities={"obfuscation": ["user.userName", {"path": "entities[].label", "method": "mask"}]},
        files={"obfuscation": {"ownerAddress": "mask"}},
    )
    assert cfg.services["activities"].obfuscation == (
        ObfuscationRule("user.userName", "hmac"),
        ObfuscationRule("entities[].label", "mask"),
    )
    assert cfg.services["files"].obfuscation_config == [{"path": "ownerAddress", "method": "mask"}]


def test_mask_only_rules_need_no_key():
    assert config(activities={"obfuscation": {"user.userName": "mask"}}).services["activities"].obfuscation


def test_a_disabled_service_needs_no_start_date():
    cfg = parse_collector_config(
        {"services": {name: {"enabled": False} for name in ALL[1:]} | {"activities": {"historic_date_utc": START}}}
    )
    assert cfg.services["files"].historic_date_utc is None and not cfg.services["files"].enabled
    assert list(cfg.enabled) == ["activities"]


def test_empty_sections_are_allowed(tmp_path):
    cfg = load_yaml_text(f"defaults:\n  historic_date_utc: {START}\nservices:\n  alerts:\n", tmp_path)
    assert cfg.services["alerts"].enabled


def test_the_config_is_frozen():
    settings = config().services["alerts"]
    with pytest.raises(AttributeError):
        settings.period = timedelta(0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.extra_fields["x"] = 1  # type: ignore[index]


# -- execution timeouts (issue 14, item 8) ----------------------------------------------------------------------


@pytest.mark.parametrize("service", ALL)
def test_every_task_is_bounded_by_default(service):
    settings = config().services[service]
    timeouts = settings.task_timeouts
    assert set(timeouts) == {"fetch", "flatten", "ship", "cleanup"}
    assert settings.lag == SERVICE_TABLE[service].default_lag
    for task, limit in timeouts.items():
        bound = limit - settings.lag if task == "fetch" else limit  # a live window's fetch also waits out the lag
        assert bound is not None and timedelta(minutes=30) <= bound <= timedelta(hours=12), (task, limit)
    # A window at full request budget takes one period: the fetch has twice that, at least half an hour, plus the lag
    # (a live window's fetch spends it deferred, which Airflow 2.11 counts against its execution_timeout).
    clamped = min(max(2 * settings.period, timedelta(minutes=30)), timedelta(hours=12))
    assert timeouts["fetch"] == clamped + settings.lag


def test_the_derived_bounds_follow_the_period_the_page_size_and_the_events_per_alert():
    short = config(alerts={"period": "1m", "max_events_per_alert": 1}).services["alerts"].task_timeouts
    # The fetch: the 30m floor plus the alerts' default 2m lag.
    assert short == {"fetch": timedelta(minutes=32)} | dict.fromkeys(
        ["flatten", "ship", "cleanup"], timedelta(minutes=30)
    )
    assert config().services["activities"].task_timeouts["fetch"] == timedelta(minutes=32)  # 5m: 30m + 2m lag
    no_lag = config(alerts={"period": "1m", "lag": 0}).services["alerts"].task_timeouts
    assert no_lag["fetch"] == timedelta(minutes=30)
    long_lag = config(alerts={"period": "1m", "lag": "1h"}).services["alerts"].task_timeouts
    assert long_lag["fetch"] == timedelta(minutes=90) and long_lag["cleanup"] == timedelta(minutes=30)
    hourly = config(alerts={"period": "1h"}).services["alerts"].task_timeouts
    assert hourly["fetch"] == timedelta(hours=2, minutes=2)
    # 30 requests a minute for 2 h of 100 alerts, each up to 1000 events, at 5000 events a second: over the cap.
    assert hourly["flatten"] == hourly["ship"] == timedelta(hours=12)
    small_pages = config(alerts={"period": "1h", "page_size": 1, "max_events_per_alert": 10}).services["alerts"]
    assert small_pages.task_timeouts["ship"] == timedelta(minutes=30)
    # The 12h cap; a snapshot has no lag.
    assert config(entities={"period": "1w"}).services["entities"].task_timeouts["fetch"] == timedelta(hours=12)


def test_an_execution_timeout_applies_to_every_task_and_null_leaves_them_to_airflow():
    cfg = config(
        {"execution_timeout": "45m"}, files={"execution_timeout": None}, entities={"execution_timeout": "auto"}
    )
    assert set(cfg.services["alerts"].task_timeouts.values()) == {timedelta(minutes=45)}
    assert set(cfg.services["files"].task_timeouts.values()) == {None}
    assert cfg.services["entities"].task_timeouts == config().services["entities"].task_timeouts
    assert cfg.services["alerts"].as_dict()["execution_timeout"] == "45m"
    assert cfg.services["files"].as_dict()["execution_timeout"] is None
    assert parse_collector_config(yaml.safe_load(yaml.safe_dump(cfg.as_dict()))) == cfg


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "must be longer than zero"),
        ("0s", "must be longer than zero"),
        ("soon", "expected a duration, 'auto'"),
        (True, "expected a duration, 'auto'"),
        ("99999w", "must be at most 36500d"),
    ],
    ids=repr,
)
def test_a_bad_execution_timeout_is_refused_naming_the_key(value, reason):
    error = error_of({"defaults": {"historic_date_utc": START}, "services": {"alerts": {"execution_timeout": value}}})
    assert error.code == 1
    assert f"services.alerts.execution_timeout: {reason}" in str(error)


# -- durations and dates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (300, 300),
        (0, 0),
        ("300", 300),
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 2 * 604800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1d12h", 129600),
        ("PT5M", 300),
        ("PT90S", 90),
        ("P1D", 86400),
        ("P1W", 604800),
        ("P1DT12H", 129600),
        ("PT1H30M", 5400),
    ],
    ids=str,
)
def test_durations_are_parsed(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert config(alerts={"retry_delay": text}).services["alerts"].retry_delay == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "bad", ["5x", "-5", -5, "1.5h", 1.5, "P1M", "P1Y", "PT", "P", "", "5 m", "m5", True, "5mins"], ids=repr
)
def test_bad_durations_are_refused_naming_the_key(bad):
    error = error_of({"defaults": {"historic_date_utc": START}, "services": {"alerts": {"lag": bad}}})
    assert error.code == 1
    assert "services.alerts.lag: expected a duration" in str(error)


@pytest.mark.parametrize("huge", ["99999999999w", 10**20, "9" * 30, "P99999999999D", "PT99999999999999H", "36501d"])
@pytest.mark.parametrize("key", ["period", "lag", "retry_delay", "retention"])
def test_a_huge_duration_is_init_variables_error_1_naming_the_key_not_an_overflow(key, huge):
    # Issue 14, item 16: "99999999999w" raised an uncaught OverflowError from timedelta.
    error = error_of({"defaults": {"historic_date_utc": START}, "services": {"alerts": {key: huge}}})
    assert error.code == 1
    assert f"services.alerts.{key}: must be at most 36500d (100 years)" in str(error)


def test_a_century_is_the_longest_duration():
    assert parse_duration("36500d") == config_durations.MAX_DURATION == timedelta(days=36_500)
    assert config(alerts={"retention": "36500d"}).services["alerts"].retention == timedelta(days=36_500)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=90), timedelta(hours=25, minutes=1)], ids=str)
def test_formatted_durations_parse_back(delta):
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01", START_DT),
        ("2026-01-01T00:00:00Z", START_DT),
        ("2026-01-01T00:00:00", START_DT),  # naive: UTC, as the key's name says
        ("2026-01-01T02:00:00+02:00", START_DT),  # an offset is converted
        ("2026-01-01T00:00:00.000Z", START_DT),
    ],
    ids=str,
)
def test_historic_dates_are_aware_utc(text, expected):
    moment = config({"historic_date_utc": text}).services["alerts"].historic_date_utc
    assert moment == expected and moment.utcoffset() == timedelta(0)


def test_unquoted_yaml_dates_are_utc_not_local_time(tmp_path):
    cfg = load_yaml_text("defaults:\n  historic_date_utc: 2026-01-01 10:00:00\n", tmp_path)
    assert cfg.services["activities"].historic_date_utc == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)


# -- bad input ------------------------------------------------------------------------------------------------------

WITH_DATE = {"historic_date_utc": START}


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        ({"defaults": {**WITH_DATE, "perod": 5}}, "defaults.perod", "unknown key"),
        ({"defaults": WITH_DATE, "services": {"alertz": {}}}, "services.alertz", "unknown service"),
        ({"defaults": WITH_DATE, "extra": 1}, "extra", "unknown key"),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"enabled": "yes please"}}},
            "services.alerts.enabled",
            "true or false",
        ),
        ({"defaults": {**WITH_DATE, "retries": "three"}}, "defaults.retries", "(0 or more), or 'auto'"),
        ({"defaults": {**WITH_DATE, "retries": -1}}, "defaults.retries", "got -1"),
        ({"defaults": {**WITH_DATE, "recovery_horizon": "a day"}}, "defaults.recovery_horizon", "duration"),
        ({"defaults": {**WITH_DATE, "notify": [{"on": ["retry"]}]}}, "defaults.notify[0]", "notifier"),
        (
            {"defaults": {**WITH_DATE, "notify": [{"notifier": "x.Y", "on": ["success"]}]}},
            "defaults.notify[0].on[0]",
            "'retry' or 'failure'",
        ),
        ({"defaults": {**WITH_DATE, "max_active_runs": 0}}, "defaults.max_active_runs", "at least 1"),
        ({"defaults": WITH_DATE, "services": {"alerts": {"period": 0}}}, "services.alerts.period", "longer than zero"),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"max_events_per_alert": 0}}},
            "services.alerts.max_events_per_alert",
            "at least 1",
        ),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"max_events_per_alert": 10_001}}},
            "services.alerts.max_events_per_alert",
            "must be at most 10000, got 10001",
        ),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"max_bytes_per_alert": 1000}}},
            "services.alerts.max_bytes_per_alert",
            "must be at least 1048576",
        ),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"max_bytes_per_alert": 2**31}}},
            "services.alerts.max_bytes_per_alert",
            "must be at most 1073741824",
        ),
        (
            {"defaults": WITH_DATE, "services": {"files": {"max_bytes_per_alert": 2**20}}},
            "services.files.max_bytes_per_alert",
            "only alerts",
        ),
        (
            {"defaults": WITH_DATE, "services": {"activities": {"page_size": 100}}},
            "services.activities.page_size",
            "between 500 and 5000",
        ),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"page_size": 500}}},
            "services.alerts.page_size",
            "between 1 and 100",
        ),
        (
            {"defaults": WITH_DATE, "services": {"alerts": {"page_size": "big"}}},
            "services.alerts.page_size",
            "whole number",
        ),
        (
            {"defaults": WITH_DATE, "services": {"entities": {"flatten": True}}},
            "services.entities.flatten",
            "only alerts",
        ),
        (
            {"defaults": WITH_DATE, "services": {"files": {"max_events_per_alert": 5}}},
            "services.files.max_events_per_alert",
            "only alerts",
        ),
        ({"defaults": {**WITH_DATE, "flatten": False}}, "defaults.flatten", "alerts only"),
        ({"defaults": WITH_DATE, "services": {"alerts": {"tag": "my tag"}}}, "services.alerts.tag", "Devo tag"),
        ({"defaults": WITH_DATE, "services": {"alerts": {"tag": "a/b.c"}}}, "services.alerts.tag", "Devo tag"),
        (
            {"defaults": {**WITH_DATE, "extra_fields": {"env": {"nested": 1}}}},
            "defaults.extra_fields.env",
            "string, number",
        ),
        ({"defaults": {**WITH_DATE, "extra_fields": ["env"]}}, "defaults.extra_fields", "a mapping"),
        ({"defaults": {**WITH_DATE, "staging_url": "relative/dir"}}, "defaults.staging_url", "a URL"),
        ({"defaults": {**WITH_DATE, "mdca_conn_id": "my conn"}}, "defaults.mdca_conn_id", "connection id"),
        ({"defaults": {**WITH_DATE, "devo_conn_id": None}}, "defaults.devo_conn_id", "connection id"),
        ({"defaults": {**WITH_DATE, "pool": " "}}, "defaults.pool", "non-empty"),
        (
            {"defaults": {**WITH_DATE, "on_expired_window": "ignore"}},
            "defaults.on_expired_window",
            "'error' (refuse a window older than MDCA keeps) or 'warn'",
        ),
        ({"defaults": {**WITH_DATE, "tags": "mdca"}}, "defaults.tags", "a list"),
        ({"defaults": {**WITH_DATE, "obfuscation": "user.userName"}}, "defaults.obfuscation", "a list of field paths"),
        ({"defaults": {**WITH_DATE, "obfuscation": ["user.userName"]}}, "defaults.obfuscation", "need a key"),
        (
            {"defaults": {**WITH_DATE, "obfuscation_key_conn_id": "a", "obfuscation_key_variable": "b"}},
            "defaults.obfuscation_key_variable",
            "not both",
        ),
        ({"defaults": {"historic_date_utc": "yesterday"}}, "defaults.historic_date_utc", "ISO 8601"),
        ({"defaults": {"historic_date_utc": "2026-02-30"}}, "defaults.historic_date_utc", "ISO 8601"),
        ({}, "defaults.historic_date_utc", "required"),
        ({"services": {"alerts": WITH_DATE}}, "services.activities.historic_date_utc", "required"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_values_are_init_variables_error_1_naming_the_key(data, path, reason):
    error = error_of(data)
    assert error.code == 1
    message = str(error)
    assert message.startswith("InitVariablesError 1: The user config did not pass the format validation.")
    assert f"{path}:" in message and reason in message


def test_a_bad_obfuscation_path_is_reported_at_load_with_the_path():
    error = error_of(
        {
            "defaults": {**WITH_DATE, "obfuscation_key_variable": "k"},
            "services": {"activities": {"obfuscation": ["user.userName", "entities[.label"]}},
        }
    )
    assert error.code == 1
    assert "services.activities.obfuscation: malformed obfuscation path 'entities[.label'" in str(error)


def test_a_bad_obfuscation_method_is_reported():
    error = error_of({"defaults": WITH_DATE, "services": {"alerts": {"obfuscation": {"user.name": "rot13"}}}})
    assert "services.alerts.obfuscation:" in str(error) and "rot13" in str(error)


def test_every_problem_is_reported_at_once():
    error = error_of(
        {"defaults": WITH_DATE, "services": {"alerts": {"period": "5x", "retries": "three"}, "files": {"lag": "?"}}}
    )
    message = str(error)
    assert all(p in message for p in ("services.alerts.period", "services.alerts.retries", "services.files.lag"))


def test_a_bad_default_is_reported_once_not_per_service():
    error = error_of({"defaults": {**WITH_DATE, "obfuscation": ["a..b"], "obfuscation_key_variable": "k"}})
    assert str(error).count("defaults.obfuscation:") == 1


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (["not", "a", "mapping"], "expected a mapping"),
        ("text", "expected a mapping"),
        ({"defaults": ["historic_date_utc"]}, "defaults: expected a mapping"),
        ({"defaults": WITH_DATE, "services": ["alerts"]}, "services: expected a mapping"),
        ({"defaults": WITH_DATE, "services": {"alerts": "on"}}, "services.alerts: expected a mapping"),
    ],
    ids=["root-list", "root-text", "defaults", "services", "service"],
)
def test_structurally_invalid_config_is_code_3(data, path):
    error = error_of(data)
    assert error.code == 3 and path in str(error)


# -- files ---------------------------------------------------------------------------------------------------------


def test_a_yaml_syntax_error_is_code_3_with_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("defaults:\n  historic_date_utc: 2026-01-01\nservices:\n  alerts: {period: 5m\n")
    with pytest.raises(InitVariablesError) as info:
        load_collector_config(path)
    assert info.value.code == 3
    assert str(path) in str(info.value) and "YAML syntax error at line" in str(info.value)


def test_a_repeated_key_is_refused_with_its_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("defaults:\n  historic_date_utc: 2026-01-01\n  retries: 1\n  retries: 2\n")
    with pytest.raises(InitVariablesError) as info:
        load_collector_config(path)
    assert info.value.code == 3
    assert "the key 'retries' is repeated" in str(info.value) and "line 4" in str(info.value)


def test_yaml_anchors_and_merge_keys_work(tmp_path):
    cfg = load_yaml_text(
        "defaults: {historic_date_utc: 2026-01-01}\n"
        "services:\n"
        "  activities: &fast {period: 1m, lag: 30s}\n"
        "  alerts:\n    <<: *fast\n    period: 2m\n",
        tmp_path,
    )
    assert cfg.services["alerts"].period == timedelta(minutes=2)
    assert cfg.services["alerts"].lag == timedelta(seconds=30)


def test_a_missing_file_is_code_3_naming_it(tmp_path):
    with pytest.raises(InitVariablesError) as info:
        load_collector_config(tmp_path / "nowhere.yaml")
    assert info.value.code == 3 and "nowhere.yaml" in str(info.value)


def test_a_value_error_names_the_file(tmp_path):
    path = tmp_path / "collector.yaml"
    path.write_text("services:\n  alerts:\n    period: 5x\n")
    with pytest.raises(InitVariablesError) as info:
        load_collector_config(path)
    assert f"collector config {path}: " in str(info.value)


def test_an_empty_file_asks_for_the_start_date(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(InitVariablesError) as info:
        load_collector_config(path)
    assert info.value.code == 1 and "defaults.historic_date_utc: required" in str(info.value)


# -- the shipped file, the schema, round trips ------------------------------------------------------------------------


def test_the_shipped_config_loads_with_the_documented_defaults():
    cfg = load_collector_config(SHIPPED)
    assert list(cfg.enabled) == list(ALL)
    for name, expected in SERVICE_DEFAULTS.items():
        settings = cfg.services[name]
        assert {key: getattr(settings, key) for key in expected} == expected
        assert settings.historic_date_utc is not None and settings.historic_date_utc.tzinfo is not None


def test_the_shipped_config_documents_every_key():
    text = SHIPPED.read_text()
    for key in SCHEMA["properties"]["defaults"]["properties"]:
        assert f"{key}:" in text, f"{key} is not documented in {SHIPPED.name}"


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert set(SCHEMA["properties"]["services"]["properties"]) == set(ALL)


def test_the_effective_config_loads_back_to_the_same_config():
    cfg = config(
        {"obfuscation_key_variable": "k", "extra_fields": {"environment": "prod"}},
        alerts={"flatten": False, "obfuscation": ["user.userName"], "period": "1h30m"},
        files={"enabled": False},
    )
    again = parse_collector_config(yaml.safe_load(yaml.safe_dump(cfg.as_dict())))
    assert again == cfg


@pytest.mark.parametrize("module", [config_durations, config_timeouts], ids=lambda m: m.__name__)
def test_the_docstring_examples_hold(module):
    results = doctest.testmod(module)
    assert results.attempted >= 2 and results.failed == 0


def test_the_config_module_imports_nothing_from_airflow():
    code = (
        "import sys, airflow_provider_mdca.config\n"
        "raise SystemExit(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120, check=False).returncode == 0
