r"""The Devo relay emulator: syslog lines over mutual TLS, what ``collector-us.devo.io:443`` is.

A client must present a certificate signed by the emulator CA (``ssl.CERT_REQUIRED``); without one, or with one from
another CA, the handshake fails and nothing is read. Each line is::

    <14>Mmm dd HH:MM:SS <hostname> <tag>: <message>\n

(any ``<PRI>``; the day may be space-padded, ``Nov  3``). The message is stored under the tag; a line that does not
parse is counted as ``malformed`` and kept raw.

Devo's relay never acknowledges, so the emulator must make "what was stored" observable for exactly-once tests:

* lines are stored as they arrive, so a connection cut mid-batch keeps the complete lines read before the cut;
* a final line without ``\n`` (at EOF, on a cut or a reset) is discarded and counted as ``partial_lines``;
* on a clean close (the client's TLS close_notify) everything is stored *before* the relay answers with its own
  close_notify, so a client that waits for that answer knows its batch is in the store;
* :meth:`DevoRelay.stop` resets open connections (TCP RST) instead of closing them: a client that had written its
  whole batch and waits for the close must see a failure, not an EOF it could mistake for success.

Throughput matters (benchmarks push hundreds of MB through one connection), so a connection reads into a reused
buffer, splits lines in bulk, and hands each tag one newline-joined block per read; JSON is never parsed here. A
sender writes one header per batch, so a line that starts with the previous line's header skips the regex: a
``startswith`` and a slice per line (measured faster than stripping headers with ``bytes.replace``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import socketserver
import ssl
import struct
import threading

from mdca_emulator._serving import LOOPBACK, BackgroundServer, TlsServer
from mdca_emulator.devo_faults import DevoFaults
from mdca_emulator.devo_store import DevoStore
from mdca_emulator.tls import CertificateAuthority

__all__ = ["MAX_LINE_BYTES", "DevoRelay", "parse_line"]

log = logging.getLogger(__name__)

# A longer line (no newline within this many bytes) cuts the connection: the emulator will not buffer without end.
MAX_LINE_BYTES = 32 * 2**20
_READ_SIZE = 256 * 1024  # TLS hands over at most one 16 KiB record per read; the rest is headroom
_IDLE_TIMEOUT_S = 120.0
_ALERT_DRAIN_S = 1.0
_MONTHS = b"Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# The header up to and including "<tag>: "; group 1 is the tag (also a file name: see devo_store.valid_tag).
_HEADER = re.compile(
    rb"<\d{1,3}>(?:" + _MONTHS + rb") [ 0-3]?\d \d\d:\d\d:\d\d [^ ]+ ([A-Za-z0-9_][A-Za-z0-9_.-]{0,254}): "
)


def parse_line(line: bytes) -> tuple[str, bytes] | None:
    r"""``(tag, message)`` of one syslog line (without its newline), or None if it does not parse.

    >>> parse_line(b"<14>Nov  3 09:05:01 host-1 my.app.tag: {\"a\": 1}")
    ('my.app.tag', b'{"a": 1}')
    >>> parse_line(b"no header") is None, parse_line(b"<14>Nov 03 09:05:01 h t: ") is None
    (True, True)
    """
    header = _HEADER.match(line)
    if header is None or header.end() == len(line):
        return None
    return header[1].decode("ascii"), line[header.end() :]


class _LineTooLong(Exception):
    """A client sent more than :data:`MAX_LINE_BYTES` without a newline."""


class _Splitter:
    """One connection's line assembly: feeds complete lines to the store, keeps the unfinished tail."""

    def __init__(self, store: DevoStore) -> None:
        self._store = store
        self._tail: list[bytes] = []  # pieces of the unfinished last line (a list: joining once stays linear)
        self._tail_bytes = 0
        # The last header seen and its tag: a sender repeats one header for a whole batch.
        self._prefix = b""
        self._tag = ""

    def feed(self, data: bytes) -> None:
        """Take `data` as read; store every line it completes."""
        self._store.counters.add("relay", "bytes", len(data))
        end = data.rfind(b"\n")
        if end < 0:
            self._tail.append(data)
            self._tail_bytes += len(data)
        else:
            block = b"".join([*self._tail, data[:end]]) if self._tail else data[:end]
            rest = data[end + 1 :]
            self._tail, self._tail_bytes = ([rest], len(rest)) if rest else ([], 0)
            self._store_lines(block)
        if self._tail_bytes > MAX_LINE_BYTES:
            raise _LineTooLong

    def finish(self) -> None:
        """The connection ended: an unfinished last line is discarded and counted."""
        if self._tail_bytes:
            self._store.counters.add("relay", "partial_lines")
        self._tail, self._tail_bytes = [], 0

    def _store_lines(self, block: bytes) -> None:
        groups: dict[str, list[bytes]] = {}
        malformed: list[bytes] = []
        prefix, size = self._prefix, len(self._prefix)
        current = groups.setdefault(self._tag, []) if prefix else []
        for line in block.split(b"\n"):
            if size and len(line) > size and line.startswith(prefix):
                current.append(line[size:])
                continue
            header = _HEADER.match(line)
            if header is None or header.end() == len(line):
                malformed.append(line)
                continue
            size = header.end()
            prefix = line[:size]
            self._tag = header[1].decode("ascii")
            current = groups.setdefault(self._tag, [])
            current.append(line[size:])
        self._prefix = prefix
        stored = 0
        for tag, messages in groups.items():
            if messages:
                stored += len(messages)
                messages.append(b"")  # so that the join ends with a newline
                self._store.append_block(tag, b"\n".join(messages), len(messages) - 1)
        self._store.counters.add("relay", "lines", stored)
        self._store.add_malformed(malformed)


