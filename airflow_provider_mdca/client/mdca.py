"""The MDCA client: every record of a service's window, exactly once, as a stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urljoin

import requests

from airflow_provider_mdca.client.auth import EntraIdAuth, LegacyTokenAuth, MdcaAuth
from airflow_provider_mdca.client.pagination import (
    FetchPage,
    ScanPaginator,
    SnapshotPaginator,
    SortedSkipPaginator,
    Window,
)
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.stats import FetchStats, RecordStream
from airflow_provider_mdca.client.transport import RequestContext, Transport
from airflow_provider_mdca.connections.mdca import MdcaConfig
from airflow_provider_mdca.errors import InitVariablesError, PullError, error_context
from airflow_provider_mdca.event_keys import record_key
from airflow_provider_mdca.redaction import register_secret
from airflow_provider_mdca.services import AuthKind, ExpiredWindow, Paging, Service, get_service
from airflow_provider_mdca.timestamps import epoch_ms
from airflow_provider_mdca.token_agent import TokenAgentClient

__all__ = ["MdcaClient", "to_epoch_ms"]

log = logging.getLogger(__name__)

_USER_AGENT = "airflow-provider-mdca"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime (MDCA filters speak milliseconds)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InitVariablesError(1, f"window bound {moment.isoformat()} must be timezone-aware")
    # Integer arithmetic (floats lose microseconds far from 1970). Ceiling, so that a record stamped with
    # millisecond m is inside [start, end) exactly when start_ms <= m < end_ms.
    utc = moment.astimezone(timezone.utc)
    # Airflow hands over pendulum DateTimes, whose differences do not divide by a timedelta: rebuild a plain one.
    plain = datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=timezone.utc)
    micros = (plain - _EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000)


class MdcaClient:
    """Reads MDCA services for half-open windows ``[start, end)``.

    One client holds one ``requests.Session`` (so TLS verification, connection pooling and MSAL's token
    requests share it), one rate limiter for all services (the tenant's budget is shared), and the auth
    objects, created lazily: constructing a client touches no network.

    :param config: the validated configuration.
    :param secret_sink: called with each new access token (the Airflow hook passes ``mask_secret``).
    :param sleep: injectable for tests.
    """

    def __init__(
        self,
        config: MdcaConfig,
        *,
        secret_sink: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        # However the config was built, its credentials are masked in every message from here on.
        register_secret(config.client_secret)
        register_secret(config.files_access_token)
        self._session = requests.Session()
        self._session.trust_env = False  # proxies and the CA bundle are read once: environment.py
        self._session.verify = config.verify
        self._session.headers["User-Agent"] = _USER_AGENT
        self._sleep = sleep
        self._secret_sink = secret_sink
        self._limiter = RateLimiter(config.requests_per_minute, sleep=sleep)
        self._transport = Transport(config, self._session, limiter=self._limiter, sleep=sleep)
        self._entra: EntraIdAuth | None = None
        self._legacy: LegacyTokenAuth | None = None

    @property
    def limiter(self) -> RateLimiter:
        """The tenant's request budget as this client spends it (see :meth:`RateLimiter.hand_over`)."""
        return self._limiter

    def __repr__(self) -> str:
        return f"MdcaClient(base_url={self.config.base_url!r}, tenant_id={self.config.tenant_id!r})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> MdcaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- auth ------------------------------------------------------------------------------------------

    @property
    def entra_auth(self) -> EntraIdAuth:
        """The Entra ID auth (built on first use)."""
        if self._entra is None:
            shared = TokenAgentClient() if self.config.share_token else None
            self._entra = EntraIdAuth(
                self.config, self._session, secret_sink=self._secret_sink, sleep=self._sleep, shared=shared
            )
        return self._entra

    def auth_for(self, service: Service) -> MdcaAuth:
        """The credential ``service`` needs; PullError 303 naming the missing setting for files."""
        if service.auth is AuthKind.ENTRA:
            return self.entra_auth
        if not self.config.files_access_token:
            raise PullError(
                303,
                "the files service needs the legacy API token, and the connection has none",
                service=service.name,
                remedy=service.permission_hint,
            )
        if self._legacy is None:
            self._legacy = LegacyTokenAuth(self.config.files_access_token)
        return self._legacy

    # -- reading ---------------------------------------------------------------------------------------

    def fetch(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        page_size: int | None = None,
        on_expired_window: ExpiredWindow = "error",
    ) -> RecordStream:
        """Every record of ``service`` in ``[start, end)``, once, as a stream read page by page.

        The window is on the service's window field (``Service.filter_field``: activities on ``created``, when MDCA
        stored them). A service whose records change after they are first read (alerts: resolved, dismissed) also
        yields, after the window's records, the records that changed in the window and were not among them.
        ``entities`` and ``data_enrichment`` are full snapshots: the window is ignored. Nothing is requested until
        the stream is read; its ``stats`` are this fetch's figures, final once it is exhausted (or has failed).

        :param page_size: records per request, within the service's paging limits (``Paging.page_sizes``); by
            default the largest (the connection's ``scan_page_size`` for scan paging).
        :param on_expired_window: a window that starts before what MDCA keeps (``Service.retention``) is an
            InitVariablesError naming the limit (``error``), or a logged warning and whatever the API still has
            (``warn``).
        :raises InitVariablesError: the window is older than MDCA keeps (with ``error``), or ends before it starts.
        """
        svc = get_service(service)
        _check_retention(svc, start, end, on_expired_window)
        stats = FetchStats(service=service)
        return RecordStream(self._records(svc, start, end, stats, page_size), stats)

    def _records(
        self, svc: Service, start: datetime, end: datetime, stats: FetchStats, page_size: int | None
    ) -> Iterator[dict[str, Any]]:
        window = Window(to_epoch_ms(start), to_epoch_ms(end))
        if window.end_ms < window.start_ms:
            raise InitVariablesError(1, f"{svc.name}: window end {end.isoformat()} is before its start")
        window_text = (start.isoformat(), end.isoformat()) if svc.windowed else None
        began = time.monotonic()
        try:
            with error_context(service=svc.name, window=window_text):
                if svc.windowed and window.end_ms == window.start_ms:
                    return  # an empty window holds no record; asking would only spend the request budget
                auth = self.auth_for(svc)
                url = urljoin(self.config.base_url, svc.endpoint)
                context = RequestContext(svc.name, window_text, svc.permission_hint)

                def fetch(body: dict[str, Any]) -> dict[str, Any]:
                    return self._transport.post_json(url, body, auth=auth, context=context, stats=stats)

                read: set[str] = set()
                for record in self._paginator(svc, window, stats, page_size).records(fetch):
                    stats.records += 1
                    if svc.event_time_field and _happened_before(record.get(svc.event_time_field), window.start_ms):
                        stats.late += 1
                    if svc.changes_filter:
                        read.add(record_key(record))
                    yield record
                if svc.changes_filter:
                    yield from self._changes(svc, window, stats, fetch, read)
        finally:
            stats.elapsed_seconds = time.monotonic() - began

    @staticmethod
    def _changes(
        svc: Service, window: Window, stats: FetchStats, fetch: FetchPage, read: set[str]
    ) -> Iterator[dict[str, Any]]:
        """The records that changed in the window (e.g. alerts resolved in it) and were not read in it already."""
        assert svc.changes_filter and svc.changes_field
        changed = SortedSkipPaginator(
            window, filter_field=svc.changes_filter, time_field=svc.changes_field, stats=stats
        )
        for record in changed.records(fetch):
            if record_key(record) in read:
                continue  # read above in its changed state already: one event for it in this window
            stats.records += 1
            stats.changes += 1
            stats.late += 1  # raised in an earlier window, changed in this one
            yield record

    def _paginator(
        self, svc: Service, window: Window, stats: FetchStats, page_size: int | None
    ) -> ScanPaginator | SortedSkipPaginator | SnapshotPaginator:
        largest = svc.paging.max_page_size
        if svc.paging is Paging.SCAN:
            assert svc.filter_field and svc.time_field
            limit = page_size or self.config.scan_page_size
            return ScanPaginator(
                window, filter_field=svc.filter_field, time_field=svc.time_field, stats=stats, limit=limit
            )
        if svc.paging is Paging.SORTED_SKIP:
            assert svc.filter_field and svc.time_field
            return SortedSkipPaginator(
                window,
                filter_field=svc.filter_field,
                time_field=svc.time_field,
                stats=stats,
                page_size=min(page_size or largest, largest),
            )
        return SnapshotPaginator(sort_field=svc.sort_field, stats=stats, page_size=min(page_size or largest, largest))

    def probe(self, service: str) -> int:
        """Ask ``service`` for one record: proves credentials, permissions and the URL. Returns records seen."""
        svc = get_service(service)
        auth = self.auth_for(svc)
        stats = FetchStats(service=service)
        page = self._transport.post_json(
            urljoin(self.config.base_url, svc.endpoint),
            {"skip": 0, "limit": 1, "sortField": svc.sort_field, "sortDirection": "asc"},
            auth=auth,
            context=RequestContext(service, None, svc.permission_hint),
            stats=stats,
        )
        data = page.get("data")
        return len(data) if isinstance(data, list) else 0

    def get_token(self) -> str:
        """An Entra ID access token (SetupError 100-103 when it cannot be had)."""
        return self.entra_auth.access_token()


def _happened_before(moment: object, start_ms: int) -> bool:
    """Whether an event time (epoch ms, or ISO 8601 text) is before ``start_ms``; False when it is not a time."""
    ms = epoch_ms(moment)
    return ms is not None and ms < start_ms


def _check_retention(svc: Service, start: datetime, end: datetime, on_expired: ExpiredWindow) -> None:
    """Refuse (or warn about) a window that starts before MDCA's retention of ``svc``: never a silent empty one."""
    if svc.retention is None or not svc.windowed:
        return
    kept_since = datetime.now(timezone.utc) - svc.retention
    if start >= kept_since:
        return
    days = svc.retention.days
    detail = (
        f"{svc.name}: the window [{start.isoformat()}, {end.isoformat()}) starts before "
        f"{kept_since.isoformat(timespec='seconds')}: MDCA keeps about {days} days of {svc.name}, so the API would "
        "answer it empty or in part"
    )
    if on_expired == "warn":
        log.warning("%s; reading what is left (on_expired_window: warn)", detail)
        return
    raise InitVariablesError(
        1,
        detail,
        service=svc.name,
        window=(start.isoformat(), end.isoformat()),
        remedy=f"backfill only the last {days} days (older history: the portal's export), or set the service's "
        "on_expired_window: warn in the collector configuration to read what is left",
    )
