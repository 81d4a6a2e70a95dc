"""What the MDCA client needs: a typed, validated view of an ``mdca`` connection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_mdca.connections.parsing import credential, field_error, parse_extra, parse_verify
from airflow_provider_mdca.services import AuthKind, Paging, Service

__all__ = ["DEFAULT_TOKEN_URL", "MDCA_SCOPE", "MdcaConfig"]

DEFAULT_TOKEN_URL = "https://login.microsoftonline.com/"
#: The application ID URI of the "Microsoft Cloud App Security" API.
MDCA_SCOPE = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default"


@dataclass(frozen=True)
class MdcaConfig:
    """Everything the client needs to reach one MDCA tenant.

    Secrets are excluded from ``repr`` so that a logged config never shows them.
    """

    base_url: str
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    token_url: str = DEFAULT_TOKEN_URL
    files_access_token: str | None = field(default=None, repr=False)
    #: True (system CAs, or ``REQUESTS_CA_BUNDLE``) or the path of a CA bundle. Never False.
    verify: bool | str = True
    #: The tenant's limit is 30 requests a minute for all endpoints together.
    requests_per_minute: float | None = 30.0
    #: Seconds to wait for each read of a response (a connect, each chunk of the body).
    timeout: float = 120.0
    #: Seconds one request may take in all, however slowly its body arrives: a server dripping its answer, each read
    #: within ``timeout``, must not hold a task (and the API's pool slot) for ever. A request past it is retried.
    request_deadline: float = 600.0
    #: The largest response body accepted, uncompressed (a 5,000-record scan page is tens of MB): a bigger one is
    #: PullError 305 rather than a worker's memory.
    max_response_bytes: int = 256 * 2**20
    max_retries: int = 5
    max_throttle_retries: int = 10
    backoff_base: float = 2.0
    backoff_max: float = 60.0
    #: Wait after a 429 that has no Retry-After (Microsoft's own module waits 60 s).
    retry_after_default: float = 60.0
    #: Activities scan page size (``Paging.SCAN.page_sizes``). The tenant's request budget, not memory, is the
    #: bottleneck: the largest by default.
    scan_page_size: int = Paging.SCAN.max_page_size
    #: Share one Entra ID token among this machine's fetch tasks while it is valid (``token_agent.py``): one token
    #: an hour rather than one a task. Off (``extra.share_token: false``): each task asks Entra ID itself.
    share_token: bool = True

    def has_credential_for(self, service: Service) -> bool:
        """Whether the connection holds the credential ``service`` needs (files: the legacy API token)."""
        return service.auth is not AuthKind.LEGACY_TOKEN or bool(self.files_access_token)

    @property
    def authority(self) -> str:
        """The Entra ID authority MSAL talks to: ``<token_url><tenant_id>``."""
        return f"{self.token_url.rstrip('/')}/{self.tenant_id}"

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any] | str | None,
        conn_id: str = "mdca_default",
    ) -> MdcaConfig:
        """Build and validate a config from an Airflow connection's fields.

        Raises InitVariablesError code 1 naming the connection and the field for anything missing or malformed.
        Extra keys may carry Airflow's legacy ``extra__mdca__`` prefix.
        """
        extras = parse_extra(extra, conn_id)
        fail = field_error(conn_id)

        def ext(name: str) -> Any:
            value = extras.get(name, extras.get(f"extra__mdca__{name}"))
            return None if value == "" else value

        if not host:
            raise fail(
                "host", "required: the MDCA API base URL, e.g. https://mytenant.us2.portal.cloudappsecurity.com/"
            )
        base_url = _https_url(host, "host", fail)
        if not login:
            raise fail("login", "required: the Entra ID application (client) ID")
        if not password:
            raise fail("password", "required: the Entra ID client secret")
        login = credential(login, "login", fail, secret=False)
        password = credential(password, "password", fail)
        tenant_id = ext("tenant_id")
        if not tenant_id or not isinstance(tenant_id, str):
            raise fail("extra.tenant_id", "required: the Entra ID directory (tenant) ID")
        tenant_id = credential(tenant_id, "extra.tenant_id", fail, secret=False)
        token_url = _https_url(ext("token_url") or DEFAULT_TOKEN_URL, "extra.token_url", fail)
        files_token = ext("files_access_token")
        if files_token is not None:
            files_token = credential(files_token, "extra.files_access_token", fail)

        kwargs: dict[str, Any] = {}
        for name, minimum in (
            ("requests_per_minute", 0.0),
            ("timeout", 0.0),
            ("backoff_base", 0.0),
            ("backoff_max", 0.0),
            ("retry_after_default", 0.0),
            ("request_deadline", 0.0),
        ):
            if (value := ext(name)) is not None:
                kwargs[name] = _number(value, f"extra.{name}", minimum, fail)
        for name in ("max_retries", "max_throttle_retries"):
            if (value := ext(name)) is not None:
                kwargs[name] = int(_number(value, f"extra.{name}", -1, fail))
        if (value := ext("max_response_bytes")) is not None:
            kwargs["max_response_bytes"] = int(_number(value, "extra.max_response_bytes", 2**16 - 1, fail))
        if (value := ext("scan_page_size")) is not None:
            size = int(_number(value, "extra.scan_page_size", 0, fail))
            low, high = Paging.SCAN.page_sizes
            if not low <= size <= high:
                raise fail("extra.scan_page_size", f"must be between {low} and {high}, got {size}")
            kwargs["scan_page_size"] = size
        if (value := ext("share_token")) is not None:
            kwargs["share_token"] = _flag(value, "extra.share_token", fail)

        return cls(
            base_url=base_url,
            tenant_id=tenant_id,
            client_id=login,
            client_secret=password,
            token_url=token_url,
            files_access_token=files_token,
            verify=parse_verify(ext("verify"), fail),
            **kwargs,
        )


def _https_url(value: str, name: str, fail: Any) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise fail(name, f"must be an https:// URL, got {parts.scheme or 'no'} scheme")
    # A trailing slash makes urljoin keep the base path (e.g. /cas/ prefixes or the emulator's tenant path).
    return value.strip().rstrip("/") + "/"


def _flag(value: Any, name: str, fail: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise fail(name, f"must be true or false, got {value!r}")


def _number(value: Any, name: str, minimum: float, fail: Any) -> float:
    if isinstance(value, bool):
        raise fail(name, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail(name, f"must be a number, got {value!r}") from None
    if number <= minimum:
        raise fail(name, f"must be greater than {minimum:g}, got {value!r}")
    return number
