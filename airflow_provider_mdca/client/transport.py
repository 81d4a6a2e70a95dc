"""One request to MDCA: rate limit, retry, and the mapping of every answer to data or a typed error.

The retry policy itself (what is retried, backoff, ``Retry-After``) is :mod:`airflow_provider_mdca.retry`'s; this
module maps MDCA's answers onto it:

- retried: 429 (honouring ``Retry-After``, seconds or an HTTP date), 5xx, connection errors and resets,
  timeouts, truncated or undecodable bodies; exponential backoff with jitter, bounded;
- refreshed once: 401 (a forced token refresh, then PullError 302);
- fatal at once: TLS verification failures (PullError 300), 400 (301), 403 (303), 404 (304), other (305).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from airflow_provider_mdca import json_codec
from airflow_provider_mdca.client.auth import MdcaAuth
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.connections.mdca import MdcaConfig
from airflow_provider_mdca.environment import environment_proxies, environment_verify
from airflow_provider_mdca.errors import PullError
from airflow_provider_mdca.retry import (
    RetryableError,
    RetryPolicy,
    RetryState,
    StatusClass,
    classify_status,
    is_tls_verification_error,
    parse_retry_after,
)

__all__ = ["RequestContext", "Transport", "parse_retry_after", "retry_policy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestContext:
    """Where a request belongs, for error messages: the service, its window and the 403 remedy."""

    service: str
    window: tuple[str, str] | None
    permission_hint: str = ""


_CHUNK = 1 << 20


def retry_policy(config: MdcaConfig) -> RetryPolicy:
    """The connection's retry settings: failures and 429s on separate budgets, 429s waiting ``Retry-After``."""
    return RetryPolicy(
        max_retries=config.max_retries,
        backoff_base=config.backoff_base,
        backoff_max=config.backoff_max,
        max_throttle_retries=config.max_throttle_retries,
        throttle_wait=config.retry_after_default,
    )


class _Unauthorized(Exception):
    def __init__(self, body: str) -> None:
        super().__init__("401")
        self.body = body


