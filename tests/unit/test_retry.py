"""The one retry policy: what is retried, how long each wait is, and when a call gives up."""

from __future__ import annotations

import pickle
import ssl

import pytest
import requests

from airflow_provider_mdca.errors import DeliveryError, PullError, error_context
from airflow_provider_mdca.retry import (
    RetryableError,
    RetryPolicy,
    StatusClass,
    classify_status,
    is_tls_verification_error,
)


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (200, StatusClass.SUCCESS, False),
        (204, StatusClass.SUCCESS, False),
        (400, StatusClass.CLIENT_ERROR, False),
        (401, StatusClass.UNAUTHORIZED, False),
        (403, StatusClass.FORBIDDEN, False),
        (404, StatusClass.CLIENT_ERROR, False),
        (429, StatusClass.THROTTLED, True),
        (500, StatusClass.SERVER_ERROR, True),
        (504, StatusClass.SERVER_ERROR, True),
        (301, StatusClass.UNEXPECTED, False),
    ],
    ids=str,
)
def test_every_status_has_one_class(status, expected, retryable):
    assert classify_status(status) is expected and expected.retryable is retryable


def test_failures_back_off_exponentially_within_bounds_then_give_up():
    attempts = RetryPolicy(max_retries=4, backoff_base=1.0, backoff_max=5.0).start()
    waits = [attempts.wait_after(RetryableError("HTTP 503", status=503)) for _ in range(5)]
    assert waits[-1] is None and attempts.failures == 5
    for failures, wait in enumerate(waits[:-1], start=1):
        ceiling = min(5.0, 2.0 ** (failures - 1))
        assert wait is not None and ceiling / 2 <= wait <= ceiling


def test_a_wait_the_server_asked_for_is_honoured():
    attempts = RetryPolicy(max_retries=2, backoff_base=1.0, backoff_max=5.0).start()
    assert attempts.wait_after(RetryableError("HTTP 503", wait=42.0, status=503)) == 42.0


def test_throttling_has_its_own_budget_and_default_wait_when_asked():
    policy = RetryPolicy(max_retries=1, backoff_base=1.0, backoff_max=5.0, max_throttle_retries=3, throttle_wait=60)
    attempts = policy.start()
    throttled = [attempts.wait_after(RetryableError("HTTP 429", status=429)) for _ in range(3)]
    assert throttled == [60, 60, 60] and attempts.wait_after(RetryableError("HTTP 429", status=429)) is None
    fresh = policy.start()
    fresh.wait_after(RetryableError("HTTP 429", status=429))
    assert fresh.wait_after(RetryableError("reset")) is not None and fresh.wait_after(RetryableError("reset")) is None
    assert fresh.describe() == "after 2 failed attempts and 1 throttled ones"


def test_without_a_throttle_budget_a_429_is_one_more_failure():
    attempts = RetryPolicy(max_retries=1, backoff_base=1.0, backoff_max=5.0).start()
    assert attempts.wait_after(RetryableError("HTTP 429", wait=3.0, status=429)) == 3.0
    assert attempts.wait_after(RetryableError("HTTP 429", status=429)) is None


def test_a_failed_certificate_verification_is_recognised_however_wrapped():
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    wrapped = requests.exceptions.SSLError(requests.packages.urllib3.exceptions.MaxRetryError(None, "/", cause))
    assert is_tls_verification_error(wrapped)
    assert not is_tls_verification_error(requests.ConnectionError("connection refused"))


def test_error_context_fills_in_only_what_the_error_left_unset():
    with pytest.raises(PullError) as info, error_context(service="alerts", window=("a", "b"), url="https://u:p@h/x"):
        raise PullError(300, "no progress", window=("c", "d"))
    error = info.value
    assert (error.service, error.window, error.url) == ("alerts", ("c", "d"), "https://h/x")
    assert "service=alerts" in str(error) and "window=[c, d)" in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_error_context_says_which_devo_batch_failed():
    with pytest.raises(DeliveryError) as info, error_context(tag="my.tag", batch=3, delivered=20, undelivered=10):
        raise DeliveryError(504, "rejected")
    assert (info.value.tag, info.value.batch) == ("my.tag", 3)
    assert str(info.value).endswith("[tag=my.tag, batch 3: 20 events delivered, 10 not delivered]")


def test_error_context_refuses_a_field_the_error_does_not_have():
    with pytest.raises(TypeError, match="no context field 'tag'"):
        PullError(300, "x").add_context(tag="t")
