"""One retry policy for every remote call the provider makes: MDCA's API, Entra ID's token endpoint and Devo.

What is retried, how long to wait and when to give up is decided here and nowhere else:

- an HTTP answer is classified once (:func:`classify_status`): success, unauthorised (401), forbidden (403),
  throttled (429), server error (5xx), client error (other 4xx) or unexpected; each caller maps the classes to its
  own error codes (PullError 30x, DeliveryError 50x);
- :class:`RetryableError` is how a single attempt says "this failed, and trying again may help", with the wait the
  server asked for (``Retry-After``, :func:`parse_retry_after`) when it asked;
- :class:`RetryPolicy` turns the failures of one call into waits: exponential backoff with jitter, bounded, and
  separate budgets for throttling and for other failures when the caller wants them;
- a failed TLS verification (:func:`is_tls_verification_error`) is never retried: it will fail the same way.

Imports nothing from Airflow or from the client or Devo packages: both use it.
"""

from __future__ import annotations

import email.utils
import enum
import math
import random
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = [
    "MAX_RETRY_AFTER",
    "RetryPolicy",
    "RetryState",
    "RetryableError",
    "StatusClass",
    "classify_status",
    "is_tls_verification_error",
    "parse_retry_after",
]

#: A server asking for more than 10 minutes is treated as asking for 10.
MAX_RETRY_AFTER = 600.0


class StatusClass(enum.Enum):
    """What an HTTP status means for the caller, before any service-specific mapping."""

    SUCCESS = "success"  # 2xx
    UNAUTHORIZED = "unauthorized"  # 401: credentials refused (MDCA: refresh the token once)
    FORBIDDEN = "forbidden"  # 403: credentials valid, permission missing
    THROTTLED = "throttled"  # 429: retried after Retry-After
    SERVER_ERROR = "server_error"  # 5xx: retried with backoff
    CLIENT_ERROR = "client_error"  # any other 4xx: the request is wrong, retrying cannot help
    UNEXPECTED = "unexpected"  # 1xx, 3xx: not an answer either API gives

    @property
    def retryable(self) -> bool:
        """Whether a later attempt of the same request may succeed."""
        return self in (StatusClass.THROTTLED, StatusClass.SERVER_ERROR)


def classify_status(status: int) -> StatusClass:
    """The class of an HTTP status.

    >>> [classify_status(s).name for s in (200, 401, 403, 404, 429, 503, 302)]
    ['SUCCESS', 'UNAUTHORIZED', 'FORBIDDEN', 'CLIENT_ERROR', 'THROTTLED', 'SERVER_ERROR', 'UNEXPECTED']
    """
    if 200 <= status < 300:
        return StatusClass.SUCCESS
    if status == 401:
        return StatusClass.UNAUTHORIZED
    if status == 403:
        return StatusClass.FORBIDDEN
    if status == 429:
        return StatusClass.THROTTLED
    if status >= 500:
        return StatusClass.SERVER_ERROR
    if 400 <= status < 500:
        return StatusClass.CLIENT_ERROR
    return StatusClass.UNEXPECTED


class RetryableError(Exception):
    """One attempt failed in a way that trying again may cure (a network failure, 429, 5xx, a cut body).

    :param reason: what failed, in words, for the retry log line and the final error (never a secret).
    :param wait: the seconds the server asked to wait (``Retry-After``), or None to use the backoff.
    :param status: the HTTP status, when there was an answer.
    :param body: the answer's body, for the final error (redacted and cut there).
    """

    def __init__(self, reason: str, *, wait: float | None = None, status: int | None = None, body: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.status = status
        self.body = body

    @property
    def throttled(self) -> bool:
        """Whether the server said "too many requests" (429)."""
        return self.status == 429


@dataclass(frozen=True)
class RetryPolicy:
    """How many times one call is retried and how long it waits in between.

    :param max_retries: retries after failures other than throttling.
    :param backoff_base: the first backoff in seconds; it doubles with each failure ...
    :param backoff_max: ... up to this. Each wait is drawn from ``[delay / 2, delay]`` so that many clients that
        failed together do not retry together.
    :param max_throttle_retries: retries after 429s, counted apart from other failures; None counts a 429 as one
        more failure.
    :param throttle_wait: the wait after a 429 without ``Retry-After``; None uses the backoff.
    """

    max_retries: int
    backoff_base: float
    backoff_max: float
    max_throttle_retries: int | None = None
    throttle_wait: float | None = None

    def backoff(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` consecutive failures (1 for the first).

        >>> policy = RetryPolicy(max_retries=5, backoff_base=2.0, backoff_max=5.0)
        >>> all(1.0 <= policy.backoff(1) <= 2.0 and 2.5 <= policy.backoff(9) <= 5.0 for _ in range(100))
        True
        """
        delay = min(self.backoff_max, self.backoff_base * 2.0 ** (failures - 1))
        return float(delay * random.uniform(0.5, 1.0))

    def start(self) -> RetryState:
        """The counters of one new call under this policy."""
        return RetryState(self)


class RetryState:
    """The failed attempts of one call, counted against a :class:`RetryPolicy`."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.throttles = 0

    @property
    def retries(self) -> int:
        """How many attempts were retried so far."""
        return self.failures + self.throttles

    def wait_after(self, error: RetryableError) -> float | None:
        """Count ``error``; the seconds to wait before the next attempt, or None when the budget is spent."""
        policy = self.policy
        if error.throttled and policy.max_throttle_retries is not None:
            self.throttles += 1
            if self.throttles > policy.max_throttle_retries:
                return None
            default = policy.throttle_wait if policy.throttle_wait is not None else policy.backoff(self.throttles)
            return error.wait if error.wait is not None else default
        self.failures += 1
        if self.failures > policy.max_retries:
            return None
        return error.wait if error.wait is not None else policy.backoff(self.failures)

    def describe(self) -> str:
        """The attempts so far, for the final error's message."""
        return f"after {self.failures} failed attempts and {self.throttles} throttled ones"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or bad.

    >>> parse_retry_after("7"), parse_retry_after("-3"), parse_retry_after("nan"), parse_retry_after("inf")
    (7.0, 0.0, None, None)
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc))
    10.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        if not math.isfinite(seconds):
            return None  # "nan", "inf": no usable wait; the caller's default applies
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def is_tls_verification_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a failed certificate verification: never worth retrying."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException) and is_tls_verification_error(arg):
                return True
        current = current.__cause__ or current.__context__
    return False
