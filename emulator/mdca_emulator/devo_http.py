"""The Devo HTTP ingestion emulator: what ``https://http-us.devo.io`` is, plus the ``/_admin/devo/`` API.

Routes::

    POST /stream/<domain>/token!<token>/<hostname>/<tag>  events, one a line  200 {"status": "ok", "received": n}
    POST /event/<domain>/token!<token>/<hostname>/<tag>   one event           204
    *    /_admin/devo/...                                 admin API           (devo_admin.py)

HTTPS with the emulator CA's server certificate; no client certificate. ``Content-Encoding: gzip`` bodies are
inflated (several gzip members allowed). A body over 32 MiB after inflation is refused with 413; a wrong domain or
a wrong or missing token with 401 ``{"error": "invalid token", "status": 401}``; any other path with 404.

The token is a credential: it never appears in an answer or a log line (logged paths read ``token!***``).
HTTP/1.1 keep-alive with Content-Length; each answer leaves in a single write; the TLS handshake runs in the
connection's own thread, so a slow or refusing client never blocks the accept loop.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import ssl
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from mdca_emulator import devo_admin
from mdca_emulator._serving import LOOPBACK, BackgroundServer, HttpsHandler, HttpsServer
from mdca_emulator.devo_faults import DevoFaults
from mdca_emulator.devo_store import DevoStore, valid_tag
from mdca_emulator.reply import Reply, json_reply
from mdca_emulator.tls import CertificateAuthority

__all__ = ["MAX_BODY_BYTES", "DevoHttpEndpoint", "redact"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 2**20  # Devo's limit per request, after inflation
# On the wire a gzip body of incompressible data is a little larger than its content; allow for that.
_MAX_WIRE_BYTES = MAX_BODY_BYTES + 2**20
_MAX_ADMIN_BODY = 2**20
_IDLE_TIMEOUT_S = 30.0
# The token's segment of an ingestion path, whether or not the client remembered the "token!" marker.
_TOKEN_SEGMENT = re.compile(r"(/(?:stream|event)/[^/\s]*/)[^/\s]*", re.IGNORECASE)
_TOKEN_PART = re.compile(r"token(?:!|%21)[^/\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the token segment of ingestion paths, and any ``token!<token>``, replaced by ``token!***``.

    >>> redact("POST /stream/d/token!s3cr3t/h/t HTTP/1.1")
    'POST /stream/d/token!***/h/t HTTP/1.1'
    >>> redact("/event/d/s3cr3t-without-marker/h/t")
    '/event/d/token!***/h/t'
    """
    return _TOKEN_PART.sub("token!***", _TOKEN_SEGMENT.sub(r"\1token!***", text))


class _TooLarge(Exception):
    """The inflated body exceeds :data:`MAX_BODY_BYTES`."""


class _UnsupportedEncoding(Exception):
    """A ``Content-Encoding`` other than gzip or identity."""


@dataclass(frozen=True)
class _Ingest:
    """A parsed ingestion path."""

    kind: str  # "stream" or "event"
    domain: str
    token: str | None  # None: the path has no ``token!`` segment
    hostname: str
    tag: str


def _ingest_route(parts: list[str]) -> _Ingest | None:
    if len(parts) != 5 or parts[0] not in ("stream", "event"):
        return None
    kind, domain, token_part, hostname, tag = parts
    token = token_part[len("token!") :] if token_part.startswith("token!") else None
    return _Ingest(kind, domain, token, hostname, tag)


