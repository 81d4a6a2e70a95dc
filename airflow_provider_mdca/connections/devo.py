"""The Devo sender's configuration: a typed, validated view of a ``devo`` connection.

The client certificate's private key lives in the extra ``private_key``, a name Airflow's secrets masker hides in
logs, the REST API and the UI; the older name ``key`` is still read, with a warning. No certificate, key or chain
value is ever written into a message: a value that is neither PEM nor a file is named by its field only.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_mdca.connections.parsing import credential, field_error, parse_extra, parse_verify
from airflow_provider_mdca.redaction import register_secret

__all__ = ["DEFAULT_BATCH_BYTES", "DevoConfig"]

DEFAULT_BATCH_BYTES = 8 * 2**20  # well under the HTTP API's 32 MB per request
MAX_HTTP_BATCH_BYTES = 32 * 2**20
_PEM_MARKER = "-----BEGIN"
#: The extra holding the client certificate's private key: Airflow masks extras whose name holds "private_key".
KEY_EXTRA = "private_key"
_DEPRECATED_KEY_EXTRA = "key"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevoConfig:
    """Everything a sender needs to reach Devo. Secrets are excluded from ``repr``.

    ``cert``, ``key`` (from the extra ``private_key``) and ``chain`` hold PEM text or a file path; :meth:`pem` reads
    either. With a ``chain``, only that chain is trusted for the relay, not the system's CAs.
    """

    transport: Literal["tls", "http"]
    host: str
    port: int = 443
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    chain: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    domain: str | None = None
    hostname: str = field(default_factory=socket.gethostname)
    #: HTTP transport only: True (system CAs or REQUESTS_CA_BUNDLE) or a CA bundle path. Never False.
    verify: bool | str = True
    batch_bytes: int = DEFAULT_BATCH_BYTES
    batch_events: int = 100_000
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0

    @staticmethod
    def pem(value: str) -> bytes:
        """The PEM bytes of a field that holds PEM text or a file path.

        Text before the first ``-----BEGIN`` line (a byte-order mark, ``openssl pkcs12``'s "Bag Attributes") is
        dropped, as OpenSSL's own PEM reader skips it.
        """
        text = _pem_text(value)
        return text.encode() if text is not None else Path(value).read_bytes()

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        port: int | None,
        password: str | None,
        extra: Mapping[str, Any] | str | None,
        conn_id: str = "devo_default",
    ) -> DevoConfig:
        """Build and validate a config from an Airflow connection (InitVariablesError 1 naming the field)."""
        extras = parse_extra(extra, conn_id)
        fail = field_error(conn_id)

        def ext(name: str) -> Any:
            value = extras.get(name, extras.get(f"extra__devo__{name}"))
            return None if value == "" else value

        transport = (ext("transport") or "tls").lower()
        if transport not in ("tls", "http"):
            raise fail("extra.transport", f"must be 'tls' or 'http', got {transport!r}")
        if not host:
            raise fail("host", "required: the relay host (tls) or the HTTP endpoint URL (http)")
        tuning = _tuning(ext, fail)
        if transport == "tls":
            key_name, key = _private_key(ext, conn_id)
            for name, value in (("extra.cert", ext("cert")), (f"extra.{key_name}", key)):
                if not value:
                    raise fail(name, "required for the tls transport: PEM text or a file path")
                _check_pem(value, name, fail)
            if ext("chain"):
                _check_pem(ext("chain"), "extra.chain", fail)
            if "://" in host:
                raise fail("host", "the tls transport takes a host name, not a URL")
            return cls(
                transport="tls",
                host=host,
                port=int(port or 443),
                cert=ext("cert"),
                key=key,
                chain=ext("chain"),
                hostname=_hostname(ext("hostname"), fail),
                **tuning,
            )
        parts = urlsplit(host)
        if parts.scheme != "https" or not parts.hostname:
            raise fail("host", "the http transport needs the endpoint URL, e.g. https://http-us.devo.io")
        if not password:
            raise fail("password", "required for the http transport: the HTTP ingestion token")
        token = credential(password, "password", fail)
        if not ext("domain"):
            raise fail("extra.domain", "required for the http transport: the Devo domain")
        return cls(
            transport="http",
            host=host.rstrip("/"),
            token=token,
            domain=str(ext("domain")),
            hostname=_hostname(ext("hostname"), fail),
            verify=parse_verify(ext("verify"), fail),
            **tuning,
        )


def _private_key(ext: Any, conn_id: str) -> tuple[str, Any]:
    """The extra holding the private key and its value; registered as a secret before anything parses it."""
    value, name = ext(KEY_EXTRA), KEY_EXTRA
    if value is None and ext(_DEPRECATED_KEY_EXTRA) is not None:
        value, name = ext(_DEPRECATED_KEY_EXTRA), _DEPRECATED_KEY_EXTRA
        log.warning(
            "devo connection %r: the extra 'key' is deprecated, because Airflow shows an extra of that name to "
            "anyone who may read connections; rename it to 'private_key', which Airflow masks",
            conn_id,
        )
    if isinstance(value, str):
        register_secret(value)
    return name, value


def _pem_text(value: str) -> str | None:
    start = value.find(_PEM_MARKER)
    return value[start:] if start >= 0 else None


def _check_pem(value: Any, name: str, fail: Any) -> None:
    # Never the value in a message: it may be a private key, pasted whole or in part.
    if not isinstance(value, str):
        raise fail(name, "must be PEM text or a file path")
    if _pem_text(value) is not None:
        return
    if "\n" in value or len(value) > 4096 or not Path(value).is_file():
        raise fail(name, "is neither PEM text (it has no '-----BEGIN' line) nor the path of an existing file")


def _hostname(value: Any, fail: Any) -> str:
    name = str(value) if value else socket.gethostname()
    if not name or any(c.isspace() for c in name) or "/" in name:
        raise fail("extra.hostname", f"must be one word without '/', got {name!r}")
    return name


def _tuning(ext: Any, fail: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cast, low, high in (
        ("batch_bytes", int, 1, MAX_HTTP_BATCH_BYTES),
        ("batch_events", int, 1, 10_000_000),
        ("timeout", float, 0.001, 3600),
        ("max_retries", int, 0, 100),
        ("backoff_base", float, 0, 600),
        ("backoff_max", float, 0, 3600),
    ):
        raw = ext(name)
        if raw is None:
            continue
        try:
            value = cast(raw)
        except (TypeError, ValueError):
            raise fail(f"extra.{name}", f"must be a number, got {raw!r}") from None
        if isinstance(raw, bool) or not low <= value <= high:
            raise fail(f"extra.{name}", f"must be between {low} and {high}, got {raw!r}")
        out[name] = value
    return out
