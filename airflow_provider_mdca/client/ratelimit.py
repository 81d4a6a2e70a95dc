"""A client-side rate limiter that keeps requests under the tenant's budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]

# MDCA counts requests in a sliding minute. Evenly spaced requests at exactly 60/R seconds could still land
# R+1 in one minute once network jitter shifts them, so leave a 1% margin.
_SAFETY_MARGIN = 1.01


class RateLimiter:
    """Spaces request starts evenly at ``requests_per_minute`` (no bursts).

    A burst-capable token bucket would send R requests at once and then R more in the same sliding minute,
    which MDCA answers with 429; even spacing never exceeds the budget and costs nothing in throughput.

    :param requests_per_minute: the budget; None or 0 disables limiting.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interval = 60.0 * _SAFETY_MARGIN / requests_per_minute if requests_per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._next_slot: float | None = None
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
            self.waited_seconds += wait
        return wait

    def hand_over(self) -> float | None:
        """When the next request may start, as a wall-clock time (epoch seconds); None before any request.

        What another process (the next fetch task, perhaps on another machine) passes to :meth:`take_over`, so
        that the tenant's budget is kept across tasks, not only within one.
        """
        with self._lock:
            if not self.interval or self._next_slot is None:
                return None
            return self._wall() + (self._next_slot - self._clock())

    def take_over(self, next_start: float | None) -> None:
        """Start no request before ``next_start`` (a wall-clock time from :meth:`hand_over`); None: no constraint.

        A time further ahead than one interval is a clock gone wrong (or a hostile file) and is capped at one
        interval: a budget handed over never stalls a fetch longer than the spacing it stands for.
        """
        if not self.interval or next_start is None:
            return
        ahead = min(max(next_start - self._wall(), 0.0), self.interval)
        with self._lock:
            slot = self._clock() + ahead
            self._next_slot = slot if self._next_slot is None else max(self._next_slot, slot)