def _gunzip(data: bytes) -> bytes:
    """Inflate one or more gzip members, refusing (``_TooLarge``) to produce more than the body limit."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        # max_length stops a small "gzip bomb" from inflating without bound before we can say 413.
        piece = inflater.decompress(data, MAX_BODY_BYTES - size + 1)
        size += len(piece)
        out.append(piece)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        if not inflater.eof:
            raise ValueError("truncated gzip body")
        data = inflater.unused_data
    return b"".join(out)


def _event_lines(body: bytes) -> list[bytes]:
    """The non-empty lines of a body (CRLF tolerated)."""
    lines = body.split(b"\n")
    if b"\r" in body:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return [line for line in lines if line]


def _fault_reply(fault: str) -> Reply:
    if fault.startswith("429"):
        headers = {"Retry-After": "1"} if fault == "429" else {}
        return json_reply(429, {"error": "too many requests", "status": 429}, headers)
    status = int(fault)
    return json_reply(status, {"error": "injected server error", "status": status})


class _Handler(HttpsHandler):
    server_version = "Devo-Emulator/1.0"
    timeout = _IDLE_TIMEOUT_S  # idle keep-alive connections end, so their threads do too
    server: _HttpsServer

    # -- routing ---------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        self.server.store.counters.add("http", "requests")
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.split("/") if part]
        if parts[:2] == ["_admin", "devo"]:
            self._admin(parts[2:], url.query)
            return
        route = _ingest_route(parts)
        if route is None:
            self._discard_body()
            self._send(json_reply(404, {"error": "not found", "status": 404}))
            return
        self._ingest(route)

    def _admin(self, parts: list[str], query_string: str) -> None:
        body = self._read_body(_MAX_ADMIN_BODY)
        if body is None:
            return
        if self.client_address[0] != LOOPBACK:
            self._send(json_reply(403, {"error": "admin API is loopback-only", "status": 403}))
            return
        query = {key: values[-1] for key, values in parse_qs(query_string, keep_blank_values=True).items()}
        server = self.server
        self._send(devo_admin.handle(server.store, server.faults, self.command, parts, query, body))

    def _ingest(self, route: _Ingest) -> None:
        server = self.server
        if self.command != "POST":
            self._discard_body()
            self._send(json_reply(405, {"error": "method not allowed", "status": 405}, {"Allow": "POST"}))
            return
        delay = server.faults.http_read_delay()
        if delay:
            server.stopping.wait(delay)  # a sleep that stop() can cut short
        # An identity body is its content: its length alone says whether it is too large.
        wire = self._read_body(_MAX_WIRE_BYTES if self._encoding() == "gzip" else MAX_BODY_BYTES)
        if wire is None:
            return
        server.store.counters.add("http", "bytes", len(wire))
        fault = server.faults.take_http_fault()
        if fault is not None and fault != "reset-after-store":
            if fault == "reset":
                self._reset()
            else:
                self._send(_fault_reply(fault))
            return
        reply = self._accept(route, wire)
        if fault == "reset-after-store" and reply.status < 300:
            self._reset()  # stored, but the client never hears so: it will send again
            return
        self._send(reply)

    def _accept(self, route: _Ingest, wire: bytes) -> Reply:
        """Check credentials, inflate, store; the reply to send."""
        server = self.server
        if not server.authorized(route.domain, route.token):
            return json_reply(401, {"error": "invalid token", "status": 401})
        if not valid_tag(route.tag):
            return json_reply(400, {"error": "invalid tag", "status": 400})
        try:
            body = self._inflate(wire)
        except _TooLarge:
            return json_reply(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes", "status": 413})
        except _UnsupportedEncoding as exc:
            return json_reply(415, {"error": str(exc), "status": 415})
        except ValueError as exc:
            return json_reply(400, {"error": str(exc), "status": 400})
        lines = _event_lines(body)
        if route.kind == "event" and not lines:
            return json_reply(400, {"error": "empty event", "status": 400})
        server.store.append(route.tag, lines)
        server.store.counters.add("http", "lines", len(lines))
        if route.kind == "event":
            return Reply(204)
        return json_reply(200, {"status": "ok", "received": len(lines)})

    def _encoding(self) -> str:
        return (self.headers.get("Content-Encoding") or "identity").strip().lower()

    def _inflate(self, wire: bytes) -> bytes:
        encoding = self._encoding()
        if encoding == "gzip":
            try:
                return _gunzip(wire)
            except zlib.error:
                raise ValueError("body is not valid gzip") from None
        if encoding != "identity":
            raise _UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")
        if len(wire) > MAX_BODY_BYTES:
            raise _TooLarge
        return wire

    # -- body ------------------------------------------------------------------------------------------------

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None when the request ends here (an error answered, or the client gone)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._send(json_reply(411, {"error": "Content-Length required", "status": 411}))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(json_reply(400, {"error": "bad Content-Length", "status": 400}))
            return None
        if length > limit:
            # Not read: closing is cheaper than swallowing tens of megabytes we will refuse anyway.
            self.close_connection = True
            self._send(json_reply(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes", "status": 413}))
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away mid-body: a truncated batch must not be stored, and nobody hears an answer.
            self.server.store.counters.add("http", "incomplete_bodies")
            self.close_connection = True
            return None
        return body

    def _discard_body(self) -> None:
        """Read and drop a body we will not use, so that the next request on this connection parses."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if chunked or not 0 <= length <= _MAX_WIRE_BYTES:
            self.close_connection = True  # cannot find the end of this body: the connection must go
        elif length:
            self.rfile.read(length)

    # -- answering -------------------------------------------------------------------------------------------

    def _send(self, reply: Reply) -> None:
        self.server.store.counters.add("http_status", str(reply.status))
        # A 204 carries no body and no Content-Length (RFC 9110 §8.6).
        length = None if reply.status == 204 else len(reply.body)
        head = self._head(reply.status, reply.headers, length, self.close_connection)
        self.wfile.write(head + reply.body)
        path = redact(urlsplit(getattr(self, "path", "")).path)
        log.debug("%s %s -> %s", self.command, path, reply.status)

    def _reset(self) -> None:
        """Abort the connection (a TCP RST), counted under ``http_status``."""
        self.server.store.counters.add("http_status", "reset")
        super()._reset()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stock page quotes the request line, which may hold the token: answer with the status only.
        self.close_connection = True
        phrase = self.responses.get(code, ("error",))[0].lower()
        with contextlib.suppress(OSError):
            self._send(json_reply(code, {"error": phrase, "status": code}))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s", redact(format % args))


class _HttpsServer(HttpsServer):
    logger = log

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext,
        store: DevoStore,
        faults: DevoFaults,
        credentials: tuple[str, str],
    ) -> None:
        self.store = store
        self.faults = faults
        self._domain, self._token = credentials
        super().__init__(port, context, _Handler)

    def authorized(self, domain: str, token: str | None) -> bool:
        """Whether `domain` and `token` are the configured ones (constant-time on the token)."""
        if token is None:
            return False
        token_ok = hmac.compare_digest(token.encode(), self._token.encode())
        return token_ok and domain == self._domain


class DevoHttpEndpoint(BackgroundServer[_HttpsServer]):
    """The HTTPS ingestion endpoint (and admin API) on 127.0.0.1.

    :param credentials: ``(domain, token)`` that ``/stream`` and ``/event`` paths must carry.
    :param port: TCP port (0: any free port).
    """

    _thread_name = "devo-http"
    _display_name = "the Devo HTTP endpoint"

    def __init__(
        self,
        ca: CertificateAuthority,
        store: DevoStore,
        faults: DevoFaults,
        credentials: tuple[str, str],
        port: int = 0,
    ) -> None:
        self.ca = ca
        self.store = store
        self.faults = faults
        self._credentials = credentials
        super().__init__(port)

    def _make_server(self, port: int) -> _HttpsServer:
        context = self.ca.server_context()
        return _HttpsServer(port, context, self.store, self.faults, self._credentials)

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>`` (after :meth:`start`)."""
        return f"https://{LOOPBACK}:{self.port}"
