"""The Compose deployment's helpers, run inside the image (``/opt/mdca/deploy/mdca_compose.py``). Standard library only.

Subcommands:

``entrypoint ARGS...``
    The image's ENTRYPOINT (under dumb-init) for every Airflow container. Without the demo it only hands over to the
    official image's ``/entrypoint ARGS...``, whatever the state volume holds. The demo is opted into, never
    detected: only with ``MDCA_DEMO=1`` (set in ``.env`` beside ``COMPOSE_PROFILES=demo``, or on the command line) it
    waits for the ``mdca-emulator`` service (its ``emulator.json`` in the shared state volume, its port answering),
    starts the loopback forwarder below, sets ``AIRFLOW_CONN_MDCA_DEFAULT`` / ``AIRFLOW_CONN_DEVO_DEFAULT`` from
    ``emulator.json`` and points ``MDCA_COLLECTOR_CONFIG`` at the demo's collector configuration, then hands over;
    if the emulator never answers it exits 1 rather than start with other connections. Any other value of
    ``MDCA_DEMO`` than ``1``, ``0`` or empty is refused.

``emulator``
    The ``mdca-emulator`` service: writes the demo's collector configuration once, forwards the container's public
    ports to the emulator's loopback ones, and runs ``mdca-emulator`` with fixed ports in the state directory. Only
    the demo's emulator image (the Dockerfile's ``demo-emulator`` target) has the emulator installed. Refuses to run
    without ``MDCA_DEMO=1``: the ``demo`` profile alone would leave the Airflow containers on their own connections.

``forward LISTEN=TARGET...``
    TCP forwarding, ``host:port=host:port`` pairs, both directions, half-closes passed on.

``health``
    The ``mdca-emulator`` service's health check: ``emulator.json`` written, and every emulator port and its public
    forwarder accepting.

``check-image --lock FILE [--import MODULE...] [--absent MODULE...]``
    Run once by the Dockerfile for each image: Airflow is still the version the lock pins, the provider is
    registered, the modules the Compose file relies on import, and those that must not ship there (the emulators, in
    the production image) are not installed.

Why forwarders: ``mdca-emulator`` listens on 127.0.0.1 only and its TLS certificate names 127.0.0.1 and localhost,
so no other container could reach it or verify it by a service name. The emulator's container forwards
``0.0.0.0:<port + 10000>`` to ``127.0.0.1:<port>``, and each Airflow container forwards its own ``127.0.0.1:<port>``
to ``mdca-emulator:<port + 10000>``: the URLs in ``emulator.json`` (``https://127.0.0.1:<port>``) are then right in
every container, and TLS is verified end to end (the forwarders carry bytes, they never terminate TLS). Ports are
fixed, and the emulator derives its credentials from the tenant id and the Devo domain, so the demo connections are
the same on every run.

Environment: ``MDCA_DEMO``, the switch (``1`` for the demo; default off). Each of the others has a production
default; the tests set them to run beside other services on one host: ``MDCA_DEMO_STATE_DIR``
(``/opt/mdca/emulator``), ``MDCA_DEMO_EMULATOR_HOST`` (``mdca-emulator``), ``MDCA_DEMO_WAIT_SECONDS`` (20),
``MDCA_DEMO_PORTS`` (``mdca=8443,devo_relay=6514,devo_http=8444``), ``MDCA_DEMO_PUBLIC_PORT_OFFSET`` (10000),
``MDCA_DEMO_PUBLIC_BIND`` (``0.0.0.0``), ``MDCA_AIRFLOW_ENTRYPOINT`` (``/entrypoint``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_PERIOD",
    "DEMO_SWITCH",
    "DEMO_SNAPSHOT_PERIOD",
    "DEMO_SNAPSHOTS",
    "EMULATOR_PORTS",
    "PUBLIC_PORT_OFFSET",
    "Forwarder",
    "connections",
    "demo_collector_config",
    "demo_environment",
    "demo_requested",
    "main",
]

#: The emulator's loopback ports: MDCA + Entra ID (HTTPS), the Devo relay (mutual TLS), Devo's HTTP API.
EMULATOR_PORTS: dict[str, int] = {"mdca": 8443, "devo_relay": 6514, "devo_http": 8444}
#: The emulator's container publishes ``<port> + PUBLIC_PORT_OFFSET`` on the Compose network.
PUBLIC_PORT_OFFSET = 10000
#: The demo's windows, as ``make demo``'s, starting six hours before the emulator first starts, so that
#: ``docker compose up`` shows runs within minutes: an hour for every service (the configuration's defaults, so a
#: service the collector gains is in the demo as it is) ...
DEMO_PERIOD = timedelta(hours=1)
#: ... except the snapshots, read whole: one six-hour window. Their names are written here because this script runs
#: with the standard library only (``python -I -S``, before Airflow's environment is set up), so it cannot import the
#: provider's registry (``airflow_provider_mdca.services``); tests/deploy checks these are the registry's snapshots.
DEMO_SNAPSHOT_PERIOD = timedelta(hours=6)
DEMO_SNAPSHOTS: tuple[str, ...] = ("data_enrichment", "entities")
DEMO_HISTORY = timedelta(hours=6)
DEMO_CONFIG_NAME = "mdca_collector.yaml"
INFO_NAME = "emulator.json"

_CHUNK = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)


#: The switch that opts a container into the demo: ``MDCA_DEMO=1``.
DEMO_SWITCH = "MDCA_DEMO"
_DEMO_HOW = "MDCA_DEMO=1 docker compose --profile demo up -d (or COMPOSE_PROFILES=demo and MDCA_DEMO=1 in .env)"


def demo_requested(environ: Mapping[str, str]) -> bool:
    """Whether ``MDCA_DEMO`` asks for the demo: ``1`` yes; empty, unset or ``0`` no; anything else is refused.

    :raises ValueError: another value (``true``, ``yes``...): a switch that reads two ways must not guess.
    """
    value = (environ.get(DEMO_SWITCH) or "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(f"{DEMO_SWITCH} must be 1 (the demo) or 0 (not), got {value!r}")


def _state_dir() -> Path:
    return Path(os.environ.get("MDCA_DEMO_STATE_DIR") or "/opt/mdca/emulator")


def _emulator_host() -> str:
    return os.environ.get("MDCA_DEMO_EMULATOR_HOST") or "mdca-emulator"


def _ports() -> dict[str, int]:
    """:data:`EMULATOR_PORTS`, with ``MDCA_DEMO_PORTS`` (``name=port,...``) applied."""
    ports = dict(EMULATOR_PORTS)
    for item in filter(None, (os.environ.get("MDCA_DEMO_PORTS") or "").split(",")):
        name, _, port = item.strip().partition("=")
        if name not in ports or not port.isdigit():
            raise ValueError(f"MDCA_DEMO_PORTS: expected name=port with a name of {sorted(ports)}, got {item!r}")
        ports[name] = int(port)
    return ports


def _public_offset() -> int:
    return int(os.environ.get("MDCA_DEMO_PUBLIC_PORT_OFFSET") or PUBLIC_PORT_OFFSET)


def _public_bind() -> str:
    return os.environ.get("MDCA_DEMO_PUBLIC_BIND") or "0.0.0.0"


def _log(message: str) -> None:
    print(f"mdca-compose: {message}", file=sys.stderr, flush=True)


# -- forwarding ------------------------------------------------------------------------------------------------------


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {text!r}")
    return host, int(port)


def _reset(sock: socket.socket) -> None:
    """Make the coming close a reset (so the peer sees a cut, not a clean end) and wake any reader of ``sock``."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until EOF, then half-close ``sink``; on an error cut both."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)  # the peer sees EOF; the other direction keeps flowing (TLS close_notify)
    except OSError:
        _reset(source)
        _reset(sink)


