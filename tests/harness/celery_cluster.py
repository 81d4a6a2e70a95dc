"""A real CeleryExecutor cluster on one machine: the deployment of docker-compose.yaml, run as child processes.

:class:`CeleryCluster` is an :class:`~tests.harness.airflow_stack.AirflowStack` whose executor is Celery: on
Airflow 3 its scheduler, dag-processor, triggerer and api-server; on Airflow 2.11 a scheduler (its DAG parsing
included, no webserver). Beside them run Celery workers, each a separate process group with its own Celery host name
(``--celery-hostname``), its own ``AIRFLOW_HOME`` (pid file, logs) and its own host name on the task instances it
runs (``[core] hostname_callable``, :mod:`tests.harness.worker_hostname`): the containers of ``docker compose up
--scale airflow-worker=2``, without Docker. What the workers share is what Compose's share: the metadata database
(PostgreSQL), the broker (Redis), the DAG files and whatever staging the collector is given.

The settings come from where Compose takes them (:func:`cluster_settings`): ``deploy/airflow-celery.env``, Compose's
``env_file`` of every Airflow service, and the metadata database and Celery result backend URLs of
docker-compose.yaml's ``environment``. Only the addresses change (Compose's service names ``redis`` and ``postgres``
become the test's servers on 127.0.0.1, ``${POSTGRES_PASSWORD}`` the test server's password) and the crash-detection
timeouts a test lowers (:data:`CRASH_DETECTION`), which must be options the file sets.

:meth:`CeleryCluster.kill_worker` is a worker's host dying: SIGKILL to its process group and to every process it
started (Airflow 3 runs each task in a process group of its own), nothing polite. Nothing here imports Airflow.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from tests.harness import worker_hostname
from tests.harness.airflow_stack import AIRFLOW_V3, AirflowStack, DagRun, StackError

__all__ = [
    "AIRFLOW2_NAMES",
    "COMPOSE_FILE",
    "COMPOSE_URL_SETTINGS",
    "CRASH_DETECTION",
    "SETTINGS_FILE",
    "CeleryCluster",
    "cluster_settings",
    "compose_environment",
    "read_env_file",
]

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "deploy" / "airflow-celery.env"
COMPOSE_FILE = REPO / "docker-compose.yaml"
#: What the cluster takes from docker-compose.yaml's ``environment`` (the password makes them per deployment).
COMPOSE_URL_SETTINGS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND")
#: The crash-detection timeouts a test lowers, so that a dead worker's tasks are retried within a minute rather than
#: Airflow's five (the file keeps Airflow's production defaults). The heartbeat timeout stays six times a task's
#: heartbeat interval (5 s, ``[workers] min_heartbeat_interval``; 2.11: ``[scheduler] job_heartbeat_sec``) so that
#: a healthy task on a busy two-core machine is never taken for a dead one; a queued task keeps 90 s to start.
CRASH_DETECTION: dict[str, str] = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
}
#: Options of the file that Airflow 2.11 names differently (Airflow 3.0 renamed them; same meaning and unit).
AIRFLOW2_NAMES: dict[str, str] = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": (
        "AIRFLOW__SCHEDULER__ZOMBIE_DETECTION_INTERVAL"
    ),
}
_WORKER_MARKER = "MDCA_CELERY_WORKER_ID"
_COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def read_env_file(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """An env file as Compose reads ``env_file``: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path}:{number}: not KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        settings[key.strip()] = value
    return settings


def compose_environment(path: Path = COMPOSE_FILE) -> dict[str, str]:
    """The ``environment`` all Airflow services of docker-compose.yaml share (``x-airflow-common``), uninterpolated."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in data["x-airflow-common"]["environment"].items()}


def _interpolate(template: str, variables: Mapping[str, str]) -> str:
    """``${NAME...}`` in a Compose value replaced from ``variables``; KeyError naming a variable not given."""

    def value(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in variables:
            raise KeyError(f"{name} (in docker-compose.yaml) has no value for the test")
        return variables[name]

    return _COMPOSE_VARIABLE.sub(value, template)


def _readdress(url: str, addresses: Mapping[str, str]) -> str:
    """The URL with its host, when it is one of Compose's service names, replaced by that service's ``host:port``."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.hostname not in addresses:
        return url
    userinfo = parts.netloc.rpartition("@")[0]
    address = addresses[parts.hostname]
    netloc = f"{userinfo}@{address}" if userinfo else address
    return urlunsplit(parts._replace(netloc=netloc))


def cluster_settings(
    addresses: Mapping[str, str],
    variables: Mapping[str, str],
    *,
    overrides: Mapping[str, str] = CRASH_DETECTION,
    airflow_v3: bool = AIRFLOW_V3,
) -> dict[str, str]:
    """The Airflow settings of Compose's cluster, for a cluster whose servers are at ``addresses``.

    :param addresses: Compose service name -> the test's ``host:port`` (``{"redis": ..., "postgres": ...}``).
    :param variables: values of Compose's ``${...}`` in the URLs it gives (``POSTGRES_PASSWORD``).
    :param overrides: settings changed for the test: only options the file sets (ValueError otherwise).
    :param airflow_v3: False renames the options Airflow 2.11 spells differently (:data:`AIRFLOW2_NAMES`).
    :returns: ``AIRFLOW__…`` variables, secrets included: pass them to processes, never log them.
    """
    settings = read_env_file()
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ValueError(f"overrides of options {SETTINGS_FILE.name} does not set: {unknown}")
    compose = compose_environment()
    settings.update({key: _interpolate(compose[key], variables) for key in COMPOSE_URL_SETTINGS})
    settings = {key: _readdress(value, addresses) for key, value in settings.items()}
    settings.update(overrides)
    if not airflow_v3:
        settings = {AIRFLOW2_NAMES.get(key, key): value for key, value in settings.items()}
    return settings


