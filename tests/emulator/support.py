"""Helpers for the emulator tests: a fixed past instant, client sessions, and a tenant with request helpers.

Sessions are built with ``trust_env=False``: this machine exports ``REQUESTS_CA_BUNDLE``, and requests lets
that variable override ``Session.verify`` (psf/requests#3829). It also keeps proxies away from loopback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from mdca_emulator import MDCA_SCOPE, EmulatorServer, TenantConfig, TenantState
from tests.service_table import SERVICE_TABLE

SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
# A fixed past instant (2023-11-14T22:13:20Z). Tenants run the realistic time model unless a test says otherwise, so
# a test that reads activities near T0 pins the tenant clock (the activity log keeps 30 days).
T0 = 1_700_000_000_000
# The tenant clock once every storage delay of data near T0 has passed (72 h at most), within the 30 days kept.
AFTER = T0 + 4 * DAY


def new_session(emu: EmulatorServer) -> requests.Session:
    session = requests.Session()
    session.verify = str(emu.ca_bundle)
    session.trust_env = False
    return session


@dataclass
class Tenant:
    """A tenant of the shared emulator with a client session and request helpers."""

    emu: EmulatorServer
    config: TenantConfig
    session: requests.Session
    _token: str | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.config.tenant_id

    @property
    def state(self) -> TenantState:
        return self.emu.tenant(self.id)

    def url(self, service: str) -> str:
        return f"{self.emu.mdca_url(self.id)}{SERVICE_TABLE[service].endpoint}"

    def token_response(self, **form: str) -> requests.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "scope": MDCA_SCOPE,
            **form,
        }
        return self.session.post(f"{self.emu.token_url}{self.id}/oauth2/v2.0/token", data=data)

    def new_token(self) -> str:
        response = self.token_response()
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def token(self) -> str:
        if self._token is None:
            self._token = self.new_token()
        return self._token

    def headers(self, auth: str = "bearer") -> dict[str, str]:
        if auth == "bearer":
            return {"Authorization": f"Bearer {self.token()}"}
        if auth == "token":
            return {"Authorization": f"Token {self.config.files_access_token}"}
        return {}

    def post(
        self,
        service: str,
        body: dict[str, Any] | None = None,
        auth: str | None = None,
    ) -> requests.Response:
        auth = auth or ("token" if SERVICE_TABLE[service].auth == "legacy_token" else "bearer")
        return self.session.post(self.url(service), json=body or {}, headers=self.headers(auth))

    def ok(self, service: str, body: dict[str, Any] | None = None, auth: str | None = None) -> dict[str, Any]:
        response = self.post(service, body, auth)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page


def scan_all(tenant: Tenant, filters: dict[str, Any], max_pages: int = 500, **body: Any) -> list[dict[str, Any]]:
    """Every page of an activities scan, following ``nextQueryFilters``."""
    pages, request = [], {"filters": filters, "isScan": True, "limit": 500, **body}
    for _ in range(max_pages):
        page = tenant.ok("activities", request)
        pages.append(page)
        if not page["hasNext"]:
            return pages
        request = {**request, "filters": page["nextQueryFilters"]}
    raise AssertionError("scan did not end")


def ids(pages: list[dict[str, Any]]) -> list[str]:
    """The ``_id``s of the records of `pages`, in order."""
    return [record["_id"] for page in pages for record in page["data"]]
