"""The emulator's HTTPS server: one loopback listener for Entra ID, MDCA and the admin API.

Routes (``<t>`` is a tenant id)::

    GET  /<t>/v2.0/.well-known/openid-configuration      Entra discovery      (entra.py)
    POST /<t>/oauth2/v2.0/token                          Entra token          (entra.py)
    GET  /<t>/discovery/v2.0/keys                        Entra JWKS (empty)   (entra.py)
    GET|POST /mdca/<t>/<endpoint>                        MDCA lists           (mdca.py; /cas/<endpoint> too)
    *    /_admin/...                                     admin API            (admin.py)

The handler only parses HTTP and writes answers; the logic lives in the modules named above. HTTP/1.1
keep-alive with Content-Length throughout; each answer leaves in a single write (header and body together,
``TCP_NODELAY``), which keeps small answers from waiting on delayed ACKs. The TLS handshake runs in the
connection's own thread, so a slow or refusing client never blocks the accept loop.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from mdca_emulator import admin, entra, mdca, services
from mdca_emulator._serving import LOOPBACK as LOOPBACK
from mdca_emulator._serving import BackgroundServer, HttpsHandler, HttpsServer
from mdca_emulator.reply import Prepared, Reply, json_reply
from mdca_emulator.state import TenantConfig, TenantRegistry, TenantState
from mdca_emulator.tls import CertificateAuthority

__all__ = ["EmulatorServer"]

log = logging.getLogger(__name__)

_MAX_BODY = 1 << 20
_IDLE_TIMEOUT_S = 30.0
# An endpoint is served at the registry's path (``api/v1/subnet/``) and below ``cas/`` (``cas/api/v1/subnet/``).
_API_PREFIXES = ((), ("cas",))


class _App:
    """Routing: turns (method, path, headers, body) into a :class:`Reply`."""

    def __init__(self, registry: TenantRegistry) -> None:
        self.registry = registry
        self.base_url = ""

    def dispatch(
        self,
        method: str,
        target: str,
        headers: Any,
        body: bytes,
        client_ip: str,
        prepared: Prepared | None = None,
    ) -> Reply:
        url = urlsplit(target)
        parts = [unquote(part) for part in url.path.split("/") if part]
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        if parts[:1] == ["_admin"]:
            if client_ip != LOOPBACK:
                return json_reply(403, {"error": "admin API is loopback-only"})
            return admin.handle(self.registry, method, parts[1:], query, body)
        if parts[:1] == ["mdca"] and len(parts) >= 3:
            return self._mdca(method, parts[1], parts[2:], query, headers, body, prepared)
        if len(parts) >= 2:
            reply = self._entra(method, parts, headers, body)
            if reply is not None:
                return reply
        return json_reply(404, {"detail": "Not found."})

    def _mdca(
        self,
        method: str,
        tenant_id: str,
        rest: list[str],
        query: Any,
        headers: Any,
        body: bytes,
        prepared: Prepared | None,
    ) -> Reply:
        state = self.registry.get(tenant_id)
        service = _service_of(rest)
        if state is None or service is None:
            return json_reply(404, {"detail": "Not found."})
        if method not in ("GET", "POST"):
            return json_reply(405, {"detail": f'Method "{method}" not allowed.'})
        request = mdca.ApiRequest(method, query, body, headers.get("Authorization"), prepared)
        return mdca.handle(state, service, request)

    def _entra(self, method: str, parts: list[str], headers: Any, body: bytes) -> Reply | None:
        tenant_id, rest = parts[0], parts[1:]
        state = self.registry.get(tenant_id)
        if rest == ["v2.0", ".well-known", "openid-configuration"] and method == "GET":
            return entra.openid_configuration(state, tenant_id, self.base_url)
        if rest == ["oauth2", "v2.0", "token"] and method == "POST":
            form = entra.parse_form(body)
            correlation = headers.get("client-request-id")
            authorization = headers.get("Authorization")
            return entra.token(state, tenant_id, form, authorization, correlation, self.base_url)
        if rest == ["discovery", "v2.0", "keys"] and method == "GET":
            return entra.jwks()
        return None


def _service_of(rest: list[str]) -> str | None:
    """The service whose endpoint (the registry's) is the path `rest` after the tenant, or None."""
    for prefix in _API_PREFIXES:
        if tuple(rest[: len(prefix)]) == prefix:
            service = services.by_path(rest[len(prefix) :])
            if service is not None:
                return service
    return None


class _Handler(HttpsHandler):
    server_version = "MDCA-Emulator/1.0"
    timeout = _IDLE_TIMEOUT_S  # idle keep-alive connections end, so their threads do too
    server: _HttpsServer
    _prepared: Prepared | None = None  # this connection's prefetched answer (mdca.py, scan prefetch)

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        prepared, self._prepared = self._prepared, None
        app, client_ip = self.server.app, self.client_address[0]
        reply = app.dispatch(self.command, self.path, self.headers, body, client_ip, prepared)
        # Log the path only: query strings and bodies never reach the log, so no credential can.
        log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, reply.fault or reply.status)
        self._send(reply)
        if reply.follow_up is not None and not self.close_connection:
            self._prepared = reply.follow_up()

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send(json_reply(411, {"detail": "Content-Length required."}))
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._send(json_reply(413, {"detail": "Request body too large or bad Content-Length."}))
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        if reply.fault == "reset":
            self._reset()
            return
        body = reply.body
        closing = self.close_connection or reply.fault == "truncate"
        head = self._head(reply.status, reply.headers, len(body), closing)
        if reply.fault == "truncate":
            body = body[: len(body) // 2]
        self.wfile.write(head + body)
        if closing:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class _HttpsServer(HttpsServer):
    logger = log

    def __init__(self, port: int, context: ssl.SSLContext, app: _App) -> None:
        self.app = app
        super().__init__(port, context, _Handler)


class EmulatorServer(BackgroundServer[_HttpsServer]):
    """Entra ID + MDCA over real HTTPS on 127.0.0.1.

    >>> with EmulatorServer(tmp_path, tenants=[TenantConfig("t1")]) as emu:  # doctest: +SKIP
    ...     requests.post(emu.mdca_url("t1") + "api/v1/alerts/", json={}, verify=emu.ca_bundle, ...)
    """

    _thread_name = "mdca-emulator"
    _display_name = "the emulator"

    def __init__(
        self,
        state_dir: Path,
        port: int = 0,
        tenants: list[TenantConfig] | None = None,
        host: str = LOOPBACK,
    ) -> None:
        if host not in (LOOPBACK, "localhost"):
            raise ValueError(f"the emulator only listens on {LOOPBACK}, not {host!r}")
        self.state_dir = Path(state_dir)
        self.ca = CertificateAuthority.load_or_create(self.state_dir)
        self.registry = TenantRegistry()
        self._app = _App(self.registry)
        super().__init__(port)
        for config in tenants or []:
            self.add_tenant(config)

    # -- lifecycle: start, stop, with and port come from BackgroundServer ------------------------------------

    def _make_server(self, port: int) -> _HttpsServer:
        httpd = _HttpsServer(port, self.ca.server_context(), self._app)
        self._app.base_url = f"https://{LOOPBACK}:{httpd.server_address[1]}"
        return httpd

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def token_url(self) -> str:
        """Entra's root with a trailing slash: the MSAL authority is ``token_url + tenant_id``."""
        return self.base_url + "/"

    @property
    def admin_url(self) -> str:
        """``https://127.0.0.1:<port>/_admin/``."""
        return self.base_url + "/_admin/"

    def mdca_url(self, tenant_id: str) -> str:
        """The tenant's MDCA base URL (join a service's endpoint, e.g. ``api/v1/alerts/``, to it)."""
        return f"{self.base_url}/mdca/{tenant_id}/"

    @property
    def ca_bundle(self) -> Path:
        """The CA certificate clients must trust (``requests``' ``verify=``)."""
        return self.ca.ca_cert_path

    # -- tenants ---------------------------------------------------------------------------------------------

    def add_tenant(self, config: TenantConfig) -> TenantState:
        """Create (or replace) a tenant."""
        return self.registry.put(config)

    def remove_tenant(self, tenant_id: str) -> bool:
        """Forget a tenant."""
        return self.registry.remove(tenant_id)

    def tenant(self, tenant_id: str) -> TenantState:
        """The live tenant, to change its knobs (``.update(...)``) or read its state; KeyError if unknown."""
        return self.registry[tenant_id]

    def truth(
        self,
        tenant_id: str,
        service: str,
        start_ms: int,
        end_ms: int,
        visible_only: bool = False,
        *,
        by: str | None = None,
        as_of: int | str | None = None,
    ) -> list[str]:
        """Sorted ``_id``s a complete read of ``[start_ms, end_ms)`` must return (snapshots: the collection's ids).

        `by`: the field the range is on (default the registry's window field); `as_of`: epoch ms, ``"now"`` or
        ``"horizon"`` (the default: every record however late; `visible_only` means now). See ``TenantState.truth``.
        """
        return self.tenant(tenant_id).truth(service, start_ms, end_ms, visible_only, by=by, as_of=as_of)

    def stats(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's counters."""
        return self.tenant(tenant_id).stats()

    def set_now(self, now_ms: int | None, tenant_id: str | None = None) -> None:
        """Pin the clock (epoch ms) of one tenant, or the server-wide clock; None releases it."""
        if tenant_id is None:
            self.registry.clock.release()
            self.registry.clock.override_ms = now_ms
        else:
            self.tenant(tenant_id).set_now(now_ms)

    def set_rate(self, rate: float, origin_ms: int | None = None, tenant_id: str | None = None) -> None:
        """Compress the clock of one tenant, or the server-wide one.

        From `origin_ms` (default: the time it shows now) it runs `rate` times as fast as the clock below it (the
        server's, or the wall clock's).
        """
        if tenant_id is None:
            self.registry.clock.set_rate(rate, origin_ms)
        else:
            self.tenant(tenant_id).set_rate(rate, origin_ms)

    def now_ms(self, tenant_id: str | None = None) -> int:
        """The time on the clock of one tenant, or on the server-wide clock."""
        return self.registry.clock.now_ms() if tenant_id is None else self.tenant(tenant_id).now_ms()

    def describe(self) -> dict[str, Any]:
        """What a client needs to connect: URLs, CA bundle and every tenant's credentials (emulator.json)."""
        tenants = []
        for tenant_id in self.registry.ids():
            config = self.tenant(tenant_id).settings()
            tenants.append(
                {
                    "tenant_id": tenant_id,
                    "mdca_url": self.mdca_url(tenant_id),
                    "client_id": config.client_id,
                    "client_secret": config.client_secret,
                    "files_access_token": config.files_access_token,
                }
            )
        return {
            "base_url": self.base_url,
            "token_url": self.token_url,
            "ca_bundle": str(self.ca_bundle),
            "admin_url": self.admin_url,
            "services": list(services.NAMES),
            "tenants": tenants,
        }
