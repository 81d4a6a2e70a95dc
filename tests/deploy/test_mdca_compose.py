"""deploy/mdca_compose.py, the image's entrypoint and the demo's emulator service, run for real on 127.0.0.1.

One host stands for the Compose network here. The emulator service runs as in its container (``mdca_compose.py
emulator``) with its public forwarders on 127.0.0.1 instead of 0.0.0.0 and on free ports (the ``MDCA_DEMO_*``
overrides); an "Airflow container" is the same host with its own loopback ports shifted, because the emulator already
holds the real ones here. Every hop that carries TLS is a real forwarder, and TLS is verified end to end against the
emulator's CA, whose certificate names 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from airflow_provider_mdca.config import load_collector_config, parse_collector_config
from airflow_provider_mdca.services import SERVICES
from deploy import mdca_compose
from tests.deploy.support import IMAGE_LOCK, MDCA_COMPOSE, parse_lock
from tests.service_table import SNAPSHOTS

PUBLIC_OFFSET = 10  # the emulator service's public ports: its own + 10 (production: + 10000)
AIRFLOW_SHIFT = 20  # an "Airflow container"'s loopback ports: the emulator's + 20 (production: the same ports)
SERVICE_GROUP = pytest.mark.xdist_group("deploy-emulator-service")


# -- helpers ----------------------------------------------------------------------------------------------------------


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Not the module-level generator: a plugin that reseeds it per test would hand two parallel workers the same ports.
_ports_random = random.SystemRandom()


def _worker_ports() -> range:
    """This xdist worker's share of 20000-29999: below the ephemeral range, so no client takes them.

    A block is checked free when it is picked, but a service binds it later (and the entrypoint test binds the +20
    ports later still), so two workers picking from one range could pick overlapping blocks in between. A worker runs
    its tests one at a time: within its own share, a block checked free stays free until its test uses it.
    """
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    share = 10_000 // workers
    low = 20_000 + (worker % workers) * share
    return range(low, low + share - AIRFLOW_SHIFT - 3)


def free_port_block() -> int:
    """A base port with base+0..2, +10..12 and +20..22 free, from this worker's share of the ports."""
    for _ in range(100):
        base = _ports_random.choice(_worker_ports())
        if all(bindable(base + shift + i) for shift in (0, PUBLIC_OFFSET, AIRFLOW_SHIFT) for i in range(3)):
            return base
    raise RuntimeError("no free block of ports on 127.0.0.1")


def ports_setting(base: int) -> str:
    return ",".join(f"{name}={base + i}" for i, name in enumerate(mdca_compose.EMULATOR_PORTS))


def health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # -I -S: the health check needs nothing beyond the standard library.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(MDCA_COMPOSE), "health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@dataclass
class EmulatorService:
    """``mdca_compose.py emulator`` running, as the ``mdca-emulator`` service does."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    state: Path
    base: int
    log: Path

    @property
    def ports(self) -> dict[str, int]:
        return {name: self.base + i for i, name in enumerate(mdca_compose.EMULATOR_PORTS)}

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.state / "emulator.json").read_text(encoding="utf-8"))
        return info

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while health(self.env).returncode != 0:
            assert self.process.poll() is None, self.log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, f"not healthy after {timeout}s: {self.log.read_text(encoding='utf-8')}"
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_service(state: Path, log: Path, base: int | None = None) -> EmulatorService:
    base = free_port_block() if base is None else base
    env = {
        **os.environ,
        "MDCA_DEMO": "1",
        "MDCA_DEMO_STATE_DIR": str(state),
        "MDCA_DEMO_PORTS": ports_setting(base),
        "MDCA_DEMO_PUBLIC_PORT_OFFSET": str(PUBLIC_OFFSET),
        "MDCA_DEMO_PUBLIC_BIND": "127.0.0.1",
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(MDCA_COMPOSE), "emulator"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    service = EmulatorService(process, env, state, base, log)
    try:
        service.wait_healthy()
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorService]:
    root = tmp_path_factory.mktemp("emulator-service")
    running = start_service(root / "state", root / "service.log")
    yield running
    assert running.stop() == 0


def via_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


_conn_ids = itertools.count()


def use_connection(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> str:
    conn_id = f"deploy_{os.getpid()}_{next(_conn_ids)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def first_alert(conn_id: str) -> dict[str, Any]:
    """A token, then one page of the alerts of an hour three hours ago, through the project's hook and client."""
    from airflow_provider_mdca.hooks.mdca import MdcaHook

    hook = MdcaHook(mdca_conn_id=conn_id)
    client = hook.get_conn()
    try:
        assert client.get_token()
        end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        return next(hook.fetch("alerts", end - timedelta(hours=1), end, page_size=5))
    finally:
        client.close()