class Forwarder:
    """Accepts on ``listen`` and relays each connection to ``target``, one thread per direction."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], connect_timeout: float = 10.0) -> None:
        self.listen, self.target, self.connect_timeout = listen, target, connect_timeout
        self._server = socket.create_server(listen, reuse_port=False, backlog=128)
        self.port: int = self._server.getsockname()[1]

    def start(self) -> Forwarder:
        """Serve in a daemon thread; returns at once (the socket already listens)."""
        threading.Thread(target=self._accept_loop, name=f"forward-{self.port}", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop accepting (open connections run on)."""
        # close() alone neither wakes a thread blocked in accept() nor stops the kernel accepting: shut down first.
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError as exc:
            _log(f"{self.target[0]}:{self.target[1]} unreachable ({exc}); cutting the connection")
            _reset(client)
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()


def _forward_forever(pairs: Sequence[tuple[tuple[str, int], tuple[str, int]]]) -> int:
    for listen, target in pairs:
        Forwarder(listen, target).start()
        _log(f"forwarding {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}")
    threading.Event().wait()
    return 0  # pragma: no cover - never reached


def _client_pairs(host: str) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """An Airflow container's forwarding: its own loopback ports to the emulator container's public ones."""
    offset = _public_offset()
    return [(("127.0.0.1", port), (host, port + offset)) for port in _ports().values()]


