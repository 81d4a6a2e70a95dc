"""How long the coverage view takes to build and render for a managed security provider's week.

Tenants of the default config (activities and alerts every 5 minutes, files hourly, the snapshots daily), a week of
runs each, one in a hundred failed, every run with its fetch counts and ship summary as the XComs hold them. Times
the pure part the page, the JSON and ``mdca-collector status`` share (the database read is Airflow's: four queries
whatever the number of runs), and prints the sizes a browser and a script receive::

    .venv/bin/python bench/bench_coverage.py [--tenants 3] [--days 7]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta, timezone

from airflow_provider_mdca.config import parse_collector_config
from airflow_provider_mdca.coverage import service_windows
from airflow_provider_mdca.coverage.model import RunRecord, ServiceWindows, build_coverage
from airflow_provider_mdca.coverage.render import render_html, render_text


def runs_of_a_week(windows: list[ServiceWindows], now: datetime, days: int) -> list[RunRecord]:
    runs = []
    for config in windows:
        first = max(config.first_start, now - timedelta(days=days))
        count = int((now - first) / config.period)
        for index in range(count):
            start = first + config.period * index
            failed = index % 100 == 42
            runs.append(
                RunRecord(
                    dag_id=config.dag_id,
                    run_id=f"scheduled__{start.isoformat()}",
                    state="failed" if failed else "success",
                    start=start,
                    end=start + config.period,
                    started_at=start + config.period,
                    finished_at=start + config.period + timedelta(seconds=40),
                    stats={"fetched": 500, "late": 20, "requests": 1, "throttled": 0, "retries": 0},
                    ship=None if failed else {"staged": 500, "delivered": 500, "skipped_delivered_before": 0},
                )
            )
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    config = parse_collector_config(
        {
            "defaults": {"historic_date_utc": (now - timedelta(days=30)).isoformat()},
            "tenants": {f"tenant{i}": {"mdca_conn_id": f"mdca_tenant{i}"} for i in range(args.tenants)},
        }
    )
    windows = [service_windows(service) for service in config.dag_configs]
    runs = runs_of_a_week(windows, now, args.days)

    cpu, wall = time.process_time(), time.perf_counter()
    coverage = build_coverage(windows, runs, now, args.days, lambda dag, run: f"/dags/{dag}/runs/{run}")
    built = time.perf_counter() - wall
    page = render_html(coverage)
    paged = time.perf_counter() - wall
    document = json.dumps(coverage.as_dict())
    jsoned = time.perf_counter() - wall
    text = render_text(coverage)
    total, cpu_used = time.perf_counter() - wall, time.process_time() - cpu

    cells = sum(len(service.windows) for service in coverage.services)
    print(f"{args.tenants} tenants, {len(windows)} DAGs, {len(runs)} runs, {cells} windows in {args.days} days")
    print(
        f"build {built:.3f} s, + page {paged - built:.3f} s ({len(page) / 1e6:.1f} MB), "
        f"+ JSON {jsoned - paged:.3f} s ({len(document) / 1e6:.1f} MB), + text {total - jsoned:.3f} s "
        f"({len(text.splitlines())} lines)"
    )
    print(f"total {total:.3f} s wall, {cpu_used:.3f} CPU-s (one core: the view's own ceiling)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
