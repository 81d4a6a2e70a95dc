"""Devo's HTTP ingestion API: ``POST <endpoint>/stream/<domain>/token!<token>/<hostname>/<tag>``, gzip.

200 means received. 401/403 are credential problems (never retried, the token never shown); 429 and 5xx
and connection failures are retried; other 4xx mean Devo rejected the payload.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import requests

from airflow_provider_mdca import compression
from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.sender import Sender
from airflow_provider_mdca.environment import environment_proxies, environment_verify
from airflow_provider_mdca.errors import DeliveryError
from airflow_provider_mdca.redaction import install_log_redaction, register_secret
from airflow_provider_mdca.retry import (
    RetryableError,
    StatusClass,
    classify_status,
    is_tls_verification_error,
    parse_retry_after,
)

__all__ = ["HttpStreamSender"]


class HttpStreamSender(Sender):
    """One gzip POST per batch to the ``/stream`` endpoint."""

    transport = "http"

    def __init__(self, config: DevoConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(config, sleep=sleep)
        assert config.token and config.domain
        register_secret(config.token)
        install_log_redaction("urllib3.connectionpool")
        self._session = requests.Session()
        # Proxies and the CA bundle from the environment, resolved once (environment.py); never ~/.netrc, whose
        # credentials requests would otherwise send to the Devo host.
        self._session.trust_env = False
        self._session.headers["User-Agent"] = "airflow-provider-mdca"
        self._proxies = environment_proxies(config.host)
        self._verify = environment_verify(config.verify)

    def _url(self, tag: str) -> str:
        cfg = self.config
        assert cfg.token and cfg.domain
        return f"{cfg.host}/stream/{quote(cfg.domain)}/token!{quote(cfg.token)}/{quote(cfg.hostname)}/{quote(tag)}"

    def endpoint_for_errors(self, tag: str) -> str:
        return f"{self.config.host}/stream/{self.config.domain}/token!***/{self.config.hostname}/{tag}"

    def _deliver(self, tag: str, batch: list[bytes]) -> int:
        body = compression.DEFAULT.compress(b"\n".join(batch) + b"\n")
        self._post(self._url(tag), body, tag)
        return len(body)

    def _post(self, url: str, body: bytes, tag: str) -> requests.Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        try:
            response = self._session.post(
                url, data=body, headers=headers, timeout=self.config.timeout, verify=self._verify, proxies=self._proxies
            )
        except requests.RequestException as exc:
            if is_tls_verification_error(exc):
                raise DeliveryError(
                    503,
                    "certificate verification failed",
                    url=self.endpoint_for_errors(tag),
                    remedy="set the connection's extra.verify to the CA bundle that signs the endpoint's certificate",
                ) from None
            raise RetryableError(f"{exc.__class__.__name__}") from None
        status = response.status_code
        verdict = classify_status(status)
        if verdict is StatusClass.SUCCESS:
            return response
        if verdict in (StatusClass.UNAUTHORIZED, StatusClass.FORBIDDEN):
            raise DeliveryError(
                502,
                "the HTTP ingestion token was refused",
                status=status,
                body=response.text,
                url=self.endpoint_for_errors(tag),
                remedy="check the connection's password (an HTTP ingestion token bound to this table) and extra.domain",
            )
        if verdict is StatusClass.THROTTLED:
            raise RetryableError("HTTP 429", wait=parse_retry_after(response.headers.get("Retry-After")), status=status)
        if verdict is StatusClass.SERVER_ERROR:
            raise RetryableError(f"HTTP {status}", status=status)
        raise DeliveryError(504, "", status=status, body=response.text, url=self.endpoint_for_errors(tag))

    def test(self) -> str:
        # An authenticated request that stores nothing: an empty body to a probe tag.
        self._post(self._url("test.keep.free"), compression.DEFAULT.compress(b""), "test.keep.free")
        return f"authenticated HTTP call to {self.config.host} for domain {self.config.domain}"

    def close(self) -> None:
        self._session.close()
