"""The fault matrix: each fault the collector must ride out by itself, run through its real steps, one row per fault.

Harness, not provider: ``tests/integration/test_fault_matrix.py`` runs every case at a small scale and
``bench/faults.py`` (``make faults``) at full size, beside the cases other harness modules register (the SIGKILL
cases of :mod:`tests.harness.crashes`, the outages of a live scheduler). Imports nothing from Airflow.

Every case drives the collector's own steps, the functions the operators wrap, over several consecutive windows:
``MdcaClient.fetch`` into ``fetch_to_stage``, ``flatten_stage`` for alerts, then ``ship_stage`` to Devo with the
provider's real sender (TLS relay or HTTP API), against the emulators (MDCA, Entra ID, Devo) in a child process over
real TLS on 127.0.0.1. Each window's records are placed exactly (MDCA's ``instant`` time model), with neighbours just
outside the windows. Airflow's task retry is imitated (:class:`TaskRunner`): a step that fails with a provider error
(a ``PullError``, ``SetupError``, ``DeliveryError``, ``StagingError`` or an ``OSError``) runs again, as a new task
try does (a new client, a new sender), after a short backoff, up to :data:`TASK_RETRIES` times. Only when that budget
is spent does the window need a human (``mdca-collector undelivered --deliver``): the runner counts it, does it, and
goes on, so the row still says whether the data arrived. Any other exception is a bug and ends the case.

=========================  ============================================================================================
case                       the fault (each window of the case, unless said otherwise)
=========================  ============================================================================================
``mdca-429-storm``         activities: after the first page, 11 answers 429 in a row, one more than the client waits
                           out, so a fetch try fails and is retried (full size: each with ``Retry-After: 1`` as MDCA
                           sends it; scaled down, one has it and the others wait the client's default)
``mdca-5xx``               alerts: after the first page, 500, 502, 503, 504, 500, 502, 503: beyond the client's 5
                           retries, a fetch try fails (PullError 305)
``mdca-reset``             files: after the first page, 7 connections reset without an answer
``mdca-truncate``          activities: after the first page, 7 answers cut in the middle of their JSON body
``mdca-flaky``             alerts: 30 % of all MDCA requests answer 500 or 503, the whole time
``token-expiry``           activities: Entra ID tokens live 1 s and the client's requests are 1.2 s apart, so each
                           token has died by the next request, in the middle of a window's paging
``token-revoked``          alerts: every token is revoked after 2 requests: MDCA refuses the next one (401) in the
                           middle of each window's paging
``relay-drop``             alerts over the TLS relay: after the first batch, the relay cuts the next connection
                           (TCP reset) part of the way through that batch; the sender sends the batch again whole
``relay-refusing``         activities over TLS: after the first batch, the relay refuses 8 connections in a row:
                           beyond the sender's 5 retries, a ship try fails and resumes after the last batch
``devo-http-5xx``          activities over HTTP: after the first batch, 503, 429, 500, 502, a reset, 503 and a 429
                           without ``Retry-After`` in a row: a ship try fails and resumes
``devo-reset-after-store`` alerts over HTTP: after the first batch, Devo stores the next batch, then resets the
                           connection instead of answering
``duplicate-runs``         activities over TLS, no fault: each window is run again (fetch and ship: a cleared run or
                           a backfill), then its ship task once more (a retry after success)
``concurrent-ships``       activities over TLS, no fault: each window is shipped by two ship tasks at the same time
                           (a task Airflow took for dead while it still ran, and its retry)
=========================  ============================================================================================

The truth is the emulator's (its truth API: what a complete read of each window returns; for alerts, each alert's
flattened events) against the ``_id`` of every event Devo stored (its admin API), duplicates kept. A row counts
records ``lost`` (due but not stored), ``duplicated`` (stored more often than due) and, apart, the transports'
at-least-once edge: over TLS a batch whose connection is cut is sent again whole, and the lines of it the relay had
stored arrive twice (``tls_edge_duplicates``); over HTTP a batch stored by Devo whose answer never came is sent
again (``http_edge_duplicates``). Each such fault may double at most one batch, a run of consecutive records;
anything beyond that counts as ``duplicated``. ``failed`` is any record lost or duplicated, a human action, or a
problem (the fault never fired, so the case proved nothing; records that belong to no window).
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import requests

from airflow_provider_mdca.client import MdcaClient, MdcaConfig
from airflow_provider_mdca.devo import DeliveryStats, DevoConfig, make_sender
from airflow_provider_mdca.errors import MdcaProviderError
from airflow_provider_mdca.pipeline import fetch_to_stage, flatten_stage
from airflow_provider_mdca.services import SERVICES
from airflow_provider_mdca.shipping import ship_stage
from airflow_provider_mdca.staging import StagingError, window_dir
from airflow_provider_mdca.transforms.flatten import DEFAULT_MAX_EVENTS
from mdca_emulator import Rate, Segment, TenantConfig, TimeSeriesConfig
from mdca_emulator.process import EmulatorProcess
from tests.harness.late_world import alert_event_counts

__all__ = [
    "CASES",
    "FULL_SCALE",
    "MAX_RETRY_DELAY_S",
    "RETRY_DELAY_S",
    "SMALL_SCALE",
    "TASK_RETRIES",
    "Case",
    "CaseError",
    "FaultLab",
    "FaultRow",
    "RunsCase",
    "TaskRunner",
    "as_fault_row",
    "edge_duplicates",
    "format_table",
    "run_cases",
]

T = TypeVar("T")

#: ``run(scale)``: the test's size, and ``make faults``'s (records and batches per window grow with it).
SMALL_SCALE = 1
FULL_SCALE = 10

#: Airflow's retries of each task, imitated. Fewer than the collector's default (``recovery_horizon`` of a day gives
#: 99), so that a fault the provider does not ride out shows up as a human action instead of hiding in a long budget.
TASK_RETRIES = 3
#: Airflow's ``retry_delay`` (a minute by default) scaled down, doubled after each try up to the maximum.
RETRY_DELAY_S = 0.1
MAX_RETRY_DELAY_S = 0.5
#: How many times the runner plays the human (clears the failed task) before it gives the window up.
MAX_HUMAN_ACTIONS = 3
#: Errors a task retry may cure: the provider's own (its codes say what failed), staging's, the OS's.
RETRYABLE: tuple[type[BaseException], ...] = (MdcaProviderError, StagingError, OSError)

PERIOD = timedelta(minutes=5)
_CLUSTERS = (1, 2, 3, 1, 5)
_NEIGHBOURS = 20  # records just before the first window and just after the last: no window may take them


# -- the rows ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRow:
    """What one fault case measured. ``lost``, ``duplicated`` and ``human_actions`` must be 0.

    ``tls_edge_duplicates`` and ``http_edge_duplicates`` are the records the transports' at-least-once edge
    delivered twice (at most one batch per fault there, else they count as ``duplicated``). ``faults`` is how many
    faults the emulators applied: a case whose fault never fired proves nothing and fails. ``collector_cpu_seconds``
    is the CPU the collector's steps used (None where they ran in other processes, e.g. Airflow's task processes).
    """

    case: str
    windows: int
    records: int
    lost: int
    duplicated: int
    tls_edge_duplicates: int
    human_actions: int
    seconds_to_heal: float
    http_edge_duplicates: int = 0
    #: The most the edge may double: one batch per fault that hit it (0 where no fault can).
    edge_allowance: int = 0
    faults: int = 0
    #: Task tries that failed and were retried, as Airflow would (no human involved).
    task_retries: int = 0
    wall_seconds: float | None = None
    collector_cpu_seconds: float | None = None
    what: str = ""
    problems: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether the guarantee broke: a record lost or doubled beyond the edge, a human needed, or a problem."""
        return bool(self.lost or self.duplicated or self.human_actions or self.problems)

    def failures(self) -> list[str]:
        """What broke the guarantee, in words (empty when not :attr:`failed`)."""
        out = [f"{self.case}: {problem}" for problem in self.problems]
        for label in ("lost", "duplicated", "human_actions"):
            if getattr(self, label):
                out.append(f"{self.case}: {label} = {getattr(self, label)}")
        return out


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def format_table(rows: Sequence[FaultRow]) -> str:
    """One line per case: windows, records, lost, duplicated, twice at each edge, human actions, heal time, CPU."""
    header = (
        "case",
        "windows",
        "records",
        "lost",
        "duplicated",
        "twice at TLS edge",
        "twice at HTTP edge",
        "human actions",
        "heal s",
        "faults",
        "task retries",
        "wall s",
        "collector CPU s",
        "",
    )
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        lines.append(
            (
                r.case,
                str(r.windows),
                f"{r.records:,}",
                str(r.lost),
                str(r.duplicated),
                f"{r.tls_edge_duplicates}" + (f" (<= {r.edge_allowance})" if r.tls_edge_duplicates else ""),
                f"{r.http_edge_duplicates}" + (f" (<= {r.edge_allowance})" if r.http_edge_duplicates else ""),
                str(r.human_actions),
                _cell(r.seconds_to_heal),
                str(r.faults),
                str(r.task_retries),
                _cell(r.wall_seconds),
                _cell(r.collector_cpu_seconds, 2),
                "FAILED" if r.failed else "ok",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        " | ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "-+-".join("-" * w for w in widths))
    text.extend(f"  {r.case}: {r.what}" for r in rows if r.what)
    text.extend(f"  {failure}" for r in rows for failure in r.failures())
    return "\n".join(line.rstrip() for line in text)


def as_fault_row(result: Any, *, case: str | None = None) -> FaultRow:
    """A :class:`FaultRow` from any record with its fields by name (another harness's result: duck-typed).

    Required: ``windows``, ``records``, ``lost``, ``duplicated``, ``human_actions``, ``seconds_to_heal``; the rest
    are read when present (``tls_edge_duplicates``, ``http_edge_duplicates``, ``edge_allowance``, ``problems``,
    ``what``, or ``killed`` and ``detected``, as the row's text). Given ``case``, the row takes that name, and the
    record's own name becomes its text when it has none.
    """
    if isinstance(result, FaultRow):
        return result

    def get(name: str, default: Any = 0) -> Any:
        if isinstance(result, Mapping):
            return result.get(name, default)
        return getattr(result, name, default)

    text = str(get("what", "") or "")
    if not text and get("killed", ""):
        text = f"killed {get('killed')}; {get('detected', '')}".rstrip("; ")
    if not text and case and str(get("case", "")) != case:
        text = str(get("case"))  # the record's own name describes it; the row takes the given one
    return FaultRow(
        case=case or str(get("case")),
        windows=int(get("windows")),
        records=int(get("records")),
        lost=int(get("lost")),
        duplicated=int(get("duplicated")),
        tls_edge_duplicates=int(get("tls_edge_duplicates")),
        human_actions=int(get("human_actions")),
        seconds_to_heal=float(get("seconds_to_heal")),
        http_edge_duplicates=int(get("http_edge_duplicates")),
        edge_allowance=int(get("edge_allowance")),
        faults=int(get("faults")),
        task_retries=int(get("task_retries")),
        wall_seconds=get("wall_seconds", None),
        collector_cpu_seconds=get("collector_cpu_seconds", None),
        what=text,
        problems=tuple(str(p) for p in get("problems", ()) or ()),
    )


# -- the lab -------------------------------------------------------------------------------------------------------


class CaseError(RuntimeError):
    """A case could not run as planned (a window never delivered, an unexpected exception)."""


class FaultLab:
    """The emulators (MDCA, Entra ID, Devo's relay and HTTP API) in a child process, shared by the cases.

    Each case registers a tenant and ships to a Devo tag of its own, so cases never see each other's data; they run
    one after the other (Devo's fault knobs and counters are the lab's).

    :param workdir: an empty folder for the emulator's state and the cases' staging.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.emulator: EmulatorProcess | None = None
        self._session = requests.Session()
        self._session.trust_env = False

    def start(self) -> FaultLab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.emulator = EmulatorProcess(self.workdir / "emulator", tenants=[]).start()
        self._session.verify = self.emulator.ca_bundle
        return self

    def stop(self) -> None:
        self._session.close()
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None

    def __enter__(self) -> FaultLab:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def info(self) -> dict[str, Any]:
        if self.emulator is None:
            raise CaseError("the fault lab is not started")
        info: dict[str, Any] = self.emulator.info
        return info

    def _call(self, method: str, url: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        response = self._session.request(method, url, json=body, params=params, timeout=120)
        response.raise_for_status()
        return response.json()

    # -- MDCA and Entra ID ---------------------------------------------------------------------------------------

    def put_tenant(self, config: TenantConfig) -> None:
        self._call("PUT", f"{self.info['admin_url']}tenants/{config.tenant_id}", config.to_dict())

    def patch_tenant(self, tenant_id: str, **knobs: Any) -> None:
        self._call("PATCH", f"{self.info['admin_url']}tenants/{tenant_id}", knobs)

    def tenant_stats(self, tenant_id: str) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("GET", f"{self.info['admin_url']}tenants/{tenant_id}/stats")
        return stats

    def truth(self, tenant_id: str, service: str, start_ms: int, end_ms: int) -> list[str]:
        """The ids a complete read of ``[start_ms, end_ms)`` returns (the emulator's ground truth)."""
        params = {"service": service, "start": start_ms, "end": end_ms, "as_of": "horizon"}
        ids: list[str] = self._call("GET", f"{self.info['admin_url']}tenants/{tenant_id}/truth", params=params)["ids"]
        return ids

    def mdca_config(self, config: TenantConfig, **changes: Any) -> MdcaConfig:
        """The client's configuration for a tenant: the provider's retry budgets, backoffs scaled down."""
        fields: dict[str, Any] = {
            "base_url": f"{self.info['base_url']}/mdca/{config.tenant_id}/",
            "tenant_id": config.tenant_id,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "token_url": self.info["token_url"],
            "files_access_token": config.files_access_token,
            "verify": self.info["ca_bundle"],
            "requests_per_minute": None,
            "backoff_base": 0.02,
            "backoff_max": 0.2,
            "retry_after_default": 0.05,
            **changes,
        }
        return MdcaConfig(**fields)

    # -- Devo ----------------------------------------------------------------------------------------------------

    def devo_config(self, transport: str, batch_events: int) -> DevoConfig:
        """The sender's configuration: the provider's retry budget (5), backoff scaled down, small batches."""
        devo = self.info["devo"]
        common: dict[str, Any] = {
            "hostname": "fault-matrix",
            "batch_events": batch_events,
            "backoff_base": 0.02,
            "backoff_max": 0.2,
        }
        if transport == "tls":
            return DevoConfig(
                transport="tls",
                host=devo["relay_host"],
                port=int(devo["relay_port"]),
                cert=devo["client_cert"],
                key=devo["client_key"],
                chain=devo["ca_bundle"],
                **common,
            )
        return DevoConfig(
            transport="http",
            host=devo["http_url"],
            token=devo["token"],
            domain=devo["domain"],
            verify=devo["ca_bundle"],
            **common,
        )

    def clear_faults(self) -> None:
        """Every Devo fault knob back to none (a case that broke down may have left one armed)."""
        self.devo_faults(
            refuse_connections=0, drop_after_bytes=None, drop_every_connection_after_bytes=None, fault_queue=[]
        )

    def devo_faults(self, **knobs: Any) -> None:
        self._call("PATCH", f"{self.info['devo']['admin_url']}faults", knobs)

    def devo_faults_injected(self) -> Counter[str]:
        stats = self._call("GET", f"{self.info['devo']['admin_url']}stats")
        return Counter(stats.get("faults_injected", {}))

    def devo_ids(self, tag: str) -> list[str]:
        """The ``_id`` of every event Devo holds under ``tag``, in arrival order, duplicates kept."""
        ids: list[str] = self._call("GET", f"{self.info['devo']['admin_url']}tags/{tag}/ids", params={"key": "_id"})[
            "ids"
        ]
        return ids


# -- Airflow's retries, imitated -----------------------------------------------------------------------------------


class TaskRunner:
    """Runs a case's steps as Airflow runs its tasks: a failed try is retried, and a spent budget needs a human.

    ``body(try_number)`` is one try. A try that fails with one of :data:`RETRYABLE` is retried after
    :data:`RETRY_DELAY_S` (doubled each time, at most :data:`MAX_RETRY_DELAY_S`), :data:`TASK_RETRIES` times. When
    the last try fails the window is not delivered and someone must act (clear the task, as ``mdca-collector
    undelivered --deliver`` does): counted in :attr:`human_actions`, then the task runs again with a new budget.
    The CPU the tries use is summed in :attr:`cpu_seconds` (the process's: the emulators run in another one).
    """

    def __init__(self) -> None:
        self.tries = 0
        self.retries = 0
        self.human_actions = 0
        self.cpu_seconds = 0.0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def run(self, task: str, body: Callable[[int], T]) -> T:
        for human in range(MAX_HUMAN_ACTIONS + 1):
            if human:
                with self._lock:
                    self.human_actions += 1
            for try_number in range(1, TASK_RETRIES + 2):
                began = time.process_time()
                try:
                    return body(try_number)
                except RETRYABLE as exc:
                    with self._lock:
                        self.errors.append(f"{task} try {try_number}: {_error_name(exc)}")
                        if try_number <= TASK_RETRIES:
                            self.retries += 1
                    if try_number <= TASK_RETRIES:
                        time.sleep(min(MAX_RETRY_DELAY_S, RETRY_DELAY_S * 2 ** (try_number - 1)))
                finally:
                    with self._lock:
                        self.tries += 1
                        self.cpu_seconds += time.process_time() - began
        raise CaseError(f"{task}: still failing after {MAX_HUMAN_ACTIONS} human actions; last: {self.errors[-1]}")


def _error_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' {code}' if code is not None else ''}: {str(exc)[:200]}"


# -- one case's windows through the pipeline ----------------------------------------------------------------------


class EventSink(Protocol):
    def send(
        self, tag: str, events: Iterable[Mapping[str, Any]], *, on_batch: Callable[[int], None] | None = None
    ) -> DeliveryStats: ...


class _ArmingSink:
    """A sender that calls ``arm()`` once, right after its ``after``-th batch is acknowledged (and recorded)."""

    def __init__(self, sender: EventSink, after: int, arm: Callable[[], None]) -> None:
        self._sender = sender
        self._after = after
        self._arm: Callable[[], None] | None = arm
        self._batches = 0

    def send(
        self, tag: str, events: Iterable[Mapping[str, Any]], *, on_batch: Callable[[int], None] | None = None
    ) -> DeliveryStats:
        def acknowledged(count: int) -> None:
            if on_batch is not None:
                on_batch(count)  # the ledger first: the fault hits the batch after it
            self._batches += 1
            if self._arm is not None and self._batches >= self._after:
                arm, self._arm = self._arm, None
                arm()

        return self._sender.send(tag, events, on_batch=acknowledged)


def _arming_records(records: Iterable[dict[str, Any]], arm: Callable[[], None]) -> Iterator[dict[str, Any]]:
    """The records, calling ``arm()`` once the first has arrived: the fault hits the window's next request."""
    armed = False
    for record in records:
        yield record
        if not armed:
            armed = True
            arm()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def plan_windows(count: int) -> list[tuple[datetime, datetime]]:
    """``count`` consecutive windows of :data:`PERIOD`, the last one ending an hour ago on a whole period."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    end = now - timedelta(minutes=now.minute % 5) - timedelta(hours=1)
    start = end - PERIOD * count
    return [(start + PERIOD * k, start + PERIOD * (k + 1)) for k in range(count)]


def windows_for(scale: int) -> int:
    """Three consecutive windows at the test's scale, five at full size."""
    return 3 if scale < FULL_SCALE else 5


@dataclass
class RunsCase:
    """One case in progress: its tenant, its Devo tag, its staging, its windows and its faults' hooks.

    ``arm_fetch(index)`` is called once per window, after the first record of its first fetch try arrived (the
    fault hits the next request); ``arm_ship(index)`` once per window, after its first batch was acknowledged.
    """

    lab: FaultLab
    name: str
    service: str
    scale: int
    transport: str = "tls"
    records_per_window: int = 0
    batch_events: int = 0
    page_size: int | None = None
    tenant_knobs: dict[str, Any] = field(default_factory=dict)
    client_knobs: dict[str, Any] = field(default_factory=dict)
    arm_fetch: Callable[[int], None] | None = None
    arm_ship: Callable[[int], None] | None = None
    what: str = ""

    def __post_init__(self) -> None:
        self.windows = plan_windows(windows_for(self.scale))
        suffix = uuid.uuid4().hex[:8]
        self.tag = f"{SERVICES[self.service].devo_table}.faults.{self.name}.{suffix}"
        self.staging = self.lab.workdir / "staging" / f"{self.name}-{suffix}"
        start_ms, end_ms = _ms(self.windows[0][0]), _ms(self.windows[-1][1])
        segments: list[Segment | Rate] = [
            Segment(start_ms - 60_000, start_ms, _NEIGHBOURS, (1, 2)),
            Segment(start_ms, end_ms, self.records_per_window * len(self.windows), _CLUSTERS),
            Segment(end_ms, end_ms + 60_000, _NEIGHBOURS, (2, 1)),
        ]
        self.tenant = TenantConfig(
            f"faults-{self.name}-{suffix}",
            seed=15,
            services={self.service: TimeSeriesConfig(segments=segments)},
            requests_per_minute=None,
            time_model="instant",  # exact truth per window: each record is stored the instant it happens
        ).with_changes(self.tenant_knobs)
        self.lab.put_tenant(self.tenant)
        self.tasks = TaskRunner()
        self.fetch_tries = 0
        self.first_fault: float | None = None
        self._fetch_armed: set[int] = set()
        self._ship_armed: set[int] = set()
        self._devo_before = self.lab.devo_faults_injected()
        self.began = time.monotonic()

    def fault_now(self) -> None:
        """Note when the first fault began (the start of the heal time)."""
        if self.first_fault is None:
            self.first_fault = time.monotonic()

    # -- the steps -----------------------------------------------------------------------------------------------

    def folder(self, index: int) -> Path:
        start, end = self.windows[index]
        return window_dir(self.staging, self.service, start, end)

    def fetch(self, index: int) -> Path:
        """The window's fetch task: every try with a new client, as a new task process would have."""
        start, end = self.windows[index]

        def attempt(try_number: int) -> Path:
            self.fetch_tries += 1
            with MdcaClient(self.lab.mdca_config(self.tenant, **self.client_knobs)) as client:
                stream = client.fetch(self.service, start, end, page_size=self.page_size)
                records: Iterable[dict[str, Any]] = stream
                if self.arm_fetch is not None and index not in self._fetch_armed:
                    self._fetch_armed.add(index)
                    records = _arming_records(stream, self._armer(self.arm_fetch, index))
                manifest, _summary = fetch_to_stage(
                    records, self.folder(index), service=self.service, start=start, end=end, stats=stream.stats
                )
            return manifest

        manifest = self.tasks.run(f"fetch of window {index + 1}", attempt)
        if self.service == "alerts":
            manifest = self.tasks.run(f"flatten of window {index + 1}", lambda _n: flatten_stage(manifest)[0])
        return manifest

    def ship(self, index: int, manifest: Path, *, arm: bool = True) -> None:
        """The window's ship task: every try with a new sender, resuming after what the ledger says was delivered."""

        def attempt(try_number: int) -> None:
            sender = make_sender(self.lab.devo_config(self.transport, self.batch_events))
            sink: EventSink = sender
            if arm and self.arm_ship is not None and index not in self._ship_armed:
                self._ship_armed.add(index)
                sink = _ArmingSink(sender, 1, self._armer(self.arm_ship, index))
            try:
                ship_stage(manifest, sink, tag=self.tag, attempt=try_number)
            finally:
                sender.close()

        self.tasks.run(f"ship of window {index + 1}", attempt)

    def _armer(self, arm: Callable[[int], None], index: int) -> Callable[[], None]:
        def armed() -> None:
            self.fault_now()
            arm(index)

        return armed

    def run_windows(self, count: int | None = None) -> list[Path]:
        """The windows (the first ``count``), in order, as the DAG's runs would (``max_active_runs`` 1)."""
        manifests = []
        for index in range(len(self.windows) if count is None else count):
            manifest = self.fetch(index)
            self.ship(index, manifest)
            manifests.append(manifest)
        return manifests

    # -- the outcome ---------------------------------------------------------------------------------------------

    def expected(self) -> Counter[str]:
        """How many times each ``_id`` is due in Devo: once per record of the windows (alerts: per flattened event)."""
        spans = [(_ms(start), _ms(end)) for start, end in self.windows]
        due: Counter[str] = Counter()
        for start_ms, end_ms in spans:
            due.update(self.lab.truth(self.tenant.tenant_id, self.service, start_ms, end_ms))
        if self.service == "alerts":
            return alert_event_counts(self.tenant, due, spans, max_events=DEFAULT_MAX_EVENTS)
        return due

    def faults_fired(self) -> tuple[int, Counter[str]]:
        """Faults MDCA applied to this tenant, and Devo's (by kind) since the case began."""
        stats = self.lab.tenant_stats(self.tenant.tenant_id)
        devo = self.lab.devo_faults_injected() - self._devo_before
        return int(stats["faults_injected"]), devo

    def row(self, *, edge_faults: int = 0, faults: int | None = None, problems: Sequence[str] = ()) -> FaultRow:
        """Count Devo against the truth; split what arrived twice between the transport's edge and beyond it."""
        healed = time.monotonic()
        expected = self.expected()
        arrivals = self.lab.devo_ids(self.tag)
        delivered = Counter(arrivals)
        lost = sum((expected - delivered).values())
        extra = delivered - expected
        unexpected = sorted(record_id for record_id in extra if record_id not in expected)
        allowance = self.batch_events * edge_faults
        on_edge = edge_duplicates(arrivals, extra, allowance, edge_faults)
        mdca_faults, devo_faults = self.faults_fired()
        fired = mdca_faults + sum(devo_faults.values()) if faults is None else faults
        issues = list(problems)
        if not fired:
            issues.append("the fault never fired: the case proved nothing")
        if unexpected:
            issues.append(f"{len(unexpected)} records in Devo belong to no window, e.g. {unexpected[:3]}")
        start = self.began if self.first_fault is None else self.first_fault
        return FaultRow(
            case=self.name,
            windows=len(self.windows),
            records=sum(expected.values()),
            lost=lost,
            duplicated=sum(extra.values()) - on_edge,
            tls_edge_duplicates=on_edge if self.transport == "tls" else 0,
            http_edge_duplicates=on_edge if self.transport == "http" else 0,
            human_actions=self.tasks.human_actions,
            seconds_to_heal=round(healed - start, 2),
            edge_allowance=allowance,
            faults=fired,
            task_retries=self.tasks.retries,
            wall_seconds=round(healed - self.began, 2),
            collector_cpu_seconds=round(self.tasks.cpu_seconds, 2),
            what=self.what,
            problems=tuple(issues),
        )


def edge_duplicates(arrivals: list[str], extra: Counter[str], allowance: int, edge_faults: int) -> int:
    """How many of the ``extra`` deliveries the transport's edge explains: one batch per fault there, at most.

    They must total at most ``allowance`` and form at most ``edge_faults`` runs of consecutive records (in the order
    they first arrived): a batch sent again, not records picked here and there. Otherwise none is explained and
    every one counts as duplicated.
    """
    total = sum(extra.values())
    if not total or total > allowance:
        return 0
    order = {record_id: position for position, record_id in enumerate(dict.fromkeys(arrivals))}
    positions = sorted(order[record_id] for record_id in extra)
    runs = 1 + sum(1 for before, after in itertools.pairwise(positions) if after != before + 1)
    return total if runs <= edge_faults else 0


# -- the cases -----------------------------------------------------------------------------------------------------


def _mdca_storm(lab: FaultLab, run: Callable[[], RunsCase], faults: Sequence[str]) -> Callable[[int], None]:
    def arm(index: int) -> None:
        lab.patch_tenant(run().tenant.tenant_id, fault_queue=list(faults))

    return arm


def _fetch_case(
    name: str,
    service: str,
    faults: Sequence[str],
    what: str,
    *,
    records: int,
    page_size: int | None = None,
) -> Callable[[FaultLab, int], FaultRow]:
    """A case whose MDCA answers ``faults`` in a row after each window's first page."""

    def body(lab: FaultLab, scale: int) -> FaultRow:
        holder: list[RunsCase] = []
        run = RunsCase(
            lab,
            name,
            service,
            scale,
            records_per_window=records * scale,
            batch_events=100 * scale,
            page_size=page_size,
            arm_fetch=_mdca_storm(lab, lambda: holder[0], faults),
            what=what,
        )
        holder.append(run)
        run.run_windows()
        return run.row()

    return body


def _429_storm(lab: FaultLab, scale: int) -> FaultRow:
    # One 429 more than the client's budget (max_throttle_retries 10): the fetch try fails, Airflow retries it.
    # At full size every 429 carries Retry-After (1 s, as MDCA sends); scaled down, one does and the rest wait the
    # client's retry_after_default.
    storm = ["429"] * 11 if scale >= FULL_SCALE else ["429"] + ["429-no-retry-after"] * 10
    body = _fetch_case(
        "mdca-429-storm",
        "activities",
        storm,
        "MDCA answers 429 11 times in a row after each window's first page (client waits out 10)",
        records=1_000,
        page_size=500,
    )
    return body(lab, scale)


_MDCA_5XX = ["500", "502", "503", "504", "500", "502", "503"]


def _mdca_5xx(lab: FaultLab, scale: int) -> FaultRow:
    what = "MDCA answers 500, 502, 503, 504, 500, 502, 503 after each window's first page (client retries 5)"
    return _fetch_case("mdca-5xx", "alerts", _MDCA_5XX, what, records=300)(lab, scale)


def _mdca_reset(lab: FaultLab, scale: int) -> FaultRow:
    what = "MDCA resets 7 connections in a row after each window's first page (client retries 5)"
    return _fetch_case("mdca-reset", "files", ["reset"] * 7, what, records=500)(lab, scale)


def _mdca_truncate(lab: FaultLab, scale: int) -> FaultRow:
    what = "MDCA cuts 7 answers in a row in the middle of their JSON body after each window's first page"
    return _fetch_case("mdca-truncate", "activities", ["truncate"] * 7, what, records=1_000, page_size=500)(lab, scale)


def _mdca_flaky(lab: FaultLab, scale: int) -> FaultRow:
    run = RunsCase(
        lab,
        "mdca-flaky",
        "alerts",
        scale,
        records_per_window=300 * scale,
        batch_events=100 * scale,
        tenant_knobs={"error_rate": 0.3},
        what="30 % of MDCA's answers are 500 or 503, at random, the whole time",
    )
    run.fault_now()
    run.run_windows()
    return run.row()


def _token_expiry(lab: FaultLab, scale: int) -> FaultRow:
    # Tokens that live 1 s, on a client paced at 50 requests a minute (1.2 s apart), so that the token of each request
    # has died by the next one, in the middle of a window's paging. MSAL renews a token with less than 5 minutes left,
    # so each request should get a fresh one; one that reached MDCA dead would be a 401 and one forced refresh. The
    # faults are the tokens that died while a window was being read: every token but the first of each fetch try.
    run = RunsCase(
        lab,
        "token-expiry",
        "activities",
        scale,
        records_per_window=1_000 * scale,
        batch_events=100 * scale,
        page_size=500 * scale,
        tenant_knobs={"token_lifetime_seconds": 1},
        client_knobs={"requests_per_minute": 50},
        what="Entra ID tokens live 1 s; the client's requests are 1.2 s apart, each window takes several",
    )
    run.fault_now()
    run.run_windows()
    stats = lab.tenant_stats(run.tenant.tenant_id)
    expired = int(stats["tokens_issued"]) - run.fetch_tries
    problems = [] if expired >= len(run.windows) else [f"only {expired} tokens expired while a window was read"]
    return run.row(faults=max(expired, 0), problems=problems)


def _token_revoked(lab: FaultLab, scale: int) -> FaultRow:
    # Tokens MSAL caches (an hour) revoked after every 2 requests: the next request is refused (401) mid-window, and
    # the client answers with one forced refresh.
    run = RunsCase(
        lab,
        "token-revoked",
        "alerts",
        scale,
        records_per_window=300 * scale,
        batch_events=100 * scale,
        tenant_knobs={"revoke_tokens_after": 2},
        what="Entra ID tokens are revoked after every 2 MDCA requests: 401s mid-window",
    )
    run.fault_now()
    run.run_windows()
    refused = int(lab.tenant_stats(run.tenant.tenant_id)["4xx"])  # each a 401: a revoked token
    problems = [] if refused >= len(run.windows) else [f"only {refused} requests met a revoked token"]
    return run.row(faults=refused, problems=problems)


def _relay_drop(lab: FaultLab, scale: int) -> FaultRow:
    batch = 100 * scale

    def arm(index: int) -> None:
        # Cut the next connection inside its batch: a flattened alert is about 1 KB on the wire, so 150 bytes an
        # event of the batch lands after some of its lines (which the relay keeps) and before its end.
        lab.devo_faults(drop_after_bytes=batch * 150)

    run = RunsCase(
        lab,
        "relay-drop",
        "alerts",
        scale,
        records_per_window=300 * scale,
        batch_events=batch,
        arm_ship=arm,
        what="the TLS relay cuts the connection (TCP reset) part of the way through each window's second batch",
    )
    run.run_windows()
    drops = run.faults_fired()[1]["drop_after_bytes"]
    return run.row(edge_faults=drops)


def _relay_refusing(lab: FaultLab, scale: int) -> FaultRow:
    run = RunsCase(
        lab,
        "relay-refusing",
        "activities",
        scale,
        records_per_window=1_000 * scale,
        batch_events=100 * scale,
        page_size=5_000,
        arm_ship=lambda index: lab.devo_faults(refuse_connections=8),
        what="the TLS relay refuses 8 connections in a row after each window's first batch (sender retries 5)",
    )
    run.run_windows()
    return run.row()


_DEVO_HTTP_STORM = ["503", "429", "500", "502", "reset", "503", "429-no-retry-after"]


def _devo_http_5xx(lab: FaultLab, scale: int) -> FaultRow:
    run = RunsCase(
        lab,
        "devo-http-5xx",
        "activities",
        scale,
        transport="http",
        records_per_window=1_000 * scale,
        batch_events=100 * scale,
        page_size=5_000,
        arm_ship=lambda index: lab.devo_faults(fault_queue=_DEVO_HTTP_STORM),
        what="Devo's HTTP API answers 503, 429, 500, 502, a reset, 503, 429 after each window's first batch",
    )
    run.run_windows()
    return run.row()


def _devo_reset_after_store(lab: FaultLab, scale: int) -> FaultRow:
    run = RunsCase(
        lab,
        "devo-reset-after-store",
        "alerts",
        scale,
        transport="http",
        records_per_window=300 * scale,
        batch_events=100 * scale,
        arm_ship=lambda index: lab.devo_faults(fault_queue=["reset-after-store"]),
        what="Devo's HTTP API stores each window's second batch, then resets instead of answering",
    )
    run.run_windows()
    stored_then_reset = run.faults_fired()[1]["http_reset-after-store"]
    return run.row(edge_faults=stored_then_reset)


def _duplicate_runs(lab: FaultLab, scale: int) -> FaultRow:
    run = RunsCase(
        lab,
        "duplicate-runs",
        "activities",
        scale,
        records_per_window=1_000 * scale,
        batch_events=100 * scale,
        page_size=5_000,
        what="each window run again (fetch and ship: a cleared run), then each shipped again (a retry after success)",
    )
    manifests = run.run_windows()
    run.fault_now()
    for index in range(len(run.windows)):
        run.ship(index, run.fetch(index))  # a cleared run or a backfill: fetched and staged again, then shipped
        run.ship(index, manifests[index])  # the ship task once more on what was shipped
    return run.row(faults=2 * len(run.windows))


def _concurrent_ships(lab: FaultLab, scale: int) -> FaultRow:
    run = RunsCase(
        lab,
        "concurrent-ships",
        "activities",
        scale,
        records_per_window=1_000 * scale,
        batch_events=100 * scale,
        page_size=5_000,
        what="each window shipped by two ship tasks at once (a task taken for dead while it still runs, and its retry)",
    )
    run.fault_now()
    for index in range(len(run.windows)):
        manifest = run.fetch(index)
        errors: list[BaseException] = []

        def ship(index: int = index, manifest: Path = manifest, errors: list[BaseException] = errors) -> None:
            try:
                run.ship(index, manifest)
            except BaseException as exc:  # reported below: a thread's exception would be lost
                errors.append(exc)

        threads = [threading.Thread(target=ship, name=f"ship-{index}-{k}") for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise CaseError(f"a concurrent ship of window {index + 1} failed: {errors[0]!r}") from errors[0]
    return run.row(faults=len(run.windows))


@dataclass(frozen=True)
class Case:
    """One fault case: ``run(scale)`` starts a lab of its own unless given one, and returns its row."""

    name: str
    body: Callable[[FaultLab, int], FaultRow]

    def run(self, scale: int, lab: FaultLab | None = None) -> FaultRow:
        if lab is not None:
            return self.body(lab, scale)
        with tempfile.TemporaryDirectory(prefix="fault-matrix-") as workdir, FaultLab(Path(workdir)) as own:
            return self.body(own, scale)


#: The in-task cases, in the order of the table.
CASES: list[Case] = [
    Case("mdca-429-storm", _429_storm),
    Case("mdca-5xx", _mdca_5xx),
    Case("mdca-reset", _mdca_reset),
    Case("mdca-truncate", _mdca_truncate),
    Case("mdca-flaky", _mdca_flaky),
    Case("token-expiry", _token_expiry),
    Case("token-revoked", _token_revoked),
    Case("relay-drop", _relay_drop),
    Case("relay-refusing", _relay_refusing),
    Case("devo-http-5xx", _devo_http_5xx),
    Case("devo-reset-after-store", _devo_reset_after_store),
    Case("duplicate-runs", _duplicate_runs),
    Case("concurrent-ships", _concurrent_ships),
]


def run_cases(cases: Sequence[Case], scale: int, *, workdir: Path | None = None) -> list[FaultRow]:
    """Every case, one after the other, on one lab; a case that breaks down gives a failed row saying why."""
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as temp, FaultLab(workdir or Path(temp)) as lab:
        rows = []
        for case in cases:
            began = time.monotonic()
            try:
                rows.append(case.run(scale, lab))
            except Exception as exc:
                rows.append(_broken(case.name, exc, time.monotonic() - began))
            finally:
                lab.clear_faults()
        return rows


def _broken(name: str, exc: BaseException, seconds: float) -> FaultRow:
    return FaultRow(
        case=name,
        windows=0,
        records=0,
        lost=0,
        duplicated=0,
        tls_edge_duplicates=0,
        human_actions=0,
        seconds_to_heal=float("nan"),
        wall_seconds=round(seconds, 2),
        problems=(f"the case broke down: {type(exc).__name__}: {exc}",),
    )
