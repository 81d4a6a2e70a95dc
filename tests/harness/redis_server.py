"""A throwaway Redis server for the end-to-end CeleryExecutor cluster: Debian's ``redis-server``, on 127.0.0.1 only.

:class:`RedisServer` starts ``redis-server`` on a free port of 127.0.0.1 (no other address, no Unix socket) in a
fresh directory, with persistence off (no RDB snapshot, no append-only file: the broker lives for one test), in its
own process group. :meth:`RedisServer.stop` shuts it down (SIGTERM, then SIGKILL), checks that it is gone and removes
the directory. It is the Celery broker as docker-compose.yaml's ``redis`` service is (``redis://redis:6379/0``
there): without a password, reachable only on the loopback interface here as it is only on Compose's network there.

The binary is Debian's ``/usr/bin/redis-server``; ``make redis-server`` installs the package when it is missing.
Nothing here imports Airflow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.harness.airflow_stack import free_port

__all__ = ["REDIS_SERVER", "RedisNotInstalled", "RedisServer"]

REDIS_SERVER = Path("/usr/bin/redis-server")


class RedisNotInstalled(RuntimeError):
    """No ``redis-server`` binary on this machine."""


def find_redis_server(path: Path = REDIS_SERVER) -> Path:
    """Debian's ``redis-server``; RedisNotInstalled, saying what to install, when it is missing."""
    if not os.access(path, os.X_OK):
        raise RedisNotInstalled(
            f"no Redis server ({path}): the CeleryExecutor cluster test needs Debian's redis-server package as its "
            "Celery broker; as root, `make redis-server` installs it "
            "(apt-get install -y --no-install-recommends redis-server)"
        )
    return path


def _answers_ping(port: int) -> bool:
    """Whether a Redis server on 127.0.0.1:``port`` answers ``PING`` (RESP inline command, no client library)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
    return False


class RedisServer:
    """One ``redis-server`` on 127.0.0.1 in a fresh directory; a context manager that stops it on exit.

    :param binary: the server (default: :func:`find_redis_server`).
    :param log: where the server's output goes (default: ``redis.log`` in its directory).
    """

    def __init__(self, binary: Path | None = None, log: Path | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.root = Path(tempfile.mkdtemp(prefix="mdca-redis-"))
        self.log = log or self.root / "redis.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL of database 0, the form docker-compose.yaml gives Celery."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> RedisServer:
        """Start the server on a free port (another one if that port was taken meanwhile) and wait for ``PONG``."""
        try:
            for _ in range(attempts):
                if self._serve(timeout):
                    return self
            raise RuntimeError(f"redis-server did not start; its log, {self.log}:\n{self._tail()}")
        except BaseException:
            self.stop()
            raise

    def _serve(self, timeout: float) -> bool:
        """One start on a free port; False if the server exited (most likely the port was taken)."""
        self.port = free_port()
        command = [
            str(self.binary),
            *("--bind", "127.0.0.1", "--port", str(self.port), "--unixsocket", ""),
            # Persistence off: nothing of the broker outlives the test, and no fork for snapshots on 2 cores.
            *("--save", "", "--appendonly", "no", "--dir", str(self.root)),
            *("--daemonize", "no", "--protected-mode", "yes", "--logfile", ""),
        ]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if _answers_ping(self.port):
                return True
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} in {timeout:.0f}s:\n{self._tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``grace``; remove its directory.

        RuntimeError if the server survives.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        survived = proc is not None and proc.poll() is None
        shutil.rmtree(self.root, ignore_errors=True)
        if survived:
            raise RuntimeError(f"redis-server (pid {proc.pid if proc else '?'}) survived SIGKILL")

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(cannot read {self.log}: {exc})"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