class _Connection:
    """Reads one accepted, handshaken TLS connection to its end, applying the fault knobs."""

    def __init__(self, tls: ssl.SSLSocket, store: DevoStore, faults: DevoFaults, stopping: threading.Event) -> None:
        self._tls = tls
        self._store = store
        self._faults = faults
        self._stopping = stopping
        self._splitter = _Splitter(store)

    def run(self) -> None:
        plan = self._faults.take_drop_limit()
        limit, knob = plan if plan is not None else (None, "")
        buffer = bytearray(_READ_SIZE)
        view = memoryview(buffer)
        received = 0
        try:
            while True:
                want = _READ_SIZE if limit is None else min(_READ_SIZE, limit - received)
                if want <= 0:
                    self._cut(knob)
                    return
                delay = self._faults.relay_read_delay()
                if delay:
                    self._stopping.wait(delay)  # a sleep that stop() can cut short
                count = self._tls.recv_into(view, want)
                if not count:
                    break
                received += count
                self._splitter.feed(bytes(view[:count]))
        except _LineTooLong:
            self._store.counters.add("relay", "line_too_long")
            self._cut(None)
            return
        except (OSError, ValueError) as exc:  # reset, timeout, or stop(); ssl.SSLError is an OSError
            log.debug("relay connection ended: %s", exc.__class__.__name__)
            self._splitter.finish()
            return
        self._splitter.finish()
        if self._stopping.is_set():
            self._abort()  # the EOF was our own shutdown, not the client's close
        else:
            self._close_cleanly()

    def _close_cleanly(self) -> None:
        # Everything is stored; answering the client's close_notify is what tells it so.
        with contextlib.suppress(OSError, ValueError):
            self._tls.unwrap()

    def _cut(self, fault: str | None) -> None:
        """Cut the connection on purpose (a fault knob, an endless line), as a relay that dies mid-batch would."""
        self._splitter.finish()
        self._store.counters.add("relay", "cut")
        if fault is not None:
            self._faults.note(fault)
        self._abort()

    def _abort(self) -> None:
        """Close abruptly: SO_LINGER 0 makes close() send a TCP RST instead of a FIN."""
        with contextlib.suppress(OSError):
            self._tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._tls.close()


def _let_the_alert_arrive(sock: socket.socket) -> None:
    """Half-close and drain what the client already sent before closing a refused connection.

    With TLS 1.3 the client sends data before it learns that its certificate was refused. Closing with that data
    unread would make the kernel answer with a RST, which destroys the TLS alert on its way; the client would see
    "connection reset" instead of "certificate required".
    """
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.settimeout(_ALERT_DRAIN_S)
        while socket.socket.recv(sock, 65536):
            pass


class _Handler(socketserver.BaseRequestHandler):
    server: _RelayServer

    def handle(self) -> None:
        self.server.serve_connection(self.request)


class _RelayServer(TlsServer):
    logger = log
    connection_name = "relay connection"
    # close_connections ends every open connection: SHUT_RD wakes the reading thread without sending a FIN; the
    # thread then stores what it has read and resets the connection (stopping is set).
    cut_how = socket.SHUT_RD

    def __init__(self, port: int, context: ssl.SSLContext, store: DevoStore, faults: DevoFaults) -> None:
        self.store = store
        self.faults = faults
        super().__init__(port, context, _Handler)

    def serve_connection(self, raw: socket.socket) -> None:
        """Refuse, handshake and read one connection (in its own thread, so the accept loop never waits)."""
        counters = self.store.counters
        counters.add("relay", "connections")
        if self.faults.take_refusal():
            counters.add("relay", "refused")
            raw.close()
            return
        tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            with self.tracked(tls):
                error = self.handshake(tls)
                if error is not None:
                    # No certificate, another CA's, or a client that does not trust ours: nothing is read.
                    counters.add("relay", "handshake_failures")
                    log.debug("relay TLS handshake failed: %s", error)
                    _let_the_alert_arrive(tls)
                    return
                tls.settimeout(_IDLE_TIMEOUT_S)
                _Connection(tls, self.store, self.faults, self.stopping).run()
        finally:
            tls.close()


class DevoRelay(BackgroundServer[_RelayServer]):
    """The TLS syslog relay on 127.0.0.1, storing into `store` and obeying `faults`.

    :meth:`stop` ends open connections; the complete lines they carried are kept.

    :param ca: the CA whose server certificate the relay presents and whose client certificates it accepts.
    :param port: TCP port (0: any free port).
    """

    _thread_name = "devo-relay"
    _display_name = "the Devo relay"

    def __init__(self, ca: CertificateAuthority, store: DevoStore, faults: DevoFaults, port: int = 0) -> None:
        self.ca = ca
        self.store = store
        self.faults = faults
        super().__init__(port)

    def _make_server(self, port: int) -> _RelayServer:
        context = self.ca.server_context(require_client_cert=True)
        return _RelayServer(port, context, self.store, self.faults)

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)`` (after :meth:`start`)."""
        return LOOPBACK, self.port
