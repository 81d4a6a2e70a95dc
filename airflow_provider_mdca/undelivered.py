"""``mdca-collector undelivered``: the windows a failed run left out of Devo, and the one command that delivers them.

A window's run fails only when an outage outlasted ``recovery_horizon`` (or an error no retry can cure). Nothing is
lost then: what was fetched stays staged, what Devo acknowledged is in the window's ledger. Clearing the failed
tasks of those runs makes the scheduler run them again: the fetch reads the same window (windows are on when MDCA
stored each record, so a later read returns the same records), and the ship sends only what Devo has not
acknowledged. This command lists those windows, per DAG, and with ``--deliver`` clears them, oldest first.

It uses Airflow's own command line (``airflow dags list-runs``, ``airflow tasks clear``), so it works wherever the
``airflow`` command does, on either Airflow line, and needs no access of its own to the metadata database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_mdca.config import CollectorConfig
from airflow_provider_mdca.timestamps import format_iso, parse_iso

__all__ = ["FailedWindow", "airflow_command", "deliver", "failed_windows", "report"]

Runner = Callable[[Sequence[str]], str]

_AIRFLOW_TIMEOUT = 300


@dataclass(frozen=True)
class FailedWindow:
    """One window whose run failed: not (fully) delivered."""

    dag_id: str
    run_id: str
    start: datetime
    end: datetime

    def line(self) -> str:
        return f"{self.dag_id}  [{format_iso(self.start)}, {format_iso(self.end)})  run {self.run_id}"


def airflow_command() -> list[str]:
    """How to call Airflow's command line: the ``airflow`` beside this Python, else on the PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "airflow")
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("airflow")
    return [found] if found else [sys.executable, "-m", "airflow"]


def run_airflow(args: Sequence[str]) -> str:
    """Run ``airflow <args>``; its standard output, or RuntimeError with its last lines."""
    result = subprocess.run(
        [*airflow_command(), *args], capture_output=True, text=True, timeout=_AIRFLOW_TIMEOUT, check=False
    )
    if result.returncode:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"airflow {' '.join(args)} exited with {result.returncode}: {tail}")
    return result.stdout


def failed_windows(config: CollectorConfig, run: Runner = run_airflow) -> list[FailedWindow]:
    """The failed runs of every enabled service's DAG, as windows, oldest first."""
    from airflow_provider_mdca._compat import AIRFLOW_V3

    windows: list[FailedWindow] = []
    for service in config.dag_configs:
        args = ["dags", "list-runs", service.dag_id] if AIRFLOW_V3 else ["dags", "list-runs", "-d", service.dag_id]
        output = run([*args, "--state", "failed", "-o", "json"])
        for row in _json_rows(output):
            start = _when(row.get("logical_date") or row.get("execution_date"))
            if start is not None:
                windows.append(FailedWindow(service.dag_id, str(row.get("run_id")), start, start + service.period))
    return sorted(windows, key=lambda w: (w.start, w.dag_id))


def clear_commands(windows: Sequence[FailedWindow]) -> list[list[str]]:
    """``airflow tasks clear`` per DAG: its failed (and upstream-failed) tasks between its first and last window."""
    by_dag: dict[str, list[FailedWindow]] = {}
    for window in windows:
        by_dag.setdefault(window.dag_id, []).append(window)
    commands = []
    for dag_id, own in by_dag.items():
        first, last = min(w.start for w in own), max(w.start for w in own)
        commands.append(
            ["tasks", "clear", dag_id, "--only-failed", "--yes", "-s", format_iso(first), "-e", format_iso(last)]
        )
    return commands


def report(windows: Sequence[FailedWindow], out: Callable[[str], None] = print) -> None:
    """Print the undelivered windows and the command that delivers them."""
    if not windows:
        out("Every window of the enabled services that has run is delivered (no failed run).")
        return
    out(f"{len(windows)} window(s) not delivered (their runs failed):")
    for window in windows:
        out(f"  {window.line()}")
    out("Nothing staged is lost. Once the cause is repaired, deliver them, each record once, with:")
    out("  mdca-collector undelivered --deliver")
    out("which runs, per DAG:")
    for command in clear_commands(windows):
        out("  airflow " + " ".join(command))


def deliver(windows: Sequence[FailedWindow], run: Runner = run_airflow, out: Callable[[str], None] = print) -> None:
    """Clear the failed tasks of those runs: the scheduler runs them again, in order (``max_active_runs``)."""
    for command in clear_commands(windows):
        run(command)
        out("cleared: airflow " + " ".join(command))
    if windows:
        out("The scheduler now runs these windows again; each delivers what Devo has not acknowledged.")


def _json_rows(output: str) -> list[dict[str, Any]]:
    """The rows of the JSON list a command printed on a line of its own (Airflow logs warnings around it)."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith(("[{", "[]")):
            try:
                rows = json.loads(line)
            except ValueError:
                continue
            return [row for row in rows if isinstance(row, dict)]
    return []  # "No data found"


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return parse_iso(str(value))