def _public_pairs() -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """The emulator container's forwarding: public ports on every interface to the emulator's loopback ones."""
    bind, offset = _public_bind(), _public_offset()
    return [((bind, port + offset), ("127.0.0.1", port)) for port in _ports().values()]


def _accepts(address: tuple[str, int], timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


# -- the demo's connections and configuration ------------------------------------------------------------------------


def connections(info: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Airflow connections (JSON form) for the first emulated tenant and the Devo relay, from ``emulator.json``."""
    tenant = info["tenants"][0]
    devo = info["devo"]
    return {
        "mdca_default": {
            "conn_type": "mdca",
            "host": tenant["mdca_url"],
            "login": tenant["client_id"],
            "password": tenant["client_secret"],
            "extra": {
                "tenant_id": tenant["tenant_id"],
                "token_url": info["token_url"],
                "files_access_token": tenant["files_access_token"],
                "verify": info["ca_bundle"],
            },
        },
        "devo_default": {
            "conn_type": "devo",
            "host": devo["relay_host"],
            "port": devo["relay_port"],
            "extra": {
                "transport": "tls",
                "cert": devo["client_cert"],
                "private_key": devo["client_key"],
                "chain": devo["ca_bundle"],
            },
        },
    }


def _floor(moment: datetime, period: timedelta) -> datetime:
    seconds = int(period.total_seconds())
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, tz=timezone.utc)


def _windows(now: datetime, period: timedelta) -> dict[str, Any]:
    """Windows of ``period`` from ``now - 6 h`` rounded down to the period."""
    start = _floor(now - DEMO_HISTORY, period)
    return {"period": int(period.total_seconds()), "historic_date_utc": start.strftime("%Y-%m-%dT%H:%M:%SZ")}


def demo_collector_config(now: datetime) -> dict[str, Any]:
    """The demo's collector configuration: every service, an hour's windows by default, the snapshots six hours'."""
    services = {name: _windows(now, DEMO_SNAPSHOT_PERIOD) for name in DEMO_SNAPSHOTS}
    return {"defaults": {**_windows(now, DEMO_PERIOD), "retry_delay": 30}, "services": services}


def _write_demo_config(state: Path, now: datetime) -> Path:
    """Write the demo's collector configuration once: a restarted emulator keeps the DAGs' start dates."""
    path = state / DEMO_CONFIG_NAME
    if not path.exists():
        header = "# The demo profile's collector configuration, written once by the mdca-emulator service.\n"
        # JSON is YAML: the collector's loader reads it as it is.
        path.write_text(header + json.dumps(demo_collector_config(now), indent=2) + "\n", encoding="utf-8")
    return path


def demo_environment(state: Path, info: Mapping[str, Any]) -> dict[str, str]:
    """The variables an Airflow container gets in the demo: both connections and the demo's collector config."""
    conns = connections(info)
    return {
        "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(conns["mdca_default"]),
        "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(conns["devo_default"]),
        "MDCA_COLLECTOR_CONFIG": str(state / DEMO_CONFIG_NAME),
    }


def _demo_info(state: Path, host: str, wait: float) -> dict[str, Any] | None:
    """``emulator.json`` once the demo's emulator has written it and answers; None if it does not within ``wait``.

    Only called when the demo was asked for (``MDCA_DEMO=1``): nothing here decides whether this is the demo.
    """
    info_path = state / INFO_NAME
    address = (host, _ports()["mdca"] + _public_offset())
    deadline = time.monotonic() + wait
    while not (info_path.exists() and _resolves(address) and _accepts(address)):
        if time.monotonic() >= deadline:
            return None
        time.sleep(1)
    info: dict[str, Any] = json.loads(info_path.read_text(encoding="utf-8"))
    return info


def _resolves(address: tuple[str, int]) -> bool:
    try:
        socket.getaddrinfo(*address, type=socket.SOCK_STREAM)
    except OSError:
        return False  # Compose names only the services of the running profiles
    return True


# -- subcommands -----------------------------------------------------------------------------------------------------


def _entrypoint(args: Sequence[str]) -> int:
    state, host = _state_dir(), _emulator_host()
    env = dict(os.environ)
    try:
        demo = demo_requested(env)
    except ValueError as exc:
        _log(str(exc))
        return 2
    if not demo:
        if (state / INFO_NAME).exists():
            # A demo ran here once (the state volume keeps its emulator.json): it is not asked for now.
            _log(f"{state / INFO_NAME} ignored: {DEMO_SWITCH} is not 1, the connections stay as configured")
    else:
        info = _demo_info(state, host, wait=float(os.environ.get("MDCA_DEMO_WAIT_SECONDS", "20")))
        if info is None:
            _log(
                f"{DEMO_SWITCH}=1 but the demo's emulator ({host}, {state / INFO_NAME}) does not answer: not starting "
                f"with other connections. Start the demo profile with it: {_DEMO_HOW}"
            )
            return 1
        import subprocess

        pairs = [f"{a[0]}:{a[1]}={b[0]}:{b[1]}" for a, b in _client_pairs(host)]
        # A separate process: this one is about to become Airflow (exec), the forwarder must outlive that.
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "forward", *pairs], stdin=subprocess.DEVNULL)
        local = ("127.0.0.1", _ports()["mdca"])
        deadline = time.monotonic() + 10
        while not _accepts(local, timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.1)
        env.update(demo_environment(state, info))
        _log(f"demo profile: connections mdca_default and devo_default point at the emulators ({host})")
    target = os.environ.get("MDCA_AIRFLOW_ENTRYPOINT") or "/entrypoint"
    os.execvpe(target, [target, *args], env)


