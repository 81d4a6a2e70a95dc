"""Tenant configuration (every knob, JSON round-trip) and the live, thread-safe state behind it.

A :class:`TenantConfig` says what a tenant *is* (credentials, data, faults, limits); a :class:`TenantState` is
that tenant running: its data streams, issued tokens, throttle window, pending faults and counters. Knobs can
be changed while requests are in flight: a change swaps in a new config object, and each request works from
the config it read at its start.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdca_emulator import services, timing
from mdca_emulator.data import (
    INF_MS,
    Entry,
    Query,
    Rate,
    Segment,
    SnapshotData,
    TimeSeriesData,
    field_roles,
    spec_from_dict,
)
from mdca_emulator.timing import DAY_MS, TIME_MODELS, AlertChanges, DelayClass

__all__ = [
    "FAULT_NAMES",
    "RETRY_AFTER_STYLES",
    "SORT_DIRECTIONS",
    "TIME_MODELS",
    "TOKEN_FAULTS",
    "Clock",
    "ServiceConfig",
    "SnapshotConfig",
    "TenantConfig",
    "TenantRegistry",
    "TenantState",
    "TimeSeriesConfig",
]

FAULT_NAMES: tuple[str, ...] = ("500", "502", "503", "504", "429", "429-no-retry-after", "reset", "truncate")
RETRY_AFTER_STYLES: tuple[str, ...] = ("seconds", "http-date", "absent")
TOKEN_FAULTS: tuple[int | None, ...] = (None, 403, 500, 503)
SORT_DIRECTIONS: tuple[str, ...] = ("desc", "asc")
DEFAULT_SKIP_CEILING = 5000
#: ``retention_days`` left to the time model (realistic: 30 days for activities, none for the others).
DEFAULT = "default"
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# First path segments the server routes itself; a tenant with such an id could not be addressed.
_RESERVED_IDS = frozenset({"mdca", "_admin"})
_THROTTLE_WINDOW_S = 60.0


# -- value checks shared by from_dict and validate -----------------------------------------------------------


def _int(name: str, value: Any, minimum: int | None = None) -> int:
    # bool is an int subclass; True as a page size is a bug in the caller, not 1.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    number: int = value
    return number


def _opt_int(name: str, value: Any, minimum: int | None = None) -> int | None:
    return None if value is None else _int(name, value, minimum)


def _reject_unknown(kind: str, raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {kind} field(s): {', '.join(unknown)}")


# -- configuration -------------------------------------------------------------------------------------------


def _opt_days(name: str, value: Any) -> int | str | None:
    if value is None or value == DEFAULT:
        return value  # type: ignore[no-any-return]
    return _int(name, value, 1)


@dataclass
class TimeSeriesConfig:
    """The settings of a windowed service (the registry's ``windowed``): its data, paging limits and time model.

    The time settings apply under the tenant's realistic time model (``TenantConfig.time_model``); None (or
    ``"default"``) takes the model's default for the service (``timing.py``):

    * ``delays``: the storage delay profile, a list of :class:`~mdca_emulator.timing.DelayClass` (fraction, min_ms,
      max_ms) whose fractions add up to 1; the first class is the on-time one. Default: activities 93 % 1-60 s, 5 %
      1 min-2 h, 1.5 % 2-24 h, 0.5 % 24-72 h; alerts 0-3 s; files: stored at the next scan of their app.
    * ``scan_interval_ms``: files, how often MDCA scans each cloud app (default 4 h).
    * ``retention_days``: how far back records are served (default: activities 30, the others None: forever).
    * ``changes``: alerts, how they are resolved or dismissed later (:class:`~mdca_emulator.timing.AlertChanges`).

    ``late_every``/``late_by_ms`` force specific late records, in either model: every Nth record of each stream is
    stored exactly ``late_by_ms`` after its timestamp, in place of the profile's late classes.
    """

    segments: list[Segment | Rate] = field(default_factory=list)
    skip_ceiling: int | None = DEFAULT_SKIP_CEILING
    late_every: int | None = None
    late_by_ms: int = 0
    delays: list[DelayClass] | None = None
    scan_interval_ms: int = timing.DEFAULT_SCAN_INTERVAL_MS
    retention_days: int | str | None = DEFAULT
    changes: AlertChanges | None = None

    def validate(self) -> None:
        """Raise ValueError when a value is out of range."""
        for spec in self.segments:
            if not isinstance(spec, Segment | Rate):
                raise ValueError(f"segments must be Segment or Rate objects, got {spec!r}")
        _opt_int("skip_ceiling", self.skip_ceiling, 1)
        _opt_int("late_every", self.late_every, 1)
        _int("late_by_ms", self.late_by_ms, 0)
        if self.delays is not None:
            timing.check_delays(self.delays)
        _int("scan_interval_ms", self.scan_interval_ms, 1)
        _opt_days("retention_days", self.retention_days)
        if self.changes is not None:
            if not isinstance(self.changes, AlertChanges):
                raise ValueError(f"changes must be AlertChanges, got {self.changes!r}")
            self.changes.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "segments": [spec.to_dict() for spec in self.segments],
            "skip_ceiling": self.skip_ceiling,
            "late_every": self.late_every,
            "late_by_ms": self.late_by_ms,
            "delays": None if self.delays is None else [delay.to_dict() for delay in self.delays],
            "scan_interval_ms": self.scan_interval_ms,
            "retention_days": self.retention_days,
            "changes": None if self.changes is None else self.changes.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TimeSeriesConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        _reject_unknown("time series", raw, {f.name for f in dataclasses.fields(cls)})
        delays, changes = raw.get("delays"), raw.get("changes")
        if delays is not None and not isinstance(delays, list | tuple):
            raise ValueError(f"delays must be a list of delay classes, got {delays!r}")
        return cls(
            segments=[spec_from_dict(dict(spec)) for spec in raw.get("segments", [])],
            skip_ceiling=_opt_int("skip_ceiling", raw.get("skip_ceiling", DEFAULT_SKIP_CEILING), 1),
            late_every=_opt_int("late_every", raw.get("late_every"), 1),
            late_by_ms=_int("late_by_ms", raw.get("late_by_ms", 0), 0),
            delays=None if delays is None else [DelayClass.from_dict(delay) for delay in delays],
            scan_interval_ms=_int("scan_interval_ms", raw.get("scan_interval_ms", timing.DEFAULT_SCAN_INTERVAL_MS), 1),
            retention_days=_opt_days("retention_days", raw.get("retention_days", DEFAULT)),
            changes=None if changes is None else AlertChanges.from_dict(changes),
        )


def _lifetimes(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not 0 < value[0] <= value[1]
    ):
        raise ValueError(f"lifetime_days must be [min, max] days with 0 < min <= max, got {value!r}")
    return float(value[0]), float(value[1])


@dataclass
class SnapshotConfig:
    """The settings of a snapshot service (read whole, no window): about `count` records.

    Under the realistic time model the collection changes with the clock: records join and leave, each staying
    ``lifetime_days`` (min, max; None: the model's default, entities 90 days to 3 years, subnets 1 to 5 years), so
    that about `count` are there at any time. Under the instant model it is records ``0..count-1``, for ever.
    """

    count: int = 0
    skip_ceiling: int | None = None
    lifetime_days: tuple[float, float] | None = None

    def validate(self) -> None:
        """Raise ValueError when a value is out of range."""
        _int("count", self.count, 0)
        _opt_int("skip_ceiling", self.skip_ceiling, 1)
        _lifetimes(self.lifetime_days)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        lifetimes = None if self.lifetime_days is None else list(self.lifetime_days)
        return {"count": self.count, "skip_ceiling": self.skip_ceiling, "lifetime_days": lifetimes}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SnapshotConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        _reject_unknown("snapshot", raw, {f.name for f in dataclasses.fields(cls)})
        return cls(
            count=_int("count", raw.get("count", 0), 0),
            skip_ceiling=_opt_int("skip_ceiling", raw.get("skip_ceiling"), 1),
            lifetime_days=_lifetimes(raw.get("lifetime_days")),
        )


ServiceConfig = TimeSeriesConfig | SnapshotConfig


def _config_type(name: str) -> type[TimeSeriesConfig] | type[SnapshotConfig]:
    """The settings a service takes, from the registry: a windowed service's data is a time series."""
    return TimeSeriesConfig if services.get(name).windowed else SnapshotConfig


def _service_config(name: str, value: Any, current: ServiceConfig | None = None) -> ServiceConfig:
    """One service's settings from a settings object or its JSON form (merged into `current`, when given)."""
    kind = _config_type(name)
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return kind.from_dict({**(current.to_dict() if current is not None else {}), **value})
    raise ValueError(f"{name} takes a {kind.__name__} or its JSON object, got {value!r}")


def _derived(tenant_id: str, purpose: str) -> str:
    return hashlib.sha256(f"mdca-emulator:{purpose}:{tenant_id}".encode()).hexdigest()


@dataclass
class TenantConfig:
    """Everything one emulated tenant is: identity, credentials, data and every fault knob.

    Empty credentials are derived deterministically from `tenant_id`, so a config written by hand needs none.

    `services` holds the settings of every service of the registry (``airflow_provider_mdca.services``), by name: a
    :class:`TimeSeriesConfig` for a windowed service, a :class:`SnapshotConfig` for a snapshot. Services left out get
    empty settings (no records). In the JSON form (:meth:`to_dict`, :meth:`from_dict`, :meth:`with_changes`, the
    admin API, ``--config``) each service is a key of its own beside the other knobs::

        TenantConfig("t1", services={"alerts": TimeSeriesConfig([Rate(60)]), "data_enrichment": SnapshotConfig(40)})
        TenantConfig.from_dict({"tenant_id": "t1", "alerts": {"segments": [...]}, "data_enrichment": {"count": 40}})

    `time_model` is ``"realistic"`` (the default: records stored late, alerts that change, activities kept 30 days,
    collections that change) or ``"instant"`` (none of it: the speed benchmarks'); see ``timing.py``. The tenant clock
    is pinned (`now_ms`), compressed (`clock_origin_ms`, `clock_rate`: it read the origin when the server clock read
    `clock_started_ms`, filled in when left out) or the server clock.
    """

    tenant_id: str
    seed: int = 0
    client_id: str = ""
    client_secret: str = ""
    files_access_token: str = ""
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    # Entra ID
    token_lifetime_seconds: int = 3599
    token_fault: int | None = None
    # MDCA limits and faults
    requests_per_minute: int | None = 30
    retry_after_style: str = "seconds"
    fault_queue: list[str] = field(default_factory=list)
    error_rate: float = 0.0
    fault_services: list[str] | None = None
    revoke_tokens_after: int | None = None
    scan_omit_next_query_filters: bool | int = False
    # The time model (timing.py): "realistic" (delays, changes, retention) or "instant" (the benchmarks').
    time_model: str = "realistic"
    # The order of a non-scan list that states no sortDirection: newest first, as MCAS's own paging assumes.
    default_sort_direction: str = "desc"
    # Tenant clock: pinned at now_ms (epoch ms) when set; else, when clock_origin_ms is set, it read clock_origin_ms
    # when the server clock read clock_started_ms and runs clock_rate times as fast; else it is the server clock.
    now_ms: int | None = None
    clock_origin_ms: int | None = None
    clock_rate: float = 1.0
    clock_started_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.client_id:
            self.client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mdca-emulator:client:{self.tenant_id}"))
        if not self.client_secret:
            self.client_secret = "emu~" + _derived(self.tenant_id, "secret")[:36]
        if not self.files_access_token:
            self.files_access_token = _derived(self.tenant_id, "files-token")[:48]
        given = dict(self.services)
        for name in given:
            services.get(name)  # ValueError for a name the registry does not know
        self.services = {
            name: _service_config(name, given[name]) if name in given else _config_type(name)()
            for name in services.NAMES
        }

    def service(self, name: str) -> ServiceConfig:
        """The settings of service `name` (ValueError when the registry has no such service)."""
        services.get(name)
        return self.services[name]

    def series(self, name: str) -> TimeSeriesConfig:
        """The settings of the windowed service `name`."""
        config = self.service(name)
        if not isinstance(config, TimeSeriesConfig):
            raise ValueError(f"{name} is a snapshot, not a windowed service")
        return config

    def snapshot(self, name: str) -> SnapshotConfig:
        """The settings of the snapshot service `name`."""
        config = self.service(name)
        if not isinstance(config, SnapshotConfig):
            raise ValueError(f"{name} is a windowed service, not a snapshot")
        return config

    def validate(self) -> None:
        """Raise ValueError naming the first invalid knob."""
        if not _TENANT_ID.match(self.tenant_id) or self.tenant_id in _RESERVED_IDS:
            raise ValueError(f"tenant_id {self.tenant_id!r} is not a valid path segment")
        _int("seed", self.seed)
        for name in services.NAMES:
            config = self.service(name)
            if not isinstance(config, _config_type(name)):
                raise ValueError(f"{name} takes a {_config_type(name).__name__}, got {config!r}")
            config.validate()
        _int("token_lifetime_seconds", self.token_lifetime_seconds, 1)
        if self.token_fault not in TOKEN_FAULTS:
            raise ValueError(f"token_fault must be one of {TOKEN_FAULTS}, got {self.token_fault!r}")
        _opt_int("requests_per_minute", self.requests_per_minute, 1)
        if self.retry_after_style not in RETRY_AFTER_STYLES:
            raise ValueError(f"retry_after_style must be one of {RETRY_AFTER_STYLES}")
        bad = [name for name in self.fault_queue if name not in FAULT_NAMES]
        if bad:
            raise ValueError(f"unknown fault(s) {bad}; expected some of {FAULT_NAMES}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be within 0..1")
        if self.fault_services is not None:
            for name in self.fault_services:
                services.get(name)
        _opt_int("revoke_tokens_after", self.revoke_tokens_after, 1)
        if not isinstance(self.scan_omit_next_query_filters, bool):
            _int("scan_omit_next_query_filters", self.scan_omit_next_query_filters, 0)
        if self.time_model not in TIME_MODELS:
            raise ValueError(f"time_model must be one of {TIME_MODELS}, got {self.time_model!r}")
        if self.default_sort_direction not in SORT_DIRECTIONS:
            raise ValueError(f"default_sort_direction must be one of {SORT_DIRECTIONS}")
        _opt_int("now_ms", self.now_ms, 0)
        _opt_int("clock_origin_ms", self.clock_origin_ms, 0)
        _opt_int("clock_started_ms", self.clock_started_ms, 0)
        if isinstance(self.clock_rate, bool) or not isinstance(self.clock_rate, int | float) or self.clock_rate < 0:
            raise ValueError(f"clock_rate must be a number >= 0, got {self.clock_rate!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, every service a key of its own; :meth:`from_dict` gives back an equal config."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "services":
                out.update({name: config.to_dict() for name, config in value.items()})
            else:
                out[f.name] = list(value) if isinstance(value, list) else value
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TenantConfig:
        """Build and validate a config from its JSON form (unknown keys are an error, to catch typos)."""
        if "tenant_id" not in raw:
            raise ValueError("tenant_id is required")
        config = cls(tenant_id=str(raw["tenant_id"]))
        config = config.with_changes({key: value for key, value in raw.items() if key != "tenant_id"})
        return config

    def with_changes(self, changes: Mapping[str, Any]) -> TenantConfig:
        """A validated copy with JSON-style `changes`, keyed as :meth:`to_dict` keys them.

        A service's value is its settings object, or a JSON object merged into its current settings.
        """
        knobs = {f.name for f in dataclasses.fields(self)} - {"tenant_id", "services"}
        values: dict[str, Any] = {}
        settings = dict(self.services)
        for key, value in changes.items():
            if key in services.SERVICES:
                settings[key] = _service_config(key, value, settings[key])
            elif key in knobs:
                values[key] = _coerce(key, value)
            else:
                raise ValueError(f"unknown tenant field {key!r}")
        config = dataclasses.replace(self, services=settings, **values)
        config.validate()
        return config


def _coerce(name: str, value: Any) -> Any:
    """Turn one JSON value into the knob's Python type."""
    if name == "fault_queue":
        return [str(item) for item in value]
    if name == "fault_services" and value is not None:
        return [str(item) for item in value]
    if name in ("error_rate", "clock_rate") and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if name == "token_fault" and value is not None:
        return _int("token_fault", value)
    return value


# -- runtime -------------------------------------------------------------------------------------------------


def _run(origin_ms: int, started_ms: int, rate: float, base_ms: int) -> int:
    """A clock that read `origin_ms` when its base read `started_ms`, running `rate` times as fast as its base."""
    return origin_ms + math.floor((base_ms - started_ms) * rate)


class Clock:
    """The server-wide clock: wall-clock epoch milliseconds, unless pinned (`override_ms`) or compressed.

    Compressed, it read `origin_ms` when the wall clock read `started_ms` and runs `rate` times as fast: one real
    second is `rate` emulated seconds (``set_rate``), so that a scheduler sees hours of MDCA pass in minutes.
    """

    def __init__(self) -> None:
        self.override_ms: int | None = None
        self.origin_ms: int | None = None
        self.rate = 1.0
        self.started_ms = 0

    @staticmethod
    def wall_ms() -> int:
        """The real time in epoch ms."""
        return time.time_ns() // 1_000_000

    def now_ms(self) -> int:
        """The current time in epoch ms."""
        override = self.override_ms
        if override is not None:
            return override
        if self.origin_ms is None:
            return self.wall_ms()
        return _run(self.origin_ms, self.started_ms, self.rate, self.wall_ms())

    def set_rate(self, rate: float, origin_ms: int | None = None) -> None:
        """Run from `origin_ms` (default: the time it shows now) at `rate` times real time; unpins the clock."""
        origin = self.now_ms() if origin_ms is None else origin_ms
        self.override_ms, self.origin_ms, self.rate, self.started_ms = None, origin, float(rate), self.wall_ms()

    def release(self) -> None:
        """Back to the wall clock."""
        self.override_ms, self.origin_ms, self.rate = None, None, 1.0

    def describe(self) -> dict[str, Any]:
        """The clock's time and settings, as the admin API shows them."""
        return {
            "now_ms": self.now_ms(),
            "override": self.override_ms,
            "origin_ms": self.origin_ms,
            "rate": self.rate,
            "started_ms": self.started_ms if self.origin_ms is not None else None,
        }


@dataclass
class _Token:
    serial: int
    expires_at: float  # time.monotonic()


@dataclass
class Stats:
    """Counters of one tenant (MDCA requests by service and status class, faults, throttling, tokens)."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(services.NAMES, 0))
    records_served: dict[str, int] = field(default_factory=lambda: dict.fromkeys(services.NAMES, 0))
    status: dict[str, int] = field(default_factory=lambda: {"2xx": 0, "4xx": 0, "5xx": 0})
    throttled: int = 0
    faults_injected: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    token_requests: int = 0
    token_errors: int = 0
    tokens_issued: int = 0
    tokens_revoked: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready deep copy."""
        out = dataclasses.asdict(self)
        out.update(out.pop("status"))  # flat "2xx"/"4xx"/"5xx" keys read best
        return out


ServiceData = TimeSeriesData | SnapshotData


def _build_data(config: TenantConfig) -> dict[str, ServiceData]:
    data: dict[str, ServiceData] = {}
    realistic = config.time_model == "realistic"
    for name, settings in config.services.items():
        if isinstance(settings, TimeSeriesConfig):
            resolved = timing.resolve(
                name,
                config.time_model,
                settings.delays,
                settings.late_every,
                settings.late_by_ms,
                settings.scan_interval_ms,
                settings.retention_days,
                settings.changes,
            )
            data[name] = TimeSeriesData(name, config.seed, settings.segments, timing=resolved)
        else:
            days = settings.lifetime_days or timing.DEFAULT_LIFETIME_DAYS.get(name)
            lifetimes = (round(days[0] * DAY_MS), round(days[1] * DAY_MS)) if realistic and days else None
            data[name] = SnapshotData(name, config.seed, settings.count, lifetimes)
    return data


# Keys whose change rebuilds the data streams (others are read per request).
_DATA_FIELDS = frozenset({"seed", "time_model", *services.NAMES})
_CLOCK_FIELDS = frozenset({"clock_origin_ms", "clock_rate"})


class TenantState:
    """One running tenant. Every method is thread-safe; the server calls the underscore-free ones too."""

    def __init__(self, config: TenantConfig, clock: Clock | None = None) -> None:
        config.validate()
        self._lock = threading.RLock()
        self._clock = clock or Clock()
        if config.clock_origin_ms is not None and config.clock_started_ms is None:
            config = dataclasses.replace(config, clock_started_ms=self._clock.now_ms())
        self._config = config
        self._data = _build_data(config)
        self._faults: collections.deque[str] = collections.deque(config.fault_queue)
        self._omit_left: bool | int = config.scan_omit_next_query_filters
        self._rng = random.Random(config.seed)
        self._window: collections.deque[float] = collections.deque()
        self._tokens: dict[str, _Token] = {}
        self._serial = 0
        self._revoked_below = 0
        self._successes = 0
        self._stats = Stats()

    # -- knobs -----------------------------------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        """The tenant's id (also its path segment)."""
        return self._config.tenant_id

    @property
    def config(self) -> TenantConfig:
        """A copy of the current configuration, with the faults and omissions still pending."""
        with self._lock:
            return dataclasses.replace(
                self._config,
                fault_queue=list(self._faults),
                scan_omit_next_query_filters=self._omit_left,
            )

    def settings(self) -> TenantConfig:
        """The live configuration object for one request to read (never mutated; replaced on change)."""
        return self._config

    def update(self, **changes: Any) -> TenantConfig:
        """Change knobs, e.g. ``update(fault_queue=["500", "reset"], requests_per_minute=None)``.

        Values may be Python objects or their JSON forms (a service as a partial dict is merged).
        """
        return self.patch(changes)

    def patch(self, changes: Mapping[str, Any]) -> TenantConfig:
        """Apply JSON-style `changes` atomically; ValueError (and no change) when one is invalid."""
        with self._lock:
            touched = set(changes)
            if touched & _CLOCK_FIELDS and "clock_started_ms" not in touched:
                # The clock runs on from the time it shows (or from the origin given), from this instant.
                changes = {"clock_origin_ms": self.now_ms(), **changes, "clock_started_ms": self._clock.now_ms()}
                if changes["clock_origin_ms"] is None:
                    changes["clock_started_ms"] = None
            config = self.config.with_changes(changes)
            if touched & _DATA_FIELDS:
                self._data = _build_data(config)
            if "seed" in touched:
                self._rng = random.Random(config.seed)
            self._faults = collections.deque(config.fault_queue)
            self._omit_left = config.scan_omit_next_query_filters
            self._config = config
            return self.config

    def queue_faults(self, *names: str) -> None:
        """Append faults to the queue (each applies to one upcoming MDCA request)."""
        with self._lock:
            self.patch({"fault_queue": [*self._faults, *names]})

    # -- clock and data --------------------------------------------------------------------------------------

    def set_now(self, now_ms: int | None) -> None:
        """Pin this tenant's clock to `now_ms` (None: follow the server clock, uncompressed)."""
        self.patch({"now_ms": now_ms, "clock_origin_ms": None, "clock_rate": 1.0})

    def set_rate(self, rate: float, origin_ms: int | None = None) -> None:
        """Run this tenant's clock from `origin_ms` (default: the time it shows) at `rate` times the server clock."""
        origin = self.now_ms() if origin_ms is None else origin_ms
        self.patch({"now_ms": None, "clock_origin_ms": origin, "clock_rate": float(rate)})

    def now_ms(self) -> int:
        """The tenant clock: pinned, else compressed, else the server clock."""
        config = self._config
        if config.now_ms is not None:
            return config.now_ms
        base = self._clock.now_ms()
        if config.clock_origin_ms is None:
            return base
        started = base if config.clock_started_ms is None else config.clock_started_ms
        return _run(config.clock_origin_ms, started, config.clock_rate, base)

    def describe_clock(self) -> dict[str, Any]:
        """The tenant clock's time and settings, as the admin API shows them."""
        config = self._config
        return {
            "now_ms": self.now_ms(),
            "override": config.now_ms,
            "origin_ms": config.clock_origin_ms,
            "rate": config.clock_rate,
            "started_ms": config.clock_started_ms,
        }

    def data(self, service: str) -> ServiceData:
        """The record streams of `service` as of now."""
        services.get(service)
        return self._data[service]

    def _as_of(self, visible_only: bool, as_of: int | str | None) -> int:
        if as_of == "now" or (as_of is None and visible_only):
            return self.now_ms()
        if as_of is None or as_of == "horizon":
            return INF_MS - 1
        if isinstance(as_of, str):
            raise ValueError(f"as_of must be epoch ms, 'now' or 'horizon', got {as_of!r}")
        return as_of

    def truth_entries(
        self,
        service: str,
        start_ms: int,
        end_ms: int,
        visible_only: bool = False,
        *,
        by: str | None = None,
        as_of: int | str | None = None,
    ) -> tuple[TimeSeriesData, list[Entry], int]:
        """The records a complete read of ``[start_ms, end_ms)`` of a windowed service must have delivered.

        `by` names the field the range is on: the event's time (``date``, files ``modifiedDate``), when MDCA stored
        the record (``created``, files ``snapshotLastModifiedDate``) or, for alerts, when it was resolved
        (``resolutionDate``); default: the registry's window field. `as_of` (epoch ms, ``"now"`` or
        ``"horizon"``): only records stored by then (alerts by ``resolutionDate``: resolved by then); default the
        horizon (every record, however late), or now with `visible_only`. Retention does not apply: a collector
        that read in time had them. Returns the data, the entries in timestamp order and the instant used.
        """
        data = self.data(service)
        if not isinstance(data, TimeSeriesData):
            raise ValueError(f"{service} is a snapshot: its truth has no range")
        moment = self._as_of(visible_only, as_of)
        window = [(start_ms, end_ms)]
        roles = field_roles(service)
        field_name = by or services.get(service).filter_field or ""
        role = roles.get(field_name, field_name)  # "time", "stored", "resolved", or a role given by name
        stored = [(0, moment + 1)]
        if role == "time":
            query = Query.of(times=window, stored=stored, now=moment)
        elif role == "stored":
            query = Query.of(stored=[(max(0, start_ms), min(end_ms, moment + 1))], now=moment)
        elif role == "resolved":
            query = Query.of(stored=stored, resolved=window, now=moment)
        else:
            raise ValueError(f"{service} has no field {field_name!r}; by takes one of {', '.join(roles)}")
        return data, list(data.select(query)), moment

    def truth(
        self,
        service: str,
        start_ms: int,
        end_ms: int,
        visible_only: bool = False,
        *,
        by: str | None = None,
        as_of: int | str | None = None,
    ) -> list[str]:
        """Sorted ``_id``s a complete read of ``[start_ms, end_ms)`` must return (see :meth:`truth_entries`).

        Snapshots ignore the window: the records in the collection now (or at `as_of`).
        """
        data = self.data(service)
        if isinstance(data, SnapshotData):
            moment = self.now_ms() if as_of in (None, "now", "horizon") else self._as_of(visible_only, as_of)
            return sorted(data.record_id(index) for index in data.present(moment))
        _data, entries, _moment = self.truth_entries(service, start_ms, end_ms, visible_only, by=by, as_of=as_of)
        return sorted(entry[1] for entry in entries)

    def truth_count(
        self,
        service: str,
        start_ms: int,
        end_ms: int,
        visible_only: bool = False,
        *,
        by: str | None = None,
        as_of: int | str | None = None,
    ) -> int:
        """How many records :meth:`truth` lists, counted (arithmetic where the model allows) rather than listed."""
        data = self.data(service)
        if isinstance(data, SnapshotData):
            return len(self.truth(service, start_ms, end_ms, visible_only, by=by, as_of=as_of))
        moment = self._as_of(visible_only, as_of)
        roles = field_roles(service)
        field_name = by or services.get(service).filter_field or ""
        role = roles.get(field_name, field_name)
        window, stored = [(start_ms, end_ms)], [(0, moment + 1)]
        if role == "time":
            return data.count_query(Query.of(times=window, stored=stored, now=moment))
        if role == "stored":
            return data.count_query(Query.of(stored=[(max(0, start_ms), min(end_ms, moment + 1))], now=moment))
        return len(self.truth(service, start_ms, end_ms, visible_only, by=by, as_of=as_of))

    def truth_states(
        self,
        service: str,
        start_ms: int,
        end_ms: int,
        visible_only: bool = False,
        *,
        by: str | None = None,
        as_of: int | str | None = None,
    ) -> list[dict[str, Any]]:
        """Every state each record of :meth:`truth` has had by `as_of` (alerts: status, resolution, resolveTime).

        One dict per state, ordered by ``_id`` then time: ``{"_id", "at", "statusValue", "resolutionStatusValue",
        "resolveTime", "handledByUser"}``; the last one of an ``_id`` is what MDCA shows at `as_of`.
        """
        data, entries, moment = self.truth_entries(service, start_ms, end_ms, visible_only, by=by, as_of=as_of)
        out: list[dict[str, Any]] = []
        for entry in sorted(entries, key=lambda e: e[1]):
            out.extend(state.to_dict(entry[1]) for state in data.alert_states(entry) if state.at <= moment)
        return out

    # -- per-request bookkeeping (called by mdca.py / entra.py) ----------------------------------------------

    def admit(self) -> int | None:
        """Take a throttle slot: None when admitted, else whole seconds (>= 1) until a slot frees up."""
        limit = self._config.requests_per_minute
        if limit is None:
            return None
        with self._lock:
            now = time.monotonic()
            while self._window and self._window[0] <= now - _THROTTLE_WINDOW_S:
                self._window.popleft()
            if len(self._window) >= limit:
                self._stats.throttled += 1  # a throttled request does not take a slot
                return max(1, math.ceil(self._window[-limit] + _THROTTLE_WINDOW_S - now))
            self._window.append(now)
            return None

    def take_fault(self, service: str) -> str | None:
        """The fault for this request: the next queued one, else a random 500/503 at `error_rate`."""
        with self._lock:
            config = self._config
            if config.fault_services is not None and service not in config.fault_services:
                return None
            if self._faults:
                fault: str | None = self._faults.popleft()
            elif config.error_rate and self._rng.random() < config.error_rate:
                fault = self._rng.choice(("500", "503"))
            else:
                fault = None
            if fault is not None:
                self._stats.faults_injected += 1
                self._stats.faults[fault] = self._stats.faults.get(fault, 0) + 1
            return fault

    def take_omit_next_filters(self) -> bool:
        """Whether this hasNext scan response leaves out ``nextQueryFilters`` (consumes one when counted)."""
        with self._lock:
            left = self._omit_left
            if isinstance(left, bool):
                return left
            if left > 0:
                self._omit_left = left - 1
                return True
            return False

    def omit_pending(self) -> bool:
        """Whether some upcoming scan responses are still to leave out ``nextQueryFilters``."""
        with self._lock:
            return bool(self._omit_left)

    def issue_token(self) -> tuple[str, int]:
        """A new opaque access token and its lifetime in seconds."""
        with self._lock:
            lifetime = self._config.token_lifetime_seconds
            now = time.monotonic()
            if len(self._tokens) > 256:  # forget expired tokens so a long run does not grow
                self._tokens = {tok: info for tok, info in self._tokens.items() if info.expires_at > now}
            token = secrets.token_urlsafe(48)
            self._serial += 1
            self._tokens[token] = _Token(self._serial, now + lifetime)
            self._stats.tokens_issued += 1
            return token, lifetime

    def token_status(self, token: str) -> str:
        """``"valid"``, ``"expired"``, ``"revoked"`` or ``"unknown"`` for a Bearer token of this tenant."""
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                return "unknown"
            if info.serial <= self._revoked_below:
                return "revoked"
            return "valid" if info.expires_at > time.monotonic() else "expired"

    def note_success(self) -> None:
        """Count a successful MDCA request; every `revoke_tokens_after` of them revokes all tokens issued."""
        with self._lock:
            threshold = self._config.revoke_tokens_after
            self._successes += 1
            if threshold is None or self._successes < threshold:
                return
            self._successes = 0
            now = time.monotonic()
            cutoff = self._revoked_below
            live = sum(1 for info in self._tokens.values() if info.serial > cutoff and info.expires_at > now)
            self._stats.tokens_revoked += live
            self._revoked_below = self._serial

    def record_request(self, service: str, status: int | None, records: int = 0) -> None:
        """Count one MDCA response (status None: the connection was reset without one)."""
        with self._lock:
            self._stats.requests[service] += 1
            self._stats.records_served[service] += records
            if status is not None and status >= 200:
                key = f"{status // 100}xx"
                if key in self._stats.status:
                    self._stats.status[key] += 1

    def record_token_request(self, ok: bool) -> None:
        """Count one token request."""
        with self._lock:
            self._stats.token_requests += 1
            if not ok:
                self._stats.token_errors += 1

    def stats(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        with self._lock:
            out = self._stats.to_dict()
        out["tenant_id"] = self.tenant_id
        return out


class TenantRegistry:
    """The tenants a server knows, by id. Thread-safe."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantState] = {}

    def put(self, config: TenantConfig) -> TenantState:
        """Create or replace a tenant (a replaced tenant starts afresh: no tokens, no counters)."""
        state = TenantState(config, self.clock)
        with self._lock:
            self._tenants[config.tenant_id] = state
        return state

    def get(self, tenant_id: str) -> TenantState | None:
        """The tenant, or None."""
        with self._lock:
            return self._tenants.get(tenant_id)

    def __getitem__(self, tenant_id: str) -> TenantState:
        state = self.get(tenant_id)
        if state is None:
            raise KeyError(f"unknown tenant {tenant_id!r}")
        return state

    def remove(self, tenant_id: str) -> bool:
        """Forget a tenant; False if it did not exist."""
        with self._lock:
            return self._tenants.pop(tenant_id, None) is not None

    def ids(self) -> list[str]:
        """Sorted tenant ids."""
        with self._lock:
            return sorted(self._tenants)
