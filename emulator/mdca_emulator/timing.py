"""The time model: when MDCA stores a record (and so shows it), how an alert changes, how long activities are kept.

A tenant runs one of two models (``TenantConfig.time_model``):

* ``realistic`` (the default): what Microsoft documents. Activities reach MDCA from seconds to three days after they
  happen (API connectors "several hours", Office 365 audit 60-90 minutes, Power BI and Dynamics 24-72 hours); alerts
  are stored within seconds but are resolved or dismissed later; a file's change is seen at the tenant's next scan of
  its cloud app; the activity log keeps 30 days; entities and subnets come and go.
* ``instant``: every record stored the instant it happens (``created`` is its timestamp) and never changed, nothing
  expires, snapshots never change: the emulator's first behaviour, for the speed benchmarks (and, until the collector
  handles late records, the collector's end-to-end tests).

Every delay is a pure function of the seed and the record's position, never of a random draw at request time, and
is chosen so that the records stored in a time range are found arithmetically (see ``data.py``):

* Records of a windowed service fall into **delay classes** (:class:`DelayClass`: a share of the records and a range
  of delays), assigned by a seeded pattern over each stream's record ordinals (a residue table of period
  :data:`PATTERN_PERIOD`, shifted per stream): the late records of a class are enumerated, never searched for.
* The first class is the **on-time** one: each record's delay is hashed uniformly inside the class's range. A query
  on a ``created`` range walks the records whose timestamp lies within that range's bound of it.
* Every other class is **late**: its delay is a sawtooth of the record's own timestamp (rising from the class's
  minimum to its maximum over a tooth of an eighth of the span, with a per-stream phase), so that ``created`` is
  increasing inside a tooth and the timestamps stored in a range are found by inverting it, tooth by tooth.
* Files have no delay classes by default: a file's ``modifiedDate`` is its cloud app's own time, and MDCA learns of
  the change at its next scan of that app (every :data:`DEFAULT_SCAN_INTERVAL_MS`, each app at its own seeded
  offset), which is when its record (``snapshotLastModifiedDate``) is updated.
* ``TimeSeriesConfig.late_every``/``late_by_ms`` force specific late records for a test: every Nth record of each
  stream is stored exactly ``late_by_ms`` after its timestamp, in place of the profile's late classes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mdca_emulator import services

__all__ = [
    "DAY_MS",
    "DEFAULT_ACTIVITY_DELAYS",
    "DEFAULT_ALERT_CHANGES",
    "DEFAULT_ALERT_DELAYS",
    "DEFAULT_LIFETIME_DAYS",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_SCAN_INTERVAL_MS",
    "HOUR_MS",
    "PATTERN_PERIOD",
    "TIME_MODELS",
    "AlertChanges",
    "AlertState",
    "DelayClass",
    "Timing",
]

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: The tenant-level switch: ``realistic`` (the default) or ``instant`` (no delays, no changes, nothing expires).
TIME_MODELS: tuple[str, ...] = ("realistic", "instant")
#: Period of the pattern that assigns records to delay classes: shares are multiples of 1 / PATTERN_PERIOD.
PATTERN_PERIOD = 10_000
_MASK64 = (1 << 64) - 1


def _mix(value: int) -> int:
    # SplitMix64's finaliser (as data.mix64; repeated to keep this module free of data.py).
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    number: int = value
    return number


def _check_share(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number within 0..1, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DelayClass:
    """A share of a service's records stored between `min_ms` and `max_ms` after they happen."""

    fraction: float
    min_ms: int
    max_ms: int

    def validate(self) -> None:
        """Raise ValueError when a value is out of range."""
        _check_share("fraction", self.fraction)
        _check_int("min_ms", self.min_ms)
        _check_int("max_ms", self.max_ms)
        if self.max_ms < self.min_ms:
            raise ValueError(f"a delay class needs min_ms <= max_ms, got {self.min_ms} > {self.max_ms}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"fraction": self.fraction, "min_ms": self.min_ms, "max_ms": self.max_ms}

    @classmethod
    def from_dict(cls, raw: Any) -> DelayClass:
        """Inverse of :meth:`to_dict` (also takes a ``[fraction, min_ms, max_ms]`` list)."""
        if isinstance(raw, DelayClass):
            return raw
        if isinstance(raw, list | tuple) and len(raw) == 3:
            raw = dict(zip(("fraction", "min_ms", "max_ms"), raw, strict=True))
        if not isinstance(raw, Mapping) or set(raw) != {"fraction", "min_ms", "max_ms"}:
            raise ValueError(f"a delay class is {{fraction, min_ms, max_ms}}, got {raw!r}")
        made = cls(_check_share("fraction", raw["fraction"]), raw["min_ms"], raw["max_ms"])
        made.validate()
        return made


def check_delays(delays: Sequence[DelayClass]) -> None:
    """Raise ValueError unless `delays` is a valid profile: classes whose shares add up to 1."""
    if not delays:
        raise ValueError("a delay profile needs at least one class (None: the time model's default)")
    for delay in delays:
        if not isinstance(delay, DelayClass):
            raise ValueError(f"delays must be DelayClass objects, got {delay!r}")
        delay.validate()
    total = sum(delay.fraction for delay in delays)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"the delay classes' fractions must add up to 1, got {total}")


