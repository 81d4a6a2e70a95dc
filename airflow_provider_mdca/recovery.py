"""Riding out outages: how long a window is retried, what is down, and since when.

An outage of MDCA, Entra ID or Devo longer than a task's retries used to leave a failed run that delivered nothing
until someone cleared it. Here each task is retried by Airflow with exponential backoff (doubling from
``retry_delay`` up to ``max_retry_delay``) for as many tries as it takes to span ``recovery_horizon``
(:func:`retries_to_cover`): when the service comes back the window's next try delivers it, and the runs behind it,
held by ``max_active_runs``, follow in order. Nobody clears anything. Past the horizon the run fails and says which
command delivers what is left.

Why retries rather than a sweep of undelivered windows or deferral: a retry keeps Airflow's own record true (a window
is green only when delivered), needs no new moving part, works on both Airflow lines and every executor, and holds no
worker slot while it waits (a task waiting for its retry is not running). The cost, one try per backoff step, is a
few dozen requests a day.

While it lasts, every failed try logs one line saying what is down, since when and until when it will be retried
(:func:`outage_line`); the since is kept in an :class:`OutageBook` beside the staged windows, so an outage that spans
many windows is dated from its first failure, not from the current window's.

Imports nothing from Airflow.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from airflow_provider_mdca.errors import DeliveryError, InitVariablesError, PullError, SetupError
from airflow_provider_mdca.redaction import redact_text
from airflow_provider_mdca.staging import StagingError, StoragePath
from airflow_provider_mdca.staging.storage import make_dirs, read_small, write_atomically

__all__ = [
    "BACKOFF_MULTIPLIER",
    "Outage",
    "OutageBook",
    "component_of",
    "outage_line",
    "retries_to_cover",
    "retry_span",
    "retry_delays",
]

log = logging.getLogger(__name__)

#: Each retry waits twice as long as the one before (Airflow's exponential backoff), up to ``max_retry_delay``.
BACKOFF_MULTIPLIER: Final = 2.0
#: The most retries a horizon may ask for: Airflow stores the count per task, and a day at one-minute steps is 1,440.
MAX_RETRIES: Final = 10_000
_BOOK_NAME: Final = "_outage.json"
_ERROR_CHARS: Final = 300


def retry_delays(first: timedelta, ceiling: timedelta) -> Iterator[timedelta]:
    """The shortest wait before each retry, at most ``ceiling``.

    Airflow waits between this and twice this (its jitter, capped at ``ceiling`` too).

    >>> [d.total_seconds() for _, d in zip(range(5), retry_delays(timedelta(minutes=1), timedelta(minutes=5)))]
    [60.0, 120.0, 240.0, 300.0, 300.0]
    """
    delay = max(first, timedelta(seconds=1))
    while True:
        yield min(delay, ceiling)
        delay = min(delay * BACKOFF_MULTIPLIER, ceiling)


def retries_to_cover(horizon: timedelta, first: timedelta, ceiling: timedelta) -> int:
    """How many retries, at the shortest waits :func:`retry_delays` gives, span at least ``horizon``.

    The tries themselves take time too, so the real span is longer: this errs on the side of retrying too long.

    >>> retries_to_cover(timedelta(hours=24), timedelta(minutes=1), timedelta(minutes=15))
    99
    >>> retries_to_cover(timedelta(0), timedelta(minutes=1), timedelta(minutes=15))
    0
    """
    spanned = timedelta(0)
    for retries, delay in enumerate(retry_delays(first, ceiling)):
        if spanned >= horizon or retries >= MAX_RETRIES:
            return retries
        spanned += delay
    raise AssertionError("unreachable: retry_delays never ends")


def retry_span(retries: int, first: timedelta, ceiling: timedelta) -> timedelta:
    """The least time ``retries`` retries span (the shortest waits of :func:`retry_delays`).

    >>> retry_span(3, timedelta(minutes=1), timedelta(minutes=15))
    datetime.timedelta(seconds=420)
    """
    return sum(itertools.islice(retry_delays(first, ceiling), retries), timedelta(0))


def component_of(exc: BaseException) -> str:
    """What an error says is down: ``MDCA``, ``Entra ID``, ``Devo``, ``staging``, or ``the collector`` itself.

    The last (a bug, a bad input) is not an outage, but a failed try reports it the same way.
    """
    if isinstance(exc, SetupError):
        return "Entra ID"
    if isinstance(exc, PullError):
        return "MDCA"
    if isinstance(exc, DeliveryError):
        return "Devo"
    if isinstance(exc, (StagingError, OSError)):
        return "staging"
    if isinstance(exc, InitVariablesError):
        return "the configuration"
    return "the collector"


@dataclass(frozen=True)
class Outage:
    """One component down: since when (its first failed try of this streak), and its latest error."""

    component: str
    since: datetime
    error: str
    failures: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "since": self.since.isoformat(),
            "error": self.error,
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outage:
        since = datetime.fromisoformat(str(data["since"]))
        return cls(str(data["component"]), since, str(data.get("error", "")), int(data.get("failures", 1)))


class OutageBook:
    """What is down for one service and since when, kept beside its staged windows (``<base>/<service>/``).

    A small JSON file rewritten atomically; every try of every window of the service reads and updates it, so the
    since of an outage that spans many windows is its first failure. A try that succeeds clears the components it
    proves up (a fetch: MDCA and Entra ID; a ship: Devo; any task: staging). The book is a report, never a control:
    if it cannot be read or written (staging itself is down) the task carries on and says so.
    """

    def __init__(self, service_folder: StoragePath) -> None:
        self.path = service_folder / _BOOK_NAME

    def failed(self, component: str, exc: BaseException, now: datetime | None = None) -> Outage:
        """Note a failed try; returns the outage it belongs to (its since kept when it was already down)."""
        now = now or datetime.now(timezone.utc)
        error = redact_text(str(exc))[:_ERROR_CHARS]
        outages = self._read()
        earlier = outages.get(component)
        outage = Outage(
            component,
            earlier.since if earlier else now,
            error,
            (earlier.failures + 1) if earlier else 1,
        )
        outages[component] = outage
        self._write(outages)
        return outage

    def recovered(self, components: tuple[str, ...]) -> list[Outage]:
        """Clear ``components``; returns the outages that were open for them (to log how long they lasted)."""
        outages = self._read()
        ended = [outages.pop(c) for c in components if c in outages]
        if ended:
            self._write(outages)
        return ended

    def open(self) -> list[Outage]:
        """The outages not over yet."""
        return list(self._read().values())

    def _read(self) -> dict[str, Outage]:
        try:
            if not self.path.exists():
                return {}
            data = json.loads(read_small(self.path, "the outage record"))
            return {name: Outage.from_dict(entry) for name, entry in data.get("outages", {}).items()}
        except Exception as exc:  # a report, never a control: staging may be what is down
            log.warning("the outage record %s could not be read (%s); dating the outage from now", self.path, exc)
            return {}

    def _write(self, outages: Mapping[str, Outage]) -> None:
        try:
            if not outages:
                if self.path.exists():
                    self.path.unlink()
                return
            body = json.dumps({"outages": {name: o.as_dict() for name, o in outages.items()}}, indent=1)
            make_dirs(self.path.parent)
            write_atomically(self.path, body.encode())
        except Exception as exc:
            log.warning("the outage record %s could not be written: %s", self.path, exc)


def outage_line(
    outage: Outage,
    *,
    task: str,
    window: str,
    try_number: int,
    retries: int,
    horizon: timedelta,
    now: datetime | None = None,
) -> str:
    r"""The line a failed try logs: what is down, since when, how many tries are left and until when.

    >>> since = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)
    >>> line = outage_line(Outage("Devo", since, "DeliveryError 501: ...", 3), task="mdca_alerts.ship",
    ...     window="[08:00, 08:05)", try_number=3, retries=99, horizon=timedelta(hours=24),
    ...     now=since + timedelta(minutes=12))
    >>> print(line.replace("; ", ";\n").replace("), ", "),\n"))
    Devo down since 2026-12-06T08:00:00Z (12m, 3 failed tries): mdca_alerts.ship [08:00, 08:05),
    try 3 of 100, retried with backoff until about 2026-12-07T08:00:00Z (recovery_horizon 1d);
    DeliveryError 501: ...
    """
    now = now or datetime.now(timezone.utc)
    tries = retries + 1
    if try_number >= tries:
        plan = "the last try: the run fails now (see the failure message for what delivers it)"
    else:
        plan = f"retried with backoff until about {_iso(outage.since + horizon)} (recovery_horizon {_span(horizon)})"
    return (
        f"{outage.component} down since {_iso(outage.since)} ({_span(now - outage.since)}, "
        f"{outage.failures} failed {'try' if outage.failures == 1 else 'tries'}): {task} {window}, "
        f"try {try_number} of {tries}, {plan}; {outage.error}"
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _span(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" * bool(days), f"{hours}h" * bool(hours), f"{minutes}m" * bool(minutes)]
    text = "".join(parts)
    return text or f"{seconds}s"
