"""Transport: which answers are retried, refreshed or fatal, with which code. The session is faked at the edge."""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from airflow_provider_mdca.client.auth import MdcaAuth
from airflow_provider_mdca.client.config import MdcaConfig
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.client.transport import RequestContext, Transport, parse_retry_after
from airflow_provider_mdca.errors import PullError

CONFIG = MdcaConfig(
    base_url="https://mdca.test/",
    tenant_id="t",
    client_id="c",
    client_secret="s3cr3t-value",
    max_retries=3,
    max_throttle_retries=2,
    retry_after_default=7.0,
    requests_per_minute=None,
)
CONTEXT = RequestContext("alerts", ("2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00"), "grant X")


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
    r.headers = CaseInsensitiveDict(headers or {})
    return r


class FakeSession:
    def __init__(self, *answers: requests.Response | BaseException) -> None:
        self.answers = list(answers)
        self.calls = 0

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class FakeAuth(MdcaAuth):
    can_refresh = True

    def __init__(self) -> None:
        self.refreshes = 0

    def force_refresh(self) -> None:
        self.refreshes += 1


def run(
    *answers: requests.Response | BaseException, auth: MdcaAuth | None = None
) -> tuple[Any, FetchStats, list[float]]:
    slept: list[float] = []
    session = FakeSession(*answers)
    transport = Transport(CONFIG, session, limiter=RateLimiter(None), sleep=slept.append)  # type: ignore[arg-type]
    stats = FetchStats(service="alerts")
    result = transport.post_json(
        "https://mdca.test/api/v1/alerts/", {}, auth=auth or FakeAuth(), context=CONTEXT, stats=stats
    )
    return result, stats, slept


def test_success_returns_the_json_object():
    result, stats, slept = run(response(200, {"data": [], "hasNext": False}))
    assert result == {"data": [], "hasNext": False}
    assert (stats.requests, stats.retries, slept) == (1, 0, [])


@pytest.mark.parametrize(
    "failure",
    [
        response(500),
        response(502),
        response(503),
        response(504),
        requests.ConnectionError("reset by peer"),
        requests.Timeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("IncompleteRead"),
        response(200, b'{"data": [{"_id": "a"'),
    ],
    ids=["500", "502", "503", "504", "reset", "timeout", "cut-body", "truncated-json"],
)
def test_transient_failures_are_retried_with_backoff(failure):
    result, stats, slept = run(failure, response(200, {"data": []}))
    assert result == {"data": []}
    assert stats.retries == 1
    assert len(slept) == 1 and 0 < slept[0] <= CONFIG.backoff_base


def test_backoff_grows_exponentially_and_is_bounded_then_305():
    with pytest.raises(PullError) as info:
        run(*[response(503, {"error": "busy"})] * 4)
    assert info.value.code == 305
    assert info.value.status == 503
    assert info.value.service == "alerts" and info.value.window == CONTEXT.window
    assert "after 4 failed attempts" in str(info.value)


def test_connection_failures_exhausted_give_300():
    with pytest.raises(PullError) as info:
        run(*[requests.ConnectionError("refused")] * 4)
    assert info.value.code == 300


def test_429_honours_retry_after_seconds():
    _, stats, slept = run(response(429, {}, {"Retry-After": "3"}), response(200, {"data": []}))
    assert slept == [3.0]
    assert stats.throttled == 1


def test_429_without_retry_after_waits_the_default():
    _, _, slept = run(response(429), response(200, {"data": []}))
    assert slept == [CONFIG.retry_after_default]


def test_429_storm_beyond_the_budget_is_305():
    with pytest.raises(PullError) as info:
        run(*[response(429, {}, {"Retry-After": "1"})] * 3)
    assert info.value.code == 305 and info.value.status == 429


def test_401_refreshes_the_token_once_then_succeeds():
    auth = FakeAuth()
    result, stats, _ = run(response(401, {"detail": "Invalid token"}), response(200, {"data": [1]}), auth=auth)
    assert result == {"data": [1]}
    assert auth.refreshes == 1 and stats.token_refreshes == 1


def test_401_after_a_refresh_is_302():
    auth = FakeAuth()
    with pytest.raises(PullError) as info:
        run(response(401), response(401, {"detail": "Invalid token"}), auth=auth)
    assert info.value.code == 302
    assert auth.refreshes == 1
    assert "even after a fresh token" in str(info.value)


@pytest.mark.parametrize(
    ("status", "code", "needle"),
    [
        (400, 301, "CONSOLE_FORMS_NOT_VALID_VALUE"),
        (403, 303, "grant X"),
        (404, 304, "API base URL"),
        (418, 305, "status code: 418"),
    ],
    ids=["400-filters", "403-permission", "404-url", "other"],
)
def test_fatal_statuses_map_to_codes(status, code, needle):
    body = {"filters": [{"error": "date is not valid", "errorMessageCode": "CONSOLE_FORMS_NOT_VALID_VALUE"}]}
    with pytest.raises(PullError) as info:
        run(response(status, body))
    assert info.value.code == code
    assert needle in str(info.value)


def test_tls_verification_failure_is_not_retried():
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error = requests.exceptions.SSLError(cause)
    with pytest.raises(PullError) as info:
        run(error, response(200, {}))
    assert info.value.code == 300
    assert "TLS certificate verification failed" in str(info.value)


def test_secrets_in_a_response_body_never_reach_the_error():
    body = {"detail": "bad", "echo": "Authorization: Bearer eyJhbGciOi.secret.token", "client_secret": "s3cr3t-value"}
    with pytest.raises(PullError) as info:
        run(response(403, body))
    text = str(info.value) + repr(info.value)
    assert "eyJhbGciOi" not in text and "s3cr3t-value" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), ("-3", 0.0), ("99999", 600.0), ("soon", None), (None, None)],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected
