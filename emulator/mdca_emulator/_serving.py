"""Plumbing the emulator's servers share: a TLS listener on 127.0.0.1, and the thread that runs it.

* :class:`TlsServer` — a threaded TCP server on 127.0.0.1 for TLS connections. Each handshake runs in the
  connection's own thread (a slow or refusing client never blocks the accept loop), and the server tracks its open
  connections so that :meth:`~TlsServer.close_connections` can cut them when it stops.
* :class:`HttpsServer` — a :class:`TlsServer` for ``http.server`` handlers: it accepts, wraps and handshakes every
  connection itself (``server.py``, ``devo_http.py``).
* :class:`HttpsHandler` — the request handler both HTTPS servers build on: HTTP/1.1 keep-alive, every method to one
  ``_serve``, an answer's head for a single write, and the TCP reset a fault asks for.
* :class:`Lifecycle` — ``with obj:`` starts and stops it.
* :class:`BackgroundServer` — a :class:`Lifecycle` that runs one :class:`TlsServer` in a daemon thread:
  ``start``, ``stop`` and ``port``.
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import http.server
import logging
import socket
import socketserver
import ssl
import struct
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

__all__ = [
    "HANDSHAKE_TIMEOUT_S",
    "LOOPBACK",
    "BackgroundServer",
    "HttpsHandler",
    "HttpsServer",
    "Lifecycle",
    "TlsServer",
]

LOOPBACK = "127.0.0.1"
HANDSHAKE_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.05
_JOIN_TIMEOUT_S = 5.0

_L = TypeVar("_L", bound="Lifecycle")
_B = TypeVar("_B", bound="BackgroundServer[Any]")


class TlsServer(socketserver.ThreadingTCPServer):
    """A threaded TCP server on 127.0.0.1 for TLS connections; it tracks the open ones so that it can cut them.

    A subclass wraps each connection in :attr:`context`, serves it inside :meth:`tracked` and handshakes it with
    :meth:`handshake`, in the connection's thread. :attr:`stopping` is set once :meth:`close_connections` runs,
    so that connection threads can tell the server's own shutdown from a client's close, and cut their waits short.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    #: Where connection errors are logged (a subclass names its own module's logger).
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)
    #: What a connection is called in those log lines.
    connection_name: ClassVar[str] = "connection"
    #: How :meth:`close_connections` shuts each open connection.
    cut_how: ClassVar[int] = socket.SHUT_RDWR

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext,
        handler: type[socketserver.BaseRequestHandler],
    ) -> None:
        self.context = context
        self.stopping = threading.Event()
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__((LOOPBACK, port), handler)

    @contextlib.contextmanager
    def tracked(self, sock: socket.socket) -> Iterator[None]:
        """Count `sock` among the open connections (the ones :meth:`close_connections` cuts) while the block runs."""
        with self._active_lock:
            self._active.add(sock)
        try:
            yield
        finally:
            with self._active_lock:
                self._active.discard(sock)

    def handshake(self, tls: ssl.SSLSocket) -> OSError | None:
        """Run the TLS handshake of `tls` within :data:`HANDSHAKE_TIMEOUT_S`; the error if it failed, else None."""
        tls.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls.do_handshake()
        except OSError as exc:  # ssl.SSLError is an OSError
            return exc
        return None

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.logger.debug("%s from %s ended with an error", self.connection_name, client_address[0], exc_info=True)

    def close_connections(self) -> None:
        """Set :attr:`stopping` and shut every open connection (:attr:`cut_how`), so that their threads end."""
        self.stopping.set()
        with self._active_lock:
            active = list(self._active)
        for sock in active:
            # socket.socket.shutdown, not SSLSocket.shutdown: the latter drops the TLS object under a thread
            # that may be reading, which would then read ciphertext as plain bytes.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, self.cut_how)


class HttpsServer(TlsServer, http.server.HTTPServer):
    """A :class:`TlsServer` for ``http.server`` handlers, with ``TCP_NODELAY`` on every connection.

    Small answers leave in one write; ``TCP_NODELAY`` keeps them from waiting on delayed ACKs.
    """

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a name lookup this loopback server has no use for.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = LOOPBACK, self.server_address[1]

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.tracked(request):
            error = self.handshake(request)
            if error is not None:
                # A client that does not trust our CA, or a broken one: nothing to answer. Not an error of ours.
                self.logger.debug("TLS handshake with %s failed: %s", client_address[0], error)
                return
            super().finish_request(request, client_address)


class HttpsHandler(http.server.BaseHTTPRequestHandler):
    """A request handler for :class:`HttpsServer`: HTTP/1.1 keep-alive, GET/POST/PUT/PATCH/DELETE all to ``_serve``.

    A subclass implements ``_serve`` and writes each answer in one ``wfile.write`` of :meth:`_head` and the body.
    """

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raise NotImplementedError

    def _head(self, status: int, headers: Mapping[str, str], length: int | None, closing: bool) -> bytes:
        """An answer's status line and headers, up to and including the blank line.

        Server, Date, `headers`, then Content-Length unless `length` is None, and ``Connection: close`` if `closing`.
        """
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
            f"Server: {self.server_version}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if closing:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send a TCP RST instead of a FIN."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


class Lifecycle(abc.ABC):
    """Something with :meth:`start` and :meth:`stop`; ``with obj:`` starts it and stops it."""

    @abc.abstractmethod
    def start(self: _L) -> _L:
        """Start; returns self."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop (nothing happens if not started)."""

    def __enter__(self: _L) -> _L:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.stop()


_S = TypeVar("_S", bound=TlsServer)


class BackgroundServer(Lifecycle, Generic[_S]):
    """Runs one :class:`TlsServer` in a daemon thread, from :meth:`start` to :meth:`stop`.

    A subclass builds its server in :meth:`_make_server` and names its thread (:attr:`_thread_name`) and itself
    (:attr:`_display_name`, for the "not started" error).

    :param port: TCP port (0: any free port).
    """

    _thread_name: ClassVar[str] = "emulator"
    _display_name: ClassVar[str] = "the server"

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: _S | None = None
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def _make_server(self, port: int) -> _S:
        """A new server listening on `port` (0: any free port); :meth:`start` serves it."""

    def start(self: _B) -> _B:
        """Start listening (in a background thread); returns once connections are accepted."""
        if self._server is not None:
            return self
        server = self._make_server(self._requested_port)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut open connections (:meth:`TlsServer.close_connections`) and wait for the thread."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_TIMEOUT_S)

    @property
    def port(self) -> int:
        """The listening port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError(f"{self._display_name} is not started")
        return int(self._server.server_address[1])
