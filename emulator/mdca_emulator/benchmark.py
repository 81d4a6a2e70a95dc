"""Scan-mode throughput of the emulator: ``python -m mdca_emulator.benchmark [--records N]``.

One ``requests`` client reads a window of activities in scan mode (limit 5,000) over one keep-alive HTTPS
connection, following ``nextQueryFilters``, parsing every page with ``Response.json()``, throttling off. By
default the emulator runs as its own process (``python -m mdca_emulator``), as it does for
the demo; ``--in-process`` runs it in a thread of this process instead (then client and server share one GIL).
Not a test: a figure to watch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from mdca_emulator.data import Segment
from mdca_emulator.server import EmulatorServer
from mdca_emulator.state import TenantConfig, TimeSeriesConfig

__all__ = ["main"]

_START = 1_700_000_000_000  # a past day, so the whole window is visible
_DAY = 86_400_000


def _config(records: int) -> TenantConfig:
    segment = Segment(_START, _START + _DAY, records, (1, 1, 4, 1, 7))
    # A speed benchmark: the instant model (every record stored at once, nothing expires), as the time model says.
    return TenantConfig(
        "bench",
        services={"activities": TimeSeriesConfig([segment])},
        requests_per_minute=None,
        time_model="instant",
    )


@contextlib.contextmanager
def _emulator(records: int, in_process: bool, state_dir: Path) -> Iterator[dict[str, Any]]:
    """Yield the emulator.json description of a running emulator with the benchmark tenant."""
    config = _config(records)
    if in_process:
        with EmulatorServer(state_dir, tenants=[config]) as server:
            yield server.describe()
        return
    config_path = state_dir / "bench-tenant.json"
    config_path.write_text(json.dumps(config.to_dict()))
    command = [sys.executable, "-m", "mdca_emulator", "--state-dir", str(state_dir)]
    command += ["--config", str(config_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            if proc.stdout is None:
                raise RuntimeError("the emulator's stdout is not a pipe")
            yield json.loads(proc.stdout.readline())
        finally:
            proc.terminate()
            proc.wait(10)


def _scan(info: dict[str, Any]) -> tuple[int, int, float]:
    """(records, pages, seconds) of one full scan of the benchmark window."""
    tenant = info["tenants"][0]
    headers = {"Authorization": f"Token {tenant['files_access_token']}"}
    body: dict[str, Any] = {"filters": {"date": {"gte": _START, "lte": _START + _DAY - 1}}, "isScan": True}
    body["limit"] = 5000
    records = pages = 0
    with requests.Session() as session:
        session.verify = info["ca_bundle"]
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
        url = f"{tenant['mdca_url']}api/v1/activities/"
        started = time.perf_counter()
        while True:
            response = session.post(url, json=body, headers=headers)
            response.raise_for_status()
            page = response.json()
            records, pages = records + len(page["data"]), pages + 1
            if not page["hasNext"]:
                break
            body["filters"] = page["nextQueryFilters"]
        return records, pages, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print records per second."""
    parser = argparse.ArgumentParser(description="Scan-mode throughput of the MDCA emulator.")
    parser.add_argument("--records", type=int, default=300_000, help="activities to read (default 300,000)")
    parser.add_argument("--in-process", action="store_true", help="run the emulator in this process")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="mdca-bench-") as tmp,
        _emulator(args.records, args.in_process, Path(tmp)) as info,
    ):
        records, pages, seconds = _scan(info)
    if records != args.records:
        print(f"read {records} records, expected {args.records}", file=sys.stderr)
        return 1
    mode = "in-process" if args.in_process else "separate process"
    rate = records / seconds
    print(f"{records:,} records in {pages} pages in {seconds:.2f} s: {rate:,.0f} records/s ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
