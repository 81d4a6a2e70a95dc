"""The fault matrix, as a command (``make faults``): every fault case, one row each, exit 1 if one broke the guarantee.

Rows: case, windows, records, lost, duplicated, delivered twice at the TLS edge and at the HTTP edge, human actions
needed, seconds to heal (from the first fault until everything is delivered), faults fired, task retries, wall time
and the collector's own CPU seconds. The exit status is 1 when a row lost a record, doubled one beyond the
transports' at-least-once edge (one batch per fault there), needed a human, or could not run as planned.

The cases:

* ``tests/harness/fault_matrix.py``'s ``CASES``: MDCA, Entra ID and Devo faults inside the collector's steps, with
  Airflow's retries imitated (no Airflow); the test suite runs them scaled down (``tests/integration/
  test_fault_matrix.py``);
* ``tests/harness/crashes.py``, when present: SIGKILL of a task or of the scheduler in a live Airflow 3 (rows
  ``sigkill-<case>``; its ``CrashLab``, ``SMALL``/``FULL`` and per-case functions);
* ``tests/harness/outages.py``, when present: the Devo relay down for minutes under a live Airflow 3 scheduler (row
  ``devo-outage``; its ``run_devo_outage(workdir).rows()``);
* a harness module that exposes ``FAULT_CASES`` (these two included, should they do so): a mapping of case name to
  a function ``(quick: bool) -> row`` (or a list of rows), a row being a ``FaultRow`` or any record with its field
  names (``tests.harness.fault_matrix.as_fault_row``). A present module the command cannot run is a failed row.

The SIGKILL and outage cases need Airflow 3 (``.venv``, the default): on the 2.11 line they are named and not run.

    make faults                                   # full size
    make faults FAULTS_ARGS=--quick               # the test suite's size
    .venv/bin/python bench/faults.py --only relay-drop --only sigkill-ship-tls
    .venv/bin/python bench/faults.py --list

The collector's CPU is this process's CPU during the collector's steps (the emulators run in a child process; in the
SIGKILL cases the collector runs in Airflow's task processes, so it is not measured there: ``-``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the harness lives in tests/harness

from tests.harness import fault_matrix
from tests.harness.fault_matrix import FaultRow

#: Harness modules whose cases join the matrix when they are present.
CRASHES = "tests.harness.crashes"
OUTAGES = "tests.harness.outages"
REGISTRIES = (OUTAGES,)
CRASH_PREFIX = "sigkill-"
OUTAGE_CASE = "devo-outage"


def _present(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _airflow_major() -> int:
    try:
        return int(importlib.metadata.version("apache-airflow").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return 0


# -- the sources of cases -------------------------------------------------------------------------------------------


@dataclass
class Source:
    """Where some cases come from: their names, whether they need Airflow 3, and how to run a selection of them."""

    label: str
    names: list[str]
    run: Callable[[list[str], bool], list[Any]]
    airflow3: bool = False


def _in_task_source() -> Source:
    def run(names: list[str], quick: bool) -> list[Any]:
        scale = fault_matrix.SMALL_SCALE if quick else fault_matrix.FULL_SCALE
        return fault_matrix.run_cases([case for case in fault_matrix.CASES if case.name in names], scale)

    return Source("in-task", [case.name for case in fault_matrix.CASES], run)


def _crash_source(module: ModuleType) -> Source:
    """``tests.harness.crashes``: a ``CrashLab`` of ``SMALL`` or ``FULL`` size, its ``CASES`` by name."""

    def run(names: list[str], quick: bool) -> list[Any]:
        chosen = [name[len(CRASH_PREFIX) :] for name in names]
        scale = module.SMALL if quick else module.FULL
        with tempfile.TemporaryDirectory(prefix="fault-crashes-") as temp, module.CrashLab(Path(temp), scale) as lab:
            if sorted(chosen) == sorted(module.CASES):
                results = module.run_cases(lab)  # the task cases at once, then the scheduler case
            else:
                results = [module.CASES[name](lab) for name in chosen]
        return [replace(fault_matrix.as_fault_row(r), case=CRASH_PREFIX + r.case) for r in results]

    return Source("SIGKILL (live Airflow 3)", [CRASH_PREFIX + name for name in module.CASES], run, airflow3=True)


def _outage_source(module: ModuleType) -> Source:
    """``tests.harness.outages``: ``run_devo_outage(workdir)`` returns a run whose ``rows()`` are the rows."""

    def run(names: list[str], quick: bool) -> list[Any]:
        with tempfile.TemporaryDirectory(prefix="fault-outage-") as temp:
            outcome = module.run_devo_outage(Path(temp))
            try:
                rows = outcome.rows()
            finally:
                outcome.stop()
        return [fault_matrix.as_fault_row(row, case=OUTAGE_CASE if len(rows) == 1 else None) for row in rows]

    return Source("Devo outage (live Airflow 3)", [OUTAGE_CASE], run, airflow3=True)


def _registered_source(module: ModuleType) -> Source:
    """A module's ``FAULT_CASES``: case name -> function ``(quick) -> row or list of rows``."""
    cases = module.FAULT_CASES

    def run(names: list[str], quick: bool) -> list[Any]:
        rows: list[Any] = []
        for name in names:
            result = cases[name](quick)
            found = list(result) if isinstance(result, list | tuple) else [result]
            rows += [fault_matrix.as_fault_row(row, case=name if len(found) == 1 else None) for row in found]
        return rows

    return Source(module.__name__, list(cases), run, airflow3=True)


