"""The sender loop shared by both transports: encode, batch, deliver with bounded retries, count.

A batch counts as delivered only when its transport says so (TLS: written and the connection closed cleanly;
HTTP: a 2xx). A failed batch is retried whole; when retries run out a DeliveryError says which tag and batch,
how many events were delivered and how many were not. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_mdca.devo.config import DevoConfig
from airflow_provider_mdca.devo.framing import encode_event
from airflow_provider_mdca.errors import DeliveryError

__all__ = ["DeliveryStats", "RetryableDeliveryError", "Sender", "iter_batches"]

log = logging.getLogger(__name__)


class RetryableDeliveryError(Exception):
    """A transport's way of saying "this batch failed, and trying again may help"."""

    def __init__(self, reason: str, *, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


@dataclass
class DeliveryStats:
    """Counters of one sender (all ``send`` calls)."""

    events: int = 0
    bytes: int = 0
    batches: int = 0
    retries: int = 0
    elapsed_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A plain dict of the counters."""
        return asdict(self)


def iter_batches(lines: Iterable[bytes], *, max_bytes: int, max_events: int) -> Iterator[list[bytes]]:
    """Group encoded lines into batches of at most ``max_bytes`` (a larger single line is its own batch).

    >>> [len(b) for b in iter_batches([b"aa", b"bb", b"cc"], max_bytes=6, max_events=10)]
    [2, 1]
    """
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and (size + len(line) + 1 > max_bytes or len(batch) >= max_events):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line) + 1
    if batch:
        yield batch


class Sender:
    """Ships events to one Devo tag at a time; subclasses implement :meth:`_deliver` for their transport."""

    transport = "abstract"

    def __init__(self, config: DevoConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.stats = DeliveryStats()
        self._sleep = sleep
        self._checkpoint = datetime.now(timezone.utc)
        self._since_checkpoint = 0

    def send(
        self,
        tag: str,
        events: Iterable[Mapping[str, Any]],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Deliver ``events`` to ``tag``, streaming; returns how many were delivered (all of them, or raises).

        ``on_batch(count)`` is called after each batch is acknowledged, with its event count: the events are the
        next ``count`` of ``events`` in order. A delivery ledger records them there, so a retry resumes after the
        last acknowledged batch.
        """
        _check_tag(tag)
        began = time.monotonic()
        delivered = 0
        lines = (encode_event(event) for event in events)
        batches = iter_batches(lines, max_bytes=self.config.batch_bytes, max_events=self.config.batch_events)
        try:
            for number, batch in enumerate(batches, start=1):
                sent_bytes = self._deliver_with_retries(tag, batch, number, delivered)
                delivered += len(batch)
                self.stats.events += len(batch)
                self.stats.bytes += sent_bytes
                self.stats.batches += 1
                self._since_checkpoint += len(batch)
                if on_batch is not None:
                    on_batch(len(batch))
        finally:
            self.stats.elapsed_seconds += time.monotonic() - began
            self._log_progress(time.monotonic() - began)
        return delivered

    def _deliver_with_retries(self, tag: str, batch: list[bytes], number: int, delivered: int) -> int:
        failures = 0
        while True:
            try:
                return self._deliver(tag, batch)
            except RetryableDeliveryError as exc:
                failures += 1
                if failures > self.config.max_retries:
                    raise DeliveryError(
                        501,
                        f"{exc.reason}, after {failures} attempts",
                        tag=tag,
                        batch=number,
                        delivered=delivered,
                        undelivered=len(batch),
                        url=self.endpoint_for_errors(tag),
                    ) from None
                wait = exc.wait if exc.wait is not None else self._backoff(failures)
                self.stats.retries += 1
                log.warning(
                    "Devo %s batch %d to %s failed (%s); retry %d in %.1f s",
                    self.transport,
                    number,
                    tag,
                    exc.reason,
                    failures,
                    wait,
                )
                self._sleep(wait)
            except DeliveryError as exc:
                if exc.tag is not None:
                    raise
                raise DeliveryError(
                    exc.code,
                    exc.detail,
                    tag=tag,
                    batch=number,
                    delivered=delivered,
                    undelivered=len(batch),
                    url=exc.url,
                    status=exc.status,
                    body=exc.body,
                    remedy=exc.remedy,
                ) from None

    def _deliver(self, tag: str, batch: list[bytes]) -> int:
        """Deliver one batch; return the bytes written. Raise RetryableDeliveryError or DeliveryError."""
        raise NotImplementedError

    def endpoint_for_errors(self, tag: str) -> str:
        """A sanitised description of where the events go, for messages."""
        return f"{self.config.host}:{self.config.port}"

    def test(self) -> str:
        """Prove that the credentials and the endpoint work without sending an event; return what was done."""
        raise NotImplementedError

    def _backoff(self, failures: int) -> float:
        delay = min(self.config.backoff_max, self.config.backoff_base * 2.0 ** (failures - 1))
        return float(delay * random.uniform(0.5, 1.0))

    def _log_progress(self, elapsed: float) -> None:
        # The seed collector's line, so Devo's users can read it; plus bytes.
        log.info(
            'Total number of messages sent: %d, messages sent since "%s": %d (elapsed %.3f seconds), '
            "bytes sent: %d, batches: %d, retries: %d",
            self.stats.events,
            self._checkpoint.isoformat(sep=" "),
            self._since_checkpoint,
            elapsed,
            self.stats.bytes,
            self.stats.batches,
            self.stats.retries,
        )
        self._checkpoint = datetime.now(timezone.utc)
        self._since_checkpoint = 0

    def close(self) -> None:
        """Release connections."""


def _check_tag(tag: str) -> None:
    if not tag or any(c.isspace() for c in tag) or "/" in tag:
        raise DeliveryError(504, f"invalid Devo tag {tag!r}: one word of dot-separated parts, no '/'")
