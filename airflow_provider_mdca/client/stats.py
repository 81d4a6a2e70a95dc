"""Counters of one fetch, for task logs and manifests."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FetchStats"]


@dataclass
class FetchStats:
    """What one ``iter_records`` call did. All counters start at zero."""

    service: str = ""
    requests: int = 0
    pages: int = 0
    records: int = 0
    retries: int = 0
    throttled: int = 0
    token_refreshes: int = 0
    #: The API's own ``total`` from the first page: an estimate, reported, never used as a loop bound.
    api_total: int | None = None
    duplicates_dropped: int = 0
    out_of_window_dropped: int = 0
    rate_limit_wait_seconds: float = 0.0
    elapsed_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-serialisable) of the counters."""
        return asdict(self)

    def summary(self) -> str:
        """One log line with the figures an operator looks for."""
        rate = self.records / self.elapsed_seconds if self.elapsed_seconds else 0.0
        return (
            f"{self.service}: {self.records} records (API total {self.api_total}) in {self.pages} pages, "
            f"{self.requests} requests, {self.retries} retries, {self.throttled} throttled, "
            f"{self.duplicates_dropped} duplicates dropped, {self.out_of_window_dropped} out of window dropped, "
            f"{self.elapsed_seconds:.3f} s ({rate:.0f} records/s)"
        )