DUMP_SCRIPT = """\
import json, os, signal, sys
with open(os.environ["DUMP_TO"] + ".tmp", "w") as out:
    json.dump({"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid()}, out)
os.replace(os.environ["DUMP_TO"] + ".tmp", os.environ["DUMP_TO"])
sys.stdin.read()  # the test is done with what this process started
me = str(os.getpid())
for entry in os.listdir("/proc"):
    try:
        with open(f"/proc/{entry}/stat") as stat:
            parent = stat.read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        continue
    if parent == me:
        os.kill(int(entry), signal.SIGTERM)
        os.waitpid(int(entry), 0)
"""


@dataclass
class Exec:
    """What the official image's /entrypoint would have received."""

    argv: list[str]
    env: dict[str, str]
    pid: int
    process: subprocess.Popen[str]
    #: The environment the entrypoint was started with.
    given: dict[str, str]
    #: What the entrypoint logged (once finished).
    stderr: str = ""

    def finish(self) -> None:
        """Let the target end (it stops what it started first) and collect the log."""
        _, self.stderr = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, self.stderr


def start_entrypoint(tmp_path: Path, args: list[str], env: dict[str, str]) -> Exec:
    """Run the image's ENTRYPOINT (``mdca_compose.py entrypoint ARGS``) with a target that records its exec."""
    target = tmp_path / "entrypoint"
    target.write_text(f"#!{sys.executable}\n{DUMP_SCRIPT}", encoding="utf-8")
    target.chmod(0o755)
    dump = tmp_path / "exec.json"
    env = {**env, "MDCA_AIRFLOW_ENTRYPOINT": str(target), "DUMP_TO": str(dump)}
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(MDCA_COMPOSE), "entrypoint", *args],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not dump.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the target never ran: {process.communicate(timeout=30)[1]}")
        time.sleep(0.05)
    seen = json.loads(dump.read_text(encoding="utf-8"))
    return Exec(seen["argv"], seen["env"], seen["pid"], process, env)


AIRFLOW_ARGS = ["celery", "worker", "--concurrency", "2", "a b", "--help", "--", "-x"]


