"""One shipper per window at a time: a lease beside the window's ledger.

The ledger makes a retry or a rerun send only what Devo has not acknowledged, but only if the shipper reads it after
the last one stopped. Two ship tasks of one window at the same time (a task Airflow took for dead while it still runs,
beside its retry; two deployments sharing staging) would each read the ledger before the other wrote to it and each
send every event. So a shipper holds ``<window>/ship.lease`` while it ships:

- it takes the lease when there is none, or when the one there has expired (its holder was killed), then reads the
  ledger;
- while it ships, a thread renews the lease every third of its ``ttl``; a killed holder stops renewing, and its lease
  expires ``ttl`` later, so the retry waits at most that long;
- another shipper waits for the lease (up to ``wait``), then reads the ledger the first one completed, and sends only
  what is left: usually nothing;
- a holder that finds its lease taken (it stalled longer than ``ttl``) stops before its next event.

Taking the lease is write, settle, check: the file is written whole (atomically) with the taker's id, and the taker
proceeds only if, after ``settle``, the file still names it. Two takers at once both write; the later write wins and
both read it, so exactly one proceeds. It needs only atomic writes and read-after-write consistency, which a local
disk and Azure storage both have.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from airflow_provider_mdca.staging.errors import StagingError
from airflow_provider_mdca.staging.storage import StoragePath, discard_file, read_small, write_atomically

__all__ = ["LEASE_NAME", "LeaseLost", "WindowLease"]

log = logging.getLogger(__name__)

LEASE_NAME: Final = "ship.lease"


class LeaseLost(StagingError):
    """Another shipper holds the window's lease: this one must not send another event."""


@dataclass(frozen=True)
class _Holder:
    owner: str
    expires_at: float


class WindowLease:
    """``with WindowLease(window):`` ship the window; :meth:`check` before each event.

    :param ttl: seconds a lease lives without renewal (a killed holder's retry waits at most this long).
    :param wait: seconds to wait for another holder's lease before giving up with StagingError (the task's retry
        tries again later).
    :param settle: seconds between writing the lease and checking it is still ours.
    """

    def __init__(
        self,
        window: StoragePath,
        *,
        ttl: float = 60.0,
        wait: float = 900.0,
        settle: float = 0.5,
        poll: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = window / LEASE_NAME
        self.owner = uuid.uuid4().hex
        self.ttl, self.wait, self.settle, self.poll = ttl, wait, settle, poll
        self._clock, self._sleep = clock, sleep
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> WindowLease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lease, waiting for another holder's to be released or to expire; then keep it renewed."""
        deadline = self._clock() + self.wait
        waited = False
        while True:
            holder = self._read()
            now = self._clock()
            if holder is None or holder.expires_at <= now or holder.owner == self.owner:
                self._write()
                self._sleep(self.settle)
                holder = self._read()
                if holder is not None and holder.owner == self.owner:
                    break
            if self._clock() >= deadline:
                until = f"{holder.expires_at - self._clock():.0f} s more" if holder else "a moment"
                raise StagingError(
                    f"another ship of this window holds its lease ({until}) after {self.wait:.0f} s of waiting; "
                    "the task's retry tries again",
                    self.path,
                )
            if not waited:
                log.info("another ship of this window is running: waiting for it to finish (%s)", self.path)
                waited = True
            self._sleep(self.poll)
        self._renewer = threading.Thread(target=self._renew, name="ship-lease", daemon=True)
        self._renewer.start()

    def check(self) -> None:
        """Raise :class:`LeaseLost` when another shipper took the lease (this one stalled longer than ``ttl``)."""
        if self._lost.is_set():
            raise LeaseLost("another ship took this window's lease while this one stalled; it sends no more", self.path)

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        holder = self._read()
        if holder is not None and holder.owner == self.owner:
            discard_file(self.path)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            holder = self._read()
            if holder is not None and holder.owner != self.owner:
                self._lost.set()
                return
            try:
                self._write()
            except Exception as exc:  # the next renewal tries again; the lease lives ttl
                log.warning("the window's lease %s could not be renewed: %s", self.path, exc)

    def _write(self) -> None:
        body = {"owner": self.owner, "expires_at": self._clock() + self.ttl}
        write_atomically(self.path, json.dumps(body).encode())

    def _read(self) -> _Holder | None:
        try:
            if not self.path.exists():
                return None
            data: Any = json.loads(read_small(self.path, "the window's ship lease"))
            return _Holder(str(data["owner"]), float(data["expires_at"]))
        except (StagingError, ValueError, KeyError, TypeError) as exc:
            # A lease half-read while it was replaced, or damaged: treat it as expired, as a killed holder's would be.
            log.warning("the window's lease %s is unreadable (%s); taking it as expired", self.path, exc)
            return None
