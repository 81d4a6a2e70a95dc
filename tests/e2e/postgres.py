"""A throwaway PostgreSQL server for the end-to-end tests: Debian's server binaries, one cluster on 127.0.0.1.

:class:`PostgresServer` runs ``initdb`` into a fresh directory and starts ``postgres`` on a free port of 127.0.0.1
(no other address, its socket in the same directory), with a generated password for the superuser ``airflow`` and
durability off (``fsync``, ``synchronous_commit``, ``full_page_writes``: the cluster lives for one test run).
PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user (which Debian's package
creates) in a directory that user owns; otherwise as the current user. :meth:`PostgresServer.stop` shuts it down
(fast shutdown, then SIGKILL), checks that no process of it is left and removes the directory. The server's
processes are found by their working folder, the data directory: each child of the postmaster starts its own
session (so no process group holds them all) and rewrites its command line and environment (its process title).

The binaries are found under ``/usr/lib/postgresql/<version>/bin`` (Debian's layout; the newest version wins).
``make postgres-server`` installs Debian's ``postgresql`` package when they are missing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2

from tests.harness.airflow_stack import free_port

__all__ = ["SEARCHED", "PostgresNotInstalled", "PostgresServer", "find_server_bin"]

SEARCHED = "/usr/lib/postgresql/*/bin"
SUPERUSER = "airflow"


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries (``initdb`` and ``postgres``) on this machine."""


def find_server_bin(pattern: str = SEARCHED) -> Path:
    """The newest Debian PostgreSQL ``bin`` folder holding ``initdb`` and ``postgres``; PostgresNotInstalled if none."""
    found = [Path(path) for path in glob.glob(pattern) if os.access(Path(path, "postgres"), os.X_OK)]
    found = [path for path in found if os.access(path / "initdb", os.X_OK)]
    if not found:
        raise PostgresNotInstalled(
            f"no PostgreSQL server (initdb and postgres under {SEARCHED}): the end-to-end backfill on PostgreSQL "
            "needs Debian's server package; as root, `make postgres-server` installs it "
            "(apt-get install -y --no-install-recommends postgresql)"
        )
    return max(found, key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.name)] or [0])


class PostgresServer:
    """One PostgreSQL cluster in a fresh directory, served on 127.0.0.1; a context manager that stops it on exit.

    :param bindir: the server's ``bin`` folder (default: :func:`find_server_bin`).
    :param log: where the server's output goes (the file is opened here, so any user's server can write it).
    """

    def __init__(self, bindir: Path | None = None, log: Path | None = None) -> None:
        self.bindir = bindir or find_server_bin()
        self.password = secrets.token_urlsafe(18)  # URL-safe: it goes into connection URLs as it is
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="mdca-postgres-"))
        self.log = log or self.root / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise PostgresNotInstalled(
                    "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: install "
                    "Debian's `postgresql` package (it creates the user), or run the tests as another user"
                ) from None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run_as(self) -> dict[str, Any]:
        """Popen arguments that run a command as the server's user (``postgres`` when we are root)."""
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def start(self, timeout: float = 60.0, attempts: int = 3) -> PostgresServer:
        """``initdb``, then start the server on a free port (another port if that one was taken meanwhile)."""
        try:
            self._own(self.root)
            password_file = self.root / "password"
            password_file.write_text(self.password + "\n", encoding="utf-8")
            password_file.chmod(0o600)
            self._own(password_file)
            initdb = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    f"--pgdata={self.data}",
                    f"--username={SUPERUSER}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=self.root,
                **self._run_as(),
            )
            password_file.unlink()
            if initdb.returncode != 0:
                raise RuntimeError(f"initdb exited with {initdb.returncode}:\n{initdb.stdout}\n{initdb.stderr}")
            for attempt in range(1, attempts + 1):
                if self._serve(timeout):
                    return self
                if attempt == attempts:
                    raise RuntimeError(f"postgres did not start; its log, {self.log}:\n{self._tail()}")
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def _serve(self, timeout: float) -> bool:
        """Start ``postgres`` on a free port and wait until it answers; False if it exited (e.g. the port was taken)."""
        self.port = free_port()
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "shared_buffers=32MB",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
                **self._run_as(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with contextlib.closing(self.connect("postgres")):
                    return True
            except psycopg2.OperationalError:
                time.sleep(0.2)
        raise RuntimeError(f"postgres did not answer on 127.0.0.1:{self.port} in {timeout:.0f}s:\n{self._tail()}")

    def connect(self, database: str) -> psycopg2.extensions.connection:
        """A connection to ``database`` as the superuser."""
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
            connect_timeout=5,
        )

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` (driver psycopg2), as Airflow's ``sql_alchemy_conn`` takes it."""
        return f"postgresql+psycopg2://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"{name!r}: use a plain lower-case identifier")
        with contextlib.closing(self.connect("postgres")) as db:
            db.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with db.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def leftover_pids(self) -> list[int]:
        """Processes of the server still alive: the postmaster and its children, whose working folder is the data."""
        data = str(self.data.resolve())
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and cwd == data:
                found.append(int(entry.name))
        return sorted(found)

    def stop(self, grace: float = 30.0) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL to what is left after ``grace``; remove the cluster.

        RuntimeError if a process of the server survives.
        """
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=grace)  # the postmaster ends last, once its children ended
        for _ in range(3):
            leftovers = self.leftover_pids()
            if not leftovers:
                break
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=5)
            time.sleep(0.2)
        survivors = self.leftover_pids()
        shutil.rmtree(self.root, ignore_errors=True)
        if survivors:
            raise RuntimeError(f"processes of the PostgreSQL server survived SIGKILL: {survivors}")

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(cannot read {self.log}: {exc})"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
