"""The fault matrix, scaled down: every in-task fault case heals by itself, each record in Devo once.

Each case of ``tests/harness/fault_matrix.py`` (``make faults`` runs them at full size) drives the collector's own
steps (fetch into staging, flatten, ship with the real sender) over three consecutive windows against the emulators
over real TLS, with Airflow's task retries imitated, while MDCA, Entra ID or Devo misbehave: 429 storms, 5xx,
resets, truncated bodies, short-lived and revoked tokens, a relay that cuts or refuses connections, Devo's HTTP API
failing or losing its answer after storing, windows run or shipped again. The user-level check of each row: nothing
lost, nothing doubled beyond the transport's at-least-once edge (at most one batch per fault there), nobody had to
act, and the fault really fired.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fault_matrix import CASES, SMALL_SCALE, Case, FaultLab, format_table

# One lab (one emulator process) for the module's cases, on one xdist worker: Devo's fault knobs are the lab's.
pytestmark = [pytest.mark.xdist_group("fault-matrix"), pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]

#: Cases whose fault doubles part of a batch at a transport's edge: counted there, never as duplicated.
EDGE = {"relay-drop": "tls_edge_duplicates", "devo-reset-after-store": "http_edge_duplicates"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    with FaultLab(tmp_path_factory.mktemp("fault-matrix")) as started:
        yield started


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_fault_heals_by_itself_and_each_record_arrives_once(lab: FaultLab, case: Case) -> None:
    try:
        row = case.run(SMALL_SCALE, lab)
    finally:
        lab.clear_faults()
    table = format_table([row])
    print(f"\n{table}")
    assert not row.problems, table
    assert row.records > 0 and row.windows >= 3, table
    assert row.lost == 0, table
    assert row.human_actions == 0, table
    # The at-least-once edge: at most one batch per fault that hit it, and only where a fault can.
    assert row.tls_edge_duplicates + row.http_edge_duplicates <= row.edge_allowance, table
    if case.name in EDGE:
        assert getattr(row, EDGE[case.name]) > 0, table  # the fault did double a batch, and it was counted there
    assert row.duplicated == 0, table


def test_the_harness_imports_nothing_from_airflow() -> None:
    code = (
        "import sys; import tests.harness.fault_matrix; "
        "loaded = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
