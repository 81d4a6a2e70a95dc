"""The MDCA services as data: endpoint, window field, paging, auth kind, Devo table and default schedule.

Everything that differs between services lives here, so the client, the operators, the collector configuration,
the DAG factory and the emulator are written once: adding a service is one entry in :data:`SERVICES` (and, for the
emulator, a record builder). The limits of each paging strategy live here too. Imports nothing from Airflow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = [
    "DEVO_TABLE_PREFIX",
    "SERVICES",
    "SKIP_CEILING",
    "AuthKind",
    "ExpiredWindow",
    "Paging",
    "Service",
    "get_service",
]

DEVO_TABLE_PREFIX = "casb.microsoft_defender.cloud_apps"

#: What to do with a window that starts before a service's ``retention``: refuse it naming the limit, or warn and read
#: what is left. Never a silent empty window.
ExpiredWindow = Literal["error", "warn"]

#: Skip/limit paging: ``skip + limit`` may not pass this (Microsoft's own module refuses it; re-anchor before).
SKIP_CEILING = 5000


class Paging(enum.Enum):
    """How a service's records are paged, and the page sizes MDCA accepts for it."""

    SCAN = "scan"  # activities: isScan + nextQueryFilters, time-walk fallback
    SORTED_SKIP = "sorted_skip"  # alerts, files: sorted skip/limit, re-anchored before the skip ceiling
    SNAPSHOT = "snapshot"  # entities, subnets: the whole collection, skip/limit

    @property
    def page_sizes(self) -> tuple[int, int]:
        """The smallest and largest records per request MDCA documents; the largest is the default.

        Scan mode takes 500 to 5,000 records a request; skip/limit paging at most 100.
        """
        return (500, 5000) if self is Paging.SCAN else (1, 100)

    @property
    def max_page_size(self) -> int:
        """The largest page, and the default: the tenant's request budget, not memory, is the bottleneck."""
        return self.page_sizes[1]


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
    :param default_period: the window length (a snapshot's interval) when the configuration sets none: short where
        records are many (the seed collector's ``request_period_in_seconds``).
    :param default_lag: how long after a window's end to wait before reading it (none for snapshots).
    :param flattened: whether each record is expanded into one event per combination of its entities (alerts).
    :param order_field: snapshots only: the documented sort field their pages are read in (windowed services are
        read in the order of their window field).
    :param retention: how far back MDCA keeps the service's records (the activity log: about 30 days); a window
        that starts earlier cannot be read whole. None: no documented limit.
    :param changes_filter: the filter that finds records changed in a window after they were first read (alerts:
        ``resolutionDate``), and :param changes_field: the record field holding that change's time (epoch ms).
    :param event_time_field: where the window is on when MDCA stored a record, the record field holding when it
        happened (epoch ms): a record that happened before its window's start is a late record, which a window on
        the event's own time would have missed (counted as ``late``).
    """

    name: str
    endpoint: str
    paging: Paging
    auth: AuthKind
    filter_field: str | None
    time_field: str | None
    permission_hint: str
    default_period: timedelta
    default_lag: timedelta = timedelta(0)
    flattened: bool = False
    order_field: str | None = None
    retention: timedelta | None = None
    changes_filter: str | None = None
    changes_field: str | None = None
    event_time_field: str | None = None

    @property
    def sort_field(self) -> str:
        """The field every request sorts on (ascending): the window field, or a snapshot's documented order."""
        field = self.filter_field or self.order_field
        assert field is not None, f"{self.name}: a snapshot needs an order_field"
        return field

    @property
    def devo_table(self) -> str:
        """The Devo table (tag) this service's events go to."""
        return f"{DEVO_TABLE_PREFIX}.{self.name}"

    @property
    def windowed(self) -> bool:
        """True when the service is read per time window; False for full snapshots."""
        return self.filter_field is not None


_INVESTIGATION = "grant the app registration the application permission Investigation.read and admin consent"
_FILES_TOKEN = (
    "no Entra ID app permission covers files: create an API token in the Defender for Cloud Apps portal "
    "(Settings -> API tokens) and set it as the connection's extra `files_access_token`"
)
# Records reach MDCA a little after their timestamp: wait this long after a window's end before reading it.
_LAG = timedelta(minutes=2)

SERVICES: dict[str, Service] = {
    s.name: s
    for s in sorted(
        [
            Service(
                name="activities",
                endpoint="api/v1/activities/",
                paging=Paging.SCAN,
                auth=AuthKind.ENTRA,
                # Windows on when MDCA stored a record, not when it happened: MDCA stores activities minutes to
                # days late, and a window on `created` is complete once it has passed (README, "Late records").
                filter_field="created",
                time_field="created",
                permission_hint=_INVESTIGATION,
                default_period=timedelta(minutes=5),
                default_lag=_LAG,
                retention=timedelta(days=30),
                event_time_field="timestamp",
            ),
            Service(
                name="alerts",
                endpoint="api/v1/alerts/",
                paging=Paging.SORTED_SKIP,
                auth=AuthKind.ENTRA,
                filter_field="date",
                time_field="timestamp",
                permission_hint=_INVESTIGATION,
                default_period=timedelta(minutes=5),
                default_lag=_LAG,
                flattened=True,
                changes_filter="resolutionDate",
                changes_field="resolveTime",
            ),
            Service(
                name="data_enrichment",
                endpoint="api/v1/subnet/",
                paging=Paging.SNAPSHOT,
                auth=AuthKind.ENTRA,
                filter_field=None,
                time_field=None,
                permission_hint=_INVESTIGATION,
                default_period=timedelta(days=1),
                order_field="name",
            ),
            Service(
                name="entities",
                endpoint="api/v1/entities/",
                paging=Paging.SNAPSHOT,
                auth=AuthKind.ENTRA,
                filter_field=None,
                time_field=None,
                permission_hint=_INVESTIGATION,
                default_period=timedelta(days=1),
                order_field="date",  # when the entity was created: new entities come last
            ),
            Service(
                name="files",
                endpoint="api/v1/files/",
                paging=Paging.SORTED_SKIP,
                auth=AuthKind.LEGACY_TOKEN,
                # Windows on when MDCA updated its record of the file (its scan of the cloud app saw the change),
                # not on the app's own modifiedDate: MDCA learns of a modification hours or days later.
                filter_field="snapshotLastModifiedDate",
                time_field="snapshotLastModifiedDate",
                permission_hint=_FILES_TOKEN,
                default_period=timedelta(hours=1),
                default_lag=_LAG,
                event_time_field="modifiedDate",
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
