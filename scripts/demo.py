"""The demo: the collector's fetch side against the bundled emulators, through a real Airflow connection.

Starts the MDCA + Entra ID emulator (throttled at MDCA's 30 requests a minute), points the ``mdca_default``
connection at it, reads every service over the last six hours with ``MdcaHook``, and prints per service the
emulator's ground truth, what was fetched, duplicates, missing records and the request figures. The DAGs,
Devo delivery and backfill join this demo as they land (issues 3 and 4).

    make demo                       # run once and stop everything
    make demo DEMO_ARGS=--keep-running   # leave the emulator up afterwards (Ctrl-C stops it)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "demo"


def _prepare_airflow_home() -> None:
    home = VAR / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=6, help="how far back to read (default 6)")
    parser.add_argument("--keep-running", action="store_true", help="keep the emulator up until Ctrl-C")
    args = parser.parse_args(argv)

    _prepare_airflow_home()
    from airflow_provider_mdca.emulator.process import EmulatorProcess
    from airflow_provider_mdca.hooks.mdca import MdcaHook
    from airflow_provider_mdca.services import SERVICES

    with EmulatorProcess(VAR / "emulator") as emulator:
        os.environ["AIRFLOW_CONN_MDCA_DEFAULT"] = json.dumps(emulator.connection())
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        end -= timedelta(minutes=end.minute % 5)  # the last whole 5-minute window, as the scheduler would
        start = end - timedelta(hours=args.hours)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        print(f"Emulator up at {emulator.info['base_url']} (CA bundle {emulator.ca_bundle})")
        print(f"Reading [{start.isoformat()}, {end.isoformat()}) through the mdca_default connection")
        print("MDCA allows 30 requests a minute; the client's limiter keeps to it, so this takes about a minute.\n")

        header = f"{'service':<16}{'in MDCA':>9}{'fetched':>9}{'dupes':>7}{'missing':>9}{'requests':>10}"
        header += f"{'429s':>6}{'elapsed':>10}"
        print(header)
        print("-" * len(header))
        failures = 0
        hook = MdcaHook()
        for name in SERVICES:
            began = time.monotonic()
            ids = [record["_id"] for record in hook.iter_records(name, start, end)]
            elapsed = time.monotonic() - began
            truth = set(emulator.truth(name, start_ms, end_ms))
            counts = Counter(ids)
            dupes = sum(n - 1 for n in counts.values() if n > 1)
            missing = len(truth - set(counts))
            failures += dupes + missing + len(set(counts) - truth)
            stats = hook.stats
            print(
                f"{name:<16}{len(truth):>9}{len(ids):>9}{dupes:>7}{missing:>9}{stats.requests:>10}"
                f"{stats.throttled:>6}{elapsed:>9.1f}s"
            )
        print("\nEvery record exactly once." if not failures else f"\n{failures} records wrong: see above.")
        if args.keep_running:
            print(f"Emulator still up at {emulator.info['base_url']}; details in {VAR / 'emulator' / 'emulator.json'}.")
            print("Press Ctrl-C to stop it.")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
