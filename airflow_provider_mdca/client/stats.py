"""What one fetch returns: its records as a stream, and its own counters for task logs and manifests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FetchStats", "RecordStream"]


@dataclass
class FetchStats:
    """What one fetch did. All counters start at zero."""

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
    #: Records read again because they changed in the window after they were first read (alerts resolved).
    changes: int = 0
    #: Records stored in the window that happened before it (activities, files): a window on the event's own time
    #: would have missed them. Alerts' late records are their :attr:`changes`.
    late: int = 0
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
            f"{self.late} late, {self.changes} read again as changed, {self.duplicates_dropped} duplicates dropped, "
            f"{self.out_of_window_dropped} out of window dropped, "
            f"{self.elapsed_seconds:.3f} s ({rate:.0f} records/s)"
        )


class RecordStream(Iterator[dict[str, Any]]):
    """The records of one fetch, streamed page by page, with that fetch's own :attr:`stats`.

    The counters grow as the stream is read and are final once it is exhausted (or has failed): the caller that
    consumed the records reads them there, rather than asking the client afterwards.
    """

    def __init__(self, records: Iterator[dict[str, Any]], stats: FetchStats) -> None:
        self._records = records
        self.stats = stats

    def __iter__(self) -> RecordStream:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._records)
