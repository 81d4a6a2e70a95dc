"""deploy/airflow-celery.env: the one source of the CeleryExecutor cluster's settings, for Compose and for the test.

docker-compose.yaml gives the file to every Airflow service (``env_file``) and repeats none of its keys; the
end-to-end cluster test (tests/e2e/test_celery_cluster.py) loads it through tests/harness/celery_cluster.py. Checked
here: both read it, and the test's settings are Compose's but for the addresses and the crash-detection timeouts it
lowers, each named.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy import new_env
from tests.deploy.support import (
    COMPOSE,
    ENV_EXAMPLE,
    REPO,
    env_file_paths,
    interpolate,
    parse_env_file,
    with_env_files,
)
from tests.harness import celery_cluster
from tests.harness.celery_cluster import (
    AIRFLOW2_NAMES,
    COMPOSE_URL_SETTINGS,
    CRASH_DETECTION,
    SETTINGS_FILE,
    cluster_settings,
    read_env_file,
)

SETTINGS = SETTINGS_FILE.relative_to(REPO).as_posix()
NOT_AIRFLOW = {"postgres", "redis", "mdca-emulator"}
# What the test substitutes for Compose's: its own servers on 127.0.0.1, the password of its own PostgreSQL.
TEST_ADDRESSES = {"redis": "127.0.0.1:6390", "postgres": "127.0.0.1:5440"}
PASSWORD = "test-password"


def raw_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def containers() -> dict[str, dict[str, str]]:
    """Each Airflow service's environment as Compose sets up its container (env_file, then environment), with the
    ``.env`` deploy/new_env.py writes (its database password: the test's)."""
    env = {**parse_env_file(new_env.fill(ENV_EXAMPLE.read_text(encoding="utf-8"))), "POSTGRES_PASSWORD": PASSWORD}
    data = with_env_files(interpolate(raw_compose(), env), REPO)
    return {name: svc["environment"] for name, svc in data["services"].items() if name not in NOT_AIRFLOW}


def test_every_airflow_service_reads_the_settings_file_and_nothing_else_does():
    services = raw_compose()["services"]
    reading = {name for name, svc in services.items() if SETTINGS in env_file_paths(svc)}
    assert reading == set(services) - NOT_AIRFLOW
    assert (REPO / SETTINGS).is_file()


def test_no_service_sets_a_key_of_the_settings_file_again():
    # Compose's `environment` silently wins over `env_file`: a repeated key would be a second source.
    keys = set(read_env_file())
    assert {"AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL", *CRASH_DETECTION} <= keys
    for name, svc in raw_compose()["services"].items():
        assert not keys & set(svc.get("environment") or {}), name
    assert not keys & set(raw_compose()["x-airflow-common"]["environment"])


def test_every_airflow_container_gets_the_files_settings():
    settings = read_env_file()
    for name, env in containers().items():
        assert {key: env.get(key) for key in settings} == settings, name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_cluster_test_runs_composes_settings_with_only_addresses_and_timeouts_changed():
    compose = containers()["airflow-worker"]
    test = cluster_settings(TEST_ADDRESSES, {"POSTGRES_PASSWORD": PASSWORD}, airflow_v3=True)
    assert set(test) == set(read_env_file()) | set(COMPOSE_URL_SETTINGS)
    for key, value in test.items():
        ours = compose[key]
        if key in CRASH_DETECTION:
            assert value == CRASH_DETECTION[key] and float(value) < float(ours), key
        elif value != ours:
            # A URL whose host is a Compose service, moved to the test's server: scheme, credentials, path kept.
            theirs, mine = urlsplit(ours), urlsplit(value)
            assert theirs.hostname in TEST_ADDRESSES, key
            assert f"{mine.hostname}:{mine.port}" == TEST_ADDRESSES[theirs.hostname], key
            same = ("scheme", "username", "password", "path", "query")
            assert [getattr(mine, part) for part in same] == [getattr(theirs, part) for part in same], key
    # The broker and both database URLs are among what moved; nothing else did.
    moved = {key for key, value in test.items() if value != compose[key]} - set(CRASH_DETECTION)
    assert moved == {"AIRFLOW__CELERY__BROKER_URL", *COMPOSE_URL_SETTINGS}


def test_airflow_2_gets_the_same_values_under_its_own_names():
    three = cluster_settings(TEST_ADDRESSES, {"POSTGRES_PASSWORD": PASSWORD}, airflow_v3=True)
    two = cluster_settings(TEST_ADDRESSES, {"POSTGRES_PASSWORD": PASSWORD}, airflow_v3=False)
    assert {AIRFLOW2_NAMES.get(key, key): value for key, value in three.items()} == two
    assert set(AIRFLOW2_NAMES) <= set(CRASH_DETECTION)


def test_an_override_of_an_option_the_file_does_not_set_is_refused():
    with pytest.raises(ValueError, match="AIRFLOW__CORE__PARALLELISM"):
        cluster_settings(TEST_ADDRESSES, {"POSTGRES_PASSWORD": PASSWORD}, overrides={"AIRFLOW__CORE__PARALLELISM": "1"})


def test_a_compose_variable_without_a_value_is_refused():
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        cluster_settings(TEST_ADDRESSES, {})


def test_every_option_is_one_the_installed_airflow_knows():
    # A misspelt option is ignored by Airflow without a word: the file would then set nothing.
    from airflow.configuration import conf
    from airflow.providers.celery.get_provider_info import get_provider_info

    known = {
        **{section: set(body.get("options", {})) for section, body in conf.configuration_description.items()},
        **{section: set(body["options"]) for section, body in get_provider_info()["config"].items()},
    }
    settings = cluster_settings(TEST_ADDRESSES, {"POSTGRES_PASSWORD": PASSWORD}, airflow_v3=celery_cluster.AIRFLOW_V3)
    for variable in settings:
        _, section, option = variable.split("__", 2)
        assert option.lower() in known.get(section.lower(), set()), variable
