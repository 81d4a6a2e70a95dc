"""The fault matrix's bookkeeping (tests/harness/fault_matrix.py): what counts at a transport's edge, what fails."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from tests.harness.fault_matrix import FaultRow, TaskRunner, as_fault_row, edge_duplicates, format_table

IDS = [f"r{n:03d}" for n in range(20)]


def extra_of(arrivals: list[str]) -> Counter[str]:
    return Counter(arrivals) - Counter(IDS)


@pytest.mark.parametrize(
    ("arrivals", "allowance", "faults", "explained"),
    [
        ([*IDS[:8], *IDS[5:8], *IDS[8:]], 5, 1, 3),  # a cut batch's stored prefix sent again: one run of 3
        ([*IDS[:8], *IDS[2:8], *IDS[8:]], 5, 1, 0),  # 6 doubled: more than one batch of 5
        ([*IDS[:8], IDS[1], IDS[6], *IDS[8:]], 5, 1, 0),  # picked here and there: not a batch sent again
        ([*IDS[:8], IDS[1], IDS[6], *IDS[8:]], 10, 2, 2),  # two faults, two runs
        ([*IDS[:8], *IDS[5:8], *IDS[8:]], 0, 0, 0),  # no fault at an edge: nothing is explained
        (IDS, 5, 1, 0),  # nothing doubled
    ],
    ids=["one-run", "over-a-batch", "scattered", "two-faults", "no-edge-fault", "none"],
)
def test_the_edge_explains_one_run_of_at_most_a_batch_per_fault(arrivals, allowance, faults, explained):
    assert edge_duplicates(arrivals, extra_of(arrivals), allowance, faults) == explained


def row(**changes: object) -> FaultRow:
    fields: dict[str, object] = {
        "case": "c",
        "windows": 3,
        "records": 10,
        "lost": 0,
        "duplicated": 0,
        "tls_edge_duplicates": 2,
        "human_actions": 0,
        "seconds_to_heal": 1.5,
        "edge_allowance": 5,
        "faults": 1,
    }
    fields.update(changes)
    return FaultRow(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({}, False),
        ({"lost": 1}, True),
        ({"duplicated": 1}, True),
        ({"human_actions": 1}, True),
        ({"problems": ("the fault never fired",)}, True),
    ],
    ids=["edge-only", "lost", "duplicated", "human", "problem"],
)
def test_a_row_fails_on_a_loss_a_duplicate_beyond_the_edge_a_human_or_a_problem(changes, failed):
    assert row(**changes).failed is failed
    assert ("FAILED" in format_table([row(**changes)])) is failed


def test_another_harness_result_becomes_a_row_by_its_field_names():
    @dataclass
    class CrashLike:
        case: str = "ship-tls"
        windows: int = 3
        records: int = 12_000
        lost: int = 0
        duplicated: int = 0
        tls_edge_duplicates: int = 17
        http_edge_duplicates: int = 0
        human_actions: int = 0
        seconds_to_heal: float = 41.2
        edge_allowance: int = 400
        killed: str = "the ship task"
        detected: str = "heartbeat timeout"
        problems: tuple[str, ...] = ()

    converted = as_fault_row(CrashLike(), case="sigkill-ship-tls")
    assert converted.case == "sigkill-ship-tls" and converted.tls_edge_duplicates == 17
    assert converted.what == "killed the ship task; heartbeat timeout" and not converted.failed
    assert converted.collector_cpu_seconds is None
    described = as_fault_row({**CrashLike().__dict__, "killed": "", "case": "Devo down 60 s"}, case="devo-outage")
    assert described.case == "devo-outage" and described.what == "Devo down 60 s"


def test_a_spent_retry_budget_is_a_human_action_and_other_errors_are_bugs(monkeypatch):
    monkeypatch.setattr("tests.harness.fault_matrix.time.sleep", lambda seconds: None)
    runner = TaskRunner()
    failures = iter(range(5))  # the first 5 tries fail: 4 (1 + 3 retries), a human clears it, then 1 more

    def step(try_number: int) -> str:
        if next(failures, None) is not None:
            raise OSError("down")
        return "delivered"

    assert runner.run("ship", step) == "delivered"
    assert (runner.tries, runner.retries, runner.human_actions) == (6, 4, 1)
    with pytest.raises(KeyError):
        TaskRunner().run("ship", lambda n: {}["bug"])