#: Activities: most within a minute; a tail of minutes to hours (API connectors, Office 365 audit); a few hours to a
#: day; and a few connectors' records (Power BI, Dynamics) one to three days late.
DEFAULT_ACTIVITY_DELAYS: tuple[DelayClass, ...] = (
    DelayClass(0.93, 1 * SECOND_MS, 1 * MINUTE_MS),
    DelayClass(0.05, 1 * MINUTE_MS, 2 * HOUR_MS),
    DelayClass(0.015, 2 * HOUR_MS, 1 * DAY_MS),
    DelayClass(0.005, 1 * DAY_MS, 3 * DAY_MS),
)
#: Alerts appear almost at once (a public sample: the ObjectId's time within 3 s of the alert's timestamp).
DEFAULT_ALERT_DELAYS: tuple[DelayClass, ...] = (DelayClass(1.0, 0, 3 * SECOND_MS),)
#: Files: MDCA scans each cloud app this often, and stores a file's change at the first scan after it.
DEFAULT_SCAN_INTERVAL_MS = 4 * HOUR_MS
#: How long the activity log keeps records (about 30 days); the other services keep theirs.
DEFAULT_RETENTION_DAYS: dict[str, int | None] = {"activities": 30}
#: How long an entity or a subnet group stays in its collection, in days (min, max): a few come and go.
DEFAULT_LIFETIME_DAYS: dict[str, tuple[float, float]] = {"entities": (90, 3 * 365), "data_enrichment": (365, 5 * 365)}
services.check_table(DEFAULT_RETENTION_DAYS, "default retention", complete=False)
services.check_table(DEFAULT_LIFETIME_DAYS, "default lifetimes", complete=False)


# -- alerts ----------------------------------------------------------------------------------------------------

#: ``statusValue``: the emulator's reading (MDCA does not document it), the Defender portal's alert statuses.
STATUS_NEW, STATUS_IN_PROGRESS, STATUS_RESOLVED = 0, 1, 2
#: ``resolutionStatusValue`` as MDCA documents it: 0 open, 3 closed as false positive, 4 benign, 5 true positive
#: (1 dismissed and 2 resolved are legacy).
RESOLUTION_OPEN = 0
_OUTCOMES = (3, 4, 5, 5, 5, 4, 3, 5)  # dismissed as false positive or benign, or resolved as a true positive
_ANALYSTS = ("soc.analyst@contoso.com", "secops@contoso.com", "admin@contoso.com", "li.lei@contoso.com")
_COMMENTS = {3: "Closed as false positive", 4: "Closed as benign", 5: "Closed as true positive"}


