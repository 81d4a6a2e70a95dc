"""A real Airflow, run as child processes on one machine, for the demo (``scripts/demo.py``) and the end-to-end tests.

Harness, not provider: it lives with the tests and never ships in the provider's wheel.

:class:`AirflowStack` owns one fresh ``AIRFLOW_HOME`` (SQLite in it, or the metadata database it is given, e.g.
PostgreSQL as production runs it) and drives the ``airflow`` command of the running interpreter's environment:

* Airflow 3: ``db migrate``, then ``scheduler``, ``dag-processor``, ``triggerer`` and ``api-server`` (LocalExecutor,
  simple auth manager with the user ``admin``, a free port on 127.0.0.1), each in its own process group, until
  ``/api/v2/monitor/health`` says every component is healthy, then the pool ``mdca_api`` (through the REST API: one
  ``airflow`` command fewer, each costs an interpreter loading Airflow). Backfills with ``airflow backfill create``
  (or the REST API, as the UI's *Backfill* dialog does); run states come from the REST API.
* Airflow 2.11: ``db migrate`` and the pool, then ``airflow dags backfill -s … -e …`` in-process (SequentialExecutor:
  2.11 refuses LocalExecutor on SQLite; or DebugExecutor, tasks inside the backfill process), optionally beside a
  ``triggerer`` for deferred tasks.

SQLite under four components: the database runs in write-ahead-log mode with a one-minute busy timeout, and
``airflow backfill create``, which SQLite can refuse at once ("database is locked") when another process wrote
between its read and its write, is retried after cancelling the run-less backfill it left. With another database
(``sql_alchemy_conn``) none of that applies; Airflow 3 also opens it through an async driver (``asyncpg`` for
PostgreSQL, in the test extra).
The UI's user is ``admin`` (role admin); the simple auth manager generates the password into
``<home>/simple_auth_manager_passwords.json.generated`` (:attr:`AirflowStack.password`).

Every process logs to ``<home>/logs/stack/<name>.log``; task logs are where Airflow puts them (``<home>/logs``).
:meth:`AirflowStack.stop` leaves no process behind: it signals the process groups, then kills whatever still carries
the stack's marker in its environment (task processes leave the scheduler's group) and checks that nothing is left.

Nothing here imports Airflow: the module is imported by processes that only drive it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

__all__ = [
    "AIRFLOW_V3",
    "SQLITE_CONNECT_ARGS",
    "TERMINAL_STATES",
    "AirflowStack",
    "DagRun",
    "StackError",
    "airflow_major",
    "marked_pids",
]

TERMINAL_STATES = frozenset({"success", "failed"})
ADMIN_USER = "admin"
_MARKER = "MDCA_AIRFLOW_STACK_ID"
_INHERITED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
#: What every process of a stack passes to ``sqlite3.connect`` (``[database] sql_alchemy_connect_args`` names it):
#: four components, a CLI and task processes write to one SQLite file; a writer waits up to a minute for the lock
#: instead of failing with "database is locked" after Python's default 5 s.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}
_INHERITED_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "MDCA_COLLECTOR_CONFIG", "MDCA_TEST_AIRFLOW_HOME", _MARKER)
_AGENT_DIR = "MDCA_TOKEN_AGENT_DIR"


def airflow_major() -> int:
    """The major version of the installed Airflow, read from its metadata (Airflow is not imported)."""
    return int(metadata.version("apache-airflow").split(".", 1)[0])


AIRFLOW_V3 = airflow_major() >= 3


class StackError(RuntimeError):
    """The stack failed to start, a command failed, or runs did not finish; the message says what and where."""


@dataclass(frozen=True)
class DagRun:
    """One DAG run as the harness sees it."""

    dag_id: str
    run_id: str
    state: str
    logical_date: datetime | None
    run_type: str
    start_date: datetime | None = None
    end_date: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a terminal state."""
        return self.state in TERMINAL_STATES


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server the caller starts next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(_readable(line) for line in text.splitlines()[-lines:])


