"""The provider's error tree, with the codes and messages of Devo's MDCA collector.

Devo's users already know these codes from the collector this provider replaces, so they are kept::

    MdcaProviderError                 base: .code, .service, .window, .url, .status, .body, .remedy
    ├── InitVariablesError   0-3      configuration: 0 internal definitions, 1/3 user configuration
    │                                 (names the key and why), 2 rate-limit setting of the wrong type
    ├── SetupError         100-103    authentication: 100 not pullable with these credentials,
    │                                 101 refreshed but still rejected, 102 not allowed to get a token,
    │                                 103 unexpected error while authenticating
    ├── PullError          300-305    retrieval: 300 unexpected (network, TLS, no progress), 301 bad filters,
    │                                 302 HTTP 401, 303 HTTP 403, 304 HTTP 404, 305 unexpected status
    └── DeliveryError      500-505    delivery to Devo (this provider's own range): 500 unexpected,
                                      501 retries exhausted, 502 credentials refused (HTTP token, client
                                      certificate), 503 the relay's certificate is not trusted, 504 Devo
                                      rejected the payload, 505 an event cannot be serialised

Every error names the service and the window it happened in, carries a sanitised URL and a cut, redacted
response body, and pickles (Airflow ships exceptions between processes). No secret ever reaches the message:
the text passes through :func:`airflow_provider_mdca.redaction.redact_text` on the way in.

Code deep down (a paginator, a transport) often cannot know the service, window, Devo tag or batch it works for:
the code that does wraps the call in :func:`error_context`, which fills in what the error left unset, once, in one
way (:meth:`MdcaProviderError.add_context`), rather than catching and rebuilding the error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

from airflow_provider_mdca.redaction import cut, redact_text, sanitize_url

__all__ = [
    "DeliveryError",
    "InitVariablesError",
    "MdcaProviderError",
    "PullError",
    "SetupError",
    "error_context",
]

E = TypeVar("E", bound="MdcaProviderError")

# Seed collector messages, by code. Placeholders are filled from the error's `detail`.
_MESSAGES: dict[int, str] = {
    0: "The internal config did not pass the format validation. Contact the provider's maintainers.",
    1: "The user config did not pass the format validation. Check error traces for details and visit our "
    "documentation.",
    2: "<rate_limiter> setting has been defined with wrong type. {detail}",
    3: "The user config did not pass the format validation. Check error traces for details and visit our "
    "documentation.",
    100: "The remote data is not pullable with the given credentials. Check the error traces for details.",
    101: "The token/header/authentication was refreshed but is still expired. Check the error traces for details.",
    102: "The provided credentials are valid but they do not have the permission to generate access token.",
    103: "Unexpected error occurred at the Microsoft Defender for Cloud Apps server.",
    300: "Error occurred while retrieving data from Microsoft Defender for Cloud Apps server.",
    301: "Error in the filters.",
    302: "access token has expired or invalid.",
    303: "The access token does not have valid permissions to perform this request. Add the required "
    "permissions in the Microsoft Defender for Cloud Apps azure portal (Azure Active Directory -> App "
    "registration -> select the register app -> API Permission).",
    304: "The resource requested is not found.",
    305: "Unexpected error occurred at the Microsoft Defender for Cloud Apps server.",
    500: "Unexpected error while delivering events to Devo.",
    501: "Events could not be delivered to Devo after all retries.",
    502: "Devo refused the credentials.",
    503: "The Devo endpoint's TLS certificate is not trusted; nothing was sent.",
    504: "Devo rejected the events.",
    505: "An event could not be serialised for Devo.",
}


class MdcaProviderError(Exception):
    """Base of every error this provider raises on purpose.

    :param code: the seed collector's error code.
    :param detail: what went wrong, in words (redacted before it is stored).
    :param service: the MDCA service (``activities``, ``alerts``, ...) or None.
    :param window: the ``(start, end)`` of the half-open window, as ISO strings, or None.
    :param url: the request URL; stored sanitised.
    :param status: the HTTP status, when there was a response.
    :param body: the response body; stored redacted and cut.
    :param remedy: what the user should do about it, when known.
    """

    kind: ClassVar[str] = "MdcaProviderError"
    codes: ClassVar[frozenset[int]] = frozenset()
    #: The fields :meth:`add_context` may fill in.
    context_fields: ClassVar[tuple[str, ...]] = ("service", "window", "url", "remedy")

    def __init__(
        self,
        code: int,
        detail: str = "",
        *,
        service: str | None = None,
        window: tuple[str, str] | None = None,
        url: str | None = None,
        status: int | None = None,
        body: str | None = None,
        remedy: str | None = None,
    ) -> None:
        if self.codes and code not in self.codes:
            raise ValueError(f"{type(self).__name__} has no code {code}")
        self.code = code
        self.detail = redact_text(detail)
        self.service = service
        self.window = window
        self.url = sanitize_url(url) if url else None
        self.status = status
        self.body = cut(redact_text(body)) if body else None
        self.remedy = redact_text(remedy) if remedy else None
        super().__init__(self._render())

    def _render(self) -> str:
        template = _MESSAGES.get(self.code, "")
        base = template.format(detail=self.detail) if "{detail}" in template else template
        parts = [f"{self.kind} {self.code}: {base}"]
        if self.detail and "{detail}" not in template:
            parts.append(f"Error details: {self.detail}")
        context = []
        if self.service:
            context.append(f"service={self.service}")
        if self.window:
            context.append(f"window=[{self.window[0]}, {self.window[1]})")
        if self.url:
            context.append(f"url={self.url}")
        if self.status is not None:
            context.append(f"status code: {self.status}")
        if context:
            parts.append("(" + ", ".join(context) + ")")
        if self.body:
            parts.append(f"Error message: {self.body}")
        if self.remedy:
            parts.append(f"Remedy: {self.remedy}")
        return " ".join(parts)

    def add_context(self: E, **context: Any) -> E:
        """Fill in where the error happened, for the fields the code that raised it left unset; returns the error.

        Fields already set are kept (the innermost code knows best); the message is rendered again.

        :raises TypeError: a field this error does not have (see :attr:`context_fields`).
        """
        for name, value in context.items():
            if name not in self.context_fields:
                raise TypeError(f"{type(self).__name__} has no context field {name!r}")
            if value is not None and getattr(self, name) is None:
                setattr(self, name, sanitize_url(value) if name == "url" else value)
        self.args = (self._render(),)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle their args by default; ours are keyword-rich and already redacted and cut,
        # so rebuild from the stored fields rather than processing them again.
        return (_rebuild, (type(self), dict(self.__dict__)))


def _rebuild(cls: type[MdcaProviderError], state: dict[str, Any]) -> MdcaProviderError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._render())
    return error


class InitVariablesError(MdcaProviderError):
    """Configuration is invalid: codes 0 (internal), 1 and 3 (user configuration), 2 (rate-limit type)."""

    kind = "InitVariablesError"
    codes = frozenset({0, 1, 2, 3})


class SetupError(MdcaProviderError):
    """Authentication failed: codes 100-103."""

    kind = "SetupError"
    codes = frozenset({100, 101, 102, 103})


class PullError(MdcaProviderError):
    """Retrieving data failed: codes 300-305."""

    kind = "PullError"
    codes = frozenset({300, 301, 302, 303, 304, 305})


class DeliveryError(MdcaProviderError):
    """Delivering to Devo failed: codes 500-505, this provider's own range.

    Besides the common fields it says which Devo tag, which batch, how many events were delivered before the
    failure and how many were not (the failed batch; the rest of the stream was not read).
    """

    kind = "DeliveryError"
    codes = frozenset({500, 501, 502, 503, 504, 505})
    context_fields = (*MdcaProviderError.context_fields, "tag", "batch", "delivered", "undelivered")

    def __init__(
        self,
        code: int,
        detail: str = "",
        *,
        tag: str | None = None,
        batch: int | None = None,
        delivered: int | None = None,
        undelivered: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.tag = tag
        self.batch = batch
        self.delivered = delivered
        self.undelivered = undelivered
        super().__init__(code, detail, **kwargs)

    def _render(self) -> str:
        text = super()._render()
        if self.tag is None:
            return text
        where = f"tag={self.tag}" + (f", batch {self.batch}" if self.batch is not None else "")
        return f"{text} [{where}: {self.delivered or 0} events delivered, {self.undelivered or 0} not delivered]"


@contextlib.contextmanager
def error_context(**context: Any) -> Iterator[None]:
    """Add ``context`` (service, window, tag, batch, ...) to a provider error raised inside the block.

    >>> try:
    ...     with error_context(service="alerts"):
    ...         raise PullError(300, "no progress")
    ... except PullError as exc:
    ...     print(exc.service)
    alerts
    """
    try:
        yield
    except MdcaProviderError as exc:
        exc.add_context(**context)
        raise
