"""Transport: which answers are retried, refreshed or fatal, with which code. The session is faked at the edge."""

from __future__ import annotations

import dataclasses
import io
import json
import ssl
import time
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from airflow_provider_mdca.client.auth import MdcaAuth
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.client.transport import RequestContext, Transport, parse_retry_after
from airflow_provider_mdca.connections.mdca import MdcaConfig
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
    r.raw = io.BytesIO(body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode())
    r.headers = CaseInsensitiveDict(headers or {})
    return r


class FakeSession:
    def __init__(self, *answers: requests.Response | BaseException) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.kwargs: dict[str, Any] = {}

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        self.kwargs = kwargs
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
        run(*[response(503, {"error": "busy"}) for _ in range(4)])
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
        run(*[response(429, {}, {"Retry-After": "1"}) for _ in range(3)])
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


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [("", {"https": "http://proxy.corp:3128"}), ("mdca.test", {})],
)
def test_proxies_come_from_the_environment_once_and_no_proxy_goes_direct(monkeypatch, no_proxy, expected):
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    session = FakeSession(response(200, {"data": []}), response(200, {"data": []}))
    transport = Transport(CONFIG, session, limiter=RateLimiter(None), sleep=lambda _s: None)  # type: ignore[arg-type]
    monkeypatch.setenv("HTTPS_PROXY", "http://read-too-late:1")  # read once, when the transport was made
    for _ in range(2):
        transport.post_json(
            "https://mdca.test/api/v1/alerts/", {}, auth=FakeAuth(), context=CONTEXT, stats=FetchStats()
        )
        # No other proxy variable here: what requests would use for https://mdca.test, and nothing more.
        assert session.kwargs["proxies"].get("https") == expected.get("https")
        assert session.kwargs["proxies"] == {} or not no_proxy
    assert session.kwargs["verify"] is True, "TLS verification is always explicit"


@pytest.mark.parametrize(
    ("verify", "bundle_variable", "expected"),
    [
        (True, "REQUESTS_CA_BUNDLE", "/corp/ca.pem"),
        (True, "CURL_CA_BUNDLE", "/corp/ca.pem"),
        (True, None, True),
        ("/own/ca.pem", "REQUESTS_CA_BUNDLE", "/own/ca.pem"),
    ],
)
def test_verify_true_takes_the_environment_bundle_as_requests_would_and_a_path_wins(
    monkeypatch, verify, bundle_variable, expected
):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if bundle_variable:
        monkeypatch.setenv(bundle_variable, "/corp/ca.pem")
    session = FakeSession(response(200, {"data": []}))
    config = MdcaConfig(base_url="https://mdca.test/", tenant_id="t", client_id="c", client_secret="s", verify=verify)
    transport = Transport(config, session, limiter=RateLimiter(None), sleep=lambda _s: None)  # type: ignore[arg-type]
    transport.post_json("https://mdca.test/api/v1/alerts/", {}, auth=FakeAuth(), context=CONTEXT, stats=FetchStats())
    assert session.kwargs["verify"] == expected


def test_the_client_session_ignores_the_environment_so_verify_and_proxies_stay_explicit():
    from airflow_provider_mdca.client import MdcaClient

    with MdcaClient(CONFIG) as client:
        assert client._session.trust_env is False


@pytest.mark.parametrize("header", ["nan", "inf", "-inf"])
def test_a_non_finite_retry_after_waits_the_default(header):
    _, _, slept = run(response(429, {}, {"Retry-After": header}), response(200, {"data": []}))
    assert slept == [CONFIG.retry_after_default]


def test_a_body_nested_too_deeply_is_retried_then_a_pull_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(PullError) as info:
        run(*[response(200, deep) for _ in range(4)])
    assert info.value.code == 300 and "undecodable or truncated JSON body" in str(info.value)


class _Counting(io.BytesIO):
    served = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.served += len(data)
        return data


class _Drip(io.RawIOBase):
    """A body that arrives a byte at a time, each byte within the read timeout, for ever."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        time.sleep(0.01)
        return b" "


def test_a_body_that_never_ends_is_cut_at_the_request_deadline():
    config = dataclasses.replace(CONFIG, request_deadline=0.05, max_retries=1)
    dripping = [requests.Response() for _ in range(2)]
    for r in dripping:
        r.status_code, r.raw = 200, _Drip()
    transport = Transport(config, FakeSession(*dripping), limiter=RateLimiter(None), sleep=lambda _: None)  # type: ignore[arg-type]
    began = time.monotonic()
    with pytest.raises(PullError) as info:
        transport.post_json(
            "https://mdca.test/api/v1/alerts/", {}, auth=FakeAuth(), context=CONTEXT, stats=FetchStats()
        )
    assert info.value.code == 300 and "longer than 0.05 s (extra.request_deadline)" in str(info.value)
    assert time.monotonic() - began < 5


def test_a_body_beyond_the_size_limit_is_305_and_not_read_whole():
    config = dataclasses.replace(CONFIG, max_response_bytes=100_000)
    big = response(200)
    big.raw = _Counting(b'{"data": ["' + b"x" * 5_000_000 + b'"]}')
    transport = Transport(config, FakeSession(big), limiter=RateLimiter(None), sleep=lambda _: None)  # type: ignore[arg-type]
    with pytest.raises(PullError) as info:
        transport.post_json(
            "https://mdca.test/api/v1/alerts/", {}, auth=FakeAuth(), context=CONTEXT, stats=FetchStats()
        )
    assert info.value.code == 305 and "larger than 100000 bytes (extra.max_response_bytes)" in str(info.value)
    assert big.raw.served <= 2**20  # stopped after the first chunk past the limit
