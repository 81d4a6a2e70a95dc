"""The Devo sender's configuration: a typed, validated view of a ``devo`` connection."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_mdca.connections.parsing import field_error, parse_extra, parse_verify

__all__ = ["DEFAULT_BATCH_BYTES", "DevoConfig"]

DEFAULT_BATCH_BYTES = 8 * 2**20  # well under the HTTP API's 32 MB per request
MAX_HTTP_BATCH_BYTES = 32 * 2**20
_PEM_MARKER = "-----BEGIN"


@dataclass(frozen=True)
class DevoConfig:
    """Everything a sender needs to reach Devo. Secrets are excluded from ``repr``.

    ``cert``, ``key`` and ``chain`` hold PEM text or a file path; :meth:`pem` reads either.
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
        """The PEM bytes of a field that holds PEM text or a file path."""
        if value.lstrip().startswith(_PEM_MARKER):
            return value.encode()
        return Path(value).read_bytes()

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
            for name in ("cert", "key"):
                if not ext(name):
                    raise fail(f"extra.{name}", "required for the tls transport: PEM text or a file path")
                _check_pem(ext(name), f"extra.{name}", fail)
            if ext("chain"):
                _check_pem(ext("chain"), "extra.chain", fail)
            if "://" in host:
                raise fail("host", "the tls transport takes a host name, not a URL")
            return cls(
                transport="tls",
                host=host,
                port=int(port or 443),
                cert=ext("cert"),
                key=ext("key"),
                chain=ext("chain"),
                hostname=_hostname(ext("hostname"), fail),
                **tuning,
            )
        parts = urlsplit(host)
        if parts.scheme != "https" or not parts.hostname:
            raise fail("host", "the http transport needs the endpoint URL, e.g. https://http-us.devo.io")
        if not password:
            raise fail("password", "required for the http transport: the HTTP ingestion token")
        if not ext("domain"):
            raise fail("extra.domain", "required for the http transport: the Devo domain")
        return cls(
            transport="http",
            host=host.rstrip("/"),
            token=password,
            domain=str(ext("domain")),
            hostname=_hostname(ext("hostname"), fail),
            verify=parse_verify(ext("verify"), fail),
            **tuning,
        )


def _check_pem(value: Any, name: str, fail: Any) -> None:
    if not isinstance(value, str):
        raise fail(name, "must be PEM text or a file path")
    if value.lstrip().startswith(_PEM_MARKER):
        return
    if not Path(value).is_file():
        raise fail(name, f"{value!r} is neither PEM text nor an existing file")


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