def _emulator(argv: Sequence[str]) -> int:
    try:
        demo = demo_requested(os.environ)
    except ValueError as exc:
        _log(str(exc))
        return 2
    if not demo:
        # Without the switch the Airflow containers keep their own connections: an emulator beside them would be a
        # demo that silently is not one.
        _log(f"the demo profile needs {DEMO_SWITCH}=1 for every container: {_DEMO_HOW}")
        return 2
    # The mdca-emulator distribution: installed in the demo's emulator image only, never in the production one.
    from mdca_emulator.__main__ import main as emulator_main

    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    (state / INFO_NAME).unlink(missing_ok=True)  # stale from an earlier run: the health check waits for a new one
    config = _write_demo_config(state, datetime.now(timezone.utc))
    for listen, target in _public_pairs():
        Forwarder(listen, target).start()
        _log(f"forwarding {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}")
    _log(f"demo collector configuration: {config}")
    ports = _ports()
    args = [
        "--state-dir",
        str(state),
        "--port",
        str(ports["mdca"]),
        "--devo-relay-port",
        str(ports["devo_relay"]),
        "--devo-http-port",
        str(ports["devo_http"]),
        *argv,
    ]
    # mdca-emulator prints emulator.json (credentials included) on stdout: keep it out of the container's log.
    with open(os.devnull, "w") as quiet:
        saved, sys.stdout = sys.stdout, quiet
        try:
            return emulator_main(args)
        finally:
            sys.stdout = saved


