"""The delivery marker (``<window>/delivered.json``) and retention: which windows may go, and removing one.

Nothing undelivered is deleted: only a window with a valid marker expires, and a window without one is removed
only when forced. Nothing outside staging is deleted: a link is removed, never followed, and on a local disk the
staging root, the service folder and the window must be this user's and writable by no one else
(:class:`~.errors.UnsafeLocationError` names the folder otherwise).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow_provider_mdca.staging.errors import StagingError, display_location
from airflow_provider_mdca.staging.layout import DELIVERED_NAME, FORMAT_VERSION, as_utc, check_name, window_bounds
from airflow_provider_mdca.staging.manifest import check_iso
from airflow_provider_mdca.staging.storage import (
    P,
    StoragePath,
    check_private_folder,
    is_link,
    make_dirs,
    now_iso,
    read_small,
    remove_tree,
    to_json,
    write_atomically,
)

__all__ = ["delivered_at", "expired_windows", "is_window_delivered", "mark_window_delivered", "remove_window"]

# The package's logger, as when staging was one module: log configuration and filters name it.
log = logging.getLogger(__package__)


def mark_window_delivered(window: P, summary: Mapping[str, Any]) -> P:
    """Record that the whole window is delivered (``delivered.json``, with ``summary``); retention may then delete it.

    :raises StagingError: ``summary`` is not JSON-serialisable.
    """
    path = window / DELIVERED_NAME
    data = to_json(
        {"format_version": FORMAT_VERSION, "delivered_at": now_iso(), "summary": dict(summary)}, path, "summary"
    )
    make_dirs(window)
    write_atomically(path, data)
    return path


def delivered_at(window: StoragePath) -> datetime | None:
    """When the window was marked delivered, or None when it was not (or is being restaged).

    :raises StagingError: the marker exists but is malformed.
    """
    path = window / DELIVERED_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(read_small(path, "delivery marker"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        check_iso(data.get("delivered_at"), "delivered_at")
        return datetime.fromisoformat(data["delivered_at"])
    except ValueError as exc:
        raise StagingError(f"delivery marker is malformed ({exc})", path) from exc


def is_window_delivered(window: StoragePath) -> bool:
    """Whether the window carries a valid delivery marker."""
    return delivered_at(window) is not None


def expired_windows(base: P, service: str, *, older_than: datetime) -> list[P]:
    """The windows of ``service`` that ended and were delivered before ``older_than``, oldest first.

    A window without a marker, with a malformed marker (logged), whose folder name is not a window's, or that is a
    link (logged) is never returned: when in doubt, data stays.

    :raises UnsafeLocationError: on a local disk, the staging root or the service folder is another user's, group
        or world writable, or (the service folder) a link.
    """
    limit = as_utc(older_than, "older_than")
    folder = base / check_name(service, "service")
    check_private_folder(base, "the staging root", follow=True)
    check_private_folder(folder, f"the {service} folder of staging")
    if not folder.exists():
        return []
    expired: list[P] = []
    for window in sorted(folder.iterdir(), key=lambda child: child.name):
        try:
            _, end = window_bounds(window)
        except ValueError:
            continue
        if is_link(window):
            log.warning(
                "Keeping %s: a symbolic link, not a window staging wrote; never followed", display_location(window)
            )
            continue
        if end >= limit:
            continue
        try:
            when = delivered_at(window)
        except StagingError as exc:
            log.warning("Keeping %s: %s", display_location(window), exc.detail)
            continue
        if when is not None and when < limit:
            expired.append(window)
    return expired


def remove_window(window: StoragePath, *, force: bool = False) -> None:
    """Delete a window folder and everything in it (parts, manifests, ledger).

    The delivery marker goes last, so an interrupted removal is still a delivered window the next clean-up finishes.
    Forgetting the ledger is what retention means: rerunning a window after its removal ships it again.

    Links inside it are removed, never followed.

    :param force: delete even if the window is not marked delivered.
    :raises UnsafeLocationError: on a local disk, the window is a link, another user's, or group or world writable.
    :raises StagingError: the window is not delivered and ``force`` is false.
    """
    check_private_folder(window, "the window folder")
    if not force and not is_window_delivered(window):
        raise StagingError("window is not marked delivered; refusing to delete undelivered data", window)
    if not window.exists():
        return
    marker = window / DELIVERED_NAME
    for child in list(window.iterdir()):
        if child.name != DELIVERED_NAME:
            remove_tree(child)
    remove_tree(marker)
    remove_tree(window)
