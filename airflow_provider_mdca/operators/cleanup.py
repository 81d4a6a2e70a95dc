"""Retention: remove a service's staged windows once delivered and older than the retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_mdca._compat import BaseOperator, Context
from airflow_provider_mdca.operators._staging import staging_base
from airflow_provider_mdca.services import get_service
from airflow_provider_mdca.staging import StagingError, UnsafeLocationError, expired_windows, remove_window

__all__ = ["MdcaStagingCleanupOperator"]


class MdcaStagingCleanupOperator(BaseOperator):
    """Remove the service's windows that were delivered more than ``retention`` ago.

    Only windows carrying a delivery marker are touched: undelivered data stays however old. Removing a window
    forgets its ledger too, so rerunning a removed window ships it again. Links are removed, never followed; on a
    local disk a staging root, service folder or window that another user could tamper with (not this user's, group
    or world writable, or a link) is refused: the task fails naming it (after removing the other windows).

    :param service: the MDCA service.
    :param staging_url: the staging base URL (the same as the fetch task's).
    :param staging_conn_id: the connection of the object store used as staging, if any.
    :param retention: how long a delivered window stays staged (for reruns without re-fetching).
    :param tenant: the tenant of a multi-tenant collector: its windows are below ``tenants/<tenant>``.
    """

    template_fields: Sequence[str] = ("staging_url", "staging_conn_id")
    ui_color = "#eeeeee"

    def __init__(
        self,
        *,
        service: str,
        staging_url: str | None = None,
        staging_conn_id: str | None = None,
        retention: timedelta = timedelta(days=1),
        tenant: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if retention < timedelta(0):
            raise ValueError(f"retention must not be negative, got {retention}")
        self.service_name = get_service(service).name
        self.staging_url = staging_url
        self.staging_conn_id = staging_conn_id
        self.retention = retention
        self.tenant = tenant

    def execute(self, context: Context) -> int:
        """Remove expired windows; return how many were removed."""
        base = staging_base(self.staging_url, self.staging_conn_id, self.tenant)
        limit = datetime.now(timezone.utc) - self.retention
        removed = 0
        refused: list[UnsafeLocationError] = []
        # An unsafe staging root or service folder raises here: nothing is removed.
        for window in expired_windows(base, self.service_name, older_than=limit):
            try:
                remove_window(window)
            except UnsafeLocationError as exc:
                self.log.error("Refusing to remove %s", exc)
                refused.append(exc)
                continue
            except (OSError, StagingError) as exc:  # one stuck window must not stop the others' clean-up
                self.log.warning("Could not remove %s: %s", window, exc)
                continue
            removed += 1
        self.log.info(
            "Statistics: service=%s removed_windows=%d retention=%s staging=%s",
            self.service_name,
            removed,
            self.retention,
            base,
        )
        if refused:
            raise UnsafeLocationError(
                f"{len(refused)} window(s) refused, nothing deleted in them: " + "; ".join(map(str, refused))
            )
        return removed
