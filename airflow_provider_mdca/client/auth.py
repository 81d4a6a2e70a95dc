"""Authentication: Entra ID client credentials through MSAL, and the legacy API token for files.

Both are ``requests.auth.AuthBase`` objects, so the transport attaches them per request and asks for a forced
refresh on a 401 without knowing which kind it holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msal
import msal.exceptions
import requests
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from airflow_provider_mdca.connections.mdca import MDCA_SCOPE, MdcaConfig
from airflow_provider_mdca.environment import environment_proxies, environment_verify
from airflow_provider_mdca.errors import SetupError
from airflow_provider_mdca.redaction import register_secret
from airflow_provider_mdca.retry import (
    RetryableError,
    RetryPolicy,
    StatusClass,
    classify_status,
    is_tls_verification_error,
)
from airflow_provider_mdca.token_agent import EXPIRY_MARGIN, TokenAgentClient, token_key

__all__ = ["EntraIdAuth", "LegacyTokenAuth", "MdcaAuth"]

log = logging.getLogger(__name__)

# Entra error codes that mean "these credentials cannot read this tenant" (SetupError 100):
# tenant not found, unknown application, invalid secret, expired secret, invalid scope.
_AUTH_STATUSES_BAD_CREDENTIALS = frozenset({400, 401})


class MdcaAuth(requests.auth.AuthBase):
    """An auth that can say whether a forced refresh could cure a 401."""

    can_refresh = False

    def force_refresh(self) -> None:
        """Drop cached credentials so that the next request gets new ones."""


class LegacyTokenAuth(MdcaAuth):
    """``Authorization: Token <files_access_token>``: the portal-issued API token that files requires."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Token {self._token}"
        return request

    def __repr__(self) -> str:
        return "LegacyTokenAuth(token=***)"