def _readable(line: str) -> str:
    """An Airflow 3 task log line (JSON) as ``time level event``; other lines as they are."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    text = f"{record.get('timestamp', '')} {str(record.get('level', '')).upper()} {record.get('event', '')}"
    if record.get("error_detail"):
        for detail in record["error_detail"]:
            text += f"\n    {detail.get('exc_type')}: {detail.get('exc_value')}"
    return text


def marked_pids(marker: str) -> list[int]:
    """Processes (other than this one) whose environment carries ``MDCA_AIRFLOW_STACK_ID=<marker>``."""
    needle = f"{_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class AirflowStack:
    """A real Airflow on one machine, in a fresh home; a context manager that stops everything on exit.

    :param home: the ``AIRFLOW_HOME`` (created; should be empty or a previous stack's home).
    :param dags_folder: the folder the dag-processor (or the 2.11 backfill) parses.
    :param env: extra environment for every process: ``AIRFLOW_CONN_*``, ``MDCA_COLLECTOR_CONFIG``, ``AIRFLOW__*``
        overrides. The caller's own ``AIRFLOW_*`` variables are never inherited.
    :param parallelism: LocalExecutor slots (Airflow 3).
    :param pools: pools to create, name -> slots (default ``{"mdca_api": 1}``).
    :param triggerer: run a triggerer (always on Airflow 3; on 2.11 only when True, for deferred tasks).
    :param executor: default LocalExecutor (Airflow 3), SequentialExecutor (2.11, where LocalExecutor refuses
        SQLite). On 2.11, ``DebugExecutor`` runs the backfill's tasks inside the backfill process: the same task
        code and database, without an interpreter start (~5 s on a small machine) per task.
    :param sql_alchemy_conn: the metadata database's SQLAlchemy URL, e.g. ``postgresql+psycopg2://…`` (an empty
        database: :meth:`start` migrates it); default SQLite in the home (:attr:`database`).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        *,
        parallelism: int = 3,
        pools: Mapping[str, int] | None = None,
        triggerer: bool = False,
        executor: str | None = None,
        sql_alchemy_conn: str | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.v3 = AIRFLOW_V3
        self.port = free_port() if self.v3 else 0
        self.pools = dict(pools if pools is not None else {"mdca_api": 1})
        self.run_triggerer = triggerer
        self.marker = uuid.uuid4().hex
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self.log_dir = self.home / "logs" / "stack"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None
        self._session = requests.Session()
        self.executor = executor or ("LocalExecutor" if self.v3 else "SequentialExecutor")
        self.sql_alchemy_conn = sql_alchemy_conn or f"sqlite:///{self.database}"
        self.env = self._environment(env or {}, parallelism)

    # -- set-up --------------------------------------------------------------------------------------------

    def _environment(self, extra: Mapping[str, str], parallelism: int) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES) and k not in _INHERITED_NAMES
        }
        env.update(
            {
                _MARKER: self.marker,
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                # The stack's own Entra ID token agent (it carries the stack's marker: stop() stops it too).
                _AGENT_DIR: tempfile.mkdtemp(prefix="mdca-ta-"),
                # Executors start ``airflow tasks run`` from PATH: make it this environment's.
                "PATH": os.pathsep.join([str(Path(self.airflow).parent), os.environ.get("PATH", "")]),
            }
        )
        if self.v3:
            base_url = f"http://127.0.0.1:{self.port}"
            env.update(
                {
                    "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                    "AIRFLOW__CORE__AUTH_MANAGER": (
                        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                    ),
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
                    "AIRFLOW__API__BASE_URL": base_url,
                    "AIRFLOW__API__HOST": "127.0.0.1",
                    "AIRFLOW__API__PORT": str(self.port),
                    "AIRFLOW__API__WORKERS": "1",
                    "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(24),
                    # Parse the dags folder promptly, and pick up new files at once.
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                    # Re-parse a known file every 2 minutes (default 30 s): every parse writes to SQLite.
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
                }
            )
        if self.sqlite:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = f"{__name__}.SQLITE_CONNECT_ARGS"
            if self.v3:
                env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = f"{__name__}.SQLITE_CONNECT_ARGS"
        env["AIRFLOW__CORE__EXECUTOR"] = self.executor
        env.update(extra)
        return env

    @property
    def sqlite(self) -> bool:
        """Whether the metadata database is SQLite (the home's file unless ``sql_alchemy_conn`` named another)."""
        return self.sql_alchemy_conn.startswith("sqlite:")

    @property
    def database(self) -> Path:
        """The SQLite metadata database (used when the stack was given no ``sql_alchemy_conn``)."""
        return self.home / "airflow.db"

    @property
    def base_url(self) -> str:
        """The api-server's (and the UI's) URL (Airflow 3)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        """Where the simple auth manager writes the generated password of ``admin`` (Airflow 3)."""
        return self.home / "simple_auth_manager_passwords.json.generated"

    @property
    def password(self) -> str:
        """The generated password of ``admin`` (Airflow 3, once the api-server started)."""
        passwords: dict[str, str] = json.loads(self.password_file.read_text(encoding="utf-8"))
        return passwords[ADMIN_USER]

    def start(self, timeout: float = 240.0) -> AirflowStack:
        """Migrate the database, create the pools and (Airflow 3) start every component and wait until healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.cli("db", "migrate", timeout=600)
            if self.sqlite:
                # Write-ahead logging: readers (the UI, the scheduler's queries) no longer block the one writer.
                with contextlib.closing(sqlite3.connect(self.database)) as db:
                    db.execute("PRAGMA journal_mode=WAL")
            self._migrated()
            if self.v3:
                for component in ("scheduler", "dag-processor", "triggerer"):
                    self._spawn(component, [component])
                self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)])
                self.wait_healthy(timeout)
                for name, slots in self.pools.items():  # before any run exists: nothing is scheduled yet
                    body = {"name": name, "slots": slots, "description": f"{name} (created by the stack)"}
                    self.api("POST", "/api/v2/pools", json=body)
            else:
                for name, slots in self.pools.items():
                    self.cli("pools", "set", name, str(slots), f"{name} (created by the stack)")
                if self.run_triggerer:
                    self._spawn("triggerer", ["triggerer"])
        except BaseException:
            self.stop()
            raise
        return self

    def _migrated(self) -> None:
        """Called by :meth:`start` once the database is migrated, before the components start: a subclass starts
        here what needs only the database (e.g. Celery workers, which then warm up beside the components)."""

    def _spawn(
        self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        """Start ``airflow <args>`` in its own process group, watched as ``name``.

        ``env`` and ``cwd`` replace the stack's environment and home for this process (e.g. a Celery worker with a
        home of its own, :mod:`tests.harness.celery_cluster`); the environment should keep the stack's marker.
        """
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps its copy; ours closes below
        try:
            self._procs[name] = subprocess.Popen(
                [self.airflow, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else self.env,
                cwd=cwd or self.home,
                start_new_session=True,
            )
        finally:
            log.close()

    def wait_healthy(self, timeout: float = 240.0) -> dict[str, Any]:
        """Wait until ``/api/v2/monitor/health`` reports every component healthy; StackError naming the laggard."""
        deadline = time.monotonic() + timeout
        last: Any = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                if response.ok:
                    last = response.json()
                    parts = [last.get(name) or {} for name in ("metadatabase", "scheduler", "triggerer")]
                    parts.append(last.get("dag_processor") or {})
                    if all(part.get("status") == "healthy" for part in parts):
                        self.note(f"healthy at {self.base_url}")
                        return dict(last)
                else:
                    last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(1)
        raise StackError(f"Airflow was not healthy after {timeout:.0f}s (last: {last}); logs in {self.log_dir}")

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with {proc.returncode}; last lines of {self.log_dir / name}.log:\n"
                    + _tail(self.log_dir / f"{name}.log", 40)
                )

    def crash(self, name: str) -> int:
        """SIGKILL the process group of one running component, as a crash would (no shutdown); its group id.

        Processes that left the group are not touched: the task processes of the scheduler's LocalExecutor each run
        in a group of their own (tests/harness/crashes.py kills them too). Start the component again with
        :meth:`launch`; until then the stack counts as not alive.
        """
        proc = self._procs[name]
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.note(f"{name} (process group {proc.pid}) killed with SIGKILL")
        return proc.pid

    def launch(self, name: str, *args: str) -> None:
        """Start the component ``name`` (``airflow <args>``, default ``airflow <name>``), e.g. again after a crash."""
        self._spawn(name, list(args) or [name])
        self.note(f"{name} started (pid {self._procs[name].pid})")

    # -- stopping ------------------------------------------------------------------------------------------

    def stop(self, grace: float = 20.0) -> None:
        """Stop every process of the stack (SIGTERM to each group, then SIGKILL); StackError if one survives."""
        for proc in self._procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for _ in range(3):
            leftovers = set(marked_pids(self.marker))
            for proc in self._procs.values():
                if _group_alive(proc.pid):
                    _signal_group(proc.pid, signal.SIGKILL)
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for proc in self._procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            time.sleep(0.2)
            if not self.leftover_pids():
                break
        self._procs.clear()
        self._session.close()
        shutil.rmtree(self.env[_AGENT_DIR], ignore_errors=True)
        survivors = self.leftover_pids()
        self.note(f"stopped; survivors: {survivors or 'none'}")
        if survivors:
            raise StackError(f"processes of the stack survived SIGKILL: {survivors}")

    def leftover_pids(self) -> list[int]:
        """Processes of this stack still alive (started by it, or by its children, at any depth)."""
        return sorted(set(marked_pids(self.marker)))

    def process_tree(self) -> list[int]:
        """Every process of the stack now, zombies included: the components and their descendants at any depth,
        and whatever else carries the marker (a process that left the tree, e.g. the token agent).

        The tree finds what the marker cannot: a LocalExecutor worker and the tasks it forks rewrite their process
        title over the environment (setproctitle), so ``/proc/<pid>/environ`` no longer shows the marker.
        """
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    children.setdefault(parent, []).append(int(entry.name))
        found: set[int] = set()
        todo = [proc.pid for proc in self._procs.values()] + marked_pids(self.marker)
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children.get(pid, []))
        return sorted(found)

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- commands ------------------------------------------------------------------------------------------

    def note(self, message: str) -> None:
        """Append a timestamped line to ``<home>/logs/stack/stack.log`` (what the harness did, and when)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        with open(self.log_dir / "stack.log", "a", encoding="utf-8") as log:
            log.write(f"{stamp} {message}\n")

    def cli(self, *args: str, timeout: float = 300.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` in the stack's environment; StackError with the output when it fails."""
        result = self._run([self.airflow, *args], timeout)
        if check and result.returncode != 0:
            raise StackError(
                f"airflow {' '.join(args)} exited with {result.returncode}:\n{result.stdout[-4000:]}"
                f"\n{result.stderr[-4000:]}"
            )
        return result

    def collector(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run ``mdca-collector <args>`` in the stack's environment (its metadata database and collector config).

        Its exit status is the command's answer (``status`` exits 1 when a window failed): never raised on.
        """
        return self._run([str(Path(self.airflow).with_name("mdca-collector")), *args], timeout)

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a command of this environment with the stack's environment, in its home; noted in the stack's log."""
        began = time.monotonic()
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, cwd=self.home, timeout=timeout, check=False
        )
        command = " ".join([Path(argv[0]).name, *argv[1:]])
        self.note(f"{command} -> {result.returncode} in {time.monotonic() - began:.1f}s")
        return result

    def reserialize(self) -> None:
        """``airflow dags reserialize``: parse the dags folder and store the DAGs (what backfill needs)."""
        self.cli("dags", "reserialize", timeout=600)

    def unpause(self, *dag_ids: str) -> None:
        """Unpause DAGs (the scheduler runs no run, backfill ones included, of a paused DAG)."""
        for dag_id in dag_ids:
            if self.v3:
                self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            else:
                self.cli("dags", "unpause", dag_id)

    def pause(self, *dag_ids: str) -> None:
        """Pause DAGs: the scheduler creates no new run for them."""
        for dag_id in dag_ids:
            if self.v3:
                self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})
            else:
                self.cli("dags", "pause", dag_id)

    def backfill(
        self,
        dag_id: str,
        from_date: datetime,
        to_date: datetime,
        *,
        conf: Mapping[str, Any] | None = None,
        max_active_runs: int | None = None,
        reprocess_behavior: str | None = None,
        timeout: float = 900.0,
        may_fail: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Backfill the runs whose logical dates (window starts) lie in ``[from_date, to_date]``, both inclusive.

        Airflow 3: ``airflow backfill create`` (returns at once; the scheduler runs them: see
        :meth:`wait_for_runs`). Airflow 2.11: ``airflow dags backfill -s … -e …`` in-process, returning when done;
        its output goes to ``<home>/logs/stack/backfill-<dag_id>.log``. ``may_fail``: a failed run is part of the test
        (2.11 then runs the other windows too, ``--continue-on-failures``, and its exit status 1 is no error).
        """
        if self.v3:
            args = ["backfill", "create", "--dag-id", dag_id, "--from-date", _iso(from_date), "--to-date"]
            args.append(_iso(to_date))
            if conf is not None:
                args += ["--dag-run-conf", json.dumps(conf)]
            if max_active_runs is not None:
                args += ["--max-active-runs", str(max_active_runs)]
            if reprocess_behavior is not None:
                args += ["--reprocess-behavior", reprocess_behavior]
            return self._create_backfill(dag_id, args)
        args = ["dags", "backfill", "-y", "-s", _iso(from_date), "-e", _iso(to_date)]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        if reprocess_behavior == "completed":
            args.append("--reset-dagruns")
        if may_fail:
            args.append("--continue-on-failures")
        result = self.cli(*args, dag_id, timeout=timeout, check=False)
        (self.log_dir / f"backfill-{dag_id}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0 and not may_fail:
            try:
                report = self.failure_report(dag_id, self.dag_runs(dag_id))
            except StackError as exc:
                report = f"(no run to report on: {exc})"
            raise StackError(
                f"airflow dags backfill {dag_id} exited with {result.returncode}; "
                f"log: {self.log_dir / f'backfill-{dag_id}.log'}\n{result.stderr[-3000:]}\n{report}"
            )
        return result

    def backfill_all(
        self,
        dag_ids: Iterable[str],
        from_date: datetime,
        to_date: datetime,
        *,
        expected: int,
        may_fail: bool = False,
        timeout: float = 900.0,
    ) -> dict[str, list[DagRun]]:
        """Backfill every DAG over ``[from_date, to_date]`` and wait until each has ``expected`` finished runs.

        Airflow 3: the backfills are created while the DAGs are paused, then the DAGs are unpaused, so the scheduler
        finds every window's run already there. Airflow 2.11: one ``airflow dags backfill`` after the other;
        ``may_fail``: a failed run is part of the test (see :meth:`backfill`).
        """
        dag_ids = list(dag_ids)
        runs: dict[str, list[DagRun]] = {}
        if self.v3:
            self.wait_for_dags(dag_ids)
            for dag_id in dag_ids:
                self.backfill(dag_id, from_date, to_date)
            self.unpause(*dag_ids)
            for dag_id in dag_ids:
                runs[dag_id] = self.wait_for_runs(dag_id, from_date, to_date, expected=expected, timeout=timeout)
            return runs
        self.reserialize()  # 2.11's list-runs knows only DAGs in the database; the backfill itself does not need it
        for dag_id in dag_ids:
            self.backfill(dag_id, from_date, to_date, timeout=timeout, may_fail=may_fail)
            runs[dag_id] = self.dag_runs(dag_id, from_date, to_date)
        return runs

    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime,
        to_date: datetime,
        *,
        conf: Mapping[str, Any] | None = None,
        reprocess_behavior: str = "none",
        max_active_runs: int | None = None,
    ) -> dict[str, Any]:
        """Create a backfill as the UI's *Backfill* dialog does (Airflow 3: ``POST /api/v2/backfills``); its record.

        The same range and options as :meth:`backfill`; ``reprocess_behavior`` ``completed`` re-runs the range's
        finished runs too (with ``conf`` as their new run conf), ``failed`` only the failed ones.
        """
        body: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": _iso(from_date),
            "to_date": _iso(to_date),
            "reprocess_behavior": reprocess_behavior,
        }
        if conf is not None:
            body["dag_run_conf"] = dict(conf)
        if max_active_runs is not None:
            body["max_active_runs"] = max_active_runs
        backfill: dict[str, Any] = self.api("POST", "/api/v2/backfills", json=body)
        self.note(f"backfill {backfill.get('id')} of {dag_id} created through the REST API ({reprocess_behavior})")
        return backfill

    def wait_for_backfills(self, dag_id: str, timeout: float = 120.0, poll: float = 2.0) -> None:
        """Wait until every backfill of a DAG is completed (Airflow 3; until then the DAG takes no new backfill).

        The scheduler marks a backfill completed every 30 s once its runs are finished. StackError on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            backfills = self.api("GET", "/api/v2/backfills", params={"dag_id": dag_id})["backfills"]
            running = [backfill["id"] for backfill in backfills if backfill.get("completed_at") is None]
            if not running:
                return
            if time.monotonic() > deadline:
                raise StackError(f"{dag_id}: backfills {running} not completed after {timeout:.0f}s")
            time.sleep(poll)

    def clear_run(self, run: DagRun) -> str:
        """Clear every task of a run as the UI's *Clear Run* does (Airflow 3); the run's new state (``queued``).

        ``POST /api/v2/dags/{dag_id}/dagRuns/{run_id}/clear``: the scheduler then runs the run again; wait for it
        with :meth:`wait_for_runs`.
        """
        answer = self.api(
            "POST",
            f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/clear",
            json={"dry_run": False, "only_failed": False},
        )
        state = str(answer.get("state"))
        self.note(f"cleared {run.dag_id} {run.run_id}: {state}")
        return state

    def _create_backfill(self, dag_id: str, args: list[str], attempts: int = 5) -> subprocess.CompletedProcess[str]:
        """``airflow backfill create``, again when SQLite refused a write ("database is locked").

        SQLite fails a transaction that read before it writes, at once, when another process wrote in between: the
        backfill's row is committed, its runs are not. The leftover backfill (no runs) is cancelled, then created anew.
        """
        for attempt in range(1, attempts + 1):
            result = self.cli(*args, check=False)
            if result.returncode == 0:
                return result
            output = result.stdout + result.stderr
            retryable = "database is locked" in output or "Another backfill is running" in output
            if not retryable or attempt == attempts:
                raise StackError(f"airflow {' '.join(args)} exited with {result.returncode}:\n{output[-6000:]}")
            self.note(f"backfill create {dag_id}: {'locked' if 'locked' in output else 'busy'}, attempt {attempt}")
            self._cancel_unfinished_backfills(dag_id)
            time.sleep(attempt)
        raise AssertionError("unreachable")

    def _cancel_unfinished_backfills(self, dag_id: str) -> None:
        for backfill in self.api("GET", "/api/v2/backfills", params={"dag_id": dag_id})["backfills"]:
            if backfill.get("completed_at") is None:
                try:
                    self.api("PUT", f"/api/v2/backfills/{backfill['id']}/cancel")
                except StackError as exc:  # completed meanwhile (409), or the database was busy: the retry tells
                    self.note(f"cancel backfill {backfill['id']}: {exc}")

    # -- the REST API (Airflow 3) --------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT for ``admin`` (cached)."""
        if self._token is None:
            response = self._session.post(
                f"{self.base_url}/auth/token",
                json={"username": ADMIN_USER, "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API as ``admin``; the decoded JSON answer. StackError on an error status."""
        if not self.v3:
            raise StackError("the REST API harness is for Airflow 3")
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self.token()}"}
            response = self._session.request(method, f"{self.base_url}{path}", headers=headers, timeout=60, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            if not response.ok:
                raise StackError(f"{method} {path}: HTTP {response.status_code} {response.text[:2000]}")
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180.0) -> None:
        """Wait until the DAGs are serialized (the dag-processor parsed them); StackError with the import errors."""
        missing = list(dag_ids)
        deadline = time.monotonic() + timeout
        while missing and time.monotonic() < deadline:
            self._check_alive()
            answer = self.api("GET", "/api/v2/dags", params={"limit": 1000})
            present = {dag["dag_id"] for dag in answer["dags"]}
            missing = [dag_id for dag_id in missing if dag_id not in present]
            if missing:
                time.sleep(1)
        if missing:
            errors = self.api("GET", "/api/v2/importErrors")
            raise StackError(f"DAGs not serialized after {timeout:.0f}s: {missing}; import errors: {errors}")

    # -- runs ----------------------------------------------------------------------------------------------

    def dag_runs(self, dag_id: str, from_date: datetime | None = None, to_date: datetime | None = None) -> list[DagRun]:
        """The runs of a DAG whose logical dates lie in ``[from_date, to_date]`` (both optional), oldest first."""
        if self.v3:
            raw = [
                (run["dag_run_id"], run["state"], run.get("logical_date"), run.get("run_type", ""), run)
                for run in self._all_dag_runs(dag_id)
            ]
        else:
            result = self.cli("dags", "list-runs", "-d", dag_id, "-o", "json")
            listed = _json_part(result.stdout)
            raw = [
                (run["run_id"], run["state"], run.get("execution_date"), _run_type(run["run_id"]), run)
                for run in listed
            ]
        runs = [
            DagRun(
                dag_id,
                run_id,
                state,
                _parse_time(logical),
                run_type,
                _parse_time(run.get("start_date")),
                _parse_time(run.get("end_date")),
            )
            for run_id, state, logical, run_type, run in raw
        ]
        runs = [
            run
            for run in runs
            if run.logical_date is None
            or (
                (from_date is None or run.logical_date >= from_date)
                and (to_date is None or run.logical_date <= to_date)
            )
        ]
        return sorted(runs, key=lambda run: run.logical_date or datetime.min.replace(tzinfo=timezone.utc))

    def _all_dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG from the REST API, page by page: the api-server caps a page at 100 runs."""
        found: list[dict[str, Any]] = []
        while True:
            params = {"limit": 100, "offset": len(found), "order_by": "logical_date"}
            answer = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)
            found.extend(answer["dag_runs"])
            if not answer["dag_runs"] or len(found) >= answer["total_entries"]:
                return found

    def wait_for_runs(
        self,
        dag_id: str,
        from_date: datetime,
        to_date: datetime,
        *,
        expected: int | None = None,
        timeout: float = 600.0,
        poll: float = 2.0,
    ) -> list[DagRun]:
        """Wait until the runs of ``[from_date, to_date]`` (at least `expected` of them) are all finished.

        Returns them; StackError with the states on timeout. Failed runs are returned, not raised: see
        :meth:`failure_report`.
        """
        deadline = time.monotonic() + timeout
        runs: list[DagRun] = []
        while time.monotonic() < deadline:
            if self.v3:
                self._check_alive()
            runs = self.dag_runs(dag_id, from_date, to_date)
            if runs and (expected is None or len(runs) >= expected) and all(run.finished for run in runs):
                self.note(f"{dag_id}: {len(runs)} runs finished")
                return runs
            time.sleep(poll)
        states = ", ".join(f"{run.run_id}={run.state}" for run in runs) or "no runs"
        raise StackError(f"{dag_id}: runs not finished after {timeout:.0f}s: {states}")

    def task_states(self, run: DagRun) -> dict[str, tuple[str | None, int]]:
        """``task_id -> (state, try_number)`` of one run."""
        if self.v3:
            answer = self.api("GET", f"/api/v2/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances")
            return {ti["task_id"]: (ti.get("state"), int(ti.get("try_number") or 0)) for ti in answer["task_instances"]}
        result = self.cli("tasks", "states-for-dag-run", run.dag_id, run.run_id, "-o", "json")
        rows = _json_part(result.stdout)
        return {row["task_id"]: (row.get("state"), int(row.get("try_number") or 0)) for row in rows}

    def task_log(self, run: DagRun, task_id: str, try_number: int | None = None) -> Path | None:
        """The log file of a task try (the last try when None), or None when there is none."""
        folder = self.home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}" / f"task_id={task_id}"
        logs = sorted(folder.glob("**/attempt=*.log"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if try_number is not None:
            logs = [p for p in logs if p.stem == f"attempt={try_number}"]
        return logs[-1] if logs else None

    def failure_report(self, dag_id: str, runs: Iterable[DagRun], lines: int = 40) -> str:
        """For each failed run: its failed tasks and the tail of each one's last log."""
        out = []
        for run in runs:
            if run.state == "success":
                continue
            out.append(f"run {dag_id} {run.run_id}: {run.state}")
            for task_id, (state, try_number) in sorted(self.task_states(run).items()):
                if state in ("failed", "upstream_failed", "up_for_retry"):
                    out.append(f"  task {task_id}: {state} (try {try_number})")
                    log = self.task_log(run, task_id)
                    if log is not None and state != "upstream_failed":
                        out.append(f"  --- last {lines} lines of {log} ---")
                        out.extend("  " + line for line in _tail(log, lines).splitlines())
        return "\n".join(out)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _json_part(text: str) -> Any:
    """The JSON document a CLI printed on its last JSON line (Airflow may log lines before and after it)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("[{", "[]", "{")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return []


def _run_type(run_id: str) -> str:
    return run_id.split("__", 1)[0] if "__" in run_id else ""
