"""The demo: every service's DAG on a real Airflow 3, backfilling the last six hours from the emulators to Devo.

Starts the emulators in a child process (MDCA throttled at 30 requests a minute as MDCA is, Entra ID, the Devo relay
over mutual TLS), then Airflow 3 on SQLite (scheduler, dag-processor, triggerer, api-server; LocalExecutor) in a
fresh home under ``var/demo``, with the connections ``mdca_default`` and ``devo_default`` pointing at the emulators
and a collector config with every service enabled. The emulated tenant runs MDCA's real time model: activities are
stored seconds to days after they happen, files at the next scan of their app, alerts are resolved after they are
raised. It backfills each DAG over the last six hours with ``airflow backfill create``, waits, and prints per Devo
table what MDCA stored in those windows (the emulator's ground truth; for alerts, the flattened events of the alerts
raised in them and of those resolved in them), what Devo received, duplicates, missing records and the elapsed time,
then how many of the activities delivered had been stored late. Exits non-zero if anything is missing, doubled or
unexpected. Stopping it (at the end, Ctrl-C or SIGTERM) leaves no
process behind.

    make demo                              # run once and stop everything
    make demo DEMO_ARGS=--keep-running     # then leave Airflow and the emulators up (the DAGs go live); Ctrl-C stops
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The Airflow harness lives with the tests (tests/harness), not in the provider. `python scripts/demo.py` puts
# scripts/ on sys.path, not the repository root, so the root goes first: tests.harness is then this checkout's,
# whatever else is installed.
sys.path.insert(0, str(ROOT))

import requests
import yaml

from airflow_provider_mdca.services import SERVICES
from mdca_emulator import Rate, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.data import HOUR_MS
from mdca_emulator.process import EmulatorProcess
from tests.harness.airflow_stack import AIRFLOW_V3, AirflowStack, DagRun, StackError
from tests.harness.delivery import DevoAdmin, Row, build_row
from tests.harness.late_world import late_share

VAR = ROOT / "var" / "demo"
HOURS = 6
# Windows for the demo: an hour for every windowed service (six windows each), one six-hour window for the snapshots
# (entities, subnets: read whole, one snapshot). The collector's defaults (5 minutes for activities and alerts) would
# make 144 runs of 6 hours: right for a live tenant, too many task processes for a demo on a small machine.
PERIOD = timedelta(hours=1)
SNAPSHOT_PERIOD = timedelta(hours=6)
#: The snapshot services, from the registry: the only ones whose windows differ from the defaults.
SNAPSHOTS = tuple(name for name, service in SERVICES.items() if not service.windowed)
#: Every service, windowed ones first (the order of the backfills and of the report).
DEMO_SERVICES = sorted(SERVICES, key=lambda name: name in SNAPSHOTS)
MAX_EVENTS_PER_ALERT = 1000
# The tenant's data: records an hour (and cluster sizes) of the windowed services, records of the snapshots. A service
# without a figure here gets the alerts' or the subnets' figure: every service of the registry is in the demo.
HOURLY: dict[str, tuple[float, tuple[int, ...]]] = {
    "activities": (2500, (1, 1, 2, 1, 3, 1, 1, 5)),
    "alerts": (50, (1, 1, 2)),
    "files": (150, (1, 1, 1, 2)),
}
COUNTS = {"entities": 300, "data_enrichment": 40}


def demo_tenant() -> TenantConfig:
    """The emulated tenant: a day of history before the demo's range, data running on; 30 requests a minute."""
    start = (int(time.time() * 1000) // HOUR_MS - 2 * 24) * HOUR_MS
    data: dict[str, TimeSeriesConfig | SnapshotConfig] = {}
    for name in DEMO_SERVICES:
        if name in SNAPSHOTS:
            data[name] = SnapshotConfig(COUNTS.get(name, COUNTS["data_enrichment"]))
        else:
            per_hour, clusters = HOURLY.get(name, HOURLY["alerts"])
            data[name] = TimeSeriesConfig([Rate(per_hour, clusters, start)])
    return TenantConfig(
        tenant_id="tenant-demo",
        seed=1,
        services=data,
        requests_per_minute=30,
    )


def floor(moment: datetime, period: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``period`` since the epoch."""
    seconds = int(period.total_seconds())
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, tz=timezone.utc)


def period_of(service: str) -> timedelta:
    return SNAPSHOT_PERIOD if service in SNAPSHOTS else PERIOD


def first_window(now: datetime, period: timedelta) -> datetime:
    """The start of the first window: ``now - 6 h`` rounded down to the period."""
    return floor(now - timedelta(hours=HOURS), period)


@dataclass
class Range:
    """What one DAG backfills: windows of ``period`` from ``start`` that have ended by ``now``."""

    service: str
    period: timedelta
    start: datetime
    windows: int

    @property
    def dag_id(self) -> str:
        return f"mdca_{self.service}"

    @property
    def last_logical(self) -> datetime:
        return self.start + self.period * (self.windows - 1)

    @property
    def end(self) -> datetime:
        return self.start + self.period * self.windows


def plan(now: datetime) -> dict[str, Range]:
    """Each service's backfill: from ``now - 6 h`` rounded down to its period, every window ended by now."""
    ranges = {}
    for service in DEMO_SERVICES:
        period = period_of(service)
        start = first_window(now, period)
        windows = int((now - start) / period)
        ranges[service] = Range(service, period, start, windows)
    return ranges


def windows(now: datetime, period: timedelta) -> dict[str, Any]:
    """The collector settings of windows of ``period`` from the first window on."""
    start = first_window(now, period)
    return {"period": int(period.total_seconds()), "historic_date_utc": start.isoformat().replace("+00:00", "Z")}


def collector_config(now: datetime) -> dict[str, Any]:
    """Every service enabled with the defaults' windows (an hour); only the snapshots override them."""
    services: dict[str, Any] = {name: windows(now, SNAPSHOT_PERIOD) for name in SNAPSHOTS}
    services["alerts"] = {"max_events_per_alert": MAX_EVENTS_PER_ALERT}
    defaults = {"enabled": True, **windows(now, PERIOD), "retry_delay": 10, "max_active_runs": 2}
    return {"defaults": defaults, "services": services}


# -- what Devo holds ------------------------------------------------------------------------------------------------


def late_activities(devo: DevoAdmin) -> tuple[int, int, float]:
    """Of the activities in Devo: how many, how many MDCA stored more than an hour late, and the latest (hours)."""
    events = devo.get(f"tags/{SERVICES['activities'].devo_table}/events")["events"]
    return late_share(events, "timestamp", "created")


# -- running -------------------------------------------------------------------------------------------------------


def wait_for_all(
    stack: AirflowStack, ranges: dict[str, Range], say: Callable[[str], None], timeout: float
) -> dict[str, list[DagRun]]:
    """Wait until every backfilled window has a finished run; print progress when it changes."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        runs = {name: stack.dag_runs(span.dag_id, span.start, span.last_logical) for name, span in ranges.items()}
        done = {name: sum(run.finished for run in runs[name]) for name in ranges}
        line = "  ".join(f"{name} {done[name]}/{span.windows}" for name, span in ranges.items())
        if line != last:
            say(f"  finished runs: {line}")
            last = line
        if all(done[name] >= span.windows for name, span in ranges.items()):
            return runs
        if time.monotonic() > deadline:
            raise StackError(f"runs not finished after {timeout:.0f}s: {line}")
        time.sleep(3)


def settle(
    stack: AirflowStack,
    ranges: dict[str, Range],
    emulator: EmulatorProcess,
    tenant: TenantConfig,
    devo: DevoAdmin,
    began: float,
    timeout: float,
) -> tuple[list[Row], dict[str, list[DagRun]]]:
    """The report over every run of each DAG, once no run is in flight and none started while Devo was read.

    The backfilled windows are the runs to report; a scheduled run joins them only when a window ended during the demo
    (the DAGs are live: catchup is on). It is waited for and reported too, never half-counted.
    """
    deadline = time.monotonic() + timeout

    def snapshot() -> dict[str, list[DagRun]]:
        return {name: stack.dag_runs(span.dag_id) for name, span in ranges.items()}

    while True:
        before = snapshot()
        if all(run.finished for runs in before.values() for run in runs):
            rows = [
                build_row(
                    name,
                    runs,
                    period_of(name),
                    emulator,
                    tenant,
                    devo,
                    max_events_per_alert=MAX_EVENTS_PER_ALERT,
                    began=began,
                )
                for name, runs in before.items()
            ]
            if snapshot() == before:
                return rows, before
        if time.monotonic() > deadline:
            raise StackError(f"runs still in flight after {timeout:.0f}s")
        time.sleep(3)


def report(rows: list[Row], say: Callable[[str], None]) -> None:
    header = f"{'Devo table':<51}{'runs':>5}{'in MDCA':>9}{'delivered':>11}{'dupes':>7}{'missing':>9}"
    header += f"{'unexpected':>12}{'elapsed':>10}"
    say(header)
    say("-" * len(header))
    for row in rows:
        say(
            f"{row.tag:<51}{row.runs:>5}{sum(row.expected.values()):>9}{sum(row.delivered.values()):>11}"
            f"{row.duplicates:>7}{row.missing:>9}{row.unexpected:>12}{row.elapsed:>9.1f}s"
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--keep-running", action="store_true", help="keep Airflow and the emulators up until Ctrl-C")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the runs (default 900)")
    args = parser.parse_args(argv)
    if not AIRFLOW_V3:
        print("The demo runs Airflow 3 (make demo uses the Airflow 3 environment).", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM both stop everything (SIGINT explicitly: a shell may start the demo with it ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    began = time.monotonic()

    def say(text: str = "") -> None:
        print(text, flush=True)

    def stamp(text: str) -> None:
        say(f"[{time.monotonic() - began:6.1f}s] {text}")

    shutil.rmtree(VAR, ignore_errors=True)  # a fresh Airflow home and an empty Devo store for every demo
    VAR.mkdir(parents=True)
    tenant = demo_tenant()
    rows: list[Row] = []
    stack: AirflowStack | None = None
    try:
        with EmulatorProcess(VAR / "emulator", tenants=[tenant.to_dict()]) as emulator:
            devo_info = emulator.info["devo"]
            stamp(
                f"Emulators up: MDCA + Entra ID at {emulator.info['base_url']} (30 requests a minute, as MDCA), "
                f"Devo relay {devo_info['relay_host']}:{devo_info['relay_port']} (mutual TLS)"
            )
            now = datetime.now(timezone.utc)
            ranges = plan(now)
            config = VAR / "mdca_collector.yaml"
            config.write_text(yaml.safe_dump(collector_config(now), sort_keys=False), encoding="utf-8")
            env = {
                "AIRFLOW_CONN_MDCA_DEFAULT": json.dumps(emulator.connection()),
                "AIRFLOW_CONN_DEVO_DEFAULT": json.dumps(emulator.devo_connection()),
                "MDCA_COLLECTOR_CONFIG": str(config),
            }
            stack = AirflowStack(VAR / "airflow-home", ROOT / "dags", env, parallelism=3)
            stamp(f"Starting Airflow 3 (SQLite, LocalExecutor) in {stack.home} ...")
            with stack:
                stamp(f"Airflow is up. UI: {stack.base_url}  user: admin  password: {stack.password}")
                say(f"           (the password is in {stack.password_file}; process logs in {stack.log_dir})")
                say(f"           Coverage page: {stack.base_url}/mdca/coverage (Plugins -> MDCA coverage)")
                dag_ids = [span.dag_id for span in ranges.values()]
                stack.wait_for_dags(dag_ids)
                for span in ranges.values():
                    # Created while the DAG is paused: once unpaused, the scheduler finds every window's run there.
                    stack.backfill(span.dag_id, span.start, span.last_logical)
                    stamp(
                        f"airflow backfill create --dag-id {span.dag_id}: {span.windows} window(s) of "
                        f"{span.period.total_seconds() / 3600:g} h, {span.start:%Y-%m-%d %H:%M} to {span.end:%H:%M} UTC"
                    )
                stack.unpause(*dag_ids)
                stamp("DAGs unpaused: the scheduler runs the backfills (one fetch at a time: pool mdca_api)")
                backfilled_at = time.time()
                wait_for_all(stack, ranges, stamp, args.timeout)
                stamp("Every backfilled window ran. Comparing Devo with MDCA ...")
                devo = DevoAdmin(devo_info)
                rows, all_runs = settle(stack, ranges, emulator, tenant, devo, backfilled_at, args.timeout)
                for name, runs in all_runs.items():
                    failures = stack.failure_report(ranges[name].dag_id, runs)
                    if failures:
                        say(failures)
                say()
                report(rows, say)
                say()
                stats = requests.get(
                    f"{emulator.info['admin_url'].rstrip('/')}/tenants/{tenant.tenant_id}/stats",
                    verify=emulator.ca_bundle,
                    timeout=60,
                ).json()
                say(
                    f"MDCA requests: {sum(stats['requests'].values())}, answered 429 (over 30 a minute): "
                    f"{stats['throttled']}; tokens issued: {stats['tokens_issued']}"
                )
                total, late, latest = late_activities(devo)
                say(
                    f"Late records: {late} of the {total} activities delivered were stored by MDCA more than an hour "
                    f"after they happened (the latest {latest:.1f} h): each in the window it was stored in."
                )
                status = stack.collector("status", "--days", "1")
                say("\nmdca-collector status --days 1 (the coverage page's numbers, in the terminal):")
                say(status.stdout.rstrip() or status.stderr.rstrip())
                say(f"Coverage page: {stack.base_url}/mdca/coverage")
                bad = [row.tag for row in rows if not row.ok]
                say("Every record exactly once." if not bad else f"Wrong: {', '.join(bad)} (see above).")
                stamp(f"Done in {time.monotonic() - began:.0f}s.")
                if args.keep_running:
                    say(f"\nStill running, the DAGs live. UI: {stack.base_url}  user admin  password {stack.password}")
                    say(f"Coverage page: {stack.base_url}/mdca/coverage")
                    say("Press Ctrl-C to stop everything.")
                    while True:
                        time.sleep(1)
    except KeyboardInterrupt:
        say("\nStopping ...")
    except StackError as exc:
        say(f"\nThe demo failed: {exc}")
        return 1
    finally:
        if stack is not None:
            left = stack.leftover_pids()
            say("All processes stopped." if not left else f"Processes left behind: {left}")
    if not rows:
        return 130
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
