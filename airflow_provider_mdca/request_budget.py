"""The tenant's request budget, handed from one fetch task to the next through the staging store.

MDCA allows a tenant 30 requests a minute, counted in a sliding minute, whichever process sends them. Each fetch
spaces its own requests (:class:`~airflow_provider_mdca.client.ratelimit.RateLimiter`) and the Airflow pool lets one
fetch run at a time, but a fetch that starts right after another ended could send its first request sooner than the
spacing allows: with windows queued back to back (a catch-up) that adds up to 429 answers. So each fetch leaves, beside
the staged windows, when the next request may start, and the next fetch (on any worker that shares the staging
store) starts no sooner. The file names the tenant by a hash and holds one time: no credential, no record.

Best effort: a file that cannot be read or written costs at worst a 429, which the client waits out; it never fails a
fetch. Imports nothing from Airflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Final

from airflow_provider_mdca.staging.storage import StoragePath, make_dirs, read_small, write_atomically

__all__ = ["SharedRequestBudget", "tenant_key"]

log = logging.getLogger(__name__)

_FOLDER: Final = "_request_budget"


def tenant_key(base_url: str, tenant_id: str) -> str:
    """A stable, opaque name for one tenant's budget (the API's address and tenant id, hashed)."""
    return hashlib.sha256(f"{base_url.rstrip('/').lower()}|{tenant_id.lower()}".encode()).hexdigest()[:24]


class SharedRequestBudget:
    """``<staging base>/_request_budget/<tenant key>.json``: ``{"next_request_at": <epoch seconds>}``."""

    def __init__(self, base: StoragePath, key: str) -> None:
        self.path = base / _FOLDER / f"{key}.json"

    def load(self) -> float | None:
        """When the previous fetch said the next request may start; None when unknown."""
        try:
            if not self.path.exists():
                return None
            value = json.loads(read_small(self.path, "the request budget")).get("next_request_at")
        except Exception as exc:  # best effort: never fail a fetch for it
            log.warning("the shared request budget %s could not be read (%s); pacing from now", self.path, exc)
            return None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def save(self, next_request_at: float | None) -> None:
        """Leave when the next request may start, for the next fetch."""
        if next_request_at is None:
            return
        try:
            make_dirs(self.path.parent)
            write_atomically(self.path, json.dumps({"next_request_at": next_request_at}).encode())
        except Exception as exc:
            log.warning("the shared request budget %s could not be written: %s", self.path, exc)