@dataclass(frozen=True)
class AlertState:
    """What an alert shows at some time: its status, resolution, resolve time, handler and comment."""

    at: int  # when the alert reached this state (epoch ms)
    status: int
    resolution: int
    resolve_time: int | None
    handled_by: str | None
    comment: str

    def to_dict(self, alert_id: str) -> dict[str, Any]:
        """The state as the admin API's truth shows it."""
        return {
            "_id": alert_id,
            "at": self.at,
            "statusValue": self.status,
            "resolutionStatusValue": self.resolution,
            "resolveTime": self.resolve_time,
            "handledByUser": self.handled_by,
        }


@dataclass(frozen=True)
class AlertChanges:
    """How alerts change after they are raised: a share is later resolved or dismissed, some after being in progress.

    The time from an alert's timestamp to its resolution is log-uniform in ``[min_delay_ms, max_delay_ms]`` (minutes
    to days), so the alerts resolved in a time range were raised at most `max_delay_ms` before it.
    """

    changed_fraction: float = 0.6
    in_progress_fraction: float = 0.5
    min_delay_ms: int = 5 * MINUTE_MS
    max_delay_ms: int = 7 * DAY_MS

    def validate(self) -> None:
        """Raise ValueError when a value is out of range."""
        _check_share("changed_fraction", self.changed_fraction)
        _check_share("in_progress_fraction", self.in_progress_fraction)
        _check_int("min_delay_ms", self.min_delay_ms, 1)
        _check_int("max_delay_ms", self.max_delay_ms, 1)
        if self.max_delay_ms < self.min_delay_ms:
            raise ValueError("alert changes need min_delay_ms <= max_delay_ms")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> AlertChanges:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        if isinstance(raw, AlertChanges):
            return raw
        if not isinstance(raw, Mapping):
            raise ValueError(f"changes takes an object, got {raw!r}")
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown alert changes field(s): {', '.join(unknown)}")
        made = cls(**{key: value for key, value in raw.items()})
        made.validate()
        return made

    def _loguniform(self, low: int, high: int, bits: int) -> int:
        if high <= low:
            return low
        return int(low * (high / low) ** (bits / (1 << 20)))

    def resolve_time(self, h: int, ts: int) -> int | None:
        """When the alert with hash `h` and timestamp `ts` is resolved, or None when it never is."""
        g = _mix(h ^ 0xA1E7C4A9)
        if (g & 0xFFFF) >= self.changed_fraction * 65536:
            return None
        return ts + self._loguniform(self.min_delay_ms, self.max_delay_ms, (g >> 16) & 0xFFFFF)

    def states(self, h: int, ts: int, created: int) -> list[AlertState]:
        """Every state the alert takes, in order: new (once stored), maybe in progress, then resolved or dismissed."""
        states = [AlertState(created, STATUS_NEW, RESOLUTION_OPEN, None, None, "")]
        g = _mix(h ^ 0xA1E7C4A9)
        resolved = self.resolve_time(h, ts)
        if resolved is None:
            return states
        analyst = _ANALYSTS[(g >> 40) % len(_ANALYSTS)]
        if ((g >> 36) & 0xF) < self.in_progress_fraction * 16:
            taken = ts + self._loguniform(self.min_delay_ms, resolved - ts, (g >> 44) & 0xFFFFF)
            if created < taken < resolved:
                states.append(AlertState(taken, STATUS_IN_PROGRESS, RESOLUTION_OPEN, None, analyst, ""))
        outcome = _OUTCOMES[(g >> 61) % len(_OUTCOMES)]
        final = AlertState(max(resolved, created), STATUS_RESOLVED, outcome, resolved, analyst, _COMMENTS[outcome])
        states.append(final)
        return states

    def state_at(self, h: int, ts: int, created: int, now: int) -> AlertState:
        """The alert's state at `now` (its first state when `now` is before every change)."""
        current = None
        for state in self.states(h, ts, created):
            if state.at > now and current is not None:
                break
            current = state
        assert current is not None
        return current