def minimal_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    # LC_ALL set: Python would otherwise add LC_CTYPE under the C locale (PEP 538), which is not the entrypoint's doing.
    return {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MDCA_DEMO_STATE_DIR": str(state), **extra}


# -- the forwarder --------------------------------------------------------------------------------------------------


@pytest.fixture
def counting_server() -> Iterator[tuple[str, int]]:
    """Reads a connection to its end, then answers how many bytes it read, then closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            # A client may go away before the answer (the closing test does): that is its business.
            with conn, contextlib.suppress(OSError):
                total = 0
                while data := conn.recv(65536):
                    total += len(data)
                conn.sendall(f"read {total}".encode())

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[:2]
    server.shutdown(socket.SHUT_RDWR)
    server.close()


def test_the_forwarder_relays_both_ways_and_passes_half_closes_on(counting_server):
    forwarder = mdca_compose.Forwarder(("127.0.0.1", 0), counting_server).start()
    try:
        payload = os.urandom(3 * 1024 * 1024 + 7)
        with socket.create_connection(("127.0.0.1", forwarder.port), timeout=10) as client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)  # the server only answers once it sees the end
            answer = b"".join(iter(lambda: client.recv(65536), b""))
        assert answer == f"read {len(payload)}".encode()
    finally:
        forwarder.close()


def test_a_closed_forwarder_stops_accepting(counting_server):
    forwarder = mdca_compose.Forwarder(("127.0.0.1", 0), counting_server).start()
    with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5):
        pass
    forwarder.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", forwarder.port), timeout=5).close()


def test_a_forwarder_whose_target_is_down_cuts_the_client_at_once():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed = placeholder.getsockname()[:2]  # bound, never listening: connections are refused
        forwarder = mdca_compose.Forwarder(("127.0.0.1", 0), closed, connect_timeout=5).start()
        try:
            # The cut may even beat the end of connect(). A hang would time out, and fail.
            try:
                with socket.create_connection(("127.0.0.1", forwarder.port), timeout=10) as client:
                    data = client.recv(1)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            assert data == b""
        finally:
            forwarder.close()


# -- the demo's collector configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 11, 28, 13, 47, 12, 345_000, tzinfo=timezone.utc),
        datetime(2026, 11, 28, 18, 0, tzinfo=timezone.utc),  # now - 6 h is on every period's boundary
        datetime(2026, 3, 1, 2, 59, 59, tzinfo=timezone.utc),  # across a month start
        datetime.now(timezone.utc),
    ],
    ids=["mid-hour", "on-boundaries", "month-start", "now"],
)
def test_the_demo_configuration_is_valid_and_its_windows_start_six_hours_back(now):
    config = parse_collector_config(mdca_compose.demo_collector_config(now), source="demo")
    assert set(config.enabled) == set(SERVICES)
    for name, service in config.enabled.items():
        period = mdca_compose.DEMO_SNAPSHOT_PERIOD if name in SNAPSHOTS else mdca_compose.DEMO_PERIOD
        start = service.historic_date_utc
        assert service.period == period
        assert start <= now - timedelta(hours=6) < start + period, name
        assert start.timestamp() % period.total_seconds() == 0, f"{name} starts off a period boundary"
        assert service.staging_url is None, "the demo stages where the Compose file says (the shared volume)"


def test_the_demo_configuration_overrides_only_the_snapshots():
    # The entrypoint cannot import the registry: its copy of the snapshot names must be the registry's, and every
    # other service (one the collector gains too) takes the defaults' windows.
    assert set(mdca_compose.DEMO_SNAPSHOTS) == set(SNAPSHOTS) == {n for n, s in SERVICES.items() if not s.windowed}
    data = mdca_compose.demo_collector_config(datetime(2026, 11, 28, 13, 47, tzinfo=timezone.utc))
    assert set(data["services"]) == set(SNAPSHOTS)
    assert data["defaults"]["period"] == mdca_compose.DEMO_PERIOD.total_seconds()


# -- health ---------------------------------------------------------------------------------------------------------


def test_health_fails_without_emulator_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDCA_DEMO_STATE_DIR", str(tmp_path))
    assert mdca_compose.main(["health"]) == 1
    assert "emulator.json not written yet" in capsys.readouterr().err


def test_health_fails_while_nothing_answers(tmp_path, monkeypatch, capsys):
    (tmp_path / "emulator.json").write_text("{}", encoding="utf-8")
    base = free_port_block()
    monkeypatch.setenv("MDCA_DEMO_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MDCA_DEMO_PORTS", ports_setting(base))
    assert mdca_compose.main(["health"]) == 1
    assert f"port {base} does not accept connections" in capsys.readouterr().err


# -- the emulator service -------------------------------------------------------------------------------------------


@SERVICE_GROUP
def test_the_emulator_service_is_healthy_and_writes_the_demo_configuration(service):
    assert health(service.env).returncode == 0
    assert stat.S_IMODE((service.state / "emulator.json").stat().st_mode) == 0o600
    now = datetime.now(timezone.utc)
    config = load_collector_config(service.state / "mdca_collector.yaml")  # JSON written, read as YAML
    for name, svc in config.enabled.items():
        assert svc.historic_date_utc <= now - timedelta(hours=6) < svc.historic_date_utc + svc.period, name
    info = service.info()
    assert urlsplit(info["tenants"][0]["mdca_url"]).port == service.ports["mdca"]
    assert info["devo"]["relay_port"] == service.ports["devo_relay"]


@SERVICE_GROUP
def test_the_emulator_services_log_shows_no_credential(service):
    info = service.info()
    tenant, devo = info["tenants"][0], info["devo"]
    log = service.log.read_text(encoding="utf-8")
    assert "forwarding" in log or "demo collector configuration" in log  # the log is the service's
    for secret in (tenant["client_secret"], tenant["files_access_token"], devo["token"]):
        assert secret not in log


@SERVICE_GROUP
def test_the_demo_connections_get_a_token_a_page_and_a_delivery_through_forwarders(service, monkeypatch):
    from airflow_provider_mdca.hooks.devo import DevoHook

    info = service.info()
    conns = mdca_compose.connections(info)
    mdca, devo = conns["mdca_default"], conns["devo_default"]
    assert Path(mdca["extra"]["verify"]).read_text(encoding="ascii").startswith("-----BEGIN CERTIFICATE-----")
    # The path of an Airflow container: its loopback port -> the service's public port -> the emulator.
    public = {name: port + PUBLIC_OFFSET for name, port in service.ports.items()}
    hops = [mdca_compose.Forwarder(("127.0.0.1", 0), ("127.0.0.1", public[name])).start() for name in public]
    try:
        mdca_hop, relay_hop = hops[0], hops[1]
        mdca = {**mdca, "host": via_port(mdca["host"], mdca_hop.port)}
        mdca["extra"] = {**mdca["extra"], "token_url": via_port(mdca["extra"]["token_url"], mdca_hop.port)}
        record = first_alert(use_connection(monkeypatch, mdca))
        assert record["_id"]

        tag = "my.app.deploy.check"
        hook = DevoHook(devo_conn_id=use_connection(monkeypatch, {**devo, "port": relay_hop.port}))
        try:
            assert hook.send(tag, [{"n": 1}, {"n": 2}]).events == 2
        finally:
            hook.close()
        stored = Path(info["devo"]["store_dir"]) / f"{tag}.ndjson"
        deadline = time.monotonic() + 10
        while not (stored.exists() and len(stored.read_bytes().splitlines()) == 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(stored.read_bytes().splitlines()) == 2
    finally:
        for hop in hops:
            hop.close()


@SERVICE_GROUP
def test_the_entrypoint_in_the_demo_points_the_connections_at_the_emulator_then_execs(service, tmp_path, monkeypatch):
    env = minimal_env(
        tmp_path,
        MDCA_DEMO="1",
        MDCA_DEMO_STATE_DIR=str(service.state),
        MDCA_DEMO_EMULATOR_HOST="127.0.0.1",
        # This "container"'s loopback ports are shifted (the emulator holds the real ones on this host), and the
        # offset is adjusted to land on the service's public ports: base+20+i -> base+10+i.
        MDCA_DEMO_PORTS=ports_setting(service.base + AIRFLOW_SHIFT),
        MDCA_DEMO_PUBLIC_PORT_OFFSET=str(PUBLIC_OFFSET - AIRFLOW_SHIFT),
        MDCA_DEMO_WAIT_SECONDS="10",
    )
    started = start_entrypoint(tmp_path, AIRFLOW_ARGS, env)
    try:
        assert started.pid == started.process.pid, "exec'd in place: dumb-init's signals reach Airflow"
        assert started.argv[1:] == AIRFLOW_ARGS
        demo = mdca_compose.demo_environment(service.state, service.info())
        assert set(demo) == {"AIRFLOW_CONN_MDCA_DEFAULT", "AIRFLOW_CONN_DEVO_DEFAULT", "MDCA_COLLECTOR_CONFIG"}
        assert started.env == {**started.given, **demo}
        assert Path(started.env["MDCA_COLLECTOR_CONFIG"]).is_file()

        # The forwarder the entrypoint left running carries the demo connection, TLS verified end to end.
        mdca = json.loads(started.env["AIRFLOW_CONN_MDCA_DEFAULT"])
        own_port = service.ports["mdca"] + AIRFLOW_SHIFT
        mdca["host"] = via_port(mdca["host"], own_port)
        mdca["extra"]["token_url"] = via_port(mdca["extra"]["token_url"], own_port)
        assert first_alert(use_connection(monkeypatch, mdca))["_id"]
    finally:
        started.finish()


def test_a_stopped_emulator_service_turns_unhealthy_and_a_restart_keeps_the_demo_windows(tmp_path):
    state = tmp_path / "state"
    first = start_service(state, tmp_path / "service.log")
    assert first.stop() == 0
    assert health(first.env).returncode == 1, "emulator.json is still there, but nothing answers"
    # As if the first start had been a day ago: its windows, not today's, are the DAGs' start dates.
    config = state / "mdca_collector.yaml"
    yesterday = mdca_compose.demo_collector_config(datetime.now(timezone.utc) - timedelta(days=1))
    config.write_text(json.dumps(yesterday), encoding="utf-8")
    second = start_service(state, tmp_path / "service.log", base=first.base)
    try:
        assert json.loads(config.read_text(encoding="utf-8")) == yesterday, "a restart keeps the DAGs' start dates"
    finally:
        assert second.stop() == 0


# -- the entrypoint without the demo --------------------------------------------------------------------------------


def test_without_the_demo_the_entrypoint_execs_the_target_unchanged(tmp_path):
    env = minimal_env(tmp_path)
    started = start_entrypoint(tmp_path, AIRFLOW_ARGS, env)
    started.finish()
    assert started.pid == started.process.pid
    assert started.argv == [str(tmp_path / "entrypoint"), *AIRFLOW_ARGS]
    assert started.env == started.given
    assert not [key for key in started.env if key.startswith("AIRFLOW_CONN_")]


def demo_env_for(service: EmulatorService, tmp_path: Path, **extra: str) -> dict[str, str]:
    """An "Airflow container" of the demo's network, as in the test above, without or with the switch."""
    return minimal_env(
        tmp_path,
        MDCA_DEMO_STATE_DIR=str(service.state),
        MDCA_DEMO_EMULATOR_HOST="127.0.0.1",
        MDCA_DEMO_PORTS=ports_setting(service.base + AIRFLOW_SHIFT),
        MDCA_DEMO_PUBLIC_PORT_OFFSET=str(PUBLIC_OFFSET - AIRFLOW_SHIFT),
        MDCA_DEMO_WAIT_SECONDS="10",
        **extra,
    )


@SERVICE_GROUP
@pytest.mark.parametrize("switch", [None, "", "0"], ids=["unset", "empty", "zero"])
def test_without_the_switch_even_a_running_emulator_leaves_the_connections_alone(service, tmp_path, switch):
    # Issue 14, item 18: the demo was detected (an emulator.json plus a host answering as mdca-emulator), so a
    # production container could be pointed at emulators. Now only MDCA_DEMO=1 wires it.
    extra = {} if switch is None else {"MDCA_DEMO": switch}
    env = demo_env_for(service, tmp_path, AIRFLOW_CONN_MDCA_DEFAULT='{"conn_type": "mdca"}', **extra)
    started = start_entrypoint(tmp_path, ["scheduler"], env)
    started.finish()
    assert started.argv[1:] == ["scheduler"]
    assert started.env == started.given, "production starts with its own connections and configuration"
    assert "emulator.json ignored: MDCA_DEMO is not 1" in started.stderr


def run_entrypoint(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the entrypoint to its end, with a target that records whether it was ever reached."""
    target = tmp_path / "entrypoint"
    reached = tmp_path / "reached"
    target.write_text(f"#!/bin/sh\ntouch {reached}\n", encoding="utf-8")
    target.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(MDCA_COMPOSE), "entrypoint", "scheduler"],
        env={**env, "MDCA_AIRFLOW_ENTRYPOINT": str(target)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, reached


def test_with_the_switch_but_no_emulator_airflow_does_not_start_on_other_connections(tmp_path):
    # The switch asks for the demo: a stale emulator.json with nothing answering is not a reason to go on as production.
    env = minimal_env(
        tmp_path,
        MDCA_DEMO="1",
        MDCA_DEMO_EMULATOR_HOST="127.0.0.1",
        MDCA_DEMO_PORTS=ports_setting(free_port_block()),
        MDCA_DEMO_WAIT_SECONDS="1",
        AIRFLOW_CONN_MDCA_DEFAULT='{"conn_type": "mdca", "host": "https://tenant.example/"}',
    )
    (Path(env["MDCA_DEMO_STATE_DIR"]) / "emulator.json").write_text('{"tenants": []}', encoding="utf-8")
    result, reached = run_entrypoint(tmp_path, env)
    assert result.returncode == 1 and not reached.exists()
    assert "MDCA_DEMO=1 but the demo's emulator (127.0.0.1," in result.stderr
    assert "MDCA_DEMO=1 docker compose --profile demo up -d" in result.stderr


@pytest.mark.parametrize("value", ["true", "yes", "on", "2", "demo"])
def test_a_switch_that_reads_two_ways_is_refused(tmp_path, value):
    result, reached = run_entrypoint(tmp_path, minimal_env(tmp_path, MDCA_DEMO=value))
    assert result.returncode == 2 and not reached.exists()
    assert f"MDCA_DEMO must be 1 (the demo) or 0 (not), got {value!r}" in result.stderr


@pytest.mark.parametrize("switch", [None, "0", "yes"], ids=["unset", "zero", "ambiguous"])
def test_the_emulator_service_refuses_to_run_without_the_switch(tmp_path, switch):
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MDCA_DEMO_STATE_DIR": str(tmp_path / "state")}
    if switch is not None:
        env["MDCA_DEMO"] = switch
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(MDCA_COMPOSE), "emulator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "MDCA_DEMO" in result.stderr
    assert not (tmp_path / "state").exists(), "nothing written, nothing started"


def test_the_switch_reads_1_as_on_and_only_empty_or_0_as_off():
    assert mdca_compose.demo_requested({"MDCA_DEMO": "1"}) is True
    assert mdca_compose.demo_requested({"MDCA_DEMO": " 1 "}) is True
    assert not any(mdca_compose.demo_requested(env) for env in ({}, {"MDCA_DEMO": ""}, {"MDCA_DEMO": "0"}))
    with pytest.raises(ValueError, match="MDCA_DEMO must be 1"):
        mdca_compose.demo_requested({"MDCA_DEMO": "True"})


# -- check-image ----------------------------------------------------------------------------------------------------


def check_image(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MDCA_COMPOSE), "check-image", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_image_accepts_this_environment_only_at_the_locked_airflow():
    import airflow

    locked = next(pin.version for pin in parse_lock(IMAGE_LOCK) if pin.name == "apache-airflow")
    result = check_image("--lock", str(IMAGE_LOCK), "--import", "airflow_provider_mdca.dag_factory")
    if airflow.__version__ == locked:
        assert result.returncode == 0, result.stderr
        assert f"image OK: apache-airflow {locked}" in result.stderr
    else:  # the Airflow 2 environment: not what the image runs
        assert result.returncode == 1
        assert f"apache-airflow {airflow.__version__} installed, the lock pins {locked}" in result.stderr


def test_check_image_names_every_problem(tmp_path):
    import airflow

    lock = tmp_path / "image.lock.txt"
    lock.write_text("apache-airflow==1.0.0 \\\n    --hash=sha256:00\n", encoding="utf-8")
    result = check_image(
        *("--lock", str(lock), "--import", "json", "--import", "airflow_provider_mdca.no_such_module"),
        *("--absent", "mdca_emulator", "--absent", "mdca_no_such_module"),
    )
    assert result.returncode == 1
    assert f"apache-airflow {airflow.__version__} installed, the lock pins 1.0.0" in result.stderr
    assert "import airflow_provider_mdca.no_such_module: ModuleNotFoundError" in result.stderr
    assert "import json" not in result.stderr
    # The emulators are installed here (make env), never in the production image: --absent names them.
    assert "mdca_emulator is installed: it must not be in this image" in result.stderr
    assert "mdca_no_such_module" not in result.stderr
