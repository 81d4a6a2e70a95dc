"""StagingError, what staging raises about its data, and how a location is shown without its credentials."""

from __future__ import annotations

from typing import Any

from airflow_provider_mdca.redaction import redact_text, sanitize_url

__all__ = ["StagingError", "UnsafeLocationError"]


class StagingError(Exception):
    """Staged data is missing, corrupt, malformed or must not be touched.

    The message names the file or folder, as a sanitised location: credentials in a URL (``user:pass@``, secret
    query parameters) never reach it.
    """

    def __init__(self, detail: str, path: object = None) -> None:
        self.detail = redact_text(detail)
        self.location = display_location(path) if path is not None else None
        super().__init__(f"{self.location}: {self.detail}" if self.location else self.detail)

    def __reduce__(self) -> tuple[Any, ...]:
        # Airflow ships exceptions between processes; the default would drop the location.
        return (type(self), (self.detail, self.location))


class UnsafeLocationError(StagingError):
    """A local staging folder that another user could tamper with (not ours, group or world writable, a link).

    Retention refuses to delete under such a folder: a link planted there could point its deletion anywhere.
    """


def display_location(path: object) -> str:
    """A path or URL as messages and logs may show it: no credentials, no secret query parameters."""
    text = str(path)
    return sanitize_url(text) if "://" in text else redact_text(text)
