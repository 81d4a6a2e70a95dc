"""One Entra ID token shared by the fetch tasks of a machine while it is valid, held in memory by a small agent.

Airflow runs every task in a process of its own, so MSAL's in-memory token cache dies with each fetch and every
window would ask Entra ID for a token: a catch-up of 8,640 windows, 8,640 tokens. The agent, like git's
credential-cache daemon, keeps tokens in the memory of one long-lived process of the same user and hands them to
the next fetch over a Unix socket:

- **Where**: the directory ``MDCA_TOKEN_AGENT_DIR``, else ``$XDG_RUNTIME_DIR/mdca-token-agent``, else
  ``/tmp/mdca-token-agent-<uid>``. It must be this user's, not a link, closed to group and others (created so);
  otherwise nothing is shared.
- **Who**: only processes of this user (the socket's peer credentials are checked), and only one that holds the
  client secret: a token is filed under a hash of the authority, client ID, secret and scope, never under a name.
- **How long**: a token is handed out until :data:`EXPIRY_MARGIN` before it expires (MSAL's own margin); the agent
  exits after :data:`IDLE_EXIT` without a request, and holds nothing on disk.
- **Never**: in a file, a log, staging or XCom. The agent starts without the environment's secrets.

Sharing saves requests; it never fails a fetch: an agent that cannot start, a refused directory or a dead socket
means the fetch asks Entra ID itself, as it would without the agent. A connection's ``extra.share_token: false``
turns sharing off. Imports nothing from Airflow; ``python -m airflow_provider_mdca.token_agent DIR`` is the agent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import stat
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ENV_DIR", "EXPIRY_MARGIN", "IDLE_EXIT", "AgentUnavailable", "TokenAgent", "TokenAgentClient", "token_key"]

log = logging.getLogger(__name__)

#: The environment variable naming the agent's directory.
ENV_DIR = "MDCA_TOKEN_AGENT_DIR"
#: A token is not handed out in its last five minutes (MSAL renews then too).
EXPIRY_MARGIN = 300.0
#: The agent exits after an hour without a request.
IDLE_EXIT = 3600.0
_SOCKET = "agent.sock"
_IO_TIMEOUT = 2.0
_START_WAIT = 5.0
_MAX_MESSAGE = 64 * 1024
# A Unix socket's path is limited to 108 bytes on Linux (104 elsewhere).
_MAX_SOCKET_PATH = 100
# Environment variables the agent does not inherit: it needs none of them.
_SECRET_HINTS = ("SECRET", "PASSWORD", "TOKEN", "KEY", "CREDENTIAL", "AIRFLOW_CONN_", "AIRFLOW_VAR_")


class AgentUnavailable(Exception):
    """No agent can be used here (the message says why); the caller asks Entra ID itself."""


def token_key(authority: str, client_id: str, client_secret: str, scope: str) -> str:
    """The name a token is filed under: only a holder of the client secret can compute it."""
    digest = hashlib.sha256()
    for part in (authority, client_id, client_secret, scope):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def agent_dir() -> Path:
    """The agent's directory (see the module's docstring)."""
    named = os.environ.get(ENV_DIR)
    if named:
        return Path(named)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "mdca-token-agent"
    return Path(tempfile.gettempdir()) / f"mdca-token-agent-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """``path``, created 0700 if missing; AgentUnavailable unless it is this user's private directory."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=False)
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise AgentUnavailable(f"cannot use {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise AgentUnavailable(f"{path} is not a directory of this user closed to group and others")
    socket_path = path / _SOCKET
    if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
        raise AgentUnavailable(f"{socket_path} is too long for a Unix socket")
    return path


class TokenAgentClient:
    """Asks the machine's agent for a token, files new ones with it, and starts it when none runs.

    :param directory: the agent's directory (default :func:`agent_dir`).
    :param start: start an agent when none answers.
    """

    def __init__(self, directory: Path | None = None, *, start: bool = True) -> None:
        self.directory = directory or agent_dir()
        self._start = start
        self._started = False

    def get(self, key: str) -> tuple[str, float] | None:
        """The token filed under ``key`` and when it expires (epoch seconds), if one is valid for a while yet."""
        answer = self._call({"op": "get", "key": key})
        token, expires = answer.get("token"), answer.get("expires_at")
        valid = isinstance(expires, (int, float)) and expires - EXPIRY_MARGIN > time.time()
        if isinstance(token, str) and token and valid:
            return token, float(expires)  # type: ignore[arg-type]
        return None

    def put(self, key: str, token: str, expires_at: float) -> None:
        """File ``token`` under ``key`` until ``expires_at``."""
        self._call({"op": "put", "key": key, "token": token, "expires_at": expires_at})

    def drop(self, key: str) -> None:
        """Forget the token under ``key`` (the API refused it: revoked before it expired)."""
        self._call({"op": "drop", "key": key})

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        """One request; an empty answer when no agent can be reached (never raises)."""
        # Checked on every call, not once per client: a directory removed (a tmp cleaner) or replaced since the last
        # call is caught before a token goes through it. A mkdir and an lstat, against a fetch's HTTPS requests.
        try:
            directory = private_dir(self.directory)
        except AgentUnavailable as exc:
            log.warning("Entra ID tokens are not shared between tasks: %s", exc)
            return {}
        deadline = time.monotonic() + _START_WAIT
        while True:
            try:
                return _exchange(directory / _SOCKET, message)
            except (FileNotFoundError, ConnectionRefusedError):
                if not self._start or time.monotonic() > deadline:
                    return {}
                if not self._started:
                    self._started = True
                    _spawn_agent(directory)
                time.sleep(0.05)
            except (OSError, ValueError) as exc:
                log.warning("The token agent in %s did not answer (%s): asking Entra ID", directory, exc)
                return {}


def _exchange(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_IO_TIMEOUT)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
        answer = _read_line(sock)
    parsed = json.loads(answer) if answer else {}
    return parsed if isinstance(parsed, dict) else {}


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_MESSAGE:
            raise ValueError("message too long")
    return data.strip()


def _spawn_agent(directory: Path) -> None:
    """Start the agent in a session of its own (it outlives the task), without the environment's secrets."""
    env = {name: value for name, value in os.environ.items() if not any(h in name.upper() for h in _SECRET_HINTS)}
    env[ENV_DIR] = str(directory)
    # posix_spawn, not subprocess: no Popen object left to warn that its child outlives the task. Python's own
    # descriptors are not inheritable (PEP 446); the standard ones go to /dev/null.
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    argv = [sys.executable, "-m", "airflow_provider_mdca.token_agent", str(directory)]
    os.posix_spawn(sys.executable, argv, env, file_actions=null, setsid=True)


class TokenAgent:
    """The agent: tokens by key, in memory, served on ``<directory>/agent.sock`` to this user's processes."""

    def __init__(self, directory: Path, *, idle_exit: float = IDLE_EXIT) -> None:
        self.directory = private_dir(directory)
        self.path = self.directory / _SOCKET
        self.idle_exit = idle_exit
        self._tokens: dict[str, tuple[str, float]] = {}
        self._inode = 0

    def serve(self) -> int:
        """Serve until idle for ``idle_exit``; 0, or 1 when another agent already serves the directory."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            if not self._bind(server):
                return 1
            server.listen(16)
            last = time.monotonic()
            while True:
                server.settimeout(max(0.1, self.idle_exit - (time.monotonic() - last)))
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    break
                with conn:
                    last = time.monotonic()
                    self._handle(conn)
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:  # ours still: another agent may have replaced it
                    self.path.unlink()
        return 0

    def _bind(self, server: socket.socket) -> bool:
        try:
            _exchange(self.path, {"op": "ping"})
            return False  # an agent answers already
        except (FileNotFoundError, ConnectionRefusedError):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a socket left by an agent that died
        except (OSError, ValueError):
            return False
        old = os.umask(0o177)
        try:
            server.bind(str(self.path))
        except OSError:
            return False
        finally:
            os.umask(old)
        self._inode = os.stat(self.path).st_ino
        return True

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(_IO_TIMEOUT)
        try:
            if not _same_user(conn):
                return
            message = json.loads(_read_line(conn) or b"{}")
            answer = self.answer(message if isinstance(message, dict) else {})
            conn.sendall(json.dumps(answer).encode("utf-8") + b"\n")
        except (OSError, ValueError):
            return  # a client gone or garbled: it asks Entra ID itself

    def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request: ``get``, ``put``, ``drop`` or ``ping``."""
        now = time.time()
        self._tokens = {key: held for key, held in self._tokens.items() if held[1] > now}
        key = message.get("key")
        op = message.get("op")
        if op == "ping" or not isinstance(key, str):
            return {"ok": True}
        if op == "get" and key in self._tokens:
            held, until = self._tokens[key]
            return {"token": held, "expires_at": until}
        if op == "put":
            token, expires = message.get("token"), message.get("expires_at")
            if isinstance(token, str) and token and isinstance(expires, (int, float)) and expires > now:
                self._tokens[key] = (token, float(expires))
        elif op == "drop":
            self._tokens.pop(key, None)
        return {"ok": True}


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this user (Linux's SO_PEERCRED; elsewhere the private directory is the guard)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return True
    raw = conn.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", raw)
    return bool(uid == os.getuid())


def main(argv: list[str] | None = None) -> int:
    """``python -m airflow_provider_mdca.token_agent DIR``: serve ``DIR`` until idle."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return TokenAgent(Path(args[0]) if args else agent_dir()).serve()
    except AgentUnavailable:
        return 1


if __name__ == "__main__":
    sys.exit(main())
