"""Redaction: what may reach a log line, an exception or a staged file.

Two layers, both applied by every error message in :mod:`airflow_provider_mdca.errors`:

- known secret *values* (client secret, access tokens, the legacy files token) registered with
  :func:`register_secret` are replaced wherever they appear;
- secret *shapes* (``Authorization`` headers, ``access_token`` JSON fields, ``client_secret=`` form fields,
  Devo's ``token!...`` URL segment) are replaced even when the value was never registered.

Registration is process-wide on purpose: an error raised deep in a paginator does not know which client's
secrets are in play, and a secret must never leak because the wrong object was asked.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "RedactingFilter",
    "cut",
    "install_log_redaction",
    "redact_mapping",
    "redact_text",
    "register_secret",
    "sanitize_url",
]

MASK = "***"
_MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words

SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "access_token",
        "client_secret",
        "files_access_token",
        "password",
        "refresh_token",
        "id_token",
        "secret",
        "token",
        "key",
        "cert_key",
        "api_key",
        "sig",
        "signature",
    }
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/=]{6,}"), rf"\1{MASK}"),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:token\s+|bearer\s+)?)[^\"'\s,}]+"), rf"\1{MASK}"),
    (
        re.compile(
            r"(?i)(\"?(?:access_token|refresh_token|id_token|client_secret|files_access_token|password)\"?"
            r"\s*[:=]\s*\"?)[^\"&,\s}]+"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)(token!)[^/\s]+"), rf"\1{MASK}"),
)

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that every later redaction masks it."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact_text(text: str) -> str:
    """Mask registered secrets and secret-shaped substrings in ``text``.

    >>> redact_text('Authorization: Bearer abcdef123456')
    'Authorization: Bearer ***'
    >>> redact_text('{"access_token": "eyJ0eXAiOi"}')
    '{"access_token": "***"}'
    """
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def sanitize_url(url: str) -> str:
    """Drop user info and mask sensitive query parameters and path tokens.

    >>> sanitize_url("https://u:p@h.example/api/v1/?token=abc&skip=0")
    'https://h.example/api/v1/?token=%2A%2A%2A&skip=0'
    """
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = urlencode(
        [(k, MASK if k.lower() in SENSITIVE_KEYS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    )
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def redact_mapping(mapping: dict[str, object]) -> dict[str, object]:
    """A copy of ``mapping`` with the values of sensitive keys masked (one level deep is enough for headers)."""
    return {k: (MASK if k.lower() in SENSITIVE_KEYS else v) for k, v in mapping.items()}


def cut(text: str, limit: int = 500) -> str:
    """Shorten a response body for a message, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTERED_LOGGERS: set[str] = set()


def install_log_redaction(*logger_names: str) -> None:
    """Mask secrets in third-party loggers we do not control (idempotent).

    urllib3 logs every request line at DEBUG, and Devo's HTTP API carries its token in the URL path.
    """
    with _lock:
        for name in logger_names:
            if name not in _FILTERED_LOGGERS:
                logging.getLogger(name).addFilter(RedactingFilter())
                _FILTERED_LOGGERS.add(name)
