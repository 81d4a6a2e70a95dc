"""One request to MDCA: rate limit, retry, and the mapping of every answer to data or a typed error.

Retry and status classification live here and nowhere else:

- retried: 429 (honouring ``Retry-After``, seconds or an HTTP date), 5xx, connection errors and resets,
  timeouts, truncated or undecodable bodies; exponential backoff with jitter, bounded;
- refreshed once: 401 (a forced token refresh, then PullError 302);
- fatal at once: TLS verification failures (PullError 300), 400 (301), 403 (303), 404 (304), other (305).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests

from airflow_provider_mdca import json_codec
from airflow_provider_mdca.client.auth import MdcaAuth, is_tls_verification_error
from airflow_provider_mdca.client.config import MdcaConfig
from airflow_provider_mdca.client.environment import environment_proxies, environment_verify
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.errors import PullError

__all__ = ["RequestContext", "Transport", "parse_retry_after"]

log = logging.getLogger(__name__)

_MAX_RETRY_AFTER = 600.0  # a server asking for more than 10 minutes is treated as asking for 10


@dataclass(frozen=True)
class RequestContext:
    """Where a request belongs, for error messages: the service, its window and the 403 remedy."""

    service: str
    window: tuple[str, str] | None
    permission_hint: str = ""


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying."""

    def __init__(self, reason: str, *, wait: float | None = None, status: int | None = None, body: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.status = status
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
        failures = 0
        throttles = 0
        refreshed = False
        while True:
            stats.rate_limit_wait_seconds += self._limiter.acquire()
            stats.requests += 1
            try:
                return self._attempt(url, body, auth=auth, context=context)
            except _Unauthorized as exc:
                if refreshed or not auth.can_refresh:
                    raise PullError(
                        302,
                        "the API rejected the credentials even after a fresh token was obtained"
                        if refreshed
                        else "the API rejected the credentials",
                        service=context.service,
                        window=context.window,
                        url=url,
                        status=401,
                        body=exc.body,
                        remedy="check that the app registration still has its API permissions and that the "
                        "tokens are for this tenant",
                    ) from None
                log.info("MDCA answered 401 for %s; getting a fresh token and retrying once", context.service)
                auth.force_refresh()
                refreshed = True
                stats.token_refreshes += 1
            except _Retry as exc:
                if exc.status == 429:
                    stats.throttled += 1
                    throttles += 1
                    exhausted = throttles > self._config.max_throttle_retries
                    wait = exc.wait if exc.wait is not None else self._config.retry_after_default
                else:
                    failures += 1
                    exhausted = failures > self._config.max_retries
                    wait = self._backoff(failures)
                if exhausted:
                    raise self._exhausted(exc, url, context, failures, throttles) from None
                stats.retries += 1
                log.warning(
                    "MDCA %s request failed (%s); retry %d in %.1f s",
                    context.service,
                    exc.reason,
                    stats.retries,
                    wait,
                )
                self._sleep(wait)

    def _attempt(self, url: str, body: dict[str, Any], *, auth: MdcaAuth, context: RequestContext) -> dict[str, Any]:
        try:
            # verify and proxies per request, as the environment gave them once (client/environment.py).
            response = self._session.post(
                url,
                json=body,
                auth=auth,
                timeout=self._config.timeout,
                verify=self._verify,
                proxies=self._proxies,
            )
            content = response.content  # read it all here, so a cut connection is a retry, not a crash later
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
            raise _Retry(f"{exc.__class__.__name__}: {exc}") from None

        status = response.status_code
        if 200 <= status < 300:
            try:
                payload = json_codec.decode(content)
            except ValueError:
                raise _Retry(f"undecodable or truncated JSON body ({len(content)} bytes)") from None
            if not isinstance(payload, dict):
                raise _Retry("the JSON body is not an object") from None
            return payload
        text = content.decode("utf-8", errors="replace")  # only for a failure: a page can be megabytes
        if status == 401:
            raise _Unauthorized(text)
        if status == 429:
            raise _Retry("HTTP 429 throttled", wait=parse_retry_after(response.headers.get("Retry-After")), status=429)
        if status >= 500:
            raise _Retry(f"HTTP {status}", status=status, body=text)
        raise self._fatal(status, text, url, context)

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

    def _exhausted(self, exc: _Retry, url: str, context: RequestContext, failures: int, throttles: int) -> PullError:
        attempts = f"after {failures} failed attempts and {throttles} throttled ones"
        common: dict[str, Any] = {"service": context.service, "window": context.window, "url": url}
        if exc.status is not None:
            return PullError(305, f"{exc.reason}, {attempts}", status=exc.status, body=exc.body or None, **common)
        return PullError(300, f"{exc.reason}, {attempts}", **common)

    def _backoff(self, failures: int) -> float:
        delay = min(self._config.backoff_max, self._config.backoff_base * 2.0 ** (failures - 1))
        return float(delay * random.uniform(0.5, 1.0))


class _Unauthorized(Exception):
    def __init__(self, body: str) -> None:
        super().__init__("401")
        self.body = body


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or bad.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc))
    10.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)