def _health() -> int:
    state = _state_dir()
    if not (state / INFO_NAME).exists():
        _log(f"{state / INFO_NAME} not written yet")
        return 1
    offset = _public_offset()
    for port in _ports().values():
        # The emulator itself, then its forwarder (which accepts even when nothing answers behind it).
        for probe in (port, port + offset):
            if not _accepts(("127.0.0.1", probe)):
                _log(f"port {probe} does not accept connections")
                return 1
    return 0


def _locked_airflow_version(lock: Path) -> str:
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith("apache-airflow=="):
            return line.split("==", 1)[1].split()[0].rstrip("\\").strip()
    raise SystemExit(f"{lock}: no apache-airflow pin")


def _check_image(lock: Path, modules: Sequence[str], absent: Sequence[str] = ()) -> int:
    import importlib
    import importlib.util
    from importlib import metadata

    problems = []
    wanted, installed = _locked_airflow_version(lock), metadata.version("apache-airflow")
    if installed != wanted:
        problems.append(f"apache-airflow {installed} installed, the lock pins {wanted}")
    entry_points = metadata.entry_points(group="apache_airflow_provider")
    providers = [ep for ep in entry_points if ep.value.startswith("airflow_provider_mdca")]
    if not providers:
        problems.append("airflow-provider-mdca is not registered (entry point apache_airflow_provider)")
    else:
        info = providers[0].load()()
        if info.get("package-name") != "airflow-provider-mdca":
            problems.append(f"get_provider_info() names {info.get('package-name')!r}")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure to import is what this check reports
            problems.append(f"import {module}: {type(exc).__name__}: {exc}")
    for module in absent:
        if importlib.util.find_spec(module) is not None:
            problems.append(f"{module} is installed: it must not be in this image")
    for problem in problems:
        _log(problem)
    if not problems:
        _log(
            f"image OK: apache-airflow {installed}, airflow-provider-mdca registered, {len(modules)} modules import, "
            f"{len(absent)} absent"
        )
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand (see the module docstring); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["entrypoint"]:
        return _entrypoint(argv[1:])  # everything after it belongs to Airflow's entrypoint, unparsed
    parser = argparse.ArgumentParser(prog="mdca_compose.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("entrypoint", help="the image's entrypoint (the demo's wiring, then Airflow's /entrypoint)")
    emulator = commands.add_parser("emulator", help="the mdca-emulator service")
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER, help="more mdca-emulator options")
    forward = commands.add_parser("forward", help="forward TCP: LISTEN_HOST:PORT=TARGET_HOST:PORT ...")
    forward.add_argument("pairs", nargs="+")
    commands.add_parser("health", help="the mdca-emulator service's health check")
    check = commands.add_parser("check-image", help="the Dockerfile's check of the installed image")
    check.add_argument("--lock", type=Path, required=True)
    check.add_argument("--import", dest="modules", action="append", default=[])
    check.add_argument("--absent", action="append", default=[], help="a module that must not be installed")
    args = parser.parse_args(argv)
    if args.command == "emulator":
        return _emulator(args.emulator_args)
    if args.command == "forward":
        pairs = []
        for pair in args.pairs:
            listen, _, target = pair.partition("=")
            pairs.append((_address(listen), _address(target)))
        return _forward_forever(pairs)
    if args.command == "health":
        return _health()
    return _check_image(args.lock, args.modules, args.absent)


if __name__ == "__main__":
    sys.exit(main())
