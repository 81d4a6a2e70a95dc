"""Devo's two ways in, emulated on 127.0.0.1: the TLS syslog relay and the HTTP ingestion API, one store for both.

The pieces, one concern each:

* :mod:`.devo_relay` — syslog lines over mutual TLS (what ``collector-us.devo.io:443`` is).
* :mod:`.devo_http` — ``POST /stream/<domain>/token!<token>/<hostname>/<tag>`` and ``/event/...`` over HTTPS
  (what ``https://http-us.devo.io`` is), plus the admin API of :mod:`.devo_admin`.
* :mod:`.devo_store` — one NDJSON file per tag, counts and counters.
* :mod:`.devo_faults` — fault knobs, changeable while the servers run.

:class:`DevoEmulator` ties them together and shares the MDCA emulator's CA (:mod:`.tls`), so one ``ca.pem`` is the
trust anchor for everything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mdca_emulator._serving import Lifecycle
from mdca_emulator.devo_faults import DevoFaults
from mdca_emulator.devo_http import DevoHttpEndpoint
from mdca_emulator.devo_relay import DevoRelay
from mdca_emulator.devo_store import DevoStore
from mdca_emulator.tls import CertificateAuthority

__all__ = ["CLIENT_COMMON_NAME", "DEFAULT_DOMAIN", "DevoEmulator", "derive_token"]

DEFAULT_DOMAIN = "emu_domain"
CLIENT_COMMON_NAME = "devo-client"


def derive_token(domain: str) -> str:
    """The token a :class:`DevoEmulator` uses when given none: stable for a domain across runs.

    >>> derive_token("emu_domain") == derive_token("emu_domain") != derive_token("other")
    True
    """
    return hashlib.sha256(f"devo-emulator-http-token:{domain}".encode()).hexdigest()[:32]


class DevoEmulator(Lifecycle):
    r"""The Devo relay and HTTP ingestion endpoint, started and stopped together.

    >>> with DevoEmulator(tmp_path) as devo:  # doctest: +SKIP
    ...     host, port = devo.relay_address           # mutual TLS: devo.client_cert(), devo.ca_bundle
    ...     requests.post(devo.ingest_url("my.tag"), data=b"{}\n", verify=devo.ca_bundle)
    ...     devo.store.count("my.tag")

    :param state_dir: CA and certificates (shared with the MDCA emulator when it is the same directory).
    :param domain: the Devo domain the HTTP paths must name.
    :param token: the HTTP ingestion token; None derives one from the domain (:func:`derive_token`).
    :param store_dir: where ``<tag>.ndjson`` files go (default ``<state_dir>/devo-store``).
    :param relay_port: the relay's TCP port (0: any free port).
    :param http_port: the HTTP endpoint's TCP port (0: any free port).
    :param ca: an already loaded CA to share (default: ``CertificateAuthority.load_or_create(state_dir)``).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        domain: str = DEFAULT_DOMAIN,
        token: str | None = None,
        store_dir: Path | None = None,
        relay_port: int = 0,
        http_port: int = 0,
        ca: CertificateAuthority | None = None,
    ) -> None:
        if not domain or "/" in domain:
            raise ValueError(f"invalid Devo domain {domain!r}")
        if token is not None and (not token or "/" in token):
            raise ValueError("the token must be non-empty and contain no '/'")
        self.state_dir = Path(state_dir)
        self.ca = ca or CertificateAuthority.load_or_create(self.state_dir)
        self._domain = domain
        self._token = token or derive_token(domain)
        self.store = DevoStore(Path(store_dir) if store_dir else self.state_dir / "devo-store")
        self.faults = DevoFaults(on_inject=self._count_fault)
        self._relay = DevoRelay(self.ca, self.store, self.faults, relay_port)
        self._http = DevoHttpEndpoint(self.ca, self.store, self.faults, (domain, self._token), http_port)
        self._client: tuple[Path, Path] | None = None
        self._started = False

    def _count_fault(self, name: str) -> None:
        self.store.counters.add("faults_injected", name)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> DevoEmulator:
        """Start both servers (background threads); returns once they accept connections."""
        if self._started:
            return self
        self.client_cert()
        try:
            self._relay.start()
            self._http.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop both servers; open connections end (complete lines already read are kept)."""
        self._relay.stop()
        self._http.stop()
        self.store.close()
        self._started = False

    # -- where and how to connect ----------------------------------------------------------------------------

    @property
    def relay_address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)`` of the TLS syslog relay."""
        return self._relay.address

    @property
    def http_url(self) -> str:
        """``https://127.0.0.1:<port>``: the HTTP ingestion endpoint (and admin API)."""
        return self._http.url

    @property
    def admin_url(self) -> str:
        """``https://127.0.0.1:<port>/_admin/devo/``."""
        return f"{self.http_url}/_admin/devo/"

    @property
    def ca_bundle(self) -> Path:
        """The CA certificate both servers' certificates chain to (and that signs accepted client certs)."""
        return self.ca.ca_cert_path

    @property
    def domain(self) -> str:
        """The Devo domain of the HTTP paths."""
        return self._domain

    @property
    def token(self) -> str:
        """The HTTP ingestion token."""
        return self._token

    def client_cert(self) -> tuple[Path, Path]:
        """``(cert, key)`` paths of a client certificate the relay accepts (CN ``devo-client``), issued once."""
        if self._client is None:
            self._client = self.ca.issue_client_cert(CLIENT_COMMON_NAME)
        return self._client

    def ingest_url(self, tag: str, hostname: str = "emu-host", kind: str = "stream") -> str:
        """The full ``/stream`` (or ``/event``) URL for `tag`, token included: treat it as a secret."""
        return f"{self.http_url}/{kind}/{self._domain}/token!{self._token}/{hostname}/{tag}"

    def describe(self) -> dict[str, Any]:
        """What a client needs to connect (JSON-ready; holds the token and the client key's path)."""
        host, port = self.relay_address
        cert, key = self.client_cert()
        return {
            "relay_host": host,
            "relay_port": port,
            "http_url": self.http_url,
            "admin_url": self.admin_url,
            "domain": self._domain,
            "token": self._token,
            "ca_bundle": str(self.ca_bundle),
            "client_cert": str(cert),
            "client_key": str(key),
            "store_dir": str(self.store.directory),
        }

    # -- what arrived ----------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The store's counters (see :meth:`DevoStore.stats`)."""
        return self.store.stats()

    def reset(self) -> None:
        """Empty the store, zero the counters and clear every fault knob."""
        self.store.reset()
        self.faults.reset()