class _RecordingHttpClient:
    """The ``http_client`` MSAL talks through.

    It is the client's own session (so ``verify`` applies), with a timeout, bounded retries of 5xx and
    connection errors (MSAL leaves retries to a custom client), and the last status (MSAL's result dict does
    not carry it, and the status decides between SetupError 100, 102 and 103).
    """

    def __init__(
        self, session: requests.Session, *, timeout: float, policy: RetryPolicy, sleep: Callable[[float], None]
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._policy = policy
        self._sleep = sleep
        self.last_status: int | None = None
        self.last_exception: BaseException | None = None

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._request("GET", url, **kwargs)

    def close(self) -> None:
        """The session belongs to the client, which closes it."""

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        # Per request, as requests would resolve them from the environment (environment.py): the client's
        # session does not read the environment itself.
        kwargs.setdefault("verify", environment_verify(self._session.verify))
        kwargs.setdefault("proxies", environment_proxies(url))
        attempts = self._policy.start()
        while True:
            self.last_status, self.last_exception = None, None
            try:
                response = self._session.request(method, url, **kwargs)
            except requests.RequestException as exc:
                self.last_exception = exc
                if is_tls_verification_error(exc):
                    raise
                wait = attempts.wait_after(RetryableError(type(exc).__name__))
                if wait is None:
                    raise
            else:
                self.last_status = response.status_code
                # Only 5xx: MSAL reads every other answer (400 invalid_client, 429 ...) as the token endpoint's verdict.
                if classify_status(response.status_code) is not StatusClass.SERVER_ERROR:
                    return response
                wait = attempts.wait_after(RetryableError(f"HTTP {response.status_code}", status=response.status_code))
                if wait is None:
                    return response
            self._sleep(wait)


class EntraIdAuth(MdcaAuth):
    """Bearer tokens from Entra ID's client-credentials flow, through MSAL.

    A token is reused while valid: within the process (MSAL's cache), and across the machine's fetch tasks through
    the token agent (:mod:`airflow_provider_mdca.token_agent`) when ``shared`` is given: the first task asks Entra ID,
    the next ones take its token. A 401 from the API calls :meth:`force_refresh`, which forgets the token everywhere
    so the next request gets a fresh one from Entra ID. The MSAL application is built lazily: its constructor already
    talks to the authority, and nothing here may touch the network before a request.
    """

    can_refresh = True

    def __init__(
        self,
        config: MdcaConfig,
        session: requests.Session,
        *,
        secret_sink: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        shared: TokenAgentClient | None = None,
    ) -> None:
        register_secret(config.client_secret)
        self._config = config
        # Failures only: the token endpoint's 429s are MSAL's to read, not retried here.
        policy = RetryPolicy(config.max_retries, config.backoff_base, config.backoff_max)
        self._http = _RecordingHttpClient(session, timeout=config.timeout, policy=policy, sleep=sleep)
        self._secret_sink = secret_sink
        self._app: msal.ConfidentialClientApplication | None = None
        self._shared = shared
        self._key = token_key(config.authority, config.client_id, config.client_secret, MDCA_SCOPE)
        self._held: tuple[str, float] | None = None
        self._shared_refused = False
        self.tokens_acquired = 0
        self.tokens_shared = 0

    def __repr__(self) -> str:
        return f"EntraIdAuth(authority={self._config.authority!r}, client_id={self._config.client_id!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def force_refresh(self) -> None:
        self._held = None
        if self._shared is not None:
            # The API refused it: not the agent's to hand out again; the next token comes from Entra ID.
            self._shared.drop(self._key)
            self._shared_refused = True
        if self._app is not None:
            self._app.remove_tokens_for_client()

    def access_token(self) -> str:
        """A valid access token: this process's, the agent's, else a new one from Entra ID (through MSAL)."""
        if self._held is not None and self._held[1] - EXPIRY_MARGIN > time.time():
            return self._held[0]
        if self._shared is not None and not self._shared_refused:
            found = self._shared.get(self._key)
            if found is not None:
                self.tokens_shared += 1
                self._accept(*found)
                return found[0]
        try:
            app = self._application()
            result = app.acquire_token_for_client(scopes=[MDCA_SCOPE])
        except SetupError:
            raise
        except (requests.RequestException, ValueError, msal.exceptions.MsalError) as exc:
            # MSAL raises (rather than returning an error dict) when a 5xx body is not JSON.
            raise self._setup_error_from_exception(exc) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            raise self._setup_error_from_result(result if isinstance(result, dict) else {})
        expires_at = time.time() + float(result.get("expires_in") or 0)
        if result.get("token_source") == "identity_provider":
            self.tokens_acquired += 1
            if self._shared is not None:
                self._shared.put(self._key, str(token), expires_at)
                self._shared_refused = False
        self._accept(str(token), expires_at)
        return str(token)

    def _accept(self, token: str, expires_at: float) -> None:
        if self._held is None or self._held[0] != token:
            register_secret(token)
            if self._secret_sink:
                self._secret_sink(token)
        self._held = (token, expires_at)

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            self._app = msal.ConfidentialClientApplication(
                self._config.client_id,
                client_credential=self._config.client_secret,
                authority=self._config.authority,
                http_client=self._http,
                # For a host MSAL does not know (a private cloud, the emulator) MSAL would ask
                # login.microsoftonline.com to validate it; the authority is configuration, so trust it.
                instance_discovery=None if _known_authority_host(self._config.token_url) else False,
            )
        return self._app

    def _setup_error_from_result(self, result: dict[str, Any]) -> SetupError:
        status = self._http.last_status
        described = f"{result.get('error', 'no token')}: {result.get('error_description', 'no description')}"
        url = self._config.authority
        if status == 403:
            return SetupError(
                102,
                described,
                url=url,
                status=status,
                remedy="the application is not allowed to get a token: check that it is enabled and that its "
                "service principal exists in the tenant",
            )
        if status in _AUTH_STATUSES_BAD_CREDENTIALS:
            return SetupError(
                100,
                described,
                url=url,
                status=status,
                remedy="check the connection's login (client ID), password (client secret) and extra.tenant_id",
            )
        return SetupError(103, described, url=url, status=status)

    def _setup_error_from_exception(self, exc: BaseException) -> SetupError:
        if is_tls_verification_error(exc):
            return SetupError(
                103,
                f"TLS certificate verification failed for the token endpoint ({exc.__class__.__name__})",
                url=self._config.authority,
                remedy="set the connection's extra.verify to the CA bundle that signs the server's certificate",
            )
        status = self._http.last_status
        if status is not None:
            return SetupError(103, f"the token endpoint failed: {exc}", url=self._config.authority, status=status)
        return SetupError(
            103, f"cannot reach the token endpoint: {exc.__class__.__name__}: {exc}", url=self._config.authority
        )


def _known_authority_host(token_url: str) -> bool:
    host = urlsplit(token_url).hostname or ""
    return host in WELL_KNOWN_AUTHORITY_HOSTS
