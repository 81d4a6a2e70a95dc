"""Where the operators stage windows, and the figures they log: shared by every operator of this package."""

from __future__ import annotations

import logging
import os
import posixpath
import resource
import sys
from typing import Any, Final
from urllib.parse import SplitResult, unquote, urlsplit

from airflow_provider_mdca._compat import ObjectStoragePath
from airflow_provider_mdca.staging import StagingError
from airflow_provider_mdca.staging.errors import display_location
from airflow_provider_mdca.staging.layout import check_name

__all__ = [
    "CONFIG_SECTION",
    "TENANTS_DIR",
    "default_staging_url",
    "peak_memory_mb",
    "staged_location",
    "staging_base",
    "staging_path",
]

#: The Airflow configuration section (``[mdca]`` in airflow.cfg, or ``AIRFLOW__MDCA__STAGING_URL``).
CONFIG_SECTION: Final = "mdca"

# The schemes apache-airflow-providers-microsoft-azure registers for ObjectStoragePath (its fs/adls.py).
_AZURE_SCHEMES: Final = frozenset({"abfs", "abfss", "adl"})


def default_staging_url() -> str:
    """``[mdca] staging_url`` from Airflow's configuration, else ``file://$AIRFLOW_HOME/mdca/staging``."""
    from airflow.configuration import conf

    configured = conf.get(CONFIG_SECTION, "staging_url", fallback=None)
    if configured:
        return str(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return f"file://{os.path.abspath(home)}/mdca/staging"


#: Where a tenant's windows are staged, below the staging base: ``tenants/<tenant>``.
TENANTS_DIR: Final = "tenants"


def staging_base(url: str | None, conn_id: str | None = None, tenant: str | None = None) -> Any:
    """The staging base as an ``ObjectStoragePath``: ``url``, or the configured default when it is empty.

    ``tenant`` (a tenant of a multi-tenant collector) stages below it, in ``tenants/<tenant>``: two tenants'
    windows of one service never share a folder, a ledger or a request budget.

    ``conn_id`` names the Airflow connection of an object store. On Azure storage the URL is
    ``abfs://<container>/<path>`` and the connection (``wasb`` or ``adls``) names the account and its credentials:
    the extra ``connection_string``, or the extra ``account_name`` with the account key as password.

    :raises ValueError: ``url`` is in adlfs's ``abfs://<container>@<account host>/`` form (see :func:`staging_path`).
    """
    base = staging_path(url or default_staging_url(), conn_id)
    if tenant is None:
        return base
    return base / TENANTS_DIR / check_name(tenant, "tenant")


def staging_path(url: str, conn_id: str | None = None) -> Any:
    """An ``ObjectStoragePath`` for a staged file or folder (e.g. a manifest location from XCom).

    :raises ValueError: ``url`` is ``abfs://<container>@<account>.dfs.core.windows.net/...``: Airflow reads the part
        before ``@`` as a connection id, so that form would name a connection after the container and take the host
        for the container. The account belongs in the connection.
    """
    if "://" not in url:
        url = f"file://{os.path.abspath(url)}"
    if urlsplit(url).scheme.lower() in _AZURE_SCHEMES:
        _refuse_account_host(url)
        _quiet_azure_request_log()
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def staged_location(
    location: str, staging_url: str | None, conn_id: str | None = None, tenant: str | None = None
) -> Any:
    """A staged location from XCom (a manifest's), as a path, refused unless it lies under the staging base.

    A flatten or ship task reads what XCom says; XCom is written by tasks, by the REST API and by anyone who can
    clear and edit a run, so the location must be where this deployment stages: the same scheme, the same account
    or container (and connection), under the same path as ``staging_url`` (or the configured default).

    :raises StagingError: the location is elsewhere, or holds ``.`` or ``..`` segments; the message names it and the
        staging base.
    """
    base = staging_base(staging_url, conn_id, tenant)
    path = staging_path(location, conn_id)
    reason = _outside(urlsplit(str(path)), urlsplit(str(base)))
    if reason is not None:
        raise StagingError(
            f"the location from XCom is not under the configured staging base {display_location(base)}: {reason}; "
            "a flatten or ship task reads only where this deployment stages (give it the fetch task's staging_url)",
            str(path),
        )
    return path


def _outside(where: SplitResult, root: SplitResult) -> str | None:
    """Why ``where`` is not under ``root`` (scheme, connection, container or account, path), or None when it is."""
    if where.scheme.lower() != root.scheme.lower():
        return f"its scheme {where.scheme!r} is not the base's {root.scheme!r}"
    # A connection id is no secret, but URLs are shown without their user part: name both here.
    if (where.username or "") != (root.username or ""):
        return f"its connection {where.username or '(none)'!r} is not the base's {root.username or '(none)'!r}"
    if (where.hostname or "") != (root.hostname or "") or where.port != root.port:
        return (
            f"its container or account {where.hostname or '(none)'!r} is not the base's {root.hostname or '(none)'!r}"
        )
    segments = unquote(where.path).split("/")
    if {".", ".."} & set(segments):
        return "its path holds '.' or '..' segments"
    prefix = posixpath.normpath(unquote(root.path) or "/").rstrip("/") + "/"
    if not unquote(where.path).startswith(prefix):
        return f"its path is not under {prefix}"
    return None


def _refuse_account_host(url: str) -> None:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return
    host = parts.netloc.rpartition("@")[2]
    if "." in host:  # a container name has no dot; in Airflow's abfs://<conn_id>@<container>/ form it is the host
        raise ValueError(
            f"staging URL names the storage account host {host!r}: use {parts.scheme}://<container>/<path> and put "
            "the account in the staging connection (a wasb or adls connection)"
        )


def _quiet_azure_request_log() -> None:
    # As WasbHook does: the Azure SDK logs every request and response, headers included, at INFO (a window's staging
    # takes hundreds of requests). AZURE_HTTP_LOGGING_LEVEL=INFO brings the request log back for a diagnosis.
    logger = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    try:
        logger.setLevel(os.environ.get("AZURE_HTTP_LOGGING_LEVEL", logging.WARNING))
    except ValueError:
        logger.setLevel(logging.WARNING)


def peak_memory_mb() -> float:
    """This process's peak resident memory in MiB (the task's, as the task runs in its own process)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
