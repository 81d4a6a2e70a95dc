"""Catch-up at the API's pace (issue 16): a backlog on a real Airflow 3, and live windows' freshness (not a test).

Two phases per DAG shape, each on a fresh Airflow 3 (SQLite, LocalExecutor; tests/harness/airflow_stack.py) against
the emulators (MDCA throttled at 30 requests a minute as MDCA is, with its realistic time model; Entra ID; Devo over
mutual TLS):

- **catch-up**: every windowed service (activities, alerts, files) has ``--windows`` windows at its default period
  behind it, as after a scheduler that was down; the DAGs are unpaused and the scheduler catches up. Printed: windows,
  MDCA requests, wall time (unpause to the last backlog window's end), the API bound (requests at 30 a minute), their
  ratio, Airflow's CPU-seconds per window (every Airflow process: scheduler, dag-processor, triggerer, api-server,
  task processes), Entra ID tokens issued and 429 answers; then the CPU ceiling (windows a minute Airflow's CPU
  alone would allow on this machine's cores) beside the API's pace.
- **live**: windows of one minute, run as they end, for ``--live-minutes``; freshness is the time from a window's
  end + lag to its ``ship`` task's end (Devo acknowledged its last event): median and p95.

Both phases check that Devo holds every record of every window run exactly once (the emulator's ground truth).
``current`` is the provider's DAG shape; ``classic`` the shape before issue 16 (bench/classic_shape.py) on the same
machine, for comparison. Exits 1 when a target of the current shape is missed (wall ≤ 1.10 x the API bound,
≤ 1.5 Airflow CPU-s a window, freshness median ≤ 20 s and p95 ≤ 60 s, zero 429s, exactly once).

    make bench-catchup                                          # both shapes, 100 windows a service, 8 live minutes
    .venv/bin/python bench/bench_catchup.py --shapes current --windows 20 --live-minutes 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.harness, as scripts/demo.py does

import yaml

from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.data import HOUR_MS
from mdca_emulator.process import EmulatorProcess
from tests.harness.airflow_stack import AIRFLOW_V3, AirflowStack, DagRun, StackError
from tests.harness.delivery import DevoAdmin, Row, build_row

sys.path.insert(0, str(ROOT / "bench"))
from faults import machine_line  # bench/faults.py: the machine line every benchmark prints

VAR = ROOT / "var" / "bench-catchup"
DAGS = ROOT / "bench" / "catchup_dags"
WINDOWED = tuple(name for name, service in SERVICES.items() if service.windowed)
MAX_EVENTS_PER_ALERT = 1000
API_PER_MINUTE = 30
LIVE_PERIOD = timedelta(minutes=1)
# Records an hour: about one request a window at the default periods and page sizes (a window's overhead is what is
# measured; a window of many pages is paced by MDCA whatever Airflow does).
HOURLY: dict[str, tuple[float, tuple[int, ...]]] = {
    "activities": (600, (1, 1, 2, 1, 3)),
    "alerts": (24, (1, 1, 2)),
    "files": (40, (1, 1, 1, 2)),
}
TARGETS = {"ratio": 1.10, "cpu_per_window": 1.5, "fresh_median": 20.0, "fresh_p95": 60.0}
#: Airflow's settings for both shapes: the LocalExecutor's slots (a catch-up's fetch, flatten and ship of several
#: windows at once) on this 2-core machine.
PARALLELISM = 6


@dataclass
class Phase:
    """What one phase of one shape measured."""

    shape: str
    name: str
    windows: int = 0
    requests: int = 0
    throttled: int = 0
    tokens: int = 0
    wall: float = 0.0
    airflow_cpu: float = 0.0
    emulator_cpu: float = 0.0
    machine_cpu: float = 0.0
    freshness: list[float] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def api_bound(self) -> float:
        return self.requests * 60.0 / API_PER_MINUTE

    @property
    def ratio(self) -> float:
        return self.wall / self.api_bound if self.api_bound else 0.0

    @property
    def cpu_per_window(self) -> float:
        return self.airflow_cpu / self.windows if self.windows else 0.0

    @property
    def exact(self) -> bool:
        return all(row.ok for row in self.rows) and not self.failed

    def quantile(self, q: float) -> float:
        ordered = sorted(self.freshness)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the world -----------------------------------------------------------------------------------------------------


def tenant(services: list[str], now: datetime, backlog: timedelta) -> TenantConfig:
    """The emulated tenant: data from before the backlog on, the realistic time model, 30 requests a minute."""
    start = (int(now.timestamp() * 1000) // HOUR_MS) * HOUR_MS - int(backlog.total_seconds() * 1000) - 24 * HOUR_MS
    data: dict[str, TimeSeriesConfig | SnapshotConfig] = {
        name: TimeSeriesConfig([Rate(HOURLY[name][0], HOURLY[name][1], start)]) for name in services if name in HOURLY
    }
    return TenantConfig(tenant_id="tenant-bench", seed=16, services=data, requests_per_minute=API_PER_MINUTE)


def floor(moment: datetime, period: timedelta) -> datetime:
    seconds = int(period.total_seconds())
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, tz=timezone.utc)


def collector_config(services: dict[str, tuple[timedelta, datetime]]) -> dict[str, Any]:
    """Each service enabled with its period and first window; every other service off; defaults otherwise."""
    entries: dict[str, Any] = {
        name: {
            "enabled": True,
            "period": int(period.total_seconds()),
            "historic_date_utc": first.isoformat().replace("+00:00", "Z"),
        }
        for name, (period, first) in services.items()
    }
    entries.get("alerts", {}).update({"max_events_per_alert": MAX_EVENTS_PER_ALERT})
    return {"defaults": {"enabled": False}, "services": entries}


def process_cpu_seconds(pid: int) -> float:
    """CPU-seconds of a process and of its reaped children (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime


def airflow_cpu_seconds(stack: AirflowStack) -> float:
    """CPU-seconds of every process of the stack, with their reaped children's (tasks run in children).

    A process that ended counts in its parent's figure once reaped, in its own until then (a zombie is listed).
    """
    return sum(process_cpu_seconds(pid) for pid in stack.process_tree())


def machine_busy_seconds() -> float:
    """CPU-seconds every process of the machine spent (all cores), from ``/proc/stat``: the cross-check."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(value) for value in fields]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class World:
    """The emulators and one Airflow 3 of one phase; a context manager that stops both."""

    def __init__(self, home: Path, shape: str, services: dict[str, tuple[timedelta, datetime]], now: datetime):
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        backlog = max(now - first for _, first in services.values())
        self.tenant = tenant(list(services), now, backlog)
        self.emulator = EmulatorProcess(home / "emulator", tenants=[self.tenant.to_dict()]).start()
        config = home / "mdca_collector.yaml"
        config.write_text(yaml.safe_dump(collector_config(services), sort_keys=False), encoding="utf-8")
        mdca = self.emulator.connection()
        if shape == "classic":  # one Entra ID token per fetch task, as before issue 16
            mdca.setdefault("extra", {})["share_token"] = False
        env = {
            "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(mdca),
            "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(self.emulator.devo_connection()),
            "MDCA_COLLECTOR_CONFIG": str(config),
            "MDCA_BENCH_SHAPE": shape,
        }
        self.services = services
        self.stack = AirflowStack(home / "airflow-home", DAGS, env, parallelism=PARALLELISM)
        try:
            self.stack.start()
            self.stack.wait_for_dags(self.dag_ids)
        except BaseException:
            self.close()
            raise
        self.devo = DevoAdmin(self.emulator.info["devo"])

    @property
    def dag_ids(self) -> list[str]:
        return [f"mdca_{name}" for name in self.services]

    def finished_runs(self, dag_id: str, last: datetime) -> int:
        """How many runs of ``dag_id`` up to the logical date ``last`` finished (one count query)."""
        body = {
            "dag_ids": [dag_id],
            "states": ["success", "failed"],
            "logical_date_lte": last.isoformat(),
            "page_limit": 1,
        }
        answer = self.stack.api("POST", "/api/v2/dags/~/dagRuns/list", json=body)
        return int(answer["total_entries"])

    def emulator_cpu(self) -> float:
        proc = self.emulator._proc
        return process_cpu_seconds(proc.pid) if proc is not None else 0.0

    def mdca_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.emulator.admin("GET", f"tenants/{self.tenant.tenant_id}/stats")
        return stats

    def settle(self, timeout: float) -> tuple[dict[str, list[DagRun]], list[Row]]:
        """Pause the DAGs, wait until no task runs, then the exactly-once rows over every window shipped.

        Paused, the scheduler starts nothing more; a task already running finishes. A window counts once its ship
        task succeeded (its run may stay "running", paused before its last bookkeeping); a window whose ship never
        started has nothing in Devo. So the comparison never meets a window half delivered.
        """
        self.stack.pause(*self.dag_ids)
        deadline = time.monotonic() + timeout
        busy = {"dag_ids": self.dag_ids, "state": ["running", "queued", "restarting"], "page_limit": 1}
        while self.stack.api("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", json=busy)["total_entries"]:
            if time.monotonic() > deadline:
                raise StackError(f"tasks still running {timeout:.0f}s after the DAGs were paused")
            time.sleep(2)
        shipped = self.ship_ends()
        runs = {
            name: [
                dataclasses.replace(run, state="success") if (f"mdca_{name}", run.logical_date) in shipped else run
                for run in self.runs_of(f"mdca_{name}")
            ]
            for name in self.services
        }
        rows = [
            build_row(
                name,
                [run for run in name_runs if run.state in ("success", "failed")],
                self.services[name][0],
                self.emulator,
                self.tenant,
                self.devo,
                max_events_per_alert=MAX_EVENTS_PER_ALERT,
            )
            for name, name_runs in runs.items()
        ]
        return runs, rows

    def ship_ends(self) -> dict[tuple[str, datetime], datetime]:
        """``(dag_id, logical date) -> end of its ship task`` for every finished ship."""
        ends = {}
        for ti in self.ship_instances():
            logical = datetime.fromisoformat(ti["logical_date"].replace("Z", "+00:00"))
            ends[(ti["dag_id"], logical)] = datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00"))
        return ends

    def runs_of(self, dag_id: str, first: datetime | None = None) -> list[DagRun]:
        """Every run of ``dag_id`` from the logical date ``first`` (all of them without it)."""
        return self.stack.dag_runs(dag_id, first)

    def ship_instances(self) -> list[dict[str, Any]]:
        """Every successful ship task instance, page by page (the api-server caps a page at 100)."""
        found: list[dict[str, Any]] = []
        while True:
            body = {
                "dag_ids": self.dag_ids,
                "task_ids": ["ship"],
                "state": ["success"],
                "page_limit": 100,
                "page_offset": len(found),
                "order_by": "id",
            }
            answer = self.stack.api("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", json=body)
            found.extend(answer["task_instances"])
            if not answer["task_instances"] or len(found) >= answer["total_entries"]:
                return found

    def close(self) -> None:
        try:
            self.stack.stop()
        finally:
            self.emulator.stop()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the phases ----------------------------------------------------------------------------------------------------


def catch_up(shape: str, services: list[str], windows: int, timeout: float, say: Any) -> Phase:
    """A backlog of ``windows`` windows a service at the default periods, caught up by the scheduler."""
    now = datetime.now(timezone.utc)
    plan = {}
    for name in services:
        period = SERVICES[name].default_period
        plan[name] = (period, floor(now, period) - windows * period)
    phase = Phase(shape, "catch-up", windows=windows * len(services))
    with World(VAR / f"{shape}-catchup", shape, plan, now) as world:
        say(f"  {shape}: Airflow up; {windows} windows behind for {', '.join(services)}; unpausing")
        stats0, cpu0 = world.mdca_stats(), airflow_cpu_seconds(world.stack)
        emulator0, machine0 = world.emulator_cpu(), machine_busy_seconds()
        began = time.time()
        world.stack.unpause(*world.dag_ids)
        last = {name: first + (windows - 1) * period for name, (period, first) in plan.items()}
        deadline = time.monotonic() + timeout
        # One count a DAG every few seconds: the polling's own cost lands on Airflow's api-server, which is measured.
        while not all(world.finished_runs(f"mdca_{name}", last[name]) >= windows for name in services):
            if time.monotonic() > deadline:
                raise StackError(f"{shape}: backlog not caught up after {timeout:.0f}s")
            time.sleep(5)
        done = {
            name: [
                run
                for run in world.runs_of(f"mdca_{name}", plan[name][1])
                if run.finished and run.logical_date is not None and run.logical_date <= last[name]
            ]
            for name in services
        }
        cpu1, stats1 = airflow_cpu_seconds(world.stack), world.mdca_stats()
        # Windows that came due meanwhile ran too (their work is in the CPU and the requests): count them.
        phase.windows = sum(run.finished for name in services for run in world.runs_of(f"mdca_{name}", plan[name][1]))
        phase.emulator_cpu = world.emulator_cpu() - emulator0
        phase.machine_cpu = machine_busy_seconds() - machine0
        ends = [run.end_date.timestamp() for runs in done.values() for run in runs if run.end_date]
        phase.wall = max(ends) - began
        phase.airflow_cpu = cpu1 - cpu0
        phase.requests = sum(stats1["requests"].values()) - sum(stats0["requests"].values())
        phase.throttled = stats1["throttled"] - stats0["throttled"]
        phase.tokens = stats1["tokens_issued"] - stats0["tokens_issued"]
        phase.failed = [f"{r.dag_id} {r.run_id}" for runs in done.values() for r in runs if r.state != "success"]
        _, phase.rows = world.settle(timeout)
    return phase


def live(shape: str, services: list[str], minutes: float, timeout: float, say: Any) -> Phase:
    """Windows of a minute run as they end: freshness from a window's end + lag to its ship's end."""
    now = datetime.now(timezone.utc)
    first = floor(now, LIVE_PERIOD) + LIVE_PERIOD
    plan = {name: (LIVE_PERIOD, first) for name in services}
    phase = Phase(shape, "live")
    with World(VAR / f"{shape}-live", shape, plan, now) as world:
        world.stack.unpause(*world.dag_ids)
        stats0 = world.mdca_stats()
        say(f"  {shape}: Airflow up; live one-minute windows from {first:%H:%M} UTC for {minutes:g} minutes")
        # Until the last window of the phase has ended, waited its lag and shipped (half a minute for that).
        lag = max(SERVICES[name].default_lag for name in services)
        last_ready = first + timedelta(minutes=minutes) + lag + timedelta(seconds=30)
        time.sleep(max(0.0, (last_ready - datetime.now(timezone.utc)).total_seconds()))
        runs, phase.rows = world.settle(timeout)
        ends = world.ship_ends()
        for name in services:
            lag = SERVICES[name].default_lag
            for run in runs[name]:
                assert run.logical_date is not None
                shipped = ends.get((f"mdca_{name}", run.logical_date))
                if shipped is not None:
                    phase.freshness.append((shipped - (run.logical_date + LIVE_PERIOD + lag)).total_seconds())
                if run.state == "failed":
                    phase.failed.append(f"{run.dag_id} {run.run_id}")
        phase.windows = len(phase.freshness)
        stats1 = world.mdca_stats()
        phase.throttled = stats1["throttled"] - stats0["throttled"]
        phase.requests = sum(stats1["requests"].values()) - sum(stats0["requests"].values())
        phase.tokens = stats1["tokens_issued"] - stats0["tokens_issued"]
    return phase


# -- the report ----------------------------------------------------------------------------------------------------


def catch_up_lines(phase: Phase) -> list[str]:
    cores = os.cpu_count() or 1
    ceiling = 60.0 * cores / phase.cpu_per_window if phase.cpu_per_window else float("inf")
    api_pace = 60.0 * phase.windows / phase.api_bound if phase.api_bound else float("inf")
    return [
        f"  {phase.shape:<8} windows {phase.windows:>4}  requests {phase.requests:>4}  wall {phase.wall:7.1f}s  "
        f"API bound {phase.api_bound:7.1f}s  ratio {phase.ratio:5.2f}x  Airflow CPU {phase.airflow_cpu:7.1f}s "
        f"({phase.cpu_per_window:4.2f} s/window)  tokens {phase.tokens:>4}  429s {phase.throttled}  "
        f"{'exactly once' if phase.exact else 'WRONG'}",
        f"  {'':<8} CPU ceiling {ceiling:6.1f} windows/min on {cores} cores (Airflow's CPU alone)"
        f" vs the API's pace {api_pace:5.1f} windows/min",
        f"  {'':<8} the machine was busy {phase.machine_cpu:6.1f} CPU-s meanwhile: Airflow {phase.airflow_cpu:.1f}, "
        f"the emulators {phase.emulator_cpu:.1f}, everything else "
        f"{phase.machine_cpu - phase.airflow_cpu - phase.emulator_cpu:.1f} (this script's polling, other work)",
    ]


def row_lines(phase: Phase) -> list[str]:
    """Per Devo table, when a phase was not exactly once: what MDCA stored, what Devo received, and the difference."""
    if phase.exact:
        return []
    lines = [
        f"    {row.tag}: runs {row.runs} (failed {row.failed_runs}), expected {sum(row.expected.values())}, "
        f"delivered {sum(row.delivered.values())}, duplicates {row.duplicates}, missing {row.missing}, "
        f"unexpected {row.unexpected}"
        for row in phase.rows
    ]
    return lines + [f"    failed: {', '.join(phase.failed)}"] * bool(phase.failed)


def live_lines(phase: Phase) -> list[str]:
    return [
        f"  {phase.shape:<8} windows {phase.windows:>4}  freshness median {phase.quantile(0.5):6.1f}s  "
        f"p95 {phase.quantile(0.95):6.1f}s  max {max(phase.freshness, default=float('nan')):6.1f}s  "
        f"requests {phase.requests:>4}  tokens {phase.tokens:>4}  429s {phase.throttled}  "
        f"{'exactly once' if phase.exact else 'WRONG'}"
    ]


def misses(catch: Phase | None, fresh: Phase | None) -> list[str]:
    """The targets the current shape missed, in words."""
    out = []
    for phase in (p for p in (catch, fresh) if p is not None):
        if not phase.exact:
            bad = [r.tag for r in phase.rows if not r.ok]
            out.append(f"{phase.name}: not exactly once ({', '.join(bad) or ''} {', '.join(phase.failed)})")
        if phase.throttled:
            out.append(f"{phase.name}: {phase.throttled} answers 429")
    if catch is not None:
        if catch.ratio > TARGETS["ratio"]:
            out.append(f"catch-up: wall {catch.ratio:.2f}x the API bound (target ≤ {TARGETS['ratio']}x)")
        if catch.cpu_per_window > TARGETS["cpu_per_window"]:
            out.append(f"catch-up: {catch.cpu_per_window:.2f} Airflow CPU-s a window (target ≤ 1.5)")
    if fresh is not None:
        if not fresh.freshness:
            out.append("live: no window delivered")
        elif fresh.quantile(0.5) > TARGETS["fresh_median"] or fresh.quantile(0.95) > TARGETS["fresh_p95"]:
            out.append(
                f"live: freshness median {fresh.quantile(0.5):.1f}s p95 {fresh.quantile(0.95):.1f}s "
                "(targets ≤ 20 s, ≤ 60 s)"
            )
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops Airflow and the emulators (the worlds' context managers)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=100, help="backlog windows a service (default 100)")
    parser.add_argument("--services", default=",".join(WINDOWED), help="windowed services (default all)")
    parser.add_argument("--shapes", default="current,classic", help="current, classic or both (default both)")
    parser.add_argument("--live-minutes", type=float, default=8, help="the live phase's length (0: none)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a phase may take (default 3600)")
    args = parser.parse_args(argv)
    if not AIRFLOW_V3:
        print("The catch-up benchmark runs Airflow 3 (make bench-catchup uses its environment).", file=sys.stderr)
        return 2
    services = [name.strip() for name in args.services.split(",") if name.strip()]
    unknown = [name for name in services if name not in WINDOWED]
    if unknown:
        parser.error(f"--services: {unknown} are not windowed services ({', '.join(WINDOWED)})")
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:7.1f}s] {text}", flush=True)

    print(machine_line())
    print(f"Airflow 3 on SQLite, LocalExecutor with {PARALLELISM} slots; MDCA at {API_PER_MINUTE} requests a minute")
    results: dict[str, tuple[Phase | None, Phase | None]] = {}
    for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        say(f"{shape}: catch-up of {args.windows} windows a service")
        catch = catch_up(shape, services, args.windows, args.timeout, say) if args.windows else None
        if catch:
            for line in catch_up_lines(catch) + row_lines(catch):
                say(line)
        fresh = live(shape, services, args.live_minutes, args.timeout, say) if args.live_minutes else None
        if fresh:
            for line in live_lines(fresh) + row_lines(fresh):
                say(line)
        results[shape] = (catch, fresh)
    print("\ncatch-up (default periods):")
    for catch, _ in results.values():
        if catch:
            print("\n".join(catch_up_lines(catch)))
    print("live (one-minute windows, freshness = ship's end - (window end + lag)):")
    for _, fresh in results.values():
        if fresh:
            print("\n".join(live_lines(fresh)))
    if "current" not in results:
        return 0
    missed = misses(*results["current"])
    print("\nEvery target met." if not missed else "\nMissed:\n  " + "\n  ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
