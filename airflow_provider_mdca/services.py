"""The five MDCA services as data: endpoint, window field, paging strategy, auth kind and Devo table.

Everything that differs between services lives here, so the client, the operators and the DAG factory
are written once. Imports nothing from Airflow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SERVICES", "AuthKind", "Paging", "Service", "get_service"]

DEVO_TABLE_PREFIX = "casb.microsoft_defender.cloud_apps"


class Paging(enum.Enum):
    """How a service's records are paged."""

    SCAN = "scan"  # activities: isScan + nextQueryFilters, time-walk fallback
    SORTED_SKIP = "sorted_skip"  # alerts, files: sorted skip/limit, re-anchored before the skip ceiling
    SNAPSHOT = "snapshot"  # entities, subnets: the whole collection, skip/limit


class AuthKind(enum.Enum):
    """Which credential a service accepts."""

    ENTRA = "entra"  # Entra ID client credentials (Bearer)
    LEGACY_TOKEN = "legacy_token"  # the portal's API token (``Authorization: Token ...``)


@dataclass(frozen=True)
class Service:
    """One MDCA service.

    :param name: the collector's service name, also the last part of the Devo table.
    :param endpoint: path below the API base URL.
    :param paging: the paging strategy.
    :param auth: the credential kind.
    :param filter_field: the filter that selects the window (None for snapshots).
    :param time_field: the record field holding the window timestamp in epoch ms (None for snapshots).
    :param permission_hint: what to grant when the API answers 403.
    """

    name: str
    endpoint: str
    paging: Paging
    auth: AuthKind
    filter_field: str | None
    time_field: str | None
    permission_hint: str

    @property
    def devo_table(self) -> str:
        """The Devo table (tag) this service's events go to."""
        return f"{DEVO_TABLE_PREFIX}.{self.name}"

    @property
    def windowed(self) -> bool:
        """True when the service is read per time window; False for full snapshots."""
        return self.filter_field is not None


_INVESTIGATION = "grant the app registration the application permission Investigation.read and admin consent"

SERVICES: dict[str, Service] = {
    s.name: s
    for s in sorted(
        [
            Service(
                "activities", "api/v1/activities/", Paging.SCAN, AuthKind.ENTRA, "date", "timestamp", _INVESTIGATION
            ),
            Service(
                "alerts", "api/v1/alerts/", Paging.SORTED_SKIP, AuthKind.ENTRA, "date", "timestamp", _INVESTIGATION
            ),
            Service("data_enrichment", "api/v1/subnet/", Paging.SNAPSHOT, AuthKind.ENTRA, None, None, _INVESTIGATION),
            Service("entities", "api/v1/entities/", Paging.SNAPSHOT, AuthKind.ENTRA, None, None, _INVESTIGATION),
            Service(
                "files",
                "api/v1/files/",
                Paging.SORTED_SKIP,
                AuthKind.LEGACY_TOKEN,
                "modifiedDate",
                "modifiedDate",
                "no Entra ID app permission covers files: create an API token in the Defender for Cloud Apps "
                "portal (Settings -> API tokens) and set it as the connection's extra `files_access_token`",
            ),
        ],
        key=lambda s: s.name,
    )
}


def get_service(name: str) -> Service:
    """The service called ``name``; a KeyError that lists the valid names otherwise."""
    try:
        return SERVICES[name]
    except KeyError:
        raise KeyError(f"unknown MDCA service {name!r}; expected one of {', '.join(SERVICES)}") from None