class Transport:
    """Sends JSON requests to MDCA through a shared session, limiter and retry policy."""

    def __init__(
        self,
        config: MdcaConfig,
        session: requests.Session,
        *,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._session = session
        self._limiter = limiter or RateLimiter(config.requests_per_minute, sleep=sleep)
        self._policy = retry_policy(config)
        self._sleep = sleep
        self._proxies = environment_proxies(config.base_url)
        self._verify = environment_verify(config.verify)

    def post_json(
        self,
        url: str,
        body: dict[str, Any],
        *,
        auth: MdcaAuth,
        context: RequestContext,
        stats: FetchStats,
    ) -> dict[str, Any]:
        """POST ``body`` to ``url`` and return the decoded JSON object, retrying what is worth retrying."""
        attempts = self._policy.start()
        refreshed = False
        while True:
            stats.rate_limit_wait_seconds += self._limiter.acquire()
            stats.requests += 1
            try:
                return self._attempt(url, body, auth=auth, context=context)
            except _Unauthorized as exc:
                if refreshed or not auth.can_refresh:
                    raise self._unauthorized(exc, url, context, refreshed=refreshed) from None
                log.info("MDCA answered 401 for %s; getting a fresh token and retrying once", context.service)
                auth.force_refresh()
                refreshed = True
                stats.token_refreshes += 1
            except RetryableError as exc:
                if exc.throttled:
                    stats.throttled += 1
                wait = attempts.wait_after(exc)
                if wait is None:
                    raise self._exhausted(exc, url, context, attempts) from None
                stats.retries += 1
                log.warning(
                    "MDCA %s request failed (%s); retry %d in %.1f s", context.service, exc.reason, stats.retries, wait
                )
                self._sleep(wait)

    def _attempt(self, url: str, body: dict[str, Any], *, auth: MdcaAuth, context: RequestContext) -> dict[str, Any]:
        try:
            # verify and proxies per request, as the environment gave them once (environment.py).
            response = self._session.post(
                url,
                json=body,
                auth=auth,
                timeout=self._config.timeout,
                verify=self._verify,
                proxies=self._proxies,
                stream=True,  # the body is read here, bounded in size and in time
            )
            try:
                content = self._read_body(response, url, context)  # a cut connection is a retry, not a crash later
            finally:
                response.close()
        except requests.exceptions.InvalidHeader:
            raise _invalid_header(url, context) from None
        except requests.RequestException as exc:
            if is_tls_verification_error(exc):
                raise PullError(
                    300,
                    f"TLS certificate verification failed ({exc.__class__.__name__})",
                    service=context.service,
                    window=context.window,
                    url=url,
                    remedy="set the connection's extra.verify to the CA bundle that signs the server's certificate",
                ) from None
            raise RetryableError(f"{exc.__class__.__name__}: {exc}") from None
        except ValueError:
            # http.client refuses a header value holding a line break; its message would show the header, and so
            # the credential in it.
            raise _invalid_header(url, context) from None

        status = response.status_code
        verdict = classify_status(status)
        if verdict is StatusClass.SUCCESS:
            return _decoded(content)
        text = content.decode("utf-8", errors="replace")  # only for a failure: a page can be megabytes
        if verdict is StatusClass.UNAUTHORIZED:
            raise _Unauthorized(text)
        if verdict is StatusClass.THROTTLED:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise RetryableError("HTTP 429 throttled", wait=wait, status=status)
        if verdict is StatusClass.SERVER_ERROR:
            raise RetryableError(f"HTTP {status}", status=status, body=text)
        raise self._fatal(status, text, url, context)

    def _read_body(self, response: requests.Response, url: str, context: RequestContext) -> bytes:
        """The whole body, at most ``max_response_bytes`` of it, read before ``request_deadline`` runs out."""
        limit, deadline = self._config.max_response_bytes, time.monotonic() + self._config.request_deadline
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PullError(
                    305,
                    f"the response body is larger than {limit} bytes (extra.max_response_bytes); not read further",
                    service=context.service,
                    window=context.window,
                    url=url,
                    status=response.status_code,
                )
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise RetryableError(
                    f"the response took longer than {self._config.request_deadline:g} s (extra.request_deadline)"
                )
        return b"".join(chunks)

    def _fatal(self, status: int, text: str, url: str, context: RequestContext) -> PullError:
        common: dict[str, Any] = {"service": context.service, "window": context.window, "url": url, "status": status}
        if status == 400:
            return PullError(301, "the API refused the request's filters or paging", body=text, **common)
        if status == 403:
            return PullError(303, "", body=text, remedy=context.permission_hint or None, **common)
        if status == 404:
            return PullError(
                304, "", body=text, remedy="check the connection's host: the API base URL of the tenant", **common
            )
        return PullError(305, "", body=text, **common)

    @staticmethod
    def _unauthorized(exc: _Unauthorized, url: str, context: RequestContext, *, refreshed: bool) -> PullError:
        return PullError(
            302,
            "the API rejected the credentials even after a fresh token was obtained"
            if refreshed
            else "the API rejected the credentials",
            service=context.service,
            window=context.window,
            url=url,
            status=401,
            body=exc.body,
            remedy="check that the app registration still has its API permissions and that the tokens are for "
            "this tenant",
        )

    @staticmethod
    def _exhausted(exc: RetryableError, url: str, context: RequestContext, attempts: RetryState) -> PullError:
        detail = f"{exc.reason}, {attempts.describe()}"
        common: dict[str, Any] = {"service": context.service, "window": context.window, "url": url}
        if exc.status is not None:
            return PullError(305, detail, status=exc.status, body=exc.body or None, **common)
        return PullError(300, detail, **common)


def _invalid_header(url: str, context: RequestContext) -> PullError:
    return PullError(
        300,
        "a request header holds a character HTTP does not allow (the header is not shown: it carries a credential)",
        service=context.service,
        window=context.window,
        url=url,
        remedy="set the connection's credentials again without line breaks or control characters",
    )


def _decoded(content: bytes) -> dict[str, Any]:
    try:
        payload = json_codec.decode(content)
    except ValueError:
        raise RetryableError(f"undecodable or truncated JSON body ({len(content)} bytes)") from None
    if not isinstance(payload, dict):
        raise RetryableError("the JSON body is not an object")
    return payload
