"""Where the operators stage windows, and the figures they log: shared by every operator of this package."""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, Final

from airflow_provider_mdca._compat import ObjectStoragePath

__all__ = ["CONFIG_SECTION", "default_staging_url", "peak_memory_mb", "staging_base", "staging_path"]

#: The Airflow configuration section (``[mdca]`` in airflow.cfg, or ``AIRFLOW__MDCA__STAGING_URL``).
CONFIG_SECTION: Final = "mdca"


def default_staging_url() -> str:
    """``[mdca] staging_url`` from Airflow's configuration, else ``file://$AIRFLOW_HOME/mdca/staging``."""
    from airflow.configuration import conf

    configured = conf.get(CONFIG_SECTION, "staging_url", fallback=None)
    if configured:
        return str(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return f"file://{os.path.abspath(home)}/mdca/staging"


def staging_base(url: str | None, conn_id: str | None = None) -> Any:
    """The staging base as an ``ObjectStoragePath``: ``url``, or the configured default when it is empty.

    ``conn_id`` names the Airflow connection of an object store (e.g. a ``wasb`` / ADLS connection for ``abfs://``).
    """
    return staging_path(url or default_staging_url(), conn_id)


def staging_path(url: str, conn_id: str | None = None) -> Any:
    """An ``ObjectStoragePath`` for a staged file or folder (e.g. a manifest location from XCom)."""
    if "://" not in url:
        url = f"file://{os.path.abspath(url)}"
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def peak_memory_mb() -> float:
    """This process's peak resident memory in MiB (the task's, as the task runs in its own process)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
