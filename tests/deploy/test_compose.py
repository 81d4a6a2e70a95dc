"""docker-compose.yaml and .env.example: valid for Compose, and the deployment the README promises.

No Docker here: the file is checked against the Compose specification's JSON schema (vendored by check-jsonschema,
no network), and what the schema cannot see is checked on the file as Compose resolves it (anchors and merge keys,
then ``${...}`` from a ``.env`` made by ``deploy/new_env.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_provider_mdca.config import load_collector_config
from deploy import new_env
from tests.deploy.support import (
    COMPOSE,
    DOCKERFILE,
    ENV_EXAMPLE,
    REPO,
    InterpolationError,
    dockerfile_stages,
    documented_keys,
    fixed_host_ports,
    interpolate,
    mounts,
    parse_env_file,
    uncomment,
    variables,
    with_env_files,
)

NOT_AIRFLOW = {"postgres", "redis", "mdca-emulator"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
# What must be identical in every Airflow container: Airflow 3's components authenticate each other with these.
SHARED_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__MDCA__STAGING_URL",
    "MDCA_COLLECTOR_CONFIG",
)
SECRETS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
OBJECT_STORES = {"abfs", "abfss", "az", "adl", "wasb", "wasbs", "s3", "s3a", "gs", "gcs"}
CONNECTIONS = ("AIRFLOW_CONN_MDCA_DEFAULT", "AIRFLOW_CONN_DEVO_DEFAULT")
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def raw_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def user_env(*uncommented: str) -> dict[str, str]:
    """The ``.env`` a user gets from ``python3 deploy/new_env.py``, optionally with documented options switched on."""
    text = uncomment(ENV_EXAMPLE.read_text(encoding="utf-8"), uncommented)
    return parse_env_file(new_env.fill(text))


def resolved(env: dict[str, str]) -> dict[str, Any]:
    """The Compose file as Compose resolves it: ``${...}`` from ``env``, each service's ``env_file`` folded in."""
    return with_env_files(interpolate(raw_compose(), env))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return resolved(user_env())


def airflow_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in data["services"].items() if name not in NOT_AIRFLOW}


def dependencies(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``depends_on`` in its long form (the short form is a list of names, each ``service_started``)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: how or {"condition": "service_started"} for name, how in deps.items()}


def one_shot(data: dict[str, Any]) -> set[str]:
    """Services others wait for to *complete*: they run once and exit (no health check to have)."""
    return {
        target
        for svc in data["services"].values()
        for target, how in dependencies(svc).items()
        if how.get("condition") == "service_completed_successfully"
    }


# -- the Compose specification --------------------------------------------------------------------------------------


def test_the_compose_file_is_valid_against_the_compose_specification():
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_key(tmp_path):
    text = COMPOSE.read_text(encoding="utf-8")
    # A typo Compose itself would refuse: the worker's health check spelt wrong.
    broken, count = re.subn(r"(?m)^(  airflow-worker:\n(?:    .*\n|\n)*?    )healthcheck:", r"\1healtcheck:", text)
    assert count == 1
    (tmp_path / "docker-compose.yaml").write_text(broken, encoding="utf-8")
    result = check_compose_schema(tmp_path / "docker-compose.yaml")
    assert result.returncode != 0
    assert "healtcheck" in result.stdout + result.stderr


# -- the services ---------------------------------------------------------------------------------------------------


def test_it_has_the_components_of_airflows_own_compose_file(compose):
    assert set(compose["services"]) == AIRFLOW_SERVICES | NOT_AIRFLOW
    commands = {name: compose["services"][name].get("command") for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    assert compose["services"]["mdca-emulator"]["profiles"] == ["demo"]
    assert all("profiles" not in compose["services"][name] for name in AIRFLOW_SERVICES | {"postgres", "redis"})


def test_every_dependency_exists_and_its_condition_can_be_met(compose):
    services = compose["services"]
    for name, svc in services.items():
        for target, how in dependencies(svc).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            assert target != name
            condition = how.get("condition", "service_started")
            if condition == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), f"{name} waits for {target}'s health"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{name} waits for {target} to exit"
            if "profiles" in services[target] and "profiles" not in svc:
                # Without the profile the target does not exist: only an optional dependency lets `up` start.
                assert how.get("required") is False, f"{name} needs {target}, which only runs with its profile"


