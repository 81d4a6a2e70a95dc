"""The sender loop shared by both transports: encode, batch, deliver with bounded retries, count.

A batch counts as delivered only when its transport says so (TLS: written and the connection closed cleanly;
HTTP: a 2xx). A failed batch is retried whole under the connection's retry policy
(:mod:`airflow_provider_mdca.retry`); when retries run out a DeliveryError says which tag and batch, how many
events were delivered and how many were not. Nothing is dropped silently. Each ``send`` returns its own figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.framing import encode_event
from airflow_provider_mdca.errors import DeliveryError, error_context
from airflow_provider_mdca.retry import RetryableError, RetryPolicy

__all__ = ["DeliveryStats", "Sender", "iter_batches"]

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    """What one ``send`` did (or, as :attr:`Sender.totals`, every ``send`` of a sender)."""

    events: int = 0
    bytes: int = 0
    batches: int = 0
    retries: int = 0
    elapsed_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A plain dict of the counters."""
        return asdict(self)

    def add(self, other: DeliveryStats) -> None:
        """Add ``other``'s counters to these."""
        self.events += other.events
        self.bytes += other.bytes
        self.batches += other.batches
        self.retries += other.retries
        self.elapsed_seconds += other.elapsed_seconds


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
        #: Every ``send`` of this sender, for the seed collector's running-total log line.
        self.totals = DeliveryStats()
        self._policy = RetryPolicy(config.max_retries, config.backoff_base, config.backoff_max)
        self._sleep = sleep
        self._checkpoint = datetime.now(timezone.utc)

    def send(
        self,
        tag: str,
        events: Iterable[Mapping[str, Any]],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> DeliveryStats:
        """Deliver ``events`` to ``tag``, streaming; returns this call's figures (every event delivered, or raises).

        ``on_batch(count)`` is called after each batch is acknowledged, with its event count: the events are the
        next ``count`` of ``events`` in order. A delivery ledger records them there, so a retry resumes after the
        last acknowledged batch.
        """
        _check_tag(tag)
        began = time.monotonic()
        sent = DeliveryStats()
        lines = (encode_event(event) for event in events)
        batches = iter_batches(lines, max_bytes=self.config.batch_bytes, max_events=self.config.batch_events)
        try:
            for number, batch in enumerate(batches, start=1):
                with error_context(tag=tag, batch=number, delivered=sent.events, undelivered=len(batch)):
                    sent.bytes += self._deliver_with_retries(tag, batch, number, sent)
                sent.events += len(batch)
                sent.batches += 1
                if on_batch is not None:
                    on_batch(len(batch))
        finally:
            sent.elapsed_seconds = time.monotonic() - began
            self.totals.add(sent)
            self._log_progress(sent)
        return sent

    def _deliver_with_retries(self, tag: str, batch: list[bytes], number: int, sent: DeliveryStats) -> int:
        attempts = self._policy.start()
        while True:
            try:
                return self._deliver(tag, batch)
            except RetryableError as exc:
                wait = attempts.wait_after(exc)
                if wait is None:
                    raise DeliveryError(
                        501, f"{exc.reason}, after {attempts.failures} attempts", url=self.endpoint_for_errors(tag)
                    ) from None
                sent.retries += 1
                log.warning(
                    "Devo %s batch %d to %s failed (%s); retry %d in %.1f s",
                    self.transport,
                    number,
                    tag,
                    exc.reason,
                    attempts.failures,
                    wait,
                )
                self._sleep(wait)

    def _deliver(self, tag: str, batch: list[bytes]) -> int:
        """Deliver one batch; return the bytes written. Raise RetryableError or DeliveryError."""
        raise NotImplementedError

    def endpoint_for_errors(self, tag: str) -> str:
        """A sanitised description of where the events go, for messages."""
        return f"{self.config.host}:{self.config.port}"

    def test(self) -> str:
        """Prove that the credentials and the endpoint work without sending an event; return what was done."""
        raise NotImplementedError

    def _log_progress(self, sent: DeliveryStats) -> None:
        # The seed collector's line, so Devo's users can read it; plus bytes.
        totals = self.totals
        log.info(
            'Total number of messages sent: %d, messages sent since "%s": %d (elapsed %.3f seconds), '
            "bytes sent: %d, batches: %d, retries: %d",
            totals.events,
            self._checkpoint.isoformat(sep=" "),
            sent.events,
            sent.elapsed_seconds,
            totals.bytes,
            totals.batches,
            totals.retries,
        )
        self._checkpoint = datetime.now(timezone.utc)

    def close(self) -> None:
        """Release connections."""


def _check_tag(tag: str) -> None:
    if not tag or any(c.isspace() for c in tag) or "/" in tag:
        raise DeliveryError(504, f"invalid Devo tag {tag!r}: one word of dot-separated parts, no '/'")