DEFAULT_ALERT_CHANGES = AlertChanges()


# -- one service's resolved timing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One windowed service's time behaviour, resolved from its settings and the tenant's time model.

    ``on_time_rule``: ``"instant"`` (at once, the instant model), ``"hashed"`` (uniform in ``on_time``) or ``"scan"``
    (the next scan of the file's app, every ``scan_interval_ms``). ``late``: the late classes, each ``(min_ms,
    span_ms)``, with their shares in ``late_fractions``, or the one forced class (``forced_every``).
    """

    on_time_rule: str = "instant"
    on_time: tuple[int, int] = (0, 0)
    scan_interval_ms: int = DEFAULT_SCAN_INTERVAL_MS
    late: tuple[tuple[int, int], ...] = ()
    late_fractions: tuple[float, ...] = ()
    forced_every: int | None = None
    changes: AlertChanges | None = None
    retention_ms: int | None = None

    @classmethod
    def instant(cls, late_every: int | None = None, late_by_ms: int = 0) -> Timing:
        """The instant model: stored at once, nothing changes or expires; every `late_every`-th record forced late."""
        if late_every:
            return cls(late=((late_by_ms, 0),), forced_every=late_every)
        return cls()

    @property
    def min_delay(self) -> int:
        """The smallest delay any record of the service has."""
        return min([self.on_time[0], *(low for low, _span in self.late)])

    @property
    def max_delay(self) -> int:
        """The largest delay any record of the service has."""
        return max([self.on_time[1], *(low + span for low, span in self.late)])


def resolve(
    service: str,
    time_model: str,
    delays: Sequence[DelayClass] | None,
    late_every: int | None,
    late_by_ms: int,
    scan_interval_ms: int,
    retention_days: int | str | None,
    changes: AlertChanges | None,
) -> Timing:
    """The :class:`Timing` of `service` under `time_model` with these settings (``retention_days="default"``)."""
    if time_model == "instant":
        timing = Timing.instant(late_every, late_by_ms)
        days = None if retention_days == "default" else retention_days
        return dataclasses.replace(timing, retention_ms=None if days is None else int(days) * DAY_MS)
    if retention_days == "default":
        retention_days = DEFAULT_RETENTION_DAYS.get(service)
    retention_ms = None if retention_days is None else int(retention_days) * DAY_MS
    if changes is None and service == "alerts":
        changes = DEFAULT_ALERT_CHANGES
    if changes is not None and changes.changed_fraction == 0:
        changes = None
    profile: tuple[DelayClass, ...]
    if delays is None and service == "files":
        on_time_rule, on_time, profile = "scan", (1, scan_interval_ms), ()
    else:
        given = tuple(delays if delays is not None else _DEFAULT_DELAYS.get(service, DEFAULT_ALERT_DELAYS))
        on_time_rule, on_time, profile = "hashed", (given[0].min_ms, given[0].max_ms), given[1:]
    if late_every:
        late: tuple[tuple[int, int], ...] = ((late_by_ms, 0),)
        fractions: tuple[float, ...] = ()
    else:
        late = tuple((d.min_ms, d.max_ms - d.min_ms) for d in profile)
        fractions = tuple(d.fraction for d in profile)
    return Timing(
        on_time_rule=on_time_rule,
        on_time=on_time,
        scan_interval_ms=scan_interval_ms,
        late=late,
        late_fractions=fractions,
        forced_every=late_every or None,
        changes=changes,
        retention_ms=retention_ms,
    )


_DEFAULT_DELAYS: dict[str, tuple[DelayClass, ...]] = {
    "activities": DEFAULT_ACTIVITY_DELAYS,
    "alerts": DEFAULT_ALERT_DELAYS,
}
services.check_table(_DEFAULT_DELAYS, "default delays", complete=False)