def sources() -> tuple[list[Source], list[Any]]:
    """Every source of cases present, and a failed row for each present module the command cannot run."""
    found = [_in_task_source()]
    unusable: list[Any] = []
    for name in (CRASHES, *REGISTRIES):
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "FAULT_CASES"):
            found.append(_registered_source(module))
        elif name == CRASHES and hasattr(module, "CrashLab"):
            found.append(_crash_source(module))
        elif name == OUTAGES and hasattr(module, "run_devo_outage"):
            found.append(_outage_source(module))
        else:
            unusable.append(_unusable(name))
    return found, unusable


def _unusable(module: str) -> FaultRow:
    return FaultRow(
        case=module,
        windows=0,
        records=0,
        lost=0,
        duplicated=0,
        tls_edge_duplicates=0,
        human_actions=0,
        seconds_to_heal=float("nan"),
        problems=(f"{module} is present but exposes no FAULT_CASES (name -> function(quick) -> row): not run",),
    )


# -- the report -----------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_line() -> str:
    airflow = importlib.metadata.version("apache-airflow") if _airflow_major() else "none"
    return (
        f"machine: {os.cpu_count()} cores, {_cpu_model()}; Python {platform.python_version()}, Airflow {airflow}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def summary_lines(rows: Sequence[Any], wall: float, own_cpu: float, children_cpu: float) -> list[str]:
    measured = [r for r in rows if r.collector_cpu_seconds is not None]
    lines = []
    if measured:
        cpu = sum(r.collector_cpu_seconds for r in measured)
        records = sum(r.records for r in measured)
        busy = sum(r.wall_seconds or 0.0 for r in measured)
        lines.append(
            f"collector (in-task cases): {records:,} records through fetch, flatten and ship in {cpu:.2f} CPU-s "
            f"({records / cpu if cpu else 0:,.0f} records per CPU-second, its own ceiling) over {busy:.1f} s of "
            "wall time: the rest is the faults' waits (backoff, Retry-After, Airflow's scaled retry delay) and the "
            "TLS sender's one-second certificate check per task"
        )
    lines.append(
        f"this command: {wall:.1f} s wall, {own_cpu:.1f} CPU-s in its own process (collector and checks), "
        f"{children_cpu:.1f} CPU-s in its children (emulators, Airflow)"
    )
    return lines


# -- main -----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the test suite's size, not the full one")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this case (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--verbose", action="store_true", help="show the collector's log (every retry it makes)")
    args = parser.parse_args(argv)
    # The collector logs a WARNING for each retry: hundreds here, where retrying is the point.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")

    found, rows = sources()
    if args.list:
        for source in found:
            for name in source.names:
                print(f"{name:<28} {source.label}")
        return 0
    known = {name for source in found for name in source.names}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; --list shows them")
    wanted = set(args.only) if args.only else known
    on_airflow3 = _airflow_major() >= 3
    notes = [f"{name} is not present: none of its cases" for name in (CRASHES, *REGISTRIES) if not _present(name)]

    print(machine_line())
    began = time.monotonic()
    own_before, children_before = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    for source in found:
        names = [name for name in source.names if name in wanted]
        if not names:
            continue
        if source.airflow3 and not on_airflow3:
            if args.only:
                parser.error(f"the {source.label} cases need Airflow 3 (a live scheduler): use .venv")
            notes.append(f"the {source.label} cases need Airflow 3 (a live scheduler): not run on this line")
            continue
        print(f"running the {source.label} cases: {', '.join(names)} ...", flush=True)
        rows.extend(source.run(names, args.quick))
    wall = time.monotonic() - began
    own_cpu = _cpu_seconds(resource.RUSAGE_SELF) - own_before
    children_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - children_before

    size = "quick (the test suite's size)" if args.quick else "full size"
    print(f"\nThe fault matrix, {size}:\n")
    print(fault_matrix.format_table(rows))
    print()
    for line in [*summary_lines(rows, wall, own_cpu, children_cpu), *notes]:
        print(line)
    failed = [row.case for row in rows if row.failed]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    print(f"\nall {len(rows)} cases: nothing lost, nothing doubled beyond the edge, no human action")
    return 0


if __name__ == "__main__":
    sys.exit(main())
