"""The test suite's one table of MDCA services: what a user expects of each, written out by hand.

Every test that needs "all services", "the windowed ones" or a service's expected defaults reads this table, and
``tests/unit/test_services.py`` checks the provider's registry (``airflow_provider_mdca.services``) against it, so a
service added to the registry without its row here fails at once rather than being silently untested. Adding a
service to the collector is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Expected:
    """What the user-facing contract of one service is."""

    name: str
    endpoint: str
    #: The request filter that selects a window (None: a snapshot, read whole every run).
    filter_field: str | None
    #: The record field holding the window's instant, epoch ms (None for snapshots).
    time_field: str | None
    #: "entra" (Bearer tokens) or "legacy_token" (the portal's API token).
    auth: str
    #: "scan", "sorted_skip" or "snapshot".
    paging: str
    default_period: timedelta
    default_lag: timedelta
    #: The field every request sorts on, ascending.
    sort_field: str
    flattened: bool = False
    #: How far back MDCA keeps the records (None: no documented limit).
    retention: timedelta | None = None
    #: The filter that finds records changed after they were first read.
    changes_filter: str | None = None
    #: Where the window is on when MDCA stored a record: the field of when it happened (late records are counted).
    event_time_field: str | None = None

    @property
    def windowed(self) -> bool:
        return self.filter_field is not None

    @property
    def devo_table(self) -> str:
        return f"casb.microsoft_defender.cloud_apps.{self.name}"

    @property
    def dag_id(self) -> str:
        return f"mdca_{self.name}"


_LAG = timedelta(minutes=2)

SERVICE_TABLE: dict[str, Expected] = {
    row.name: row
    for row in (
        Expected(
            "activities",
            "api/v1/activities/",
            "created",  # when MDCA stored it: complete once the window has passed, however late it was stored
            "created",
            "entra",
            "scan",
            timedelta(minutes=5),
            _LAG,
            "created",
            retention=timedelta(days=30),
            event_time_field="timestamp",
        ),
        Expected(
            "alerts",
            "api/v1/alerts/",
            "date",
            "timestamp",
            "entra",
            "sorted_skip",
            timedelta(minutes=5),
            _LAG,
            "date",
            flattened=True,
            changes_filter="resolutionDate",
        ),
        Expected(
            "data_enrichment",
            "api/v1/subnet/",
            None,
            None,
            "entra",
            "snapshot",
            timedelta(days=1),
            timedelta(0),
            "name",
        ),
        Expected(
            "entities", "api/v1/entities/", None, None, "entra", "snapshot", timedelta(days=1), timedelta(0), "date"
        ),
        Expected(
            "files",
            "api/v1/files/",
            "snapshotLastModifiedDate",  # when MDCA's scan of the app saw the change, not the app's own modifiedDate
            "snapshotLastModifiedDate",
            "legacy_token",
            "sorted_skip",
            timedelta(hours=1),
            _LAG,
            "snapshotLastModifiedDate",
            event_time_field="modifiedDate",  # the app's own time of the change
        ),
    )
}

#: Every service, in the registry's (sorted) order.
ALL: tuple[str, ...] = tuple(SERVICE_TABLE)
#: The services read window by window.
WINDOWED: tuple[str, ...] = tuple(name for name, row in SERVICE_TABLE.items() if row.windowed)
#: The services read whole (a snapshot) every run.
SNAPSHOTS: tuple[str, ...] = tuple(name for name, row in SERVICE_TABLE.items() if not row.windowed)
#: Each service's default window length.
PERIODS: dict[str, timedelta] = {name: row.default_period for name, row in SERVICE_TABLE.items()}