def _process_table() -> dict[int, int]:
    """pid -> parent pid of every live process (zombies excluded)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            table[int(entry.name)] = int(fields[1])
    return table


def _descendants(root: int) -> set[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for pid, parent in _process_table().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _carrying(variable: str, value: str) -> set[int]:
    """Live processes whose environment holds ``variable=value`` (what a worker's processes inherit)."""
    needle = f"{variable}={value}".encode()
    found = set()
    for pid in _process_table():
        with contextlib.suppress(OSError):
            if needle in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
                found.add(pid)
    return found


class CeleryCluster(AirflowStack):
    """An Airflow with the CeleryExecutor and ``workers`` Celery workers; a context manager that stops it all.

    :param settings: :func:`cluster_settings` (executor, broker, result backend, metadata database, …).
    :param workers: the workers' names: Celery host names and the task instances' ``hostname``.
    :param parallelism: ``[core] parallelism``, default every worker's slots (``[celery] worker_concurrency``).
    Other parameters as :class:`AirflowStack`'s (``env``: connections, the collector configuration).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: Mapping[str, str],
        *,
        settings: Mapping[str, str],
        workers: Iterable[str] = ("worker-a", "worker-b"),
        parallelism: int | None = None,
        pools: Mapping[str, int] | None = None,
    ) -> None:
        names = list(workers)
        concurrency = int(settings.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "16"))  # 16: the provider's default
        slots = len(names) * concurrency
        super().__init__(
            home,
            dags_folder,
            {**settings, **env},
            parallelism=parallelism or slots,
            pools=pools,
            executor=settings["AIRFLOW__CORE__EXECUTOR"],
            sql_alchemy_conn=settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        )
        self.workers = {name: self.home / "workers" / name for name in names}
        self._worker_ids = {name: uuid.uuid4().hex for name in self.workers}

    def start(self, timeout: float = 240.0) -> CeleryCluster:
        """Start the stack (Airflow 2.11: and its scheduler) and every worker; wait until each worker is ready."""
        super().start(timeout)
        try:
            for name in self.workers:
                self.wait_for_worker(name, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _migrated(self) -> None:
        """The workers start as soon as the database is migrated, beside the other components."""
        if not self.v3:
            self._spawn("scheduler", ["scheduler"])
        for name in self.workers:
            self.start_worker(name)

    def check_alive(self) -> None:
        """StackError naming a component or worker that exited (a killed worker is no longer watched)."""
        self._check_alive()

    def worker_env(self, name: str) -> dict[str, str]:
        """The environment of worker ``name``: the cluster's, with its own home, logs and host name."""
        home = self.workers[name]
        return {
            **self.env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{worker_hostname.__name__}.{worker_hostname.hostname.__name__}",
            worker_hostname.VARIABLE: name,
            _WORKER_MARKER: self._worker_ids[name],
        }

    def start_worker(self, name: str) -> None:
        """``airflow celery worker`` as ``name``, in its own home and process group.

        Without the log server (``--skip-serve-logs``): two workers on one machine would both take its port (8793),
        and it would listen beyond 127.0.0.1. Task logs stay in the worker's home (:meth:`task_log` finds them).
        """
        home = self.workers[name]
        (home / "logs").mkdir(parents=True, exist_ok=True)
        args = ["celery", "worker", "--celery-hostname", name, "--skip-serve-logs"]
        self._spawn(name, args, env=self.worker_env(name), cwd=home)
        self.note(f"worker {name} started (home {home})")

    def wait_for_worker(self, name: str, timeout: float = 120.0) -> None:
        """Wait until Celery logs ``celery@<name> ready.`` (connected to the broker, consuming); StackError if not."""
        log = self.log_dir / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                if f"celery@{name} ready." in log.read_text(encoding="utf-8", errors="replace"):
                    self.note(f"worker {name} ready")
                    return
            time.sleep(0.5)
        raise StackError(f"Celery worker {name} not ready after {timeout:.0f}s; its log: {log}")

    def kill_worker(self, name: str) -> list[int]:
        """Kill worker ``name`` as if its host died: SIGKILL to all its processes at once; the pids killed.

        Its process group first (Celery's main process and pool), then every process below it or carrying its
        marker (task processes run in process groups of their own). It is no longer watched: the cluster goes on
        without it. StackError if a process of it survives.
        """
        proc = self._procs.pop(name)
        doomed = _descendants(proc.pid) | _carrying(_WORKER_MARKER, self._worker_ids[name])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        killed: set[int] = set()
        for _ in range(5):  # until nothing of it is left: a process may have forked between the scan and the kill
            for pid in doomed - {os.getpid()}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= doomed
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            time.sleep(0.2)
            doomed = _carrying(_WORKER_MARKER, self._worker_ids[name])
            if not doomed:
                break
        if doomed:
            raise StackError(f"processes of worker {name} survived SIGKILL: {sorted(doomed)}")
        self.note(f"worker {name} killed (SIGKILL, {len(killed)} processes)")
        return sorted(killed)

    def task_log(self, run: DagRun, task_id: str, try_number: int | None = None) -> Path | None:
        """The log file of a task try (the last when None): tasks log in the home of the worker that ran them."""
        logs: list[Path] = []
        for home in (self.home, *self.workers.values()):
            folder = home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}" / f"task_id={task_id}"
            logs.extend(folder.glob("**/attempt=*.log"))
        if try_number is not None:
            logs = [path for path in logs if path.stem == f"attempt={try_number}"]
        logs.sort(key=lambda path: int(re.sub(r"\D", "", path.stem) or 0))
        return logs[-1] if logs else None