def test_the_dependencies_have_no_cycle(compose):
    graph = {name: set(dependencies(svc)) for name, svc in compose["services"].items()}
    order: list[str] = []
    while graph:
        ready = sorted(name for name, deps in graph.items() if deps <= set(order))
        assert ready, f"dependency cycle among {sorted(graph)}"
        order.extend(ready)
        for name in ready:
            del graph[name]
    assert order[:2] == ["postgres", "redis"]


def test_every_long_running_service_has_a_health_check(compose):
    assert one_shot(compose) == {"airflow-init"}
    for name, svc in compose["services"].items():
        if name in one_shot(compose):
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert svc.get("restart") in ("always", "unless-stopped"), name


def test_every_airflow_service_runs_the_projects_image(compose):
    services = compose["services"]
    images = {name: (svc.get("image"), json.dumps(svc.get("build"), sort_keys=True)) for name, svc in services.items()}
    expected = images["airflow-apiserver"]
    assert expected[0] == "airflow-provider-mdca:0.1.0"
    assert json.loads(expected[1]) == {"context": ".", "target": "production"}
    for name in AIRFLOW_SERVICES:
        assert images[name] == expected, name


def test_only_the_demos_emulator_runs_the_image_with_the_emulators(compose):
    stages = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
    names = [stage.name for stage in stages]
    # The production image is the Dockerfile's default target too (the last stage): `docker build .` gives it.
    assert names[-1] == "production"
    emulator = compose["services"]["mdca-emulator"]
    assert emulator["build"] == {"context": ".", "target": "demo-emulator"} and "demo-emulator" in names
    # Its own tag: Compose would otherwise build two targets into one image name.
    assert emulator["image"] == "airflow-provider-mdca-emulator:0.1.0"
    assert emulator["image"] != compose["services"]["airflow-apiserver"]["image"]


@pytest.mark.parametrize("setting", SHARED_SETTINGS)
def test_every_airflow_service_gets_the_same_setting(compose, setting):
    values = {name: svc["environment"].get(setting) for name, svc in airflow_services(compose).items()}
    assert set(values) == AIRFLOW_SERVICES
    assert len(set(values.values())) == 1, values
    assert values["airflow-worker"], f"{setting} is empty"


def test_no_airflow_setting_differs_between_services(compose):
    # Beyond the list above: any AIRFLOW__ or connection variable, so that a new one cannot drift either.
    envs = [svc["environment"] for svc in airflow_services(compose).values()]
    keys = {key for env in envs for key in env if key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "MDCA_"))}
    for key in sorted(keys):
        assert len({env.get(key) for env in envs}) == 1, key


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_come_only_from_env_and_compose_refuses_to_start_without_them(secret):
    for name, svc in airflow_services(raw_compose()).items():
        assert variables(str(svc["environment"][secret])) == {secret: ":?"}, name
    env = user_env()
    env[secret] = ""
    with pytest.raises(InterpolationError, match=secret):
        resolved(env)


def test_the_components_address_each_other_by_service_name(compose):
    services = compose["services"]
    env = services["airflow-worker"]["environment"]
    database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    postgres = services["postgres"]["environment"]
    assert database.hostname == "postgres"
    assert (database.username, database.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    assert urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).password == postgres["POSTGRES_PASSWORD"]
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    execution_api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert services[execution_api.hostname]["command"] == "api-server"
    assert execution_api.port == 8080
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_every_airflow_service_mounts_the_dags_and_the_collector_configuration(compose):
    for name, svc in airflow_services(compose).items():
        binds = {m.target: m for m in mounts(svc, compose["volumes"])}
        dags = binds["/opt/airflow/dags"]
        assert (REPO / dags.source / "mdca_collector.py").is_file(), name
        config = binds[svc["environment"]["MDCA_COLLECTOR_CONFIG"]]
        assert not config.named and (REPO / config.source).is_file(), name
        assert dags.read_only and config.read_only, name
    load_collector_config(REPO / config.source)  # the mounted file is a valid configuration


# -- scaling the worker, staging ------------------------------------------------------------------------------------


