"""The tenant's request budget across fetch tasks: what one leaves, the next respects (fake clocks, real files)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.request_budget import SharedRequestBudget, tenant_key


class Clocks:
    """A monotonic clock and a wall clock that move together, and a sleep that moves both."""

    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.mono, self.wall_now = 100.0, wall
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        self.mono += seconds
        self.wall_now += seconds
        self.slept += seconds

    def limiter(self, per_minute: float = 30) -> RateLimiter:
        return RateLimiter(per_minute, clock=lambda: self.mono, sleep=self.sleep, wall=lambda: self.wall_now)


def test_the_next_task_waits_out_the_spacing_the_last_one_left() -> None:
    clocks = Clocks()
    first = clocks.limiter()
    first.acquire()  # a request at once, the next one 2.02 s later
    handed = first.hand_over()
    assert handed == pytest.approx(clocks.wall_now + 60 * 1.01 / 30)
    clocks.sleep(0.5)  # the next task starts half a second later, in another process
    second = clocks.limiter()
    second.take_over(handed)
    assert second.acquire() == pytest.approx(60 * 1.01 / 30 - 0.5)


def test_a_time_far_ahead_is_capped_at_one_interval_and_nothing_means_no_wait() -> None:
    clocks = Clocks()
    limiter = clocks.limiter()
    limiter.take_over(clocks.wall_now + 86_400)  # a wrong clock or a tampered file must not stall a fetch a day
    assert limiter.acquire() == pytest.approx(60 * 1.01 / 30)
    fresh = clocks.limiter()
    fresh.take_over(None)
    assert fresh.acquire() == 0.0 and fresh.hand_over() is not None
    assert clocks.limiter(None).hand_over() is None  # unlimited: nothing to hand over


def test_the_budget_file_round_trips_names_the_tenant_opaquely_and_never_fails(tmp_path: Path, caplog) -> None:
    key = tenant_key("https://contoso.eu2.portal.cloudappsecurity.com/", "tenant-guid")
    assert key == tenant_key("https://CONTOSO.eu2.portal.cloudappsecurity.com", "TENANT-GUID") and len(key) == 24
    budget = SharedRequestBudget(tmp_path, key)
    assert budget.load() is None
    budget.save(1_800_000_002.5)
    assert SharedRequestBudget(tmp_path, key).load() == 1_800_000_002.5
    assert "tenant-guid" not in str(budget.path) and "contoso" not in budget.path.read_text()
    budget.path.write_text("{broken")
    with caplog.at_level(logging.WARNING):
        assert budget.load() is None
    assert "could not be read" in caplog.text
    budget.path.write_text('{"next_request_at": Infinity}')
    assert budget.load() is None