def test_the_worker_can_be_scaled(compose):
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker
    assert fixed_host_ports(worker) == []
    assert "hostname" not in worker  # the health check pings celery@$HOSTNAME: each replica its own
    assert "celery@$${HOSTNAME}" in COMPOSE.read_text(encoding="utf-8")


def test_the_fixed_port_check_sees_a_fixed_port(compose):
    assert fixed_host_ports(compose["services"]["airflow-apiserver"]) == ["127.0.0.1:8080:8080"]


@pytest.mark.parametrize(
    "options",
    [(), ("AIRFLOW__MDCA__STAGING_URL", "AIRFLOW_CONN_MDCA_STAGING")],
    ids=["default-volume", "documented-object-store"],
)
def test_the_staging_every_worker_sees_is_shared_storage(options):
    compose = resolved(user_env(*options))
    services = airflow_services(compose)
    urls = {svc["environment"]["AIRFLOW__MDCA__STAGING_URL"] for svc in services.values()}
    assert len(urls) == 1
    url = urls.pop()
    # The collector configuration could override the URL per service: the mounted one leaves it to the variable.
    worker = services["airflow-worker"]
    config = worker["environment"]["MDCA_COLLECTOR_CONFIG"]
    mounted = REPO / next(m.source for m in mounts(worker, compose["volumes"]) if m.target == config)
    assert all(s.staging_url is None for s in load_collector_config(mounted).services.values())
    scheme = urlsplit(url).scheme
    if scheme == "file":
        path = PurePosixPath(urlsplit(url).path)
        for name, svc in services.items():
            shared = [
                m
                for m in mounts(svc, compose["volumes"])
                if m.named and (path == PurePosixPath(m.target) or PurePosixPath(m.target) in path.parents)
            ]
            assert shared, f"{name}: {url} is not on a named volume, so each container would stage on its own"
            assert not shared[0].read_only, name
            assert shared[0].source == "mdca-staging", name
    else:
        assert scheme in OBJECT_STORES, url
        conns = {svc["environment"].get("AIRFLOW_CONN_MDCA_STAGING") for svc in services.values()}
        assert len(conns) == 1 and conns.pop(), "the object store's connection must reach every Airflow service"


@pytest.mark.parametrize("switch", [None, "1"], ids=["production", "demo"])
def test_the_demo_is_one_explicit_switch_every_airflow_container_and_the_emulator_see(switch):
    # Issue 14, item 18: the demo was detected from the state volume and a host name; now MDCA_DEMO says so.
    env = user_env() if switch is None else user_env("COMPOSE_PROFILES", "MDCA_DEMO")  # the documented lines
    assert env.get("MDCA_DEMO") == switch and env.get("COMPOSE_PROFILES") == (switch and "demo")
    compose = resolved(env)
    services = {**airflow_services(compose), "mdca-emulator": compose["services"]["mdca-emulator"]}
    assert {name: svc["environment"]["MDCA_DEMO"] for name, svc in services.items()} == dict.fromkeys(
        services, switch or "0"
    )
    assert compose["services"]["mdca-emulator"]["profiles"] == ["demo"]
    documented = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert "# MDCA_DEMO=1" in documented and "# COMPOSE_PROFILES=demo" in documented
    assert "MDCA_DEMO=1 docker compose --profile demo up -d" in COMPOSE.read_text(encoding="utf-8")


def test_airflow_init_leaves_the_staging_volume_to_airflow_uid_alone(compose):
    # Retention refuses a group or world writable staging root (issue 14, item 14): 0770 would stop every clean-up.
    script = (REPO / "deploy" / "airflow-init.sh").read_text(encoding="utf-8")
    staging = PurePosixPath(urlsplit(compose["x-airflow-common"]["environment"]["AIRFLOW__MDCA__STAGING_URL"]).path)
    modes = {
        PurePosixPath(path): mode
        for mode, paths in re.findall(r"^chmod (0[0-7]{3}) (.+)$", script, flags=re.MULTILINE)
        for path in paths.split()
    }
    assert modes[staging] == "0700"
    # Every Airflow container runs as that one user (airflow-init, which sets the modes, as root).
    users = {svc["user"] for name, svc in airflow_services(compose).items() if name != "airflow-init"}
    assert users == {"50000:0"}


def test_a_staging_path_without_a_shared_volume_would_be_caught():
    compose = resolved({**user_env(), "AIRFLOW__MDCA__STAGING_URL": "file:///opt/airflow/local-staging"})
    path = PurePosixPath("/opt/airflow/local-staging")
    worker = compose["services"]["airflow-worker"]
    assert not [m for m in mounts(worker, compose["volumes"]) if m.named and PurePosixPath(m.target) in path.parents]


# -- .env.example ---------------------------------------------------------------------------------------------------


def test_env_example_documents_every_variable_the_compose_file_uses():
    used = set(variables(COMPOSE.read_text(encoding="utf-8")))
    assert {"POSTGRES_PASSWORD", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_UID"} <= used  # the scanner finds them
    used -= {"HOSTNAME"}  # $${HOSTNAME}: escaped, the container's own variable
    missing = used - documented_keys(ENV_EXAMPLE.read_text(encoding="utf-8"))
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_every_required_variable_is_a_key_of_env_example():
    required = {name for name, op in variables(COMPOSE.read_text(encoding="utf-8")).items() if op == ":?"}
    assert set(SECRETS) | {"POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"} <= required
    keys = set(parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert required <= keys, f"required but not keys of .env.example: {sorted(required - keys)}"


def test_compose_resolves_with_the_env_new_env_writes_and_not_with_the_bare_example():
    resolved(user_env())
    with pytest.raises(InterpolationError):
        resolved(parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8")))


@pytest.mark.parametrize(("variable", "conn_type"), [(CONNECTIONS[0], "mdca"), (CONNECTIONS[1], "devo")])
def test_env_example_shows_each_connection_with_placeholders_only(variable, conn_type):
    value = parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))[variable]
    conn = json.loads(value)
    assert conn["conn_type"] == conn_type

    def leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
        if isinstance(node, dict):
            return [leaf for key, item in node.items() for leaf in leaves(item, f"{path}.{key}".strip("."))]
        return [(path, node)]

    secret_words = ("password", "secret", "token", "key", "cert", "chain")
    for path, leaf in leaves(conn):
        if path in ("conn_type", "extra.transport", "port"):
            continue
        assert isinstance(leaf, str) and re.search(r"<[^<>]+>", leaf), (
            f"{variable} {path}: {leaf!r} is not a placeholder"
        )
        if any(word in path for word in secret_words):
            assert re.fullmatch(r"<[^<>]+>", leaf), f"{variable} {path}: a secret must be a placeholder only"
    # Every connection variable reaches every Airflow container.
    for name, svc in airflow_services(raw_compose()).items():
        assert svc["environment"][variable] == f"${{{variable}:-}}", name


def test_env_example_holds_no_secret_value():
    example = parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))
    for key in new_env.GENERATORS:
        assert example[key] == "", f"{key} must be empty in .env.example (new_env.py fills it)"
    for key, value in example.items():
        if key in CONNECTIONS:
            value = re.sub(r"<[^<>]*>", "", value)
        assert not re.search(r"[A-Za-z0-9+/_=-]{24,}", value), f"{key} looks like a real secret"


def test_an_empty_connection_variable_leaves_the_connection_to_airflows_database(monkeypatch):
    # The Compose file passes ${AIRFLOW_CONN_MDCA_DEFAULT:-}: unset in .env, the container sees it empty.
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    backend = EnvironmentVariablesBackend()
    monkeypatch.setenv("AIRFLOW_CONN_MDCA_DEFAULT", "")
    assert backend.get_connection("mdca_default") is None
    monkeypatch.setenv("AIRFLOW_CONN_MDCA_DEFAULT", json.dumps({"conn_type": "mdca", "host": "https://h/"}))
    assert backend.get_connection("mdca_default").conn_type == "mdca"


def test_airflow_init_creates_the_pools_of_the_mounted_collector_config(compose):
    # Each tenant of a multi-tenant config has its own pool: the init creates what the config names, not mdca_api alone.
    script = (REPO / "deploy" / "airflow-init.sh").read_text(encoding="utf-8")
    assert re.search(r"^mdca-collector setup$", script, flags=re.MULTILINE)
    init = compose["services"]["airflow-init"]
    config = compose["x-airflow-common"]["environment"]["MDCA_COLLECTOR_CONFIG"]
    assert any(volume.endswith(f":{config}:ro") for volume in init["volumes"])
